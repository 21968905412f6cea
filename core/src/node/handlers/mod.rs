//! One module per Kafka API (or a family of them): request in, response out.

pub mod admin;
pub mod alter_configs;
pub mod consumer_group;
pub mod delayed_fetch;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_topic_partitions;
pub mod fetch;
pub mod group;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod offsets;
pub mod produce;
pub mod telemetry;

use kafka_protocol::protocol::StrBytes;

pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Kafka's answer to a request that names a leader epoch: FENCED when the
/// client's is older than ours, UNKNOWN when it is newer, none for -1.
pub(crate) fn check_leader_epoch(requested: i32, current: i32) -> Option<i16> {
    use kafka_protocol::ResponseError;
    if requested < 0 || requested == current {
        None
    } else if requested < current {
        Some(ResponseError::FencedLeaderEpoch.code())
    } else {
        Some(ResponseError::UnknownLeaderEpoch.code())
    }
}
