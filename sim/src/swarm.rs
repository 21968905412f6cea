//! The swarm: every tunable of a run, drawn from the seed within the ranges
//! the scenario allows (TigerBeetle's VOPR does the same), so that a seed
//! range explores many configurations, not one. Printed next to the seed.
//!
//! Every parameter consumes the same number of draws whatever the scenario
//! says, so that a shrunk scenario (random faults zeroed) keeps the rest of
//! the swarm identical for the same seed.

use crate::scenario::Scenario;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Serialize)]
pub struct Swarm {
    pub intra_az_latency_us: [u64; 2],
    pub cross_az_latency_us: [u64; 2],
    pub flush_latency_us: [u64; 2],
    pub segment_bytes: u64,
    pub produce_interval_ms: [u64; 2],
    /// (acks, weight)
    pub acks_weights: Vec<(i16, u32)>,
    pub records_per_send_max: u32,
    pub in_flight_max: u32,
    pub fetch_max_wait_ms: u64,
    pub request_timeout_ms: u64,
    pub reconnect_backoff_ms: [u64; 2],
    pub codec_roundtrip_percent: u32,
    pub crash_per_min: f64,
    pub torn_ratio: f64,
    pub connection_reset_per_min: f64,
    pub partition_per_min: f64,
    pub clog_per_min: f64,
    pub disk_full_per_min: f64,
    pub slow_flush_per_min: f64,
    pub pause_per_min: f64,
    pub skew_per_min: f64,
    /// Per broker.
    pub drift_ppm: Vec<i64>,
    pub process_kill_per_min: f64,
    /// Cluster scenarios only (absent from standalone traces, so their
    /// bytes are those of before clusters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSwarm>,
}

/// The swarm's cluster parameters.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterSwarm {
    /// How long a broker takes to notice that a peer connection died
    /// silently (power loss, a cut): its connect timeout and its
    /// keep-alive / request timeout on an established connection.
    pub peer_timeout_ms: u64,
    pub isolate_per_min: f64,
    pub split_per_min: f64,
    pub shutdown_per_min: f64,
    /// Clients re-read Metadata this often even without an error
    /// (`metadata.max.age.ms`).
    pub metadata_max_age_ms: u64,
}

/// A sub-range of `[lo, hi]`: latency distributions differ per seed.
fn sub_range(rng: &mut ChaCha8Rng, [lo, hi]: [u64; 2]) -> [u64; 2] {
    let a = lo + ((hi - lo) as f64 * rng.gen::<f64>()) as u64;
    let b = lo + ((hi - lo) as f64 * rng.gen::<f64>()) as u64;
    [a.min(b), a.max(b)]
}

fn in_range(rng: &mut ChaCha8Rng, [lo, hi]: [u64; 2]) -> u64 {
    lo + ((hi - lo) as f64 * rng.gen::<f64>()) as u64
}

/// A rate in `[0, max]`; a quarter of seeds turn the fault off entirely.
fn rate(rng: &mut ChaCha8Rng, max: f64) -> f64 {
    let off = rng.gen_bool(0.25);
    let r = max * rng.gen::<f64>();
    if off {
        0.0
    } else {
        r
    }
}

