//! Partition replication: one replica of one partition, as leader or as
//! follower, in Kafka's ISR model (KIP-101 leader epochs, KIP-320 fencing,
//! KIP-497 AlterPartition, KAFKA-7128 expansion rule).
//!
//! Where things happen, so a reader need not grep:
//! - the ISR shrinks in [`LeaderReplica::maybe_shrink_isr`] and grows in
//!   [`LeaderReplica::handle_fetch`] (`maybe_expand_isr`);
//! - the high watermark moves in `LeaderReplica::update_high_watermark`
//!   (over the *maximal* ISR: the committed one plus an expansion in
//!   flight) and, on followers, in [`FollowerReplica::handle_fetch_response`];
//! - divergence is found by the leader in `handle_fetch` and repaired by
//!   the follower in `handle_fetch_response` (truncation).
//!
//! The replicas are pure: they decide, the caller (the node) moves bytes,
//! sends AlterPartition to the controller and answers fetches. Every
//! historical bug of the replication protocol that the simulator must find
//! is a flag in [`ReplicationBugs`], off by default.

mod follower;
mod leader;

pub use follower::{FetchResponseFields, FollowerOutcome, FollowerReplica};
pub use leader::{
    FetchDecision, FollowerProgress, IsrAnswer, IsrChange, LeaderReplica, ReplicaFetch,
};

use std::collections::BTreeSet;

/// Historical replication bugs, each switchable back on for the simulator
/// (../shared/INVARIANTS.md lists what each must break).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicationBugs {
    /// KIP-101 / KAFKA-1211: a new follower truncates to its high watermark.
    pub hw_truncation: bool,
    /// KIP-279 / KAFKA-6361: the follower truncates to the leader's epoch end
    /// without looking up its own end of that epoch, and after that first
    /// answer fetches by offset alone (as before KIP-595: no last fetched
    /// epoch, so the leader cannot tell it diverges).
    pub epoch_lookup_divergence: bool,
    /// KIP-320 / KAFKA-7395: fetches carry no leader epoch, so a follower
    /// can truncate against a stale leader; as before KIP-595, it fetches
    /// by offset alone once its first fetch of an epoch is answered, so
    /// the leader's divergence check does not stand in for the fence.
    pub unfenced_truncation: bool,
    /// KAFKA-7128: a follower joins the ISR below the leader epoch start
    /// offset.
    pub isr_expand_before_leso: bool,
    /// KAFKA-7415: a new leader does not write its epoch to the cache.
    pub no_epoch_on_become_leader: bool,
    /// KIP-497: the high watermark advances over the committed ISR while an
    /// expansion is in flight.
    pub hw_on_old_isr: bool,
    /// seedlog's own: the high watermark and ISR expansion count a
    /// follower's fetch offset though the follower said it has not synced
    /// that far (a follower streaming from a full leader fetches while it
    /// syncs).
    pub hw_counts_unsynced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `replica.lag.time.max.ms`: a follower that has not caught up for this
    /// long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `min.insync.replicas`: acks=all needs at least this many in the ISR.
    pub min_insync_replicas: usize,
    pub bugs: ReplicationBugs,
}

impl Default for ReplicationConfig {
    fn default() -> ReplicationConfig {
        ReplicationConfig {
            replica_lag_time_max_ms: 30_000,
            min_insync_replicas: 1,
            bugs: ReplicationBugs::default(),
        }
    }
}

/// A partition's replica assignment as the controller last committed it
/// (Kafka's PartitionRecord / PartitionChangeRecord).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionAssignment {
    pub replicas: Vec<i32>,
    pub isr: BTreeSet<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped by the controller on every change; AlterPartition must name
    /// the current one.
    pub partition_epoch: i32,
}

impl PartitionAssignment {
    pub fn check_invariants(&self) {
        assert!(!self.replicas.is_empty(), "a partition has replicas");
        // Pairwise, not through a set: a controller checks every partition
        // of its image (tens of thousands in a large cluster), and a
        // replica list is as long as the replication factor.
        assert!(
            (1..self.replicas.len()).all(|i| !self.replicas[..i].contains(&self.replicas[i])),
            "replicas are distinct: {:?}",
            self.replicas
        );
        assert!(
            self.isr.iter().all(|r| self.replicas.contains(r)),
            "isr_subset_of_replicas: {:?} within {:?}",
            self.isr,
            self.replicas
        );
        assert!(
            self.leader < 0 || self.isr.contains(&self.leader),
            "leader_in_isr: leader {} not in {:?}",
            self.leader,
            self.isr
        );
        assert!(
            self.leader_epoch >= 0 && self.partition_epoch >= 0,
            "epochs are non-negative"
        );
    }
}

#[cfg(test)]
mod tests;
