//! The bridge between the node and its controller-quorum voter: KRaft RPCs
//! as Kafka requests and responses, the metadata log's own flush lane.
//!
//! The quorum speaks in messages (`Send { to, message }`), requests and
//! answers alike; Kafka speaks in request/response pairs on a connection.
//! Outbound requests become `PeerRequest`s and their answers come back as
//! messages. An inbound request is handed to the quorum; Vote,
//! BeginQuorumEpoch and EndQuorumEpoch are answered while it handles them,
//! a Fetch may be parked by the leader (long poll) and is answered later by
//! its correlation id. A request the quorum drops (a non-voter, a role
//! change) still gets an answer, an error, so the connection's in-order
//! responses never stall behind it.

use super::super::io::{FlushId, Output, PeerId};
use super::super::responder::Slot;
use super::super::Node;
use super::peers::{deadline, Purpose};
use crate::quorum::messages::{
    begin_quorum_epoch_response, end_quorum_epoch_response, fetch_error_response,
    fetch_snapshot_error_response, parse_begin_quorum_epoch_request,
    parse_end_quorum_epoch_request, parse_vote_request, vote_error_response,
};
use crate::quorum::{QuorumOutput, RaftMessage, SnapshotId};
use crate::storage::Storage;
use crate::time::Instant;
use kafka_protocol::messages::{FetchRequest, FetchResponse, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// Kafka's fixed topic id of `__cluster_metadata` (`Topic.CLUSTER_METADATA_TOPIC_ID`).
pub const METADATA_TOPIC_ID: Uuid = Uuid::from_u64_pair(0, 1);
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// Quorum outputs handled per drain; the quorum bounds its own queue lower.
const QUORUM_OUTPUTS_PER_DRAIN_MAX: usize = 8192;
/// An inbound quorum fetch unanswered this long gets an empty error answer.
const PARKED_FETCH_SLACK: Duration = Duration::from_millis(1000);
const RAFT_FLUSH_RETRY_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct RaftFlush {
    id: FlushId,
    paths: Vec<String>,
    log_end_offset: i64,
    /// Set after a failed sync: ask again at this instant.
    retry_at: Option<Instant>,
}

/// A metadata snapshot file being synced (KIP-630).
#[derive(Debug)]
struct SnapshotFlush {
    id: FlushId,
    path: String,
    snapshot_id: SnapshotId,
    retry_at: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct RaftBridge {
    /// Inbound quorum fetches the leader parked: (peer, correlation id).
    parked: BTreeMap<(PeerId, i32), (Slot, Instant)>,
    flush: Option<RaftFlush>,
    snapshot_flush: Option<SnapshotFlush>,
}

impl RaftBridge {
    pub fn next_deadline(&self) -> Option<Instant> {
        let parked = self.parked.values().map(|(_, at)| *at).min();
        let retry = self.flush.as_ref().and_then(|f| f.retry_at);
        let snapshot_retry = self.snapshot_flush.as_ref().and_then(|f| f.retry_at);
        parked.into_iter().chain(retry).chain(snapshot_retry).min()
    }

    pub fn forget_connection(&mut self, connection: crate::node::ConnectionId) {
        self.parked
            .retain(|_, (slot, _)| slot.connection != connection);
    }

    pub fn owns_flush(&self, id: FlushId) -> bool {
        self.flush.as_ref().is_some_and(|f| f.id == id)
            || self.snapshot_flush.as_ref().is_some_and(|f| f.id == id)
    }

    pub fn check_invariants(&self) {
        assert!(
            self.parked.len() <= 4 * crate::quorum::OUTPUTS_MAX,
            "parked quorum fetches are bounded by the voters"
        );
    }
}

/// Whether an inbound Fetch is for the metadata log (by id from v13, by
/// name before).
pub fn is_metadata_fetch(request: &FetchRequest) -> bool {
    request
        .topics
        .iter()
        .any(|t| t.topic_id == METADATA_TOPIC_ID || t.topic.0.as_str() == METADATA_TOPIC)
}

/// The quorum reads topic names; Fetch 13+ carries ids. Both are set so the
/// message means the same at any version.
fn name_metadata_topics_in_request(request: &mut FetchRequest) {
    for topic in &mut request.topics {
        topic.topic_id = METADATA_TOPIC_ID;
        topic.topic = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
    }
}

fn name_metadata_topics_in_response(response: &mut FetchResponse) {
    for topic in &mut response.responses {
        topic.topic_id = METADATA_TOPIC_ID;
        topic.topic = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
    }
}

/// The voter that sent an inbound KRaft request, as the request names it.
fn raft_sender(body: &RequestKind, cluster_id: &str) -> Option<PeerId> {
    match body {
        RequestKind::Vote(r) => parse_vote_request(cluster_id, r)
            .ok()
            .map(|f| f.candidate_id),
        RequestKind::BeginQuorumEpoch(r) => parse_begin_quorum_epoch_request(cluster_id, r)
            .ok()
            .map(|(leader, _)| leader),
        RequestKind::EndQuorumEpoch(r) => parse_end_quorum_epoch_request(cluster_id, r)
            .ok()
            .map(|(leader, _, _)| leader),
        RequestKind::Fetch(r) => Some(r.replica_state.replica_id.0),
        RequestKind::FetchSnapshot(r) => Some(r.replica_id.0),
        _ => None,
    }
}

fn error_answer(body: &RequestKind, code: i16) -> ResponseKind {
    match body {
        RequestKind::Vote(_) => ResponseKind::Vote(vote_error_response(code)),
        RequestKind::BeginQuorumEpoch(_) => {
            ResponseKind::BeginQuorumEpoch(begin_quorum_epoch_response(code, None, -1))
        }
        RequestKind::EndQuorumEpoch(_) => {
            ResponseKind::EndQuorumEpoch(end_quorum_epoch_response(code, None, -1))
        }
        RequestKind::FetchSnapshot(_) => {
            ResponseKind::FetchSnapshot(fetch_snapshot_error_response(code))
        }
        _ => {
            let mut response = fetch_error_response(code);
            name_metadata_topics_in_response(&mut response);
            ResponseKind::Fetch(response)
        }
    }
}

fn response_matches(request: &RequestKind, message: &RaftMessage, correlation_id: i32) -> bool {
    match (request, message) {
        (RequestKind::Vote(_), RaftMessage::VoteResponse(_))
        | (RequestKind::BeginQuorumEpoch(_), RaftMessage::BeginQuorumEpochResponse(_))
        | (RequestKind::EndQuorumEpoch(_), RaftMessage::EndQuorumEpochResponse(_)) => true,
        (
            RequestKind::Fetch(_),
            RaftMessage::FetchResponse {
                correlation_id: c, ..
            },
        ) => *c == correlation_id,
        (
            RequestKind::FetchSnapshot(_),
            RaftMessage::FetchSnapshotResponse {
                correlation_id: c, ..
            },
        ) => *c == correlation_id,
        _ => false,
    }
}

fn into_response(message: RaftMessage) -> ResponseKind {
    match message {
        RaftMessage::VoteResponse(r) => ResponseKind::Vote(r),
        RaftMessage::BeginQuorumEpochResponse(r) => ResponseKind::BeginQuorumEpoch(r),
        RaftMessage::EndQuorumEpochResponse(r) => ResponseKind::EndQuorumEpoch(r),
        RaftMessage::FetchResponse { mut response, .. } => {
            name_metadata_topics_in_response(&mut response);
            ResponseKind::Fetch(response)
        }
        RaftMessage::FetchSnapshotResponse { response, .. } => {
            ResponseKind::FetchSnapshot(response)
        }
        request => panic!("{} is not an answer", request.name()),
    }
}

/// The inbound request a quorum drain may answer at once.
pub(in crate::node) struct Inbound<'a> {
    from: PeerId,
    correlation_id: i32,
    slot: Slot,
    body: &'a RequestKind,
}

impl<S: Storage> Node<S> {
    /// An inbound Vote, BeginQuorumEpoch, EndQuorumEpoch or metadata Fetch.
    pub(in crate::node) fn handle_raft_request(
        &mut self,
        slot: Slot,
        correlation_id: i32,
        mut body: RequestKind,
    ) {
        let cluster_id = self.config.cluster_id.clone();
        let Some(from) = raft_sender(&body, &cluster_id) else {
            let answer = error_answer(&body, ResponseError::InvalidRequest.code());
            self.responder.complete(slot, answer, &mut self.outputs);
            return;
        };
        if let RequestKind::Fetch(fetch) = &mut body {
            name_metadata_topics_in_request(fetch);
            // A follower has one quorum fetch in flight: an older one still
            // parked here was given up on; answer it so the connection moves.
            let stale: Vec<(PeerId, i32)> = self
                .cluster()
                .raft
                .parked
                .keys()
                .filter(|(peer, _)| *peer == from)
                .copied()
                .collect();
            for key in stale {
                self.answer_parked_raft_fetch(key, ResponseError::RequestTimedOut.code());
            }
        }
        let message = match &body {
            RequestKind::Vote(r) => RaftMessage::Vote(r.clone()),
            RequestKind::BeginQuorumEpoch(r) => RaftMessage::BeginQuorumEpoch(r.clone()),
            RequestKind::EndQuorumEpoch(r) => RaftMessage::EndQuorumEpoch(r.clone()),
            RequestKind::Fetch(r) => RaftMessage::Fetch {
                correlation_id,
                request: r.clone(),
            },
            RequestKind::FetchSnapshot(r) => RaftMessage::FetchSnapshot {
                correlation_id,
                request: r.clone(),
            },
            other => unreachable!("not a KRaft request: {other:?}"),
        };
        let now = self.now;
        let Node {
            cluster, storage, ..
        } = self;
        let cluster = cluster.as_mut().expect("raft requests reach cluster nodes");
        if let Err(e) = cluster.quorum.handle_message(storage, now, from, message) {
            tracing::error!(error = %e, "the quorum could not take a message");
        }
        let inbound = Inbound {
            from,
            correlation_id,
            slot,
            body: &body,
        };
        let answered = self.drain_quorum(Some(inbound));
        if answered {
            tracing::trace!(from, correlation_id, "quorum request answered at once");
            return;
        }
        if matches!(body, RequestKind::Fetch(_)) && self.cluster().quorum.is_leader() {
            let wait = Duration::from_millis(self.cluster().quorum.config().fetch_max_wait_ms);
            let at = now + wait + PARKED_FETCH_SLACK;
            tracing::trace!(from, correlation_id, "quorum fetch parked");
            self.cluster_mut()
                .raft
                .parked
                .insert((from, correlation_id), (slot, at));
        } else {
            let answer = error_answer(&body, ResponseError::NotLeaderOrFollower.code());
            self.responder.complete(slot, answer, &mut self.outputs);
        }
    }

    /// The answer to a KRaft request this node sent.
    pub(in crate::node) fn handle_raft_response(
        &mut self,
        from: PeerId,
        quorum_correlation_id: Option<i32>,
        body: ResponseKind,
    ) {
        let message = match (body, quorum_correlation_id) {
            (ResponseKind::Vote(r), _) => RaftMessage::VoteResponse(r),
            (ResponseKind::BeginQuorumEpoch(r), _) => RaftMessage::BeginQuorumEpochResponse(r),
            (ResponseKind::EndQuorumEpoch(r), _) => RaftMessage::EndQuorumEpochResponse(r),
            (ResponseKind::Fetch(mut response), Some(correlation_id)) => {
                name_metadata_topics_in_response(&mut response);
                RaftMessage::FetchResponse {
                    correlation_id,
                    response,
                }
            }
            (ResponseKind::FetchSnapshot(response), Some(correlation_id)) => {
                RaftMessage::FetchSnapshotResponse {
                    correlation_id,
                    response,
                }
            }
            (other, _) => {
                tracing::warn!(from, ?other, "unexpected answer to a KRaft request");
                return;
            }
        };
        let now = self.now;
        let Node {
            cluster, storage, ..
        } = self;
        let cluster = cluster.as_mut().expect("cluster node");
        if let Err(e) = cluster.quorum.handle_message(storage, now, from, message) {
            tracing::error!(error = %e, "the quorum could not take an answer");
        }
        self.drain_quorum(None);
    }

    /// Routes what the quorum asked for. Returns whether `inbound` was
    /// answered.
    pub(in crate::node) fn drain_quorum(&mut self, inbound: Option<Inbound<'_>>) -> bool {
        let mut answered = false;
        for _ in 0..QUORUM_OUTPUTS_PER_DRAIN_MAX {
            let Some(output) = self.cluster_mut().quorum.poll_output() else {
                return answered;
            };
            match output {
                QuorumOutput::Flush {
                    paths,
                    log_end_offset,
                } => self.start_raft_flush(paths, log_end_offset),
                QuorumOutput::FlushSnapshot { path, snapshot_id } => {
                    self.start_snapshot_flush(path, snapshot_id)
                }
                QuorumOutput::Send { to, message } if message.is_request() => {
                    self.send_raft_request(to, message)
                }
                QuorumOutput::Send { to, message } => match &inbound {
                    Some(i)
                        if !answered
                            && i.from == to
                            && response_matches(i.body, &message, i.correlation_id) =>
                    {
                        answered = true;
                        let slot = i.slot;
                        self.responder
                            .complete(slot, into_response(message), &mut self.outputs);
                    }
                    _ => self.answer_later(to, message),
                },
            }
        }
        panic!("the quorum produced more than {QUORUM_OUTPUTS_PER_DRAIN_MAX} outputs at once");
    }

    fn answer_later(&mut self, to: PeerId, message: RaftMessage) {
        let RaftMessage::FetchResponse { correlation_id, .. } = &message else {
            tracing::debug!(
                to,
                message = message.name(),
                "answer with no request waiting; dropped"
            );
            return;
        };
        let Some((slot, _)) = self
            .cluster_mut()
            .raft
            .parked
            .remove(&(to, *correlation_id))
        else {
            tracing::debug!(
                to,
                correlation_id,
                "fetch answer with no request waiting; dropped"
            );
            return;
        };
        tracing::trace!(to, correlation_id, "parked quorum fetch answered");
        self.responder
            .complete(slot, into_response(message), &mut self.outputs);
    }

    fn send_raft_request(&mut self, to: PeerId, message: RaftMessage) {
        let (body, quorum_correlation_id) = match message {
            RaftMessage::Vote(r) => (RequestKind::Vote(r), None),
            RaftMessage::BeginQuorumEpoch(r) => (RequestKind::BeginQuorumEpoch(r), None),
            RaftMessage::EndQuorumEpoch(r) => (RequestKind::EndQuorumEpoch(r), None),
            RaftMessage::Fetch {
                correlation_id,
                mut request,
            } => {
                name_metadata_topics_in_request(&mut request);
                (RequestKind::Fetch(request), Some(correlation_id))
            }
            RaftMessage::FetchSnapshot {
                correlation_id,
                request,
            } => (RequestKind::FetchSnapshot(request), Some(correlation_id)),
            answer => unreachable!("{} is not a request", answer.name()),
        };
        let timeout_ms = self.cluster().quorum.config().request_timeout_ms;
        let purpose = Purpose::Raft {
            quorum_correlation_id,
        };
        self.send_peer_request(to, body, purpose, deadline(self.now, timeout_ms));
    }

    fn answer_parked_raft_fetch(&mut self, key: (PeerId, i32), code: i16) {
        if let Some((slot, _)) = self.cluster_mut().raft.parked.remove(&key) {
            let mut response = fetch_error_response(code);
            name_metadata_topics_in_response(&mut response);
            self.responder
                .complete(slot, ResponseKind::Fetch(response), &mut self.outputs);
        }
    }

    /// Answers parked quorum fetches the quorum forgot; retries a failed
    /// metadata-log sync.
    pub(in crate::node) fn raft_timeouts(&mut self) {
        let now = self.now;
        let expired: Vec<(PeerId, i32)> = self
            .cluster()
            .raft
            .parked
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(key, _)| *key)
            .collect();
        for key in expired {
            tracing::debug!(?key, "parked quorum fetch expired unanswered");
            self.answer_parked_raft_fetch(key, ResponseError::RequestTimedOut.code());
        }
        let retry = self
            .cluster()
            .raft
            .flush
            .as_ref()
            .is_some_and(|f| f.retry_at.is_some_and(|at| at <= now));
        let snapshot_retry = self
            .cluster()
            .raft
            .snapshot_flush
            .as_ref()
            .is_some_and(|f| f.retry_at.is_some_and(|at| at <= now));
        if snapshot_retry {
            let flush = self
                .cluster_mut()
                .raft
                .snapshot_flush
                .as_mut()
                .expect("checked");
            flush.retry_at = None;
            let output = Output::Flush {
                flush_id: flush.id,
                paths: vec![flush.path.clone()],
            };
            self.outputs.push_back(output);
        }
        if retry {
            let Node {
                cluster, storage, ..
            } = self;
            let flush = cluster
                .as_mut()
                .expect("cluster node")
                .raft
                .flush
                .as_mut()
                .expect("checked");
            flush.retry_at = None;
            // A segment deleted since (the log start moved up to a
            // snapshot) needs no sync, and syncing it would fail forever
            // (found by the simulator: a restarted node never fetched again).
            flush.paths.retain(|path| storage.exists(path));
            let output = Output::Flush {
                flush_id: flush.id,
                paths: flush.paths.clone(),
            };
            self.outputs.push_back(output);
        }
        let Node {
            cluster, storage, ..
        } = self;
        let cluster = cluster.as_mut().expect("cluster node");
        if cluster.quorum.poll_timeout().is_some_and(|at| at <= now) {
            if let Err(e) = cluster.quorum.handle_timeout(storage, now) {
                tracing::error!(error = %e, "quorum timer failed");
            }
        }
        self.drain_quorum(None);
    }

    fn start_raft_flush(&mut self, paths: Vec<String>, log_end_offset: i64) {
        assert!(
            self.cluster().raft.flush.is_none(),
            "the quorum keeps one flush in flight"
        );
        let id = self.flusher.allocate_id();
        self.outputs.push_back(Output::Flush {
            flush_id: id,
            paths: paths.clone(),
        });
        self.cluster_mut().raft.flush = Some(RaftFlush {
            id,
            paths,
            log_end_offset,
            retry_at: None,
        });
    }

    fn start_snapshot_flush(&mut self, path: String, snapshot_id: SnapshotId) {
        assert!(
            self.cluster().raft.snapshot_flush.is_none(),
            "the quorum keeps one snapshot sync in flight"
        );
        let id = self.flusher.allocate_id();
        self.outputs.push_back(Output::Flush {
            flush_id: id,
            paths: vec![path.clone()],
        });
        self.cluster_mut().raft.snapshot_flush = Some(SnapshotFlush {
            id,
            path,
            snapshot_id,
            retry_at: None,
        });
    }

    pub(in crate::node) fn handle_raft_flush_completed(&mut self, flush_id: FlushId) {
        let is_snapshot = self
            .cluster()
            .raft
            .snapshot_flush
            .as_ref()
            .is_some_and(|f| f.id == flush_id);
        if is_snapshot {
            let flush = self
                .cluster_mut()
                .raft
                .snapshot_flush
                .take()
                .expect("checked");
            let now = self.now;
            let Node {
                cluster, storage, ..
            } = self;
            let cluster = cluster.as_mut().expect("cluster node");
            if let Err(e) = cluster
                .quorum
                .handle_snapshot_flushed(storage, now, flush.snapshot_id)
            {
                tracing::error!(error = %e, "installing a synced metadata snapshot failed");
            }
            self.drain_quorum(None);
            return;
        }
        let flush = self.cluster_mut().raft.flush.take().expect("owned flush");
        let now = self.now;
        let Node {
            cluster, storage, ..
        } = self;
        let cluster = cluster.as_mut().expect("cluster node");
        if let Err(e) = cluster
            .quorum
            .handle_flushed(storage, now, flush.log_end_offset)
        {
            tracing::error!(error = %e, "answering metadata fetches after a sync failed");
        }
        self.drain_quorum(None);
    }

    pub(in crate::node) fn handle_raft_flush_failed(&mut self, flush_id: FlushId) {
        let retry_at = self.now + RAFT_FLUSH_RETRY_BACKOFF;
        if let Some(flush) = self.cluster_mut().raft.snapshot_flush.as_mut() {
            if flush.id == flush_id {
                tracing::error!(flush_id, "metadata snapshot sync failed; retrying");
                flush.retry_at = Some(retry_at);
                return;
            }
        }
        let flush = self.cluster_mut().raft.flush.as_mut().expect("owned flush");
        tracing::error!(flush_id = flush.id, "metadata log sync failed; retrying");
        flush.retry_at = Some(retry_at);
    }
}
