//! The leader's bookkeeping (Kafka's `LeaderState`): how far each voter's
//! durable log reaches, the high watermark by majority with the own-epoch
//! rule, check-quorum, and fetches parked until there is something to say.

use super::messages::FetchRequestFields;
use crate::time::Instant;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What the leader knows of one voter.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReplicaProgress {
    /// The voter's durable log end, as its last valid fetch reported it
    /// (the leader's own: its flushed log end).
    pub(crate) end_offset: Option<i64>,
    pub(crate) last_fetch_at: Option<Instant>,
    /// The voter acknowledged BeginQuorumEpoch or fetched in this epoch.
    pub(crate) knows_leader: bool,
}

/// A fetch with nothing to answer yet, held until the log grows, the high
/// watermark moves past the follower's, or `deadline` (long poll).
#[derive(Debug, Clone)]
pub(crate) struct ParkedFetch {
    pub(crate) correlation_id: i32,
    pub(crate) fields: FetchRequestFields,
    pub(crate) deadline: Instant,
}

/// Observers (broker-only nodes) whose fetches may wait on the leader at
/// once; more are answered at once.
pub(crate) const OBSERVER_FETCHES_PARKED_MAX: usize = 1024;

#[derive(Debug)]
pub(crate) struct LeaderState {
    pub(crate) self_id: i32,
    pub(crate) epoch: i32,
    /// The offset of the leader's first record of its epoch (its
    /// LeaderChange control batch). Nothing commits before it does.
    pub(crate) epoch_start_offset: i64,
    /// `None` until the first commit of this epoch.
    pub(crate) high_watermark: Option<i64>,
    /// Every voter, the leader included.
    pub(crate) replicas: BTreeMap<i32, ReplicaProgress>,
    /// Voters (the leader included) heard from in this check-quorum window.
    pub(crate) fetched_in_window: BTreeSet<i32>,
    /// The leader resigns unless a majority fetched before this.
    pub(crate) check_quorum_deadline: Instant,
    pub(crate) check_quorum_window: Duration,
    /// BeginQuorumEpoch goes again to voters that have not acknowledged.
    pub(crate) begin_quorum_resend_at: Instant,
    /// At most one per voter: a newer fetch replaces the older one.
    pub(crate) parked: BTreeMap<i32, ParkedFetch>,
}

impl LeaderState {
    pub(crate) fn new(
        epoch: i32,
        self_id: i32,
        voters: impl Iterator<Item = i32>,
        epoch_start_offset: i64,
        now: Instant,
        check_quorum_window: Duration,
    ) -> LeaderState {
        let mut replicas: BTreeMap<i32, ReplicaProgress> =
            voters.map(|id| (id, ReplicaProgress::default())).collect();
        let own = replicas
            .get_mut(&self_id)
            .expect("a leader is one of the voters");
        own.knows_leader = true;
        LeaderState {
            self_id,
            epoch,
            epoch_start_offset,
            high_watermark: None,
            replicas,
            fetched_in_window: BTreeSet::from([self_id]),
            check_quorum_deadline: now + check_quorum_window,
            check_quorum_window,
            begin_quorum_resend_at: now,
            parked: BTreeMap::new(),
        }
    }

    /// Whether a fetch from `replica_id` may wait here (a voter always can;
    /// observers while the bound allows).
    pub(crate) fn may_park(&self, replica_id: i32) -> bool {
        self.replicas.contains_key(&replica_id)
            || self.parked.contains_key(&replica_id)
            || self.parked.len() < self.replicas.len() + OBSERVER_FETCHES_PARKED_MAX
    }

    pub(crate) fn majority(&self) -> usize {
        self.replicas.len() / 2 + 1
    }

    /// A fetch in this epoch from `replica_id`: it follows this leader
    /// (check-quorum counts it, valid or diverging).
    pub(crate) fn on_fetch(&mut self, replica_id: i32, now: Instant) {
        let Some(progress) = self.replicas.get_mut(&replica_id) else {
            return; // an observer: served, not counted
        };
        progress.last_fetch_at = Some(now);
        progress.knows_leader = true;
        self.fetched_in_window.insert(replica_id);
        if self.fetched_in_window.len() >= self.majority() {
            // A majority heard from: open a new window, the leader in it.
            self.fetched_in_window.clear();
            self.fetched_in_window.insert(self.self_id);
            self.check_quorum_deadline = now + self.check_quorum_window;
        }
    }

