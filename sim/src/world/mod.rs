//! The simulated world: brokers in AZs, clients, a TCP-like network, a disk
//! that forgets, and a virtual clock that jumps from event to event.
//!
//! Everything random comes from ChaCha streams derived from one seed, and
//! every ordering decision is made by the event queue, keyed by
//! (time, sequence number), so a seed replays byte for byte.
//!
//! This module holds the `World`, its event loop and [`run`]; its parts:
//! `events` (queue events, trace lines), `brokers` (nodes, inputs,
//! outputs, restarts), `disk` (flushes, crashes, full disks), `network`
//! (links, connections, cuts, clogs, bytes), `clients` (producers,
//! consumers, retries), `faults` (schedule and application), `checks`
//! (per-event and end-of-run checkers), `report` (what a run returns).

mod broker_map;
mod brokers;
mod checks;
mod clients;
mod cluster;
mod disk;
mod events;
mod faults;
mod fetch_session;
mod groups;
mod idempotence;
mod liveness;
mod network;
mod positions;
use positions::{tp_index, Positions, TpBase};
mod replicas;
mod report;

pub use crate::bugs::Bug;
pub use faults::materialize_faults;
pub use groups::GroupStats;
pub use liveness::{Outage, OutageKind, OutageTimes};
pub use report::{
    format_speed, ClusterReport, ClusterStats, Failover, RunOptions, RunReport, Stats, Violation,
};

use broker_map::BrokerMap;
use brokers::{Broker, BrokerState};
use clients::{Client, ClientConn, ClientKind, Consumer, Producer};
use cluster::{Admin, ClusterState};
use disk::set_disk_full;
use events::{Ev, EventKind, EventQueue, RollingStep};
use groups::{GroupMember, GroupsState};
use liveness::LivenessState;
use network::{Clog, Conn, Cut, Link, Origin, PeerPair, Split};

use crate::bugs;
use crate::checker;
use crate::history::{ConsumerEvent, History, SendId, SendOp, SendOutcome, Tp};
use crate::scenario::{Fault, FaultKind, Partitioner, Scenario, VOTERS_MAX};
use crate::swarm::Swarm;
use crate::trace::{TraceHeader, TraceSink};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse,
    RequestHeader, RequestKind, ResponseHeader, ResponseKind, TopicName,
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
use std::sync::Arc;
use std::time::Duration;

/// Simulated time starts here, so Kafka timestamps look like real ones
/// (November 2023).
pub const EPOCH_MS: u64 = 1_700_000_000_000;
/// The event queue never holds more than this; a leak would show here.
const EVENTS_QUEUED_MAX: usize = 1_000_000;
/// A run never processes more events than this; a livelock would show here.
const EVENTS_PER_RUN_MAX: u64 = 50_000_000;
/// Nor this many at one instant: a loop that does not let time move shows
/// here at once rather than after fifty million events.
const EVENTS_PER_INSTANT_MAX: u64 = 100_000;
/// The core's full invariant check runs once per this many events touching
/// a broker (and at every fault); see `check_broker`.
const NODE_CHECK_EVERY_EVENTS: u64 = 1_000;
/// In clusters of more than `VOTERS_MAX` brokers, the whole-cluster ISR
/// check that node checks bring along runs at most this often (in
/// events): as often as in a 9-broker cluster. See `check_broker`.
const ISR_CHECK_EVERY_EVENTS_MIN: u64 = NODE_CHECK_EVERY_EVENTS / VOTERS_MAX as u64;
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
/// A cluster node's controlled shutdown may take this long (the controller
/// moves its leaderships away), then it stops anyway.
const CONTROLLED_SHUTDOWN_WAIT_MS: u64 = 10_000;
/// A gracefully stopping broker waits this long for its flushes, then
/// exits anyway.
const STOP_FLUSH_WAIT_MS: u64 = 5_000;
/// A rolling restart checks the cluster's health this often before it
/// stops the next broker.
const ROLLING_HEALTH_POLL_MS: u64 = 100;
/// With `disk.retention_bytes`, brokers look for segments to delete this
/// often (Kafka's default is five minutes: too slow for a simulated hour
/// to show a bounded disk at any instant).
const RETENTION_CHECK_INTERVAL_MS: u64 = 10_000;
const PRODUCE_API_VERSION: i16 = 9;
const FETCH_API_VERSION: i16 = 12;
const CREATE_TOPICS_API_VERSION: i16 = 7;

