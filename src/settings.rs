//! The settings of `seedlog serve`, one table for all of them: each has a
//! TOML key (`num_partitions`), a flag (`--num-partitions`) and an
//! environment variable (`SEEDLOG_NUM_PARTITIONS`) derived from the key,
//! the values it allows, and its default, read from the core's and the
//! adapter's own defaults so that nothing here restates them.
//!
//! A value comes from, first to last: the flag, the environment, the
//! `--config` file, the default. Every value is checked against the table
//! whatever its source, and an error names the setting, where the value
//! came from and what is allowed:
//! `config file x.toml: num_partitions = 0 is out of range 1..=10000`.

use crate::voters::Voters;
use anyhow::{bail, Context};
use seedlog_core::log::CleanupPolicy;
use seedlog_core::node::{ClusterConfig, PARTITIONS_PER_TOPIC_MAX};
use seedlog_net::ServerConfig;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where `serve` listens for clients when nothing says otherwise.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:9092";
/// Where `serve` keeps its logs when nothing says otherwise.
pub const DATA_DIR_DEFAULT: &str = "./seedlog-data";
/// Prefix of every setting's environment variable.
const ENV_PREFIX: &str = "SEEDLOG_";
/// A config file larger than this is not a config file.
const CONFIG_FILE_BYTES_MAX: u64 = 1024 * 1024;

const I32_MAX: i64 = i32::MAX as i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    /// `HOST:PORT` with an IP address.
    Address,
    Path,
    Text,
    /// `ID@HOST:PORT,...`.
    Voters,
    OneOf(&'static [&'static str]),
    /// A decimal fraction in `0..=1`, such as `0.5`.
    Ratio,
}

impl Kind {
    pub fn value_name(self) -> &'static str {
        match self {
            Kind::Int { .. } => "N",
            Kind::Bool => "BOOL",
            Kind::Address => "HOST:PORT",
            Kind::Path => "DIR",
            Kind::Text => "TEXT",
            Kind::Voters => "ID@HOST:PORT,...",
            Kind::OneOf(_) => "VALUE",
            Kind::Ratio => "RATIO",
        }
    }
}

/// The built-in settings `default` functions read from.
pub struct Defaults {
    pub server: ServerConfig,
    pub cluster: ClusterConfig,
}

impl Defaults {
    pub fn builtin() -> Defaults {
        Defaults {
            server: ServerConfig::new(
                LISTEN_DEFAULT.parse().expect("a valid default"),
                DATA_DIR_DEFAULT,
            ),
            cluster: ClusterConfig::new(BTreeMap::new()),
        }
    }
}

pub struct Setting {
    /// The TOML key; the flag and the environment variable derive from it.
    pub key: &'static str,
    pub kind: Kind,
    /// The default as text; `None`: unset unless given.
    pub default: fn(&Defaults) -> Option<String>,
    /// Meaningful for a cluster node only (needs `voters`).
    pub cluster_only: bool,
    pub help: &'static str,
}

impl Setting {
    pub fn flag(&self) -> String {
        self.key.replace('_', "-")
    }

    pub fn env(&self) -> String {
        format!("{ENV_PREFIX}{}", self.key.to_ascii_uppercase())
    }

    /// What the value may be, for help and errors.
    pub fn allowed(&self) -> String {
        match self.kind {
            Kind::Int { min, max } => format!("{min}..={max}"),
            Kind::Bool => "true or false".to_string(),
            Kind::Address => "an IP address and port, HOST:PORT".to_string(),
            Kind::Path => "a directory".to_string(),
            Kind::Text => "any text".to_string(),
            Kind::Voters => "ID@HOST:PORT,...".to_string(),
            Kind::OneOf(values) => values.join(", "),
            Kind::Ratio => "a fraction from 0 to 1, such as 0.5".to_string(),
        }
    }
}

fn none(_: &Defaults) -> Option<String> {
    None
}

/// Millionths as the fraction a ratio setting is written as.
fn ratio_of_ppm(ppm: u32) -> String {
    format!("{}", f64::from(ppm) / 1e6)
}

/// A checked ratio setting's text as millionths.
fn ppm_of_ratio(text: &str) -> u32 {
    let ratio: f64 = text.parse().expect("checked");
    assert!((0.0..=1.0).contains(&ratio), "checked");
    // In 0..=1e6 after the check: the cast cannot truncate.
    (ratio * 1e6).round() as u32
}

fn ms(d: std::time::Duration) -> Option<String> {
    Some(d.as_millis().to_string())
}

