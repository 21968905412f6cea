//! Partition replication between brokers over Kafka's Fetch: the follower's
//! fetcher (one fetch in flight per leader, covering every partition this
//! node follows there) and the leader's answer to a replica fetch.
//!
//! With `flush_before_ack` acks=all promises that the records survive the
//! loss of every replica but one, power cuts included: the leader's high
//! watermark counts a follower's log only as far as the follower has synced
//! it. A follower says how far in each fetch (a tagged field of Kafka's
//! FetchPartition, `SYNCED_OFFSET_TAG`, sent only when it is behind the
//! fetch offset; without it the fetch offset counts, as in Kafka). It
//! fetches again once what it appended is synced, or at once, while it
//! syncs, when the last answer was full (the leader has more): the
//! transfer of the next records then overlaps the sync of the last ones,
//! which a replicated acks=all stream waited for in turn.

use super::super::topics::{Partition, Replica, TouchReader};
use super::super::Node;
use super::broker::{leader_end_offset, sync_high_watermark};
use super::controller_host::ControllerCall;
use super::follow_index::FollowIndex;
use super::peers::{deadline, Purpose};
use crate::batch::BatchIter;
use crate::node::handlers::fetch::{empty_partition_data, FetchRead};
use crate::partition::{
    FetchDecision, FetchResponseFields, FollowerOutcome, IsrAnswer, ReplicaFetch,
};
use crate::storage::Storage;
use crate::time::Instant;
use bytes::Bytes;
use kafka_protocol::messages::alter_partition_request::{
    BrokerState, PartitionData as AlterPartitionData, TopicData,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use uuid::Uuid;

/// Wait before fetching again from a leader that answered with an error or
/// could not be reached.
const FETCH_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// The FetchPartition tagged field that carries the follower's synced log
/// end (an Int64), seedlog's own: far above Kafka's tags (0 and 1 in
/// Fetch v18), which Kafka brokers skip as unknown.
pub const SYNCED_OFFSET_TAG: i32 = 0x5eed;

/// An answer this full (of `replica_fetch_max_bytes`, in one partition)
/// says the leader has more: fetch again without waiting for the sync.
const FULL_ANSWER_PERCENT: usize = 50;

/// Full answers a follower appends from one leader between two finished
/// flushes, at most; then it waits for the sync. A follower whose disk stalls thus
/// stops fetching, falls behind and leaves the ISR (as it did before it
/// streamed), instead of staying in it, caught up by its fetch offset,
/// with the high watermark stuck at its synced end.
pub const STREAM_AHEAD_MAX: u32 = 4;

#[derive(Debug)]
pub struct ReplicaFetcher {
    /// Leaders with a fetch in flight.
    in_flight: BTreeSet<i32>,
    /// Leaders to leave alone until then.
    backoff_until: BTreeMap<i32, Instant>,
    /// Something a fetch waits on changed (an answer, a flush, a role):
    /// look again. Without it the fetcher would look after every client
    /// request.
    wake: bool,
    /// The partitions followed, by leader.
    follows: FollowIndex,
    /// Reused by `refresh_follow_index`.
    touched_buf: Vec<i32>,
    /// Leaders whose last answer was full (`FULL_ANSWER_PERCENT`), with
    /// the full answers since the last flush finished: fetched from again
    /// at once, synced or not (up to `STREAM_AHEAD_MAX`), with no wait at
    /// the leader, so that a sync finished meanwhile is reported by the
    /// fetch after.
    streaming: BTreeMap<i32, u32>,
}

impl Default for ReplicaFetcher {
    fn default() -> ReplicaFetcher {
        ReplicaFetcher {
            in_flight: BTreeSet::new(),
            backoff_until: BTreeMap::new(),
            wake: true,
            follows: FollowIndex::default(),
            touched_buf: Vec::new(),
            streaming: BTreeMap::new(),
        }
    }
}

impl ReplicaFetcher {
    pub fn next_deadline(&self) -> Option<Instant> {
        self.backoff_until.values().min().copied()
    }

    pub fn fetch_lost(&mut self, leader: i32, now: Instant) {
        self.in_flight.remove(&leader);
        self.streaming.remove(&leader);
        self.backoff_until.insert(leader, now + FETCH_ERROR_BACKOFF);
        self.wake = true;
    }

    /// A flush finished: what was appended before it began is synced, so
    /// the answers streamed ahead count afresh (a disk whose syncs do not
    /// finish stops the streaming after `STREAM_AHEAD_MAX`).
    pub fn sync_done(&mut self) {
        for ahead in self.streaming.values_mut() {
            *ahead = 0;
        }
        self.wake = true;
    }

    pub fn wake(&mut self) {
        self.wake = true;
    }
}

/// Whether a Fetch comes from a follower broker rather than a consumer.
pub fn is_replica_fetch(request: &FetchRequest) -> bool {
    request.replica_state.replica_id.0 >= 0 || request.replica_id.0 >= 0
}

fn replica_id_of(request: &FetchRequest) -> i32 {
    request.replica_state.replica_id.0.max(request.replica_id.0)
}

/// The synced end a follower's fetch names (`SYNCED_OFFSET_TAG`), at most
/// its fetch offset; the fetch offset when it names none, or not as an
/// Int64 (a follower that says nothing promises what Kafka's does).
fn synced_offset_of(fp: &FetchPartition) -> i64 {
    let named = fp
        .unknown_tagged_fields
        .get(&SYNCED_OFFSET_TAG)
        .and_then(|value| <[u8; 8]>::try_from(value.as_ref()).ok())
        .map(i64::from_be_bytes);
    named.map_or(fp.fetch_offset, |synced| synced.min(fp.fetch_offset))
}

/// `fp` naming `synced_offset` (see `synced_offset_of`).
fn with_synced_offset(mut fp: FetchPartition, synced_offset: i64) -> FetchPartition {
    let value = Bytes::copy_from_slice(&synced_offset.to_be_bytes());
    fp.unknown_tagged_fields.insert(SYNCED_OFFSET_TAG, value);
    fp
}

/// What the leader needs of one partition of a replica fetch.
pub fn replica_fetch_of(request: &FetchRequest, fp: &FetchPartition) -> ReplicaFetch {
    ReplicaFetch {
        replica_id: replica_id_of(request),
        current_leader_epoch: fp.current_leader_epoch,
        fetch_offset: fp.fetch_offset,
        synced_offset: synced_offset_of(fp),
        last_fetched_epoch: fp.last_fetched_epoch,
        replica_epoch: request.replica_state.replica_epoch,
    }
}

impl<S: Storage> Node<S> {
    /// Sends a fetch to every leader this node follows partitions of, when
    /// none is in flight and what was fetched before is synced.
    pub(in crate::node) fn drive_fetcher(&mut self) {
        let now = self.now;
        // Expired backoffs go first, whatever happens next: a deadline
        // left in the past would wake the node again at once, for ever.
        let fetcher = &mut self.cluster_mut().fetcher;
        let backoff_before = fetcher.backoff_until.len();
        fetcher.backoff_until.retain(|_, until| *until > now);
        if fetcher.backoff_until.len() != backoff_before {
            fetcher.wake = true;
        }
        let Some(broker_epoch) = self.cluster().broker.epoch() else {
            return;
        };
        let fetcher = &mut self.cluster_mut().fetcher;
        if !fetcher.wake {
            return;
        }
        fetcher.wake = false;
        self.refresh_follow_index();
        let flush_before_ack = self.config.flush_before_ack;
        // First the leaders a fetch goes to now: not one with unsynced data
        // here (unless it streams), a fetch in flight or a backoff, nor
        // this node.
        let fetcher = &self.cluster().fetcher;
        let unsynced = |name: &str, index: i32| {
            self.topics
                .partition(name, index)
                .is_some_and(|p| p.log.synced_offset() < p.log.log_end_offset())
        };
        // Both lists ascend: the leaders with a fetch in flight are passed
        // by rather than searched for (a node of a large cluster follows
        // ~100 leaders, nearly all with a fetch in flight, after every
        // answer).
        let mut in_flight = fetcher.in_flight.iter().copied().peekable();
        let leaders: Vec<i32> = fetcher
            .follows
            .leaders()
            .filter(|&leader| {
                while in_flight.next_if(|l| *l < leader).is_some() {}
                let busy = in_flight.next_if_eq(&leader).is_some();
                debug_assert_eq!(busy, fetcher.in_flight.contains(&leader));
                !(busy
                    || fetcher.backoff_until.contains_key(&leader)
                    || leader == self.config.node_id
                    || (flush_before_ack
                        && fetcher
                            .streaming
                            .get(&leader)
                            .is_none_or(|ahead| *ahead >= STREAM_AHEAD_MAX)
                        && fetcher
                            .follows
                            .partitions_of(leader)
                            .any(|(name, index)| unsynced(name, index))))
            })
            .collect();
        if leaders.is_empty() {
            return;
        }
        let requests: Vec<(i32, FetchRequest)> = leaders
            .into_iter()
            .map(|leader| (leader, self.replica_fetch_request(leader, broker_epoch)))
            .collect();
        for (leader, request) in requests {
            let at = deadline(now, self.cluster().config.request_timeout_ms);
            if self.send_peer_request(
                leader,
                RequestKind::Fetch(request),
                Purpose::ReplicaFetch,
                at,
            ) {
                self.cluster_mut().fetcher.in_flight.insert(leader);
            }
        }
    }

    /// Brings the follow index up to date: the partitions touched since
    /// the fetcher last looked are the only ones whose role may differ.
    fn refresh_follow_index(&mut self) {
        let everything = self.topics.take_all_touched(TouchReader::Fetcher);
        let fetcher = &mut self.cluster.as_mut().expect("a cluster node").fetcher;
        if everything {
            fetcher.follows.clear();
        }
        let mut listed = std::mem::take(&mut fetcher.touched_buf);
        for topic in self.topics.iter_mut() {
            if topic.take_touched_sorted(TouchReader::Fetcher, everything, &mut listed) {
                fetcher.follows.forget_topic(&topic.name);
            }
            for &index in &listed {
                let leader = match topic.partition(index).map(|p| &p.replica) {
                    Some(Replica::Follower(f)) => Some(f.leader_id()),
                    _ => None,
                };
                fetcher.follows.set(&topic.name, index, leader);
            }
        }
        listed.clear();
        fetcher.touched_buf = listed;
        debug_assert!(self.follow_index_matches_a_walk());
    }

    fn follow_index_matches_a_walk(&self) -> bool {
        let walked: Vec<(&str, i32, i32)> = self
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions()
                    .iter()
                    .filter_map(|(&index, p)| match &p.replica {
                        Replica::Follower(f) => Some((t.name.as_str(), index, f.leader_id())),
                        _ => None,
                    })
            })
            .collect();
        let indexed: Vec<(&str, i32, i32)> = self.cluster().fetcher.follows.entries().collect();
        walked == indexed
    }

    /// The fetch to send `leader`: every partition followed there, each
    /// naming its synced end when acks wait for fsync.
    fn replica_fetch_request(&self, leader: i32, broker_epoch: i64) -> FetchRequest {
        let config = &self.cluster().config;
        let flush_before_ack = self.config.flush_before_ack;
        let mut topics: BTreeMap<Uuid, Vec<FetchPartition>> = BTreeMap::new();
        let mut syncing = false;
        for (name, index) in self.cluster().fetcher.follows.partitions_of(leader) {
            let topic = self.topics.get(name).expect("indexed topics are hosted");
            let p = topic
                .partition(index)
                .expect("indexed partitions are hosted");
            let Replica::Follower(f) = &p.replica else {
                unreachable!("{name}-{index} is indexed as a follower");
            };
            debug_assert_eq!(f.leader_id(), leader);
            let fetch = f.fetch_request(&p.log);
            let mut fp = FetchPartition::default()
                .with_partition(index)
                .with_current_leader_epoch(fetch.current_leader_epoch)
                .with_fetch_offset(fetch.fetch_offset)
                .with_last_fetched_epoch(fetch.last_fetched_epoch)
                .with_log_start_offset(p.log.log_start_offset())
                .with_partition_max_bytes(config.replica_fetch_max_bytes);
            assert!(
                fetch.synced_offset <= fetch.fetch_offset,
                "{name}-{index}: synced beyond its log end"
            );
            // Named only when it says more than the fetch offset (which a
            // leader takes when the tag is absent): a follower fetches
            // again once it synced, so most fetches carry no tag, and the
            // tag's map entry and bytes per partition per fetch, built and
            // read, were ~3% of a 100-broker simulation.
            if flush_before_ack && fetch.synced_offset < fetch.fetch_offset {
                syncing = true;
                fp = with_synced_offset(fp, fetch.synced_offset);
            }
            topics.entry(topic.id).or_default().push(fp);
        }
        // A fetch sent while syncing must not wait at the leader: the sync
        // it cannot report would wait with it.
        let wait_ms = if syncing {
            0
        } else {
            config.replica_fetch_wait_max_ms
        };
        FetchRequest::default()
            .with_replica_state(
                ReplicaState::default()
                    .with_replica_id(self.config.node_id.into())
                    .with_replica_epoch(broker_epoch),
            )
            .with_max_wait_ms(i32::try_from(wait_ms).unwrap_or(i32::MAX))
            .with_min_bytes(1)
            .with_max_bytes(i32::MAX)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(id, partitions)| {
                        FetchTopic::default()
                            .with_topic_id(id)
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
    }

    /// The leader's answer to our replica fetch.
    pub(in crate::node) fn handle_replica_fetch_response(&mut self, from: i32, body: ResponseKind) {
        let now = self.now;
        self.cluster_mut().fetcher.in_flight.remove(&from);
        self.cluster_mut().fetcher.wake();
        let ResponseKind::Fetch(response) = body else {
            self.cluster_mut().fetcher.fetch_lost(from, now);
            return;
        };
        let mut any_error = response.error_code != 0;
        for topic in &response.responses {
            let Some(name) = self.topics.name_of(&topic.topic_id).map(str::to_string) else {
                continue;
            };
            for pd in &topic.partitions {
                any_error |= !self.apply_replica_data(from, &name, pd);
            }
        }
        if any_error {
            self.cluster_mut().fetcher.fetch_lost(from, now);
            return;
        }
        let full = self.config.flush_before_ack && self.answer_is_full(&response);
        let streaming = &mut self.cluster_mut().fetcher.streaming;
        if full {
            *streaming.entry(from).or_default() += 1;
        } else {
            streaming.remove(&from);
        }
    }

    /// Whether one partition of the answer filled `FULL_ANSWER_PERCENT` of
    /// what was asked: the leader likely has more.
    fn answer_is_full(&self, response: &FetchResponse) -> bool {
        let max_bytes = usize::try_from(self.cluster().config.replica_fetch_max_bytes)
            .expect("validated positive");
        response
            .responses
            .iter()
            .flat_map(|topic| &topic.partitions)
            .filter_map(|pd| pd.records.as_ref())
            .any(|records| records.len() * 100 >= max_bytes * FULL_ANSWER_PERCENT)
    }

    /// Applies one partition of a replica fetch answer. Returns false on an
    /// error (the fetcher backs off).
    fn apply_replica_data(&mut self, from: i32, name: &str, pd: &PartitionData) -> bool {
        let now = self.now;
        let flush_before_ack = self.config.flush_before_ack;
        let Some(p) = self.topics.partition_mut(name, pd.partition_index) else {
            return true;
        };
        let Replica::Follower(follower) = &mut p.replica else {
            return true;
        };
        if follower.leader_id() != from {
            return true; // an answer from a leader we no longer follow
        }
        let diverging = (pd.diverging_epoch.epoch >= 0)
            .then_some((pd.diverging_epoch.epoch, pd.diverging_epoch.end_offset));
        let records = pd.records.clone().unwrap_or_default();
        let fields = FetchResponseFields {
            error_code: pd.error_code,
            high_watermark: pd.high_watermark,
            diverging,
            records: &records,
        };
        let outcome = follower.handle_fetch_response(&mut p.log, &mut self.storage, now, &fields);
        let ok = match outcome {
            Ok(FollowerOutcome::Appended { batches }) => {
                if batches > 0 {
                    for (_, header) in BatchIter::new(&records) {
                        p.producers.record(&header);
                    }
                }
                true
            }
            Ok(FollowerOutcome::Truncated { log_end_offset }) => {
                tracing::info!(
                    topic = name,
                    partition = pd.partition_index,
                    log_end_offset,
                    "follower truncated a diverging tail"
                );
                self.flusher
                    .note_truncation(name, pd.partition_index, log_end_offset);
                p.producers = Default::default();
                let producers = &mut p.producers;
                if let Err(e) = p
                    .log
                    .for_each_batch_header(&mut self.storage, |h| producers.record(h))
                {
                    tracing::error!(error = %e, "rebuilding producer state failed");
                }
                true
            }
            Ok(FollowerOutcome::Error(code)) => {
                tracing::debug!(
                    topic = name,
                    partition = pd.partition_index,
                    code,
                    "leader refused a replica fetch"
                );
                false
            }
            Err(e) => {
                tracing::error!(topic = name, partition = pd.partition_index, error = %e, "follower append failed");
                false
            }
        };
        // DeleteRecords and retention on the leader move the log start; a
        // follower follows, so a later leader does not bring records back.
        let leader_log_start = pd.log_start_offset;
        if ok
            && leader_log_start > p.log.log_start_offset()
            && leader_log_start <= p.log.log_end_offset()
        {
            if let Err(e) = p
                .log
                .delete_records_before(&mut self.storage, leader_log_start)
            {
                tracing::warn!(topic = name, error = %e, "following the leader's log start failed");
            }
        }
        sync_high_watermark(p, flush_before_ack);
        ok
    }

    /// The leader's side of a replica fetch: whole batches up to its log end,
    /// its high watermark, or where the follower diverges.
    pub(in crate::node) fn read_replica_fetch(
        &mut self,
        request: &FetchRequest,
        read: FetchRead,
    ) -> (FetchResponse, usize, bool) {
        let mut response = FetchResponse::default();
        let mut bytes = 0usize;
        let mut must_answer = false;
        // Sized once: growing these was a percent of a run.
        response.responses.reserve_exact(request.topics.len());
        for topic in &request.topics {
            let mut topic_response =
                FetchableTopicResponse::default().with_topic_id(topic.topic_id);
            topic_response
                .partitions
                .reserve_exact(topic.partitions.len());
            let name = self.topics.name_of(&topic.topic_id).map(str::to_string);
            for fp in &topic.partitions {
                let mut pd = empty_partition_data(fp.partition);
                match &name {
                    None => pd.error_code = ResponseError::UnknownTopicId.code(),
                    Some(name) => {
                        let fetch = replica_fetch_of(request, fp);
                        self.answer_replica_partition(
                            name,
                            fp.partition,
                            &fetch,
                            fp.partition_max_bytes,
                            read,
                            &mut pd,
                        );
                    }
                }
                bytes += pd.records.as_ref().map_or(0, Bytes::len);
                must_answer |= pd.error_code != 0 || pd.diverging_epoch.epoch >= 0;
                topic_response.partitions.push(pd);
            }
            response.responses.push(topic_response);
        }
        (response, bytes, must_answer)
    }

    fn answer_replica_partition(
        &mut self,
        name: &str,
        index: i32,
        fetch: &ReplicaFetch,
        max_bytes: i32,
        read: FetchRead,
        pd: &mut PartitionData,
    ) {
        let now = self.now;
        let flush_before_ack = self.config.flush_before_ack;
        let node_id = self.config.node_id;
        if read == FetchRead::Completion {
            // Records nothing about the follower: read only, so a parked
            // fetch's completion touches nothing (`Topic::touched`).
            let p = self.topics.partition(name, index);
            let Some((p, Replica::Leader(leader))) = p.map(|p| (p, &p.replica)) else {
                pd.error_code = ResponseError::NotLeaderOrFollower.code();
                return;
            };
            let decision = leader.complete_parked_fetch(&p.log, fetch);
            fill_replica_partition(p, decision, &mut self.storage, node_id, max_bytes, pd);
            return;
        }
        let Some(p) = self.topics.partition_mut(name, index) else {
            pd.error_code = ResponseError::NotLeaderOrFollower.code();
            return;
        };
        let Replica::Leader(leader) = &mut p.replica else {
            pd.error_code = ResponseError::NotLeaderOrFollower.code();
            return;
        };
        let leader_end = leader_end_offset(&p.log, flush_before_ack);
        // A leader that acks from the page cache counts followers' logs
        // the same way, synced or not (as Kafka does).
        let fetch = ReplicaFetch {
            synced_offset: if flush_before_ack {
                fetch.synced_offset
            } else {
                fetch.fetch_offset
            },
            ..*fetch
        };
        let decision = leader.handle_fetch(&p.log, leader_end, now, &fetch);
        fill_replica_partition(p, decision, &mut self.storage, node_id, max_bytes, pd);
        if sync_high_watermark(p, flush_before_ack) {
            self.high_watermark_moved = true;
        }
        // The fetch may have decided an ISR change.
        self.cluster_mut().isr_dirty = true;
    }

    /// ISR changes the leaders decided, sent to the controller; the lag
    /// check when due.
    pub(in crate::node) fn drive_isr(&mut self) {
        let now = self.now;
        let check_lag = now >= self.cluster().isr_check_at;
        if !check_lag && !self.cluster().isr_dirty {
            return;
        }
        self.cluster_mut().isr_dirty = false;
        if check_lag {
            let interval = Duration::from_millis(self.cluster().config.replica_lag_time_max_ms / 2);
            self.cluster_mut().isr_check_at = now + interval.max(Duration::from_millis(1));
        }
        let Some(broker_epoch) = self.cluster().broker.epoch() else {
            return;
        };
        // Looked at first, changed only where there is something to do (a
        // change is a touch, `Topic::touched`): between lag checks only the
        // partitions touched since the last look, as an ISR change is
        // decided by a change to the partition (a fetch, an answer). This
        // runs after every replica fetch, and a node of a large cluster
        // leads a hundred partitions.
        let everything = check_lag || self.topics.take_all_touched(TouchReader::Isr);
        let mut listed = std::mem::take(&mut self.cluster_mut().isr_listed);
        let mut due = Vec::new();
        for topic in self.topics.iter_mut() {
            topic.take_touched_sorted(TouchReader::Isr, everything, &mut listed);
            for &index in &listed {
                let Some(Replica::Leader(leader)) = topic.partition(index).map(|p| &p.replica)
                else {
                    continue;
                };
                if leader.isr_change_ready() || (check_lag && leader.shrink_due(now)) {
                    due.push((topic.name.clone(), index));
                }
            }
        }
        debug_assert!(
            self.topics
                .iter()
                .all(|t| t.partitions().iter().all(|(i, p)| {
                    !matches!(&p.replica, Replica::Leader(l) if l.isr_change_ready())
                        || due.iter().any(|(name, x)| *name == t.name && x == i)
                })),
            "an ISR change drive_isr did not look at"
        );
        listed.clear();
        self.cluster_mut().isr_listed = listed;
        let mut changes = Vec::new();
        for (name, index) in due {
            let topic = self.topics.get_mut(&name).expect("listed above");
            let topic_id = topic.id;
            let p = topic.partition_mut(index).expect("listed above");
            let Replica::Leader(leader) = &mut p.replica else {
                unreachable!("listed above as a leader");
            };
            if check_lag {
                leader.maybe_shrink_isr(now);
            }
            if let Some(change) = leader.poll_isr_change() {
                // KIP-903: each follower's broker epoch as its last fetch
                // carried it, so a member that restarted since (and may
                // have lost what it reported) is refused.
                let fetched: BTreeMap<i32, i64> = change
                    .new_isr
                    .iter()
                    .filter_map(|id| Some((*id, leader.follower(*id)?.broker_epoch)))
                    .filter(|(_, epoch)| *epoch >= 0)
                    .collect();
                changes.push((name, topic_id, index, change, fetched));
            }
        }
        for (name, topic_id, index, change, fetched) in changes {
            let brokers = &self.cluster().image.brokers;
            let new_isr: Vec<BrokerState> = change
                .new_isr
                .iter()
                .map(|id| {
                    let epoch = match fetched.get(id) {
                        Some(epoch) => *epoch,
                        None if *id == self.config.node_id => broker_epoch,
                        // Not fetched since this leadership began: the
                        // registration this leader knows.
                        None => brokers.get(id).map_or(-1, |b| b.epoch),
                    };
                    BrokerState::default()
                        .with_broker_id((*id).into())
                        .with_broker_epoch(epoch)
                })
                .collect();
            let request = AlterPartitionRequest::default()
                .with_broker_id(self.config.node_id.into())
                .with_broker_epoch(broker_epoch)
                .with_topics(vec![TopicData::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![AlterPartitionData::default()
                        .with_partition_index(index)
                        .with_leader_epoch(change.leader_epoch)
                        .with_new_isr_with_epochs(new_isr)
                        .with_partition_epoch(change.partition_epoch)])]);
            let call = ControllerCall::AlterPartition {
                topic: name.clone(),
                partition: index,
                leader_epoch: change.leader_epoch,
                partition_epoch: change.partition_epoch,
            };
            if !self.send_to_controller(call, RequestKind::AlterPartition(request)) {
                let sent_in = (change.leader_epoch, change.partition_epoch);
                self.handle_alter_partition_answer(&name, index, sent_in, None);
            }
        }
    }

    /// An accepted AlterPartition arrives through the committed metadata;
    /// one refused as not applied is forgotten (the leader proposes again);
    /// a lost one is sent again (see `LeaderReplica::handle_isr_change_answer`).
    pub(in crate::node) fn handle_alter_partition_answer(
        &mut self,
        topic: &str,
        partition: i32,
        (leader_epoch, partition_epoch): (i32, i32),
        answer: Option<ResponseKind>,
    ) {
        let outcome = isr_answer(answer.as_ref());
        if outcome != IsrAnswer::Applied {
            tracing::debug!(
                topic,
                partition,
                ?outcome,
                ?answer,
                "AlterPartition not accepted"
            );
        }
        if let Some(p) = self.topics.partition_mut(topic, partition) {
            if let Replica::Leader(leader) = &mut p.replica {
                leader.handle_isr_change_answer(leader_epoch, partition_epoch, outcome);
            }
        }
        self.cluster_mut().isr_dirty = true;
    }
}

