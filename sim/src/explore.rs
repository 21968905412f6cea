//! Explore: many seeds of many scenarios on all cores, with a progress bar
//! and a table; plus the one-run summary the CLI prints.

use crate::scenario::Scenario;
use crate::world::{
    run, Bug, ClusterReport, Outage, OutageKind, OutageTimes, RunOptions, RunReport, Violation,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// The command that re-runs one seed (`bugs`: the CLI's, not the
/// scenario file's own).
pub fn replay_command(scenario_arg: &str, seed: u64, bugs: &[Bug]) -> String {
    let bugs: String = bugs
        .iter()
        .map(|b| format!(" --bug {}", b.name()))
        .collect();
    format!("seedlog sim run {scenario_arg} --seed {seed}{bugs}")
}

/// The command that re-runs the seed of `report`: the scenario file
/// brings its own bugs, so only the others are flags.
fn replay_command_of(report: &RunReport, scenario: &[Bug], scenario_arg: &str) -> String {
    let cli: Vec<Bug> = report
        .bugs
        .iter()
        .copied()
        .filter(|b| !scenario.contains(b))
        .collect();
    replay_command(scenario_arg, report.seed, &cli)
}

/// The one-run summary; `scenario_bugs` are the bugs the scenario file
/// switches on itself (left out of the replay command).
pub fn summary(report: &RunReport, scenario_arg: &str, scenario_bugs: &[Bug]) -> String {
    let mut s = String::new();
    let st = &report.stats;
    let _ = writeln!(
        s,
        "scenario {} seed {}{}",
        report.scenario,
        report.seed,
        if report.bugs.is_empty() {
            String::new()
        } else {
            format!(" bug {}", crate::bugs::names(&report.bugs))
        }
    );
    let _ = writeln!(s, "swarm: {}", report.swarm);
    let _ = writeln!(s, "faults: {} scheduled", report.schedule.len());
    let _ = writeln!(
        s,
        "events {}  simulated {:.1} s  wall {:.3} s  speed {} simulated s / wall s",
        report.events,
        report.simulated_ms as f64 / 1000.0,
        report.wall.as_secs_f64(),
        crate::world::format_speed(report.sim_seconds_per_wall_second())
    );
    let _ = writeln!(
        s,
        "sends {} (acked {}, after heal {}, acks=0 {}, failed {}, indeterminate {})  records read {}  duplicates {}",
        st.sends, st.acked, st.acked_after_heal, st.unacked_acks0, st.failed, st.indeterminate, st.records_read, st.duplicates
    );
    let _ = writeln!(
        s,
        "crashes {} (torn {}, process kills {})  restarts {}  flushes {} (failed {})  connections opened {} broken {}  hw regressions allowed {}",
        st.crashes, st.torn_crashes, st.process_kills, st.restarts, st.flushes, st.flush_failures, st.connections_opened, st.connections_broken, st.hw_regressions_allowed
    );
    let total: u64 = report
        .unavailable_windows_ms
        .iter()
        .map(|(_, a, b)| b - a)
        .sum();
    let longest = report
        .unavailable_windows_ms
        .iter()
        .map(|(_, a, b)| b - a)
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        s,
        "unavailability windows (per producer) {} (total {} ms, longest {} ms)",
        report.unavailable_windows_ms.len(),
        total,
        longest
    );
    let pairs: Vec<String> = report
        .bytes_by_az_pair
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(
        s,
        "bytes: cross-AZ {}  by AZ pair: {}  messages {} (codec round trips {})",
        report.cross_az_bytes,
        pairs.join(" "),
        st.messages,
        st.codec_roundtrips
    );
    if let Some(c) = &report.cluster {
        cluster_summary(&mut s, c);
        if !report.violations.is_empty() {
            let _ = writeln!(s, "final state:");
            for line in &c.final_state {
                let _ = writeln!(s, "  {line}");
            }
        }
    }
    if let Some(g) = &report.groups {
        let _ = writeln!(
            s,
            "group: joins {}  assignments {}  commits accepted {} refused {}  leaves {} crashes {} stalls {}  assignments lost {}  coordinator changes seen {}  stable {} ms after the heal",
            g.joins,
            g.rebalances_seen,
            g.commits_accepted,
            g.commits_refused,
            g.leaves,
            g.crashes,
            g.pauses,
            g.lost_assignments,
            g.coordinator_moves,
            g.stable_after_heal_ms
                .map_or("never".to_string(), |ms| ms.to_string())
        );
    }
    outage_summary(&mut s, &report.outages);
    let _ = writeln!(
        s,
        "trace: {} lines, hash {:016x}",
        report.trace_lines, report.trace_hash
    );
    if report.violations.is_empty() {
        let _ = writeln!(s, "checkers: all passed");
    } else {
        for v in &report.violations {
            let _ = writeln!(
                s,
                "VIOLATION {} at event {} ({} ms): {}",
                v.checker, v.event, v.at_ms, v.message
            );
        }
        let _ = writeln!(
            s,
            "replay: {}",
            replay_command_of(report, scenario_bugs, scenario_arg)
        );
    }
    s
}

