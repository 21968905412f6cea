//! Known bugs (or unsafe configurations) the simulator must catch, one flag
//! each (INVARIANTS.md, "Known historical bugs"). A flag comes from the CLI
//! (`--bug NAME`, repeatable) or from a scenario file (`bugs = [...]`); the
//! names are the same in both places and in traces.

use seedlog_core::group::consumer_groups::GroupBugs;
use seedlog_core::node::ClusterBugs;
use serde::{Deserialize, Serialize};

/// One flag. Serde names are the kebab-case names, so a misspelt flag in a
/// scenario file is an error that names it and lists the known ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// Acks come from the page cache (Kafka's default flush policy): a power
    /// cut loses acknowledged writes.
    NoFsync,
    HwTruncation,
    EpochLookupDivergence,
    UnfencedTruncation,
    IsrExpandBeforeLeso,
    NoEpochOnBecomeLeader,
    HwOnOldIsr,
    HwCountsUnsynced,
    NoPartitionEpochCheck,
    StaleBrokerEpoch,
    LastReplicaStanding,
    CommitPriorEpoch,
    StaticMemberDup,
    CooperativeDirectMove,
}

impl Bug {
    pub const ALL: &'static [Bug] = &[
        Bug::NoFsync,
        Bug::HwTruncation,
        Bug::EpochLookupDivergence,
        Bug::UnfencedTruncation,
        Bug::IsrExpandBeforeLeso,
        Bug::NoEpochOnBecomeLeader,
        Bug::HwOnOldIsr,
        Bug::HwCountsUnsynced,
        Bug::NoPartitionEpochCheck,
        Bug::StaleBrokerEpoch,
        Bug::LastReplicaStanding,
        Bug::CommitPriorEpoch,
        Bug::StaticMemberDup,
        Bug::CooperativeDirectMove,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::NoFsync => "no-fsync",
            Bug::HwTruncation => "hw-truncation",
            Bug::EpochLookupDivergence => "epoch-lookup-divergence",
            Bug::UnfencedTruncation => "unfenced-truncation",
            Bug::IsrExpandBeforeLeso => "isr-expand-before-leso",
            Bug::NoEpochOnBecomeLeader => "no-epoch-on-become-leader",
            Bug::HwOnOldIsr => "hw-on-old-isr",
            Bug::HwCountsUnsynced => "hw-counts-unsynced",
            Bug::NoPartitionEpochCheck => "no-partition-epoch-check",
            Bug::StaleBrokerEpoch => "stale-broker-epoch",
            Bug::LastReplicaStanding => "last-replica-standing",
            Bug::CommitPriorEpoch => "commit-prior-epoch",
            Bug::StaticMemberDup => "static-member-dup",
            Bug::CooperativeDirectMove => "cooperative-direct-move",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Bug::NoFsync => {
                "flush_before_ack=false: acks=1/all answered from the page cache; \
                 a crash loses acknowledged writes (fails lost_write)"
            }
            Bug::HwTruncation => {
                "KIP-101/KAFKA-1211: a new follower truncates to its high watermark, \
                 then is elected (fails strong_isr, lost_write)"
            }
            Bug::EpochLookupDivergence => {
                "KIP-279/KAFKA-6361: truncation to the leader's epoch end without the \
                 follower's own lookup, then fetching by offset alone; fast double \
                 fail-over diverges (fails log_matching)"
            }
            Bug::UnfencedTruncation => {
                "KIP-320/KAFKA-7395: fetches carry no leader epoch and, after the first \
                 of an epoch, no last fetched epoch, so no leader fences a follower of \
                 another epoch; one on stale metadata fetches by offset from a leader two \
                 epochs on and keeps a tail that leader truncated (fails strong_isr, \
                 log_matching)"
            }
            Bug::IsrExpandBeforeLeso => {
                "KAFKA-7128: a follower joins the ISR below the leader epoch start offset \
                 (fails valid_high_watermark, lost_write)"
            }
            Bug::NoEpochOnBecomeLeader => {
                "KAFKA-7415: a new leader does not write its epoch to the cache \
                 (fails log_matching)"
            }
            Bug::HwOnOldIsr => {
                "KIP-497: the high watermark advances over the old ISR while an \
                 expansion is in flight (fails lost_write)"
            }
            Bug::HwCountsUnsynced => {
                "seedlog's own: the leader counts a follower's fetch offset for the high \
                 watermark and ISR expansion though the follower, fetching again while it \
                 syncs, said it has not synced that far; a power cut then loses acknowledged \
                 writes (fails lost_write)"
            }
            Bug::NoPartitionEpochCheck => {
                "controller: AlterPartition accepted without the partition epoch check \
                 (fails strong_isr)"
            }
            Bug::StaleBrokerEpoch => {
                "KIP-903/KAFKA-14139: an uncleanly restarted replica rejoins the ISR on a \
                 stale broker epoch (fails lost_write)"
            }
            Bug::LastReplicaStanding => {
                "KIP-966 off: the sole ISR member restarts uncleanly and is re-elected \
                 (fails lost_write)"
            }
            Bug::CommitPriorEpoch => {
                "Raft: the quorum leader commits earlier-epoch records without one of its \
                 own (fails consistent_committed_data)"
            }
            Bug::StaticMemberDup => {
                "KAFKA-8500: a static member returning under a new member id copies its \
                 old incarnation's assignment and the old id stays in the group \
                 (fails no_double_ownership; needs a [groups] section)"
            }
            Bug::CooperativeDirectMove => {
                "KIP-429: a partition goes to its new owner in the same rebalance, before \
                 the old owner gave it up (KIP-848 coordinator and the simulated classic \
                 cooperative assignor; fails no_double_ownership; needs a [groups] section)"
            }
        }
    }

    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.iter().copied().find(|b| b.name() == name)
    }

    /// Whether the flag lives in the cluster code of the core (replication,
    /// controller, quorum): meaningless, and refused, on a standalone broker.
    pub fn needs_cluster(self) -> bool {
        self != Bug::NoFsync && !self.needs_groups()
    }

    /// Whether the flag lives in the group coordinator (or the simulated
    /// group members): refused without a `[groups]` section.
    pub fn needs_groups(self) -> bool {
        matches!(self, Bug::StaticMemberDup | Bug::CooperativeDirectMove)
    }
}