/// Every setting of `seedlog serve`, in the order `--help` lists them.
pub const SETTINGS: &[Setting] = &[
    // ----- the node -----
    Setting {
        key: "listen",
        kind: Kind::Address,
        default: |_| Some(LISTEN_DEFAULT.to_string()),
        cluster_only: false,
        help: "Address to listen on for clients; they are told to connect to the bound \
               address (port 0 picks a free port).",
    },
    Setting {
        key: "data_dir",
        kind: Kind::Path,
        default: |_| Some(DATA_DIR_DEFAULT.to_string()),
        cluster_only: false,
        help: "Directory holding the logs; created if missing.",
    },
    Setting {
        key: "node_id",
        kind: Kind::Int {
            min: 0,
            max: I32_MAX,
        },
        default: |d| Some(d.server.node.node_id.to_string()),
        cluster_only: false,
        help: "`node.id` of this broker.",
    },
    Setting {
        key: "voters",
        kind: Kind::Voters,
        default: none,
        cluster_only: false,
        help: "Run as one node of a cluster whose controller quorum is these voters, each with \
               its controller listener (Kafka's `controller.quorum.voters`). A node among them \
               is a voter and a broker; a node outside them is a broker only. Unset: a \
               standalone broker.",
    },
    Setting {
        key: "controller_listen",
        kind: Kind::Address,
        default: none,
        cluster_only: false,
        help: "A second listener, where the other nodes of a cluster send Raft and controller \
               requests; it serves the same protocol as `listen`. With `voters` it defaults to \
               this node's address there.",
    },
    Setting {
        key: "rack",
        kind: Kind::Text,
        default: none,
        cluster_only: true,
        help: "`broker.rack`: this node's availability zone; the replicas of a partition \
               spread over racks.",
    },
    Setting {
        key: "metrics_listen",
        kind: Kind::Address,
        default: none,
        cluster_only: false,
        help: "Serve Prometheus metrics at http://HOST:PORT/metrics. Off unless given; port 0 \
               picks a free port.",
    },
    Setting {
        key: "log_format",
        kind: Kind::OneOf(&["text", "json"]),
        default: |_| Some("text".to_string()),
        cluster_only: false,
        help: "Log lines on stderr as plain text or as one JSON object each.",
    },
    Setting {
        key: "cluster_id",
        kind: Kind::Text,
        default: |d| Some(d.server.node.cluster_id.clone()),
        cluster_only: false,
        help: "The cluster id clients are told (Metadata, DescribeCluster). The nodes of a \
               cluster must share it: each refuses Raft requests that carry another.",
    },
    // ----- topics and their logs -----
    Setting {
        key: "auto_create_topics",
        kind: Kind::Bool,
        default: |d| Some(d.server.node.auto_create_topics.to_string()),
        cluster_only: false,
        help: "`auto.create.topics.enable`: create a topic on its first Metadata or Produce.",
    },
    Setting {
        key: "num_partitions",
        kind: Kind::Int {
            min: 1,
            max: PARTITIONS_PER_TOPIC_MAX as i64,
        },
        default: |d| Some(d.server.node.num_partitions.to_string()),
        cluster_only: false,
        help: "`num.partitions`: partitions of an auto-created topic.",
    },
    Setting {
        key: "flush_before_ack",
        kind: Kind::Bool,
        default: |d| Some(d.server.node.flush_before_ack.to_string()),
        cluster_only: false,
        help: "Acknowledge produce requests only once the records are fsynced. false acks from \
               the page cache (Kafka's default; faster, but a power cut can lose acked records).",
    },
    Setting {
        key: "log_segment_bytes",
        kind: Kind::Int {
            min: 14,
            max: I32_MAX,
        },
        default: |d| Some(d.server.node.log.segment_bytes.to_string()),
        cluster_only: false,
        help: "`log.segment.bytes`: a topic's active segment rolls past this size.",
    },
    Setting {
        key: "log_segment_ms",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        default: |d| Some(d.server.node.log.segment_ms.to_string()),
        cluster_only: false,
        help: "`log.roll.ms`: a topic's active segment rolls when its first record is older.",
    },
    Setting {
        key: "log_retention_ms",
        kind: Kind::Int {
            min: -1,
            max: i64::MAX,
        },
        default: |d| Some(d.server.node.log.retention_ms.to_string()),
        cluster_only: false,
        help: "`log.retention.ms`: whole segments older than this are deleted (-1: kept).",
    },
    Setting {
        key: "log_retention_bytes",
        kind: Kind::Int {
            min: -1,
            max: i64::MAX,
        },
        default: |d| Some(d.server.node.log.retention_bytes.to_string()),
        cluster_only: false,
        help: "`log.retention.bytes`: the oldest segments of a partition past this size are \
               deleted (-1: no limit).",
    },
    Setting {
        key: "log_retention_check_interval_ms",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        default: |d| Some(d.server.node.retention_check_interval_ms.to_string()),
        cluster_only: false,
        help: "`log.retention.check.interval.ms`: how often retention looks for old segments.",
    },
    Setting {
        key: "log_cleanup_policy",
        kind: Kind::OneOf(&["delete", "compact", "compact,delete"]),
        default: |d| Some(d.server.node.log.cleanup_policy.as_str().to_string()),
        cluster_only: false,
        help: "`log.cleanup.policy` of topics that do not set `cleanup.policy`.",
    },
    Setting {
        key: "log_cleaner_delete_retention_ms",
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
        },
        default: |d| Some(d.server.node.log.delete_retention_ms.to_string()),
        cluster_only: false,
        help: "`log.cleaner.delete.retention.ms`: how long compaction keeps a tombstone.",
    },
    Setting {
        key: "message_max_bytes",
        kind: Kind::Int {
            min: 0,
            max: I32_MAX,
        },
        default: |d| Some(d.server.node.log.max_message_bytes.to_string()),
        cluster_only: false,
        help: "`message.max.bytes`: the largest record batch a topic accepts unless it sets \
               `max.message.bytes`.",
    },
    Setting {
        key: "log_index_interval_bytes",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| Some(d.server.node.log.index_interval_bytes.to_string()),
        cluster_only: false,
        help: "`log.index.interval.bytes`: bytes of batches between two entries of a segment's \
               sparse offset and time indexes.",
    },
    Setting {
        key: "log_cleaner_min_cleanable_ratio",
        kind: Kind::Ratio,
        default: |d| {
            Some(ratio_of_ppm(
                d.server.node.log.min_cleanable_dirty_ratio_ppm,
            ))
        },
        cluster_only: false,
        help: "`log.cleaner.min.cleanable.ratio`: a compacted log is cleaned once its \
               never-compacted bytes exceed this share of its closed segments.",
    },
    // ----- limits -----
    Setting {
        key: "socket_request_max_bytes",
        kind: Kind::Int {
            min: 1024,
            max: I32_MAX,
        },
        default: |d| Some(d.server.request_bytes_max.to_string()),
        cluster_only: false,
        help: "`socket.request.max.bytes`: a larger request closes its connection.",
    },
    Setting {
        key: "queued_max_request_bytes",
        kind: Kind::Int {
            min: 1024,
            max: u32::MAX as i64,
        },
        default: |d| Some(d.server.request_bytes_in_flight_max.to_string()),
        cluster_only: false,
        help: "`queued.max.request.bytes`: the memory budget for requests read and not yet \
               handled, over all connections; readers wait for room. At least \
               `socket_request_max_bytes`.",
    },
    Setting {
        key: "max_connections",
        kind: Kind::Int {
            min: 1,
            max: 1_000_000,
        },
        default: |d| Some(d.server.connections_max.to_string()),
        cluster_only: false,
        help: "`max.connections`: open connections at once; more are accepted and closed.",
    },
    Setting {
        key: "max_in_flight_requests_per_connection",
        kind: Kind::Int {
            min: 1,
            max: 100_000,
        },
        default: |d| {
            Some(
                d.server
                    .node
                    .in_flight_requests_per_connection_max
                    .to_string(),
            )
        },
        cluster_only: false,
        help: "Requests read on one connection and not yet answered; past it the connection \
               is closed.",
    },
    Setting {
        key: "connections_max_idle_ms",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| ms(d.server.connection_idle_timeout),
        cluster_only: false,
        help: "`connections.max.idle.ms`: a connection idle this long is closed.",
    },
    Setting {
        key: "controlled_shutdown_timeout_ms",
        kind: Kind::Int {
            min: 0,
            max: I32_MAX,
        },
        default: |d| ms(d.server.controlled_shutdown_timeout),
        cluster_only: true,
        help: "On SIGTERM, how long a cluster node waits for the controller to move its \
               leaderships away before it stops anyway.",
    },
    Setting {
        key: "queued_max_requests",
        kind: Kind::Int {
            min: 1,
            max: 1_000_000,
        },
        default: |d| Some(d.server.node_queue_max.to_string()),
        cluster_only: false,
        help: "`queued.max.requests`: requests read from all connections and queued for the node; \
               readers wait for room.",
    },
    Setting {
        key: "node_batch_max",
        kind: Kind::Int {
            min: 1,
            max: 1_000_000,
        },
        default: |d| Some(d.server.node_batch_max.to_string()),
        cluster_only: false,
        help: "Requests the node handles before it hands their flushes to the flusher thread; \
               flushes asked for while a sync runs are synced together in the next round (one \
               fdatasync per file for the lot).",
    },
    Setting {
        key: "flush_threads_max",
        kind: Kind::Int { min: 1, max: 256 },
        default: |d| Some(d.server.flush_threads_max.to_string()),
        cluster_only: false,
        help: "Threads one flush round syncs its files on at once (many partitions' fdatasyncs \
               then share journal commits); the node keeps serving requests meanwhile.",
    },
    Setting {
        key: "responses_queued_per_connection_max",
        kind: Kind::Int {
            min: 1,
            max: 1_000_000,
        },
        default: |d| Some(d.server.responses_queued_per_connection_max.to_string()),
        cluster_only: false,
        help: "Responses queued on one connection for a client that does not read them; past it \
               the connection is closed. At least `max_in_flight_requests_per_connection` (or \
               1024 if that is larger).",
    },
    Setting {
        key: "delayed_fetches_max",
        kind: Kind::Int {
            min: 1,
            max: 1_000_000,
        },
        default: |d| Some(d.server.node.delayed_fetches_max.to_string()),
        cluster_only: false,
        help: "Fetches waiting for data (`fetch.max.wait.ms`) at once; past it a fetch is \
               answered at once with what there is.",
    },
    Setting {
        key: "max_incremental_fetch_session_cache_slots",
        kind: Kind::Int {
            min: 0,
            max: 1_000_000,
        },
        default: |d| Some(d.server.node.fetch_sessions_max.to_string()),
        cluster_only: false,
        help: "KIP-227 incremental fetch sessions held at once (clients that fetch the same \
               partitions over and over name only what changed); 0 serves every fetch without \
               one.",
    },
    Setting {
        key: "open_files_max",
        kind: Kind::Int {
            min: 16,
            max: 1_000_000,
        },
        default: |d| Some(d.server.open_files_max.to_string()),
        cluster_only: false,
        help: "Segment and index files kept open at once; the least recently used are closed.",
    },
    Setting {
        key: "page_cache_window_bytes",
        kind: Kind::Int {
            min: -1,
            max: i64::MAX,
        },
        default: |d| {
            Some(
                d.server
                    .page_cache_window_bytes
                    .map_or(-1, |w| w as i64)
                    .to_string(),
            )
        },
        cluster_only: false,
        help: "Each file keeps its last this many bytes in the OS page cache once synced: older \
               pages are dropped after each flush and large reads of them bypass the cache \
               (O_DIRECT), so appends reuse freed pages and lagging readers do not evict the \
               tail. For VMs whose balloon takes free memory back (writes into fresh pages cost \
               a host fault there), e.g. 67108864; -1 (default): keep everything, as Kafka does.",
    },
    Setting {
        key: "shutdown_drain_timeout_ms",
        kind: Kind::Int {
            min: 0,
            max: I32_MAX,
        },
        default: |d| ms(d.server.drain_timeout),
        cluster_only: false,
        help: "On shutdown, how long connections may take to send the responses already queued.",
    },
    // ----- replication and the controller -----
    Setting {
        key: "default_replication_factor",
        kind: Kind::Int {
            min: 1,
            max: i16::MAX as i64,
        },
        default: none,
        cluster_only: true,
        help: "`default.replication.factor` of auto-created topics and of CreateTopics that \
               leave it at -1. Unset: the number of voters, at most 3.",
    },
    Setting {
        key: "min_insync_replicas",
        kind: Kind::Int {
            min: 1,
            max: i16::MAX as i64,
        },
        default: |d| Some(d.cluster.min_insync_replicas.to_string()),
        cluster_only: true,
        help: "`min.insync.replicas` of topics that do not set it: acks=all needs this many \
               replicas in sync.",
    },
    Setting {
        key: "unclean_leader_election_enable",
        kind: Kind::Bool,
        default: |d| Some(d.cluster.unclean_leader_election_enable.to_string()),
        cluster_only: true,
        help: "`unclean.leader.election.enable` of topics that do not set it: elect an \
               out-of-sync replica rather than stay offline (loses acknowledged records).",
    },
    Setting {
        key: "replica_lag_time_max_ms",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| Some(d.cluster.replica_lag_time_max_ms.to_string()),
        cluster_only: true,
        help: "`replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.",
    },
    Setting {
        key: "broker_heartbeat_interval_ms",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| Some(d.cluster.broker_heartbeat_interval_ms.to_string()),
        cluster_only: true,
        help: "`broker.heartbeat.interval.ms`: how often a broker heartbeats to the controller. \
               Below `broker_session_timeout_ms`.",
    },
    Setting {
        key: "broker_session_timeout_ms",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| Some(d.cluster.broker_session_timeout_ms.to_string()),
        cluster_only: true,
        help: "`broker.session.timeout.ms`: a broker without a heartbeat for this long is \
               fenced and its leaderships move.",
    },
    Setting {
        key: "metadata_max_records_between_snapshots",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| Some(d.cluster.metadata_max_records_between_snapshots.to_string()),
        cluster_only: true,
        help: "KIP-630: a node writes a snapshot of its metadata image (a file \
               `<offset>-<epoch>.checkpoint` in `__cluster_metadata-0`) after this many \
               committed metadata offsets, and deletes the metadata log below it; a node \
               that falls behind it copies the leader's snapshot (FetchSnapshot). Kafka's \
               `metadata.log.max.record.bytes.between.snapshots` counts bytes instead.",
    },
    Setting {
        key: "controller_quorum_election_timeout_ms",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| Some(d.cluster.election_timeout_ms.to_string()),
        cluster_only: true,
        help: "`controller.quorum.election.timeout.ms`: a voter without a leader for this long \
               (plus a random part) stands for election.",
    },
    Setting {
        key: "controller_quorum_fetch_timeout_ms",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| Some(d.cluster.quorum_fetch_timeout_ms.to_string()),
        cluster_only: true,
        help: "`controller.quorum.fetch.timeout.ms`: a follower that hears nothing from the \
               quorum leader for this long starts an election.",
    },
    Setting {
        key: "peer_request_timeout_ms",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| Some(d.cluster.request_timeout_ms.to_string()),
        cluster_only: true,
        help: "How long a request to another node may go unanswered before it counts as lost.",
    },
    Setting {
        key: "replica_fetch_wait_max_ms",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| Some(d.cluster.replica_fetch_wait_max_ms.to_string()),
        cluster_only: true,
        help:
            "`replica.fetch.wait.max.ms`: how long a follower's fetch waits at the leader for new \
               data. Below `replica_lag_time_max_ms`, or idle followers would drop out of the ISR.",
    },
    Setting {
        key: "replica_fetch_max_bytes",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| Some(d.cluster.replica_fetch_max_bytes.to_string()),
        cluster_only: true,
        help: "`replica.fetch.max.bytes`: bytes a follower asks for per partition (a larger first \
               batch still comes whole).",
    },
    Setting {
        key: "peer_requests_queued_max",
        kind: Kind::Int {
            min: 1,
            max: 1_000_000,
        },
        default: |d| Some(d.server.peers.requests_queued_max.to_string()),
        cluster_only: true,
        help: "Requests queued for another node and not yet written; a full queue means the peer \
               stopped reading, and the link is given up.",
    },
    Setting {
        key: "peer_in_flight_max",
        kind: Kind::Int {
            min: 1,
            max: 1_000_000,
        },
        default: |d| Some(d.server.peers.in_flight_max.to_string()),
        cluster_only: true,
        help: "Requests written to another node and not yet answered, per link.",
    },
    Setting {
        key: "peer_response_bytes_max",
        kind: Kind::Int {
            min: 1024,
            max: I32_MAX,
        },
        default: |d| Some(d.server.peers.response_bytes_max.to_string()),
        cluster_only: true,
        help: "A larger response from another node breaks the link.",
    },
    Setting {
        key: "peer_connect_timeout_ms",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| ms(d.server.peers.connect_timeout),
        cluster_only: true,
        help: "`socket.connection.setup.timeout.ms` for connections to other nodes.",
    },
    Setting {
        key: "peer_response_timeout_ms",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| ms(d.server.peers.response_timeout),
        cluster_only: true,
        help: "A link to another node with requests in flight and no response for this long is \
               broken (a peer that hangs without closing).",
    },
    Setting {
        key: "reconnect_backoff_ms",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| ms(d.server.peers.backoff_min),
        cluster_only: true,
        help: "`reconnect.backoff.ms`: the wait before reconnecting to another node after a \
               failure; it doubles with each failure in a row.",
    },
    Setting {
        key: "reconnect_backoff_max_ms",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| ms(d.server.peers.backoff_max),
        cluster_only: true,
        help: "`reconnect.backoff.max.ms`: the longest wait between reconnections to another node.",
    },
    // ----- consumer groups -----
    Setting {
        key: "offsets_topic_num_partitions",
        kind: Kind::Int {
            min: 1,
            max: PARTITIONS_PER_TOPIC_MAX as i64,
        },
        default: |d| Some(d.server.node.offsets_topic_partitions.to_string()),
        cluster_only: false,
        help: "`offsets.topic.num.partitions`: partitions of `__consumer_offsets`, created on \
               first use. Do not change it afterwards: a group's partition is a hash modulo it.",
    },
    Setting {
        key: "offsets_retention_minutes",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| Some(d.server.node.offsets_retention_minutes.to_string()),
        cluster_only: false,
        help: "`offsets.retention.minutes`: committed offsets of an empty group expire this long \
               after it became empty.",
    },
    Setting {
        key: "group_initial_rebalance_delay_ms",
        kind: Kind::Int {
            min: 0,
            max: I32_MAX,
        },
        default: |d| Some(d.server.node.group_initial_rebalance_delay_ms.to_string()),
        cluster_only: false,
        help: "`group.initial.rebalance.delay.ms`: how long an empty consumer group waits for \
               more members before its first rebalance completes.",
    },
    Setting {
        key: "group_min_session_timeout_ms",
        kind: Kind::Int {
            min: 0,
            max: I32_MAX,
        },
        default: |d| Some(d.server.node.group_min_session_timeout_ms.to_string()),
        cluster_only: false,
        help: "`group.min.session.timeout.ms`: the shortest session a member may ask for.",
    },
    Setting {
        key: "group_max_session_timeout_ms",
        kind: Kind::Int {
            min: 0,
            max: I32_MAX,
        },
        default: |d| Some(d.server.node.group_max_session_timeout_ms.to_string()),
        cluster_only: false,
        help: "`group.max.session.timeout.ms`: the longest session a member may ask for.",
    },
    Setting {
        key: "group_max_size",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| Some(d.server.node.group_max_size.to_string()),
        cluster_only: false,
        help: "`group.max.size`: members per consumer group.",
    },
    Setting {
        key: "group_consumer_session_timeout_ms",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| Some(d.server.node.consumer_group_session_timeout_ms.to_string()),
        cluster_only: false,
        help: "`group.consumer.session.timeout.ms`: a KIP-848 consumer silent for this long is \
               removed from its group.",
    },
    Setting {
        key: "group_consumer_heartbeat_interval_ms",
        kind: Kind::Int {
            min: 1,
            max: I32_MAX,
        },
        default: |d| {
            Some(
                d.server
                    .node
                    .consumer_group_heartbeat_interval_ms
                    .to_string(),
            )
        },
        cluster_only: false,
        help: "`group.consumer.heartbeat.interval.ms`: how often a KIP-848 consumer is told to \
               heartbeat. Below `group_consumer_session_timeout_ms`.",
    },
];

pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// Where a value came from, for errors and `--print-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    File(PathBuf),
    Default,
}

/// A value as given, before it is checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    /// From a flag or the environment: text to parse.
    Text(String),
    /// From the file: a TOML value of some type.
    Toml(toml::Value),
}

/// A checked value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bool(bool),
    Text(String),
}

impl fmt::Display for Value {
    /// As TOML writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Text(v) => write!(f, "{}", toml::Value::String(v.clone())),
        }
    }
}

/// How an error names a value: `--num-partitions 0`,
/// `SEEDLOG_NUM_PARTITIONS=0`, `config file x.toml: num_partitions = 0`.
fn describe(setting: &Setting, source: &Source, raw: &str) -> String {
    match source {
        Source::Flag => format!("--{} {raw}", setting.flag()),
        Source::Env => format!("{}={raw}", setting.env()),
        Source::File(path) => format!("config file {}: {} = {raw}", path.display(), setting.key),
        Source::Default => format!("the default {} = {raw}", setting.key),
    }
}

/// Checks one value against its setting.
pub fn check(setting: &Setting, source: &Source, raw: &Raw) -> anyhow::Result<Value> {
    let shown = match raw {
        Raw::Text(t) => t.clone(),
        Raw::Toml(v) => v.to_string(),
    };
    let what = || describe(setting, source, &shown);
    let text = match raw {
        Raw::Text(t) => t.trim().to_string(),
        Raw::Toml(toml::Value::String(s)) => s.clone(),
        Raw::Toml(toml::Value::Integer(i)) if matches!(setting.kind, Kind::Int { .. }) => {
            i.to_string()
        }
        Raw::Toml(toml::Value::Boolean(b)) if setting.kind == Kind::Bool => b.to_string(),
        Raw::Toml(toml::Value::Float(f)) if setting.kind == Kind::Ratio => f.to_string(),
        Raw::Toml(toml::Value::Integer(i)) if setting.kind == Kind::Ratio => i.to_string(),
        Raw::Toml(other) => bail!(
            "{} is {}, not {}",
            what(),
            with_article(other.type_str()),
            match setting.kind {
                Kind::Int { .. } => "an integer",
                Kind::Bool => "a boolean",
                Kind::Ratio => "a number",
                _ => "a string",
            }
        ),
    };
    if matches!(raw, Raw::Toml(toml::Value::String(_)))
        && matches!(setting.kind, Kind::Int { .. } | Kind::Bool | Kind::Ratio)
    {
        bail!(
            "{} is a string; write it without quotes ({})",
            what(),
            setting.allowed()
        );
    }
    match setting.kind {
        Kind::Int { min, max } => {
            let value: i64 = text
                .parse()
                .map_err(|_| anyhow::anyhow!("{} is not an integer in {min}..={max}", what()))?;
            if !(min..=max).contains(&value) {
                bail!("{} is out of range {min}..={max}", what());
            }
            Ok(Value::Int(value))
        }
        Kind::Bool => match text.as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => bail!("{} is not true or false", what()),
        },
        Kind::Address => {
            text.parse::<SocketAddr>()
                .map_err(|_| anyhow::anyhow!("{} is not {}", what(), setting.allowed()))?;
            Ok(Value::Text(text))
        }
        Kind::Voters => {
            text.parse::<Voters>()
                .map_err(|e| anyhow::anyhow!("{}: {e}", what()))?;
            Ok(Value::Text(text))
        }
        Kind::Path => {
            if text.is_empty() {
                bail!("{} is empty: {} needs a directory", what(), setting.key);
            }
            Ok(Value::Text(text))
        }
        Kind::Text => {
            if text.is_empty() {
                bail!("{} is empty", what());
            }
            Ok(Value::Text(text))
        }
        Kind::Ratio => {
            let ratio = text
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| anyhow::anyhow!("{} is not {}", what(), setting.allowed()))?;
            Ok(Value::Text(ratio.to_string()))
        }
        Kind::OneOf(values) => {
            // `cleanup.policy` lists may come in either order.
            let canonical = if setting.key == "log_cleanup_policy" {
                CleanupPolicy::parse(&text).map_or(text.clone(), |p| p.as_str().to_string())
            } else {
                text.clone()
            };
            if !values.contains(&canonical.as_str()) {
                bail!("{} is not one of {}", what(), setting.allowed());
            }
            Ok(Value::Text(canonical))
        }
    }
}

