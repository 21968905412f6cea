//! The leader's side: followers' progress, the ISR, the high watermark.

use super::{PartitionAssignment, ReplicationConfig};
use crate::log::{LogError, PartitionLog};
use crate::storage::Storage;
use crate::time::Instant;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A replica fetch as the leader sees it (Kafka's FetchRequest from a
/// broker: `replica_state.replica_id` and one partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaFetch {
    pub replica_id: i32,
    /// -1 when the follower does not name one (older clients, or the
    /// `unfenced-truncation` bug).
    pub current_leader_epoch: i32,
    pub fetch_offset: i64,
    /// How much of the follower's log is on its disk: the high watermark
    /// counts no more of it. At most `fetch_offset`; equal to it when the
    /// follower promises no more than Kafka's (its fetch offset counts as
    /// replicated), or fetches only once it has synced.
    pub synced_offset: i64,
    /// The epoch of the follower's last batch, -1 when its log is empty.
    pub last_fetched_epoch: i32,
    /// The follower's broker epoch (`replica_state.replica_epoch`), -1 when
    /// not known: an ISR expansion names it (KIP-903), so the controller
    /// refuses one decided on a fetch from an earlier incarnation.
    pub replica_epoch: i64,
}

/// What the leader answers a replica fetch with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchDecision {
    /// An error code (fenced or unknown epoch, not a replica).
    Error(i16),
    /// The follower's log diverges: it must truncate (KIP-320/KIP-595).
    Diverging { epoch: i32, end_offset: i64 },
    /// Read from `fetch_offset` and send with this high watermark.
    Read {
        fetch_offset: i64,
        high_watermark: i64,
    },
}

/// A change of the ISR to propose to the controller (AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub new_isr: BTreeSet<i32>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// The controller's answer to an AlterPartition, as far as the pending
/// change goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrAnswer {
    /// Accepted: the change arrives through the committed metadata.
    Applied,
    /// Refused as not applied (INELIGIBLE_REPLICA, OPERATION_NOT_ATTEMPTED):
    /// the controller checked it against the current partition epoch.
    NotApplied,
    /// Refused because this leader's view is stale (INVALID_UPDATE_VERSION,
    /// FENCED_LEADER_EPOCH, UNKNOWN_TOPIC_*, INVALID_REQUEST): it may have
    /// been applied already, by an earlier send; newer metadata settles it.
    AwaitMetadata,
    /// Lost, timed out, or not the controller: send it again.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end as its last valid fetch reported; -1 unknown.
    pub log_end_offset: i64,
    /// How much of that its last valid fetch said is on its disk (the
    /// high watermark waits for it); -1 unknown.
    pub synced_offset: i64,
    /// When the follower was last known to have everything the leader had.
    pub last_caught_up_at: Instant,
    /// The broker epoch its last valid fetch carried; -1 unknown.
    pub broker_epoch: i64,
    last_fetch_at: Instant,
    /// The leader's log end at the follower's last fetch.
    last_fetch_leader_log_end_offset: i64,
}

impl FollowerProgress {
    /// A follower this leader has not heard from yet, as of `now` with the
    /// leader's log ending at `leader_log_end_offset`.
    fn joining(now: Instant, leader_log_end_offset: i64) -> FollowerProgress {
        FollowerProgress {
            log_end_offset: -1,
            synced_offset: -1,
            last_caught_up_at: now,
            broker_epoch: -1,
            last_fetch_at: now,
            last_fetch_leader_log_end_offset: leader_log_end_offset,
        }
    }
}

#[derive(Debug)]
pub struct LeaderReplica {
    replica_id: i32,
    config: ReplicationConfig,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    isr: BTreeSet<i32>,
    /// An AlterPartition sent and not known to have failed: at most one at
    /// a time. It stays until the committed metadata brings a newer
    /// partition epoch, or the controller says it did not apply it: until
    /// then the controller may have applied it, so the high watermark
    /// waits for its members too (KIP-497's maximal ISR).
    pending_isr: Option<BTreeSet<i32>>,
    /// The pending change's answer was lost (or the controller moved):
    /// send it again.
    pending_resend: bool,
    /// A change decided but not yet taken by the caller. Decided on the
    /// committed state of its partition epoch: a newer one drops it.
    proposal: Option<IsrChange>,
    followers: BTreeMap<i32, FollowerProgress>,
    /// The log end when this replica became leader: a follower below it may
    /// still hold records of an older epoch that this leader does not.
    leader_epoch_start_offset: i64,
    high_watermark: i64,
}

