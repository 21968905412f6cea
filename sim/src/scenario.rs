//! Scenario files: what a run simulates. A scenario is TOML with
//! `deny_unknown_fields` everywhere, so a misspelt key is an error naming
//! that key rather than a silently ignored setting.

use crate::bugs::Bug;
pub use groups::{Churn, GroupProtocol, Groups};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Brokers a cluster scenario may have: each one is a whole node in the
/// simulator's memory.
pub const BROKERS_MAX: usize = 200;
/// KRaft voters a cluster may have (`topology.voters`): a quorum is a
/// handful of nodes; a cluster with more brokers than this must name a
/// voter count, as Kafka runs large clusters with a few controllers.
pub const VOTERS_MAX: usize = 9;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Known bugs switched on for every run of this scenario (added to the
    /// CLI's `--bug` flags).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<Bug>,
    pub topology: Topology,
    #[serde(default)]
    pub disk: Disk,
    pub workload: Workload,
    #[serde(default)]
    pub faults: Faults,
    pub phases: Phases,
    #[serde(default)]
    pub expect: Expect,
    /// Present: the brokers form one KRaft cluster (every broker a voter,
    /// or `topology.voters` of them).
    /// Absent: one standalone broker, as before replication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,
    /// Present: simulated consumers that are members of one consumer
    /// group (`groups.rs`). Needs a `[cluster]` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Groups>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Availability zone names.
    pub azs: Vec<String>,
    /// The AZ of each broker, by node index (node id = index + 1). Give this
    /// or `brokers_per_az`. Without a `[cluster]` section, exactly one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<String>,
    /// The same number of brokers in every AZ, numbered AZ by AZ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brokers_per_az: Option<u32>,
    /// The AZ of each producer client.
    pub producers: Vec<String>,
    /// The AZ of each consumer client.
    pub consumers: Vec<String>,
    /// Cluster scenarios: how many brokers are KRaft voters (combined
    /// controller and broker); the others are broker-only nodes (KRaft
    /// observers). The voters are picked round-robin over `azs` (the
    /// lowest-index broker of the first AZ, then of the second, ...), so
    /// they spread over the AZs. Absent: every broker is a voter (then at
    /// most `VOTERS_MAX` brokers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voters: Option<u32>,
    /// One-way latency within an AZ; the swarm picks a sub-range.
    #[serde(default = "default_intra_az_latency_us")]
    pub intra_az_latency_us: [u64; 2],
    /// One-way latency between two AZs.
    #[serde(default = "default_cross_az_latency_us")]
    pub cross_az_latency_us: [u64; 2],
}

fn default_intra_az_latency_us() -> [u64; 2] {
    [100, 1_000]
}
fn default_cross_az_latency_us() -> [u64; 2] {
    [1_000, 5_000]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// Time an fsync takes; the swarm picks a sub-range.
    pub flush_latency_us: [u64; 2],
    /// `segment.bytes`: small values exercise segment rolls and multi-segment
    /// recovery.
    pub segment_bytes: [u64; 2],
    /// `retention.bytes` of the workload's topics: old segments are
    /// deleted as in Kafka, so a long run's disks stay bounded (and the
    /// history forgets what no replica holds any more). None keeps
    /// everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<u64>,
}

impl Default for Disk {
    fn default() -> Disk {
        Disk {
            flush_latency_us: [200, 5_000],
            segment_bytes: [4_096, 1 << 20],
            retention_bytes: None,
        }
    }
}