    /// A valid fetch from `replica_id` at `fetch_offset`: its durable log
    /// end, known to match the leader's log below it.
    pub(crate) fn on_progress(&mut self, replica_id: i32, fetch_offset: i64) {
        if let Some(progress) = self.replicas.get_mut(&replica_id) {
            progress.end_offset = Some(fetch_offset);
        }
    }

    /// The leader's own durable log end moved.
    pub(crate) fn on_own_flush(&mut self, self_id: i32, synced_offset: i64) {
        let own = self.replicas.get_mut(&self_id).expect("leader is a voter");
        own.end_offset = Some(synced_offset);
    }

    /// Advances the high watermark to the largest offset a majority holds
    /// durably, once that covers a record of this epoch (the own-epoch
    /// rule: committing only earlier-epoch records by counting replicas is
    /// Raft's figure-8 bug). `commit_prior_epoch` switches the rule off.
    /// Returns whether the high watermark moved.
    pub(crate) fn maybe_advance_high_watermark(&mut self, commit_prior_epoch: bool) -> bool {
        let mut ends: Vec<i64> = self
            .replicas
            .values()
            .filter_map(|p| p.end_offset)
            .collect();
        let majority = self.majority();
        if ends.len() < majority {
            return false;
        }
        ends.sort_unstable_by(|a, b| b.cmp(a));
        let majority_end = ends[majority - 1];
        let own_epoch_committed = majority_end > self.epoch_start_offset;
        if !own_epoch_committed && !commit_prior_epoch {
            return false;
        }
        match self.high_watermark {
            Some(high_watermark) if majority_end <= high_watermark => false,
            _ => {
                self.high_watermark = Some(majority_end);
                true
            }
        }
    }

    pub(crate) fn next_deadline(&self) -> Instant {
        let mut deadline = self.check_quorum_deadline.min(self.begin_quorum_resend_at);
        for parked in self.parked.values() {
            deadline = deadline.min(parked.deadline);
        }
        deadline
    }

    /// Voters that have not yet learned of this leader.
    pub(crate) fn unaware_voters(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .filter(|(_, p)| !p.knows_leader)
            .map(|(&id, _)| id)
            .collect()
    }

    pub(crate) fn check_invariants(&self, self_id: i32, log_end_offset: i64) {
        assert!(
            self.epoch_start_offset < log_end_offset,
            "leader of epoch {} has no record of its epoch: start {} log end {}",
            self.epoch,
            self.epoch_start_offset,
            log_end_offset
        );
        if let Some(high_watermark) = self.high_watermark {
            assert!(
                high_watermark <= log_end_offset,
                "high watermark {high_watermark} beyond log end {log_end_offset}"
            );
        }
        assert!(
            self.replicas.contains_key(&self_id),
            "leader {self_id} is among its replicas"
        );
        assert!(
            self.parked.len() <= self.replicas.len() + OBSERVER_FETCHES_PARKED_MAX,
            "at most one parked fetch per voter, and a bounded number of observers'"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader() -> LeaderState {
        LeaderState::new(
            3,
            1,
            [1, 2, 3].into_iter(),
            10,
            Instant::ZERO,
            Duration::from_millis(1000),
        )
    }

    #[test]
    fn high_watermark_waits_for_own_epoch() {
        let mut leader = leader();
        leader.on_own_flush(1, 11);
        leader.on_progress(2, 10);
        assert!(!leader.maybe_advance_high_watermark(false));
        assert_eq!(leader.high_watermark, None);
        // The bug commits the earlier-epoch prefix.
        assert!(leader.maybe_advance_high_watermark(true));
        assert_eq!(leader.high_watermark, Some(10));
        let mut leader = self::leader();
        leader.on_own_flush(1, 11);
        leader.on_progress(3, 11);
        assert!(leader.maybe_advance_high_watermark(false));
        assert_eq!(leader.high_watermark, Some(11));
    }

    #[test]
    fn check_quorum_window_renews_on_majority() {
        let mut leader = leader();
        let t = Instant::from_millis(500);
        leader.on_fetch(2, t);
        assert_eq!(leader.check_quorum_deadline, Instant::from_millis(1500));
    }
}
