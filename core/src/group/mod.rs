//! The classic consumer-group coordinator (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, offsets), as a sans-IO state machine.
//!
//! The coordinator owns groups and committed offsets and knows nothing of
//! connections, logs or the wire format. The node feeds it requests with a
//! reply token `R` (its response slot) and drains two queues:
//!
//! - `poll_write`: records to append to a partition of `__consumer_offsets`
//!   (Kafka's key/value formats, see `records.rs`); the node reports
//!   `handle_write_completed` once they are durable (or failed);
//! - `poll_reply`: answers, some immediate, some parked (a JoinGroup waits
//!   for the rebalance, a SyncGroup for the leader, an OffsetCommit for its
//!   record to be durable).
//!
//! State is rebuilt after a restart by replaying `__consumer_offsets`
//! through `load_record`, as Kafka's `GroupMetadataManager` does; the same
//! records will make a replica's coordinator take over after fail-over.

mod classic;
pub mod consumer_groups;
mod coordinator;
mod member;
mod offsets;
pub mod records;
mod state;
mod timers;

pub use classic::{check_assignments, decode_assignment, CONSUMER_PROTOCOL_TYPE};
pub use coordinator::{
    CommitPartition, CommitRequest, Coordinator, CoordinatorConfig, DescribedGroup,
    DescribedMember, FetchedPartition, JoinRequest, JoinResult, JoinedMember, ListedGroup,
    PartitionResult, Reply, SyncRequest, SyncResult, Write, WriteId,
};
pub use state::GroupState;

/// The internal topic holding offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