/// Sorts an AlterPartition answer (`None`: lost, timed out, or never sent)
/// as Kafka's `Partition.handleAlterPartitionError` does; a top-level
/// error (NOT_CONTROLLER, STALE_BROKER_EPOCH) is retried, as Kafka's
/// AlterPartitionManager does.
fn isr_answer(answer: Option<&ResponseKind>) -> IsrAnswer {
    let Some(ResponseKind::AlterPartition(r)) = answer else {
        return IsrAnswer::Unknown;
    };
    if r.error_code != 0 {
        return IsrAnswer::Unknown;
    }
    let Some(p) = r.topics.iter().flat_map(|t| t.partitions.iter()).next() else {
        return IsrAnswer::Unknown;
    };
    match ResponseError::try_from_code(p.error_code) {
        None => IsrAnswer::Applied,
        Some(ResponseError::OperationNotAttempted | ResponseError::IneligibleReplica) => {
            IsrAnswer::NotApplied
        }
        Some(
            ResponseError::InvalidUpdateVersion
            | ResponseError::FencedLeaderEpoch
            | ResponseError::UnknownTopicOrPartition
            | ResponseError::UnknownTopicId
            | ResponseError::InvalidRequest
            | ResponseError::NewLeaderElected,
        ) => IsrAnswer::AwaitMetadata,
        Some(_) => IsrAnswer::Unknown,
    }
}