fn cluster_summary(s: &mut String, c: &ClusterReport) {
    let st = &c.stats;
    let _ = writeln!(
        s,
        "cluster: setup {}  leader changes {} (epoch bumps {}, leaders lost to faults {})  graceful stops {} (unclean {})  hw resets at restart {}  acks=1 writes lost {}",
        c.setup_ms.map_or("never finished".to_string(), |ms| format!("{ms} ms")),
        st.leader_changes,
        st.leader_epoch_bumps,
        st.leader_losses,
        st.graceful_stops,
        st.unclean_stops,
        st.hw_restart_resets,
        st.acks1_lost
    );
    let _ = writeln!(
        s,
        "peers: requests {}  connections opened {} broken {}  unreachable reported {}",
        st.peer_requests,
        st.peer_connections_opened,
        st.peer_connections_broken,
        st.peer_unreachable
    );
    let took: Vec<u64> = c.failovers.iter().filter_map(|f| f.took_ms()).collect();
    let unrecovered = c.failovers.len() - took.len();
    let _ = writeln!(
        s,
        "fail-over (leader lost -> first acks=all ack): {} ({} never recovered){}",
        c.failovers.len(),
        unrecovered,
        if took.is_empty() {
            String::new()
        } else {
            format!(
                "  min {} ms  max {} ms  mean {} ms",
                took.iter().min().expect("non-empty"),
                took.iter().max().expect("non-empty"),
                took.iter().sum::<u64>() / took.len() as u64
            )
        }
    );
    for f in &c.failovers {
        let _ = writeln!(
            s,
            "  {} led by broker {}: lost at {} ms, {}",
            f.tp,
            f.leader,
            f.lost_at_ms,
            f.took_ms()
                .map_or("no acks=all write since".to_string(), |t| format!(
                    "took {t} ms"
                ))
        );
    }
    let total: u64 = c
        .partition_unavailable_ms
        .iter()
        .map(|(_, a, b)| b - a)
        .sum();
    let longest = c
        .partition_unavailable_ms
        .iter()
        .map(|(_, a, b)| b - a)
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        s,
        "partition unavailability (no acks=all ack) {} windows (total {total} ms, longest {longest} ms)  every partition acks=all again {} after the heal",
        c.partition_unavailable_ms.len(),
        c.recovered_after_heal_ms
            .map_or("never".to_string(), |ms| format!("{ms} ms"))
    );
}

/// The liveness figure of one run: each fault that took a leader (or an
/// AZ) away, and how long until every partition took acks=all writes again.
fn outage_summary(s: &mut String, outages: &[Outage]) {
    if outages.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "liveness (fault -> every partition led and acks=all acknowledged): {} outages",
        outages.len()
    );
    for o in outages {
        let _ = writeln!(
            s,
            "  {} by {} of brokers {:?} at {} ms ({} partition leaders): {}",
            o.kind.name(),
            o.fault,
            o.brokers,
            o.at_ms,
            o.leaders_lost,
            o.took_ms()
                .map_or("never recovered".to_string(), |t| format!("took {t} ms"))
        );
    }
}

