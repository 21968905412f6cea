//! The simulated world: brokers in AZs, clients, a TCP-like network, a disk
//! that forgets, and a virtual clock that jumps from event to event.
//!
//! Everything random comes from ChaCha streams derived from one seed, and
//! every ordering decision is made by the event queue, keyed by
//! (time, sequence number), so a seed replays byte for byte.

use crate::checker;
use crate::history::{ConsumerEvent, History, SendId, SendOp, SendOutcome, Tp};
use crate::scenario::{Fault, FaultKind, Scenario};
use crate::swarm::Swarm;
use crate::trace::{TraceHeader, TraceSink};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, FetchRequest, FetchResponse, ProduceRequest, RequestHeader,
    RequestKind, ResponseHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;
use petgraph::graph::{NodeIndex, UnGraph};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use seedlog_core::batch::{build_batch, decode_records_for_test, BatchIter, TestRecord};
use seedlog_core::node::{Input, Node, NodeConfig, Output};
use seedlog_core::storage::{MemoryStorage, Storage, StorageError};
use seedlog_core::Instant;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Duration;

/// Simulated time starts here, so Kafka timestamps look like real ones
/// (November 2023).
pub const EPOCH_MS: u64 = 1_700_000_000_000;
/// The event queue never holds more than this; a leak would show here.
const EVENTS_QUEUED_MAX: usize = 1_000_000;
/// A run never processes more events than this; a livelock would show here.
const EVENTS_PER_RUN_MAX: u64 = 50_000_000;
/// Outputs drained after one input; the core bounds its own queue too.
const OUTPUTS_PER_INPUT_MAX: usize = 100_000;
/// Faults one random rate may materialize in a run.
const RANDOM_FAULTS_PER_KIND_MAX: usize = 10_000;
/// A gap between two acknowledgements longer than this counts as a window
/// of unavailability.
const UNAVAILABLE_GAP_MS_MIN: u64 = 1_000;
/// Sends a producer holds unsent (its `buffer.memory`); beyond it the
/// application blocks.
const PRODUCER_QUEUE_MAX: usize = 64;
const PRODUCE_API_VERSION: i16 = 9;
const FETCH_API_VERSION: i16 = 12;
const CREATE_TOPICS_API_VERSION: i16 = 7;

/// Known bugs (or unsafe configurations) the simulator must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Bug {
    /// Acks come from the page cache (Kafka's default flush policy): a power
    /// cut loses acknowledged writes.
    NoFsync,
}

impl Bug {
    pub const ALL: &'static [Bug] = &[Bug::NoFsync];

    pub fn name(self) -> &'static str {
        match self {
            Bug::NoFsync => "no-fsync",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Bug::NoFsync => {
                "flush_before_ack=false: acks=1/all answered from the page cache; \
                 a crash loses acknowledged writes (fails lost_write)"
            }
        }
    }

    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.iter().copied().find(|b| b.name() == name)
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub bug: Option<Bug>,
    /// Write every trace line here.
    pub trace_file: Option<PathBuf>,
    /// Keep every trace line in the report (for replay comparison).
    pub keep_trace: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// A stable checker name from INVARIANTS.md.
    pub checker: String,
    /// The event (trace `n`) after which it was detected.
    pub event: u64,
    pub at_ms: u64,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub sends: u64,
    pub acked: u64,
    pub acked_after_heal: u64,
    pub unacked_acks0: u64,
    pub failed: u64,
    pub indeterminate: u64,
    pub records_read: u64,
    pub duplicates: u64,
    pub connections_opened: u64,
    pub connections_broken: u64,
    pub crashes: u64,
    pub torn_crashes: u64,
    pub process_kills: u64,
    pub restarts: u64,
    pub flushes: u64,
    pub flush_failures: u64,
    pub codec_roundtrips: u64,
    pub messages: u64,
    /// High watermark went back across a crash with flush_before_ack off
    /// (allowed by that configuration, counted).
    pub hw_regressions_allowed: u64,
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub scenario: String,
    pub seed: u64,
    pub bug: Option<Bug>,
    pub swarm: Swarm,
    /// The faults the run applied, random ones materialized.
    pub schedule: Vec<Fault>,
    pub events: u64,
    pub simulated_ms: u64,
    pub wall: Duration,
    pub stats: Stats,
    /// (producer, start ms, end ms) of windows in which a producer got no
    /// acknowledgement.
    pub unavailable_windows_ms: Vec<(u32, u64, u64)>,
    /// "az-a->az-b" to bytes.
    pub bytes_by_az_pair: BTreeMap<String, u64>,
    pub cross_az_bytes: u64,
    pub violations: Vec<Violation>,
    pub trace_hash: u64,
    pub trace_lines: u64,
    pub trace: Option<Vec<String>>,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn sim_seconds_per_wall_second(&self) -> f64 {
        self.simulated_ms as f64 / 1_000.0 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs one seed of a scenario to the end.
pub fn run(scenario: &Scenario, seed: u64, options: &RunOptions) -> RunReport {
    let wall_start = std::time::Instant::now();
    // The core logs through `tracing`; thousands of seeds of recovery
    // warnings drown the summary and cost time. The trace is the record.
    let mut report =
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            World::new(scenario, seed, options).run()
        });
    report.wall = wall_start.elapsed();
    report
}

// --- events -----------------------------------------------------------------

type ConnId = u64;
/// (offset, value) of every record of one partition, in offset order.
type PartitionRecords = Vec<(i64, Vec<u8>)>;
type ClientId = usize;
type BrokerId = usize;

#[derive(Debug)]
enum EventKind {
    Connected {
        conn: ConnId,
    },
    ConnectFailed {
        client: ClientId,
        conn: ConnId,
    },
    ToNode {
        conn: ConnId,
        header: RequestHeader,
        body: RequestKind,
    },
    ToClient {
        conn: ConnId,
        correlation_id: i32,
        body: ResponseKind,
    },
    /// The broker learns that a connection is gone.
    NodeSawClose {
        broker: BrokerId,
        generation: u64,
        conn: ConnId,
    },
    /// The client learns that its connection is gone (RST, refused).
    ClientSawClose {
        client: ClientId,
        conn: ConnId,
    },
    ClientWake {
        client: ClientId,
    },
    NodeTimer {
        broker: BrokerId,
    },
    FlushDone {
        broker: BrokerId,
        generation: u64,
        flush_id: u64,
        paths: Vec<String>,
    },
    FaultStart {
        index: usize,
    },
    FaultEnd {
        index: usize,
    },
    Heal,
    End,
}

struct Event {
    at: Instant,
    seq: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Event) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest event goes
    /// first; the sequence number breaks ties in insertion order.
    fn cmp(&self, other: &Event) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One trace line's event.
#[derive(Serialize)]
#[serde(tag = "e", rename_all = "snake_case")]
enum Ev<'a> {
    Swarm {
        swarm: &'a Swarm,
    },
    Fault {
        index: usize,
        fault: &'a Fault,
        start: bool,
    },
    FaultSkipped {
        index: usize,
        why: &'a str,
    },
    Connect {
        client: ClientId,
        conn: ConnId,
    },
    Connected {
        conn: ConnId,
    },
    ConnectFailed {
        client: ClientId,
        conn: ConnId,
    },
    Close {
        conn: ConnId,
        by: &'a str,
        why: &'a str,
    },
    Request {
        conn: ConnId,
        api: i16,
        corr: i32,
        bytes: u64,
    },
    Response {
        conn: ConnId,
        api: i16,
        corr: i32,
        bytes: u64,
    },
    Drop {
        conn: ConnId,
        what: &'a str,
    },
    Flush {
        broker: BrokerId,
        id: u64,
        files: usize,
    },
    FlushDone {
        broker: BrokerId,
        id: u64,
        ok: bool,
    },
    Timer {
        broker: BrokerId,
    },
    Crash {
        broker: BrokerId,
        power_loss: bool,
        torn: Option<&'a str>,
    },
    Restart {
        broker: BrokerId,
    },
    Invoke {
        send: SendId,
        producer: ClientId,
        tp: &'a Tp,
        acks: i16,
        records: usize,
    },
    Complete {
        send: SendId,
        outcome: SendOutcome,
    },
    Poll {
        consumer: ClientId,
        tp: &'a Tp,
        from: i64,
        records: usize,
        hw: i64,
        error: i16,
    },
    Seek {
        consumer: ClientId,
        tp: &'a Tp,
        offset: i64,
    },
    Hw {
        broker: BrokerId,
        tp: &'a Tp,
        hw: i64,
    },
    Violation {
        checker: &'a str,
        message: &'a str,
    },
    Heal,
    End,
}

// --- the world's parts --------------------------------------------------------

enum BrokerState {
    Up(Box<Node<MemoryStorage>>),
    Down(MemoryStorage),
    /// Only while a transition is under way, or after recovery failed.
    Gone,
}

struct Broker {
    az: usize,
    config: NodeConfig,
    node_seed: u64,
    state: BrokerState,
    /// Bumped on every crash: flushes and closes of an older life are void.
    generation: u64,
    paused_until: Instant,
    skew_ms: i64,
    drift_ppm: i64,
    disk_full: bool,
    slow_flush_extra_ms: u64,
    /// The world time of the one armed timer event (stale ones are skipped).
    timer_at: Option<Instant>,
    /// Crashed since the high watermark was last observed.
    crashed_since_observed: bool,
}

struct Conn {
    client: ClientId,
    broker: BrokerId,
    established: bool,
    /// TCP keeps order: a message is never delivered before an earlier one.
    last_to_node: Instant,
    last_to_client: Instant,
}

#[derive(Debug, Clone, Copy)]
enum ClientConn {
    Down { reconnect_at: Instant },
    Connecting(ConnId),
    Open(ConnId),
}

