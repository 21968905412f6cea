//! `seedlog`: the command line. Each subcommand parses its flags and hands
//! over to the crate that does the work.

mod admin;
mod bench;
mod bench_path;
mod cluster_cli;
mod serve;
mod settings;
mod sim_bench;
mod sim_cli;
mod voters;

use clap::{Args, Parser, Subcommand};

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
    /// Start a local cluster on 127.0.0.1: one `serve` process per node;
    /// or, with `describe`, describe a running cluster.
    Cluster(ClusterCli),
    /// Create, list, describe, alter and delete topics.
    Topics(admin::topics::TopicsArgs),
    /// List, describe, reset the offsets of and delete consumer groups.
    Groups(admin::groups::GroupsArgs),
    /// Deterministic simulation: run, replay, explore and shrink scenarios.
    Sim(sim_cli::SimArgs),
    /// Measure throughput (see `seedlog bench --help`).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// `seedlog cluster [--brokers N ...]` starts a cluster; `seedlog cluster
/// describe` describes one. The two never mix.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct ClusterCli {
    #[command(subcommand)]
    command: Option<ClusterCommand>,
    #[command(flatten)]
    start: cluster_cli::ClusterArgs,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Brokers with their racks, the controller, the cluster id, and the
    /// under-replicated and offline partitions (DescribeCluster, Metadata).
    Describe {
        #[command(flatten)]
        connect: admin::Connect,
    },
}

/// Errors end the process with one readable line of causes on stderr
/// (`seedlog: topic 'x': TOPIC_ALREADY_EXISTS`) and exit code 1; a
/// backtrace is for bugs, not for a missing file.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seedlog: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // `serve`'s settings first: the log format is one of them, and a bad
    // one is reported before anything starts.
    let serve = match &cli.command {
        Command::Serve(args) => Some(args.resolve()?),
        _ => None,
    };
    // Logs go to stderr: stdout carries the one "listening" line that
    // scripts and tests parse.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match &serve {
        Some(s) if s.log_format == serve::LogFormat::Json => logs.json().init(),
        _ => logs.init(),
    }
    match cli.command {
        Command::Serve(_) => serve::run(serve.expect("resolved above")),
        Command::Cluster(ClusterCli {
            command: Some(ClusterCommand::Describe { connect }),
            ..
        }) => connect
            .admin()
            .and_then(|mut a| admin::cluster::describe(&mut a, connect.json)),
        Command::Cluster(ClusterCli { start, .. }) => cluster_cli::run(start),
        Command::Topics(args) => admin::topics::run(args),
        Command::Groups(args) => admin::groups::run(args),
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