/// A KRaft cluster of the topology's brokers: every broker is a voter of
/// the controller quorum and a broker (combined mode), or with
/// `topology.voters` only that many, the others broker-only. Timeouts left out
/// take the values below, shorter than Kafka's defaults so that a
/// simulated minute sees several fail-overs; the swarm does not vary them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Replication factor of the workload's topics (CreateTopics).
    pub replication_factor: i16,
    /// `min.insync.replicas` of the workload's topics (a topic config).
    pub min_insync_replicas: u32,
    /// `unclean.leader.election.enable` of the workload's topics.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unclean_leader_election: bool,
    #[serde(default = "default_replica_lag_time_max_ms")]
    pub replica_lag_time_max_ms: u64,
    #[serde(default = "default_broker_heartbeat_interval_ms")]
    pub broker_heartbeat_interval_ms: u64,
    #[serde(default = "default_broker_session_timeout_ms")]
    pub broker_session_timeout_ms: u64,
    #[serde(default = "default_election_timeout_ms")]
    pub election_timeout_ms: u64,
    #[serde(default = "default_quorum_fetch_timeout_ms")]
    pub quorum_fetch_timeout_ms: u64,
    /// How long an inter-broker request may go unanswered.
    #[serde(default = "default_peer_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// The setup phase (controller elected, brokers registered, topics
    /// created, every partition led) must finish within this, in simulated
    /// time, or the run fails checker `setup`.
    #[serde(default = "default_setup_ms_max")]
    pub setup_ms_max: u64,
    /// The liveness phase must see every partition led and acknowledge an
    /// acks=all write on each within this many ms of the heal, or the run
    /// fails checker `liveness_partition`.
    #[serde(default = "default_recovery_ms_max")]
    pub recovery_ms_max: u64,
    /// Random faults keep a majority of the brokers in service: a broker
    /// counts as out from its fault's start until this long after its end
    /// (it restarts, registers, catches up and rejoins the ISR meanwhile).
    #[serde(default = "default_rejoin_ms")]
    pub rejoin_ms: u64,
    /// KIP-630: every node snapshots its metadata image after this many
    /// committed metadata offsets and deletes the log below it. Left out,
    /// the core's default (far above what a run writes: no snapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_snapshot_records: Option<i64>,
    /// `replica.fetch.max.bytes`. Left out, the core's default (1 MiB: a
    /// simulated workload never fills an answer). Small, answers fill and
    /// followers stream: fetch again while they sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_fetch_max_bytes: Option<i32>,
}

fn default_rejoin_ms() -> u64 {
    5_000
}

fn default_replica_lag_time_max_ms() -> u64 {
    10_000
}
fn default_broker_heartbeat_interval_ms() -> u64 {
    500
}
fn default_broker_session_timeout_ms() -> u64 {
    3_000
}
fn default_election_timeout_ms() -> u64 {
    1_000
}
fn default_quorum_fetch_timeout_ms() -> u64 {
    2_000
}
fn default_peer_request_timeout_ms() -> u64 {
    5_000
}
fn default_setup_ms_max() -> u64 {
    30_000
}
fn default_recovery_ms_max() -> u64 {
    20_000
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub topics: Vec<TopicSpec>,
    /// The acks values producers draw from (0, 1, -1); the swarm weights them.
    pub acks: Vec<i16>,
    /// Gap between two sends of one producer.
    pub produce_interval_ms: [u64; 2],
    #[serde(default = "default_records_per_send_max")]
    pub records_per_send_max: u32,
    /// `max.in.flight.requests.per.connection`, upper bound for the swarm.
    #[serde(default = "default_in_flight_max")]
    pub in_flight_max: u32,
    /// Consumer long-poll wait.
    #[serde(default = "default_fetch_max_wait_ms")]
    pub fetch_max_wait_ms: [u64; 2],
    /// `request.timeout.ms`: a request unanswered this long breaks the
    /// connection, as the Java client does.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: [u64; 2],
    /// `delivery.timeout.ms`: a send unresolved this long is given up.
    #[serde(default = "default_delivery_timeout_ms")]
    pub delivery_timeout_ms: u64,
    /// Share of messages round-tripped through the kafka-protocol codec:
    /// each seed draws one between `codec_roundtrip_percent_min` and this.
    #[serde(default = "default_codec_roundtrip_percent")]
    pub codec_roundtrip_percent: u32,
    /// The least share a seed draws; 100 with 100 above puts every message
    /// through the codec, as a real cluster does (what a field that does
    /// not travel at the version spoken costs shows up then).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub codec_roundtrip_percent_min: u32,
    /// `enable.idempotence`: producers take a producer id and number their
    /// batches; `duplicate` must then find nothing. Needs `acks = [-1]`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idempotent: bool,
    /// How a producer picks each send's partition.
    #[serde(default, skip_serializing_if = "Partitioner::is_random")]
    pub partitioner: Partitioner,
}

/// `workload.partitioner`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioner {
    /// Uniformly at random over every partition of the workload.
    #[default]
    Random,
    /// Producer k of n walks partitions k, k + n, k + 2n, ... (indexes over
    /// the workload's topics in order) and wraps: together the producers
    /// write every partition once per round. A large cluster needs it:
    /// `liveness_partition` wants an acks=all write on every partition
    /// within `cluster.recovery_ms_max` of the heal, and random picks
    /// over ten thousand partitions leave some out for ~ln(10,000) rounds.
    RoundRobin,
}