struct Producer {
    next_send_at: Instant,
    /// Sends waiting to go out (new or to retry), oldest first.
    queue: VecDeque<SendId>,
    /// correlation id -> (send, deadline)
    in_flight: BTreeMap<i32, (SendId, Instant)>,
    retry_at: Instant,
}

struct Consumer {
    positions: BTreeMap<Tp, i64>,
    next_fetch_at: Instant,
    in_flight: Option<(i32, Instant)>,
}

enum ClientKind {
    Producer(Producer),
    Consumer(Consumer),
}

struct Client {
    az: usize,
    conn: ClientConn,
    next_correlation_id: i32,
    wake_at: Option<Instant>,
    kind: ClientKind,
}

#[derive(Debug, Clone, Copy)]
struct Cut {
    from: usize,
    to: usize,
    until: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Clog {
    a: usize,
    b: usize,
    extra: Duration,
    until: Instant,
}

/// Per-link one-way latency range, in microseconds.
#[derive(Debug, Clone, Copy)]
struct Link {
    latency_us: [u64; 2],
}

struct World {
    scenario: Scenario,
    seed: u64,
    bug: Option<Bug>,
    swarm: Swarm,
    now: Instant,
    epoch: Instant,
    queue: BinaryHeap<Event>,
    seq: u64,
    events: u64,
    rng_net: ChaCha8Rng,
    rng_client: ChaCha8Rng,
    rng_disk: ChaCha8Rng,
    az_names: Vec<String>,
    graph: UnGraph<usize, Link>,
    az_nodes: Vec<NodeIndex>,
    brokers: Vec<Broker>,
    clients: Vec<Client>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    cuts: Vec<Cut>,
    clogs: Vec<Clog>,
    schedule: Vec<Fault>,
    tps: Vec<Tp>,
    history: History,
    trace: TraceSink,
    violations: Vec<Violation>,
    violated: BTreeSet<String>,
    hw_seen: BTreeMap<(BrokerId, Tp), i64>,
    /// consistent_read: the value each (partition, offset) was first read as.
    read_values: BTreeMap<(Tp, i64), Vec<u8>>,
    read_offset_max: BTreeMap<Tp, i64>,
    bytes: BTreeMap<(usize, usize), u64>,
    /// producer -> times of its acknowledgements.
    ack_times_ms: BTreeMap<u32, Vec<u64>>,
    stats: Stats,
    /// The core panicked: nothing after it means anything.
    stopped: bool,
    healed: bool,
    heal_at: Instant,
    produce_stop_at: Instant,
    end_at: Instant,
}

fn uniform(rng: &mut ChaCha8Rng, [lo, hi]: [u64; 2]) -> u64 {
    if lo >= hi {
        lo
    } else {
        rng.gen_range(lo..=hi)
    }
}

impl World {
    fn new(scenario: &Scenario, seed: u64, options: &RunOptions) -> World {
        scenario.validate().expect("a valid scenario");
        // One master stream hands out independent seeds, in a fixed order,
        // so adding draws to one part never shifts another.
        let mut master = ChaCha8Rng::seed_from_u64(seed);
        let mut rng_swarm = ChaCha8Rng::seed_from_u64(master.gen());
        let mut rng_faults = ChaCha8Rng::seed_from_u64(master.gen());
        let rng_net = ChaCha8Rng::seed_from_u64(master.gen());
        let rng_client = ChaCha8Rng::seed_from_u64(master.gen());
        let rng_disk = ChaCha8Rng::seed_from_u64(master.gen());
        let node_seed_base: u64 = master.gen();
        let swarm = Swarm::derive(&mut rng_swarm, scenario);

        let t = &scenario.topology;
        let az_of = |name: &str| {
            t.azs
                .iter()
                .position(|a| a == name)
                .expect("validated AZ name")
        };
        let mut graph = UnGraph::new_undirected();
        let az_nodes: Vec<NodeIndex> = (0..t.azs.len()).map(|i| graph.add_node(i)).collect();
        for (i, a) in az_nodes.iter().enumerate() {
            for (j, b) in az_nodes.iter().enumerate().skip(i) {
                let latency_us = if i == j {
                    swarm.intra_az_latency_us
                } else {
                    swarm.cross_az_latency_us
                };
                graph.add_edge(*a, *b, Link { latency_us });
            }
        }

        let epoch = Instant::from_millis(EPOCH_MS);
        let brokers = t
            .brokers
            .iter()
            .enumerate()
            .map(|(i, az)| {
                let mut config = NodeConfig {
                    node_id: i as i32 + 1,
                    auto_create_topics: false,
                    flush_before_ack: options.bug != Some(Bug::NoFsync),
                    ..NodeConfig::default()
                };
                config.log.segment_bytes = swarm.segment_bytes;
                Broker {
                    az: az_of(az),
                    config,
                    node_seed: node_seed_base.wrapping_add(i as u64),
                    state: BrokerState::Down(MemoryStorage::new()),
                    generation: 0,
                    paused_until: epoch,
                    skew_ms: 0,
                    drift_ppm: swarm.drift_ppm[i],
                    disk_full: false,
                    slow_flush_extra_ms: 0,
                    timer_at: None,
                    crashed_since_observed: false,
                }
            })
            .collect();

        let mut tps: Vec<Tp> = Vec::new();
        for topic in &scenario.workload.topics {
            for p in 0..topic.partitions {
                tps.push((topic.name.clone(), p));
            }
        }
        let mut clients = Vec::new();
        for az in &t.producers {
            clients.push(Client {
                az: az_of(az),
                conn: ClientConn::Down {
                    reconnect_at: epoch,
                },
                next_correlation_id: 1,
                wake_at: None,
                kind: ClientKind::Producer(Producer {
                    next_send_at: epoch,
                    queue: VecDeque::new(),
                    in_flight: BTreeMap::new(),
                    retry_at: epoch,
                }),
            });
        }
        let consumers = t.consumers.len();
        for (c, az) in t.consumers.iter().enumerate() {
            let positions = tps
                .iter()
                .enumerate()
                .filter(|(i, _)| i % consumers == c)
                .map(|(_, tp)| (tp.clone(), 0))
                .collect();
            clients.push(Client {
                az: az_of(az),
                conn: ClientConn::Down {
                    reconnect_at: epoch,
                },
                next_correlation_id: 1,
                wake_at: None,
                kind: ClientKind::Consumer(Consumer {
                    positions,
                    next_fetch_at: epoch,
                    in_flight: None,
                }),
            });
        }

        let schedule = materialize_faults(scenario, &swarm, &mut rng_faults);
        let trace_file = options.trace_file.as_ref().map(|p| {
            std::fs::File::create(p)
                .unwrap_or_else(|e| panic!("cannot create trace file {}: {e}", p.display()))
        });
        let mut trace = TraceSink::new(options.keep_trace, trace_file);
        let header = TraceHeader {
            seedlog_sim_version: env!("CARGO_PKG_VERSION").to_string(),
            seed,
            bug: options.bug.map(|b| b.name().to_string()),
            scenario_toml: scenario.to_toml(),
        };
        trace.line(serde_json::to_string(&header).expect("header serializes"));

        let heal_at = epoch + Duration::from_millis(scenario.phases.fault_ms);
        let end_at = heal_at + Duration::from_millis(scenario.phases.liveness_ms);
        let produce_stop_at = heal_at + Duration::from_millis(scenario.phases.liveness_ms / 4);
        World {
            scenario: scenario.clone(),
            seed,
            bug: options.bug,
            swarm,
            now: epoch,
            epoch,
            queue: BinaryHeap::new(),
            seq: 0,
            events: 0,
            rng_net,
            rng_client,
            rng_disk,
            az_names: t.azs.clone(),
            graph,
            az_nodes,
            brokers,
            clients,
            conns: BTreeMap::new(),
            next_conn: 1,
            cuts: Vec::new(),
            clogs: Vec::new(),
            schedule,
            tps,
            history: History::default(),
            trace,
            violations: Vec::new(),
            violated: BTreeSet::new(),
            hw_seen: BTreeMap::new(),
            read_values: BTreeMap::new(),
            read_offset_max: BTreeMap::new(),
            bytes: BTreeMap::new(),
            ack_times_ms: BTreeMap::new(),
            stats: Stats::default(),
            stopped: false,
            healed: false,
            heal_at,
            produce_stop_at,
            end_at,
        }
    }

    fn ms(&self) -> u64 {
        (self.now - self.epoch).as_millis() as u64
    }

    fn push(&mut self, at: Instant, kind: EventKind) {
        assert!(
            at >= self.now,
            "an event scheduled in the past: {kind:?} at {at:?}, now {:?}",
            self.now
        );
        assert!(
            self.queue.len() < EVENTS_QUEUED_MAX,
            "event queue over {EVENTS_QUEUED_MAX}: something schedules without bound"
        );
        self.seq += 1;
        self.queue.push(Event {
            at,
            seq: self.seq,
            kind,
        });
    }

    fn emit(&mut self, ev: Ev<'_>) {
        let us = (self.now - self.epoch).as_micros();
        let json = serde_json::to_string(&ev).expect("trace event serializes");
        self.trace.line(format!(
            "{{\"n\":{},\"t_us\":{us},{}",
            self.events,
            &json[1..]
        ));
    }

    fn violation(&mut self, checker: &str, message: String) {
        self.emit(Ev::Violation {
            checker,
            message: &message,
        });
        // The first violation of each checker is the one worth reporting;
        // later ones are usually its echoes.
        if self.violated.insert(checker.to_string()) {
            self.violations.push(Violation {
                checker: checker.to_string(),
                event: self.events,
                at_ms: self.ms(),
                message,
            });
        }
    }