fn with_article(noun: &str) -> String {
    let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {noun}")
}

/// Reads a `--config` file: a flat TOML table of settings by key. Unknown
/// keys are refused by name (a misspelt setting silently left at its
/// default is worse than no start).
pub fn read_file(path: &Path) -> anyhow::Result<BTreeMap<&'static str, toml::Value>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("config file {}", path.display()))?;
    if meta.len() > CONFIG_FILE_BYTES_MAX {
        bail!(
            "config file {}: {} bytes is too large for a config file (at most {CONFIG_FILE_BYTES_MAX})",
            path.display(),
            meta.len()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("config file {}", path.display()))?;
    parse_file(path, &text)
}

pub fn parse_file(path: &Path, text: &str) -> anyhow::Result<BTreeMap<&'static str, toml::Value>> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for (key, value) in table {
        let Some(setting) = setting(&key) else {
            bail!(
                "config file {}: unknown setting '{key}' (`seedlog serve --help` lists them)",
                path.display()
            );
        };
        out.insert(setting.key, value);
    }
    Ok(out)
}

/// Every setting's value and where it came from, resolved by precedence.
pub struct Resolved {
    values: BTreeMap<&'static str, (Option<Value>, Source)>,
    /// Keys read by `build`: a test checks none is left unread.
    read: RefCell<BTreeSet<&'static str>>,
}