/// Runs one seed of a scenario to the end.
pub fn run(scenario: &Scenario, seed: u64, options: &RunOptions) -> RunReport {
    let wall_start = std::time::Instant::now();
    // The trace is the record; the core's logs only on request (see
    // `RunOptions::core_logs`).
    let mut report = if options.core_logs {
        World::new(scenario, seed, options).run()
    } else {
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            World::new(scenario, seed, options).run()
        })
    };
    report.wall = wall_start.elapsed();
    report
}

// --- the world ----------------------------------------------------------------

type ConnId = u64;
/// (offset, value) of every record of one partition, in offset order.
type PartitionRecords = Vec<(i64, Vec<u8>)>;
type ClientId = usize;
type BrokerId = usize;

/// What the per-event checks last observed of one broker's copy of a
/// partition.
#[derive(Debug, Clone, Copy, Default)]
struct OffsetsSeen {
    /// The high watermark (0 at first).
    hw: i64,
    /// The log start (None: the broker never hosted the partition). With
    /// retention, the lowest over the brokers is what the history may
    /// forget below.
    log_start: Option<i64>,
}

struct World {
    scenario: Scenario,
    seed: u64,
    /// Every bug switched on: the scenario's and the CLI's.
    bugs: Vec<Bug>,
    /// Whether the core's logs go out, inside a span per broker input.
    core_logs: bool,
    swarm: Swarm,
    now: Instant,
    epoch: Instant,
    queue: EventQueue,
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
    /// (from, to) -> the connections broker `from` sends its requests to
    /// broker `to` on.
    peer_links: BTreeMap<(BrokerId, BrokerId), PeerPair>,
    /// Peer connection breaks so far (their ids).
    peer_incidents: u64,
    cuts: Vec<Cut>,
    splits: Vec<Split>,
    clogs: Vec<Clog>,
    schedule: Vec<Fault>,
    /// Faults whose brokers were resolved at their start (targets, AZ
    /// outages): index -> the brokers, for their end.
    fault_nodes: BTreeMap<usize, Vec<BrokerId>>,
    /// Cluster scenarios only.
    cluster: Option<ClusterState>,
    /// `[groups]` scenarios only.
    groups: Option<GroupsState>,
    /// Outages of partition leaders and AZs, and their recovery.
    liveness: LivenessState,
    tps: Vec<Tp>,
    /// Topic -> (index in `tps` of its partition 0, its partition count).
    /// A topic the workload names twice keeps its first run, as a scan of
    /// `tps` would find it.
    tp_base: Arc<TpBase>,
    /// The workload's topics in `tps` order: (name, index in `tps` of
    /// partition 0, partition count).
    topics: Vec<(String, usize, i32)>,
    /// Per broker: the indexes in `tps` it hosted at its last
    /// `check_broker`, ascending.
    hosted_seen: Vec<Vec<usize>>,
    /// Reused by `check_broker`.
    walk_buf: Vec<usize>,
    /// Per broker: partitions a fault changed behind the node's back (a
    /// corrupted batch), for its next partition walk.
    touched_by_faults: Vec<Vec<usize>>,
    history: History,
    trace: TraceSink,
    /// Reused buffers: an event's JSON line (kept traces only) and its
    /// binary encoding (hashed).
    trace_buf: Vec<u8>,
    trace_encoded: Vec<u8>,
    /// See `wire_buf`.
    wire_buf: BytesMut,
    /// The partitions of the broker an event touched, as the checkers read
    /// them (see `Views`).
    views: replicas::Views,
    violations: Vec<Violation>,
    violated: BTreeSet<String>,
    /// [broker][index in `tps`]: the high watermark and log start last
    /// observed. Indexed rather than keyed by `Tp`, and both in one place:
    /// they are read per event, and as two arrays over a 100-broker
    /// cluster's million (broker, partition) pairs they were two cache
    /// misses per partition checked.
    offsets_seen: Vec<Vec<OffsetsSeen>>,
    /// `self.events` when `check_isr` last ran.
    isr_checked_at_event: u64,
    /// Per broker: events that touched it since its last full node check.
    node_events_unchecked: Vec<u64>,
    /// consistent_read: the value each (partition, offset) was first read as.
    /// Per index in `tps`.
    read_values: Vec<BTreeMap<i64, Vec<u8>>>,
    /// Per index in `tps`: the highest offset any consumer read.
    read_offset_max: Vec<Option<i64>>,
    /// nonmonotonic_send without idempotence, as acks arrive.
    send_order: checker::SendOrder,
    /// nonmonotonic_poll and poll_skip, as reads arrive.
    poll_order: checker::PollOrder,
    bytes: BTreeMap<(usize, usize), u64>,
    /// producer -> times of its acknowledgements.
    ack_times_ms: BTreeMap<u32, Vec<u64>>,
    stats: Stats,
    /// The core panicked: nothing after it means anything.
    stopped: bool,
    healed: bool,
    /// The fault phase starts here: at once on a standalone broker, after
    /// the setup phase in a cluster.
    start_at: Option<Instant>,
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
        let bugs = scenario
            .bugs_with(&options.bugs)
            .unwrap_or_else(|e| panic!("{e}"));
        let broker_azs: Vec<usize> = t.brokers.iter().map(|az| az_of(az)).collect();
        let voter_indexes = scenario.voter_indexes();
        let brokers: Vec<Broker> = broker_azs
            .iter()
            .enumerate()
            .map(|(i, az)| {
                let id = i as i32 + 1;
                let mut config = NodeConfig {
                    node_id: id,
                    auto_create_topics: false,
                    flush_before_ack: !bugs.contains(&Bug::NoFsync),
                    ..NodeConfig::default()
                };
                config.log.segment_bytes = swarm.segment_bytes;
                if let Some(bytes) = scenario.disk.retention_bytes {
                    config.log.retention_bytes = i64::try_from(bytes).expect("validated");
                    config.retention_check_interval_ms = RETENTION_CHECK_INTERVAL_MS;
                }
                World::group_node_config(scenario, &mut config, &bugs);
                if let Some(c) = &scenario.cluster {
                    config.advertised_port = 9092 + id;
                    config.cluster = Some(cluster::cluster_config(
                        c,
                        &t.azs,
                        &broker_azs,
                        &voter_indexes,
                        i,
                        &bugs,
                    ));
                }
                Broker::new(
                    *az,
                    config,
                    node_seed_base.wrapping_add(i as u64),
                    swarm.drift_ppm[i],
                    epoch,
                )
            })
            .collect();