impl LeaderReplica {
    /// Takes leadership of `log` as `assignment` says. `high_watermark` is
    /// the one this replica knew as a follower.
    pub fn become_leader(
        replica_id: i32,
        config: ReplicationConfig,
        assignment: &PartitionAssignment,
        log: &mut PartitionLog,
        storage: &mut dyn Storage,
        high_watermark: i64,
        now: Instant,
    ) -> Result<LeaderReplica, LogError> {
        assignment.check_invariants();
        assert_eq!(
            assignment.leader, replica_id,
            "only the assigned leader leads"
        );
        if !config.bugs.no_epoch_on_become_leader {
            log.assign_leader_epoch(storage, assignment.leader_epoch)?;
        }
        let leo = log.log_end_offset();
        // ISR members get a full lag window before they can be judged, as
        // Kafka starts their clocks at election time.
        let followers = assignment
            .replicas
            .iter()
            .filter(|r| **r != replica_id)
            .map(|r| (*r, FollowerProgress::joining(now, leo)))
            .collect();
        let leader = LeaderReplica {
            replica_id,
            leader_epoch: assignment.leader_epoch,
            partition_epoch: assignment.partition_epoch,
            replicas: assignment.replicas.clone(),
            isr: assignment.isr.clone(),
            pending_isr: None,
            pending_resend: false,
            proposal: None,
            followers,
            leader_epoch_start_offset: leo,
            high_watermark: high_watermark.clamp(log.log_start_offset(), leo),
            config,
        };
        leader.check_invariants(leo);
        Ok(leader)
    }

    // --- getters ------------------------------------------------------------

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn isr(&self) -> &BTreeSet<i32> {
        &self.isr
    }

    /// The partition's replica set, as the last assignment gave it.
    pub fn replicas(&self) -> &[i32] {
        &self.replicas
    }

    pub fn leader_epoch_start_offset(&self) -> i64 {
        self.leader_epoch_start_offset
    }

    pub fn follower(&self, replica_id: i32) -> Option<&FollowerProgress> {
        self.followers.get(&replica_id)
    }

    /// The ISR the high watermark must respect: the committed ISR plus any
    /// member an AlterPartition in flight adds (KIP-497's "maximal ISR"),
    /// since the controller may already have committed it.
    pub fn maximal_isr(&self) -> BTreeSet<i32> {
        let mut maximal = self.isr.clone();
        if !self.config.bugs.hw_on_old_isr {
            if let Some(pending) = &self.pending_isr {
                maximal.extend(pending.iter().copied());
            }
        }
        maximal
    }

    /// Whether acks=all may be attempted now (NOT_ENOUGH_REPLICAS if not).
    pub fn enough_replicas(&self) -> bool {
        self.isr.len() >= self.config.min_insync_replicas
    }

    /// Whether an acks=all write ending at `end_offset` is complete:
    /// replicated to the ISR, which is still large enough (else
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    pub fn acks_all_complete(&self, end_offset: i64) -> Option<Result<(), i16>> {
        if self.high_watermark < end_offset {
            return None;
        }
        if self.enough_replicas() {
            Some(Ok(()))
        } else {
            Some(Err(ResponseError::NotEnoughReplicasAfterAppend.code()))
        }
    }

    /// Kafka's `DelayedFetch.tryComplete` for a follower's fetch that was
    /// parked with nothing to read: whether it may now be answered with
    /// more than that, records past its offset or a refusal (the same
    /// `refusal` that `handle_fetch` and `complete_parked_fetch` answer
    /// with). Reads and records nothing, so it is cheap enough to ask on
    /// every append.
    pub fn parked_fetch_may_complete(&self, log: &PartitionLog, fetch: &ReplicaFetch) -> bool {
        fetch.fetch_offset != log.log_end_offset() || self.refusal(log, fetch).is_some()
    }

    // --- inputs -------------------------------------------------------------

