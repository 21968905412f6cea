//! A client's per-broker state (its connections, fetches in flight, fetch
//! sessions), held by broker index rather than in an ordered map: a client
//! of a 100-broker cluster looks at every broker's entry after each of its
//! events, and the map searches were a tenth of such a simulation.
//!
//! The API is the subset of `BTreeMap<BrokerId, V>` the world uses, in the
//! same (ascending broker) order, so a caller reads the same as before and
//! a run's events, trace and hash do not change.

use super::BrokerId;

/// Per-broker values, indexed by broker id; grows to the highest id
/// inserted (bounded by the cluster's brokers).
#[derive(Debug, Clone)]
pub(super) struct BrokerMap<V> {
    /// Slot `b` holds `(b, value)`: the key is stored so `iter` can lend it
    /// out as a `BTreeMap`'s does.
    slots: Vec<Option<(BrokerId, V)>>,
}

impl<V> Default for BrokerMap<V> {
    fn default() -> BrokerMap<V> {
        BrokerMap { slots: Vec::new() }
    }
}

impl<V> BrokerMap<V> {
    pub(super) fn new() -> BrokerMap<V> {
        BrokerMap::default()
    }

    // --- getters --------------------------------------------------------

    pub(super) fn get(&self, broker: &BrokerId) -> Option<&V> {
        self.slots.get(*broker)?.as_ref().map(|(_, v)| v)
    }

    pub(super) fn get_mut(&mut self, broker: &BrokerId) -> Option<&mut V> {
        self.slots.get_mut(*broker)?.as_mut().map(|(_, v)| v)
    }

    pub(super) fn contains_key(&self, broker: &BrokerId) -> bool {
        self.get(broker).is_some()
    }

    /// Ascending by broker, as a `BTreeMap` iterates.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&BrokerId, &V)> {
        self.slots
            .iter()
            .filter_map(|s| s.as_ref().map(|(b, v)| (b, v)))
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &BrokerId> {
        self.iter().map(|(b, _)| b)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    // --- changes --------------------------------------------------------

    /// Sets broker `broker`'s value; returns the one it replaces.
    pub(super) fn insert(&mut self, broker: BrokerId, value: V) -> Option<V> {
        if broker >= self.slots.len() {
            self.slots.resize_with(broker + 1, || None);
        }
        self.slots[broker].replace((broker, value)).map(|(_, v)| v)
    }

    pub(super) fn remove(&mut self, broker: &BrokerId) -> Option<V> {
        self.slots.get_mut(*broker)?.take().map(|(_, v)| v)
    }

    pub(super) fn clear(&mut self) {
        self.slots.clear();
    }
}

impl<V: Default> BrokerMap<V> {
    /// Broker `broker`'s value, a default one inserted first if it has none
    /// (`BTreeMap::entry(..).or_default()`).
    pub(super) fn get_or_default(&mut self, broker: BrokerId) -> &mut V {
        if !self.contains_key(&broker) {
            self.insert(broker, V::default());
        }
        self.get_mut(&broker).expect("inserted above")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The same operations on a `BrokerMap` and a `BTreeMap` leave the same
    /// contents, in the same order, with the same answers on the way.
    #[test]
    fn behaves_as_an_ordered_map() {
        let mut ours: BrokerMap<u32> = BrokerMap::new();
        let mut theirs: BTreeMap<BrokerId, u32> = BTreeMap::new();
        // A fixed mix of inserts, replacements and removals, some of
        // brokers beyond the current end and some absent.
        let ops: [(bool, BrokerId, u32); 12] = [
            (true, 5, 1),
            (true, 0, 2),
            (true, 5, 3),
            (false, 7, 0),
            (true, 99, 4),
            (false, 5, 0),
            (true, 3, 5),
            (false, 5, 0),
            (true, 5, 6),
            (false, 0, 0),
            (true, 1, 7),
            (false, 200, 0),
        ];
        for (insert, b, v) in ops {
            if insert {
                assert_eq!(ours.insert(b, v), theirs.insert(b, v), "insert {b}");
            } else {
                assert_eq!(ours.remove(&b), theirs.remove(&b), "remove {b}");
            }
            let a: Vec<(BrokerId, u32)> = ours.iter().map(|(b, v)| (*b, *v)).collect();
            let t: Vec<(BrokerId, u32)> = theirs.iter().map(|(b, v)| (*b, *v)).collect();
            assert_eq!(a, t);
            for probe in [0, 1, 3, 5, 7, 99, 1000] {
                assert_eq!(ours.get(&probe), theirs.get(&probe), "get {probe}");
                assert_eq!(ours.contains_key(&probe), theirs.contains_key(&probe));
            }
        }
        assert_eq!(
            ours.keys().copied().collect::<Vec<_>>(),
            theirs.keys().copied().collect::<Vec<_>>()
        );
        *ours.get_or_default(42) += 9;
        *ours.get_or_default(42) += 1;
        assert_eq!(ours.get(&42), Some(&10));
        ours.clear();
        assert!(ours.iter().next().is_none() && ours.get(&5).is_none());
    }
}
