//! The follower's side: what to fetch, and how to apply the answer.

use super::leader::ReplicaFetch;
use super::{PartitionAssignment, ReplicationConfig};
use crate::log::{LogError, PartitionLog};
use crate::storage::Storage;
use crate::time::Instant;

/// The fields of a replica fetch response the follower acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponseFields<'a> {
    pub error_code: i16,
    pub high_watermark: i64,
    /// `(epoch, end_offset)` when the leader found our log diverging.
    pub diverging: Option<(i32, i64)>,
    /// Whole batches starting at our fetch offset.
    pub records: &'a [u8],
}

/// What applying a fetch response did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerOutcome {
    /// Records appended (possibly none); fetch again.
    Appended { batches: u32 },
    /// The log was cut back to `log_end_offset`; fetch again from there.
    Truncated { log_end_offset: i64 },
    /// The leader refused (fenced, not leader, ...): back off and wait for
    /// new metadata.
    Error(i16),
}

#[derive(Debug)]
pub struct FollowerReplica {
    replica_id: i32,
    config: ReplicationConfig,
    leader_id: i32,
    leader_epoch: i32,
    high_watermark: i64,
    /// `epoch-lookup-divergence` and `unfenced-truncation` only: the first
    /// answer of this leader epoch has been applied, so (as Kafka before
    /// KIP-595, whose follower looked epochs up once, on becoming follower,
    /// then fetched by offset alone) later fetches name no last fetched
    /// epoch and the leader no longer checks them for divergence.
    epoch_lookup_done: bool,
}

impl FollowerReplica {
    /// Follows the leader `assignment` names, keeping the log as it is:
    /// divergence is found by fetching (KIP-101), not by truncating to the
    /// high watermark, unless the `hw-truncation` bug is on.
    pub fn become_follower(
        replica_id: i32,
        config: ReplicationConfig,
        assignment: &PartitionAssignment,
        log: &mut PartitionLog,
        storage: &mut dyn Storage,
        high_watermark: i64,
    ) -> Result<FollowerReplica, LogError> {
        assignment.check_invariants();
        assert_ne!(
            assignment.leader, replica_id,
            "a leader does not follow itself"
        );
        assert!(
            assignment.replicas.contains(&replica_id),
            "only replicas follow"
        );
        if config.bugs.hw_truncation && high_watermark < log.log_end_offset() {
            log.truncate_to(storage, high_watermark)?;
        }
        Ok(FollowerReplica {
            replica_id,
            leader_id: assignment.leader,
            leader_epoch: assignment.leader_epoch,
            high_watermark: high_watermark.min(log.log_end_offset()),
            config,
            epoch_lookup_done: false,
        })
    }

    pub fn leader_id(&self) -> i32 {
        self.leader_id
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The next fetch to send to the leader. It names the synced end of
    /// the log; the node puts it on the wire only when it syncs before
    /// acks (see `ReplicaFetch::synced_offset`).
    pub fn fetch_request(&self, log: &PartitionLog) -> ReplicaFetch {
        ReplicaFetch {
            replica_id: self.replica_id,
            current_leader_epoch: if self.config.bugs.unfenced_truncation {
                -1
            } else {
                self.leader_epoch
            },
            fetch_offset: log.log_end_offset(),
            synced_offset: log.synced_offset().min(log.log_end_offset()),
            // The node knows its broker epoch and puts it on the wire.
            replica_epoch: -1,
            last_fetched_epoch: if self.epoch_lookup_done {
                -1
            } else {
                log.latest_epoch().unwrap_or(-1)
            },
        }
    }

    /// Applies the leader's answer to our last fetch.
    pub fn handle_fetch_response(
        &mut self,
        log: &mut PartitionLog,
        storage: &mut dyn Storage,
        now: Instant,
        response: &FetchResponseFields<'_>,
    ) -> Result<FollowerOutcome, LogError> {
        if response.error_code != 0 {
            return Ok(FollowerOutcome::Error(response.error_code));
        }
        if let Some((epoch, end_offset)) = response.diverging {
            let target = self.truncation_offset(log, epoch, end_offset);
            log.truncate_to(storage, target)?;
            self.epoch_lookup_done = self.fetches_by_offset_alone();
            self.high_watermark = self.high_watermark.min(log.log_end_offset());
            return Ok(FollowerOutcome::Truncated {
                log_end_offset: log.log_end_offset(),
            });
        }
        let batches = if response.records.is_empty() {
            0
        } else {
            log.append_as_follower(storage, response.records, now)?
                .batch_count
        };
        self.epoch_lookup_done = self.fetches_by_offset_alone();
        // A follower never exposes more than it holds.
        self.high_watermark = response
            .high_watermark
            .min(log.log_end_offset())
            .max(self.high_watermark.min(log.log_end_offset()));
        Ok(FollowerOutcome::Appended { batches })
    }

    /// The historical followers the bugs bring back checked their log
    /// against the leader's once per epoch, with OffsetsForLeaderEpoch:
    /// before KIP-279 (`epoch-lookup-divergence`) and before KIP-320
    /// (`unfenced-truncation`, whose unfenced fetches only matter when
    /// nothing else catches a leader whose log changed under them).
    fn fetches_by_offset_alone(&self) -> bool {
        let bugs = &self.config.bugs;
        bugs.epoch_lookup_divergence || bugs.unfenced_truncation
    }

    /// Where to cut when the leader says our log diverges after its
    /// `(epoch, end_offset)`: the smaller of its end and our own end of that
    /// epoch (KIP-279), since our copy of the epoch may be shorter.
    fn truncation_offset(&self, log: &PartitionLog, epoch: i32, end_offset: i64) -> i64 {
        if self.config.bugs.epoch_lookup_divergence {
            return end_offset;
        }
        if epoch < 0 {
            return log.log_start_offset();
        }
        match log.end_offset_for_epoch(epoch) {
            Some((_, our_end)) => our_end.min(end_offset),
            None => log.log_start_offset(),
        }
    }

    pub fn check_invariants(&self, log_end_offset: i64) {
        assert!(
            self.high_watermark <= log_end_offset,
            "follower high watermark {} beyond its log end {log_end_offset}",
            self.high_watermark
        );
        assert!(self.leader_epoch >= 0, "a follower follows a real epoch");
    }
}
