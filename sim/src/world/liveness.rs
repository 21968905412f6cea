//! The liveness figure of issue #5: for every fault that takes a partition
//! leader away (a broker's crash, kill, shutdown, pause, isolation or
//! minority split) or a whole AZ (power or network), the time from the
//! fault until every partition has a leader again and has acknowledged an
//! acks=all write.
//!
//! One outage per fault, not per partition (`Failover` is per partition):
//! the question is how long the application waits until the whole topic
//! takes safe writes again. Acknowledgements from the brokers the fault
//! took out count only once the fault has ended (a paused or restarted
//! leader that comes back is recovery too; an answer it sent before it
//! was cut off is not). Nothing here emits trace lines: measuring does not
//! change a run's trace.

use super::*;

/// Outages measured at once; faults are bounded per run, and an outage
/// that never recovers stays open to the end, so this is generous.
const OUTAGES_OPEN_MAX: usize = 4_096;

/// What a fault took away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageKind {
    /// One broker (or a minority side of a split) that led partitions.
    LeaderLost,
    /// Every broker of an AZ: an outage, or the AZ cut off both ways from
    /// every other AZ.
    AzLost,
}

impl OutageKind {
    pub fn name(self) -> &'static str {
        match self {
            OutageKind::LeaderLost => "leader lost",
            OutageKind::AzLost => "AZ lost",
        }
    }
}

/// One fault that took at least one partition leader away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outage {
    pub kind: OutageKind,
    /// The fault, as the scenario names its kind (`crash`, `az_outage`...).
    pub fault: String,
    /// The brokers it took out.
    pub brokers: Vec<usize>,
    /// Partitions whose leader (as clients last learned it) was among them.
    pub leaders_lost: u32,
    pub at_ms: u64,
    /// When the last partition acknowledged an acks=all write again;
    /// `None`: some partition never did.
    pub recovered_at_ms: Option<u64>,
}

impl Outage {
    pub fn took_ms(&self) -> Option<u64> {
        self.recovered_at_ms.map(|r| r - self.at_ms)
    }
}

struct OpenOutage {
    /// Index in `LivenessState::outages`.
    outage: usize,
    brokers: Vec<BrokerId>,
    /// The fault ends here: from then on its brokers' acks count too.
    until: Instant,
    /// Per partition (index in `tps`): no qualifying ack yet.
    waiting: Vec<bool>,
    waiting_count: usize,
}

#[derive(Default)]
pub(super) struct LivenessState {
    open: Vec<OpenOutage>,
    outages: Vec<Outage>,
}

impl LivenessState {
    pub(super) fn into_outages(self) -> Vec<Outage> {
        self.outages
    }
}

impl World {
    /// The leader of partition `tp` as the world knows it: what clients
    /// last learned in a cluster; the only broker otherwise.
    fn known_leader(&self, tp: usize) -> Option<BrokerId> {
        match &self.cluster {
            Some(cluster) => cluster.leaders[tp].and_then(|(b, _)| b),
            None => (self.brokers.len() == 1).then_some(0),
        }
    }

    /// A fault took `brokers` out until `until`: if they led any partition,
    /// an outage starts now.
    pub(super) fn outage_begins(
        &mut self,
        kind: OutageKind,
        fault: FaultKind,
        brokers: &[BrokerId],
        until: Instant,
    ) {
        if brokers.is_empty() {
            return;
        }
        let leaders_lost = (0..self.tps.len())
            .filter(|tp| self.known_leader(*tp).is_some_and(|b| brokers.contains(&b)))
            .count();
        if leaders_lost == 0 {
            return;
        }
        assert!(
            self.liveness.open.len() < OUTAGES_OPEN_MAX,
            "open outages are bounded"
        );
        let fault = serde_json::to_value(fault)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .expect("a fault kind serializes as its name");
        let at_ms = self.ms();
        let tps = self.tps.len();
        let l = &mut self.liveness;
        l.outages.push(Outage {
            kind,
            fault,
            brokers: brokers.to_vec(),
            leaders_lost: leaders_lost as u32,
            at_ms,
            recovered_at_ms: None,
        });
        l.open.push(OpenOutage {
            outage: l.outages.len() - 1,
            brokers: brokers.to_vec(),
            until,
            waiting: vec![true; tps],
            waiting_count: tps,
        });
    }

