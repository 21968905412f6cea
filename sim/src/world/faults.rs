//! Faults: materialising the schedule from the scenario's rates, and
//! applying each fault's start and end.

use super::*;
use crate::scenario::Target;
use liveness::OutageKind;

impl World {
    pub(super) fn az(&self, name: &Option<String>) -> usize {
        let name = name.as_deref().expect("validated");
        self.az_names
            .iter()
            .position(|a| a == name)
            .expect("validated AZ")
    }

    /// The broker a `target` names now, from what clients last learned.
    fn resolve_target(&self, fault: &Fault, target: Target) -> Option<BrokerId> {
        let cluster = self.cluster.as_ref()?;
        let tp = match &fault.topic {
            Some(topic) => self.find_tp(topic, fault.partition.unwrap_or(0))?,
            None => 0,
        };
        let leader = cluster.leaders[tp].and_then(|(b, _)| b);
        match target {
            Target::Leader => leader,
            Target::Follower => {
                let leader = leader?;
                cluster.replica_sets[tp]
                    .iter()
                    .copied()
                    .find(|b| *b != leader)
            }
            Target::UpFollower => {
                let leader = leader?;
                cluster.replica_sets[tp]
                    .iter()
                    .copied()
                    .find(|b| *b != leader && self.accepting_broker(&self.brokers[*b]))
            }
            Target::LastFollower => {
                let leader = leader?;
                cluster.replica_sets[tp]
                    .iter()
                    .copied()
                    .rev()
                    .find(|b| *b != leader)
            }
            Target::Controller => cluster.controller,
        }
    }

    /// The brokers fault `index` acts on (empty for network-wide faults).
    fn fault_brokers(&self, fault: &Fault) -> Vec<BrokerId> {
        match fault.kind {
            FaultKind::AzOutage => {
                let az = self.az(&fault.az);
                (0..self.brokers.len())
                    .filter(|b| self.brokers[*b].az == az)
                    .collect()
            }
            FaultKind::Split => fault.nodes.iter().map(|n| *n as usize).collect(),
            _ => fault.node.map(|n| n as usize).into_iter().collect(),
        }
    }

