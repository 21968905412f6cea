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
use crate::node::cluster::replication::{is_replica_fetch, replica_fetch_of};
use crate::node::fetch_sessions::FetchContext;
use crate::storage::Storage;
use crate::time::Instant;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::FetchRequest;
use uuid::Uuid;

/// What `retry_delayed_fetches` looks at: the partitions touched since it
/// last looked, as a bitmap per topic (a retry tests each partition of
/// each parked fetch: hundreds per retry on a leader of a large cluster);
/// everything, when a topic came or went.
/// Buffers are kept across retries (this runs on every append).
#[derive(Default)]
pub struct ParkedTouches {
    everything: bool,
    /// (topic id, every partition counts as touched, bitmap by index); the
    /// first `used` are this retry's.
    topics: Vec<(Uuid, bool, Vec<u64>)>,
    used: usize,
    /// The touched list being read.
    listed: Vec<i32>,
}

impl ParkedTouches {
    fn clear(&mut self) {
        self.everything = false;
        self.used = 0;
    }

    fn insert(&mut self, id: Uuid, all: bool, partitions: &[i32]) {
        if !all && partitions.is_empty() {
            return;
        }
        if self.used == self.topics.len() {
            self.topics.push((id, all, Vec::new()));
        }
        let (t, a, bits) = &mut self.topics[self.used];
        self.used += 1;
        (*t, *a) = (id, all);
        bits.clear();
        let words = partitions.iter().max().map_or(0, |m| *m as usize / 64 + 1);
        bits.resize(words, 0);
        for &p in partitions {
            bits[p as usize / 64] |= 1 << (p as usize % 64);
        }
    }

    /// What was touched of topic `id`, if anything.
    fn topic(&self, id: Uuid) -> Option<TopicTouches<'_>> {
        self.topics[..self.used]
            .iter()
            .find(|(t, _, _)| *t == id)
            .map(|(_, all, bits)| TopicTouches { all: *all, bits })
    }

    #[cfg(test)]
    fn touched(&self, id: Uuid, partition: i32) -> bool {
        self.topic(id).is_some_and(|t| t.touched(partition))
    }
}

/// One topic's entry of [`ParkedTouches`].
#[derive(Clone, Copy)]
struct TopicTouches<'a> {
    all: bool,
    bits: &'a [u64],
}

impl TopicTouches<'_> {
    fn touched(self, partition: i32) -> bool {
        self.all
            || usize::try_from(partition).is_ok_and(|p| {
                self.bits
                    .get(p / 64)
                    .is_some_and(|w| w & (1 << (p % 64)) != 0)
            })
    }
}

/// A fetch parked until enough data arrives or its deadline passes.
pub struct DelayedFetch {
    pub slot: Slot,
    pub request: FetchRequest,
    pub version: i16,
    pub deadline: Instant,
    /// Its fetch session, which judges the answer when it is sent.
    pub(crate) context: FetchContext,
}

impl<S: Storage> Node<S> {
    /// Answers the parked fetches that now have enough; checks the rest
    /// without reading them.
    pub(crate) fn retry_delayed_fetches(&mut self) {
        if self.delayed_fetches.is_empty() {
            // The touches wait for the next look (bounded: one entry per
            // partition); a fetch parked meanwhile is looked at once more.
            return;
        }
        let touched = self.take_parked_touches();
        // The two lists trade places rather than being rebuilt: this runs
        // on every append, and growing a fresh list each time was a percent
        // of a cluster run. Order is kept.
        std::mem::swap(&mut self.delayed_fetches, &mut self.delayed_fetches_spare);
        debug_assert!(self.delayed_fetches.is_empty(), "the spare list is empty");
        let mut parked = std::mem::take(&mut self.delayed_fetches_spare);
        for fetch in parked.drain(..) {
            // A fetch none of whose partitions was touched since the last
            // look was judged then (or read nothing when it was parked)
            // and would be judged the same: a leader of a large cluster
            // holds a parked fetch per follower broker, and an append
            // touches one partition.
            let may = self.parked_fetch_may_complete(&fetch, &touched);
            let outcome = if may {
                Some(self.read_fetch(
                    &fetch.request,
                    fetch.version,
                    fetch.context,
                    FetchRead::Completion,
                ))
            } else {
                self.assert_parked_fetch_has_too_little(&fetch);
                None
            };
            match outcome {
                Some(outcome) if enough(&fetch, &outcome) => self.answer_fetch(
                    fetch.slot,
                    fetch.context,
                    &fetch.request,
                    fetch.version,
                    outcome,
                ),
                _ => self.delayed_fetches.push(fetch),
            }
        }
        self.delayed_fetches_spare = parked;
        self.parked_touches_buf = touched;
    }

