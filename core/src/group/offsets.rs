//! Committed offsets of one group, with Kafka's expiry rule (KIP-211).

use crate::time::Instant;
use std::collections::BTreeMap;

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// (topic, partition) -> committed offset, ordered so that OffsetFetch with
/// no topic list answers in a stable order.
pub type TopicPartition = (String, i32);

#[derive(Debug, Default)]
pub struct OffsetStore {
    committed: BTreeMap<TopicPartition, Committed>,
    /// Commits appended but not yet durable, counted per partition: an
    /// OffsetFetch with `require_stable` is told UNSTABLE_OFFSET_COMMIT
    /// for those rather than a value a crash could take back.
    pending: BTreeMap<TopicPartition, u32>,
}

impl OffsetStore {
    pub fn len(&self) -> usize {
        self.committed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.committed.is_empty() && self.pending.is_empty()
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<&Committed> {
        self.committed.get(tp)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TopicPartition, &Committed)> {
        self.committed.iter()
    }

    pub fn is_pending(&self, tp: &TopicPartition) -> bool {
        self.pending.contains_key(tp)
    }

    pub fn add_pending(&mut self, tp: TopicPartition) {
        *self.pending.entry(tp).or_insert(0) += 1;
    }

    pub fn remove_pending(&mut self, tp: &TopicPartition) {
        let count = self
            .pending
            .get_mut(tp)
            .expect("a pending commit completes once");
        *count -= 1;
        if *count == 0 {
            self.pending.remove(tp);
        }
    }

    pub fn put(&mut self, tp: TopicPartition, committed: Committed) {
        self.committed.insert(tp, committed);
    }

    pub fn remove(&mut self, tp: &TopicPartition) -> Option<Committed> {
        self.committed.remove(tp)
    }

    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.committed.keys().map(|(t, _)| t.as_str())
    }

    /// Offsets past retention. An offset's clock starts at its commit or at
    /// the moment the group became Empty, whichever is later (Kafka's
    /// `currentStateTimestamp` rule): a group that sat idle keeps its
    /// offsets for the full retention after the last member left.
    pub fn expired(
        &self,
        now: Instant,
        empty_since_ms: Option<i64>,
        retention_ms: i64,
    ) -> Vec<TopicPartition> {
        let now_ms = now.unix_millis();
        self.committed
            .iter()
            .filter(|(tp, c)| {
                let base = c
                    .commit_timestamp_ms
                    .max(empty_since_ms.unwrap_or(i64::MIN));
                !self.pending.contains_key(*tp) && now_ms.saturating_sub(base) >= retention_ms
            })
            .map(|(tp, _)| tp.clone())
            .collect()
    }
}
