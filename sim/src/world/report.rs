//! What a run reports: its options, its violations and its statistics
//! (and, for a cluster, leader changes, fail-overs and unavailability).

use super::*;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Bugs to switch on besides the scenario's own (`--bug`).
    pub bugs: Vec<Bug>,
    /// Write every trace line here.
    pub trace_file: Option<PathBuf>,
    /// Keep every trace line in the report (for replay comparison).
    pub keep_trace: bool,
    /// Let the core's `tracing` logs through to the process's subscriber,
    /// each inside a `broker` span naming the node and its clock
    /// (`SEEDLOG_SIM_LOG=1 RUST_LOG=debug seedlog sim run ...`). Off, they
    /// are dropped: thousands of seeds of recovery warnings drown the
    /// summary and cost time. Logs never change the trace.
    pub core_logs: bool,
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

/// Cluster scenarios: what the run's inter-broker traffic and leadership
/// looked like.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterStats {
    /// Output::PeerRequest handled by the world.
    pub peer_requests: u64,
    pub peer_connections_opened: u64,
    pub peer_connections_broken: u64,
    /// Input::PeerUnreachable delivered.
    pub peer_unreachable: u64,
    /// A partition's leader (as clients learned it) moved to another
    /// broker.
    pub leader_changes: u64,
    /// A partition's leader epoch went up (a change or a re-election).
    pub leader_epoch_bumps: u64,
    /// Faults that took out a partition's leader.
    pub leader_losses: u64,
    pub graceful_stops: u64,
    /// Graceful shutdowns whose flushes did not finish in time.
    pub unclean_stops: u64,
    /// A broker's high watermark went back across its own restart.
    pub hw_restart_resets: u64,
    /// Codec round trips that dropped a field the message's version does
    /// not carry (same bytes on the wire; see `judge_codec`).
    pub codec_fields_dropped: u64,
    /// acks=1 writes acknowledged by a leader and truncated away by a
    /// fail-over (allowed by acks=1; counted).
    pub acks1_lost: u64,
}

/// A partition's leader was lost (a fault took its broker out) and came
/// back: the first acks=all write acknowledged after the loss.
#[derive(Debug, Clone, Serialize)]
pub struct Failover {
    pub tp: String,
    /// The broker that led it.
    pub leader: usize,
    pub lost_at_ms: u64,
    /// `None`: no acks=all write was acknowledged afterwards.
    pub recovered_at_ms: Option<u64>,
}

impl Failover {
    pub fn took_ms(&self) -> Option<u64> {
        self.recovered_at_ms.map(|r| r - self.lost_at_ms)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    /// When the setup phase ended (controller elected, brokers registered,
    /// topics created and led); `None` if it never did.
    pub setup_ms: Option<u64>,
    pub stats: ClusterStats,
    pub failovers: Vec<Failover>,
    /// (partition, start ms, end ms): gaps between acknowledged acks=all
    /// writes of one partition while producers were producing.
    pub partition_unavailable_ms: Vec<(String, u64, u64)>,
    /// After the heal, how long until every partition acknowledged an
    /// acks=all write again (`None` if one never did).
    pub recovered_after_heal_ms: Option<u64>,
    /// Each broker at the end of the run, as its own getters see it: the
    /// quorum, then every workload partition. For reading a failure.
    pub final_state: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub scenario: String,
    pub seed: u64,
    /// Every bug switched on (the scenario's and the options').
    pub bugs: Vec<Bug>,
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
    /// With `disk.retention_bytes`: (sends, reads) the history forgot once
    /// retention had deleted their records from every replica.
    pub history_forgotten: (u64, u64),
    pub violations: Vec<Violation>,
    pub trace_hash: u64,
    pub trace_lines: u64,
    pub trace: Option<Vec<String>>,
    /// Cluster scenarios only.
    pub cluster: Option<ClusterReport>,
    /// `[groups]` scenarios only: what the group's members went through.
    pub groups: Option<GroupStats>,
    /// Every fault that took a partition leader (or an AZ) away, and when
    /// every partition took acks=all writes again.
    pub outages: Vec<Outage>,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn sim_seconds_per_wall_second(&self) -> f64 {
        self.simulated_ms as f64 / 1_000.0 / self.wall.as_secs_f64().max(1e-9)
    }
}

impl World {
    pub(super) fn report(self) -> RunReport {
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
        let start_ms = self
            .start_at
            .map_or(0, |t| (t - self.epoch).as_millis() as u64);
        for (producer, times) in &self.ack_times_ms {
            let mut last = start_ms;
            for t in times.iter().copied().chain([stop_ms]) {
                if t > last + gap_min && t <= stop_ms {
                    unavailable_windows_ms.push((*producer, last, t));
                }
                last = last.max(t);
            }
        }
        let cluster = self.cluster_report(gap_min, stop_ms);
        let groups = self.groups.as_ref().map(|g| g.stats.clone());
        let outages = self.liveness.into_outages();
        let simulated_ms = (self.now - self.epoch).as_millis() as u64;
        RunReport {
            scenario: self.scenario.name.clone(),
            seed: self.seed,
            bugs: self.bugs,
            swarm: self.swarm,
            schedule: self.schedule,
            events: self.events,
            simulated_ms,
            wall: Duration::ZERO,
            stats: self.stats,
            unavailable_windows_ms,
            bytes_by_az_pair,
            cross_az_bytes,
            history_forgotten: (self.history.forgotten_sends, self.history.forgotten_reads),
            violations: self.violations,
            trace_hash: self.trace.hash(),
            trace_lines: self.trace.lines(),
            trace: self.trace.finish(),
            cluster,
            groups,
            outages,
        }
    }

