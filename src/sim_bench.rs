//! `seedlog sim bench`: simulation speed (simulated seconds per wall
//! second) and peak memory, seeds run one after another on one thread so
//! the figure is per core.

use anyhow::Context;
use seedlog_sim::{RunOptions, Scenario};
use std::time::Instant;

pub struct BenchArgs {
    pub scenario: String,
    pub seeds: std::ops::Range<u64>,
    /// Replaces the scenario's fault phase (simulated seconds): long runs
    /// show whether memory stays bounded.
    pub simulated_s: Option<u64>,
}

/// Runs the benchmark; returns the exit code (1 when a seed fails a
/// checker: a speed figure of a broken run means nothing).
pub fn run(args: BenchArgs) -> anyhow::Result<i32> {
    let mut scenario = Scenario::resolve(&args.scenario)?;
    if let Some(s) = args.simulated_s {
        anyhow::ensure!(s > 0, "--simulated-s must be positive");
        scenario.phases.fault_ms = s.checked_mul(1000).context("--simulated-s too large")?;
    }
    println!(
        "sim bench: {} seeds {}..{} on one thread (fault phase {} s, liveness {} s)",
        scenario.name,
        args.seeds.start,
        args.seeds.end,
        scenario.phases.fault_ms / 1000,
        scenario.phases.liveness_ms / 1000
    );
    println!(
        "{:>6} {:>10} {:>12} {:>9} {:>12} {:>12}",
        "seed", "events", "simulated s", "wall s", "sim s/wall s", "events/s"
    );
    let (mut events, mut simulated_ms, mut wall_s, mut failed) = (0u64, 0u64, 0f64, 0usize);
    for seed in args.seeds.clone() {
        let started = Instant::now();
        let report = seedlog_sim::run(&scenario, seed, &RunOptions::default());
        let wall = started.elapsed().as_secs_f64();
        println!(
            "{seed:>6} {:>10} {:>12.1} {:>9.2} {:>12} {:>12.0}{}",
            report.events,
            report.simulated_ms as f64 / 1000.0,
            wall,
            speed(report.simulated_ms as f64 / 1000.0 / wall),
            report.events as f64 / wall,
            if report.passed() { "" } else { "  FAILED" }
        );
        events += report.events;
        simulated_ms += report.simulated_ms;
        wall_s += wall;
        failed += usize::from(!report.passed());
    }
    println!(
        "{:>6} {events:>10} {:>12.1} {wall_s:>9.2} {:>12} {:>12.0}",
        "all",
        simulated_ms as f64 / 1000.0,
        speed(simulated_ms as f64 / 1000.0 / wall_s),
        events as f64 / wall_s
    );
    match peak_rss_kb() {
        Some(kb) => println!("peak RSS {:.1} MB", kb as f64 / 1024.0),
        None => println!("peak RSS unknown (no /proc/self/status)"),
    }
    if failed > 0 {
        println!("{failed} seeds failed a checker: run them with `seedlog sim run`");
        return Ok(1);
    }
    Ok(0)
}

fn speed(ratio: f64) -> String {
    seedlog_sim::world::format_speed(ratio)
}

/// The process's high-water resident set (`VmHWM`), in KiB.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
