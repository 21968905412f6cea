//! The summary of every scenario at a fixed seed, snapshot-tested: any
//! change in what the core or the simulator does shows up here as a diff to
//! review (`cargo insta review`), not as silent drift. Wall-clock figures are
//! left out; everything else is deterministic.

use seedlog_sim::{run, RunOptions, RunReport, Scenario};

const SEED: u64 = 1;

fn deterministic_summary(name: &str, report: &RunReport) -> String {
    let windows: Vec<String> = report
        .unavailable_windows_ms
        .iter()
        .map(|(p, a, b)| format!("producer {p}: {a}..{b} ms"))
        .collect();
    let violations: Vec<String> = report
        .violations
        .iter()
        .map(|v| format!("{} at event {}: {}", v.checker, v.event, v.message))
        .collect();
    // Cluster scenarios add their report; standalone ones keep the
    // snapshots they had before clusters.
    let cluster = report
        .cluster
        .as_ref()
        .map(|c| format!("cluster {c:#?}\n"))
        .unwrap_or_default();
    format!(
        "scenario {name} seed {SEED}\nevents {}\nsimulated_ms {}\nfaults {}\nstats {:#?}\nunavailable windows {:#?}\ncross-AZ bytes {}\nbytes by AZ pair {:#?}\nviolations {:#?}\n{cluster}trace {} lines, hash {:016x}\n",
        report.events,
        report.simulated_ms,
        report.schedule.len(),
        report.stats,
        windows,
        report.cross_az_bytes,
        report.bytes_by_az_pair,
        violations,
        report.trace_lines,
        report.trace_hash,
    )
}

#[test]
fn scenario_summaries_at_a_fixed_seed() {
    for name in [
        "steady-state",
        "broker-crash",
        "disk-full",
        "clock-skew",
        "flaky-network",
        "az-isolation",
        "process-kill",
        "leader-crash",
        "minority-partition",
        "majority-partition",
        "az-outage",
        "rolling-restart",
        "fast-failover",
        "cluster-steady-state",
    ] {
        let scenario = Scenario::resolve(name).unwrap_or_else(|e| panic!("{e}"));
        let report = run(&scenario, SEED, &RunOptions::default());
        assert!(report.passed(), "{name}: {:?}", report.violations);
        insta::assert_snapshot!(name, deterministic_summary(name, &report));
    }
}
