//! Fetches parked until enough data arrives or their deadline passes
//! (Kafka's `DelayedFetch`, long poll with `max_wait_ms` and `min_bytes`).
//!
//! A parked fetch is *checked* whenever a leader's log or high watermark
//! moves on this node, without reading (`tryComplete`): only when a
//! partition it names may have something new to say is it read again, and
//! answered if that read brings `min_bytes` or an error (`onComplete`).
//! A follower's fetch recorded the follower's progress when it arrived;
//! reading it again at completion does not record it again, as in Kafka,
//! where `ReplicaManager.fetchMessages` updates the follower state once.
//! Reading every parked fetch on every append instead was a tenth of a
//! cluster simulation, most of it thrown away.

use super::super::responder::Slot;
use super::super::topics::{Partition, Replica};
use super::super::Node;
use super::check_leader_epoch;
use super::fetch::{FetchOutcome, FetchRead, FETCH_TOPIC_ID_VERSION_MIN};
use crate::node::cluster::replication::{is_replica_fetch, replica_fetch_of};
use crate::storage::Storage;
use crate::time::Instant;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::{FetchRequest, ResponseKind};

/// A fetch parked until enough data arrives or its deadline passes.
pub struct DelayedFetch {
    pub slot: Slot,
    pub request: FetchRequest,
    pub version: i16,
    pub deadline: Instant,
}

impl<S: Storage> Node<S> {
    /// Answers the parked fetches that now have enough; checks the rest
    /// without reading them.
    pub(crate) fn retry_delayed_fetches(&mut self) {
        // The two lists trade places rather than being rebuilt: this runs
        // on every append, and growing a fresh list each time was a percent
        // of a cluster run. Order is kept.
        std::mem::swap(&mut self.delayed_fetches, &mut self.delayed_fetches_spare);
        debug_assert!(self.delayed_fetches.is_empty(), "the spare list is empty");
        let mut parked = std::mem::take(&mut self.delayed_fetches_spare);
        for fetch in parked.drain(..) {
            let outcome = if self.parked_fetch_may_complete(&fetch) {
                Some(self.read_fetch(&fetch.request, fetch.version, FetchRead::Completion))
            } else {
                self.assert_parked_fetch_has_nothing(&fetch);
                None
            };
            match outcome {
                Some(outcome) if enough(&fetch, &outcome) => self.responder.complete(
                    fetch.slot,
                    ResponseKind::Fetch(outcome.response),
                    &mut self.outputs,
                ),
                _ => self.delayed_fetches.push(fetch),
            }
        }
        self.delayed_fetches_spare = parked;
    }

    /// Answers parked fetches whose deadline has passed, with what there is.
    pub(crate) fn expire_delayed_fetches(&mut self) {
        let now = self.now;
        let (expired, parked): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed_fetches)
            .into_iter()
            .partition(|f| f.deadline <= now);
        self.delayed_fetches = parked;
        for fetch in expired {
            let outcome = self.read_fetch(&fetch.request, fetch.version, FetchRead::Completion);
            self.responder.complete(
                fetch.slot,
                ResponseKind::Fetch(outcome.response),
                &mut self.outputs,
            );
        }
    }

    /// Whether any partition `fetch` names may now answer with records or
    /// an error; false only when reading it would again bring nothing.
    fn parked_fetch_may_complete(&self, fetch: &DelayedFetch) -> bool {
        let request = &fetch.request;
        let replica = self.cluster.is_some() && is_replica_fetch(request);
        let by_id = replica || fetch.version >= FETCH_TOPIC_ID_VERSION_MIN;
        request.topics.iter().any(|topic| {
            let name = if by_id {
                self.topics.name_of(&topic.topic_id)
            } else {
                Some(topic.topic.0.as_str())
            };
            let Some(name) = name else {
                return true; // the read answers UNKNOWN_TOPIC_ID
            };
            topic.partitions.iter().any(|fp| {
                let p = self.topics.partition(name, fp.partition);
                if replica {
                    replica_partition_may_complete(p, request, fp)
                } else {
                    consumer_partition_may_complete(p, fp)
                }
            })
        })
    }

    /// Debug builds hold the check to what it promises: a parked fetch it
    /// keeps waiting would read nothing and no error.
    fn assert_parked_fetch_has_nothing(&mut self, fetch: &DelayedFetch) {
        if cfg!(debug_assertions) {
            let outcome = self.read_fetch(&fetch.request, fetch.version, FetchRead::Completion);
            assert!(
                outcome.bytes == 0 && !outcome.has_error,
                "a parked fetch judged unable to complete reads {} bytes (error: {})",
                outcome.bytes,
                outcome.has_error
            );
        }
    }
}

fn enough(fetch: &DelayedFetch, outcome: &FetchOutcome) -> bool {
    outcome.bytes >= fetch.request.min_bytes.max(1) as usize || outcome.has_error
}

/// A follower's partition: the leader decides (see
/// `LeaderReplica::parked_fetch_may_complete`); anything else here (no
/// longer hosted, no longer the leader) is an error to answer.
fn replica_partition_may_complete(
    p: Option<&Partition>,
    request: &FetchRequest,
    fp: &FetchPartition,
) -> bool {
    match p.map(|p| (&p.replica, &p.log)) {
        Some((Replica::Leader(leader), log)) => {
            leader.parked_fetch_may_complete(log, &replica_fetch_of(request, fp))
        }
        _ => true,
    }
}

/// A consumer's partition: records below the high watermark past its
/// offset, or any of the errors `read_partition` answers with.
fn consumer_partition_may_complete(p: Option<&Partition>, fp: &FetchPartition) -> bool {
    let Some(p) = p else {
        return true;
    };
    !p.replica.is_leader()
        || !p.high_watermark_established()
        || check_leader_epoch(fp.current_leader_epoch, p.leader_epoch).is_some()
        || fp.fetch_offset < p.high_watermark
        || fp.fetch_offset < p.log.log_start_offset()
        || fp.fetch_offset > p.log.log_end_offset()
}