impl Resolved {
    /// `given` are the flags and environment variables present (clap has
    /// already let a flag beat its environment variable); `file` the
    /// `--config` file's table.
    pub fn new(
        given: &BTreeMap<&'static str, (Source, String)>,
        file: Option<(&Path, &BTreeMap<&'static str, toml::Value>)>,
    ) -> anyhow::Result<Resolved> {
        let defaults = Defaults::builtin();
        let mut values = BTreeMap::new();
        for setting in SETTINGS {
            let from_file = file.and_then(|(path, table)| {
                table
                    .get(setting.key)
                    .map(|v| (Source::File(path.to_path_buf()), Raw::Toml(v.clone())))
            });
            let chosen = match given.get(setting.key) {
                Some((source, text)) => Some((source.clone(), Raw::Text(text.clone()))),
                None => from_file,
            };
            let resolved = match chosen {
                Some((source, raw)) => (Some(check(setting, &source, &raw)?), source),
                None => {
                    let value = (setting.default)(&defaults)
                        .map(|d| check(setting, &Source::Default, &Raw::Text(d)))
                        .transpose()?;
                    (value, Source::Default)
                }
            };
            values.insert(setting.key, resolved);
        }
        Ok(Resolved {
            values,
            read: RefCell::new(BTreeSet::new()),
        })
    }

    fn get(&self, key: &'static str) -> Option<&Value> {
        let (value, _) = self
            .values
            .get(key)
            .unwrap_or_else(|| panic!("'{key}' is not in SETTINGS"));
        self.read.borrow_mut().insert(key);
        value.as_ref()
    }

    pub fn source(&self, key: &'static str) -> &Source {
        &self.values[key].1
    }

    fn int(&self, key: &'static str) -> i64 {
        match self.get(key) {
            Some(Value::Int(v)) => *v,
            other => panic!("'{key}' is an integer with a default, got {other:?}"),
        }
    }

    fn opt_int(&self, key: &'static str) -> Option<i64> {
        match self.get(key) {
            Some(Value::Int(v)) => Some(*v),
            None => None,
            other => panic!("'{key}' is an integer, got {other:?}"),
        }
    }

    fn bool(&self, key: &'static str) -> bool {
        match self.get(key) {
            Some(Value::Bool(v)) => *v,
            other => panic!("'{key}' is a boolean with a default, got {other:?}"),
        }
    }

    fn opt_text(&self, key: &'static str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Text(v)) => Some(v),
            None => None,
            other => panic!("'{key}' is text, got {other:?}"),
        }
    }

