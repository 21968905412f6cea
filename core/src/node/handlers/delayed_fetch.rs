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
use super::super::topics::{Partition, Replica, TouchReader};
use super::super::Node;
use super::check_leader_epoch;
use super::fetch::{FetchOutcome, FetchRead, FETCH_TOPIC_ID_VERSION_MIN};
use super::parked_fetches::ParkKeys;
use crate::node::cluster::replication::{is_replica_fetch, replica_fetch_of};
use crate::node::ConnectionId;
use crate::storage::Storage;
use crate::time::Instant;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::{FetchRequest, ResponseKind};
use std::collections::BTreeSet;
use uuid::Uuid;

/// What `retry_delayed_fetches` looks at: the partitions touched since it
/// last looked; everything, when a topic came or went. Buffers are kept
/// across retries (this runs on every append).
#[derive(Default)]
pub struct ParkedTouches {
    everything: bool,
    /// Topics every partition of which counts as touched.
    topics: Vec<Uuid>,
    partitions: Vec<(Uuid, i32)>,
    /// The touched list being read.
    listed: Vec<i32>,
    /// The parked fetches to look at, in park order.
    candidates: BTreeSet<u64>,
}

/// A fetch parked until enough data arrives or its deadline passes.
pub struct DelayedFetch {
    pub slot: Slot,
    pub request: FetchRequest,
    pub version: i16,
    pub deadline: Instant,
}

impl<S: Storage> Node<S> {
    /// Parks `fetch`, indexed by what it names (see `park_keys`).
    pub(crate) fn park_fetch(&mut self, fetch: DelayedFetch) {
        let keys = park_keys(self, &fetch);
        self.parked_fetches.park(fetch, keys);
    }

    /// Answers the parked fetches that now have enough; checks the ones
    /// naming a partition touched since the last look without reading
    /// them, and leaves the others: they were judged then (or read nothing
    /// when parked) and would be judged the same.
    pub(crate) fn retry_delayed_fetches(&mut self) {
        if self.parked_fetches.is_empty() {
            // The touches wait for the next look (bounded: one entry per
            // partition); a fetch parked meanwhile is looked at once more.
            return;
        }
        let mut touched = self.take_parked_touches();
        let mut candidates = std::mem::take(&mut touched.candidates);
        if touched.everything {
            candidates.clear();
            candidates.extend(self.parked_fetches.seqs());
        } else if touched.topics.is_empty() && touched.partitions.is_empty() {
            candidates.clear();
        } else {
            self.parked_fetches.candidates(
                &touched.topics,
                touched.partitions.iter().copied(),
                &mut candidates,
            );
        }
        for &seq in &candidates {
            self.retry_parked_fetch(seq);
        }
        if cfg!(debug_assertions) {
            for seq in self.parked_fetches.seqs() {
                if !candidates.contains(&seq) {
                    let (fetch, keys) = self.parked_fetches.take(seq);
                    self.assert_parked_fetch_has_nothing(&fetch);
                    self.parked_fetches.put_back(seq, fetch, keys);
                }
            }
        }
        if touched.everything {
            // A name may stand for another topic id now, or for one at all.
            let mut parked = std::mem::take(&mut self.parked_fetches);
            parked.reindex(|fetch| park_keys(self, fetch));
            self.parked_fetches = parked;
        }
        touched.candidates = candidates;
        self.parked_touches_buf = touched;
    }

    /// Answers parked fetch `seq` if it now has enough, else parks it
    /// again as it was.
    fn retry_parked_fetch(&mut self, seq: u64) {
        let (fetch, keys) = self.parked_fetches.take(seq);
        let outcome = if self.parked_fetch_may_complete(&fetch) {
            Some(self.read_fetch(&fetch.request, fetch.version, FetchRead::Completion))
        } else {
            self.assert_parked_fetch_has_nothing(&fetch);
            None
        };
        match outcome {
            Some(outcome) if enough(&fetch, &outcome) => {
                self.parked_fetches.forget(seq, fetch.deadline, &keys);
                self.responder.complete(
                    fetch.slot,
                    ResponseKind::Fetch(outcome.response),
                    &mut self.outputs,
                );
            }
            _ => self.parked_fetches.put_back(seq, fetch, keys),
        }
    }

    /// The partitions touched since the parked fetches were last looked at,
    /// and forgotten.
    fn take_parked_touches(&mut self) -> ParkedTouches {
        let mut touched = std::mem::take(&mut self.parked_touches_buf);
        touched.everything = self.topics.take_all_touched(TouchReader::Parked);
        touched.topics.clear();
        touched.partitions.clear();
        let mut listed = std::mem::take(&mut touched.listed);
        for topic in self.topics.iter_mut() {
            listed.clear();
            if topic.take_touched(TouchReader::Parked, &mut listed) {
                touched.topics.push(topic.id);
            } else {
                let id = topic.id;
                touched.partitions.extend(listed.iter().map(|&p| (id, p)));
            }
        }
        touched.listed = listed;
        touched
    }

    /// Answers parked fetches whose deadline has passed, with what there
    /// is, in the order they were parked.
    pub(crate) fn expire_delayed_fetches(&mut self) {
        for seq in self.parked_fetches.expired(self.now) {
            let (fetch, keys) = self.parked_fetches.take(seq);
            self.parked_fetches.forget(seq, fetch.deadline, &keys);
            let outcome = self.read_fetch(&fetch.request, fetch.version, FetchRead::Completion);
            self.responder.complete(
                fetch.slot,
                ResponseKind::Fetch(outcome.response),
                &mut self.outputs,
            );
        }
    }

    /// Drops the fetches parked on a closed connection: nobody waits.
    pub(crate) fn forget_parked_fetches_of(&mut self, connection: ConnectionId) {
        for seq in self.parked_fetches.of_connection(connection) {
            let (fetch, keys) = self.parked_fetches.take(seq);
            self.parked_fetches.forget(seq, fetch.deadline, &keys);
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

/// The partitions a parked fetch is looked at again for: by topic id
/// when the request names ids (a replica fetch in a cluster, or Fetch v13
/// and later), else by the id the node's topic of that name has now.
fn park_keys<S: Storage>(node: &Node<S>, fetch: &DelayedFetch) -> ParkKeys {
    let request = &fetch.request;
    let by_id = (node.cluster.is_some() && is_replica_fetch(request))
        || fetch.version >= FETCH_TOPIC_ID_VERSION_MIN;
    let mut keys = Vec::new();
    for topic in &request.topics {
        let id = if by_id {
            topic.topic_id
        } else {
            match node.topics.get(topic.topic.0.as_str()) {
                Some(t) => t.id,
                None => return ParkKeys::Unresolved,
            }
        };
        keys.extend(topic.partitions.iter().map(|fp| (id, fp.partition)));
    }
    ParkKeys::Partitions(keys)
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