pub struct Failure {
    pub scenario_arg: String,
    pub seed: u64,
    pub violations: Vec<Violation>,
}

#[derive(Default)]
pub struct ScenarioTotals {
    pub seeds: u64,
    pub failures: u64,
    pub simulated_ms: u64,
    pub wall: Duration,
    pub events: u64,
    /// checker -> failing seeds
    pub by_checker: BTreeMap<String, u64>,
    /// The liveness figure over every seed, by what the fault took away.
    pub outages: BTreeMap<OutageKind, OutageTimes>,
}

pub struct ExploreReport {
    pub totals: BTreeMap<String, ScenarioTotals>,
    pub failures: Vec<Failure>,
    pub wall: Duration,
}

impl ExploreReport {
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<24} {:>7} {:>8} {:>12} {:>14}  failures by checker",
            "scenario", "seeds", "failed", "events", "sim s/wall s"
        );
        for (name, t) in &self.totals {
            let speed = t.simulated_ms as f64 / 1000.0 / t.wall.as_secs_f64().max(1e-9);
            let by: Vec<String> = t
                .by_checker
                .iter()
                .map(|(c, n)| format!("{c}={n}"))
                .collect();
            let _ = writeln!(
                s,
                "{name:<24} {:>7} {:>8} {:>12} {speed:>14.0}  {}",
                t.seeds,
                t.failures,
                t.events,
                by.join(" ")
            );
        }
        self.liveness_table(&mut s);
        let _ = writeln!(s, "wall time {:.1} s", self.wall.as_secs_f64());
        s
    }

    /// Every scenario's outages, then all scenarios together, by kind:
    /// how long from the fault until every partition had a leader and
    /// acknowledged an acks=all write again. Nothing when no run lost a
    /// leader.
    fn liveness_table(&self, s: &mut String) {
        let mut all: BTreeMap<OutageKind, OutageTimes> = BTreeMap::new();
        let mut rows = Vec::new();
        for (name, t) in &self.totals {
            for (kind, times) in &t.outages {
                all.entry(*kind).or_default().merge(times);
                rows.push((name.as_str(), *kind, times));
            }
        }
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "liveness: fault -> every partition led and acks=all acknowledged again"
        );
        let _ = writeln!(
            s,
            "{:<24} {:<12} {:>7} {:>6} {:>10} {:>10} {:>10}",
            "scenario", "lost", "count", "never", "median ms", "p99 ms", "worst ms"
        );
        let all_rows: Vec<(&str, OutageKind, &OutageTimes)> =
            all.iter().map(|(k, t)| ("all", *k, t)).collect();
        let show = |ms: Option<u64>| ms.map_or("-".to_string(), |ms| ms.to_string());
        for (name, kind, times) in rows.into_iter().chain(all_rows) {
            let _ = writeln!(
                s,
                "{name:<24} {:<12} {:>7} {:>6} {:>10} {:>10} {:>10}",
                kind.name(),
                times.count(),
                times.never,
                show(times.percentile_ms(50)),
                show(times.percentile_ms(99)),
                show(times.percentile_ms(100)),
            );
        }
    }
}

/// Without a terminal (CI logs) progress is this many lines per run
/// instead of a bar.
const PROGRESS_LINES: usize = 20;

