//! Fetch: whole batches up to the high watermark, with Kafka's long poll
//! (`max_wait_ms`, `min_bytes`) run on the node's timers.

use super::super::responder::Slot;
use super::super::topics::Partition;
use super::super::Node;
use super::check_leader_epoch;
use super::delayed_fetch::consumer_partition_may_complete;
use super::produce::log_error_code;
use crate::node::cluster::replication::is_replica_fetch;
use crate::node::fetch_sessions::FetchContext;
use crate::storage::Storage;
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind};
use kafka_protocol::ResponseError;
use std::time::Duration;

/// Fetch v13 and later name topics by id.
pub(crate) const FETCH_TOPIC_ID_VERSION_MIN: i16 = 13;

/// A partition's answer before anything is known: no offsets, no records,
/// no preferred read replica.
pub(crate) fn empty_partition_data(partition: i32) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica((-1).into())
        .with_records(Some(Bytes::new()))
}

/// Who reads a fetch: its arrival, which also records a follower's
/// progress, or its completion after it was parked, which only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchRead {
    Arrival,
    Completion,
}

pub(crate) struct FetchOutcome {
    pub(crate) response: FetchResponse,
    pub(crate) bytes: usize,
    pub(crate) has_error: bool,
    /// An incremental fetch's partitions left out of `response`, by
    /// position in its request, because nothing about them changed since
    /// the session last answered them: their answer would be dropped.
    /// Empty for any other fetch.
    pub(crate) unread: Vec<bool>,
}

impl<S: Storage> Node<S> {
    pub(crate) fn handle_fetch(&mut self, slot: Slot, request: FetchRequest, version: i16) {
        // Followers fetch without sessions (the replica fetcher sends
        // epoch -1): the replica read answers by topic id whatever the
        // version, which a session by name could not follow. One asking
        // for a session is served without; one naming a session has none.
        let replica = self.cluster.is_some() && is_replica_fetch(&request);
        let context = if replica {
            if request.session_epoch > 0 {
                Err(ResponseError::FetchSessionIdNotFound)
            } else {
                Ok(FetchContext::Sessionless)
            }
        } else {
            self.fetch_sessions
                .handle_fetch(&request, version, self.now)
        };
        let context = match context {
            Ok(context) => context,
            Err(error) => {
                let response = FetchResponse::default().with_error_code(error.code());
                self.responder
                    .complete(slot, ResponseKind::Fetch(response), &mut self.outputs);
                return;
            }
        };
        // An incremental fetch reads its whole session.
        let request = match context {
            FetchContext::Incremental { id, .. } => {
                self.fetch_sessions.session_request(id, request)
            }
            _ => request,
        };
        let outcome = self.read_fetch(&request, version, context, FetchRead::Arrival);
        let min_bytes = request.min_bytes.max(1) as usize;
        let can_wait = request.max_wait_ms > 0
            && outcome.bytes < min_bytes
            && !outcome.has_error
            && self.delayed_fetches.len() < self.config.delayed_fetches_max;
        if can_wait {
            let deadline = self.now + Duration::from_millis(request.max_wait_ms as u64);
            self.delayed_fetches
                .push(super::delayed_fetch::DelayedFetch {
                    slot,
                    request,
                    version,
                    deadline,
                    context,
                });
        } else {
            self.answer_fetch(slot, context, &request, version, outcome);
        }
    }

    /// Sends what a fetch read, through its session (which keeps only
    /// what changed of an incremental fetch's answer).
    pub(crate) fn answer_fetch(
        &mut self,
        slot: Slot,
        context: FetchContext,
        request: &FetchRequest,
        version: i16,
        outcome: FetchOutcome,
    ) {
        let FetchOutcome {
            mut response,
            unread,
            ..
        } = outcome;
        self.fetch_sessions
            .answer(context, request, version, &mut response, &unread, self.now);
        self.responder
            .complete(slot, ResponseKind::Fetch(response), &mut self.outputs);
    }

    /// Reads what `request` asks (for an incremental fetch, its whole
    /// session: `context` says which). A session partition whose answer
    /// would be dropped as unchanged is not read at all: an idle consumer
    /// names every partition it has on this broker in every fetch.
    pub(crate) fn read_fetch(
        &mut self,
        request: &FetchRequest,
        version: i16,
        context: FetchContext,
        read: FetchRead,
    ) -> FetchOutcome {
        if self.cluster.is_some() && is_replica_fetch(request) {
            let (response, bytes, must_answer) = self.read_replica_fetch(request, read);
            return FetchOutcome {
                response,
                bytes,
                has_error: must_answer,
                unread: Vec::new(),
            };
        }
        let mut answered = std::mem::take(&mut self.session_answered_buf);
        self.fetch_sessions.answered_offsets(context, &mut answered);
        let outcome = self.read_consumer_fetch(request, version, &answered);
        self.session_answered_buf = answered;
        outcome
    }

