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
use std::sync::Arc;

/// Where each workload topic's partitions begin in the world's `tps`, and
/// how many it has: a partition's index there is `base + partition`.
pub(super) type TpBase = BTreeMap<String, (usize, i32)>;

/// `topic`-`partition`'s index in the world's `tps`; None for a partition
/// outside the workload.
pub(super) fn tp_index(tp_base: &TpBase, topic: &str, partition: i32) -> Option<usize> {
    let &(base, count) = tp_base.get(topic)?;
    (0..count)
        .contains(&partition)
        .then(|| base + partition as usize)
}

#[derive(Debug)]
pub(super) struct Positions {
    tp_base: Arc<TpBase>,
    /// By index in the world's `tps`: the position, if held. A fetch
    /// builds its list from the grouping's indexes and an answer names
    /// them: looking each up by (topic name, partition) in a map of ~3,300
    /// was ~3% of a 100-broker run.
    offsets: Vec<Option<i64>>,
    held: usize,
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
    pub(super) fn new(tp_base: Arc<TpBase>) -> Positions {
        let tps = tp_base
            .values()
            .map(|(base, count)| base + *count as usize)
            .max()
            .unwrap_or(0);
        Positions {
            tp_base,
            offsets: vec![None; tps],
            held: 0,
            generation: 0,
            by_leader: Vec::new(),
            grouped_from: None,
        }
    }

    fn index(&self, tp: &Tp) -> Option<usize> {
        tp_index(&self.tp_base, &tp.0, tp.1)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.held == 0
    }

    pub(super) fn get(&self, tp: &Tp) -> Option<i64> {
        self.get_at(self.index(tp)?)
    }

    /// The position of the partition at `i` in the world's `tps`; None
    /// also for an `i` outside it (an answer naming a partition not of the
    /// workload is judged elsewhere, not a panic here).
    pub(super) fn get_at(&self, i: usize) -> Option<i64> {
        self.offsets.get(i).copied().flatten()
    }

    pub(super) fn contains_key(&self, tp: &Tp) -> bool {
        self.get(tp).is_some()
    }

    /// Every position as (index in the world's `tps`, offset), ascending.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, i64)> + '_ {
        self.offsets
            .iter()
            .enumerate()
            .filter_map(|(i, offset)| Some((i, (*offset)?)))
    }

    /// The grouping by leader, if it was built from this set of positions
    /// and these leaders (`leaders_generation`).
    pub(super) fn by_leader(&self, leaders_generation: u64) -> Option<&[Vec<usize>]> {
        (self.grouped_from == Some((self.generation, leaders_generation)))
            .then_some(self.by_leader.as_slice())
    }

    /// The position of the partition at `i` in the world's `tps`, to move
    /// it (the grouping stays valid).
    pub(super) fn get_mut_at(&mut self, i: usize) -> Option<&mut i64> {
        self.offsets.get_mut(i)?.as_mut()
    }

    /// Holds a position of `tp`, a partition of the workload.
    pub(super) fn insert(&mut self, tp: &Tp, offset: i64) {
        let i = self.index(tp).expect("a position of a workload partition");
        if self.offsets[i].replace(offset).is_none() {
            self.held += 1;
            self.generation += 1;
        }
    }

    pub(super) fn remove(&mut self, tp: &Tp) {
        let Some(i) = self.index(tp) else {
            return;
        };
        if self.offsets[i].take().is_some() {
            self.held -= 1;
            self.generation += 1;
        }
    }

    pub(super) fn clear(&mut self) {
        if self.held > 0 {
            self.offsets.fill(None);
            self.held = 0;
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
        assert_eq!(grouped, self.held, "every position grouped");
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

    fn positions() -> Positions {
        Positions::new(Arc::new(TpBase::from([("t".to_string(), (0, 2))])))
    }

    #[test]
    fn the_grouping_goes_stale_when_a_position_or_a_leader_changes_not_when_one_moves() {
        let mut positions = positions();
        positions.insert(&tp(0), 5);
        positions.insert(&tp(1), 7);
        assert!(positions.by_leader(0).is_none());
        positions.group(2, 0, [(0, Some(1)), (1, None)].into_iter());
        assert_eq!(positions.by_leader(0), Some(&[vec![], vec![0]][..]));
        *positions.get_mut_at(0).expect("held") = 6;
        assert!(
            positions.by_leader(0).is_some(),
            "a moved position is still led by the same broker"
        );
        assert!(positions.by_leader(1).is_none(), "a leader changed");
        positions.insert(&tp(1), 9);
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

    #[test]
    fn positions_are_found_by_name_and_by_index_alike() {
        let mut positions = positions();
        positions.insert(&tp(1), 7);
        assert_eq!(positions.get(&tp(1)), Some(7));
        assert_eq!(positions.get_at(1), Some(7));
        assert_eq!(positions.get(&tp(0)), None);
        assert_eq!(positions.get(&tp(2)), None, "outside the topic");
        assert_eq!(positions.get(&("u".to_string(), 0)), None, "another topic");
        assert_eq!(positions.get_at(usize::MAX), None, "not of the workload");
        assert!(positions.get_mut_at(usize::MAX).is_none());
        *positions.get_mut_at(1).expect("held") = 8;
        assert_eq!(positions.iter().collect::<Vec<_>>(), vec![(1, 8)]);
        positions.remove(&tp(1));
        positions.remove(&tp(1));
        assert!(positions.is_empty(), "a second removal counts nothing");
    }
}