    // --- the loop -------------------------------------------------------------

    fn run(mut self) -> RunReport {
        let swarm = self.swarm.clone();
        self.emit(Ev::Swarm { swarm: &swarm });
        self.setup();
        for index in 0..self.schedule.len() {
            let at = self.epoch + Duration::from_millis(self.schedule[index].at_ms);
            self.push(at, EventKind::FaultStart { index });
        }
        // A millisecond after the fault phase, so that faults ending exactly
        // at its end have ended.
        self.push(self.heal_at + Duration::from_millis(1), EventKind::Heal);
        self.push(self.end_at, EventKind::End);
        for c in 0..self.clients.len() {
            // Clients start staggered, as real ones do.
            let start = self.now + Duration::from_micros(self.rng_client.gen_range(0..50_000));
            if let ClientKind::Producer(p) = &mut self.clients[c].kind {
                p.next_send_at = start;
            }
            self.clients[c].conn = ClientConn::Down {
                reconnect_at: start,
            };
            self.rearm_client(c);
        }

        while let Some(event) = self.queue.pop() {
            assert!(event.at >= self.now, "time never goes back");
            self.now = event.at;
            self.events += 1;
            assert!(
                self.events <= EVENTS_PER_RUN_MAX,
                "over {EVENTS_PER_RUN_MAX} events: a livelock"
            );
            let end = matches!(event.kind, EventKind::End);
            let touched = self.dispatch(event.kind);
            if let Some(broker) = touched {
                self.check_broker(broker);
            }
            if end || self.stopped {
                break;
            }
        }
        if !self.stopped {
            self.emit(Ev::End);
            self.end_of_run();
        }
        self.report()
    }

    /// Handles one event; returns the broker whose state it may have changed.
    fn dispatch(&mut self, kind: EventKind) -> Option<BrokerId> {
        match kind {
            EventKind::Connected { conn } => {
                self.on_connected(conn);
                None
            }
            EventKind::ConnectFailed { client, conn } => {
                self.emit(Ev::ConnectFailed { client, conn });
                self.conns.remove(&conn);
                if matches!(self.clients[client].conn, ClientConn::Connecting(c) if c == conn) {
                    self.client_lost_connection(client);
                }
                None
            }
            EventKind::ToNode { conn, header, body } => {
                let Some(broker) = self.conns.get(&conn).map(|c| c.broker) else {
                    self.emit(Ev::Drop {
                        conn,
                        what: "request on a closed connection",
                    });
                    return None;
                };
                if let Some(until) = self.paused(broker) {
                    // Re-queued in the order they fired, so a paused node
                    // still sees its inputs in order when it wakes.
                    self.push(until, EventKind::ToNode { conn, header, body });
                    return None;
                }
                self.node_input(
                    broker,
                    Input::Request {
                        connection: conn,
                        header,
                        body,
                    },
                );
                Some(broker)
            }
            EventKind::ToClient {
                conn,
                correlation_id,
                body,
            } => {
                let Some(c) = self.conns.get(&conn) else {
                    self.emit(Ev::Drop {
                        conn,
                        what: "response",
                    });
                    return None;
                };
                let client = c.client;
                self.client_response(client, conn, correlation_id, body);
                None
            }
            EventKind::NodeSawClose {
                broker,
                generation,
                conn,
            } => {
                if self.brokers[broker].generation != generation {
                    return None;
                }
                if let Some(until) = self.paused(broker) {
                    self.push(
                        until,
                        EventKind::NodeSawClose {
                            broker,
                            generation,
                            conn,
                        },
                    );
                    return None;
                }
                self.node_input(broker, Input::ConnectionClosed { connection: conn });
                Some(broker)
            }
            EventKind::ClientSawClose { client, conn } => {
                let current = match self.clients[client].conn {
                    ClientConn::Open(c) | ClientConn::Connecting(c) => c == conn,
                    ClientConn::Down { .. } => false,
                };
                if current {
                    self.client_lost_connection(client);
                }
                None
            }
            EventKind::ClientWake { client } => {
                if self.clients[client].wake_at == Some(self.now) {
                    self.clients[client].wake_at = None;
                    self.client_tick(client);
                }
                None
            }
            EventKind::NodeTimer { broker } => {
                if self.brokers[broker].timer_at != Some(self.now) {
                    return None; // superseded
                }
                self.brokers[broker].timer_at = None;
                if let Some(until) = self.paused(broker) {
                    self.brokers[broker].timer_at = Some(until);
                    self.push(until, EventKind::NodeTimer { broker });
                    return None;
                }
                self.emit(Ev::Timer { broker });
                let now = self.node_now(broker);
                let BrokerState::Up(node) = &mut self.brokers[broker].state else {
                    return None;
                };
                let due = node.poll_timeout().is_some_and(|t| t <= now);
                if due {
                    let result = catch_unwind(AssertUnwindSafe(|| node.handle_timeout(now)));
                    if let Err(panic) = result {
                        self.core_panicked(broker, "handle_timeout", panic);
                        return None;
                    }
                }
                self.drain_outputs(broker);
                Some(broker)
            }
            EventKind::FlushDone {
                broker,
                generation,
                flush_id,
                paths,
            } => {
                if self.brokers[broker].generation != generation {
                    return None; // the process that asked for it is dead
                }
                if self.brokers[broker].paused_until > self.now {
                    let at = self.brokers[broker].paused_until;
                    self.push(
                        at,
                        EventKind::FlushDone {
                            broker,
                            generation,
                            flush_id,
                            paths,
                        },
                    );
                    return None;
                }
                self.flush_done(broker, flush_id, paths);
                Some(broker)
            }
            EventKind::FaultStart { index } => self.fault_start(index),
            EventKind::FaultEnd { index } => self.fault_end(index),
            EventKind::Heal => {
                self.healed = true;
                self.emit(Ev::Heal);
                assert!(
                    self.cuts.iter().all(|c| c.until <= self.now)
                        && self.clogs.iter().all(|c| c.until <= self.now),
                    "every network fault ends by the end of the fault phase"
                );
                assert!(
                    self.brokers
                        .iter()
                        .all(|b| matches!(b.state, BrokerState::Up(_)) && !b.disk_full),
                    "every broker is up and has disk by the end of the fault phase"
                );
                None
            }
            EventKind::End => None,
        }
    }

    /// Until when the broker is paused (a GC-like stall), if it is.
    fn paused(&self, broker: BrokerId) -> Option<Instant> {
        let until = self.brokers[broker].paused_until;
        (until > self.now).then_some(until)
    }

    /// The broker's view of now: skewed and drifting.
    fn node_now(&self, broker: BrokerId) -> Instant {
        let b = &self.brokers[broker];
        let elapsed_ns = (self.now - self.epoch).as_nanos() as i128;
        let offset_ns =
            i128::from(b.skew_ms) * 1_000_000 + elapsed_ns * i128::from(b.drift_ppm) / 1_000_000;
        let nanos = (i128::from(self.now.as_nanos()) + offset_ns).max(0);
        Instant::from_nanos(u64::try_from(nanos).expect("time fits u64"))
    }

    /// Converts a node deadline back to world time (approximately, under
    /// drift; a timer that fires early is simply re-armed).
    fn world_time_of(&self, broker: BrokerId, node_time: Instant) -> Instant {
        let node_now = self.node_now(broker);
        let ahead = node_time - node_now;
        self.now + ahead
    }

    // --- brokers --------------------------------------------------------------