        let mut tps: Vec<Tp> = Vec::new();
        let mut tp_base = TpBase::new();
        let mut topics: Vec<(String, usize, i32)> = Vec::new();
        for topic in &scenario.workload.topics {
            tp_base
                .entry(topic.name.clone())
                .or_insert((tps.len(), topic.partitions));
            topics.push((topic.name.clone(), tps.len(), topic.partitions));
            for p in 0..topic.partitions {
                tps.push((topic.name.clone(), p));
            }
        }
        let tp_count = tps.len();
        let broker_count = brokers.len();
        let offsets_seen = vec![vec![OffsetsSeen::default(); tp_count]; broker_count];

        let schedule = materialize_faults(scenario, &swarm, &mut rng_faults);
        let trace_file = options.trace_file.as_ref().map(|p| {
            std::fs::File::create(p)
                .unwrap_or_else(|e| panic!("cannot create trace file {}: {e}", p.display()))
        });
        let mut trace = TraceSink::new(options.keep_trace, trace_file);
        let header = TraceHeader {
            seedlog_sim_version: env!("CARGO_PKG_VERSION").to_string(),
            seed,
            bug: (!options.bugs.is_empty()).then(|| bugs::names(&options.bugs)),
            scenario_toml: scenario.to_toml(),
        };
        trace.line(serde_json::to_string(&header).expect("header serializes"));

