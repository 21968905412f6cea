//! A topic's hosted partitions by index.
//!
//! A partition is looked up by index several times per input (every fetched
//! or produced partition, every touched one the fetcher, the ISR driver and
//! parked fetches look at). In a B-tree each lookup walked two or three
//! nodes, each a cache miss in a large cluster: B-tree searches were ~14% of
//! a 100-broker simulation's wall time. Here a lookup is one read of a dense
//! position table and one of the entry. Partitions come and go rarely (a
//! topic created, grown, deleted, a replica moved), so the entries stay in
//! a vector kept ascending, which is the order every walk expects.

/// Position of an index that has no entry.
const ABSENT: u32 = u32::MAX;

/// Partitions by index `0..PARTITIONS_PER_TOPIC_MAX`, walked ascending.
#[derive(Debug)]
pub struct PartitionMap<V> {
    /// By partition index: its position in `entries`, or ABSENT. As long as
    /// the highest index ever inserted (4 bytes each: 40 KB at the largest).
    positions: Vec<u32>,
    /// Ascending by index.
    entries: Vec<(i32, V)>,
}

impl<V> Default for PartitionMap<V> {
    fn default() -> Self {
        PartitionMap {
            positions: Vec::new(),
            entries: Vec::new(),
        }
    }
}

impl<V> PartitionMap<V> {
    // --- getters -------------------------------------------------------------

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains_key(&self, index: &i32) -> bool {
        self.position(*index).is_some()
    }

    pub fn get(&self, index: &i32) -> Option<&V> {
        let at = self.position(*index)?;
        Some(&self.entries[at].1)
    }

    pub fn get_mut(&mut self, index: &i32) -> Option<&mut V> {
        let at = self.position(*index)?;
        Some(&mut self.entries[at].1)
    }

    /// Ascending by index.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&i32, &V)> + ExactSizeIterator {
        self.entries.iter().map(|(index, v)| (index, v))
    }

    /// Ascending by index.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&i32, &mut V)> {
        self.entries.iter_mut().map(|(index, v)| (&*index, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &i32> + ExactSizeIterator {
        self.entries.iter().map(|(index, _)| index)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    /// Ascending by index.
    pub fn into_values(self) -> impl Iterator<Item = V> {
        self.entries.into_iter().map(|(_, v)| v)
    }

    fn position(&self, index: i32) -> Option<usize> {
        let at = *self.positions.get(usize::try_from(index).ok()?)?;
        (at != ABSENT).then_some(at as usize)
    }

    // --- changes -------------------------------------------------------------

    /// Adds `v` at `index`; returns the value it replaces, if any. Appending
    /// past the highest index (how topics are created and grown) moves
    /// nothing; an index between others shifts the entries after it.
    pub fn insert(&mut self, index: i32, v: V) -> Option<V> {
        assert!(
            (0..crate::node::topics::PARTITIONS_PER_TOPIC_MAX).contains(&index),
            "partition index {index} out of range"
        );
        if let Some(at) = self.position(index) {
            return Some(std::mem::replace(&mut self.entries[at].1, v));
        }
        let slot = index as usize;
        if slot >= self.positions.len() {
            self.positions.resize(slot + 1, ABSENT);
        }
        let at = self.entries.partition_point(|(i, _)| *i < index);
        self.entries.insert(at, (index, v));
        self.renumber_from(at);
        None
    }

    pub fn remove(&mut self, index: &i32) -> Option<V> {
        let at = self.position(*index)?;
        let (_, v) = self.entries.remove(at);
        self.positions[*index as usize] = ABSENT;
        self.renumber_from(at);
        Some(v)
    }

    /// Points the positions of the entries from `at` on at them again.
    fn renumber_from(&mut self, at: usize) {
        for (position, (index, _)) in self.entries.iter().enumerate().skip(at) {
            self.positions[*index as usize] = position as u32;
        }
    }

    pub fn check_invariants(&self) {
        assert!(
            self.entries.windows(2).all(|w| w[0].0 < w[1].0),
            "entries ascend by index"
        );
        for (position, (index, _)) in self.entries.iter().enumerate() {
            assert_eq!(self.position(*index), Some(position), "index {index}");
        }
        let present = self.positions.iter().filter(|p| **p != ABSENT).count();
        assert_eq!(present, self.entries.len(), "no stale positions");
    }
}

impl<'a, V> IntoIterator for &'a PartitionMap<V> {
    type Item = (&'a i32, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (i32, V)>, fn(&(i32, V)) -> (&i32, &V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(index, v)| (index, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn an_index_between_others_keeps_every_lookup_right() {
        let mut map = PartitionMap::default();
        assert_eq!(map.insert(0, "a"), None);
        assert_eq!(map.insert(5, "f"), None);
        assert_eq!(map.insert(2, "c"), None);
        assert_eq!(map.insert(5, "F"), Some("f"));
        map.check_invariants();
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), [0, 2, 5]);
        assert_eq!(map.get(&5), Some(&"F"));
        assert_eq!(map.get(&1), None);
        assert_eq!(map.get(&-1), None);
        assert_eq!(map.get(&6), None);
        assert_eq!(map.remove(&0), Some("a"));
        map.check_invariants();
        assert_eq!(map.get(&2), Some(&"c"));
        assert_eq!(map.remove(&0), None);
    }

    proptest! {
        /// Any sequence of inserts and removes leaves the same contents, in
        /// the same order, as a B-tree given the same sequence.
        #[test]
        fn behaves_as_a_btree(ops in prop::collection::vec((any::<bool>(), 0i32..40, any::<u8>()), 0..200)) {
            let mut map = PartitionMap::default();
            let mut model = BTreeMap::new();
            for (add, index, v) in ops {
                if add {
                    prop_assert_eq!(map.insert(index, v), model.insert(index, v));
                } else {
                    prop_assert_eq!(map.remove(&index), model.remove(&index));
                }
                map.check_invariants();
                for probe in -1..41 {
                    prop_assert_eq!(map.get(&probe), model.get(&probe));
                }
            }
            let walked: Vec<(i32, u8)> = map.iter().map(|(k, v)| (*k, *v)).collect();
            let expected: Vec<(i32, u8)> = model.into_iter().collect();
            prop_assert_eq!(walked, expected);
        }
    }
}