impl Partitioner {
    fn is_random(&self) -> bool {
        *self == Partitioner::Random
    }
}

fn default_records_per_send_max() -> u32 {
    3
}
fn default_in_flight_max() -> u32 {
    5
}
fn default_fetch_max_wait_ms() -> [u64; 2] {
    [50, 500]
}
fn default_request_timeout_ms() -> [u64; 2] {
    [2_000, 5_000]
}
fn default_delivery_timeout_ms() -> u64 {
    15_000
}
fn default_codec_roundtrip_percent() -> u32 {
    10
}

/// Random fault rates: upper bounds per simulated minute; the swarm picks a
/// rate in `[0, max]` per seed (sometimes zero, as VOPR's swarm does). The
/// world turns them into an explicit schedule before the run starts, so the
/// shrinker works on one list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomFaults {
    #[serde(default)]
    pub crash_per_min: f64,
    /// Share of crashes that tear an unsynced segment tail.
    #[serde(default)]
    pub torn_ratio: f64,
    /// Process kills (page cache survives).
    #[serde(default)]
    pub process_kill_per_min: f64,
    #[serde(default)]
    pub connection_reset_per_min: f64,
    #[serde(default)]
    pub partition_per_min: f64,
    /// Share of partitions that cut one direction only.
    #[serde(default)]
    pub one_way_ratio: f64,
    #[serde(default)]
    pub clog_per_min: f64,
    #[serde(default)]
    pub disk_full_per_min: f64,
    #[serde(default)]
    pub slow_flush_per_min: f64,
    #[serde(default)]
    pub pause_per_min: f64,
    #[serde(default)]
    pub skew_per_min: f64,
    /// Largest per-node clock drift, parts per million.
    #[serde(default)]
    pub drift_ppm_max: u64,
    /// How long a random fault lasts (a crashed node stays down).
    #[serde(default = "default_fault_duration_ms")]
    pub duration_ms: [u64; 2],
    /// Cluster scenarios: one broker cut off from everyone.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub isolate_per_min: f64,
    /// Cluster scenarios: one broker cut off from the other brokers.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub split_per_min: f64,
    /// Cluster scenarios: graceful shutdowns (and restarts).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub shutdown_per_min: f64,
}

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn default_fault_duration_ms() -> [u64; 2] {
    [100, 3_000]
}