/// What a follower's fetch of `p` (led here) gets, once its leader decided.
fn fill_replica_partition<S: Storage>(
    p: &Partition,
    decision: FetchDecision,
    storage: &mut S,
    node_id: i32,
    max_bytes: i32,
    pd: &mut PartitionData,
) {
    let Replica::Leader(leader) = &p.replica else {
        unreachable!("a replica fetch is answered by its leader");
    };
    pd.log_start_offset = p.log.log_start_offset();
    pd.current_leader.leader_id = node_id.into();
    pd.current_leader.leader_epoch = leader.leader_epoch();
    match decision {
        FetchDecision::Error(code) => pd.error_code = code,
        FetchDecision::Diverging { epoch, end_offset } => {
            pd.high_watermark = leader.high_watermark();
            pd.diverging_epoch = EpochEndOffset::default()
                .with_epoch(epoch)
                .with_end_offset(end_offset);
        }
        FetchDecision::Read {
            fetch_offset,
            high_watermark,
        } => {
            pd.high_watermark = high_watermark;
            pd.last_stable_offset = high_watermark;
            let limit = max_bytes.max(1) as usize;
            match p.log.read(storage, fetch_offset, limit, i64::MAX) {
                Ok(read) => pd.records = Some(read.records),
                Err(e) => pd.error_code = super::super::handlers::produce::log_error_code(&e),
            }
        }
    }
}
