//! The coordinator's timers: one deadline per key, ordered by deadline, so
//! the node's `poll_timeout` is a lookup and expiry is a range scan.

use crate::time::Instant;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKey {
    /// A member (or a pending member awaiting its first real join) must be
    /// heard from by then (`session.timeout.ms`).
    Heartbeat { group: String, member: String },
    /// The join phase of a rebalance ends by then (initial delay or
    /// rebalance timeout).
    Join { group: String },
    /// Members that joined must send SyncGroup by then (rebalance timeout).
    Sync { group: String },
}

#[derive(Debug, Default)]
pub struct Timers {
    by_deadline: BTreeSet<(Instant, TimerKey)>,
    by_key: BTreeMap<TimerKey, Instant>,
}

impl Timers {
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn next(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(at, _)| *at)
    }

    pub fn deadline(&self, key: &TimerKey) -> Option<Instant> {
        self.by_key.get(key).copied()
    }

    /// Sets (or moves) the timer of `key`.
    pub fn set(&mut self, key: TimerKey, at: Instant) {
        self.cancel(&key);
        self.by_deadline.insert((at, key.clone()));
        self.by_key.insert(key, at);
    }

    pub fn cancel(&mut self, key: &TimerKey) {
        if let Some(at) = self.by_key.remove(key) {
            let removed = self.by_deadline.remove(&(at, key.clone()));
            assert!(removed, "the two timer indexes agree");
        }
    }

    /// Cancels every timer of `group`.
    pub fn cancel_group(&mut self, group: &str) {
        let keys: Vec<TimerKey> = self
            .by_key
            .keys()
            .filter(|k| match k {
                TimerKey::Heartbeat { group: g, .. }
                | TimerKey::Join { group: g }
                | TimerKey::Sync { group: g } => g == group,
            })
            .cloned()
            .collect();
        for key in keys {
            self.cancel(&key);
        }
    }

    /// Removes and returns the earliest timer due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<TimerKey> {
        let (at, _) = self.by_deadline.first()?;
        if *at > now {
            return None;
        }
        let (_, key) = self.by_deadline.pop_first().expect("checked above");
        self.by_key.remove(&key);
        Some(key)
    }

    pub fn check_invariants(&self) {
        assert_eq!(
            self.by_deadline.len(),
            self.by_key.len(),
            "each timer is indexed both ways"
        );
    }
}
