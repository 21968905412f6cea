//! Scenario files: what a run simulates. A scenario is TOML with
//! `deny_unknown_fields` everywhere, so a misspelt key is an error naming
//! that key rather than a silently ignored setting.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub topology: Topology,
    #[serde(default)]
    pub disk: Disk,
    pub workload: Workload,
    #[serde(default)]
    pub faults: Faults,
    pub phases: Phases,
    #[serde(default)]
    pub expect: Expect,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Availability zone names.
    pub azs: Vec<String>,
    /// The AZ of each broker, by node index. The core is single-broker until
    /// replication lands, so exactly one entry today.
    pub brokers: Vec<String>,
    /// The AZ of each producer client.
    pub producers: Vec<String>,
    /// The AZ of each consumer client.
    pub consumers: Vec<String>,
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
}

impl Default for Disk {
    fn default() -> Disk {
        Disk {
            flush_latency_us: [200, 5_000],
            segment_bytes: [4_096, 1 << 20],
        }
    }
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
    /// Share of messages round-tripped through the kafka-protocol codec.
    #[serde(default = "default_codec_roundtrip_percent")]
    pub codec_roundtrip_percent: u32,
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
        let scenario: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
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

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a scenario always serializes")
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
        if t.brokers.len() != 1 {
            return Err(invalid(
                "topology.brokers: the core is single-broker until replication lands; exactly one"
                    .into(),
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
        if w.acks.is_empty() || w.acks.iter().any(|a| ![0, 1, -1].contains(a)) {
            return Err(invalid("workload.acks: values from 0, 1, -1".into()));
        }
        if w.records_per_send_max == 0 || w.in_flight_max == 0 || w.codec_roundtrip_percent > 100 {
            return Err(invalid(
                "workload: records_per_send_max and in_flight_max >= 1, codec_roundtrip_percent <= 100"
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
        for (i, f) in self.faults.schedule.iter().enumerate() {
            let field = format!("faults.schedule[{i}]");
            let needs_node = matches!(
                f.kind,
                FaultKind::Crash
                    | FaultKind::ProcessKill
                    | FaultKind::DiskFull
                    | FaultKind::SlowFlush
                    | FaultKind::Pause
                    | FaultKind::Skew
            );
            if needs_node && f.node.is_none_or(|n| n as usize >= t.brokers.len()) {
                return Err(invalid(format!("{field}.node: a broker index is required")));
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
        Ok(())
    }
}