impl Default for RandomFaults {
    fn default() -> RandomFaults {
        RandomFaults {
            crash_per_min: 0.0,
            torn_ratio: 0.0,
            process_kill_per_min: 0.0,
            connection_reset_per_min: 0.0,
            partition_per_min: 0.0,
            one_way_ratio: 0.0,
            clog_per_min: 0.0,
            disk_full_per_min: 0.0,
            slow_flush_per_min: 0.0,
            pause_per_min: 0.0,
            skew_per_min: 0.0,
            drift_ppm_max: 0,
            duration_ms: default_fault_duration_ms(),
            isolate_per_min: 0.0,
            split_per_min: 0.0,
            shutdown_per_min: 0.0,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    #[serde(default)]
    pub random: RandomFaults,
    #[serde(default)]
    pub schedule: Vec<Fault>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Power cut: unsynced bytes lost (or a torn tail kept), restart after
    /// `duration_ms`.
    Crash,
    /// The process dies (kill -9) but the machine stays up: the page cache
    /// survives, so nothing written is lost; restart after `duration_ms`.
    ProcessKill,
    /// RST on every connection of `client` (all clients when absent).
    ConnectionReset,
    /// Traffic from `from_az` to `to_az` (and back unless `one_way`) is held
    /// until the partition heals, as TCP retransmits; clients time out.
    Partition,
    /// `extra_ms` added to every message between the two AZs.
    Clog,
    /// The node's disk refuses appends and syncs.
    DiskFull,
    /// Every fsync of the node takes `extra_ms` longer.
    SlowFlush,
    /// The node stops processing (a GC pause).
    Pause,
    /// The node's clock is offset by `skew_ms`.
    Skew,
    /// Every broker of `az` loses power at once (unsynced bytes lost, a
    /// torn tail each when `torn`); all come back after `duration_ms`.
    AzOutage,
    /// Broker `node` (or `target`) reaches no one and no one reaches it,
    /// brokers and clients alike.
    Isolate,
    /// The brokers `nodes` (or `target`) and the other brokers cannot reach
    /// each other; clients still reach every broker.
    Split,
    /// Graceful shutdown of `node` (or `target`): it stops taking input,
    /// lets its flushes finish, and stops; it restarts after `duration_ms`.
    Shutdown,
    /// Every broker in turn, by index: a graceful shutdown lasting
    /// `duration_ms`, then `gap_ms` before the next broker's.
    RollingRestart,
    /// Every AlterPartition request `node` (or `target`) sends while the
    /// fault lasts is held in flight until it ends, then delivered (Kafka
    /// sends them on a channel of their own, so heartbeats and the metadata
    /// log keep flowing): the controller decides on an ISR change late,
    /// against a cluster that moved on meanwhile. Never drawn at random.
    HoldAlterPartition,
    /// Every BrokerHeartbeat request `node` (or `target`) sends while the
    /// fault lasts is held in flight until it ends, then delivered: the
    /// controller fences the broker on its session timeout (and takes it
    /// out of every ISR) while it still replicates, and unfences it once
    /// its heartbeats arrive again. Never drawn at random.
    HoldBrokerHeartbeat,
    /// The replica fetches `node` (or `target`) sends take `extra_ms`
    /// longer to arrive while the fault lasts (a slow path to the leaders
    /// it follows; its heartbeats and metadata fetches are not slowed).
    /// Never drawn at random.
    SlowReplicaFetch,
    /// The answers to the replica fetches `node` (or `target`) sends take
    /// `extra_ms` longer to come back while the fault lasts (a slow path
    /// from the leaders it follows): the leader decides on what the fetch
    /// says at once, the follower learns of the records late. Never drawn
    /// at random.
    SlowReplicaFetchResponse,
    /// The answers to the KRaft requests `node` (or `target`) sends (its
    /// metadata-log fetches above all) are held in flight while the fault
    /// lasts, then delivered in order: the broker acts on a stale metadata
    /// image (who leads each partition, at which epoch) while its
    /// heartbeats, on a channel of their own, keep it registered and
    /// unfenced, as a broker whose metadata fetches stall does in Kafka
    /// (KAFKA-6880, which KIP-320 fences). Never drawn at random.
    HoldMetadataFetch,
    /// Moves `topic`/`partition` (default: the workload's first) onto the
    /// brokers `nodes` (indexes, the first the preferred leader): the admin
    /// client sends AlterPartitionReassignments (KIP-455), retrying while
    /// no controller answers. Never drawn at random.
    Reassign,
    /// Test-only, never drawn at random: the newest batch below the high
    /// watermark of `node`'s (or `target`'s) copy of `topic`/`partition`
    /// gets a different max timestamp and a recomputed CRC, as a buggy
    /// replica would write it. No CRC catches that; `log_matching` must.
    CorruptReplica,
}

/// A broker chosen when the fault starts, from what clients last learned
/// through Metadata (the partition is `topic`/`partition`, by default the
/// workload's first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The partition's leader.
    Leader,
    /// A replica of the partition that is not its leader (the lowest id).
    Follower,
    /// A running replica of the partition that is not its leader (the
    /// lowest id): with another follower already down, the other one.
    UpFollower,
    /// The last replica of the partition, in assignment order, that is not
    /// its leader: with RF 3, the follower that `follower` (the first one)
    /// does not name.
    LastFollower,
    /// The active controller.
    Controller,
}

/// One fault. Flat, so that TOML stays readable (`kind = "crash"`); which
/// fields a kind needs is checked by [`Scenario::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub at_ms: u64,
    pub kind: FaultKind,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_az: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_az: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_way: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub torn: bool,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub extra_ms: u64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub skew_ms: i64,
    /// `az_outage`: the AZ that loses power.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub az: Option<String>,
    /// `split`: the brokers on one side; `reassign`: the target replicas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<u32>,
    /// Instead of `node` / `nodes`: a broker picked by its role when the
    /// fault starts (cluster scenarios).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// The partition `target` refers to (default: the first of the
    /// workload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// `rolling_restart`: the pause between one broker's restart and the
    /// next one's shutdown.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub gap_ms: u64,
}