    /// An acks=all write to partition `tp` acknowledged by `broker`: each
    /// open outage it counts for stops waiting for `tp`; an outage waiting
    /// for no partition is over.
    pub(super) fn outage_ack(&mut self, tp: usize, broker: BrokerId) {
        let (now, at_ms) = (self.now, self.ms());
        let l = &mut self.liveness;
        for open in &mut l.open {
            let counts = !open.brokers.contains(&broker) || now >= open.until;
            if counts && open.waiting[tp] {
                open.waiting[tp] = false;
                open.waiting_count -= 1;
                if open.waiting_count == 0 {
                    let outage = &mut l.outages[open.outage];
                    assert!(outage.recovered_at_ms.is_none(), "an outage ends once");
                    assert!(at_ms >= outage.at_ms, "recovery follows the fault");
                    outage.recovered_at_ms = Some(at_ms);
                }
            }
        }
        l.open.retain(|o| o.waiting_count > 0);
    }

    /// AZs (with brokers) cut off both ways from every other AZ now.
    pub(super) fn isolated_azs(&self) -> BTreeSet<usize> {
        let now = self.now;
        let cut = |from: usize, to: usize| {
            self.cuts
                .iter()
                .any(|c| c.from == from && c.to == to && c.until > now)
        };
        let azs = self.az_names.len();
        (0..azs)
            .filter(|a| self.brokers.iter().any(|b| b.az == *a))
            .filter(|a| {
                azs > 1
                    && (0..azs)
                        .filter(|o| o != a)
                        .all(|o| cut(*a, o) && cut(o, *a))
            })
            .collect()
    }

    /// A network partition just started: every AZ it cut off completely
    /// (and was not already) is lost until the partition's end.
    pub(super) fn az_cut_off(&mut self, before: &BTreeSet<usize>, until: Instant) {
        if self.cluster.is_none() {
            // A lone broker cut off from some clients still serves the
            // others: not a leader lost.
            return;
        }
        for az in self.isolated_azs().difference(before) {
            let brokers: Vec<BrokerId> = (0..self.brokers.len())
                .filter(|b| self.brokers[*b].az == *az)
                .collect();
            self.outage_begins(OutageKind::AzLost, FaultKind::Partition, &brokers, until);
        }
    }
}

/// Count, never-recovered count and distribution of outage times: what
/// `explore` prints per scenario and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutageTimes {
    /// Recovery times, ms, in the order they were added.
    pub took_ms: Vec<u64>,
    /// Outages with no recovery before the run ended.
    pub never: u64,
}

impl OutageTimes {
    pub fn add(&mut self, outage: &Outage) {
        match outage.took_ms() {
            Some(ms) => self.took_ms.push(ms),
            None => self.never += 1,
        }
    }

    pub fn merge(&mut self, other: &OutageTimes) {
        self.took_ms.extend_from_slice(&other.took_ms);
        self.never += other.never;
    }

    pub fn count(&self) -> u64 {
        self.took_ms.len() as u64 + self.never
    }

    /// The nearest-rank percentile `p` (0..=100) of the recovery times.
    pub fn percentile_ms(&self, p: u32) -> Option<u64> {
        assert!(p <= 100, "a percentile is at most 100");
        if self.took_ms.is_empty() {
            return None;
        }
        let mut sorted = self.took_ms.clone();
        sorted.sort_unstable();
        let rank = (p as usize * sorted.len()).div_ceil(100).max(1);
        Some(sorted[rank - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_and_never_counts_apart() {
        let mut t = OutageTimes::default();
        assert_eq!(t.percentile_ms(50), None);
        for (i, took) in [40, 10, 30, 20].into_iter().enumerate() {
            t.add(&Outage {
                kind: OutageKind::LeaderLost,
                fault: "crash".to_string(),
                brokers: vec![0],
                leaders_lost: 1,
                at_ms: 100 * i as u64,
                recovered_at_ms: Some(100 * i as u64 + took),
            });
        }
        t.add(&Outage {
            kind: OutageKind::AzLost,
            fault: "az_outage".to_string(),
            brokers: vec![1],
            leaders_lost: 2,
            at_ms: 5,
            recovered_at_ms: None,
        });
        assert_eq!(t.count(), 5);
        assert_eq!(t.never, 1);
        assert_eq!(t.percentile_ms(0), Some(10));
        assert_eq!(t.percentile_ms(50), Some(20));
        assert_eq!(t.percentile_ms(75), Some(30));
        assert_eq!(t.percentile_ms(99), Some(40));
        assert_eq!(t.percentile_ms(100), Some(40));
    }
}
