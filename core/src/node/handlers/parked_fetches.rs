//! The fetches a node holds parked (`delayed_fetch`), kept in the order
//! they were parked and indexed by the partitions they name and by their
//! deadlines: a retry looks at the fetches naming a partition touched since
//! the last one, and an expiry or a timeout query at the earliest deadlines,
//! instead of at every parked fetch (a leader of a large cluster holds one
//! per follower broker, and retries on every append).

use super::delayed_fetch::DelayedFetch;
use crate::node::ConnectionId;
use crate::time::Instant;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Where a parked fetch is indexed: the (topic id, partition) pairs it
/// names, or `Unresolved` when it names a topic the node did not host when
/// it was parked (looked at on every retry, as a read of it answers an
/// error, or more once the topic comes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParkKeys {
    Partitions(Vec<(Uuid, i32)>),
    Unresolved,
}

struct Parked {
    fetch: DelayedFetch,
    keys: ParkKeys,
}

/// Parked fetches by park order (a sequence number), with their indexes.
#[derive(Default)]
pub struct ParkedFetches {
    next_seq: u64,
    /// A fetch being looked at (`take`) is out of here and still indexed.
    fetches: BTreeMap<u64, Parked>,
    by_partition: BTreeMap<(Uuid, i32), BTreeSet<u64>>,
    by_topic: BTreeMap<Uuid, BTreeSet<u64>>,
    unresolved: BTreeSet<u64>,
    deadlines: BTreeSet<(Instant, u64)>,
    /// Indexed fetches, taken or not.
    indexed: usize,
}

impl ParkedFetches {
    // --- getters ------------------------------------------------------------

    /// Fetches parked, including any taken to be looked at.
    pub fn len(&self) -> usize {
        self.indexed
    }

    pub fn is_empty(&self) -> bool {
        self.indexed == 0
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// Every parked fetch, in park order.
    pub fn seqs(&self) -> Vec<u64> {
        self.fetches.keys().copied().collect()
    }

    /// The fetches that may name a touched partition, in park order: those
    /// naming one of `partitions`, one of `topics` (every partition
    /// touched), or an unresolved topic.
    pub fn candidates(
        &self,
        topics: &[Uuid],
        partitions: impl Iterator<Item = (Uuid, i32)>,
        out: &mut BTreeSet<u64>,
    ) {
        out.clear();
        out.extend(self.unresolved.iter().copied());
        for id in topics {
            if let Some(seqs) = self.by_topic.get(id) {
                out.extend(seqs.iter().copied());
            }
        }
        for key in partitions {
            if let Some(seqs) = self.by_partition.get(&key) {
                out.extend(seqs.iter().copied());
            }
        }
    }

    /// The fetches whose deadline is at or before `now`, in park order.
    pub fn expired(&self, now: Instant) -> Vec<u64> {
        let mut seqs: Vec<u64> = self
            .deadlines
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, seq)| *seq)
            .collect();
        seqs.sort_unstable();
        seqs
    }

    /// The fetches that came on `connection`.
    pub fn of_connection(&self, connection: ConnectionId) -> Vec<u64> {
        self.fetches
            .iter()
            .filter(|(_, p)| p.fetch.slot.connection == connection)
            .map(|(seq, _)| *seq)
            .collect()
    }

    // --- changes ------------------------------------------------------------

    pub fn park(&mut self, fetch: DelayedFetch, keys: ParkKeys) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.index(seq, fetch.deadline, &keys);
        self.fetches.insert(seq, Parked { fetch, keys });
        self.indexed += 1;
    }

    /// Takes a fetch out to look at it; it stays indexed until `put_back`
    /// or `forget`. Panics when it is not parked.
    pub fn take(&mut self, seq: u64) -> (DelayedFetch, ParkKeys) {
        let parked = self.fetches.remove(&seq).expect("a parked fetch");
        (parked.fetch, parked.keys)
    }

    /// Returns a taken fetch, still waiting.
    pub fn put_back(&mut self, seq: u64, fetch: DelayedFetch, keys: ParkKeys) {
        assert!(seq < self.next_seq, "only a taken fetch comes back");
        let previous = self.fetches.insert(seq, Parked { fetch, keys });
        assert!(previous.is_none(), "a fetch is parked once");
    }

    /// Unindexes a taken fetch that was answered.
    pub fn forget(&mut self, seq: u64, deadline: Instant, keys: &ParkKeys) {
        assert!(!self.fetches.contains_key(&seq), "take it first");
        self.unindex(seq, deadline, keys);
        self.indexed -= 1;
    }

    /// Indexes every parked fetch again by `keys_of` (topics came or went:
    /// a name may now stand for another id, or for one at all).
    pub fn reindex(&mut self, keys_of: impl Fn(&DelayedFetch) -> ParkKeys) {
        assert_eq!(self.indexed, self.fetches.len(), "nothing taken");
        self.by_partition.clear();
        self.by_topic.clear();
        self.unresolved.clear();
        self.deadlines.clear();
        let mut fetches = std::mem::take(&mut self.fetches);
        for (seq, parked) in fetches.iter_mut() {
            parked.keys = keys_of(&parked.fetch);
            self.index(*seq, parked.fetch.deadline, &parked.keys);
        }
        self.fetches = fetches;
    }

    pub fn check_invariants(&self) {
        assert_eq!(
            self.indexed,
            self.fetches.len(),
            "nothing taken between inputs"
        );
        assert_eq!(self.deadlines.len(), self.indexed, "one deadline each");
        for (seq, parked) in &self.fetches {
            assert!(
                self.deadlines.contains(&(parked.fetch.deadline, *seq)),
                "fetch {seq} indexed by its deadline"
            );
            match &parked.keys {
                ParkKeys::Unresolved => assert!(self.unresolved.contains(seq)),
                ParkKeys::Partitions(keys) => {
                    for key in keys {
                        assert!(
                            self.by_partition.get(key).is_some_and(|s| s.contains(seq)),
                            "fetch {seq} indexed by {key:?}"
                        );
                        assert!(self.by_topic.get(&key.0).is_some_and(|s| s.contains(seq)));
                    }
                }
            }
        }
    }

    // --- leaves -------------------------------------------------------------

    fn index(&mut self, seq: u64, deadline: Instant, keys: &ParkKeys) {
        self.deadlines.insert((deadline, seq));
        match keys {
            ParkKeys::Unresolved => {
                self.unresolved.insert(seq);
            }
            ParkKeys::Partitions(keys) => {
                for key in keys {
                    self.by_partition.entry(*key).or_default().insert(seq);
                    self.by_topic.entry(key.0).or_default().insert(seq);
                }
            }
        }
    }

    fn unindex(&mut self, seq: u64, deadline: Instant, keys: &ParkKeys) {
        let removed = self.deadlines.remove(&(deadline, seq));
        assert!(removed, "fetch {seq} was indexed by its deadline");
        match keys {
            ParkKeys::Unresolved => {
                self.unresolved.remove(&seq);
            }
            ParkKeys::Partitions(keys) => {
                for key in keys {
                    remove_from(&mut self.by_partition, key, seq);
                    remove_from(&mut self.by_topic, &key.0, seq);
                }
            }
        }
    }
}