    /// One line per broker and per (broker, partition): what the core's
    /// getters say at the end.
    fn final_state(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (b, broker) in self.brokers.iter().enumerate() {
            let BrokerState::Up(node) = &broker.state else {
                lines.push(format!("broker {b}: down"));
                continue;
            };
            if let Some(s) = node.cluster_status() {
                lines.push(format!(
                    "broker {b}: quorum {:?} epoch {} leader {:?} hw {:?}; controller active {}; broker epoch {:?} fenced {}; metadata offset {}; unfenced brokers {:?}",
                    s.quorum_role,
                    s.quorum_epoch,
                    s.quorum_leader,
                    s.quorum_high_watermark,
                    s.controller_active,
                    s.broker_epoch,
                    s.broker_fenced,
                    s.metadata_offset,
                    s.unfenced_brokers
                ));
            }
            for (topic, partition) in &self.tps {
                // The role only of a partition the broker hosts: in the
                // 100-broker run 97% of these pairs are not hosted.
                let Some((start, hw, end)) = node.partition_offsets(topic, *partition) else {
                    continue;
                };
                if let Some((epoch, leads, isr)) = node.replica_role(topic, *partition) {
                    lines.push(format!(
                        "broker {b} {topic}-{partition}: {} epoch {epoch} isr {isr:?} log {start}..{end} hw {hw}",
                        if leads { "leader" } else { "follower" }
                    ));
                }
            }
        }
        lines
    }

    fn cluster_report(&self, gap_min: u64, stop_ms: u64) -> Option<ClusterReport> {
        let cluster = self.cluster.as_ref()?;
        let ms = |t: Instant| (t - self.epoch).as_millis() as u64;
        let start_ms = self.start_at.map_or(0, ms);
        let mut partition_unavailable_ms = Vec::new();
        for (i, times) in cluster.acks_all_ms.iter().enumerate() {
            let name = format!("{}-{}", self.tps[i].0, self.tps[i].1);
            let mut last = start_ms;
            for t in times.iter().copied().chain([stop_ms]) {
                if t > last + gap_min && t <= stop_ms {
                    partition_unavailable_ms.push((name.clone(), last, t));
                }
                last = last.max(t);
            }
        }
        let heal_ms = ms(self.heal_at);
        let firsts: Vec<Option<u64>> = cluster
            .acks_all_ms
            .iter()
            .map(|times| times.iter().find(|t| **t >= heal_ms).map(|t| t - heal_ms))
            .collect();
        let recovered_after_heal_ms = if firsts.iter().all(Option::is_some) {
            firsts.into_iter().flatten().max()
        } else {
            None
        };
        let mut failovers = cluster.failovers.clone();
        for (i, loss) in cluster.losses.iter().enumerate() {
            if let Some(loss) = loss {
                failovers.push(Failover {
                    tp: format!("{}-{}", self.tps[i].0, self.tps[i].1),
                    leader: loss.broker,
                    lost_at_ms: ms(loss.at),
                    recovered_at_ms: None,
                });
            }
        }
        Some(ClusterReport {
            final_state: self.final_state(),
            setup_ms: cluster.setup_done_at.map(ms),
            stats: cluster.stats.clone(),
            failovers,
            partition_unavailable_ms,
            recovered_after_heal_ms,
        })
    }
}

/// Simulated seconds per wall second: whole from 10 up, else with two
/// decimals (the 100-broker cluster runs near real time, and "0" or "1"
/// said nothing).
pub fn format_speed(ratio: f64) -> String {
    if ratio >= 10.0 {
        format!("{ratio:.0}")
    } else {
        format!("{ratio:.2}")
    }
}
