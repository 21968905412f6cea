//! One partition's change, after Kafka's PartitionChangeBuilder: given a
//! target ISR, work out the ELR (KIP-966), elect a leader if the current
//! one may no longer lead, and emit the PartitionChangeRecord, or nothing
//! when nothing changes.
//!
//! This is where leaders are elected (on fencing, controlled shutdown,
//! unfencing, preferred and unclean elections) and where the ELR is kept.

use super::image::PartitionRegistration;
use super::records::{PartitionChangeRecord, NO_LEADER, NO_LEADER_CHANGE};
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
}

impl PartitionChange<'_> {
    /// The record to propose, `None` when the partition would not change.
    pub fn build(&self) -> Option<PartitionChangeRecord> {
        let current = &self.partition.assignment;
        let replicas = &current.replicas;
        assert!(
            self.target_isr.iter().all(|r| replicas.contains(r)),
            "target ISR {:?} within replicas {replicas:?}",
            self.target_isr
        );
        let mut target_isr = self.target_isr.clone();
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

        let mut record = PartitionChangeRecord {
            partition_id: self.partition_id,
            topic_id: self.topic_id,
            isr: None,
            leader: NO_LEADER_CHANGE,
            replicas: None,
            eligible_leader_replicas: None,
            last_known_elr: None,
        };
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
        let no_op = record.isr.is_none()
            && record.leader == NO_LEADER_CHANGE
            && record.replicas.is_none()
            && record.eligible_leader_replicas.is_none()
            && record.last_known_elr.is_none();
        if no_op {
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
