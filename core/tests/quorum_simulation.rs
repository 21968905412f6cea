//! A seeded, randomized simulation of the KRaft controller quorum, in the
//! style of Apache Kafka's `RaftEventSimulationTest`: 3 or 5 voters over a
//! network that delays, drops and reorders messages, with partitions and
//! crashes (unflushed bytes lost, the node rebuilt from its storage), a
//! workload that proposes on whoever leads, and every invariant checked
//! after every event. A safety phase with faults is followed by a liveness
//! phase: everything heals and a leader must commit a fresh proposal within
//! a bound.
//!
//! One seed derives the whole run (ChaCha8); a failure prints the seed and
//! the parameters it derived, and `QUORUM_SEED=n cargo test -p seedlog-core
//! --test quorum_simulation replay -- --nocapture` replays it.

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use seedlog_core::batch::{build_batch, BatchIter};
use seedlog_core::quorum::{
    read_election_state, QuorumConfig, QuorumNode, QuorumOutput, RaftMessage, Role,
};
use seedlog_core::storage::{MemoryStorage, Storage};
use seedlog_core::Instant;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Simulated time with faults.
const SAFETY_PHASE_MS: u64 = 8_000;
/// After healing, a leader must commit a fresh proposal within this.
const LIVENESS_BOUND_MS: u64 = 15_000;
/// A run handles at most this many events (a bound on the loop).
const EVENTS_MAX: u64 = 200_000;

/// Parameters one seed derives.
#[derive(Debug, Clone)]
struct Params {
    voters: usize,
    loss_percent: u32,
    delay_ms_max: u64,
    flush_ms_max: u64,
    fault_interval_ms_max: u64,
    propose_interval_ms_max: u64,
    fetch_max_bytes: u32,
    uncommitted_offsets_max: i64,
    /// Chance that a newly elected leader is isolated or crashed within a
    /// round trip (a leader-targeting nemesis: Raft's dangerous moments
    /// are right after an election).
    leader_fault_percent: u32,
    commit_prior_epoch: bool,
}

impl Params {
    fn derive(rng: &mut ChaCha8Rng, voters: usize, commit_prior_epoch: bool) -> Params {
        Params {
            voters,
            loss_percent: rng.gen_range(0..=10),
            delay_ms_max: rng.gen_range(2..=60),
            flush_ms_max: rng.gen_range(1..=30),
            fault_interval_ms_max: rng.gen_range(50..=2_000),
            propose_interval_ms_max: rng.gen_range(20..=300),
            // Small responses spread a catch-up over many fetches, so a
            // follower often acknowledges an earlier epoch's records before
            // the new leader's own.
            fetch_max_bytes: rng.gen_range(1..=4096),
            uncommitted_offsets_max: rng.gen_range(8..=128),
            leader_fault_percent: rng.gen_range(0..=80),
            commit_prior_epoch,
        }
    }
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: i32,
        to: i32,
        message: RaftMessage,
    },
    Flushed {
        node: i32,
        incarnation: u64,
        paths: Vec<String>,
        log_end_offset: i64,
    },
    Restart {
        node: i32,
    },
    Fault,
    /// Isolate or crash a node that just became leader.
    LeaderFault {
        node: i32,
    },
    Propose,
    Heal,
}

struct SimNode {
    storage: MemoryStorage,
    node: Option<QuorumNode>,
    /// Bumped on every crash: completions of an older incarnation are lost.
    incarnation: u64,
    /// Offsets below this were checked against the committed record.
    verified_offset: i64,
    seen_truncations: u64,
    /// The durable log end when it last crashed (for majority counts).
    synced_offset_at_crash: i64,
    last_persisted_epoch: i32,
}

/// The first invariant a run broke.
#[derive(Debug, Clone)]
struct Violation {
    checker: &'static str,
    message: String,
}

#[derive(Debug, Default)]
struct Stats {
    events: u64,
    elections: usize,
    committed_offsets: usize,
    crashes: u32,
    liveness_ms: u64,
}

struct Checker {
    /// `single_leader`: epoch -> the node that led it.
    leaders: BTreeMap<i32, i32>,
    /// `monotonic_high_watermark`: epoch -> the highest HW its leader had.
    high_watermarks: BTreeMap<i32, i64>,
    /// `consistent_committed_data`: batch base offset -> the bytes every
    /// node must hold there once it is below that node's high watermark.
    committed: BTreeMap<i64, Bytes>,
    /// Checkers that do not run (a bug flag's direct mirror).
    skip: BTreeSet<&'static str>,
}

