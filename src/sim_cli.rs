//! `seedlog sim`: run, replay, explore and shrink simulated scenarios. The
//! work lives in seedlog-sim; this is flag parsing and exit codes.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use seedlog_sim::explore::{explore, replay_command, summary};
use seedlog_sim::replay::{replay, ReplayOutcome};
use seedlog_sim::{Bug, RunOptions, Scenario};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct SimArgs {
    #[command(subcommand)]
    command: SimCommand,
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Run one seed of a scenario and print a summary; exit 1 on a violation.
    Run {
        /// A scenario file, or a name under scenarios/.
        scenario: String,
        #[arg(long)]
        seed: u64,
        /// Write the trace (JSON Lines) here.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Switch a known bug back on (see `seedlog sim bugs`); repeatable.
        #[arg(long)]
        bug: Vec<String>,
    },
    /// Re-run a trace's scenario and seed; prove the trace identical or name
    /// the first event that differs.
    Replay { trace: PathBuf },
    /// Run a range of seeds over one or more scenarios in parallel.
    Explore {
        #[arg(required = true)]
        scenarios: Vec<String>,
        /// A range A..B (B excluded).
        #[arg(long, default_value = "0..100")]
        seeds: String,
        /// Threads; defaults to the number of cores.
        #[arg(long)]
        jobs: Option<usize>,
        /// I/N: run only the seeds s with s % N == I.
        #[arg(long)]
        shard: Option<String>,
        #[arg(long)]
        bug: Vec<String>,
    },
    /// Minimise the fault schedule of a failing seed into a scenario file.
    Shrink {
        scenario: String,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        bug: Vec<String>,
        /// Where to write the shrunk scenario.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Simulation runs the shrinker may spend.
        #[arg(long, default_value_t = 200)]
        runs_max: u32,
        /// Keep this checker failing (default: the run's first violation).
        #[arg(long)]
        checker: Option<String>,
    },
    /// Simulation speed on one thread (simulated seconds per wall second)
    /// and peak memory.
    Bench {
        /// A scenario file, or a name under scenarios/.
        #[arg(default_value = "cluster-steady-state")]
        scenario: String,
        /// A range A..B (B excluded), run one after another.
        #[arg(long, default_value = "0..5")]
        seeds: String,
        /// Replace the scenario's fault phase with this many simulated
        /// seconds (e.g. 3600 for an hour).
        #[arg(long)]
        simulated_s: Option<u64>,
    },
    /// List the bug flags.
    Bugs,
}

/// `--bug` flags, checked by name and against the scenarios: a cluster
/// bug on a standalone scenario is refused before anything runs.
fn parse_bugs(names: &[String], scenarios: &[&Scenario]) -> anyhow::Result<Vec<Bug>> {
    let mut bugs = Vec::new();
    for n in names {
        let bug = Bug::from_name(n).with_context(|| seedlog_sim::bugs::unknown_bug_message(n))?;
        bugs.push(bug);
    }
    bugs.sort();
    bugs.dedup();
    for s in scenarios {
        s.bugs_with(&bugs)?;
    }
    Ok(bugs)
}

fn parse_range(text: &str) -> anyhow::Result<std::ops::Range<u64>> {
    let (a, b) = text
        .split_once("..")
        .with_context(|| format!("--seeds {text}: expected A..B"))?;
    let (a, b): (u64, u64) = (a.parse()?, b.parse()?);
    if a >= b {
        bail!("--seeds {text}: empty range");
    }
    Ok(a..b)
}

fn parse_shard(text: &str) -> anyhow::Result<(u64, u64)> {
    let (i, n) = text
        .split_once('/')
        .with_context(|| format!("--shard {text}: expected I/N"))?;
    let (i, n): (u64, u64) = (i.parse()?, n.parse()?);
    if n == 0 || i >= n {
        bail!("--shard {text}: need 0 <= I < N");
    }
    Ok((i, n))
}

