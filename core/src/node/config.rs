//! Broker settings the node needs. Validation happens here so that the CLI,
//! the simulator and tests all reject the same bad values the same way.

use super::io::PeerAddress;
use crate::controller::ControllerBugs;
use crate::log::LogConfig;
use crate::partition::ReplicationBugs;
use std::collections::BTreeMap;

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
    /// `max.incremental.fetch.session.cache.slots`: KIP-227 fetch sessions
    /// held at once; 0 serves every fetch without a session.
    pub fetch_sessions_max: usize,
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
    /// `group.consumer.session.timeout.ms` (KIP-848 groups).
    pub consumer_group_session_timeout_ms: u64,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups).
    pub consumer_group_heartbeat_interval_ms: u64,
    /// Group-coordination bugs for the simulator (KIP-848 groups), all off.
    pub group_bugs: crate::group::consumer_groups::GroupBugs,
    /// `None`: a standalone broker (the node is its own cluster, topics live
    /// in `meta/topics.json`). `Some`: one node of a KRaft cluster.
    pub cluster: Option<ClusterConfig>,
}

/// Settings of a node in a multi-node cluster: the controller quorum,
/// broker registration and partition replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `controller.quorum.voters`: every voter with its controller listener.
    /// Every node is a voter for now (combined broker and controller).
    pub voters: BTreeMap<i32, PeerAddress>,
    /// `broker.rack`: the AZ; replicas of a partition spread over racks.
    pub rack: Option<String>,
    /// `default.replication.factor` for auto-created topics and CreateTopics
    /// that leave it at -1. Also `offsets.topic.replication.factor`, capped
    /// at the number of brokers.
    pub default_replication_factor: i16,
    /// `min.insync.replicas` for topics that do not set it.
    pub min_insync_replicas: usize,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`: how long a leader parks a replica fetch.
    pub replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.max.bytes` per partition.
    pub replica_fetch_max_bytes: i32,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`.
    pub broker_session_timeout_ms: u64,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`.
    pub quorum_fetch_timeout_ms: u64,
    /// How long a peer request may go unanswered before it counts as lost.
    pub request_timeout_ms: u64,
    /// `unclean.leader.election.enable` for topics that do not set it.
    pub unclean_leader_election_enable: bool,
    /// KIP-630: a node snapshots its metadata image once this many
    /// committed metadata offsets were applied since its last snapshot
    /// (Kafka counts bytes, `metadata.log.max.record.bytes.between.snapshots`;
    /// offsets are what the image replay counts here). The log prefix below
    /// a snapshot is deleted.
    pub metadata_max_records_between_snapshots: i64,
    pub bugs: ClusterBugs,
}

/// The historical bugs the simulator must find, all off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterBugs {
    pub replication: ReplicationBugs,
    pub controller: ControllerBugs,
    /// `commit-prior-epoch` in the controller quorum.
    pub commit_prior_epoch: bool,
}

impl ClusterConfig {
    /// Kafka's defaults for a cluster of `voters`.
    pub fn new(voters: BTreeMap<i32, PeerAddress>) -> ClusterConfig {
        let default_replication_factor = voters.len().clamp(1, 3) as i16;
        ClusterConfig {
            voters,
            rack: None,
            default_replication_factor,
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_max_bytes: 1024 * 1024,
            broker_heartbeat_interval_ms: 2_000,
            broker_session_timeout_ms: 9_000,
            election_timeout_ms: 1_000,
            quorum_fetch_timeout_ms: 2_000,
            request_timeout_ms: 30_000,
            unclean_leader_election_enable: false,
            metadata_max_records_between_snapshots: 100_000,
            bugs: ClusterBugs::default(),
        }
    }
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
            fetch_sessions_max: 1_000,
            offsets_topic_partitions: 50,
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: 1_000,
            offsets_retention_minutes: 7 * 24 * 60,
            consumer_group_session_timeout_ms: 45_000,
            consumer_group_heartbeat_interval_ms: 5_000,
            group_bugs: Default::default(),
            cluster: None,
        }
    }
}