    /// The partitions touched since the parked fetches were last looked at,
    /// and forgotten.
    fn take_parked_touches(&mut self) -> ParkedTouches {
        let mut touched = std::mem::take(&mut self.parked_touches_buf);
        touched.clear();
        touched.everything = self.topics.take_all_touched(TouchReader::Parked);
        let mut listed = std::mem::take(&mut touched.listed);
        for topic in self.topics.iter_mut() {
            listed.clear();
            let all = topic.take_touched(TouchReader::Parked, &mut listed);
            touched.insert(topic.id, all, &listed);
        }
        touched.listed = listed;
        touched
    }

    /// Answers parked fetches whose deadline has passed, with what there is.
    pub(crate) fn expire_delayed_fetches(&mut self) {
        let now = self.now;
        // Every timeout of the node comes here: the expired ones are taken
        // out in place, in order (splitting the list into two new ones
        // each time was 2% of a large cluster's simulation).
        let expired: Vec<DelayedFetch> = self
            .delayed_fetches
            .extract_if(.., |f| f.deadline <= now)
            .collect();
        for fetch in expired {
            let outcome = self.read_fetch(
                &fetch.request,
                fetch.version,
                fetch.context,
                FetchRead::Completion,
            );
            self.answer_fetch(
                fetch.slot,
                fetch.context,
                &fetch.request,
                fetch.version,
                outcome,
            );
        }
    }

    /// Whether any partition `fetch` names may now answer with new records
    /// or an error; false only when reading it would bring no more than the
    /// last read, which was not enough. Only the partitions `touched` lists
    /// are asked: every other one is as it was when the fetch was last
    /// read (parked, or re-parked with less than `min_bytes`) or judged.
    fn parked_fetch_may_complete(&self, fetch: &DelayedFetch, touched: &ParkedTouches) -> bool {
        let request = &fetch.request;
        let replica = self.cluster.is_some() && is_replica_fetch(request);
        let by_id = replica || fetch.version >= FETCH_TOPIC_ID_VERSION_MIN;
        let every = touched.everything;
        if !every && touched.used == 0 {
            return false;
        }
        request.topics.iter().any(|topic| {
            let id = if by_id {
                topic.topic_id
            } else {
                match self.topics.get(topic.topic.0.as_str()) {
                    Some(t) => t.id,
                    None => return true, // the read answers with an unknown-topic error
                }
            };
            // Unless a topic came or went (`everything`), a topic not touched
            // is as it was at the last look: skip it before resolving its id
            // (a leader of a large cluster checks a parked fetch per follower
            // broker on every high watermark move). One not hosted was not
            // hosted at the last look either, and was answered then.
            let topic_touches = if every {
                None
            } else {
                match touched.topic(id) {
                    Some(t) => Some(t),
                    None => return false,
                }
            };
            let name = if by_id {
                self.topics.name_of(&id)
            } else {
                Some(topic.topic.0.as_str())
            };
            let Some(name) = name else {
                return true; // the read answers with an unknown-topic error
            };
            topic.partitions.iter().any(|fp| {
                if topic_touches.is_some_and(|t| !t.touched(fp.partition)) {
                    return false;
                }
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
    /// keeps waiting would read less than `min_bytes` and no error. (Not
    /// nothing: with `min_bytes` above one batch it may hold some.)
    fn assert_parked_fetch_has_too_little(&mut self, fetch: &DelayedFetch) {
        if cfg!(debug_assertions) {
            let outcome = self.read_fetch(
                &fetch.request,
                fetch.version,
                fetch.context,
                FetchRead::Completion,
            );
            assert!(
                !enough(fetch, &outcome),
                "a parked fetch judged unable to complete reads {} bytes of min {} (error: {})",
                outcome.bytes,
                fetch.request.min_bytes,
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
pub(crate) fn consumer_partition_may_complete(p: Option<&Partition>, fp: &FetchPartition) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_touches_hold_exactly_the_partitions_inserted() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let mut touched = ParkedTouches::default();
        touched.insert(a, false, &[0, 63, 64, 130]);
        touched.insert(b, true, &[]);
        touched.insert(c, false, &[]);
        for p in [0, 63, 64, 130] {
            assert!(touched.touched(a, p), "{p}");
        }
        for p in [1, 62, 65, 129, 131, 10_000, -1] {
            assert!(!touched.touched(a, p), "{p}");
        }
        assert!(touched.touched(b, 9_999), "a whole topic");
        assert!(!touched.touched(c, 0), "nothing of c");
        touched.clear();
        assert!(!touched.touched(a, 0) && !touched.touched(b, 0));
    }
}
