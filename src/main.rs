//! `seedlog`: the command line. Each subcommand parses its flags and hands
//! over to the crate that does the work.

mod bench;
mod bench_path;
mod cluster_cli;
mod serve;
mod sim_bench;
mod sim_cli;
mod voters;

use clap::{Parser, Subcommand};

/// Huge reservations from the wire codec must not abort the broker; see
/// `seedlog_net::alloc`.
#[global_allocator]
static ALLOCATOR: seedlog_net::alloc::NoReserveHugeAllocations =
    seedlog_net::alloc::NoReserveHugeAllocations;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "seedlog",
    version,
    about = "A deterministic-simulation-tested, Kafka-compatible broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker that Kafka clients can talk to.
    Serve(serve::ServeArgs),
    /// Start a local cluster on 127.0.0.1: one `serve` process per node.
    Cluster(cluster_cli::ClusterArgs),
    /// Deterministic simulation: run, replay, explore and shrink scenarios.
    Sim(sim_cli::SimArgs),
    /// Measure throughput (see `seedlog bench --help`).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Errors end the process with a readable chain of causes on stderr and
/// exit code 1; a backtrace is for bugs, not for a missing file.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Logs go to stderr: stdout carries the one "listening" line that
    // scripts and tests parse.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Cluster(args) => cluster_cli::run(args),
        Command::Sim(args) => {
            let code = sim_cli::run(args)?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        Command::Bench(command) => bench::run(command),
    }
}