        // Until `begin_run` places them after the setup phase.
        let heal_at = epoch + Duration::from_millis(scenario.phases.fault_ms);
        let end_at = heal_at + Duration::from_millis(scenario.phases.liveness_ms);
        let produce_stop_at = heal_at + Duration::from_millis(scenario.phases.liveness_ms / 4);
        let producers = t.producers.len();
        let consumers = t.consumers.len();
        let cluster = scenario.cluster.as_ref().map(|c| {
            ClusterState::new(
                c.clone(),
                producers + consumers,
                broker_count,
                voter_indexes.clone(),
                &tps,
            )
        });
        let mut world = World {
            scenario: scenario.clone(),
            seed,
            bugs,
            core_logs: options.core_logs,
            swarm,
            now: epoch,
            epoch,
            queue: EventQueue::default(),
            seq: 0,
            events: 0,
            rng_net,
            rng_client,
            rng_disk,
            az_names: t.azs.clone(),
            graph,
            az_nodes,
            brokers,
            clients: Vec::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            peer_links: BTreeMap::new(),
            peer_incidents: 0,
            cuts: Vec::new(),
            splits: Vec::new(),
            clogs: Vec::new(),
            schedule,
            fault_nodes: BTreeMap::new(),
            cluster,
            groups: None,
            liveness: LivenessState::default(),
            tps,
            tp_base: Arc::new(tp_base),
            topics,
            hosted_seen: vec![Vec::new(); broker_count],
            walk_buf: Vec::new(),
            touched_by_faults: vec![Vec::new(); broker_count],
            history: History::default(),
            trace,
            trace_buf: Vec::new(),
            trace_encoded: Vec::new(),
            wire_buf: BytesMut::new(),
            views: replicas::Views::default(),
            violations: Vec::new(),
            violated: BTreeSet::new(),
            offsets_seen,
            isr_checked_at_event: 0,
            node_events_unchecked: vec![0; broker_count],
            read_values: vec![BTreeMap::new(); tp_count],
            read_offset_max: vec![None; tp_count],
            send_order: checker::SendOrder::default(),
            poll_order: checker::PollOrder::default(),
            bytes: BTreeMap::new(),
            ack_times_ms: BTreeMap::new(),
            stats: Stats::default(),
            stopped: false,
            healed: false,
            start_at: None,
            heal_at,
            produce_stop_at,
            end_at,
        };
        world.add_clients();
        world.add_members();
        world
    }

    /// Producers, then consumers (each with its share of the partitions),
    /// then, in a cluster, the setup admin.
    fn add_clients(&mut self) {
        let t = &self.scenario.topology;
        let (producers, consumer_azs) = (t.producers.clone(), t.consumers.clone());
        let az_of = |name: &str| {
            self.az_names
                .iter()
                .position(|a| a == name)
                .expect("validated AZ name")
        };
        let mut clients = Vec::new();
        for (k, az) in producers.iter().enumerate() {
            let idempotence = self
                .scenario
                .workload
                .idempotent
                .then(|| idempotence::Idempotence::new(self.tps.len(), self.epoch));
            let kind = ClientKind::Producer(Producer {
                next_send_at: self.epoch,
                queue: VecDeque::new(),
                in_flight: BTreeMap::new(),
                retry_at: self.epoch,
                idempotence,
                next_tp: k % self.tps.len(),
            });
            clients.push(self.new_client(az_of(az), kind));
        }
        let consumers = consumer_azs.len();
        for (c, az) in consumer_azs.iter().enumerate() {
            let mut positions = Positions::new(self.tp_base.clone());
            for (_, tp) in self
                .tps
                .iter()
                .enumerate()
                .filter(|(i, _)| i % consumers == c)
            {
                positions.insert(tp, 0);
            }
            let kind = ClientKind::Consumer(Consumer {
                positions,
                next_fetch_at: self.epoch,
                in_flight: BrokerMap::new(),
                sessions: BrokerMap::new(),
            });
            clients.push(self.new_client(az_of(az), kind));
        }
        if self.cluster.is_some() {
            let brokers = self.brokers.len();
            // Each client asks a broker of its own choosing first, as a
            // bootstrap list in a random order would.
            for client in &mut clients {
                if let Some(m) = &mut client.meta {
                    m.first_ask(self.rng_client.gen_range(0..brokers));
                }
            }
            let ask = self.rng_client.gen_range(0..brokers);
            let mut admin = self.new_client(0, ClientKind::Admin(Admin::new(self.epoch, ask)));
            admin.meta = None;
            clients.push(admin);
        }
        self.clients = clients;
    }

    /// Where `tp` is in `tps`.
    fn tp_index(&self, tp: &Tp) -> usize {
        self.tp_index_of(&tp.0, tp.1)
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
        self.queue.push(at, self.seq, kind);
    }

    /// Writes `{"n":…,"t_us":…,` followed by the event's JSON fields. The
    /// bytes (and so the trace hash) are those of formatting the event to a
    /// string and splicing it in, without the two allocations per line.
    fn emit(&mut self, ev: Ev<'_>) {
        // u64 microseconds last 584,000 years; u128 formatting is slow.
        let us = u64::try_from((self.now - self.epoch).as_micros()).expect("runs are short");
        let mut encoded = std::mem::take(&mut self.trace_encoded);
        encoded.clear();
        encoded =
            postcard::to_extend(&(self.events, us, &ev), encoded).expect("trace event encodes");
        if self.trace.wants_lines() {
            let line = self.trace_line(us, &ev);
            self.trace.event(&encoded, Some(&line));
            self.trace_buf = line;
        } else {
            self.trace.event(&encoded, None);
        }
        encoded.clear();
        self.trace_encoded = encoded;
    }

    /// The JSON line of an event, in the reused line buffer.
    fn trace_line(&mut self, us: u64, ev: &Ev<'_>) -> Vec<u8> {
        use std::io::Write as _;
        let mut buf = std::mem::take(&mut self.trace_buf);
        buf.clear();
        write!(buf, "{{\"n\":{},\"t_us\":{us}", self.events).expect("write to a Vec");
        let start = buf.len();
        serde_json::to_writer(&mut buf, ev).expect("trace event serializes");
        // The event is a tagged struct, so it always opens with `{"e":`;
        // its `{` becomes the `,` after `t_us`.
        debug_assert_eq!(buf[start], b'{');
        buf[start] = b',';
        buf
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
        let mut same_instant = 0u64;
        while let Some((at, kind)) = self.queue.pop() {
            assert!(at >= self.now, "time never goes back");
            same_instant = if at == self.now { same_instant + 1 } else { 0 };
            self.now = at;
            self.events += 1;
            assert!(
                self.events <= EVENTS_PER_RUN_MAX,
                "over {EVENTS_PER_RUN_MAX} events: a livelock"
            );
            assert!(
                same_instant <= EVENTS_PER_INSTANT_MAX,
                "over {EVENTS_PER_INSTANT_MAX} events at one instant ({:?}): a livelock that time does not move (last: {:?})",
                self.now,
                kind
            );
            let end = matches!(kind, EventKind::End);
            let fault = matches!(
                kind,
                EventKind::FaultStart { .. }
                    | EventKind::FaultEnd { .. }
                    | EventKind::Rolling {
                        step: RollingStep::Stop(_) | RollingStep::Restart(_),
                        ..
                    }
                    | EventKind::Heal
                    | EventKind::End
            );
            if fault {
                // See `check_broker`: the full node checks run only every
                // so often, so catch up before a fault changes the nodes.
                self.check_nodes_fully();
                if self.stopped {
                    break;
                }
            }
            let touched = self.dispatch(kind);
            if let Some(broker) = touched {
                self.check_broker(broker, fault);
                if self.groups.is_some() {
                    self.check_group_coordinator(broker);
                }
                self.maybe_controlled_stop_done(broker);
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

    /// The fault phase begins: faults, the heal and the end are placed
    /// from now on, and clients start. Right after the setup on a
    /// standalone broker (time zero); once the cluster is ready in a
    /// cluster.
    fn begin_run(&mut self) {
        assert!(self.start_at.is_none(), "the run begins once");
        self.start_at = Some(self.now);
        let phases = &self.scenario.phases;
        self.heal_at = self.now + Duration::from_millis(phases.fault_ms);
        self.end_at = self.heal_at + Duration::from_millis(phases.liveness_ms);
        let mut produce_ms = phases.liveness_ms / 4;
        if let Some(c) = &self.cluster {
            // Producers keep going long enough after the heal to show
            // that every partition takes acks=all writes again.
            produce_ms = produce_ms.max(c.config.recovery_ms_max);
        }
        self.produce_stop_at = self.heal_at + Duration::from_millis(produce_ms);
        for index in 0..self.schedule.len() {
            let at = self.now + Duration::from_millis(self.schedule[index].at_ms);
            self.push(at, EventKind::FaultStart { index });
        }
        // A millisecond after the fault phase, so that faults ending exactly
        // at its end have ended.
        self.push(self.heal_at + Duration::from_millis(1), EventKind::Heal);
        self.push(self.end_at, EventKind::End);
        let workload_clients =
            self.scenario.topology.producers.len() + self.scenario.topology.consumers.len();
        for c in 0..workload_clients {
            // Clients start staggered, as real ones do.
            let start = self.now + Duration::from_micros(self.rng_client.gen_range(0..50_000));
            if let ClientKind::Producer(p) = &mut self.clients[c].kind {
                p.next_send_at = start;
            }
            if self.cluster.is_none() {
                // A standalone client connects to broker 0 at once.
                self.clients[c].conns.insert(
                    0,
                    ClientConn::Down {
                        reconnect_at: start,
                    },
                );
            } else if let Some(m) = &mut self.clients[c].meta {
                m.start_at(start);
            }
            self.rearm_client(c);
        }
        self.groups_begin();
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
                let connecting = self.clients[client].conns.iter().find_map(|(b, c)| {
                    matches!(c, ClientConn::Connecting(x) if *x == conn).then_some(*b)
                });
                if let Some(broker) = connecting {
                    self.client_lost_connection(client, broker);
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
                if self.brokers[broker].stopping {
                    self.emit(Ev::Drop {
                        conn,
                        what: "request to a stopping broker",
                    });
                    return None;
                }
                if let Some(until) = self.paused(broker) {
                    // Re-queued in the order they fired, so a paused node
                    // still sees its inputs in order when it wakes.
                    self.push(until, EventKind::ToNode { conn, header, body });
                    return None;
                }
                self.note_group_request(broker, conn, &header, &body);
                self.node_input(
                    broker,
                    Input::Request {
                        connection: conn,
                        header,
                        body: *body,
                    },
                );
                Some(broker)
            }
            EventKind::ToOrigin {
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
                match c.origin {
                    Origin::Client(client) => {
                        self.client_response(client, conn, correlation_id, *body);
                        None
                    }
                    Origin::Peer(a) => {
                        let from = self.brokers[c.broker].config.node_id;
                        if let Some(until) = self.paused(a) {
                            let kind = EventKind::ToOrigin {
                                conn,
                                correlation_id,
                                body,
                            };
                            self.push(until, kind);
                            return None;
                        }
                        let input = Input::PeerResponse {
                            from,
                            correlation_id,
                            body: *body,
                        };
                        self.node_input(a, input);
                        Some(a)
                    }
                }
            }
            EventKind::PeerDown {
                broker,
                generation,
                peer,
                incident,
            } => {
                if self.brokers[broker].generation != generation || self.brokers[broker].stopping {
                    return None;
                }
                if let Some(until) = self.paused(broker) {
                    let kind = EventKind::PeerDown {
                        broker,
                        generation,
                        peer,
                        incident,
                    };
                    self.push(until, kind);
                    return None;
                }
                self.on_peer_down(broker, peer, incident).then_some(broker)
            }
            EventKind::StopDeadline { broker, generation } => {
                let b = &self.brokers[broker];
                if b.generation != generation || b.stop_deadline_at != Some(self.now) {
                    return None; // another life's, or an earlier stage's
                }
                if self.brokers[broker].controlled_stop {
                    // The controller did not finish in time (unreachable,
                    // or no one to hand leadership to): stop anyway, as
                    // Kafka does when its retries run out.
                    self.drain_and_stop(broker);
                } else if self.brokers[broker].stopping {
                    self.finish_stop(broker, false);
                }
                None
            }
            EventKind::SetupDeadline => {
                self.setup_deadline();
                None
            }
            EventKind::Rolling { index, step } => self.rolling_step(index, step),
            EventKind::NodeSawClose {
                broker,
                generation,
                conn,
            } => {
                if self.brokers[broker].generation != generation || self.brokers[broker].stopping {
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
                if let Some(broker) = self.clients[client].broker_of(conn) {
                    self.client_lost_connection(client, broker);
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
                if self.brokers[broker].stopping {
                    return None;
                }
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
                    self.splits.iter().all(|s| s.until <= self.now)
                        && self.brokers.iter().all(|b| b.isolated_until <= self.now),
                    "every split and isolation ends by the end of the fault phase"
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