impl Swarm {
    pub fn derive(rng: &mut ChaCha8Rng, scenario: &Scenario) -> Swarm {
        let t = &scenario.topology;
        let w = &scenario.workload;
        let f = &scenario.faults.random;
        let acks_weights = w
            .acks
            .iter()
            .map(|a| (*a, 1 + rng.gen_range(0..10u32)))
            .collect();
        let drift_max = f.drift_ppm_max as i64;
        Swarm {
            intra_az_latency_us: sub_range(rng, t.intra_az_latency_us),
            cross_az_latency_us: sub_range(rng, t.cross_az_latency_us),
            flush_latency_us: sub_range(rng, scenario.disk.flush_latency_us),
            segment_bytes: in_range(rng, scenario.disk.segment_bytes).max(1_024),
            produce_interval_ms: sub_range(rng, w.produce_interval_ms),
            acks_weights,
            records_per_send_max: 1 + rng.gen_range(0..w.records_per_send_max),
            in_flight_max: 1 + rng.gen_range(0..w.in_flight_max),
            fetch_max_wait_ms: in_range(rng, w.fetch_max_wait_ms),
            request_timeout_ms: in_range(rng, w.request_timeout_ms),
            reconnect_backoff_ms: sub_range(rng, [10, 1_000]),
            // From 0 this draws as it did before the minimum existed.
            codec_roundtrip_percent: rng
                .gen_range(w.codec_roundtrip_percent_min..=w.codec_roundtrip_percent),
            crash_per_min: rate(rng, f.crash_per_min),
            torn_ratio: f.torn_ratio * rng.gen::<f64>(),
            connection_reset_per_min: rate(rng, f.connection_reset_per_min),
            partition_per_min: rate(rng, f.partition_per_min),
            clog_per_min: rate(rng, f.clog_per_min),
            disk_full_per_min: rate(rng, f.disk_full_per_min),
            slow_flush_per_min: rate(rng, f.slow_flush_per_min),
            pause_per_min: rate(rng, f.pause_per_min),
            skew_per_min: rate(rng, f.skew_per_min),
            drift_ppm: t
                .brokers
                .iter()
                .map(|_| {
                    let d = rng.gen::<f64>();
                    ((2.0 * d - 1.0) * drift_max as f64) as i64
                })
                .collect(),
            // Drawn last: parameters added later go at the end, so existing
            // seeds keep their swarm.
            process_kill_per_min: rate(rng, f.process_kill_per_min),
            cluster: None,
        }
        .with_cluster(rng, scenario)
    }

    /// Drawn after everything else and only for cluster scenarios, so a
    /// standalone seed keeps its swarm.
    fn with_cluster(mut self, rng: &mut ChaCha8Rng, scenario: &Scenario) -> Swarm {
        if scenario.cluster.is_some() {
            let f = &scenario.faults.random;
            self.cluster = Some(ClusterSwarm {
                peer_timeout_ms: in_range(rng, [300, 3_000]),
                isolate_per_min: rate(rng, f.isolate_per_min),
                split_per_min: rate(rng, f.split_per_min),
                shutdown_per_min: rate(rng, f.shutdown_per_min),
                metadata_max_age_ms: in_range(rng, [2_000, 20_000]),
            });
        }
        self
    }
}

impl fmt::Display for Swarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = self.intra_az_latency_us;
        let [c, d] = self.cross_az_latency_us;
        let [e, g] = self.flush_latency_us;
        let [h, i] = self.produce_interval_ms;
        write!(
            f,
            "latency_intra_az_us={a}..{b} latency_cross_az_us={c}..{d} flush_us={e}..{g} \
             segment_bytes={} produce_interval_ms={h}..{i} acks_weights={:?} records_per_send_max={} \
             in_flight_max={} fetch_max_wait_ms={} request_timeout_ms={} codec_roundtrip_percent={} \
             per_min: crash={:.2} (torn {:.2}) reset={:.2} partition={:.2} clog={:.2} disk_full={:.2} \
             slow_flush={:.2} pause={:.2} skew={:.2} process_kill={:.2} drift_ppm={:?}",
            self.segment_bytes,
            self.acks_weights,
            self.records_per_send_max,
            self.in_flight_max,
            self.fetch_max_wait_ms,
            self.request_timeout_ms,
            self.codec_roundtrip_percent,
            self.crash_per_min,
            self.torn_ratio,
            self.connection_reset_per_min,
            self.partition_per_min,
            self.clog_per_min,
            self.disk_full_per_min,
            self.slow_flush_per_min,
            self.pause_per_min,
            self.skew_per_min,
            self.process_kill_per_min,
            self.drift_ppm,
        )?;
        if let Some(c) = &self.cluster {
            write!(
                f,
                " cluster: peer_timeout_ms={} metadata_max_age_ms={} per_min: isolate={:.2} split={:.2} shutdown={:.2}",
                c.peer_timeout_ms,
                c.metadata_max_age_ms,
                c.isolate_per_min,
                c.split_per_min,
                c.shutdown_per_min
            )?;
        }
        Ok(())
    }
}
