//! One partition's change, after Kafka's PartitionChangeBuilder: given a
//! target ISR, work out the ELR (KIP-966), elect a leader if the current
//! one may no longer lead, and emit the PartitionChangeRecord, or nothing
//! when nothing changes.
//!
//! This is where leaders are elected (on fencing, controlled shutdown,
//! unfencing, preferred and unclean elections), where the ELR is kept, and
//! where a reassignment (KIP-455) completes: whatever change a partition
//! undergoes, once every adding replica is in the target ISR the replicas
//! shrink to the target (Kafka's completeReassignmentIfNeeded).

use super::image::PartitionRegistration;
use super::records::{PartitionChangeRecord, NO_LEADER};
use std::collections::BTreeSet;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// The first replica if it may lead, else keep the partition online.
    Preferred,
    /// Keep the partition online from the ISR (or the ELR when the ISR is
    /// empty).
    Online,
    /// As `Online`, then any live replica: may lose acknowledged data
    /// (`unclean.leader.election.enable`).
    Unclean,
}

/// New replica lists for a partition (start, replace or cancel a
/// reassignment): Kafka's setTargetReplicas/Adding/Removing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetReplicas {
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

pub struct PartitionChange<'a> {
    pub topic_id: Uuid,
    pub partition_id: i32,
    pub partition: &'a PartitionRegistration,
    pub target_isr: BTreeSet<i32>,
    pub election: Election,
    /// Kafka's `isAcceptableLeader`: registered, unfenced, not shutting down
    /// (or about to be unfenced).
    pub is_acceptable_leader: &'a dyn Fn(i32) -> bool,
    /// Brokers that restarted without a clean shutdown: they may have lost
    /// unflushed records, so they leave the ELR (KIP-966).
    pub unclean_shutdown_replicas: BTreeSet<i32>,
    /// KIP-966 on. Off is the `last-replica-standing` bug: the ISR never
    /// empties, so its last member keeps a claim to leadership.
    pub elr_enabled: bool,
    pub min_insync_replicas: usize,
    /// New replica lists; `None` keeps the partition's.
    pub target_replicas: Option<TargetReplicas>,
}

