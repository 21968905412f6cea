//! Broker settings the node needs. Validation happens here so that the CLI,
//! the simulator and tests all reject the same bad values the same way.

use crate::log::LogConfig;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// `node.id`.
    pub node_id: i32,
    /// The host clients are told to connect to (Metadata, FindCoordinator).
    pub advertised_host: String,
    /// The port clients are told to connect to.
    pub advertised_port: i32,
    /// `cluster.id` as Metadata and DescribeCluster report it.
    pub cluster_id: String,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of an auto-created topic.
    pub num_partitions: i32,
    /// Defaults for every topic's log (`log.segment.bytes`, ...).
    pub log: LogConfig,
    /// Hold produce acknowledgements (acks=1 and all) until the batch is
    /// synced to disk. Off reproduces Kafka's default of acking from the
    /// page cache.
    pub flush_before_ack: bool,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// Requests queued on one connection before it is closed.
    pub in_flight_requests_per_connection_max: usize,
    /// Long-poll fetches parked at once; more are answered at once.
    pub delayed_fetches_max: usize,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`,
    /// created on first use. Fixed for the life of the cluster: a group's
    /// partition is a hash modulo this count.
    pub offsets_topic_partitions: i32,
    /// `group.initial.rebalance.delay.ms`: how long a group that was Empty
    /// waits for more members before its first generation.
    pub group_initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size`: members per group.
    pub group_max_size: usize,
    /// `offsets.retention.minutes`: committed offsets of an Empty group
    /// expire this long after the later of their commit and the group
    /// becoming Empty.
    pub offsets_retention_minutes: u64,
}

impl Default for NodeConfig {
    fn default() -> NodeConfig {
        NodeConfig {
            node_id: 1,
            advertised_host: "127.0.0.1".to_string(),
            advertised_port: 9092,
            cluster_id: "seedlog-cluster-0000001".to_string(),
            auto_create_topics: true,
            num_partitions: 1,
            log: LogConfig::default(),
            flush_before_ack: true,
            retention_check_interval_ms: 300_000,
            in_flight_requests_per_connection_max: 1000,
            delayed_fetches_max: 10_000,
            offsets_topic_partitions: 50,
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: 1_000,
            offsets_retention_minutes: 7 * 24 * 60,
        }
    }
}