impl Fault {
    /// A fault of `kind` at `at_ms` with every optional field empty.
    pub fn new(at_ms: u64, kind: FaultKind, duration_ms: u64) -> Fault {
        Fault {
            at_ms,
            kind,
            duration_ms,
            node: None,
            client: None,
            from_az: None,
            to_az: None,
            one_way: false,
            torn: false,
            extra_ms: 0,
            skew_ms: 0,
            az: None,
            nodes: Vec::new(),
            target: None,
            topic: None,
            partition: None,
            gap_ms: 0,
        }
    }
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phases {
    /// Faults happen in `[0, fault_ms)`; every fault ends by then.
    pub fault_ms: u64,
    /// Healed: sends must resolve and consumers catch up within this.
    pub liveness_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The run must acknowledge at least this many sends (a sanity floor:
    /// a workload that never ran proves nothing).
    #[serde(default)]
    pub acked_sends_min: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("scenario {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("scenario {name}: {message}")]
    Invalid { name: String, message: String },
    #[error("no scenario file or name '{0}' (looked for it as a path and under scenarios/)")]
    NotFound(String),
}

impl Scenario {
    pub fn from_toml(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let mut scenario: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        scenario.expand_brokers_per_az()?;
        scenario.validate()?;
        Ok(scenario)
    }

    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Scenario::from_toml(&text, path)
    }

    /// `name_or_path` is a file, or a name under `scenarios/` (searched from
    /// the current directory upwards, so tests in a crate directory work).
    pub fn resolve(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        let direct = Path::new(name_or_path);
        if direct.is_file() {
            return Scenario::load(direct);
        }
        let file = if name_or_path.ends_with(".toml") {
            name_or_path.to_string()
        } else {
            format!("{name_or_path}.toml")
        };
        let mut dir = std::env::current_dir().ok();
        // Bounded: a path has few ancestors, but say so.
        for _ in 0..16 {
            let Some(d) = dir else { break };
            let candidate = d.join("scenarios").join(&file);
            if candidate.is_file() {
                return Scenario::load(&candidate);
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Err(ScenarioError::NotFound(name_or_path.to_string()))
    }

    /// The broker indexes that are KRaft voters, ascending: every broker
    /// without `topology.voters`, else that many picked round-robin over
    /// the AZs (in `azs` order, the lowest unpicked index of each).
    pub fn voter_indexes(&self) -> Vec<usize> {
        let t = &self.topology;
        let Some(count) = t.voters else {
            return (0..t.brokers.len()).collect();
        };
        let count = count as usize;
        assert!(
            count >= 1 && count <= t.brokers.len(),
            "validated voter count"
        );
        let mut per_az: Vec<std::collections::VecDeque<usize>> = t
            .azs
            .iter()
            .map(|az| {
                (0..t.brokers.len())
                    .filter(|&i| &t.brokers[i] == az)
                    .collect()
            })
            .collect();
        let mut voters = Vec::with_capacity(count);
        // Bounded: every round takes at least one broker until `count`.
        for _ in 0..t.brokers.len() {
            for az in per_az.iter_mut() {
                if voters.len() < count {
                    voters.extend(az.pop_front());
                }
            }
            if voters.len() == count {
                break;
            }
        }
        assert_eq!(voters.len(), count, "enough brokers for the voters");
        voters.sort_unstable();
        voters
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a scenario always serializes")
    }

    /// `brokers_per_az = n` becomes the explicit list (n brokers in the
    /// first AZ, then n in the second, ...), so the rest of the simulator
    /// and the trace's copy of the scenario know one form only.
    fn expand_brokers_per_az(&mut self) -> Result<(), ScenarioError> {
        let t = &mut self.topology;
        let Some(per_az) = t.brokers_per_az else {
            return Ok(());
        };
        if !t.brokers.is_empty() || per_az == 0 {
            return Err(ScenarioError::Invalid {
                name: self.name.clone(),
                message: "topology: give brokers or brokers_per_az >= 1, not both".into(),
            });
        }
        t.brokers = t
            .azs
            .iter()
            .flat_map(|az| std::iter::repeat_n(az.clone(), per_az as usize))
            .collect();
        t.brokers_per_az = None;
        Ok(())
    }

    /// The bugs switched on for a run: the file's and the CLI's, sorted and
    /// without repeats. Cluster bugs on a standalone broker are refused.
    pub fn bugs_with(&self, cli: &[Bug]) -> Result<Vec<Bug>, ScenarioError> {
        let mut bugs: Vec<Bug> = self.bugs.iter().chain(cli).copied().collect();
        bugs.sort();
        bugs.dedup();
        if self.groups.is_none() {
            if let Some(b) = bugs.iter().find(|b| b.needs_groups()) {
                return Err(ScenarioError::Invalid {
                    name: self.name.clone(),
                    message: format!(
                        "bug '{}' lives in the group coordinator; this scenario has no [groups] section",
                        b.name()
                    ),
                });
            }
        }
        if self.cluster.is_none() {
            if let Some(b) = bugs.iter().find(|b| b.needs_cluster()) {
                return Err(ScenarioError::Invalid {
                    name: self.name.clone(),
                    message: format!(
                        "bug '{}' lives in the cluster code; this scenario has no [cluster] section",
                        b.name()
                    ),
                });
            }
        }
        Ok(bugs)
    }

    pub fn validate(&self) -> Result<(), ScenarioError> {
        let invalid = |message: String| ScenarioError::Invalid {
            name: self.name.clone(),
            message,
        };
        let t = &self.topology;
        if t.azs.is_empty() {
            return Err(invalid("topology.azs: at least one AZ".into()));
        }
        let az_known = |az: &str| t.azs.iter().any(|a| a == az);
        for (field, list) in [
            ("topology.brokers", &t.brokers),
            ("topology.producers", &t.producers),
            ("topology.consumers", &t.consumers),
        ] {
            if let Some(az) = list.iter().find(|az| !az_known(az)) {
                return Err(invalid(format!("{field}: unknown AZ '{az}'")));
            }
        }
        if t.brokers_per_az.is_some() {
            return Err(invalid(
                "topology.brokers_per_az: expanded when the file is read; set brokers instead"
                    .into(),
            ));
        }
        let brokers = t.brokers.len();
        if t.voters.is_some() && self.cluster.is_none() {
            return Err(invalid(
                "topology.voters: KRaft voters need a [cluster] section".into(),
            ));
        }
        match &self.cluster {
            None if brokers != 1 => {
                return Err(invalid(format!(
                    "topology.brokers: {brokers} brokers need a [cluster] section; a standalone broker is exactly one"
                )))
            }
            None => {}
            Some(c) => {
                if !(1..=BROKERS_MAX).contains(&brokers) {
                    return Err(invalid(format!(
                        "topology.brokers: a cluster has 1 to {BROKERS_MAX} brokers, got {brokers}"
                    )));
                }
                match t.voters {
                    None if brokers > VOTERS_MAX => {
                        return Err(invalid(format!(
                            "topology.voters: {brokers} brokers cannot all be KRaft voters (at most {VOTERS_MAX}); set voters = 1 to {VOTERS_MAX}"
                        )))
                    }
                    Some(v) if v < 1 || v as usize > brokers.min(VOTERS_MAX) => {
                        return Err(invalid(format!(
                            "topology.voters: 1 to {} (the brokers, at most {VOTERS_MAX}), got {v}",
                            brokers.min(VOTERS_MAX)
                        )))
                    }
                    _ => {}
                }
                if c.replication_factor < 1 || c.replication_factor as usize > brokers {
                    return Err(invalid(format!(
                        "cluster.replication_factor: 1 to {brokers} (the brokers), got {}",
                        c.replication_factor
                    )));
                }
                if c.min_insync_replicas < 1
                    || c.min_insync_replicas > c.replication_factor as u32
                {
                    return Err(invalid(format!(
                        "cluster.min_insync_replicas: 1 to replication_factor ({}), got {}",
                        c.replication_factor, c.min_insync_replicas
                    )));
                }
                for (field, v) in [
                    ("cluster.replica_lag_time_max_ms", c.replica_lag_time_max_ms),
                    (
                        "cluster.broker_heartbeat_interval_ms",
                        c.broker_heartbeat_interval_ms,
                    ),
                    ("cluster.broker_session_timeout_ms", c.broker_session_timeout_ms),
                    ("cluster.election_timeout_ms", c.election_timeout_ms),
                    ("cluster.quorum_fetch_timeout_ms", c.quorum_fetch_timeout_ms),
                    ("cluster.request_timeout_ms", c.request_timeout_ms),
                    ("cluster.setup_ms_max", c.setup_ms_max),
                    ("cluster.recovery_ms_max", c.recovery_ms_max),
                ] {
                    if v == 0 {
                        return Err(invalid(format!("{field}: must be positive")));
                    }
                }
                if c.replica_fetch_max_bytes.is_some_and(|b| b < 1) {
                    return Err(invalid(
                        "cluster.replica_fetch_max_bytes: must be positive".into(),
                    ));
                }
                if c.recovery_ms_max > self.phases.liveness_ms {
                    return Err(invalid(format!(
                        "cluster.recovery_ms_max ({}) exceeds phases.liveness_ms ({})",
                        c.recovery_ms_max, self.phases.liveness_ms
                    )));
                }
            }
        }
        self.bugs_with(&[])?;
        if let Some(g) = &self.groups {
            if self.cluster.is_none() {
                return Err(invalid(
                    "groups: a [groups] section needs a [cluster] section".into(),
                ));
            }
            g.validate(&t.azs, self.phases.fault_ms, self.phases.liveness_ms)
                .map_err(invalid)?;
        }
        if self.disk.retention_bytes == Some(0) {
            return Err(invalid(
                "disk.retention_bytes: must be positive (leave it out to keep everything)".into(),
            ));
        }
        for (field, [lo, hi]) in [
            ("topology.intra_az_latency_us", t.intra_az_latency_us),
            ("topology.cross_az_latency_us", t.cross_az_latency_us),
            ("disk.flush_latency_us", self.disk.flush_latency_us),
            ("disk.segment_bytes", self.disk.segment_bytes),
            (
                "workload.produce_interval_ms",
                self.workload.produce_interval_ms,
            ),
            (
                "workload.fetch_max_wait_ms",
                self.workload.fetch_max_wait_ms,
            ),
            (
                "workload.request_timeout_ms",
                self.workload.request_timeout_ms,
            ),
            ("faults.random.duration_ms", self.faults.random.duration_ms),
        ] {
            if lo > hi || hi == 0 {
                return Err(invalid(format!("{field}: [{lo}, {hi}] is not a range")));
            }
        }
        let w = &self.workload;
        if w.topics.is_empty() || w.topics.iter().any(|t| t.partitions < 1) {
            return Err(invalid(
                "workload.topics: at least one topic, each with partitions >= 1".into(),
            ));
        }
        let names: std::collections::BTreeSet<&str> =
            w.topics.iter().map(|t| t.name.as_str()).collect();
        if names.len() != w.topics.len() {
            return Err(invalid("workload.topics: each topic name once".into()));
        }
        if w.acks.is_empty() || w.acks.iter().any(|a| ![0, 1, -1].contains(a)) {
            return Err(invalid("workload.acks: values from 0, 1, -1".into()));
        }
        if w.idempotent && w.acks != [-1] {
            return Err(invalid(
                "workload.idempotent: idempotent producers need acks = [-1]".into(),
            ));
        }
        if w.records_per_send_max == 0
            || w.in_flight_max == 0
            || w.codec_roundtrip_percent > 100
            || w.codec_roundtrip_percent_min > w.codec_roundtrip_percent
        {
            return Err(invalid(
                "workload: records_per_send_max and in_flight_max >= 1, \
                 codec_roundtrip_percent_min <= codec_roundtrip_percent <= 100"
                    .into(),
            ));
        }
        if self.phases.fault_ms == 0 || self.phases.liveness_ms < 2 * w.delivery_timeout_ms {
            return Err(invalid(format!(
                "phases: fault_ms > 0 and liveness_ms >= 2 * workload.delivery_timeout_ms ({})",
                2 * w.delivery_timeout_ms
            )));
        }
        let clients = (t.producers.len() + t.consumers.len()) as u32;
        let cluster = self.cluster.is_some();
        for (i, f) in self.faults.schedule.iter().enumerate() {
            let field = format!("faults.schedule[{i}]");
            let cluster_only = matches!(
                f.kind,
                FaultKind::Split
                    | FaultKind::RollingRestart
                    | FaultKind::Isolate
                    | FaultKind::CorruptReplica
                    | FaultKind::HoldAlterPartition
                    | FaultKind::HoldBrokerHeartbeat
                    | FaultKind::SlowReplicaFetch
                    | FaultKind::SlowReplicaFetchResponse
                    | FaultKind::HoldMetadataFetch
                    | FaultKind::Reassign
            ) || f.target.is_some();
            if cluster_only && !cluster {
                return Err(invalid(format!(
                    "{field}: {:?} faults and targets need a [cluster] section",
                    f.kind
                )));
            }
            let needs_node = matches!(
                f.kind,
                FaultKind::Crash
                    | FaultKind::ProcessKill
                    | FaultKind::DiskFull
                    | FaultKind::SlowFlush
                    | FaultKind::Pause
                    | FaultKind::Skew
                    | FaultKind::Isolate
                    | FaultKind::Shutdown
                    | FaultKind::CorruptReplica
                    | FaultKind::HoldAlterPartition
                    | FaultKind::HoldBrokerHeartbeat
                    | FaultKind::SlowReplicaFetch
                    | FaultKind::SlowReplicaFetchResponse
                    | FaultKind::HoldMetadataFetch
            );
            let node_ok = f.node.is_some_and(|n| (n as usize) < brokers);
            if needs_node && !node_ok && f.target.is_none() {
                return Err(invalid(format!(
                    "{field}.node: a broker index (0..{brokers}) or a target is required"
                )));
            }
            if f.node.is_some() && f.target.is_some() {
                return Err(invalid(format!(
                    "{field}: node and target exclude each other"
                )));
            }
            if f.target.is_some() && !(needs_node || f.kind == FaultKind::Split) {
                return Err(invalid(format!(
                    "{field}.target: {:?} faults take no target",
                    f.kind
                )));
            }
            if let Some(topic) = &f.topic {
                let known = w.topics.iter().find(|t| &t.name == topic);
                if known.is_none_or(|t| f.partition.is_some_and(|p| p < 0 || p >= t.partitions)) {
                    return Err(invalid(format!(
                        "{field}.topic/partition: not a partition of the workload"
                    )));
                }
            }
            if f.kind == FaultKind::Split {
                let bad = f.nodes.iter().any(|n| *n as usize >= brokers);
                let sides = f.nodes.len() < brokers;
                if f.target.is_none() && (f.nodes.is_empty() || bad || !sides) {
                    return Err(invalid(format!(
                        "{field}.nodes: broker indexes (0..{brokers}) that leave some broker on the other side"
                    )));
                }
            }
            if f.kind == FaultKind::Reassign {
                let distinct: std::collections::BTreeSet<u32> = f.nodes.iter().copied().collect();
                let in_range = f.nodes.iter().all(|n| (*n as usize) < brokers);
                if f.nodes.is_empty() || distinct.len() != f.nodes.len() || !in_range {
                    return Err(invalid(format!(
                        "{field}.nodes: the target replicas, distinct broker indexes (0..{brokers}), at least one"
                    )));
                }
                if f.target.is_some() || f.node.is_some() {
                    return Err(invalid(format!(
                        "{field}: reassign names its brokers in nodes, not node or target"
                    )));
                }
            }
            if f.kind == FaultKind::AzOutage {
                match &f.az {
                    Some(az) if t.brokers.contains(az) => {}
                    _ => {
                        return Err(invalid(format!(
                            "{field}.az: an AZ that holds a broker is required"
                        )))
                    }
                }
            }
            if f.kind == FaultKind::RollingRestart {
                let end = f.at_ms + brokers as u64 * (f.duration_ms + f.gap_ms);
                if f.duration_ms == 0 || end > self.phases.fault_ms {
                    return Err(invalid(format!(
                        "{field}: a rolling restart needs duration_ms > 0 and must end ({end} ms) within phases.fault_ms"
                    )));
                }
            }
            if matches!(f.kind, FaultKind::Partition | FaultKind::Clog) {
                for (name, az) in [("from_az", &f.from_az), ("to_az", &f.to_az)] {
                    match az {
                        Some(az) if az_known(az) => {}
                        _ => {
                            return Err(invalid(format!("{field}.{name}: a known AZ is required")))
                        }
                    }
                }
            }
            if f.client.is_some_and(|c| c >= clients) {
                return Err(invalid(format!("{field}.client: no such client")));
            }
        }
        let r = &self.faults.random;
        if !cluster
            && (r.isolate_per_min > 0.0 || r.split_per_min > 0.0 || r.shutdown_per_min > 0.0)
        {
            return Err(invalid(
                "faults.random: isolate, split and shutdown rates need a [cluster] section".into(),
            ));
        }
        Ok(())
    }
}

mod groups;
