//! The KRaft controller's metadata state machine: pure, deterministic, no
//! I/O. It sits on the quorum's committed log ([`crate::quorum`]).
//!
//! # Shape
//!
//! - [`Controller::replay`] applies one record at its offset to the
//!   [`MetadataImage`]. It is the ONLY way state changes, so a follower
//!   controller, a restarted one and the active one rebuild the same image
//!   from the same log.
//! - `handle_*` turn Kafka requests (the `kafka-protocol` types) into
//!   [`MetadataRecord`]s to propose, plus the response to send once they
//!   commit ([`ControllerResult`]). They read the image; they never change
//!   it.
//! - [`Controller::handle_timeout`] fences a broker whose
//!   `broker.session.timeout.ms` passed; [`Controller::poll_timeout`] says
//!   when.
//! - [`Controller::check_invariants`] asserts the INVARIANTS.md partition
//!   rules on the image.
//!
//! # Wiring (for the node)
//!
//! Records of one result go into one batch ([`encode_batch`]) proposed with
//! `QuorumNode::propose`. The active controller must replay its records as
//! soon as it proposes them, at the offsets `propose` returned, before it
//! handles the next request: the next request is judged against them (two
//! AlterPartitions on one partition, a topic created twice), exactly as
//! Kafka's QuorumController replays before commit. Responses go out once
//! the quorum's high watermark passes the batch. A controller that loses
//! leadership drops its uncommitted tail by rebuilding from the committed
//! log ([`decode_batches`] over `read_committed`) into a fresh
//! `Controller`; followers replay only committed records.
//!
//! BrokerRegistration needs the offset its RegisterBrokerRecord will get
//! (the broker epoch is that offset, as in KRaft): pass the quorum log end
//! offset as `next_offset` and propose the records right away.
//!
//! # Where things happen
//!
//! - leader election, ISR and ELR changes: [`partition_change`]
//!   (Kafka's PartitionChangeBuilder);
//! - replica placement over racks: [`placement`];
//! - fencing on session expiry, unfencing, controlled shutdown,
//!   AlterPartition checks: [`Controller`] (`controller.rs`).

pub mod configs;
#[allow(clippy::module_inception)]
mod controller;
pub mod image;
pub mod partition_change;
pub mod placement;
pub mod records;
#[doc(hidden)]
pub mod testing;

pub use controller::{
    Controller, MIN_INSYNC_REPLICAS_CONFIG, TOPIC_NAME_LEN_MAX, UNCLEAN_LEADER_ELECTION_CONFIG,
};
/// The ids of `ids`, in their order, that are not in `out`: what stays of
/// a replica set or an ISR when some replicas are added or removed
/// (KIP-455).
pub(crate) fn excluding<'a, C: FromIterator<i32>>(
    ids: impl IntoIterator<Item = &'a i32>,
    out: &[i32],
) -> C {
    ids.into_iter()
        .copied()
        .filter(|r| !out.contains(r))
        .collect()
}

pub use image::{BrokerRegistration, MetadataImage, PartitionRegistration, TopicImage};
pub use records::{decode_batches, decode_batches_from, encode_batch, MetadataRecord};

/// Historical controller bugs, each switchable back on for the simulator
/// (INVARIANTS.md lists what each must break). All off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControllerBugs {
    /// `no-partition-epoch-check`: AlterPartition is accepted whatever
    /// partition epoch it names, so a leader's stale view of the ISR can
    /// overwrite a newer one.
    pub no_partition_epoch_check: bool,
    /// `stale-broker-epoch` (KIP-903, KAFKA-14139): the ISR admits a
    /// replica on the broker epoch of an earlier incarnation, one that may
    /// have lost records in an unclean restart.
    pub stale_broker_epoch: bool,
    /// `last-replica-standing` (KIP-966 off): the ISR never empties, so its
    /// last member keeps its claim to lead even after an unclean restart.
    pub last_replica_standing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    pub node_id: i32,
    /// Registrations naming another cluster id are refused; empty accepts
    /// any.
    pub cluster_id: String,
    /// `broker.session.timeout.ms`.
    pub broker_session_timeout_ms: u64,
    /// `num.partitions`.
    pub default_num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `min.insync.replicas` for topics that do not set it.
    pub default_min_insync_replicas: usize,
    /// `unclean.leader.election.enable` for topics that do not set it.
    pub default_unclean_leader_election_enable: bool,
    /// Producer ids per AllocateProducerIds block (Kafka: 1000).
    pub producer_id_block_size: i32,
    /// Seeds the RNG for topic ids and placement offsets.
    pub rng_seed: u64,
    pub bugs: ControllerBugs,
}

impl ControllerConfig {
    /// Kafka's defaults.
    pub fn new(node_id: i32, cluster_id: &str) -> ControllerConfig {
        ControllerConfig {
            node_id,
            cluster_id: cluster_id.to_string(),
            broker_session_timeout_ms: 9000,
            default_num_partitions: 1,
            default_replication_factor: 1,
            default_min_insync_replicas: 1,
            default_unclean_leader_election_enable: false,
            producer_id_block_size: 1000,
            rng_seed: 0,
            bugs: ControllerBugs::default(),
        }
    }

    fn check(&self) {
        assert!(
            self.broker_session_timeout_ms > 0,
            "a session lasts some time"
        );
        assert!(
            self.default_num_partitions > 0,
            "num.partitions is positive"
        );
        assert!(
            self.default_replication_factor > 0,
            "default.replication.factor is positive"
        );
        assert!(
            self.default_min_insync_replicas > 0,
            "min.insync.replicas is positive"
        );
        assert!(
            self.producer_id_block_size > 0,
            "producer id blocks are not empty"
        );
    }
}

/// What a request leads to: records to propose (in this order, in one
/// batch), and the response to send once they have committed. An empty
/// `records` means the response can go at once.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerResult<R> {
    pub records: Vec<MetadataRecord>,
    pub response: R,
}

#[cfg(test)]
mod reassignment_tests;
#[cfg(test)]
mod tests;
