//! What a run reports: its options, its violations and its statistics,
//! and the known bugs it can plant.

use super::*;

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
