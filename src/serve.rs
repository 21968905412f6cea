//! `seedlog serve`: flags to a `ServerConfig`, then `seedlog_net::run`.

use clap::Args;
use seedlog_net::ServerConfig;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; clients are told to connect to the bound
    /// address (port 0 picks a free port).
    #[arg(long, env = "SEEDLOG_LISTEN", default_value = "127.0.0.1:9092")]
    listen: SocketAddr,

    /// Directory holding the logs; created if missing.
    #[arg(long, env = "SEEDLOG_DATA_DIR", default_value = "./seedlog-data")]
    data_dir: PathBuf,

    /// `node.id` of this broker.
    #[arg(long, env = "SEEDLOG_NODE_ID", default_value_t = 1, value_parser = clap::value_parser!(i32).range(0..))]
    node_id: i32,

    /// Partitions of an auto-created topic (`num.partitions`).
    #[arg(long, env = "SEEDLOG_NUM_PARTITIONS", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    num_partitions: i32,

    /// Do not create topics on first Metadata or Produce.
    #[arg(long, env = "SEEDLOG_NO_AUTO_CREATE_TOPICS")]
    no_auto_create_topics: bool,

    /// Acknowledge produce requests from the page cache, before fsync
    /// (Kafka's default; faster, but a power cut can lose acked records).
    #[arg(long, env = "SEEDLOG_NO_FLUSH_BEFORE_ACK")]
    no_flush_before_ack: bool,

    /// How long a consumer group that was empty waits for more members
    /// before its first rebalance completes (`group.initial.rebalance.delay.ms`).
    #[arg(
        long,
        env = "SEEDLOG_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 3000
    )]
    group_initial_rebalance_delay_ms: u64,
}

impl ServeArgs {
    fn server_config(&self) -> ServerConfig {
        let mut config = ServerConfig::new(self.listen, self.data_dir.clone());
        config.node.node_id = self.node_id;
        config.node.num_partitions = self.num_partitions;
        config.node.auto_create_topics = !self.no_auto_create_topics;
        config.node.flush_before_ack = !self.no_flush_before_ack;
        config.node.group_initial_rebalance_delay_ms = self.group_initial_rebalance_delay_ms;
        config
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.server_config();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("seedlog-net")
        .build()?;
    runtime.block_on(seedlog_net::run(config, shutdown_signal()))
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
