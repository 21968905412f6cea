//! Faults: materialising the schedule from the scenario's rates, and
//! applying each fault's start and end.

use super::*;

impl World {
    pub(super) fn az(&self, name: &Option<String>) -> usize {
        let name = name.as_deref().expect("validated");
        self.az_names
            .iter()
            .position(|a| a == name)
            .expect("validated AZ")
    }

    pub(super) fn fault_start(&mut self, index: usize) -> Option<BrokerId> {
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

    pub(super) fn fault_end(&mut self, index: usize) -> Option<BrokerId> {
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