impl PartitionChange<'_> {
    /// The record to propose, `None` when the partition would not change.
    pub fn build(&self) -> Option<PartitionChangeRecord> {
        let current = &self.partition.assignment;
        let mut target = self.target_replicas.clone().unwrap_or(TargetReplicas {
            replicas: current.replicas.clone(),
            adding: self.partition.adding.clone(),
            removing: self.partition.removing.clone(),
        });
        assert!(
            self.target_isr.iter().all(|r| target.replicas.contains(r)),
            "target ISR {:?} within replicas {:?}",
            self.target_isr,
            target.replicas
        );
        let mut target_isr = self.target_isr.clone();
        self.complete_reassignment_if_needed(&mut target, &mut target_isr);
        let replicas = &target.replicas;
        let mut target_elr = self.partition.elr.clone();

        // maybePopulateTargetElr: below min ISR, whoever leaves the ISR
        // cleanly stays eligible.
        if self.elr_enabled {
            if target_isr.len() >= self.min_insync_replicas {
                target_elr.clear();
            } else {
                target_elr.extend(current.isr.iter().copied());
                target_elr.retain(|r| {
                    !target_isr.contains(r) && !self.unclean_shutdown_replicas.contains(r)
                });
            }
        } else {
            target_elr.clear();
        }
        // A replica that left the partition (a completed reassignment) is
        // eligible for nothing.
        target_elr.retain(|r| replicas.contains(r));

        // tryElection.
        let valid = |r: i32, isr: &BTreeSet<i32>, elr: &BTreeSet<i32>| {
            r >= 0
                && (isr.contains(&r) || (isr.is_empty() && elr.contains(&r)))
                && (self.is_acceptable_leader)(r)
        };
        let (new_leader, unclean) = {
            let isr = &target_isr;
            let elr = &target_elr;
            let first_valid = |skip: usize| {
                replicas
                    .iter()
                    .skip(skip)
                    .copied()
                    .find(|&r| valid(r, isr, elr))
            };
            match self.election {
                Election::Preferred => {
                    if valid(replicas[0], isr, elr) {
                        (replicas[0], false)
                    } else if valid(current.leader, isr, elr) {
                        (current.leader, false)
                    } else if let Some(r) = first_valid(1) {
                        (r, false)
                    } else {
                        self.last_known_leader(isr, elr)
                            .map_or((NO_LEADER, false), |r| (r, true))
                    }
                }
                Election::Online | Election::Unclean => {
                    if valid(current.leader, isr, elr) {
                        (current.leader, false)
                    } else if let Some(r) = first_valid(0) {
                        (r, false)
                    } else if let Some(r) = self.last_known_leader(isr, elr) {
                        (r, true)
                    } else if self.election == Election::Unclean {
                        match replicas
                            .iter()
                            .copied()
                            .find(|&r| (self.is_acceptable_leader)(r))
                        {
                            Some(r) => (r, true),
                            None => (NO_LEADER, false),
                        }
                    } else {
                        (NO_LEADER, false)
                    }
                }
            }
        };

        let mut record = PartitionChangeRecord::unchanged(self.topic_id, self.partition_id);
        if *replicas != current.replicas {
            record.replicas = Some(replicas.clone());
        }
        if target.adding != self.partition.adding {
            record.adding_replicas = Some(target.adding.clone());
        }
        if target.removing != self.partition.removing {
            record.removing_replicas = Some(target.removing.clone());
        }
        if new_leader != current.leader {
            if target_elr.contains(&new_leader) {
                // Elected from the ELR: it becomes the whole ISR.
                target_isr = BTreeSet::from([new_leader]);
                target_elr.remove(&new_leader);
            }
            record.leader = new_leader;
            if unclean {
                // Anything the ISR held beyond this replica may be lost.
                target_isr = BTreeSet::from([new_leader]);
                target_elr.clear();
                record.isr = Some(vec![new_leader]);
            }
        }
        // Without ELR the ISR never becomes empty: its last member stays.
        if record.isr.is_none()
            && (!target_isr.is_empty() || self.elr_enabled)
            && target_isr != current.isr
        {
            record.isr = Some(target_isr.iter().copied().collect());
        }
        if target_elr != self.partition.elr {
            record.eligible_leader_replicas = Some(target_elr.iter().copied().collect());
        }
        record.last_known_elr = self.next_last_known_elr(&record);
        if let (Some(last_known), Some(_)) =
            (&self.partition.last_known_elr.first(), &record.replicas)
        {
            // The remembered last leader left the partition: forget it.
            if !replicas.contains(last_known) && record.last_known_elr.is_none() {
                record.last_known_elr = Some(Vec::new());
            }
        }
        if record.is_no_op() {
            return None;
        }
        debug_assert!(
            {
                let next = self.partition.merge(&record);
                next.assignment.leader < 0 || next.assignment.isr.contains(&next.assignment.leader)
            },
            "the change keeps the leader in the ISR"
        );
        Some(record)
    }

    /// Kafka's completeReassignmentIfNeeded: once every adding replica is
    /// in the target ISR, the replicas become the target, the removing
    /// replicas leave the ISR, and adding/removing clear. Unlike Kafka it
    /// waits while completing would take the ISR below
    /// `min.insync.replicas` (or below the whole target, when the target is
    /// smaller): acks=all writes would start failing for a reassignment
    /// that could instead finish once a lagging target replica catches up.
    fn complete_reassignment_if_needed(
        &self,
        target: &mut TargetReplicas,
        target_isr: &mut BTreeSet<i32>,
    ) {
        if target.adding.is_empty() && target.removing.is_empty() {
            return;
        }
        if !target.adding.iter().all(|r| target_isr.contains(r)) {
            return;
        }
        let new_isr: BTreeSet<i32> = super::excluding(target_isr.iter(), &target.removing);
        let new_replicas: Vec<i32> = super::excluding(&target.replicas, &target.removing);
        assert!(
            !new_replicas.is_empty(),
            "a reassignment target is not empty"
        );
        let floor = self.min_insync_replicas.min(new_replicas.len());
        let shrinks = new_isr.len() < target_isr.len();
        if new_isr.is_empty() || (shrinks && new_isr.len() < floor) {
            return;
        }
        *target_isr = new_isr;
        *target = TargetReplicas {
            replicas: new_replicas,
            adding: Vec::new(),
            removing: Vec::new(),
        };
    }

    /// KIP-966 Balanced recovery as Kafka runs it
    /// (`useLastKnownLeaderInBalancedRecovery`, on by default): with ISR and
    /// ELR both empty, the leader the partition had when its ISR emptied is
    /// elected once it is back, uncleanly (it may have lost unflushed
    /// records, but nobody else can hold more of the committed log: every
    /// other replica left the ISR before it did). Kafka 4.1 checks it is
    /// acceptable (KAFKA-19522); 4.0 forgot to.
    fn last_known_leader(&self, isr: &BTreeSet<i32>, elr: &BTreeSet<i32>) -> Option<i32> {
        let last_known = &self.partition.last_known_elr;
        let candidate = *last_known.first()?;
        let eligible = self.elr_enabled
            && isr.is_empty()
            && elr.is_empty()
            && last_known.len() == 1
            && (self.is_acceptable_leader)(candidate);
        eligible.then_some(candidate)
    }

    /// Kafka's `maybeUpdateLastKnownLeader`: remember the leader the first
    /// time the ISR empties; forget it once the partition has a leader.
    fn next_last_known_elr(&self, record: &PartitionChangeRecord) -> Option<Vec<i32>> {
        if !self.elr_enabled {
            return (!self.partition.last_known_elr.is_empty()).then(Vec::new);
        }
        let current_leader = self.partition.assignment.leader;
        let isr_empties = record.isr.as_ref().is_some_and(|isr| isr.is_empty());
        let remembered = self.partition.last_known_elr.len() == 1
            && self.partition.last_known_elr.contains(&current_leader);
        if isr_empties && !remembered && current_leader >= 0 {
            return Some(vec![current_leader]);
        }
        let has_leader =
            record.leader >= 0 || (current_leader != NO_LEADER && record.leader != NO_LEADER);
        (has_leader && !self.partition.last_known_elr.is_empty()).then(Vec::new)
    }
}