    fn setup(&mut self) {
        for b in 0..self.brokers.len() {
            self.start_broker(b);
        }
        // Topics are created once, directly on the broker, before any fault:
        // the run is about what happens to their data.
        let topics: Vec<CreatableTopic> = self
            .scenario
            .workload
            .topics
            .iter()
            .map(|t| {
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                    .with_num_partitions(t.partitions)
                    .with_replication_factor(1)
            })
            .collect();
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::CreateTopics as i16)
            .with_request_api_version(CREATE_TOPICS_API_VERSION)
            .with_correlation_id(0);
        let body = RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(topics));
        let setup_conn = 0;
        let responses = self.direct_request(0, setup_conn, header, body);
        match responses.as_slice() {
            [ResponseKind::CreateTopics(r)] => {
                for t in &r.topics {
                    assert_eq!(t.error_code, 0, "setup creates topic {:?}", t.name);
                }
            }
            other => panic!("CreateTopics answered {other:?}"),
        }
    }

    fn start_broker(&mut self, b: BrokerId) {
        let state = std::mem::replace(&mut self.brokers[b].state, BrokerState::Gone);
        let BrokerState::Down(storage) = state else {
            panic!("start_broker on a broker that is not down");
        };
        let now = self.node_now(b);
        let broker = &self.brokers[b];
        let config = broker.config.clone();
        let seed = broker
            .node_seed
            .wrapping_add(broker.generation.wrapping_mul(0x9e37_79b9));
        let result = catch_unwind(AssertUnwindSafe(move || {
            Node::new(config, storage, seed, now)
        }));
        match result {
            Ok(Ok(node)) => {
                self.brokers[b].state = BrokerState::Up(Box::new(node));
                self.drain_outputs(b);
            }
            Ok(Err(e)) => {
                self.violation(
                    "node_invariants",
                    format!("broker {b}: recovery refused its own disk: {e}"),
                );
                self.stopped = true;
            }
            Err(panic) => self.core_panicked(b, "Node::new (recovery)", panic),
        }
    }

    fn core_panicked(&mut self, b: BrokerId, during: &str, panic: Box<dyn std::any::Any + Send>) {
        let message = panic_message(&panic);
        self.violation(
            "node_invariants",
            format!("broker {b} panicked in {during}: {message}"),
        );
        self.brokers[b].state = BrokerState::Gone;
        self.stopped = true;
    }

    fn node_input(&mut self, b: BrokerId, input: Input) {
        let now = self.node_now(b);
        let BrokerState::Up(node) = &mut self.brokers[b].state else {
            if let Input::Request { connection, .. } = input {
                self.emit(Ev::Drop {
                    conn: connection,
                    what: "request to a down broker",
                });
            }
            return;
        };
        let result = catch_unwind(AssertUnwindSafe(|| node.handle(now, input)));
        if let Err(panic) = result {
            self.core_panicked(b, "handle", panic);
            return;
        }
        self.drain_outputs(b);
    }

    fn drain_outputs(&mut self, b: BrokerId) {
        for _ in 0..OUTPUTS_PER_INPUT_MAX {
            let BrokerState::Up(node) = &mut self.brokers[b].state else {
                return;
            };
            let Some(output) = node.poll_output() else {
                self.rearm_node_timer(b);
                return;
            };
            match output {
                Output::Response {
                    connection,
                    correlation_id,
                    api_key,
                    api_version,
                    body,
                } => self.send_to_client(connection, correlation_id, api_key, api_version, body),
                Output::Flush { flush_id, paths } => {
                    self.stats.flushes += 1;
                    self.emit(Ev::Flush {
                        broker: b,
                        id: flush_id,
                        files: paths.len(),
                    });
                    let latency_us = uniform(&mut self.rng_disk, self.swarm.flush_latency_us);
                    let at = self.now
                        + Duration::from_micros(latency_us)
                        + Duration::from_millis(self.brokers[b].slow_flush_extra_ms);
                    let generation = self.brokers[b].generation;
                    self.push(
                        at,
                        EventKind::FlushDone {
                            broker: b,
                            generation,
                            flush_id,
                            paths,
                        },
                    );
                }
                Output::CloseConnection { connection, reason } => {
                    self.emit(Ev::Close {
                        conn: connection,
                        by: "broker",
                        why: &reason,
                    });
                    if let Some(conn) = self.conns.remove(&connection) {
                        let at = self.now
                            + self.latency(self.brokers[b].az, self.clients[conn.client].az);
                        self.push(
                            at,
                            EventKind::ClientSawClose {
                                client: conn.client,
                                conn: connection,
                            },
                        );
                    }
                }
            }
        }
        panic!("broker {b} produced over {OUTPUTS_PER_INPUT_MAX} outputs for one input");
    }

    fn rearm_node_timer(&mut self, b: BrokerId) {
        let BrokerState::Up(node) = &self.brokers[b].state else {
            return;
        };
        let Some(deadline) = node.poll_timeout() else {
            return;
        };
        // Never sooner than a microsecond from now, so a timer the node
        // considers due under skew cannot spin the loop at one instant.
        let at = self
            .world_time_of(b, deadline)
            .max(self.now + Duration::from_micros(1));
        if self.brokers[b].timer_at.is_some_and(|t| t <= at) {
            return;
        }
        self.brokers[b].timer_at = Some(at);
        self.push(at, EventKind::NodeTimer { broker: b });
    }

    fn flush_done(&mut self, b: BrokerId, flush_id: u64, paths: Vec<String>) {
        let disk_full = self.brokers[b].disk_full;
        let BrokerState::Up(node) = &mut self.brokers[b].state else {
            return;
        };
        let mut error = None;
        if disk_full {
            error = Some(StorageError::NoSpace(
                paths.first().cloned().unwrap_or_default(),
            ));
        } else {
            for path in &paths {
                if let Err(e) = node.storage_mut().sync(path) {
                    error = Some(e);
                    break;
                }
            }
        }
        self.emit(Ev::FlushDone {
            broker: b,
            id: flush_id,
            ok: error.is_none(),
        });
        let input = match error {
            None => Input::FlushCompleted { flush_id },
            Some(error) => {
                self.stats.flush_failures += 1;
                Input::FlushFailed { flush_id, error }
            }
        };
        self.node_input(b, input);
    }

    /// Stops broker `b`. A power cut (`power_loss`) forgets unsynced bytes
    /// (or tears one file's tail); a process kill keeps them, as the page
    /// cache outlives the process.
    fn crash(&mut self, b: BrokerId, torn: bool, power_loss: bool) -> bool {
        let state = std::mem::replace(&mut self.brokers[b].state, BrokerState::Gone);
        let BrokerState::Up(node) = state else {
            self.brokers[b].state = state;
            return false;
        };
        let mut storage = node.into_storage();
        let mut torn_path = None;
        if torn && power_loss {
            let candidates: Vec<String> = storage
                .paths()
                .into_iter()
                .filter(|p| p.ends_with(".log") && storage.unsynced_bytes(p) > 0)
                .collect();
            if !candidates.is_empty() {
                let path = candidates[self.rng_disk.gen_range(0..candidates.len())].clone();
                let unsynced = storage.unsynced_bytes(&path);
                let keep = self.rng_disk.gen_range(1..=unsynced);
                storage.crash_torn(&path, keep);
                torn_path = Some(path);
            }
        }
        if !power_loss {
            self.stats.process_kills += 1;
        } else if torn_path.is_none() {
            storage.crash();
        } else {
            self.stats.torn_crashes += 1;
        }
        self.stats.crashes += 1;
        self.emit(Ev::Crash {
            broker: b,
            power_loss,
            torn: torn_path.as_deref(),
        });
        let broker = &mut self.brokers[b];
        broker.state = BrokerState::Down(storage);
        broker.generation += 1;
        broker.timer_at = None;
        broker.crashed_since_observed = power_loss;
        // Every connection dies with the process; clients see RST or silence.
        let dead: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.broker == b)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            let conn = self.conns.remove(&id).expect("listed above");
            self.stats.connections_broken += 1;
            let at = self.now + self.latency(self.brokers[b].az, self.clients[conn.client].az);
            self.push(
                at,
                EventKind::ClientSawClose {
                    client: conn.client,
                    conn: id,
                },
            );
        }
        true
    }

    fn restart(&mut self, b: BrokerId) {
        if !matches!(self.brokers[b].state, BrokerState::Down(_)) {
            return;
        }
        self.stats.restarts += 1;
        self.emit(Ev::Restart { broker: b });
        self.start_broker(b);
    }

    /// A request handled on the spot, outside the network (setup, audit).
    fn direct_request(
        &mut self,
        b: BrokerId,
        conn: ConnId,
        header: RequestHeader,
        body: RequestKind,
    ) -> Vec<ResponseKind> {
        let now = self.node_now(b);
        let BrokerState::Up(node) = &mut self.brokers[b].state else {
            panic!("direct request to broker {b}, which is down");
        };
        node.handle(
            now,
            Input::Request {
                connection: conn,
                header,
                body,
            },
        );
        let mut responses = Vec::new();
        let mut flushes = Vec::new();
        for _ in 0..OUTPUTS_PER_INPUT_MAX {
            match node.poll_output() {
                None => break,
                Some(Output::Response {
                    connection, body, ..
                }) if connection == conn => responses.push(body),
                Some(Output::Flush { flush_id, paths }) => flushes.push((flush_id, paths)),
                Some(_) => {}
            }
        }
        // Setup happens before anything can fail: flush synchronously so the
        // topics' metadata is durable from the start.
        for (flush_id, paths) in flushes {
            for path in &paths {
                node.storage_mut().sync(path).expect("setup sync");
            }
            node.handle(now, Input::FlushCompleted { flush_id });
        }
        responses
    }

    // --- per-event checkers ---------------------------------------------------

    fn check_broker(&mut self, b: BrokerId) {
        if !matches!(self.brokers[b].state, BrokerState::Up(_)) {
            return;
        }
        let crashed = std::mem::replace(&mut self.brokers[b].crashed_since_observed, false);
        let BrokerState::Up(node) = &self.brokers[b].state else {
            return;
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| node.check_invariants())) {
            let message = panic_message(&panic);
            self.violation(
                "node_invariants",
                format!("broker {b}: check_invariants: {message}"),
            );
            self.stopped = true;
            return;
        }
        let flush_before_ack = node.config().flush_before_ack;
        let mut problems = Vec::new();
        let mut regressions = 0;
        let mut moved = Vec::new();
        for tp in &self.tps {
            let Some((_, hw, log_end)) = node.partition_offsets(&tp.0, tp.1) else {
                problems.push((
                    "consistent_read",
                    format!("broker {b} lost partition {}-{}", tp.0, tp.1),
                ));
                continue;
            };
            let key = (b, tp.clone());
            let seen = self.hw_seen.get(&key).copied().unwrap_or(0);
            if hw < seen {
                if crashed && !flush_before_ack {
                    regressions += 1;
                } else {
                    problems.push((
                        "monotonic_high_watermark",
                        format!(
                            "broker {b} {}-{}: high watermark went back from {seen} to {hw}{}",
                            tp.0,
                            tp.1,
                            if crashed { " across a crash" } else { "" }
                        ),
                    ));
                }
            }
            if hw != seen {
                moved.push((tp.clone(), hw));
            }
            self.hw_seen.insert(key, hw);
            if let Some(max) = self.read_offset_max.get(tp) {
                if log_end <= *max {
                    problems.push((
                        "consistent_read",
                        format!(
                            "{}-{}: a consumer read offset {max}, but broker {b}'s log now ends at {log_end}",
                            tp.0, tp.1
                        ),
                    ));
                }
            }
        }
        self.stats.hw_regressions_allowed += regressions;
        for (tp, hw) in &moved {
            self.emit(Ev::Hw {
                broker: b,
                tp,
                hw: *hw,
            });
        }
        for (checker, message) in problems {
            self.violation(checker, message);
        }
    }

    // --- network ----------------------------------------------------------------

    fn link(&self, a: usize, b: usize) -> Link {
        let edge = self
            .graph
            .find_edge(self.az_nodes[a], self.az_nodes[b])
            .expect("every AZ pair is linked");
        self.graph[edge]
    }

    fn latency(&mut self, from_az: usize, to_az: usize) -> Duration {
        let link = self.link(from_az, to_az);
        let mut latency = Duration::from_micros(uniform(&mut self.rng_net, link.latency_us));
        for clog in &self.clogs {
            let hit =
                (clog.a == from_az && clog.b == to_az) || (clog.a == to_az && clog.b == from_az);
            if hit && clog.until > self.now {
                latency += clog.extra;
            }
        }
        latency
    }

    /// The time until which traffic `from -> to` is cut, if it is.
    fn cut_until(&self, from_az: usize, to_az: usize) -> Option<Instant> {
        self.cuts
            .iter()
            .filter(|c| c.from == from_az && c.to == to_az && c.until > self.now)
            .map(|c| c.until)
            .max()
    }

    /// When a message sent now arrives: after its latency, after any cut on
    /// its path heals (TCP retransmits), and never before an earlier message.
    fn delivery_time(&mut self, from_az: usize, to_az: usize, last: Instant) -> Instant {
        let latency = self.latency(from_az, to_az);
        let mut at = self.now + latency;
        if let Some(until) = self.cut_until(from_az, to_az) {
            at = at.max(until + latency);
        }
        at.max(last)
    }

    fn count_bytes(&mut self, from_az: usize, to_az: usize, bytes: u64) {
        *self.bytes.entry((from_az, to_az)).or_default() += bytes;
        self.stats.messages += 1;
    }

    fn roundtrip_due(&mut self) -> bool {
        self.rng_net.gen_range(0..100u32) < self.swarm.codec_roundtrip_percent
    }

    fn send_to_node(&mut self, conn_id: ConnId, header: RequestHeader, body: RequestKind) {
        let Some(conn) = self.conns.get(&conn_id) else {
            // The connection died (a crash, a reset) and the client has not
            // heard yet: the bytes go nowhere; the client retries once it
            // learns.
            self.emit(Ev::Drop {
                conn: conn_id,
                what: "request on a dead connection",
            });
            return;
        };
        let (client_az, broker_az, last) = (
            self.clients[conn.client].az,
            self.brokers[conn.broker].az,
            conn.last_to_node,
        );
        let api_key = ApiKey::try_from(header.request_api_key).expect("a known API");
        let version = header.request_api_version;
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .expect("request header encodes");
        let header_len = buf.len();
        body.encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("the simulator built a request that does not encode: {e}"));
        let bytes = 4 + buf.len() as u64;
        if self.roundtrip_due() {
            self.stats.codec_roundtrips += 1;
            let mut body_bytes = buf.freeze().slice(header_len..);
            match RequestKind::decode(api_key, &mut body_bytes, version) {
                Ok(decoded) if decoded == body && body_bytes.is_empty() => {}
                Ok(_) => self.violation(
                    "codec_roundtrip",
                    format!("{api_key:?} v{version} request decodes to a different value"),
                ),
                Err(e) => self.violation(
                    "codec_roundtrip",
                    format!("{api_key:?} v{version} request does not decode: {e}"),
                ),
            }
        }
        self.count_bytes(client_az, broker_az, bytes);
        self.emit(Ev::Request {
            conn: conn_id,
            api: header.request_api_key,
            corr: header.correlation_id,
            bytes,
        });
        let at = self.delivery_time(client_az, broker_az, last);
        self.conns.get_mut(&conn_id).expect("live").last_to_node = at;
        self.push(
            at,
            EventKind::ToNode {
                conn: conn_id,
                header,
                body,
            },
        );
    }

    fn send_to_client(
        &mut self,
        conn_id: ConnId,
        correlation_id: i32,
        api_key: ApiKey,
        version: i16,
        body: ResponseKind,
    ) {
        let Some(conn) = self.conns.get(&conn_id) else {
            if conn_id != 0 {
                self.emit(Ev::Drop {
                    conn: conn_id,
                    what: "response on a closed connection",
                });
            }
            return;
        };
        let (client_az, broker_az, last) = (
            self.clients[conn.client].az,
            self.brokers[conn.broker].az,
            conn.last_to_client,
        );
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, api_key.response_header_version(version))
            .expect("response header encodes");
        let header_len = buf.len();
        if let Err(e) = body.encode(&mut buf, version) {
            self.violation(
                "codec_roundtrip",
                format!("{api_key:?} v{version} response does not encode: {e}"),
            );
        }
        let bytes = 4 + buf.len() as u64;
        if self.roundtrip_due() {
            self.stats.codec_roundtrips += 1;
            let mut body_bytes = buf.freeze().slice(header_len..);
            match ResponseKind::decode(api_key, &mut body_bytes, version) {
                Ok(decoded) if decoded == body && body_bytes.is_empty() => {}
                Ok(_) => self.violation(
                    "codec_roundtrip",
                    format!("{api_key:?} v{version} response decodes to a different value"),
                ),
                Err(e) => self.violation(
                    "codec_roundtrip",
                    format!("{api_key:?} v{version} response does not decode: {e}"),
                ),
            }
        }
        self.count_bytes(broker_az, client_az, bytes);
        self.emit(Ev::Response {
            conn: conn_id,
            api: api_key as i16,
            corr: correlation_id,
            bytes,
        });
        let at = self.delivery_time(broker_az, client_az, last);
        self.conns.get_mut(&conn_id).expect("live").last_to_client = at;
        self.push(
            at,
            EventKind::ToClient {
                conn: conn_id,
                correlation_id,
                body,
            },
        );
    }

    fn connect(&mut self, client: ClientId) {
        // Single broker today: every partition's leader is broker 0. With
        // replication, clients will pick the leader from Metadata.
        let broker = 0;
        let conn = self.next_conn;
        self.next_conn += 1;
        self.emit(Ev::Connect { client, conn });
        let (client_az, broker_az) = (self.clients[client].az, self.brokers[broker].az);
        self.conns.insert(
            conn,
            Conn {
                client,
                broker,
                established: false,
                last_to_node: self.now,
                last_to_client: self.now,
            },
        );
        self.clients[client].conn = ClientConn::Connecting(conn);
        let cut = self.cut_until(client_az, broker_az).is_some()
            || self.cut_until(broker_az, client_az).is_some();
        let rtt = self.latency(client_az, broker_az) + self.latency(broker_az, client_az);
        if cut {
            // SYNs vanish: the connect times out.
            let at = self.now + Duration::from_millis(self.swarm.request_timeout_ms);
            self.push(at, EventKind::ConnectFailed { client, conn });
        } else if !matches!(self.brokers[broker].state, BrokerState::Up(_)) {
            self.push(self.now + rtt, EventKind::ConnectFailed { client, conn });
        } else {
            self.push(self.now + rtt, EventKind::Connected { conn });
        }
    }

    fn on_connected(&mut self, conn_id: ConnId) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let (client, broker) = (conn.client, conn.broker);
        if !matches!(self.brokers[broker].state, BrokerState::Up(_)) {
            self.conns.remove(&conn_id);
            self.emit(Ev::ConnectFailed {
                client,
                conn: conn_id,
            });
            self.client_lost_connection(client);
            return;
        }
        conn.established = true;
        self.stats.connections_opened += 1;
        self.emit(Ev::Connected { conn: conn_id });
        self.clients[client].conn = ClientConn::Open(conn_id);
        self.client_tick(client);
    }

    /// The client closes its connection (a request timed out): in-flight
    /// messages are gone; the broker hears of it when the FIN/RST arrives.
    fn client_close(&mut self, client: ClientId, why: &str) {
        let conn_id = match self.clients[client].conn {
            ClientConn::Open(c) | ClientConn::Connecting(c) => c,
            ClientConn::Down { .. } => return,
        };
        self.emit(Ev::Close {
            conn: conn_id,
            by: "client",
            why,
        });
        if let Some(conn) = self.conns.remove(&conn_id) {
            self.stats.connections_broken += 1;
            self.notify_node_of_close(conn_id, &conn);
        }
        self.client_lost_connection(client);
    }

    fn notify_node_of_close(&mut self, conn_id: ConnId, conn: &Conn) {
        if !conn.established {
            return;
        }
        let (client_az, broker_az) = (self.clients[conn.client].az, self.brokers[conn.broker].az);
        let at = self.delivery_time(client_az, broker_az, conn.last_to_node);
        let generation = self.brokers[conn.broker].generation;
        self.push(
            at,
            EventKind::NodeSawClose {
                broker: conn.broker,
                generation,
                conn: conn_id,
            },
        );
    }

    fn reset_connections(&mut self, client: Option<u32>) {
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| client.is_none_or(|x| x as usize == c.client))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let conn = self.conns.remove(&id).expect("listed");
            self.stats.connections_broken += 1;
            self.emit(Ev::Close {
                conn: id,
                by: "network",
                why: "reset",
            });
            self.notify_node_of_close(id, &conn);
            self.push(
                self.now,
                EventKind::ClientSawClose {
                    client: conn.client,
                    conn: id,
                },
            );
        }
    }

    // --- faults -------------------------------------------------------------------

    fn az(&self, name: &Option<String>) -> usize {
        let name = name.as_deref().expect("validated");
        self.az_names
            .iter()
            .position(|a| a == name)
            .expect("validated AZ")
    }

    fn fault_start(&mut self, index: usize) -> Option<BrokerId> {
        let fault = self.schedule[index].clone();
        let until = self.now + Duration::from_millis(fault.duration_ms);
        let node = fault.node.map(|n| n as usize);
        let mut applied = true;
        match fault.kind {
            FaultKind::Crash => applied = self.crash(node.expect("validated"), fault.torn, true),
            FaultKind::ProcessKill => applied = self.crash(node.expect("validated"), false, false),
            FaultKind::ConnectionReset => self.reset_connections(fault.client),
            FaultKind::Partition => {
                let (from, to) = (self.az(&fault.from_az), self.az(&fault.to_az));
                self.cuts.push(Cut { from, to, until });
                if !fault.one_way {
                    self.cuts.push(Cut {
                        from: to,
                        to: from,
                        until,
                    });
                }
            }
            FaultKind::Clog => {
                let (a, b) = (self.az(&fault.from_az), self.az(&fault.to_az));
                self.clogs.push(Clog {
                    a,
                    b,
                    extra: Duration::from_millis(fault.extra_ms),
                    until,
                });
            }
            FaultKind::DiskFull => {
                let b = node.expect("validated");
                self.brokers[b].disk_full = true;
                set_disk_full(&mut self.brokers[b].state, true);
            }
            FaultKind::SlowFlush => {
                self.brokers[node.expect("validated")].slow_flush_extra_ms = fault.extra_ms
            }
            FaultKind::Pause => {
                let b = node.expect("validated");
                self.brokers[b].paused_until = self.brokers[b].paused_until.max(until);
            }
            FaultKind::Skew => self.brokers[node.expect("validated")].skew_ms = fault.skew_ms,
        }
        if !applied {
            self.emit(Ev::FaultSkipped {
                index,
                why: "broker already down",
            });
            return None;
        }
        self.emit(Ev::Fault {
            index,
            fault: &fault,
            start: true,
        });
        self.push(until, EventKind::FaultEnd { index });
        node
    }

    fn fault_end(&mut self, index: usize) -> Option<BrokerId> {
        let fault = self.schedule[index].clone();
        self.emit(Ev::Fault {
            index,
            fault: &fault,
            start: false,
        });
        let node = fault.node.map(|n| n as usize);
        match fault.kind {
            FaultKind::Crash | FaultKind::ProcessKill => self.restart(node.expect("validated")),
            FaultKind::ConnectionReset | FaultKind::Pause => {}
            FaultKind::Partition => self.cuts.retain(|c| c.until > self.now),
            FaultKind::Clog => self.clogs.retain(|c| c.until > self.now),
            FaultKind::DiskFull => {
                let b = node.expect("validated");
                self.brokers[b].disk_full = false;
                set_disk_full(&mut self.brokers[b].state, false);
            }
            FaultKind::SlowFlush => self.brokers[node.expect("validated")].slow_flush_extra_ms = 0,
            FaultKind::Skew => self.brokers[node.expect("validated")].skew_ms = 0,
        }
        node
    }

    // --- clients --------------------------------------------------------------------

    fn client_lost_connection(&mut self, client: ClientId) {
        let backoff = uniform(&mut self.rng_client, self.swarm.reconnect_backoff_ms);
        let c = &mut self.clients[client];
        c.conn = ClientConn::Down {
            reconnect_at: self.now + Duration::from_millis(backoff),
        };
        match &mut c.kind {
            ClientKind::Producer(p) => {
                // Whatever was in flight may or may not have been appended;
                // it goes back to the front of the queue, in order.
                let lost: Vec<SendId> = std::mem::take(&mut p.in_flight)
                    .into_values()
                    .map(|(id, _)| id)
                    .collect();
                for id in lost.iter().rev() {
                    p.queue.push_front(*id);
                }
                for id in lost {
                    self.history.send_mut(id).maybe_appended = true;
                }
            }
            ClientKind::Consumer(consumer) => consumer.in_flight = None,
        }
        self.rearm_client(client);
    }

    fn rearm_client(&mut self, client: ClientId) {
        let c = &self.clients[client];
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let ClientConn::Down { reconnect_at } = c.conn {
            consider(reconnect_at);
        }
        let open = matches!(c.conn, ClientConn::Open(_));
        let delivery_timeout = Duration::from_millis(self.scenario.workload.delivery_timeout_ms);
        match &c.kind {
            ClientKind::Producer(p) => {
                if p.next_send_at < self.produce_stop_at {
                    consider(p.next_send_at);
                }
                if let Some((_, deadline)) =
                    p.in_flight.values().map(|v| (v.0, v.1)).min_by_key(|v| v.1)
                {
                    consider(deadline);
                }
                if let Some(first) = p.queue.front() {
                    let invoke =
                        self.epoch + Duration::from_millis(self.history.send(*first).invoke_ms);
                    consider(invoke + delivery_timeout);
                    if open && (p.in_flight.len() as u32) < self.swarm.in_flight_max {
                        consider(p.retry_at.max(self.now));
                    }
                }
            }
            ClientKind::Consumer(consumer) => {
                if let Some((_, deadline)) = consumer.in_flight {
                    consider(deadline);
                } else if open {
                    consider(consumer.next_fetch_at.max(self.now));
                }
            }
        }
        let Some(at) = next else { return };
        let at = at.max(self.now);
        if self.clients[client]
            .wake_at
            .is_some_and(|w| w <= at && w >= self.now)
        {
            return;
        }
        self.clients[client].wake_at = Some(at);
        self.push(at, EventKind::ClientWake { client });
    }

    fn client_tick(&mut self, client: ClientId) {
        if let ClientConn::Down { reconnect_at } = self.clients[client].conn {
            if reconnect_at <= self.now {
                self.connect(client);
            }
        }
        if matches!(self.clients[client].kind, ClientKind::Producer(_)) {
            self.producer_tick(client);
        } else {
            self.consumer_tick(client);
        }
        self.rearm_client(client);
    }

    fn next_correlation_id(&mut self, client: ClientId) -> i32 {
        let c = &mut self.clients[client];
        let id = c.next_correlation_id;
        c.next_correlation_id = c.next_correlation_id.wrapping_add(1).max(1);
        id
    }

    fn producer_tick(&mut self, client: ClientId) {
        let now = self.now;
        let ms = self.ms();
        // Time out a request that went unanswered: close the connection, as
        // the Java client does, so the broker and client start afresh.
        let timed_out = match &self.clients[client].kind {
            ClientKind::Producer(p) => p.in_flight.values().any(|(_, d)| *d <= now),
            ClientKind::Consumer(_) => unreachable!(),
        };
        if timed_out {
            self.client_close(client, "request timeout");
        }
        // New sends.
        loop {
            let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                unreachable!()
            };
            if p.next_send_at > now || p.next_send_at >= self.produce_stop_at {
                break;
            }
            if p.queue.len() >= PRODUCER_QUEUE_MAX {
                // buffer.memory is full: the application's send blocks, so
                // the send is not invoked yet (not a failure).
                p.next_send_at =
                    now + Duration::from_millis(self.swarm.produce_interval_ms[1].max(1));
                break;
            }
            let id = self.new_send(client);
            let gap = uniform(&mut self.rng_client, self.swarm.produce_interval_ms).max(1);
            let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                unreachable!()
            };
            p.queue.push_back(id);
            p.next_send_at = p.next_send_at + Duration::from_millis(gap);
        }
        // Give up on sends past the delivery timeout that are not in flight.
        let delivery_timeout_ms = self.scenario.workload.delivery_timeout_ms;
        loop {
            let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                unreachable!()
            };
            let Some(first) = p.queue.front().copied() else {
                break;
            };
            let op = self.history.send(first);
            if op.invoke_ms + delivery_timeout_ms > ms {
                break;
            }
            p.queue.pop_front();
            let outcome = if op.maybe_appended {
                SendOutcome::Indeterminate
            } else {
                SendOutcome::Failed {
                    error_code: ResponseError::RequestTimedOut.code(),
                }
            };
            self.complete_send(first, outcome);
        }
        // Send what the window allows.
        let ClientConn::Open(conn) = self.clients[client].conn else {
            return;
        };
        loop {
            let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                unreachable!()
            };
            if p.retry_at > now || p.in_flight.len() as u32 >= self.swarm.in_flight_max {
                break;
            }
            let Some(id) = p.queue.pop_front() else { break };
            let corr = self.next_correlation_id(client);
            let op = self.history.send_mut(id);
            op.attempts += 1;
            let acks = op.acks;
            let records: Vec<TestRecord<'_>> = op
                .values
                .iter()
                .map(|v| (None, Some(v.as_slice())))
                .collect();
            let batch = build_batch(&records, (now.as_nanos() / 1_000_000) as i64);
            let request = ProduceRequest::default()
                .with_acks(acks)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(op.topic.clone())))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(op.partition)
                        .with_records(Some(Bytes::from(batch)))])]);
            let header = RequestHeader::default()
                .with_request_api_key(ApiKey::Produce as i16)
                .with_request_api_version(PRODUCE_API_VERSION)
                .with_correlation_id(corr)
                .with_client_id(Some(StrBytes::from_static_str("seedlog-sim")));
            if acks == 0 {
                // Fire and forget: done once on the wire.
                self.history.send_mut(id).maybe_appended = true;
                self.complete_send(id, SendOutcome::Unacked);
            } else {
                let deadline = now + Duration::from_millis(self.swarm.request_timeout_ms);
                let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                    unreachable!()
                };
                p.in_flight.insert(corr, (id, deadline));
            }
            self.send_to_node(conn, header, RequestKind::Produce(request));
        }
    }

    fn new_send(&mut self, client: ClientId) -> SendId {
        let tp = self.tps[self.rng_client.gen_range(0..self.tps.len())].clone();
        let total: u32 = self.swarm.acks_weights.iter().map(|(_, w)| *w).sum();
        let mut pick = self.rng_client.gen_range(0..total);
        let mut acks = self.swarm.acks_weights[0].0;
        for (a, w) in &self.swarm.acks_weights {
            if pick < *w {
                acks = *a;
                break;
            }
            pick -= *w;
        }
        let count = self
            .rng_client
            .gen_range(1..=self.swarm.records_per_send_max);
        let id = self.history.sends.len() as SendId;
        let values: Vec<Vec<u8>> = (0..count)
            .map(|i| format!("c{client}-s{id}-r{i}").into_bytes())
            .collect();
        for v in &values {
            let previous = self.history.value_owner.insert(v.clone(), id);
            assert!(previous.is_none(), "values are unique");
        }
        self.emit(Ev::Invoke {
            send: id,
            producer: client,
            tp: &tp,
            acks,
            records: values.len(),
        });
        self.history.sends.push(SendOp {
            id,
            producer: client as u32,
            topic: tp.0,
            partition: tp.1,
            acks,
            values,
            invoke_ms: self.ms(),
            complete_ms: None,
            outcome: SendOutcome::Pending,
            maybe_appended: false,
            attempts: 0,
        });
        self.stats.sends += 1;
        id
    }

    fn complete_send(&mut self, id: SendId, outcome: SendOutcome) {
        let ms = self.ms();
        self.history.complete(id, outcome, ms);
        match outcome {
            SendOutcome::Acked { .. } => {
                self.stats.acked += 1;
                let producer = self.history.send(id).producer;
                self.ack_times_ms.entry(producer).or_default().push(ms);
                if self.healed {
                    self.stats.acked_after_heal += 1;
                }
            }
            SendOutcome::Unacked => self.stats.unacked_acks0 += 1,
            SendOutcome::Failed { .. } => self.stats.failed += 1,
            SendOutcome::Indeterminate => self.stats.indeterminate += 1,
            SendOutcome::Pending => unreachable!("complete with a real outcome"),
        }
        self.emit(Ev::Complete { send: id, outcome });
    }

    fn client_response(
        &mut self,
        client: ClientId,
        conn: ConnId,
        correlation_id: i32,
        body: ResponseKind,
    ) {
        if !matches!(self.clients[client].conn, ClientConn::Open(c) if c == conn) {
            return;
        }
        match body {
            ResponseKind::Produce(r) => {
                let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                    panic!("a produce response reached a consumer");
                };
                let Some((id, _)) = p.in_flight.remove(&correlation_id) else {
                    panic!("produce response to unknown correlation id {correlation_id}");
                };
                let part = r
                    .responses
                    .first()
                    .and_then(|t| t.partition_responses.first())
                    .expect("one partition per produce");
                let code = part.error_code;
                if code == 0 {
                    self.complete_send(
                        id,
                        SendOutcome::Acked {
                            offset: part.base_offset,
                        },
                    );
                } else if ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable()) {
                    // A storage error may come after the append (a failed
                    // flush): the records can still become visible.
                    self.history.send_mut(id).maybe_appended = true;
                    let backoff = uniform(&mut self.rng_client, [50, 200]);
                    let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                        unreachable!()
                    };
                    // Retries go first, in send order.
                    let position = p
                        .queue
                        .iter()
                        .position(|q| *q > id)
                        .unwrap_or(p.queue.len());
                    p.queue.insert(position, id);
                    p.retry_at = self.now + Duration::from_millis(backoff);
                } else {
                    self.complete_send(id, SendOutcome::Failed { error_code: code });
                }
            }
            ResponseKind::Fetch(r) => self.consumer_fetched(client, correlation_id, r),
            other => panic!("unexpected response {other:?}"),
        }
        self.client_tick(client);
    }

    fn consumer_tick(&mut self, client: ClientId) {
        let now = self.now;
        let ClientKind::Consumer(consumer) = &self.clients[client].kind else {
            unreachable!()
        };
        if consumer.in_flight.is_some_and(|(_, d)| d <= now) {
            self.client_close(client, "fetch timeout");
            return;
        }
        let ClientConn::Open(conn) = self.clients[client].conn else {
            return;
        };
        let ClientKind::Consumer(consumer) = &self.clients[client].kind else {
            unreachable!()
        };
        if consumer.in_flight.is_some()
            || consumer.next_fetch_at > now
            || consumer.positions.is_empty()
        {
            return;
        }
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for ((topic, partition), offset) in &consumer.positions {
            topics.entry(topic).or_default().push(
                FetchPartition::default()
                    .with_partition(*partition)
                    .with_fetch_offset(*offset)
                    .with_current_leader_epoch(-1)
                    .with_partition_max_bytes(64 * 1024),
            );
        }
        let request = FetchRequest::default()
            .with_max_wait_ms(self.swarm.fetch_max_wait_ms as i32)
            .with_min_bytes(1)
            .with_max_bytes(256 * 1024)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        FetchTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let corr = self.next_correlation_id(client);
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Fetch as i16)
            .with_request_api_version(FETCH_API_VERSION)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str("seedlog-sim")));
        let deadline = now
            + Duration::from_millis(self.swarm.fetch_max_wait_ms + self.swarm.request_timeout_ms);
        let ClientKind::Consumer(consumer) = &mut self.clients[client].kind else {
            unreachable!()
        };
        consumer.in_flight = Some((corr, deadline));
        self.send_to_node(conn, header, RequestKind::Fetch(request));
    }

    fn consumer_fetched(&mut self, client: ClientId, correlation_id: i32, r: FetchResponse) {
        let ms = self.ms();
        let ClientKind::Consumer(consumer) = &mut self.clients[client].kind else {
            panic!("a fetch response reached a producer");
        };
        assert_eq!(
            consumer.in_flight.map(|(c, _)| c),
            Some(correlation_id),
            "fetch responses come in order, one in flight"
        );
        consumer.in_flight = None;
        let mut reads: Vec<(Tp, i64, Vec<u8>)> = Vec::new();
        let mut polls = Vec::new();
        let mut seeks = Vec::new();
        let mut any_error = false;
        for topic in &r.responses {
            for part in &topic.partitions {
                let tp: Tp = (topic.topic.0.to_string(), part.partition_index);
                let Some(position) = consumer.positions.get_mut(&tp) else {
                    continue;
                };
                let from = *position;
                let mut count = 0;
                if part.error_code == ResponseError::OffsetOutOfRange.code() {
                    // auto.offset.reset=earliest: start over; a seek, so
                    // going back is not a nonmonotonic poll.
                    *position = 0;
                    seeks.push(tp.clone());
                    any_error = true;
                } else if part.error_code != 0 {
                    any_error = true;
                } else if let Some(records) = &part.records {
                    for (start, header) in BatchIter::new(records) {
                        let batch = &records[start..start + header.total_size()];
                        for (i, (_, value)) in
                            decode_records_for_test(batch).into_iter().enumerate()
                        {
                            let offset = header.base_offset() + i as i64;
                            if offset < *position {
                                continue; // the batch began before our position
                            }
                            assert!(
                                offset < part.high_watermark,
                                "fetch returns records below the high watermark only"
                            );
                            reads.push((tp.clone(), offset, value.unwrap_or_default()));
                            *position = offset + 1;
                            count += 1;
                        }
                    }
                }
                polls.push((tp, from, count, part.high_watermark, part.error_code));
            }
        }
        consumer.next_fetch_at = if any_error {
            self.now + Duration::from_millis(100)
        } else {
            self.now
        };
        for (tp, from, records, hw, error) in &polls {
            self.emit(Ev::Poll {
                consumer: client,
                tp,
                from: *from,
                records: *records,
                hw: *hw,
                error: *error,
            });
        }
        for tp in seeks {
            self.emit(Ev::Seek {
                consumer: client,
                tp: &tp,
                offset: 0,
            });
            self.history.consumer_events.push(ConsumerEvent::Seek {
                consumer: client as u32,
                tp,
                offset: 0,
                at_ms: ms,
            });
        }
        for (tp, offset, value) in reads {
            self.stats.records_read += 1;
            // consistent_read, per event: an offset reads the same value for
            // everyone, forever.
            match self.read_values.get(&(tp.clone(), offset)) {
                Some(first) if *first != value => {
                    let message = format!(
                        "{}-{} offset {offset}: read as {:?}, earlier as {:?}",
                        tp.0,
                        tp.1,
                        String::from_utf8_lossy(&value),
                        String::from_utf8_lossy(first)
                    );
                    self.violation("consistent_read", message);
                }
                Some(_) => {}
                None => {
                    self.read_values.insert((tp.clone(), offset), value.clone());
                }
            }
            let max = self.read_offset_max.entry(tp.clone()).or_insert(offset);
            *max = (*max).max(offset);
            self.history.consumer_events.push(ConsumerEvent::Read {
                consumer: client as u32,
                tp,
                offset,
                value,
                at_ms: ms,
            });
        }
    }

    // --- end of run -------------------------------------------------------------------

    fn end_of_run(&mut self) {
        // Liveness: every send resolved, every consumer caught up.
        let pending: Vec<SendId> = self
            .history
            .sends
            .iter()
            .filter(|s| s.outcome == SendOutcome::Pending)
            .map(|s| s.id)
            .collect();
        if let Some(first) = pending.first() {
            let message = format!(
                "{} sends unresolved {} ms after healing (first: send {first})",
                pending.len(),
                self.scenario.phases.liveness_ms
            );
            self.violation("liveness_send", message);
        }
        if self.stats.sends > 0
            && self.stats.acked_after_heal == 0
            && self.swarm.acks_weights.iter().any(|(a, _)| *a != 0)
        {
            self.violation(
                "liveness_send",
                "no send was acknowledged after the faults healed".to_string(),
            );
        }
        let audit = self.audit();
        let mut behind = Vec::new();
        for (c, client) in self.clients.iter().enumerate() {
            if let ClientKind::Consumer(consumer) = &client.kind {
                for (tp, position) in &consumer.positions {
                    let end = audit.get(tp).map_or(0, |(hw, _)| *hw);
                    if *position < end {
                        behind.push(format!(
                            "consumer {c} at {}-{}:{position} < hw {end}",
                            tp.0, tp.1
                        ));
                    }
                }
            }
        }
        if !behind.is_empty() {
            self.violation("liveness_consume", behind.join("; "));
        }
        let log: BTreeMap<Tp, PartitionRecords> = audit
            .into_iter()
            .map(|(tp, (_, records))| (tp, records))
            .collect();
        let found = checker::check_history(&self.history, &log);
        self.stats.duplicates = found.duplicates;
        for (checker, message) in found.violations {
            self.violation(checker, message);
        }
        let acked = self.stats.acked;
        if acked < self.scenario.expect.acked_sends_min {
            self.violation(
                "expect_acked_sends",
                format!(
                    "{acked} sends acknowledged, the scenario expects at least {}",
                    self.scenario.expect.acked_sends_min
                ),
            );
        }
    }

    /// The final read: every partition, log start to high watermark, through
    /// the broker's Fetch path. (tp -> (hw, [(offset, value)]))
    fn audit(&mut self) -> BTreeMap<Tp, (i64, PartitionRecords)> {
        let mut out = BTreeMap::new();
        let audit_conn = u64::MAX - 1;
        let tps = self.tps.clone();
        for tp in tps {
            let mut records = Vec::new();
            let mut position = 0;
            let mut hw = 0;
            // Bounded: each round reads at least one record or stops.
            for round in 0..1_000_000 {
                let request = FetchRequest::default()
                    .with_max_wait_ms(0)
                    .with_min_bytes(1)
                    .with_max_bytes(1 << 20)
                    .with_session_epoch(-1)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(tp.0.clone())))
                        .with_partitions(vec![FetchPartition::default()
                            .with_partition(tp.1)
                            .with_fetch_offset(position)
                            .with_current_leader_epoch(-1)
                            .with_partition_max_bytes(1 << 20)])]);
                let header = RequestHeader::default()
                    .with_request_api_key(ApiKey::Fetch as i16)
                    .with_request_api_version(FETCH_API_VERSION)
                    .with_correlation_id(round);
                let responses =
                    self.direct_request(0, audit_conn, header, RequestKind::Fetch(request));
                let Some(ResponseKind::Fetch(r)) = responses.into_iter().next() else {
                    panic!("the audit fetch got no answer");
                };
                let part = &r.responses[0].partitions[0];
                if part.error_code == ResponseError::OffsetOutOfRange.code() && position == 0 {
                    position = part.log_start_offset.max(0);
                    continue;
                }
                assert_eq!(part.error_code, 0, "audit fetch of {tp:?} at {position}");
                hw = part.high_watermark;
                let before = records.len();
                if let Some(bytes) = &part.records {
                    for (start, header) in BatchIter::new(bytes) {
                        let batch = &bytes[start..start + header.total_size()];
                        for (i, (_, value)) in
                            decode_records_for_test(batch).into_iter().enumerate()
                        {
                            let offset = header.base_offset() + i as i64;
                            if offset >= position && offset < hw {
                                records.push((offset, value.unwrap_or_default()));
                                position = offset + 1;
                            }
                        }
                    }
                }
                if records.len() == before || position >= hw {
                    break;
                }
            }
            out.insert(tp, (hw, records));
        }
        let now = self.node_now(0);
        if let BrokerState::Up(node) = &mut self.brokers[0].state {
            node.handle(
                now,
                Input::ConnectionClosed {
                    connection: audit_conn,
                },
            );
        }
        out
    }

    fn report(self) -> RunReport {
        let mut bytes_by_az_pair = BTreeMap::new();
        let mut cross_az_bytes = 0;
        for ((a, b), n) in &self.bytes {
            bytes_by_az_pair.insert(format!("{}->{}", self.az_names[*a], self.az_names[*b]), *n);
            if a != b {
                cross_az_bytes += n;
            }
        }
        // Per producer, windows without acknowledgements while it was
        // producing: what its application saw as unavailability.
        let mut unavailable_windows_ms = Vec::new();
        let stop_ms = (self.produce_stop_at - self.epoch).as_millis() as u64;
        let gap_min = UNAVAILABLE_GAP_MS_MIN.max(4 * self.swarm.produce_interval_ms[1]);
        for (producer, times) in &self.ack_times_ms {
            let mut last = 0;
            for t in times.iter().copied().chain([stop_ms]) {
                if t > last + gap_min && t <= stop_ms {
                    unavailable_windows_ms.push((*producer, last, t));
                }
                last = last.max(t);
            }
        }
        let simulated_ms = (self.now - self.epoch).as_millis() as u64;
        RunReport {
            scenario: self.scenario.name.clone(),
            seed: self.seed,
            bug: self.bug,
            swarm: self.swarm,
            schedule: self.schedule,
            events: self.events,
            simulated_ms,
            wall: Duration::ZERO,
            stats: self.stats,
            unavailable_windows_ms,
            bytes_by_az_pair,
            cross_az_bytes,
            violations: self.violations,
            trace_hash: self.trace.hash(),
            trace_lines: self.trace.lines(),
            trace: self.trace.finish(),
        }
    }
}