    pub(super) fn fault_start(&mut self, index: usize) -> Option<BrokerId> {
        let fault = self.schedule[index].clone();
        let until = self.now + Duration::from_millis(fault.duration_ms);
        let nodes = match fault.target {
            None => self.fault_brokers(&fault),
            Some(target) => match self.resolve_target(&fault, target) {
                Some(b) => {
                    self.emit(Ev::Target { index, broker: b });
                    vec![b]
                }
                None => {
                    self.emit(Ev::FaultSkipped {
                        index,
                        why: "no broker holds that role yet",
                    });
                    return None;
                }
            },
        };
        let node = nodes.first().copied();
        let mut applied = true;
        let mut down = Vec::new();
        let mut isolated_before = BTreeSet::new();
        match fault.kind {
            FaultKind::Crash => {
                applied = self.crash(node.expect("validated"), fault.torn, true);
                down = nodes.clone();
            }
            FaultKind::ProcessKill => {
                applied = self.crash(node.expect("validated"), false, false);
                down = nodes.clone();
            }
            FaultKind::AzOutage => {
                // Every machine of the AZ loses power at the same instant.
                let crashed: Vec<BrokerId> = nodes
                    .iter()
                    .copied()
                    .filter(|b| self.crash(*b, fault.torn, true))
                    .collect();
                applied = !crashed.is_empty();
                down = crashed;
            }
            FaultKind::Shutdown => {
                applied = self.begin_stop(node.expect("validated"));
                down = nodes.clone();
            }
            FaultKind::ConnectionReset => self.reset_connections(fault.client),
            FaultKind::Partition => {
                isolated_before = self.isolated_azs();
                let (from, to) = (self.az(&fault.from_az), self.az(&fault.to_az));
                self.cuts.push(Cut { from, to, until });
                if !fault.one_way {
                    self.cuts.push(Cut {
                        from: to,
                        to: from,
                        until,
                    });
                }
                if self.cluster.is_some() {
                    self.break_blocked_links();
                }
            }
            FaultKind::Isolate => {
                let b = node.expect("validated");
                self.brokers[b].isolated_until = self.brokers[b].isolated_until.max(until);
                self.break_blocked_links();
                down = nodes.clone();
            }
            FaultKind::Split => {
                let mut side = vec![false; self.brokers.len()];
                for b in &nodes {
                    side[*b] = true;
                }
                self.splits.push(Split { side, until });
                self.break_blocked_links();
                // The side with fewer brokers has no quorum: its leaders
                // are lost.
                if nodes.len() * 2 < self.brokers.len() {
                    down = nodes.clone();
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
                down = nodes.clone();
            }
            FaultKind::Skew => self.brokers[node.expect("validated")].skew_ms = fault.skew_ms,
            FaultKind::HoldAlterPartition => {
                let b = &mut self.brokers[node.expect("validated")];
                b.alter_partition_held_until = b.alter_partition_held_until.max(until);
            }
            FaultKind::HoldBrokerHeartbeat => {
                let b = &mut self.brokers[node.expect("validated")];
                b.heartbeat_held_until = b.heartbeat_held_until.max(until);
            }
            FaultKind::SlowReplicaFetch => {
                self.brokers[node.expect("validated")].replica_fetch_extra_ms = fault.extra_ms
            }
            FaultKind::SlowReplicaFetchResponse => {
                self.brokers[node.expect("validated")].replica_fetch_response_extra_ms =
                    fault.extra_ms
            }
            FaultKind::HoldMetadataFetch => {
                let b = &mut self.brokers[node.expect("validated")];
                b.metadata_fetch_held_until = b.metadata_fetch_held_until.max(until);
            }
            FaultKind::RollingRestart => {
                self.emit(Ev::Fault {
                    index,
                    fault: &fault,
                    start: true,
                });
                self.push(
                    self.now,
                    EventKind::Rolling {
                        index,
                        step: RollingStep::Stop(0),
                    },
                );
                // It ends by itself, broker after broker.
                return None;
            }
            FaultKind::Reassign => {
                let tp = match &fault.topic {
                    Some(topic) => self.find_tp(topic, fault.partition.unwrap_or(0)),
                    None => Some(0),
                };
                let tp = tp.expect("validated: a workload partition");
                // Broker index i is node id i + 1.
                let replicas: Vec<i32> = fault.nodes.iter().map(|n| *n as i32 + 1).collect();
                self.request_reassignment(index, tp, replicas);
            }
            FaultKind::CorruptReplica => {
                let tp = match &fault.topic {
                    Some(topic) => self.find_tp(topic, fault.partition.unwrap_or(0)),
                    None => Some(0),
                };
                let done = tp
                    .ok_or("no such partition")
                    .and_then(|tp| self.corrupt_replica(node.expect("validated"), tp));
                if let Err(why) = done {
                    self.emit(Ev::FaultSkipped { index, why });
                    return None;
                }
            }
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
        let outage = match fault.kind {
            FaultKind::AzOutage => OutageKind::AzLost,
            _ => OutageKind::LeaderLost,
        };
        self.outage_begins(outage, fault.kind, &down, until);
        if fault.kind == FaultKind::Partition {
            self.az_cut_off(&isolated_before, until);
        }
        for b in down {
            self.leader_lost(b, until);
        }
        if fault.kind == FaultKind::AzOutage || fault.target.is_some() {
            self.fault_nodes.insert(index, nodes);
        }
        self.push(until, EventKind::FaultEnd { index });
        node
    }

    pub(super) fn fault_end(&mut self, index: usize) -> Option<BrokerId> {
        let fault = self.schedule[index].clone();
        self.emit(Ev::Fault {
            index,
            fault: &fault,
            start: false,
        });
        let nodes = self
            .fault_nodes
            .remove(&index)
            .unwrap_or_else(|| self.fault_brokers(&fault));
        let node = nodes.first().copied();
        match fault.kind {
            FaultKind::Crash | FaultKind::ProcessKill | FaultKind::Shutdown => {
                self.restart(node.expect("validated"))
            }
            FaultKind::AzOutage => {
                for b in &nodes {
                    self.restart(*b);
                }
            }
            FaultKind::ConnectionReset
            | FaultKind::Pause
            | FaultKind::Isolate
            | FaultKind::HoldAlterPartition
            | FaultKind::HoldBrokerHeartbeat
            | FaultKind::HoldMetadataFetch => {}
            FaultKind::Partition => self.cuts.retain(|c| c.until > self.now),
            FaultKind::Split => self.splits.retain(|s| s.until > self.now),
            FaultKind::Clog => self.clogs.retain(|c| c.until > self.now),
            FaultKind::DiskFull => {
                let b = node.expect("validated");
                self.brokers[b].disk_full = false;
                set_disk_full(&mut self.brokers[b].state, false);
            }
            FaultKind::SlowFlush => self.brokers[node.expect("validated")].slow_flush_extra_ms = 0,
            FaultKind::SlowReplicaFetch => {
                self.brokers[node.expect("validated")].replica_fetch_extra_ms = 0
            }
            FaultKind::SlowReplicaFetchResponse => {
                self.brokers[node.expect("validated")].replica_fetch_response_extra_ms = 0
            }
            FaultKind::Skew => self.brokers[node.expect("validated")].skew_ms = 0,
            FaultKind::RollingRestart => unreachable!("ends through its own steps"),
            FaultKind::CorruptReplica | FaultKind::Reassign => {}
        }
        node
    }
}

impl World {
    /// One step of a rolling restart (see `RollingStep`). A broker is only
    /// stopped if it can be back before the heal; what does not fit is
    /// skipped and said so.
    pub(super) fn rolling_step(&mut self, index: usize, step: RollingStep) -> Option<BrokerId> {
        let fault = self.schedule[index].clone();
        let down = Duration::from_millis(fault.duration_ms);
        let next = |step| EventKind::Rolling { index, step };
        match step {
            RollingStep::Stop(b) if b == self.brokers.len() => {
                self.emit(Ev::Fault {
                    index,
                    fault: &fault,
                    start: false,
                });
                None
            }
            RollingStep::Stop(b) => {
                if self.now + down + Duration::from_millis(1) >= self.heal_at {
                    self.rolling_out_of_time(index, &fault);
                    return None;
                }
                self.begin_stop(b);
                let until = self.now + down;
                self.outage_begins(OutageKind::LeaderLost, fault.kind, &[b], until);
                self.leader_lost(b, until);
                self.push(self.now, next(RollingStep::Stopping(b)));
                Some(b)
            }
            RollingStep::Stopping(b) => {
                let poll = Duration::from_millis(ROLLING_HEALTH_POLL_MS);
                // Back up by the heal (which comes a millisecond after
                // `heal_at`), whatever happens.
                let latest = self.heal_at;
                if matches!(self.brokers[b].state, BrokerState::Down(_)) {
                    let at = (self.now + down).min(latest).max(self.now);
                    self.push(at, next(RollingStep::Restart(b)));
                } else if self.now + poll >= latest {
                    self.push(self.now, next(RollingStep::Restart(b)));
                } else {
                    self.push(self.now + poll, next(RollingStep::Stopping(b)));
                }
                None
            }
            RollingStep::Restart(b) => {
                self.restart(b);
                self.push(self.now, next(RollingStep::Wait(b + 1)));
                Some(b)
            }
            RollingStep::Wait(b) => {
                let gap = Duration::from_millis(fault.gap_ms);
                if b < self.brokers.len() && self.now + gap + down >= self.heal_at {
                    self.rolling_out_of_time(index, &fault);
                } else if self.cluster_healthy() {
                    self.push(self.now + gap, next(RollingStep::Stop(b)));
                } else {
                    let poll = Duration::from_millis(ROLLING_HEALTH_POLL_MS);
                    self.push(self.now + poll, next(RollingStep::Wait(b)));
                }
                None
            }
        }
    }

    fn rolling_out_of_time(&mut self, index: usize, fault: &Fault) {
        self.emit(Ev::FaultSkipped {
            index,
            why: "the rest of the rolling restart does not fit before the heal",
        });
        self.emit(Ev::Fault {
            index,
            fault,
            start: false,
        });
    }

    /// Every broker runs, and every partition has a leader whose ISR holds
    /// every replica (the replication factor), by the brokers' own getters.
    pub(super) fn cluster_healthy(&self) -> bool {
        let Some(cluster) = &self.cluster else {
            return self.brokers.iter().all(|b| self.accepting_broker(b));
        };
        let rf = cluster.config.replication_factor as usize;
        if !self.brokers.iter().all(|b| self.accepting_broker(b)) {
            return false;
        }
        self.tps.iter().all(|(topic, partition)| {
            self.brokers.iter().any(|b| match &b.state {
                BrokerState::Up(node) => node
                    .replica_role(topic, *partition)
                    .is_some_and(|(_, leads, isr)| leads && isr.len() >= rf),
                _ => false,
            })
        })
    }

    fn accepting_broker(&self, b: &Broker) -> bool {
        matches!(b.state, BrokerState::Up(_)) && !b.stopping
    }
}

/// Whether a fault takes its broker(s) out of service (so that random
/// ones can be kept to a minority of a cluster at a time).
fn takes_down(kind: FaultKind) -> bool {
    matches!(
        kind,
        FaultKind::Crash
            | FaultKind::ProcessKill
            | FaultKind::Shutdown
            | FaultKind::Isolate
            | FaultKind::AzOutage
            | FaultKind::Split
            | FaultKind::Pause
    )
}

/// The brokers a fault takes down, as far as the schedule knows (a target
/// counts as one unknown broker).
fn down_brokers(scenario: &Scenario, f: &Fault) -> Vec<Option<u32>> {
    match f.kind {
        FaultKind::AzOutage => scenario
            .topology
            .brokers
            .iter()
            .enumerate()
            .filter(|(_, az)| Some(*az) == f.az.as_ref())
            .map(|(i, _)| Some(i as u32))
            .collect(),
        FaultKind::Split => f.nodes.iter().map(|n| Some(*n)).collect(),
        _ => vec![f.node],
    }
}

/// Turns the scenario's random rates into an explicit schedule, merged with
/// its scheduled faults; every fault ends by the end of the fault phase.
///
/// Cluster scenarios: a random fault that would take a majority of the
/// brokers out at once (with the faults already kept) is dropped, so
/// random schedules exercise fail-over, not total outage; scheduled faults
/// are kept as written.
pub fn materialize_faults(scenario: &Scenario, swarm: &Swarm, rng: &mut ChaCha8Rng) -> Vec<Fault> {
    let fault_ms = scenario.phases.fault_ms;
    let random = &scenario.faults.random;
    let azs = &scenario.topology.azs;
    let brokers = scenario.topology.brokers.len() as u32;
    let clients = (scenario.topology.producers.len() + scenario.topology.consumers.len()) as u32;
    let mut out: Vec<Fault> = scenario.faults.schedule.clone();
    let scheduled = out.len();
    let cluster = swarm.cluster.as_ref();
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
        (
            FaultKind::Isolate,
            cluster.map_or(0.0, |c| c.isolate_per_min),
        ),
        (FaultKind::Split, cluster.map_or(0.0, |c| c.split_per_min)),
        (
            FaultKind::Shutdown,
            cluster.map_or(0.0, |c| c.shutdown_per_min),
        ),
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
            let mut f = Fault::new(t as u64, kind, uniform(rng, random.duration_ms));
            match kind {
                FaultKind::ProcessKill
                | FaultKind::DiskFull
                | FaultKind::Pause
                | FaultKind::Isolate
                | FaultKind::Shutdown => f.node = Some(rng.gen_range(0..brokers)),
                FaultKind::Split => f.nodes = vec![rng.gen_range(0..brokers)],
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
                FaultKind::AzOutage
                | FaultKind::RollingRestart
                | FaultKind::CorruptReplica
                | FaultKind::HoldAlterPartition
                | FaultKind::HoldBrokerHeartbeat
                | FaultKind::SlowReplicaFetch
                | FaultKind::SlowReplicaFetchResponse
                | FaultKind::HoldMetadataFetch
                | FaultKind::Reassign => {
                    unreachable!("never random")
                }
            }
            out.push(f);
        }
    }
    out.retain(|f| f.at_ms < fault_ms);
    for f in &mut out {
        // Faults heal by the end of the fault phase: the liveness phase
        // starts from a whole cluster. (A rolling restart's duration is
        // each broker's; it keeps to the phase by itself.)
        if f.kind != FaultKind::RollingRestart {
            f.duration_ms = f.duration_ms.min(fault_ms - f.at_ms).max(1);
        }
    }
    if scenario.cluster.is_some() {
        out = keep_a_majority_up(scenario, out, scheduled);
    }
    out.sort_by_key(|f| f.at_ms);
    out
}