/// A line beside the progress bar, or on stderr when there is none
/// (a hidden bar prints nothing).
fn report_line(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// Runs every seed of `seeds` (those of this shard) for every scenario;
/// failures are printed as they are found (with their replay command),
/// progress as a bar on a terminal and as a line every 5% elsewhere.
/// `shard` is (index, count): seed s belongs to shard s % count.
pub fn explore(
    scenarios: &[(String, Scenario)],
    seeds: Range<u64>,
    jobs: usize,
    shard: Option<(u64, u64)>,
    bugs: &[Bug],
    progress: bool,
) -> ExploreReport {
    let started = std::time::Instant::now();
    let work: Vec<(usize, u64)> = scenarios
        .iter()
        .enumerate()
        .flat_map(|(i, _)| seeds.clone().map(move |s| (i, s)))
        .filter(|(_, s)| shard.is_none_or(|(index, count)| s % count == index))
        .collect();
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let scenarios_arc: Arc<Vec<(String, Scenario)>> = Arc::new(scenarios.to_vec());
    let (tx, rx) = mpsc::channel::<(usize, u64, Result<RunReport, String>)>();
    let bar = if progress {
        ProgressBar::new(work.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds  {elapsed_precise} eta {eta}  {msg}",
        )
        .expect("template"),
    );
    let mut handles = Vec::new();
    for j in 0..jobs.max(1) {
        let (work, next, scenarios, tx, bugs) = (
            work.clone(),
            next.clone(),
            scenarios_arc.clone(),
            tx.clone(),
            bugs.to_vec(),
        );
        let handle = std::thread::Builder::new()
            .name(format!("sim-explore-{j}"))
            .spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((scenario, seed)) = work.get(i).copied() else {
                    break;
                };
                let options = RunOptions {
                    bugs: bugs.clone(),
                    ..RunOptions::default()
                };
                let result =
                    std::panic::catch_unwind(|| run(&scenarios[scenario].1, seed, &options))
                        .map_err(|p| crate::world::panic_message(&p));
                if tx.send((scenario, seed, result)).is_err() {
                    break;
                }
            })
            .expect("spawn explore thread");
        handles.push(handle);
    }
    drop(tx);
    let mut totals: BTreeMap<String, ScenarioTotals> = BTreeMap::new();
    let mut failures = Vec::new();
    let (mut done, total) = (0usize, work.len().max(1));
    for (scenario, seed, result) in rx {
        let (arg, s) = &scenarios[scenario];
        let t = totals.entry(s.name.clone()).or_default();
        t.seeds += 1;
        let violations = match result {
            Ok(report) => {
                t.simulated_ms += report.simulated_ms;
                t.wall += report.wall;
                t.events += report.events;
                for outage in &report.outages {
                    t.outages.entry(outage.kind).or_default().add(outage);
                }
                report.violations
            }
            Err(message) => vec![Violation {
                checker: "simulator_panic".to_string(),
                event: 0,
                at_ms: 0,
                message,
            }],
        };
        if !violations.is_empty() {
            t.failures += 1;
            for v in &violations {
                *t.by_checker.entry(v.checker.clone()).or_default() += 1;
            }
            // As it happens, not only in the final list: a long run that is
            // stopped (or a CI job that times out) still names its failures.
            let checkers: Vec<&str> = violations.iter().map(|v| v.checker.as_str()).collect();
            report_line(
                &bar,
                format!(
                    "FAIL {}  # {}",
                    replay_command(arg, seed, bugs),
                    checkers.join(", ")
                ),
            );
            failures.push(Failure {
                scenario_arg: arg.clone(),
                seed,
                violations,
            });
        }
        bar.inc(1);
        bar.set_message(format!("{} failing", failures.len()));
        done += 1;
        if !progress && done * PROGRESS_LINES / total != (done - 1) * PROGRESS_LINES / total {
            eprintln!(
                "explore: {done}/{total} seeds, {} failing, {:.0} s",
                failures.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    for h in handles {
        h.join().expect("explore threads catch their panics");
    }
    bar.finish_and_clear();
    failures.sort_by(|a, b| (&a.scenario_arg, a.seed).cmp(&(&b.scenario_arg, b.seed)));
    ExploreReport {
        totals,
        failures,
        wall: started.elapsed(),
    }
}