/// Removes `seq` from the set under `key`, and the set once empty (so
/// the indexes stay as large as what is parked).
fn remove_from<K: Ord>(index: &mut BTreeMap<K, BTreeSet<u64>>, key: &K, seq: u64) {
    if let Some(seqs) = index.get_mut(key) {
        seqs.remove(&seq);
        if seqs.is_empty() {
            index.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::responder::Slot;
    use kafka_protocol::messages::FetchRequest;

    fn fetch(connection: ConnectionId, deadline_ms: u64) -> DelayedFetch {
        DelayedFetch {
            slot: Slot::for_test(connection, 0),
            request: FetchRequest::default(),
            version: 17,
            deadline: Instant::from_millis(deadline_ms),
        }
    }

    fn candidates(p: &ParkedFetches, topics: &[Uuid], partitions: &[(Uuid, i32)]) -> Vec<u64> {
        let mut out = BTreeSet::new();
        p.candidates(topics, partitions.iter().copied(), &mut out);
        out.into_iter().collect()
    }

    #[test]
    fn a_retry_looks_at_the_fetches_naming_a_touched_partition_in_park_order() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut p = ParkedFetches::default();
        p.park(fetch(1, 500), ParkKeys::Partitions(vec![(a, 0), (b, 3)]));
        p.park(fetch(2, 100), ParkKeys::Partitions(vec![(a, 1)]));
        p.park(fetch(3, 300), ParkKeys::Unresolved);
        p.park(fetch(4, 200), ParkKeys::Partitions(vec![(b, 3)]));
        p.check_invariants();
        assert_eq!(candidates(&p, &[], &[(a, 1)]), vec![1, 2]);
        assert_eq!(candidates(&p, &[], &[(b, 3)]), vec![0, 2, 3]);
        assert_eq!(candidates(&p, &[a], &[]), vec![0, 1, 2]);
        assert_eq!(
            candidates(&p, &[], &[(a, 2)]),
            vec![2],
            "only the unresolved"
        );
        assert_eq!(p.next_deadline(), Some(Instant::from_millis(100)));
        assert_eq!(p.expired(Instant::from_millis(300)), vec![1, 2, 3]);
        assert_eq!(p.of_connection(4), vec![3]);
    }

    #[test]
    fn an_answered_fetch_leaves_every_index_and_a_kept_one_stays() {
        let a = Uuid::from_u128(1);
        let mut p = ParkedFetches::default();
        p.park(fetch(1, 500), ParkKeys::Partitions(vec![(a, 0)]));
        p.park(fetch(2, 100), ParkKeys::Partitions(vec![(a, 0)]));
        let (kept, kept_keys) = p.take(0);
        assert_eq!(p.len(), 2, "a taken fetch still counts");
        p.put_back(0, kept, kept_keys);
        let (answered, keys) = p.take(1);
        p.forget(1, answered.deadline, &keys);
        p.check_invariants();
        assert_eq!(p.len(), 1);
        assert_eq!(p.seqs(), vec![0]);
        assert_eq!(candidates(&p, &[], &[(a, 0)]), vec![0]);
        assert_eq!(p.next_deadline(), Some(Instant::from_millis(500)));
        let (last, keys) = p.take(0);
        p.forget(0, last.deadline, &keys);
        assert!(p.is_empty());
        assert!(
            p.by_partition.is_empty() && p.by_topic.is_empty(),
            "no empty sets left"
        );
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn reindexing_follows_what_names_stand_for_now() {
        let (old, new) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut p = ParkedFetches::default();
        p.park(fetch(1, 500), ParkKeys::Partitions(vec![(old, 0)]));
        p.park(fetch(2, 500), ParkKeys::Unresolved);
        p.reindex(|_| ParkKeys::Partitions(vec![(new, 0)]));
        p.check_invariants();
        assert_eq!(candidates(&p, &[], &[(old, 0)]), Vec::<u64>::new());
        assert_eq!(candidates(&p, &[], &[(new, 0)]), vec![0, 1]);
    }
}
