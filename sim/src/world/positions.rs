//! A consumer's fetch positions, and the same positions grouped by the
//! broker that leads each (as the client last learned it).
//!
//! A consumer of a large cluster holds thousands of positions and keeps a
//! fetch in flight to each of ~100 brokers; an answer frees one broker, and
//! walking every position to find that broker's partitions (and again to
//! know which brokers lead any) was a tenth of a 100-broker run. The
//! grouping is rebuilt only when a position came or went or a leader
//! changed, which generations count.

use super::Tp;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub(super) struct Positions {
    offsets: BTreeMap<Tp, i64>,
    /// Bumped whenever a position is added or removed (not when one moves).
    generation: u64,
    /// Per broker, the positions it leads, as indexes in the world's `tps`,
    /// ascending (the order a fetch session names them in); valid for
    /// `grouped_from`.
    by_leader: Vec<Vec<usize>>,
    /// (`generation`, the leaders' generation) `by_leader` was built from.
    grouped_from: Option<(u64, u64)>,
}

impl Positions {
    pub(super) fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub(super) fn get(&self, tp: &Tp) -> Option<i64> {
        self.offsets.get(tp).copied()
    }

    pub(super) fn contains_key(&self, tp: &Tp) -> bool {
        self.offsets.contains_key(tp)
    }

    /// Every position, by topic name then partition.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Tp, i64)> + '_ {
        self.offsets.iter().map(|(tp, offset)| (tp, *offset))
    }

    /// The grouping by leader, if it was built from this set of positions
    /// and these leaders (`leaders_generation`).
    pub(super) fn by_leader(&self, leaders_generation: u64) -> Option<&[Vec<usize>]> {
        (self.grouped_from == Some((self.generation, leaders_generation)))
            .then_some(self.by_leader.as_slice())
    }

    /// The position, to move it (the grouping stays valid).
    pub(super) fn get_mut(&mut self, tp: &Tp) -> Option<&mut i64> {
        self.offsets.get_mut(tp)
    }

    pub(super) fn insert(&mut self, tp: Tp, offset: i64) {
        if self.offsets.insert(tp, offset).is_none() {
            self.generation += 1;
        }
    }

    pub(super) fn remove(&mut self, tp: &Tp) {
        if self.offsets.remove(tp).is_some() {
            self.generation += 1;
        }
    }

    pub(super) fn clear(&mut self) {
        if !self.offsets.is_empty() {
            self.offsets.clear();
            self.generation += 1;
        }
    }

    /// Stores the grouping by leader built from the current positions and
    /// `leaders_generation`; `group` lists them (index in `tps`, leader).
    pub(super) fn group(
        &mut self,
        brokers: usize,
        leaders_generation: u64,
        group: impl Iterator<Item = (usize, Option<usize>)>,
    ) {
        self.by_leader.resize_with(brokers, Vec::new);
        for list in &mut self.by_leader {
            list.clear();
        }
        let mut grouped = 0;
        for (i, leader) in group {
            grouped += 1;
            if let Some(b) = leader {
                self.by_leader[b].push(i);
            }
        }
        assert_eq!(grouped, self.offsets.len(), "every position grouped");
        // Sorted here, once per grouping, not per fetch.
        for list in &mut self.by_leader {
            list.sort_unstable();
        }
        self.grouped_from = Some((self.generation, leaders_generation));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> Tp {
        ("t".to_string(), p)
    }

    #[test]
    fn the_grouping_goes_stale_when_a_position_or_a_leader_changes_not_when_one_moves() {
        let mut positions = Positions::default();
        positions.insert(tp(0), 5);
        positions.insert(tp(1), 7);
        assert!(positions.by_leader(0).is_none());
        positions.group(2, 0, [(0, Some(1)), (1, None)].into_iter());
        assert_eq!(positions.by_leader(0), Some(&[vec![], vec![0]][..]));
        *positions.get_mut(&tp(0)).expect("held") = 6;
        assert!(
            positions.by_leader(0).is_some(),
            "a moved position is still led by the same broker"
        );
        assert!(positions.by_leader(1).is_none(), "a leader changed");
        positions.insert(tp(1), 9);
        assert!(
            positions.by_leader(0).is_some(),
            "an update of a held position adds none"
        );
        positions.remove(&tp(1));
        assert!(positions.by_leader(0).is_none(), "a position went");
        positions.group(2, 0, [(0, Some(0))].into_iter());
        positions.clear();
        assert!(positions.by_leader(0).is_none());
        assert!(positions.is_empty());
    }
}