/// Runs the subcommand; returns the process exit code.
pub fn run(args: SimArgs) -> anyhow::Result<i32> {
    match args.command {
        SimCommand::Run {
            scenario,
            seed,
            trace,
            bug,
        } => {
            let s = Scenario::resolve(&scenario)?;
            let bugs = parse_bugs(&bug, &[&s])?;
            let options = RunOptions {
                bugs,
                trace_file: trace,
                keep_trace: false,
                core_logs: std::env::var_os("SEEDLOG_SIM_LOG").is_some_and(|v| v != "0"),
            };
            let report = seedlog_sim::run(&s, seed, &options);
            print!("{}", summary(&report, &scenario, &s.bugs));
            Ok(if report.passed() { 0 } else { 1 })
        }
        SimCommand::Replay { trace } => {
            let (report, outcome) = replay(&trace)?;
            match outcome {
                ReplayOutcome::Identical { lines, hash } => {
                    println!(
                        "replay of {} seed {}: identical ({lines} lines, hash {hash:016x})",
                        report.scenario, report.seed
                    );
                    Ok(0)
                }
                ReplayOutcome::Differs {
                    line,
                    recorded,
                    replayed,
                } => {
                    println!(
                        "replay of {} seed {}: differs at line {line}",
                        report.scenario, report.seed
                    );
                    println!("  recorded: {recorded}");
                    println!("  replayed: {replayed}");
                    Ok(1)
                }
            }
        }
        SimCommand::Explore {
            scenarios,
            seeds,
            jobs,
            shard,
            bug,
        } => {
            let seeds = parse_range(&seeds)?;
            let shard = shard.as_deref().map(parse_shard).transpose()?;
            let jobs = jobs.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            let mut loaded = Vec::new();
            for arg in scenarios {
                let s = Scenario::resolve(&arg)?;
                loaded.push((arg, s));
            }
            let all: Vec<&Scenario> = loaded.iter().map(|(_, s)| s).collect();
            let bugs = parse_bugs(&bug, &all)?;
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let report = explore(&loaded, seeds, jobs, shard, &bugs, progress);
            print!("{}", report.table());
            if report.failures.is_empty() {
                return Ok(0);
            }
            println!("{} failing seeds:", report.failures.len());
            for f in &report.failures {
                let checkers: Vec<&str> = f.violations.iter().map(|v| v.checker.as_str()).collect();
                println!(
                    "  {}  # {}: {}",
                    replay_command(&f.scenario_arg, f.seed, &bugs),
                    checkers.join(", "),
                    f.violations[0].message
                );
            }
            Ok(1)
        }
        SimCommand::Shrink {
            scenario,
            seed,
            bug,
            out,
            runs_max,
            checker,
        } => {
            let s = Scenario::resolve(&scenario)?;
            let bugs = parse_bugs(&bug, &[&s])?;
            let shrunk =
                seedlog_sim::shrink::shrink(&s, seed, &bugs, checker.as_deref(), runs_max)?;
            let out =
                out.unwrap_or_else(|| PathBuf::from(format!("{}.toml", shrunk.scenario.name)));
            std::fs::write(&out, shrunk.scenario.to_toml())
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{}: {} faults -> {} in {} runs; still fails {}",
                out.display(),
                shrunk.faults_before,
                shrunk.faults_after,
                shrunk.runs,
                shrunk.checker
            );
            println!(
                "{}",
                replay_command(&out.display().to_string(), seed, &bugs)
            );
            Ok(0)
        }
        SimCommand::Bench {
            scenario,
            seeds,
            simulated_s,
        } => crate::sim_bench::run(crate::sim_bench::BenchArgs {
            scenario,
            seeds: parse_range(&seeds)?,
            simulated_s,
        }),
        SimCommand::Bugs => {
            for b in Bug::ALL {
                let scope = if b.needs_groups() {
                    "groups"
                } else if b.needs_cluster() {
                    "cluster"
                } else {
                    "any"
                };
                println!("{:<26} {:<8} {}", b.name(), scope, b.description());
            }
            Ok(0)
        }
    }
}