/// The comma-separated names, as traces and summaries show them.
pub fn names(bugs: &[Bug]) -> String {
    bugs.iter().map(|b| b.name()).collect::<Vec<_>>().join(",")
}

/// Parses `names` (as `names` writes them); the error names the unknown flag.
pub fn parse_names(names: &str) -> Result<Vec<Bug>, String> {
    names
        .split(',')
        .filter(|n| !n.is_empty())
        .map(|n| Bug::from_name(n).ok_or_else(|| unknown_bug_message(n)))
        .collect()
}

pub fn unknown_bug_message(name: &str) -> String {
    let known: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
    format!("unknown bug '{name}'; known: {}", known.join(", "))
}

/// The core's flags for a set of bugs.
pub fn cluster_bugs(bugs: &[Bug]) -> ClusterBugs {
    let mut c = ClusterBugs::default();
    for bug in bugs {
        let r = &mut c.replication;
        match bug {
            Bug::NoFsync => {}
            Bug::HwTruncation => r.hw_truncation = true,
            Bug::EpochLookupDivergence => r.epoch_lookup_divergence = true,
            Bug::UnfencedTruncation => r.unfenced_truncation = true,
            Bug::IsrExpandBeforeLeso => r.isr_expand_before_leso = true,
            Bug::NoEpochOnBecomeLeader => r.no_epoch_on_become_leader = true,
            Bug::HwOnOldIsr => r.hw_on_old_isr = true,
            Bug::HwCountsUnsynced => r.hw_counts_unsynced = true,
            Bug::NoPartitionEpochCheck => c.controller.no_partition_epoch_check = true,
            Bug::StaleBrokerEpoch => c.controller.stale_broker_epoch = true,
            Bug::LastReplicaStanding => c.controller.last_replica_standing = true,
            Bug::CommitPriorEpoch => c.commit_prior_epoch = true,
            Bug::StaticMemberDup | Bug::CooperativeDirectMove => {}
        }
    }
    c
}

/// The core's group-coordination flags for a set of bugs.
pub fn group_bugs(bugs: &[Bug]) -> GroupBugs {
    GroupBugs {
        static_member_dup: bugs.contains(&Bug::StaticMemberDup),
        cooperative_direct_move: bugs.contains(&Bug::CooperativeDirectMove),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_round_trips_by_name_and_maps_to_one_core_flag() {
        for bug in Bug::ALL {
            assert_eq!(Bug::from_name(bug.name()), Some(*bug));
            let serde_name = serde_json::to_string(bug).unwrap();
            assert_eq!(serde_name, format!("\"{}\"", bug.name()));
            if bug.needs_cluster() {
                assert_ne!(cluster_bugs(&[*bug]), ClusterBugs::default(), "{bug:?}");
            }
            if bug.needs_groups() {
                assert_ne!(group_bugs(&[*bug]), GroupBugs::default(), "{bug:?}");
            }
        }
        assert_eq!(parse_names("hw-truncation,no-fsync").unwrap().len(), 2);
        assert!(parse_names("hw-trunc").unwrap_err().contains("hw-trunc"));
    }
}