    /// `answered`: empty, or per partition of `request` in order what its
    /// session last answered (see `FetchSessions::answered_offsets`).
    fn read_consumer_fetch(
        &mut self,
        request: &FetchRequest,
        version: i16,
        answered: &[(i64, i64)],
    ) -> FetchOutcome {
        let mut remaining_bytes = if request.max_bytes > 0 {
            request.max_bytes as usize
        } else {
            usize::MAX
        };
        let mut outcome = FetchOutcome {
            response: FetchResponse::default(),
            bytes: 0,
            has_error: false,
            unread: Vec::new(),
        };
        if !answered.is_empty() {
            outcome.unread.resize(answered.len(), false);
        }
        let mut position = 0;
        outcome
            .response
            .responses
            .reserve_exact(request.topics.len());
        for topic in &request.topics {
            // Borrowed from the request when it names the topic: a parked
            // fetch is read again when it may complete.
            let name: Option<std::borrow::Cow<'_, str>> = if version >= FETCH_TOPIC_ID_VERSION_MIN {
                self.topics
                    .name_of(&topic.topic_id)
                    .map(|n| std::borrow::Cow::Owned(n.to_string()))
            } else {
                Some(std::borrow::Cow::Borrowed(topic.topic.0.as_str()))
            };
            let mut topic_response = FetchableTopicResponse::default();
            // Sized once: growing these was a percent of a run.
            topic_response
                .partitions
                .reserve_exact(topic.partitions.len());
            if version >= FETCH_TOPIC_ID_VERSION_MIN {
                topic_response.topic_id = topic.topic_id;
            } else {
                topic_response.topic = topic.topic.clone();
            }
            // The topic looked up once for all its partitions: most of a
            // session's are unchanged, and this is all that is read of them.
            if let (Some(t), Some(last)) = (
                name.as_deref().and_then(|n| self.topics.get(n)),
                answered.get(position..position + topic.partitions.len()),
            ) {
                let unread = &mut outcome.unread[position..position + topic.partitions.len()];
                for ((fp, last), unread) in topic.partitions.iter().zip(last).zip(unread) {
                    *unread = unchanged_since_answered(t.partition(fp.partition), fp, *last);
                }
            }
            for fp in &topic.partitions {
                let at = position;
                position += 1;
                if outcome.unread.get(at) == Some(&true) {
                    continue;
                }
                let mut pd = empty_partition_data(fp.partition);
                match &name {
                    None => pd.error_code = ResponseError::UnknownTopicId.code(),
                    Some(name) => {
                        let limit = (fp.partition_max_bytes.max(0) as usize).min(remaining_bytes);
                        let first_with_data = outcome.bytes == 0;
                        self.read_partition(
                            name,
                            fp.partition,
                            fp.current_leader_epoch,
                            fp.fetch_offset,
                            limit,
                            first_with_data,
                            &mut pd,
                        );
                    }
                }
                let size = pd.records.as_ref().map_or(0, Bytes::len);
                outcome.bytes += size;
                remaining_bytes = remaining_bytes.saturating_sub(size);
                outcome.has_error |= pd.error_code != 0;
                topic_response.partitions.push(pd);
            }
            outcome.response.responses.push(topic_response);
        }
        assert!(
            answered.is_empty() || position == answered.len(),
            "a session's answers follow its request"
        );
        outcome
    }

    /// Fills `pd` for one partition. Only the first partition with data may
    /// exceed `limit` (by one batch), as Kafka's `minOneMessage` allows.
    #[allow(clippy::too_many_arguments)]
    fn read_partition(
        &mut self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
        fetch_offset: i64,
        limit: usize,
        first_with_data: bool,
        pd: &mut PartitionData,
    ) {
        let node_id = self.config.node_id;
        let p = match crate::node::leader_partition_ref(
            &self.topics,
            self.cluster.as_ref(),
            topic,
            partition,
        ) {
            Ok(p) => p,
            Err(code) => {
                pd.error_code = code;
                return;
            }
        };
        if !p.high_watermark_established() {
            // A new leader may know a lower high watermark than its
            // predecessor exposed; until it has confirmed its own epoch's
            // start, consumers retry (librdkafka and the Java client back
            // off on this code) rather than see the high watermark go back.
            pd.error_code = ResponseError::OffsetNotAvailable.code();
            pd.current_leader.leader_id = node_id.into();
            pd.current_leader.leader_epoch = p.leader_epoch;
            return;
        }
        pd.high_watermark = p.high_watermark;
        pd.last_stable_offset = p.high_watermark;
        pd.log_start_offset = p.log.log_start_offset();
        pd.current_leader.leader_id = node_id.into();
        pd.current_leader.leader_epoch = p.leader_epoch;
        if let Some(code) = check_leader_epoch(current_leader_epoch, p.leader_epoch) {
            pd.error_code = code;
            return;
        }
        if fetch_offset > p.high_watermark && fetch_offset <= p.log.log_end_offset() {
            return; // beyond what consumers may see yet, but not out of range
        }
        if limit == 0 && !first_with_data {
            return;
        }
        match p.log.read_to_send(
            &mut self.storage,
            fetch_offset,
            limit.max(1),
            p.high_watermark,
        ) {
            Ok(read) => {
                if !first_with_data && read.records.len() > limit {
                    return;
                }
                pd.records = Some(read.records);
            }
            Err(e) => pd.error_code = log_error_code(&e),
        }
    }
}

/// Whether reading `fp` of `p` would answer exactly what its session last
/// answered (`high_watermark`, `log_start`): no records (its offset is at
/// or past the high watermark, within the log), no error, the same
/// offsets. Its answer would then be dropped (Kafka reads it and drops it:
/// `CachedPartition.maybeUpdateResponseData`).
fn unchanged_since_answered(
    p: Option<&Partition>,
    fp: &FetchPartition,
    (high_watermark, log_start): (i64, i64),
) -> bool {
    !consumer_partition_may_complete(p, fp)
        && p.is_some_and(|p| {
            p.high_watermark == high_watermark && p.log.log_start_offset() == log_start
        })
}