/// Drops random faults (those at `random_from..`) that would take more
/// than a minority of the brokers, or of the KRaft voters, out at once,
/// counting the faults kept before them and `rejoin_ms` after each for the
/// broker to rejoin. Scheduled faults always stay.
fn keep_a_majority_up(scenario: &Scenario, faults: Vec<Fault>, random_from: usize) -> Vec<Fault> {
    let minority = (scenario.topology.brokers.len() - 1) / 2;
    let voters: BTreeSet<u32> = scenario
        .voter_indexes()
        .into_iter()
        .map(|v| v as u32)
        .collect();
    let voters_minority = (voters.len() - 1) / 2;
    let rejoin_ms = scenario.cluster.as_ref().map_or(0, |c| c.rejoin_ms);
    let mut kept: Vec<Fault> = Vec::with_capacity(faults.len());
    for (i, f) in faults.into_iter().enumerate() {
        if i < random_from || !takes_down(f.kind) {
            kept.push(f);
            continue;
        }
        let (start, end) = (f.at_ms, f.at_ms + f.duration_ms + rejoin_ms);
        let mut out_at_once: BTreeSet<Option<u32>> = BTreeSet::new();
        let mut unknown = 0;
        for g in kept.iter().filter(|g| takes_down(g.kind)) {
            if g.at_ms < end && start < g.at_ms + g.duration_ms + rejoin_ms {
                for b in down_brokers(scenario, g) {
                    if b.is_none() {
                        unknown += 1;
                    }
                    out_at_once.insert(b);
                }
            }
        }
        for b in down_brokers(scenario, &f) {
            out_at_once.insert(b);
        }
        let count = out_at_once.iter().filter(|b| b.is_some()).count() + unknown;
        let voters_out = out_at_once
            .iter()
            .filter(|b| b.is_some_and(|b| voters.contains(&b)))
            .count()
            + unknown;
        if count <= minority && voters_out <= voters_minority {
            kept.push(f);
        }
    }
    kept
}