struct Sim {
    params: Params,
    seed: u64,
    rng: ChaCha8Rng,
    now: Instant,
    nodes: BTreeMap<i32, SimNode>,
    queue: BTreeMap<(Instant, u64), Event>,
    sequence: u64,
    /// Directed links that drop everything.
    blocked: BTreeSet<(i32, i32)>,
    faults_on: bool,
    proposals: u64,
    checker: Checker,
    stats: Stats,
    /// Liveness: `(leader, epoch, offset)` of a proposal made after healing.
    probe: Option<(i32, i32, i64)>,
}

fn quorum_config(id: i32, voters: usize, params: &Params) -> QuorumConfig {
    let ids: Vec<i32> = (1..=voters as i32).collect();
    let mut config = QuorumConfig::new(id, &ids, "sim-cluster");
    config.fetch_max_bytes = params.fetch_max_bytes;
    config.uncommitted_offsets_max = params.uncommitted_offsets_max;
    config.commit_prior_epoch = params.commit_prior_epoch;
    config
}

impl Sim {
    fn new(seed: u64, voters: usize, commit_prior_epoch: bool, skip: &[&'static str]) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let params = Params::derive(&mut rng, voters, commit_prior_epoch);
        let mut nodes = BTreeMap::new();
        for id in 1..=voters as i32 {
            let mut storage = MemoryStorage::new();
            let node = QuorumNode::open(
                &mut storage,
                quorum_config(id, voters, &params),
                Instant::ZERO,
                rng.gen(),
            )
            .expect("a fresh node opens");
            nodes.insert(
                id,
                SimNode {
                    storage,
                    node: Some(node),
                    incarnation: 0,
                    verified_offset: 0,
                    seen_truncations: 0,
                    synced_offset_at_crash: 0,
                    last_persisted_epoch: 0,
                },
            );
        }
        let skip: BTreeSet<&'static str> = skip.iter().copied().collect();
        let mut sim = Sim {
            params,
            seed,
            rng,
            now: Instant::ZERO,
            nodes,
            queue: BTreeMap::new(),
            sequence: 0,
            blocked: BTreeSet::new(),
            faults_on: true,
            proposals: 0,
            checker: Checker {
                leaders: BTreeMap::new(),
                high_watermarks: BTreeMap::new(),
                committed: BTreeMap::new(),
                skip,
            },
            stats: Stats::default(),
            probe: None,
        };
        let fault_at = sim.random_ms(sim.params.fault_interval_ms_max);
        sim.schedule(fault_at, Event::Fault);
        sim.schedule(Duration::from_millis(50), Event::Propose);
        sim.schedule(Duration::from_millis(SAFETY_PHASE_MS), Event::Heal);
        sim
    }

    fn random_ms(&mut self, max_ms: u64) -> Duration {
        Duration::from_millis(self.rng.gen_range(1..=max_ms.max(1)))
    }

    fn schedule(&mut self, after: Duration, event: Event) {
        self.sequence += 1;
        self.queue.insert((self.now + after, self.sequence), event);
    }

    fn ids(&self) -> Vec<i32> {
        self.nodes.keys().copied().collect()
    }

    /// Runs the safety phase, heals, and waits for liveness.
    fn run(&mut self) -> Result<(), Violation> {
        let heal_deadline = Instant::ZERO + Duration::from_millis(SAFETY_PHASE_MS);
        let liveness_deadline = heal_deadline + Duration::from_millis(LIVENESS_BOUND_MS);
        let trace = std::env::var("QUORUM_TRACE").is_ok();
        let mut last_roles = String::new();
        for _ in 0..EVENTS_MAX {
            self.step_one()?;
            self.check()?;
            if trace {
                let roles = self.describe();
                if roles != last_roles {
                    eprintln!(
                        "t={}ms blocked={:?}{roles}",
                        self.now.as_nanos() / 1_000_000,
                        self.blocked
                    );
                    last_roles = roles;
                }
            }
            if !self.faults_on && self.liveness_reached() {
                self.stats.liveness_ms = (self.now - heal_deadline).as_millis() as u64;
                return Ok(());
            }
            if self.now > liveness_deadline {
                return Err(Violation {
                    checker: "liveness",
                    message: format!(
                        "no proposal committed within {LIVENESS_BOUND_MS} ms of healing: {}",
                        self.describe()
                    ),
                });
            }
        }
        panic!("seed {}: {EVENTS_MAX} events without an outcome", self.seed);
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        for (id, sim_node) in &self.nodes {
            match &sim_node.node {
                Some(node) => out.push_str(&format!(
                    "\n  node {id}: {:?} epoch {} leader {:?} voted {:?} hw {:?} leo {} synced {}",
                    node.role(),
                    node.epoch(),
                    node.leader_id(),
                    node.voted_id(),
                    node.high_watermark(),
                    node.log_end_offset(),
                    node.synced_offset()
                )),
                None => out.push_str(&format!("\n  node {id}: down")),
            }
        }
        out
    }

    /// Handles the next event: a queued one or a node's timer, the earlier.
    fn step_one(&mut self) -> Result<(), Violation> {
        let next_timer = self
            .nodes
            .iter()
            .filter_map(|(&id, n)| Some((n.node.as_ref()?.poll_timeout()?, id)))
            .min();
        let next_queued = self.queue.keys().next().copied();
        self.stats.events += 1;
        match (next_timer, next_queued) {
            (Some((at, id)), queued) if queued.is_none_or(|(q, _)| at < q) => {
                self.now = self.now.max(at);
                let now = self.now;
                let sim_node = self.nodes.get_mut(&id).expect("node");
                let node = sim_node.node.as_mut().expect("alive");
                node.handle_timeout(&mut sim_node.storage, now)
                    .expect("timeout");
                self.drain(id);
            }
            (_, Some(key)) => {
                let event = self.queue.remove(&key).expect("queued");
                self.now = self.now.max(key.0);
                self.handle_event(event);
            }
            (Some(_), None) | (None, None) => {
                unreachable!("the Propose event is always queued")
            }
        }
        Ok(())
    }

    fn handle_event(&mut self, event: Event) {
        let now = self.now;
        match event {
            Event::Deliver { from, to, message } => {
                if self.blocked.contains(&(from, to)) {
                    return;
                }
                if std::env::var("QUORUM_TRACE").is_ok_and(|v| v == "2") {
                    eprintln!(
                        "t={}ms {from}->{to} {message:?}",
                        now.as_nanos() / 1_000_000
                    );
                }
                let sim_node = self.nodes.get_mut(&to).expect("node");
                if let Some(node) = sim_node.node.as_mut() {
                    node.handle_message(&mut sim_node.storage, now, from, message)
                        .expect("message");
                    self.drain(to);
                }
            }
            Event::Flushed {
                node: id,
                incarnation,
                paths,
                log_end_offset,
            } => {
                let sim_node = self.nodes.get_mut(&id).expect("node");
                if sim_node.incarnation != incarnation || sim_node.node.is_none() {
                    return;
                }
                for path in &paths {
                    // A path truncated away since is simply gone.
                    let _ = sim_node.storage.sync(path);
                }
                let node = sim_node.node.as_mut().expect("alive");
                node.handle_flushed(&mut sim_node.storage, now, log_end_offset)
                    .expect("flushed");
                self.drain(id);
            }
            Event::Restart { node: id } => self.restart(id),
            Event::Fault => {
                if self.faults_on {
                    self.inject_fault();
                    let after = self.random_ms(self.params.fault_interval_ms_max);
                    self.schedule(after, Event::Fault);
                }
            }
            Event::LeaderFault { node } => {
                if self.faults_on {
                    if self.rng.gen_bool(0.5) {
                        self.isolate(node);
                    } else {
                        self.crash(node);
                        let after = self.random_ms(3_000);
                        self.schedule(after, Event::Restart { node });
                    }
                }
            }
            Event::Propose => {
                self.propose();
                let after = self.random_ms(self.params.propose_interval_ms_max);
                self.schedule(after, Event::Propose);
            }
            Event::Heal => {
                self.faults_on = false;
                self.blocked.clear();
                self.params.loss_percent = 0;
                for id in self.ids() {
                    if self.nodes[&id].node.is_none() {
                        self.restart(id);
                    }
                }
            }
        }
    }

    /// Moves a node's outputs into the world.
    fn drain(&mut self, id: i32) {
        // Bounded by the node's own output bound.
        loop {
            let sim_node = self.nodes.get_mut(&id).expect("node");
            let Some(output) = sim_node.node.as_mut().and_then(|n| n.poll_output()) else {
                return;
            };
            match output {
                QuorumOutput::Send { to, message } => {
                    let lost = self.rng.gen_range(0..100) < self.params.loss_percent;
                    if lost || self.blocked.contains(&(id, to)) {
                        continue;
                    }
                    let delay = self.random_ms(self.params.delay_ms_max);
                    self.schedule(
                        delay,
                        Event::Deliver {
                            from: id,
                            to,
                            message,
                        },
                    );
                }
                QuorumOutput::Flush {
                    paths,
                    log_end_offset,
                } => {
                    let incarnation = self.nodes[&id].incarnation;
                    let delay = self.random_ms(self.params.flush_ms_max);
                    self.schedule(
                        delay,
                        Event::Flushed {
                            node: id,
                            incarnation,
                            paths,
                            log_end_offset,
                        },
                    );
                }
                // This simulation takes no snapshots (the quorum's own
                // snapshot tests do): none is ever written.
                QuorumOutput::FlushSnapshot { snapshot_id, .. } => {
                    panic!("node {id} wrote snapshot {snapshot_id:?} unasked")
                }
            }
        }
    }

    fn crash(&mut self, id: i32) {
        let sim_node = self.nodes.get_mut(&id).expect("node");
        let Some(node) = sim_node.node.take() else {
            return;
        };
        sim_node.synced_offset_at_crash = node.synced_offset();
        sim_node.storage.crash();
        sim_node.incarnation += 1;
        self.stats.crashes += 1;
    }

    fn restart(&mut self, id: i32) {
        let seed = self.rng.gen();
        let now = self.now;
        let config = quorum_config(id, self.params.voters, &self.params);
        let sim_node = self.nodes.get_mut(&id).expect("node");
        if sim_node.node.is_some() {
            return;
        }
        let node =
            QuorumNode::open(&mut sim_node.storage, config, now, seed).expect("restart opens");
        // Nothing below the durable log end changed in the crash.
        sim_node.verified_offset = sim_node.verified_offset.min(node.log_end_offset());
        sim_node.seen_truncations = 0;
        sim_node.node = Some(node);
        self.drain(id);
    }

    fn inject_fault(&mut self) {
        let ids = self.ids();
        let voters = ids.len();
        let pick = |rng: &mut ChaCha8Rng| ids[rng.gen_range(0..ids.len())];
        match self.rng.gen_range(0..10) {
            0..=2 => {
                // Crash a node, keeping at most a minority down.
                let down = self.nodes.values().filter(|n| n.node.is_none()).count();
                let id = pick(&mut self.rng);
                if down < voters / 2 || self.rng.gen_range(0..4) == 0 {
                    self.crash(id);
                    let after = self.random_ms(3_000);
                    self.schedule(after, Event::Restart { node: id });
                }
            }
            3..=4 => {
                let id = pick(&mut self.rng);
                self.isolate(id);
            }
            5 => {
                // Split into two random sides.
                let side: BTreeSet<i32> = ids
                    .iter()
                    .copied()
                    .filter(|_| self.rng.gen_bool(0.5))
                    .collect();
                for &a in &ids {
                    for &b in &ids {
                        if side.contains(&a) != side.contains(&b) {
                            self.blocked.insert((a, b));
                        }
                    }
                }
            }
            6 => {
                // One-way: a link that drops in one direction only.
                let (a, b) = (pick(&mut self.rng), pick(&mut self.rng));
                if a != b {
                    self.blocked.insert((a, b));
                }
            }
            _ => self.blocked.clear(),
        }
    }

    /// Cuts every link of `id`, both ways.
    fn isolate(&mut self, id: i32) {
        for other in self.ids() {
            if other != id {
                self.blocked.insert((id, other));
                self.blocked.insert((other, id));
            }
        }
    }

    /// Proposes one record on every node that believes it leads.
    fn propose(&mut self) {
        let now = self.now;
        for id in self.ids() {
            self.proposals += 1;
            let value = format!("seed {} proposal {}", self.seed, self.proposals);
            let batch = build_batch(&[(None, Some(value.as_bytes()))], now.unix_millis());
            let sim_node = self.nodes.get_mut(&id).expect("node");
            let Some(node) = sim_node.node.as_mut() else {
                continue;
            };
            if !node.is_leader() {
                continue;
            }
            let epoch = node.epoch();
            if let Ok(offset) = node.propose(&mut sim_node.storage, now, &batch) {
                let probe_stale = self
                    .probe
                    .is_none_or(|(leader, probe_epoch, _)| (leader, probe_epoch) != (id, epoch));
                if !self.faults_on && probe_stale {
                    self.probe = Some((id, epoch, offset));
                }
            }
            self.drain(id);
        }
    }

    fn liveness_reached(&self) -> bool {
        let Some((leader, epoch, offset)) = self.probe else {
            return false;
        };
        let Some(node) = self.nodes[&leader].node.as_ref() else {
            return false;
        };
        node.is_leader()
            && node.epoch() == epoch
            && node.high_watermark().is_some_and(|hw| hw > offset)
    }

    // ----- checkers -----

    fn check(&mut self) -> Result<(), Violation> {
        let skip = self.checker.skip.clone();
        let mut new_leaders = Vec::new();
        let violation =
            |checker: &'static str, message: String| Err(Violation { checker, message });
        for id in self.ids() {
            let sim_node = self.nodes.get_mut(&id).expect("node");
            let Some(node) = sim_node.node.as_ref() else {
                continue;
            };
            node.check_invariants();
            let epoch = node.epoch();

            // monotonic_epoch: persisted == in memory, never decreasing.
            if epoch != sim_node.last_persisted_epoch {
                let persisted = read_election_state(&mut sim_node.storage)
                    .expect("election state reads")
                    .map_or(0, |s| s.epoch);
                if persisted != epoch || epoch < sim_node.last_persisted_epoch {
                    return violation(
                        "monotonic_epoch",
                        format!(
                            "node {id}: epoch {epoch} in memory, {persisted} persisted, {} before",
                            sim_node.last_persisted_epoch
                        ),
                    );
                }
                sim_node.last_persisted_epoch = epoch;
            }

            if node.role() == Role::Leader {
                // single_leader: one leader per epoch, ever.
                if !self.checker.leaders.contains_key(&epoch) {
                    new_leaders.push(id);
                }
                let leader = *self.checker.leaders.entry(epoch).or_insert(id);
                if leader != id {
                    return violation(
                        "single_leader",
                        format!("epoch {epoch} led by both {leader} and {id}"),
                    );
                }
                if let Some(hw) = node.high_watermark() {
                    // monotonic_high_watermark: a leader's HW never drops,
                    // and a later epoch's starts at or above every earlier one.
                    let earlier = self
                        .checker
                        .high_watermarks
                        .range(..=epoch)
                        .map(|(_, &hw)| hw)
                        .max()
                        .unwrap_or(0);
                    if !skip.contains("monotonic_high_watermark") && hw < earlier {
                        return violation(
                            "monotonic_high_watermark",
                            format!(
                                "node {id} leads epoch {epoch} with high watermark {hw} below {earlier}"
                            ),
                        );
                    }
                    self.checker.high_watermarks.insert(epoch, hw);

                    // leader_commits_own_epoch.
                    let start = node.epoch_start_offset().expect("a leader has one");
                    if !skip.contains("leader_commits_own_epoch") && hw <= start {
                        return violation(
                            "leader_commits_own_epoch",
                            format!(
                                "node {id} (epoch {epoch}) committed {hw} before its first record at {start}"
                            ),
                        );
                    }
                }
            }
        }

        for id in new_leaders {
            if self.faults_on && self.rng.gen_range(0..100) < self.params.leader_fault_percent {
                let after = self.random_ms(2 * self.params.delay_ms_max);
                self.schedule(after, Event::LeaderFault { node: id });
            }
        }

        // majority_reached_high_watermark: a majority holds, durably, the
        // log up to every leader's high watermark.
        let majority = self.nodes.len() / 2 + 1;
        let durable: Vec<i64> = self
            .nodes
            .values()
            .map(|n| {
                n.node
                    .as_ref()
                    .map_or(n.synced_offset_at_crash, |node| node.synced_offset())
            })
            .collect();
        for (&id, sim_node) in &self.nodes {
            let Some(node) = sim_node.node.as_ref().filter(|n| n.is_leader()) else {
                continue;
            };
            if let Some(hw) = node.high_watermark() {
                let holding = durable.iter().filter(|&&end| end >= hw).count();
                if holding < majority {
                    return violation(
                        "majority_reached_high_watermark",
                        format!(
                            "leader {id} has high watermark {hw}; only {holding} voters hold it durably ({durable:?})"
                        ),
                    );
                }
            }
        }

        // consistent_committed_data: below its high watermark, every node
        // holds the same bytes at every offset.
        for id in self.ids() {
            self.check_committed_data(id)?;
        }
        Ok(())
    }

    fn check_committed_data(&mut self, id: i32) -> Result<(), Violation> {
        let sim_node = self.nodes.get_mut(&id).expect("node");
        let Some(node) = sim_node.node.as_mut() else {
            return Ok(());
        };
        let (truncations, truncated_to) = node.truncations();
        if truncations != sim_node.seen_truncations {
            sim_node.seen_truncations = truncations;
            sim_node.verified_offset = sim_node.verified_offset.min(truncated_to);
        }
        let Some(hw) = node.high_watermark() else {
            return Ok(());
        };
        // Bounded: each read returns at least one batch below `hw`.
        let mut offset = sim_node.verified_offset;
        while offset < hw {
            let read = node
                .read_log(&mut sim_node.storage, offset, 64 * 1024)
                .expect("committed data reads");
            assert!(
                !read.records.is_empty(),
                "node {id}: nothing at {offset} below hw {hw}"
            );
            for (position, header) in BatchIter::new(&read.records) {
                if header.base_offset() >= hw {
                    break;
                }
                let bytes = read.records.slice(position..position + header.total_size());
                let base = header.base_offset();
                match self.checker.committed.get(&base) {
                    Some(committed) if *committed != bytes => {
                        return Err(Violation {
                            checker: "consistent_committed_data",
                            message: format!(
                                "node {id} holds different bytes at committed offset {base} \
                                 (its epoch {}, committed epoch {}; hw {hw})",
                                header.partition_leader_epoch(),
                                seedlog_core::batch::BatchHeader::parse(committed)
                                    .map_or(-1, |h| h.partition_leader_epoch()),
                            ),
                        });
                    }
                    Some(_) => {}
                    None => {
                        self.checker.committed.insert(base, bytes);
                    }
                }
                offset = header.next_offset();
            }
        }
        sim_node.verified_offset = sim_node.verified_offset.max(hw);
        self.stats.committed_offsets = self.checker.committed.len();
        self.stats.elections = self.checker.leaders.len();
        Ok(())
    }
}

fn run_seed(
    seed: u64,
    voters: usize,
    commit_prior_epoch: bool,
    skip: &[&'static str],
) -> (Result<(), Violation>, Stats, Params) {
    let mut sim = Sim::new(seed, voters, commit_prior_epoch, skip);
    let result = sim.run();
    (result, sim.stats, sim.params)
}

/// Runs `seeds` and panics with the first failing seed and its parameters.
fn run_seeds(voters: usize, seeds: std::ops::Range<u64>) {
    let mut total = Stats::default();
    let mut liveness_ms_max = 0;
    for seed in seeds.clone() {
        let (result, stats, params) = run_seed(seed, voters, false, &[]);
        if let Err(violation) = result {
            panic!(
                "{voters} voters, seed {seed} ({params:?}): {} violated: {}",
                violation.checker, violation.message
            );
        }
        total.events += stats.events;
        total.elections += stats.elections;
        total.crashes += stats.crashes;
        total.committed_offsets += stats.committed_offsets;
        liveness_ms_max = liveness_ms_max.max(stats.liveness_ms);
    }
    eprintln!(
        "{voters} voters, seeds {seeds:?}: {} events, {} elections, {} crashes, {} committed offsets, liveness within {liveness_ms_max} ms",
        total.events, total.elections, total.crashes, total.committed_offsets
    );
    assert!(
        total.elections > seeds.end as usize - seeds.start as usize,
        "runs elect leaders"
    );
    assert!(total.crashes > 0, "runs crash nodes");
}

#[test]
fn three_voters_keep_every_invariant() {
    run_seeds(3, 0..1000);
}

#[test]
fn five_voters_keep_every_invariant() {
    run_seeds(5, 0..1000);
}

/// Replays one seed: `QUORUM_SEED=17 QUORUM_VOTERS=5 QUORUM_BUG=1`.
#[test]
fn replay() {
    let Ok(seed) = std::env::var("QUORUM_SEED") else {
        return;
    };
    let seed: u64 = seed.parse().expect("QUORUM_SEED is a number");
    let voters = std::env::var("QUORUM_VOTERS").map_or(3, |v| v.parse().expect("a number"));
    let bug = std::env::var("QUORUM_BUG").is_ok();
    let skip: &[&'static str] = if std::env::var("QUORUM_SKIP_MIRRORS").is_ok() {
        &MIRROR_CHECKERS
    } else {
        &[]
    };
    let (result, stats, params) = run_seed(seed, voters, bug, skip);
    eprintln!("seed {seed} {params:?}\n{stats:?}\n{result:?}");
}

/// The checkers that restate the own-epoch rule itself: with the
/// `commit-prior-epoch` flag they fire at the first early commit. Switched
/// off, the run must show the harm the flag does: committed data replaced.
const MIRROR_CHECKERS: [&str; 2] = ["leader_commits_own_epoch", "monotonic_high_watermark"];

/// Runs the bug flag over `seeds`: the seeds that fail, with the checker.
fn bug_failures(
    voters: usize,
    seeds: std::ops::Range<u64>,
    skip: &[&'static str],
) -> Vec<(u64, Violation)> {
    seeds
        .filter_map(|seed| {
            let (result, _, _) = run_seed(seed, voters, true, skip);
            result.err().map(|violation| (seed, violation))
        })
        .collect()
}

#[test]
fn explore_commit_prior_epoch() {
    let Ok(n) = std::env::var("QUORUM_EXPLORE") else {
        return;
    };
    let n: u64 = n.parse().expect("a number");
    for voters in [3, 5] {
        let failures = bug_failures(voters, 0..n, &MIRROR_CHECKERS);
        for (seed, violation) in &failures {
            eprintln!(
                "{voters} voters seed {seed}: {} {}",
                violation.checker, violation.message
            );
        }
        eprintln!("{voters} voters: {} of {n} seeds fail", failures.len());
    }
}

/// The `commit-prior-epoch` flag must be caught. With every checker on,
/// `leader_commits_own_epoch` trips at the first early commit, in nearly
/// every seed (and `monotonic_high_watermark` right after it: the early
/// commit is often below the last epoch's). With those two checkers
/// `leader_commits_own_epoch` (both restate the rule) switched off, the
/// harm shows: Raft's figure 8, an earlier-epoch record committed and then
/// overwritten. Exploring seeds 0..2000 per configuration found it once in
/// the 3-voter runs, at seed 41 (42 seeds; none of the 2000 5-voter runs),
/// with the leader-targeting nemesis on. The same seeds pass without
/// the flag.
#[test]
fn commit_prior_epoch_is_found_and_its_seeds_pass_without_it() {
    let seeds = 0..64;
    let all_checkers = bug_failures(3, seeds.clone(), &[]);
    assert!(
        all_checkers.len() > seeds.clone().count() / 2
            && all_checkers
                .iter()
                .all(|(_, v)| v.checker == "leader_commits_own_epoch"),
        "the flag commits before the leader's own epoch: {all_checkers:?}"
    );
    let harm = bug_failures(3, seeds.clone(), &MIRROR_CHECKERS);
    let data_loss: Vec<&(u64, Violation)> = harm
        .iter()
        .filter(|(_, v)| v.checker == "consistent_committed_data")
        .collect();
    assert!(
        !data_loss.is_empty(),
        "commit-prior-epoch overwrote no committed record in seeds {seeds:?}: {harm:?}"
    );
    for (seed, _) in &harm {
        let (result, _, params) = run_seed(*seed, 3, false, &[]);
        assert!(
            result.is_ok(),
            "seed {seed} ({params:?}) fails without the flag: {result:?}"
        );
    }
}