    /// A follower's fetch. `leader_end_offset` is how far the leader's own
    /// log counts for the high watermark (its flushed end when acks wait
    /// for fsync, else its log end).
    pub fn handle_fetch(
        &mut self,
        log: &PartitionLog,
        leader_end_offset: i64,
        now: Instant,
        fetch: &ReplicaFetch,
    ) -> FetchDecision {
        assert!(
            leader_end_offset <= log.log_end_offset(),
            "the leader counts at most its log end"
        );
        if let Some(refusal) = self.refusal(log, fetch) {
            return refusal;
        }
        self.update_follower(log, now, fetch);
        self.maybe_expand_isr(fetch.replica_id);
        self.update_high_watermark(leader_end_offset);
        FetchDecision::Read {
            fetch_offset: fetch.fetch_offset,
            high_watermark: self.high_watermark,
        }
    }

    /// A follower's fetch that was parked completing (Kafka's
    /// `DelayedFetch.onComplete`): checked again and read, but its progress
    /// is not recorded again; `handle_fetch` did that when it arrived.
    pub fn complete_parked_fetch(&self, log: &PartitionLog, fetch: &ReplicaFetch) -> FetchDecision {
        match self.refusal(log, fetch) {
            Some(refusal) => refusal,
            None => FetchDecision::Read {
                fetch_offset: fetch.fetch_offset,
                high_watermark: self.high_watermark,
            },
        }
    }

    /// The leader's own log grew or was flushed: the high watermark may move
    /// (a single-replica ISR has no fetches to wait for). Returns whether it
    /// moved.
    pub fn handle_leader_end_offset(&mut self, leader_end_offset: i64) -> bool {
        self.update_high_watermark(leader_end_offset)
    }

    /// The controller committed an ISR change (ours or its own, e.g. after a
    /// broker was fenced), or a change of the replicas (a reassignment,
    /// KIP-455): a joining replica is tracked from `now` so its fetches are
    /// served and it can catch up into the ISR; a departed one is
    /// forgotten.
    pub fn handle_assignment(
        &mut self,
        assignment: &PartitionAssignment,
        leader_end_offset: i64,
        now: Instant,
    ) {
        assignment.check_invariants();
        assert_eq!(
            assignment.leader_epoch, self.leader_epoch,
            "a new leader epoch makes a new LeaderReplica"
        );
        assert!(
            assignment.partition_epoch >= self.partition_epoch,
            "partition epochs only grow"
        );
        self.partition_epoch = assignment.partition_epoch;
        self.isr = assignment.isr.clone();
        self.replicas = assignment.replicas.clone();
        let replica_id = self.replica_id;
        self.followers
            .retain(|r, _| *r != replica_id && assignment.replicas.contains(r));
        for &r in &assignment.replicas {
            if r != replica_id && !self.followers.contains_key(&r) {
                self.followers
                    .insert(r, FollowerProgress::joining(now, leader_end_offset));
            }
        }
        self.pending_isr = None;
        self.pending_resend = false;
        // A change decided on the old state and not yet sent would go out
        // with the old partition epoch: the controller refuses it
        // (INVALID_UPDATE_VERSION) and the leader would wait for metadata
        // that has already come, never proposing again (explore found it:
        // fast-failover seed 6260). The next fetch or lag check decides
        // afresh on the new state.
        self.proposal = None;
        self.update_high_watermark(leader_end_offset);
    }

    /// What became of the pending AlterPartition, as Kafka's
    /// `Partition.handleAlterPartitionError` sorts it. Only an answer
    /// saying it was not applied forgets it: after a lost answer (or a
    /// retry's refusal) the controller may have applied it, and a leader
    /// that dropped a member it may have added would count its high
    /// watermark without that member while the committed ISR names it.
    ///
    /// `leader_epoch` and `partition_epoch` are those the request was sent
    /// with: the answer to a request from an earlier state (the pending
    /// change it was for was dropped when newer metadata came) says
    /// nothing about the change pending now, and is ignored, as Kafka's
    /// `Partition` ignores an answer once its partition state moved on.
    pub fn handle_isr_change_answer(
        &mut self,
        leader_epoch: i32,
        partition_epoch: i32,
        answer: IsrAnswer,
    ) {
        let stale = leader_epoch != self.leader_epoch || partition_epoch != self.partition_epoch;
        if self.pending_isr.is_none() || stale {
            return;
        }
        match answer {
            IsrAnswer::Applied | IsrAnswer::AwaitMetadata => {}
            IsrAnswer::NotApplied => {
                self.pending_isr = None;
                self.pending_resend = false;
            }
            IsrAnswer::Unknown => self.pending_resend = true,
        }
    }