    fn text(&self, key: &'static str) -> &str {
        self.opt_text(key)
            .unwrap_or_else(|| panic!("'{key}' has a default"))
    }

    fn address(&self, key: &'static str) -> Option<SocketAddr> {
        self.opt_text(key)
            .map(|t| t.parse().expect("checked as an address"))
    }

    /// The settings as a TOML file would give them, each with its source
    /// as a comment (`seedlog serve --print-config`).
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for setting in SETTINGS {
            let (value, source) = &self.values[setting.key];
            let from = match source {
                Source::Flag => format!("--{}", setting.flag()),
                Source::Env => setting.env(),
                Source::File(path) => path.display().to_string(),
                Source::Default => "default".to_string(),
            };
            match value {
                // A ratio is a TOML number, not the string it is kept as.
                Some(Value::Text(t)) if setting.kind == Kind::Ratio => {
                    out.push_str(&format!("{} = {t} # {from}\n", setting.key))
                }
                Some(v) => out.push_str(&format!("{} = {v} # {from}\n", setting.key)),
                None => out.push_str(&format!("# {} unset # {from}\n", setting.key)),
            }
        }
        out
    }

    /// The adapter's config, and the log format.
    pub fn build(&self) -> anyhow::Result<(ServerConfig, String)> {
        let usize_of = |key| usize::try_from(self.int(key)).expect("checked >= 0");
        let u64_of = |key| u64::try_from(self.int(key)).expect("checked >= 0");
        let i32_of = |key| i32::try_from(self.int(key)).expect("checked in i32");
        let ms_of = |key| std::time::Duration::from_millis(u64_of(key));

        let listen = self.address("listen").expect("has a default");
        let mut config = ServerConfig::new(listen, PathBuf::from(self.text("data_dir")));
        let node = &mut config.node;
        node.node_id = i32_of("node_id");
        node.auto_create_topics = self.bool("auto_create_topics");
        node.num_partitions = i32_of("num_partitions");
        node.flush_before_ack = self.bool("flush_before_ack");
        node.log.segment_bytes = u64_of("log_segment_bytes");
        node.log.segment_ms = u64_of("log_segment_ms");
        node.log.retention_ms = self.int("log_retention_ms");
        node.log.retention_bytes = self.int("log_retention_bytes");
        node.retention_check_interval_ms = u64_of("log_retention_check_interval_ms");
        node.log.cleanup_policy =
            CleanupPolicy::parse(self.text("log_cleanup_policy")).expect("checked");
        node.log.delete_retention_ms = u64_of("log_cleaner_delete_retention_ms");
        node.log.max_message_bytes =
            u32::try_from(self.int("message_max_bytes")).expect("checked in i32");
        node.in_flight_requests_per_connection_max =
            usize_of("max_in_flight_requests_per_connection");
        node.offsets_topic_partitions = i32_of("offsets_topic_num_partitions");
        node.offsets_retention_minutes = u64_of("offsets_retention_minutes");
        node.group_initial_rebalance_delay_ms = u64_of("group_initial_rebalance_delay_ms");
        node.group_min_session_timeout_ms = i32_of("group_min_session_timeout_ms");
        node.group_max_session_timeout_ms = i32_of("group_max_session_timeout_ms");
        node.group_max_size = usize_of("group_max_size");
        node.consumer_group_session_timeout_ms = u64_of("group_consumer_session_timeout_ms");
        node.consumer_group_heartbeat_interval_ms = u64_of("group_consumer_heartbeat_interval_ms");
        node.cluster_id = self.text("cluster_id").to_string();
        node.log.index_interval_bytes =
            u32::try_from(self.int("log_index_interval_bytes")).expect("checked in i32");
        node.log.min_cleanable_dirty_ratio_ppm =
            ppm_of_ratio(self.text("log_cleaner_min_cleanable_ratio"));
        node.delayed_fetches_max = usize_of("delayed_fetches_max");
        node.fetch_sessions_max = usize_of("max_incremental_fetch_session_cache_slots");
        config.node_queue_max = usize_of("queued_max_requests");
        config.node_batch_max = usize_of("node_batch_max");
        config.flush_threads_max = usize_of("flush_threads_max");
        config.responses_queued_per_connection_max =
            usize_of("responses_queued_per_connection_max");
        config.open_files_max = usize_of("open_files_max");
        config.page_cache_window_bytes = u64::try_from(self.int("page_cache_window_bytes")).ok();
        config.drain_timeout = ms_of("shutdown_drain_timeout_ms");
        config.peers.requests_queued_max = usize_of("peer_requests_queued_max");
        config.peers.in_flight_max = usize_of("peer_in_flight_max");
        config.peers.response_bytes_max = usize_of("peer_response_bytes_max");
        config.peers.connect_timeout = ms_of("peer_connect_timeout_ms");
        config.peers.response_timeout = ms_of("peer_response_timeout_ms");
        config.peers.backoff_min = ms_of("reconnect_backoff_ms");
        config.peers.backoff_max = ms_of("reconnect_backoff_max_ms");
        config.request_bytes_max = usize_of("socket_request_max_bytes");
        config.request_bytes_in_flight_max = usize_of("queued_max_request_bytes");
        config.connections_max = usize_of("max_connections");
        config.connection_idle_timeout = ms_of("connections_max_idle_ms");
        config.controlled_shutdown_timeout = ms_of("controlled_shutdown_timeout_ms");
        config.controller_listen = self.address("controller_listen");
        config.metrics_listen = self.address("metrics_listen");

        let voters = self
            .opt_text("voters")
            .map(|v| v.parse::<Voters>().expect("checked"));
        let mut cluster =
            ClusterConfig::new(voters.as_ref().map(|v| v.0.clone()).unwrap_or_default());
        cluster.rack = self.opt_text("rack").map(str::to_string);
        if let Some(rf) = self.opt_int("default_replication_factor") {
            cluster.default_replication_factor = i16::try_from(rf).expect("checked in i16");
        }
        cluster.min_insync_replicas = usize_of("min_insync_replicas");
        cluster.unclean_leader_election_enable = self.bool("unclean_leader_election_enable");
        cluster.replica_lag_time_max_ms = u64_of("replica_lag_time_max_ms");
        cluster.broker_heartbeat_interval_ms = u64_of("broker_heartbeat_interval_ms");
        cluster.broker_session_timeout_ms = u64_of("broker_session_timeout_ms");
        cluster.metadata_max_records_between_snapshots =
            self.int("metadata_max_records_between_snapshots");
        cluster.election_timeout_ms = u64_of("controller_quorum_election_timeout_ms");
        cluster.quorum_fetch_timeout_ms = u64_of("controller_quorum_fetch_timeout_ms");
        cluster.request_timeout_ms = u64_of("peer_request_timeout_ms");
        cluster.replica_fetch_wait_max_ms = u64_of("replica_fetch_wait_max_ms");
        cluster.replica_fetch_max_bytes = i32_of("replica_fetch_max_bytes");
        let log_format = self.text("log_format").to_string();

        self.check_together(voters.is_some())?;
        if voters.is_some() {
            config.node.cluster = Some(cluster);
        }
        Ok((config, log_format))
    }

    /// The rules between settings, each error naming both.
    fn check_together(&self, cluster: bool) -> anyhow::Result<()> {
        if !cluster {
            if let Some(s) = SETTINGS
                .iter()
                .find(|s| s.cluster_only && self.source(s.key) != &Source::Default)
            {
                bail!(
                    "{} is for a cluster node: it needs --voters (or voters in the file)",
                    self.named(s.key)
                );
            }
        }
        let pairs = [
            // (smaller, larger, strictly)
            (
                "socket_request_max_bytes",
                "queued_max_request_bytes",
                false,
            ),
            (
                "group_min_session_timeout_ms",
                "group_max_session_timeout_ms",
                false,
            ),
            (
                "broker_heartbeat_interval_ms",
                "broker_session_timeout_ms",
                true,
            ),
            (
                "group_consumer_heartbeat_interval_ms",
                "group_consumer_session_timeout_ms",
                true,
            ),
            ("replica_fetch_wait_max_ms", "replica_lag_time_max_ms", true),
            ("reconnect_backoff_ms", "reconnect_backoff_max_ms", false),
        ];
        for (small, large, strictly) in pairs {
            let (a, b) = (self.int(small), self.int(large));
            if a > b || (strictly && a == b) {
                bail!(
                    "{} must be {} {}",
                    self.named(small),
                    if strictly { "below" } else { "at most" },
                    self.named(large)
                );
            }
        }
        Ok(())
    }

    /// `num_partitions = 3 (from --num-partitions)`.
    fn named(&self, key: &'static str) -> String {
        let setting = setting(key).expect("a setting");
        let (value, source) = &self.values[key];
        let value = value
            .as_ref()
            .map_or("unset".to_string(), ToString::to_string);
        let from = match source {
            Source::Flag => format!("--{}", setting.flag()),
            Source::Env => setting.env(),
            Source::File(path) => format!("config file {}", path.display()),
            Source::Default => "default".to_string(),
        };
        format!("{key} = {value} (from {from})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(pairs: &[(&'static str, Source, &str)]) -> BTreeMap<&'static str, (Source, String)> {
        pairs
            .iter()
            .map(|(k, s, v)| (*k, (s.clone(), v.to_string())))
            .collect()
    }

    #[test]
    fn keys_flags_and_variables_are_unique_and_well_formed() {
        let mut keys = BTreeSet::new();
        for s in SETTINGS {
            assert!(keys.insert(s.key), "{} twice", s.key);
            assert!(
                s.key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                s.key
            );
            assert!(!s.help.is_empty());
            if let Kind::Int { min, max } = s.kind {
                assert!(min <= max, "{}", s.key);
            }
        }
    }

    #[test]
    fn the_defaults_build_the_adapters_own_defaults() {
        let resolved = Resolved::new(&BTreeMap::new(), None).unwrap();
        let (config, format) = resolved.build().unwrap();
        let defaults = Defaults::builtin().server;
        assert_eq!(format, "text");
        // Every field, the peer limits and the node's config included.
        assert_eq!(format!("{config:?}"), format!("{defaults:?}"));
        let unread: Vec<_> = SETTINGS
            .iter()
            .map(|s| s.key)
            .filter(|k| !resolved.read.borrow().contains(k))
            .collect();
        assert!(unread.is_empty(), "settings never applied: {unread:?}");
    }

    #[test]
    fn cluster_settings_reach_the_cluster_config() {
        let file = parse_file(
            Path::new("c.toml"),
            r#"
                voters = "1@127.0.0.1:9192"
                min_insync_replicas = 2
                default_replication_factor = 1
                broker_session_timeout_ms = 4000
                rack = "az-1"
            "#,
        )
        .unwrap();
        let r = Resolved::new(&BTreeMap::new(), Some((Path::new("c.toml"), &file))).unwrap();
        let (config, _) = r.build().unwrap();
        let cluster = config.node.cluster.expect("a cluster node");
        assert_eq!(cluster.min_insync_replicas, 2);
        assert_eq!(cluster.default_replication_factor, 1);
        assert_eq!(cluster.broker_session_timeout_ms, 4000);
        assert_eq!(cluster.rack.as_deref(), Some("az-1"));
        assert_eq!(cluster.voters.len(), 1);
    }

    #[test]
    fn a_flag_beats_the_file_which_beats_the_default() {
        let path = Path::new("x.toml");
        let file = parse_file(path, "num_partitions = 3\nnode_id = 7\n").unwrap();
        let r = Resolved::new(
            &given(&[("num_partitions", Source::Flag, "5")]),
            Some((path, &file)),
        )
        .unwrap();
        let (config, _) = r.build().unwrap();
        assert_eq!(config.node.num_partitions, 5);
        assert_eq!(config.node.node_id, 7);
        assert_eq!(r.source("node_id"), &Source::File(path.to_path_buf()));
        assert_eq!(r.source("num_partitions"), &Source::Flag);
        assert_eq!(r.source("listen"), &Source::Default);
        let printed = r.to_toml();
        assert!(
            printed.contains("num_partitions = 5 # --num-partitions"),
            "{printed}"
        );
        assert!(printed.contains("node_id = 7 # x.toml"), "{printed}");
        // What it prints reads back as a config file.
        parse_file(path, &printed).unwrap();
    }

    #[test]
    fn limits_peers_and_ratios_reach_the_adapter_and_the_core() {
        let file = parse_file(
            Path::new("c.toml"),
            r#"
                voters = "1@127.0.0.1:9192"
                cluster_id = "prod-east"
                replica_fetch_wait_max_ms = 250
                replica_fetch_max_bytes = 65536
                peer_response_timeout_ms = 7000
                reconnect_backoff_ms = 20
                reconnect_backoff_max_ms = 400
                queued_max_requests = 64
                open_files_max = 32
                shutdown_drain_timeout_ms = 1500
                log_index_interval_bytes = 1024
                log_cleaner_min_cleanable_ratio = 0.25
                group_consumer_session_timeout_ms = 30000
                group_consumer_heartbeat_interval_ms = 3000
            "#,
        )
        .unwrap();
        let r = Resolved::new(&BTreeMap::new(), Some((Path::new("c.toml"), &file))).unwrap();
        let (config, _) = r.build().unwrap();
        let cluster = config.node.cluster.as_ref().expect("a cluster node");
        assert_eq!(cluster.replica_fetch_wait_max_ms, 250);
        assert_eq!(cluster.replica_fetch_max_bytes, 65536);
        assert_eq!(config.node.cluster_id, "prod-east");
        assert_eq!(config.peers.response_timeout.as_millis(), 7000);
        assert_eq!(config.peers.backoff_min.as_millis(), 20);
        assert_eq!(config.peers.backoff_max.as_millis(), 400);
        assert_eq!(config.node_queue_max, 64);
        assert_eq!(config.open_files_max, 32);
        assert_eq!(config.drain_timeout.as_millis(), 1500);
        assert_eq!(config.node.log.index_interval_bytes, 1024);
        assert_eq!(config.node.log.min_cleanable_dirty_ratio_ppm, 250_000);
        assert_eq!(config.node.consumer_group_session_timeout_ms, 30_000);
        assert_eq!(config.node.consumer_group_heartbeat_interval_ms, 3_000);
        let printed = r.to_toml();
        assert!(
            printed.contains("log_cleaner_min_cleanable_ratio = 0.25 # c.toml"),
            "{printed}"
        );
        // The printed ratio is a number again when read back.
        let again = parse_file(Path::new("p.toml"), &printed).unwrap();
        let (reread, _) = Resolved::new(&BTreeMap::new(), Some((Path::new("p.toml"), &again)))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(reread.node.log.min_cleanable_dirty_ratio_ppm, 250_000);
    }

    #[test]
    fn ratios_and_setting_pairs_are_checked() {
        assert_eq!(
            error("log_cleaner_min_cleanable_ratio = 1.5"),
            "config file x.toml: log_cleaner_min_cleanable_ratio = 1.5 is not a fraction from 0 \
             to 1, such as 0.5"
        );
        assert_eq!(
            error("log_cleaner_min_cleanable_ratio = \"0.5\""),
            "config file x.toml: log_cleaner_min_cleanable_ratio = \"0.5\" is a string; write \
             it without quotes (a fraction from 0 to 1, such as 0.5)"
        );
        assert_eq!(
            error("voters = \"1@127.0.0.1:9192\"\nreplica_fetch_wait_max_ms = 30000"),
            "replica_fetch_wait_max_ms = 30000 (from config file x.toml) must be below \
             replica_lag_time_max_ms = 30000 (from default)"
        );
        assert_eq!(
            error("group_consumer_heartbeat_interval_ms = 45000"),
            "group_consumer_heartbeat_interval_ms = 45000 (from config file x.toml) must be \
             below group_consumer_session_timeout_ms = 45000 (from default)"
        );
        assert_eq!(
            error("cluster_id = \"\""),
            "config file x.toml: cluster_id = \"\" is empty"
        );
    }

    fn error(file: &str) -> String {
        let path = Path::new("x.toml");
        let result = parse_file(path, file)
            .and_then(|t| Resolved::new(&BTreeMap::new(), Some((path, &t)))?.build());
        format!("{:#}", result.expect_err("refused"))
    }

    #[test]
    fn bad_values_are_named_with_their_source_and_range() {
        assert_eq!(
            error("num_partitions = 0"),
            "config file x.toml: num_partitions = 0 is out of range 1..=10000"
        );
        assert!(error("num_partitions = \"3\"").contains("num_partitions = \"3\" is a string"));
        assert!(error("auto_create_topics = 1")
            .contains("auto_create_topics = 1 is an integer, not a boolean"));
        assert!(error("listen = \"nowhere\"").contains("listen = \"nowhere\" is not an IP"));
        assert!(error("log_format = \"xml\"").contains("is not one of text, json"));
        assert!(error("retention = 5").contains("unknown setting 'retention'"));
        assert!(error("[node]\nnode_id = 1").contains("unknown setting 'node'"));
        assert!(error("num_partitions = ").contains("config file x.toml"));
        let e = error("rack = \"az-1\"");
        assert!(
            e.contains("rack = \"az-1\" (from config file x.toml) is for a cluster node"),
            "{e}"
        );
        let e = error("group_min_session_timeout_ms = 9000\ngroup_max_session_timeout_ms = 8000");
        assert!(
            e.contains("group_min_session_timeout_ms = 9000") && e.contains("at most"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            Resolved::new(&given(&[("node_id", Source::Env, "-1")]), None)
                .err()
                .unwrap()
        );
        assert_eq!(e, "SEEDLOG_NODE_ID=-1 is out of range 0..=2147483647");
        let e = format!(
            "{:#}",
            Resolved::new(&given(&[("node_id", Source::Flag, "x")]), None)
                .err()
                .unwrap()
        );
        assert_eq!(e, "--node-id x is not an integer in 0..=2147483647");
    }

    #[test]
    fn cleanup_policy_lists_come_in_either_order() {
        let r = Resolved::new(
            &given(&[("log_cleanup_policy", Source::Flag, "delete, compact")]),
            None,
        )
        .unwrap();
        let (config, _) = r.build().unwrap();
        assert_eq!(config.node.log.cleanup_policy, CleanupPolicy::CompactDelete);
    }
}
