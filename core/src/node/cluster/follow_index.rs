//! Which partitions this node follows, by leader: what the replica fetcher
//! asks each leader for.
//!
//! The fetcher runs after every fetch answer, and a node of a large cluster
//! hosts hundreds of partitions: finding a leader's partitions by walking
//! all of them each time was most of the fetcher's cost. The index is kept
//! up to date from the partitions touched since the fetcher last looked
//! (`TouchReader::Fetcher`): a role only changes through a touch.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub struct FollowIndex {
    /// Leader -> topic -> the partitions followed from it, in the order a
    /// walk of the topics (by name) and partitions (ascending) meets them.
    by_leader: BTreeMap<i32, BTreeMap<String, BTreeSet<i32>>>,
    /// Topic -> partition -> its leader: the other direction.
    leader_of: BTreeMap<String, BTreeMap<i32, i32>>,
}

impl FollowIndex {
    /// The leaders this node follows some partition from, ascending.
    pub fn leaders(&self) -> impl Iterator<Item = i32> + '_ {
        self.by_leader.keys().copied()
    }

    /// The partitions followed from `leader`, by topic name then index.
    pub fn partitions_of(&self, leader: i32) -> impl Iterator<Item = (&str, i32)> + '_ {
        self.by_leader
            .get(&leader)
            .into_iter()
            .flat_map(|topics| topics.iter())
            .flat_map(|(topic, partitions)| partitions.iter().map(move |p| (topic.as_str(), *p)))
    }

    pub fn leader_of(&self, topic: &str, partition: i32) -> Option<i32> {
        self.leader_of.get(topic)?.get(&partition).copied()
    }

    /// Records that `topic`-`partition` is followed from `leader`, or not
    /// followed at all (`None`).
    pub fn set(&mut self, topic: &str, partition: i32, leader: Option<i32>) {
        let old = self.leader_of(topic, partition);
        if old == leader {
            return;
        }
        if let Some(old) = old {
            self.remove(topic, partition, old);
        }
        if let Some(leader) = leader {
            self.by_leader
                .entry(leader)
                .or_default()
                .entry(topic.to_string())
                .or_default()
                .insert(partition);
            self.leader_of
                .entry(topic.to_string())
                .or_default()
                .insert(partition, leader);
        }
        debug_assert_eq!(self.leader_of(topic, partition), leader);
    }

    /// Forgets every partition of `topic`.
    pub fn forget_topic(&mut self, topic: &str) {
        let Some(partitions) = self.leader_of.remove(topic) else {
            return;
        };
        // Bounded by the topic's partitions.
        for (partition, leader) in partitions {
            self.remove_from_leader(topic, partition, leader);
        }
    }

    pub fn clear(&mut self) {
        self.by_leader.clear();
        self.leader_of.clear();
    }

    fn remove(&mut self, topic: &str, partition: i32, leader: i32) {
        let partitions = self.leader_of.get_mut(topic).expect("indexed");
        partitions.remove(&partition);
        if partitions.is_empty() {
            self.leader_of.remove(topic);
        }
        self.remove_from_leader(topic, partition, leader);
    }

    /// Empty sets and maps go, so that `leaders` names only leaders
    /// something is followed from.
    fn remove_from_leader(&mut self, topic: &str, partition: i32, leader: i32) {
        let topics = self.by_leader.get_mut(&leader).expect("indexed");
        let partitions = topics.get_mut(topic).expect("indexed");
        partitions.remove(&partition);
        if partitions.is_empty() {
            topics.remove(topic);
        }
        if topics.is_empty() {
            self.by_leader.remove(&leader);
        }
    }

    /// Every entry as (topic, partition, leader), for comparing with a walk.
    pub fn entries(&self) -> impl Iterator<Item = (&str, i32, i32)> + '_ {
        self.leader_of.iter().flat_map(|(topic, partitions)| {
            partitions
                .iter()
                .map(move |(p, leader)| (topic.as_str(), *p, *leader))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(index: &FollowIndex, leader: i32) -> Vec<(String, i32)> {
        index
            .partitions_of(leader)
            .map(|(t, p)| (t.to_string(), p))
            .collect()
    }

    #[test]
    fn moves_follow_the_leader_and_empty_leaders_go() {
        let mut index = FollowIndex::default();
        index.set("b", 2, Some(1));
        index.set("a", 5, Some(1));
        index.set("a", 3, Some(1));
        index.set("a", 4, Some(2));
        assert_eq!(index.leaders().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(
            of(&index, 1),
            vec![("a".into(), 3), ("a".into(), 5), ("b".into(), 2)],
            "by topic name, then partition"
        );
        index.set("a", 4, Some(1));
        assert_eq!(index.leaders().collect::<Vec<_>>(), vec![1]);
        assert_eq!(index.leader_of("a", 4), Some(1));
        index.set("a", 3, None);
        index.forget_topic("a");
        assert_eq!(of(&index, 1), vec![("b".into(), 2)]);
        assert_eq!(index.leader_of("a", 5), None);
        index.set("b", 2, None);
        assert_eq!(index.leaders().count(), 0);
        assert_eq!(index.entries().count(), 0);
    }
}