    /// Followers in the ISR that have not caught up within
    /// `replica.lag.time.max.ms` are proposed out of it.
    pub fn maybe_shrink_isr(&mut self, now: Instant) {
        if !self.shrink_due(now) {
            return;
        }
        let lagging: BTreeSet<i32> = self.lagging(now).collect();
        let new_isr = self.isr.difference(&lagging).copied().collect();
        self.propose(new_isr);
    }

    /// Whether `maybe_shrink_isr` would propose a change now.
    pub fn shrink_due(&self, now: Instant) -> bool {
        self.pending_isr.is_none() && self.proposal.is_none() && self.lagging(now).next().is_some()
    }

    /// Whether `poll_isr_change` has a change to send.
    pub fn isr_change_ready(&self) -> bool {
        self.pending_resend || self.proposal.is_some()
    }

    fn lagging(&self, now: Instant) -> impl Iterator<Item = i32> + '_ {
        let lag_max = Duration::from_millis(self.config.replica_lag_time_max_ms);
        self.isr
            .iter()
            .filter(|r| **r != self.replica_id)
            .filter(move |r| {
                self.followers
                    .get(r)
                    .is_some_and(|f| now.saturating_duration_since(f.last_caught_up_at) > lag_max)
            })
            .copied()
    }

    // --- outputs ------------------------------------------------------------

    /// An AlterPartition to send to the controller, if one was decided.
    pub fn poll_isr_change(&mut self) -> Option<IsrChange> {
        if self.pending_resend {
            self.pending_resend = false;
            let new_isr = self.pending_isr.clone().expect("a resend has its change");
            return Some(IsrChange {
                new_isr,
                leader_epoch: self.leader_epoch,
                partition_epoch: self.partition_epoch,
            });
        }
        let change = self.proposal.take()?;
        self.pending_isr = Some(change.new_isr.clone());
        Some(change)
    }

    pub fn check_invariants(&self, log_end_offset: i64) {
        assert!(
            self.isr.contains(&self.replica_id),
            "leader_in_isr: {} not in {:?}",
            self.replica_id,
            self.isr
        );
        let replicas: BTreeSet<i32> = self.replicas.iter().copied().collect();
        assert!(self.isr.is_subset(&replicas), "isr_subset_of_replicas");
        assert!(
            self.high_watermark <= log_end_offset,
            "high watermark {} beyond log end {log_end_offset}",
            self.high_watermark
        );
        assert!(
            self.pending_isr.is_none() || self.proposal.is_none(),
            "one ISR change at a time"
        );
        assert!(
            !self.pending_resend || self.pending_isr.is_some(),
            "only a pending change is sent again"
        );
    }

    // --- leaves -------------------------------------------------------------

    /// Why the leader answers `fetch` without records: the follower is not a
    /// replica, its epoch is not ours, its log diverges, or its offset is
    /// out of range. None when it is served.
    fn refusal(&self, log: &PartitionLog, fetch: &ReplicaFetch) -> Option<FetchDecision> {
        if !self.followers.contains_key(&fetch.replica_id) {
            return Some(FetchDecision::Error(
                ResponseError::NotLeaderOrFollower.code(),
            ));
        }
        if fetch.current_leader_epoch >= 0 && fetch.current_leader_epoch != self.leader_epoch {
            let code = if fetch.current_leader_epoch < self.leader_epoch {
                ResponseError::FencedLeaderEpoch
            } else {
                ResponseError::UnknownLeaderEpoch
            };
            return Some(FetchDecision::Error(code.code()));
        }
        if let Some(diverging) = self.divergence(log, fetch) {
            return Some(diverging);
        }
        if fetch.fetch_offset < log.log_start_offset() || fetch.fetch_offset > log.log_end_offset()
        {
            return Some(FetchDecision::Error(ResponseError::OffsetOutOfRange.code()));
        }
        None
    }

    fn divergence(&self, log: &PartitionLog, fetch: &ReplicaFetch) -> Option<FetchDecision> {
        if fetch.last_fetched_epoch < 0 || fetch.fetch_offset == 0 {
            return None;
        }
        match log.end_offset_for_epoch(fetch.last_fetched_epoch) {
            Some((epoch, end_offset))
                if epoch == fetch.last_fetched_epoch && end_offset >= fetch.fetch_offset =>
            {
                None
            }
            Some((epoch, end_offset)) => Some(FetchDecision::Diverging { epoch, end_offset }),
            // No epoch at or below the follower's: everything it has is
            // unknown here, down to our log start.
            None => Some(FetchDecision::Diverging {
                epoch: -1,
                end_offset: log.log_start_offset(),
            }),
        }
    }

    fn update_follower(&mut self, log: &PartitionLog, now: Instant, fetch: &ReplicaFetch) {
        assert!(
            fetch.synced_offset <= fetch.fetch_offset,
            "a follower syncs at most what it has"
        );
        let leo = log.log_end_offset();
        let progress = self
            .followers
            .get_mut(&fetch.replica_id)
            .expect("checked by the caller");
        // Kafka's ReplicaState.updateFetchState: caught up now if it has
        // everything; caught up at its previous fetch if it now has what the
        // leader had then.
        if fetch.fetch_offset >= leo {
            progress.last_caught_up_at = now;
        } else if fetch.fetch_offset >= progress.last_fetch_leader_log_end_offset {
            progress.last_caught_up_at = progress.last_caught_up_at.max(progress.last_fetch_at);
        }
        progress.log_end_offset = fetch.fetch_offset;
        progress.synced_offset = fetch.synced_offset;
        progress.broker_epoch = fetch.replica_epoch;
        progress.last_fetch_at = now;
        progress.last_fetch_leader_log_end_offset = leo;
    }

    /// Kafka's `isFollowerInSync` for expansion: at or past the high
    /// watermark and past the leader epoch start offset (KAFKA-7128: below
    /// it the follower may hold an older epoch's records this leader lacks).
    fn maybe_expand_isr(&mut self, replica_id: i32) {
        if self.isr.contains(&replica_id) || self.pending_isr.is_some() || self.proposal.is_some() {
            return;
        }
        // What the follower holds durably: a member that joins with an
        // unsynced tail below the high watermark could come back from a
        // power cut without records acknowledged to the ISR it joins, and
        // be elected from it.
        let end = self.durable_end(&self.followers[&replica_id]);
        let past_epoch_start =
            self.config.bugs.isr_expand_before_leso || end >= self.leader_epoch_start_offset;
        if end >= self.high_watermark && past_epoch_start {
            let mut new_isr = self.isr.clone();
            new_isr.insert(replica_id);
            self.propose(new_isr);
        }
    }

    /// How far a follower's log counts for the high watermark and for
    /// joining the ISR: as far as it said it synced.
    fn durable_end(&self, follower: &FollowerProgress) -> i64 {
        if self.config.bugs.hw_counts_unsynced {
            follower.log_end_offset
        } else {
            follower.synced_offset
        }
    }

    fn propose(&mut self, new_isr: BTreeSet<i32>) {
        assert!(
            new_isr.contains(&self.replica_id),
            "the leader never proposes itself out"
        );
        self.proposal = Some(IsrChange {
            new_isr,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
        });
    }

    /// The high watermark is the smallest log end in the maximal ISR, as
    /// far as each replica has it on disk when it says so; it never goes
    /// back. Returns whether it moved.
    fn update_high_watermark(&mut self, leader_end_offset: i64) -> bool {
        let mut low = leader_end_offset;
        // The maximal ISR without building it (a set per call was a few
        // percent of a cluster run): a member named twice counts once in
        // a minimum anyway.
        let pending = self
            .pending_isr
            .iter()
            .filter(|_| !self.config.bugs.hw_on_old_isr)
            .flatten();
        for &member in self.isr.iter().chain(pending) {
            if member == self.replica_id {
                continue;
            }
            let follower_end = self
                .followers
                .get(&member)
                .map_or(-1, |f| self.durable_end(f));
            low = low.min(follower_end);
        }
        if low > self.high_watermark {
            self.high_watermark = low;
            true
        } else {
            false
        }
    }
}