fn set_disk_full(state: &mut BrokerState, full: bool) {
    let storage = match state {
        BrokerState::Up(node) => node.storage_mut(),
        BrokerState::Down(storage) => storage,
        BrokerState::Gone => return,
    };
    let capacity = full.then(|| storage.used_bytes());
    storage.set_capacity_bytes(capacity);
}

pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Turns the scenario's random rates into an explicit schedule, merged with
/// its scheduled faults; every fault ends by the end of the fault phase.
pub fn materialize_faults(scenario: &Scenario, swarm: &Swarm, rng: &mut ChaCha8Rng) -> Vec<Fault> {
    let fault_ms = scenario.phases.fault_ms;
    let random = &scenario.faults.random;
    let azs = &scenario.topology.azs;
    let brokers = scenario.topology.brokers.len() as u32;
    let clients = (scenario.topology.producers.len() + scenario.topology.consumers.len()) as u32;
    let mut out: Vec<Fault> = scenario.faults.schedule.clone();
    let kinds = [
        (FaultKind::Crash, swarm.crash_per_min),
        (FaultKind::ConnectionReset, swarm.connection_reset_per_min),
        (FaultKind::Partition, swarm.partition_per_min),
        (FaultKind::Clog, swarm.clog_per_min),
        (FaultKind::DiskFull, swarm.disk_full_per_min),
        (FaultKind::SlowFlush, swarm.slow_flush_per_min),
        (FaultKind::Pause, swarm.pause_per_min),
        (FaultKind::Skew, swarm.skew_per_min),
        (FaultKind::ProcessKill, swarm.process_kill_per_min),
    ];
    for (kind, per_min) in kinds {
        if per_min <= 0.0 {
            continue;
        }
        let mean_gap_ms = 60_000.0 / per_min;
        let mut t = 0.0;
        for _ in 0..RANDOM_FAULTS_PER_KIND_MAX {
            let u: f64 = rng.gen();
            t += -(1.0 - u).ln() * mean_gap_ms;
            if t >= fault_ms as f64 {
                break;
            }
            let mut f = Fault {
                at_ms: t as u64,
                kind,
                duration_ms: uniform(rng, random.duration_ms),
                node: None,
                client: None,
                from_az: None,
                to_az: None,
                one_way: false,
                torn: false,
                extra_ms: 0,
                skew_ms: 0,
            };
            match kind {
                FaultKind::ProcessKill => f.node = Some(rng.gen_range(0..brokers)),
                FaultKind::Crash => {
                    f.node = Some(rng.gen_range(0..brokers));
                    f.torn = rng.gen_bool(swarm.torn_ratio.clamp(0.0, 1.0));
                }
                FaultKind::ConnectionReset => {
                    f.client = rng.gen_bool(0.8).then(|| rng.gen_range(0..clients.max(1)));
                    f.duration_ms = 0;
                }
                FaultKind::Partition | FaultKind::Clog => {
                    if azs.len() < 2 {
                        continue;
                    }
                    let a = rng.gen_range(0..azs.len());
                    let b = (a + rng.gen_range(1..azs.len())) % azs.len();
                    f.from_az = Some(azs[a].clone());
                    f.to_az = Some(azs[b].clone());
                    if kind == FaultKind::Partition {
                        f.one_way = rng.gen_bool(random.one_way_ratio.clamp(0.0, 1.0));
                    } else {
                        f.extra_ms = rng.gen_range(5..500);
                    }
                }
                FaultKind::DiskFull | FaultKind::Pause => f.node = Some(rng.gen_range(0..brokers)),
                FaultKind::SlowFlush => {
                    f.node = Some(rng.gen_range(0..brokers));
                    f.extra_ms = rng.gen_range(10..2_000);
                }
                FaultKind::Skew => {
                    f.node = Some(rng.gen_range(0..brokers));
                    let magnitude = rng.gen_range(100..120_000i64);
                    f.skew_ms = if rng.gen_bool(0.5) {
                        magnitude
                    } else {
                        -magnitude
                    };
                }
            }
            out.push(f);
        }
    }
    out.retain(|f| f.at_ms < fault_ms);
    for f in &mut out {
        // Faults heal by the end of the fault phase: the liveness phase
        // starts from a whole cluster.
        f.duration_ms = f.duration_ms.min(fault_ms - f.at_ms).max(1);
    }
    out.sort_by_key(|f| f.at_ms);
    out
}
