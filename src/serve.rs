//! `seedlog serve`: flags to a `ServerConfig`, then `seedlog_net::run`.
//!
//! Without `--voters` the node is a standalone broker; with it, one node of
//! a KRaft cluster: a voter (combined broker and controller, listening for
//! the other voters on `--controller-listen`) if its id is among the voters,
//! a broker only (an observer) if not.

use crate::voters::{Address, Voters};
use anyhow::{bail, Context};
use clap::Args;
use seedlog_core::node::ClusterConfig;
use seedlog_net::ServerConfig;
use std::net::{IpAddr, SocketAddr};
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

    /// A second listener, where the other nodes of a cluster send Raft and
    /// controller requests; it serves the same protocol as --listen. With
    /// --voters it defaults to this node's address there.
    #[arg(long, env = "SEEDLOG_CONTROLLER_LISTEN")]
    controller_listen: Option<SocketAddr>,

    /// Run as one node of a cluster whose controller quorum is these
    /// voters, each with its controller listener, as ID@HOST:PORT,...
    /// (Kafka's `controller.quorum.voters`). A node among them is a voter
    /// and a broker; a node outside them is a broker only. Absent: a
    /// standalone broker.
    #[arg(long, env = "SEEDLOG_VOTERS")]
    voters: Option<Voters>,

    /// `broker.rack`: this node's availability zone; the replicas of a
    /// partition spread over racks. Needs --voters.
    #[arg(long, env = "SEEDLOG_RACK", requires = "voters")]
    rack: Option<String>,

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

    /// Serve Prometheus metrics at http://HOST:PORT/metrics (requests and
    /// latency per API, bytes in and out, connections, partitions led,
    /// under-replicated and offline, ISR shrinks and expands). Off unless
    /// given; port 0 picks a free port.
    #[arg(long, env = "SEEDLOG_METRICS_LISTEN", value_name = "HOST:PORT")]
    metrics_listen: Option<SocketAddr>,

    /// Log lines on stderr as plain text or as one JSON object each.
    #[arg(long, env = "SEEDLOG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl ServeArgs {
    fn server_config(&self) -> anyhow::Result<ServerConfig> {
        let mut config = ServerConfig::new(self.listen, self.data_dir.clone());
        config.node.node_id = self.node_id;
        config.node.num_partitions = self.num_partitions;
        config.node.auto_create_topics = !self.no_auto_create_topics;
        config.node.flush_before_ack = !self.no_flush_before_ack;
        config.node.group_initial_rebalance_delay_ms = self.group_initial_rebalance_delay_ms;
        config.controller_listen = self.controller_listen;
        config.metrics_listen = self.metrics_listen;
        if let Some(voters) = &self.voters {
            config.controller_listen = self.controller_listen_in(voters)?;
            let mut cluster = ClusterConfig::new(voters.0.clone());
            cluster.rack.clone_from(&self.rack);
            config.node.cluster = Some(cluster);
        }
        Ok(config)
    }

    /// Where this node listens for its peers. A voter: where the others
    /// will connect, as --voters says. A node outside --voters is a broker
    /// only (a KRaft observer): no voter calls it on that listener, and
    /// replicas fetch from its --listen address, so it needs none.
    fn controller_listen_in(&self, voters: &Voters) -> anyhow::Result<Option<SocketAddr>> {
        let id = self.node_id;
        let Some(me) = voters.0.get(&id) else {
            return Ok(self.controller_listen);
        };
        let entry = format!("{id}@{}", Address(me));
        match self.controller_listen {
            Some(listen) if listen.port() != me.port => bail!(
                "--controller-listen {listen} does not match this node's entry {entry} in --voters: \
                 the other nodes would connect to port {}",
                me.port
            ),
            Some(listen) => Ok(Some(listen)),
            None => {
                let ip: IpAddr = me.host.parse().with_context(|| {
                    format!(
                        "this node's entry {entry} in --voters names a host, not an IP address: \
                         give --controller-listen IP:{}",
                        me.port
                    )
                })?;
                Ok(Some(SocketAddr::new(ip, me.port)))
            }
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.server_config()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn config(args: &[&str]) -> anyhow::Result<ServerConfig> {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))?;
        cli.serve.server_config()
    }

    fn error(args: &[&str]) -> String {
        format!("{:#}", config(args).expect_err("rejected"))
    }

    const VOTERS: &str = "1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194";

    #[test]
    fn no_flags_is_the_standalone_broker_of_old() {
        let config = config(&[]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9092".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("./seedlog-data"));
        assert_eq!(config.controller_listen, None);
        assert_eq!(config.node.cluster, None);
        assert_eq!(config.node.node_id, 1);
    }

    #[test]
    fn voters_make_a_cluster_node_listening_where_its_entry_says() {
        let config = config(&["--node-id", "2", "--rack", "az-2", "--voters", VOTERS]).unwrap();
        let cluster = config.node.cluster.expect("cluster mode");
        assert_eq!(cluster.voters.len(), 3);
        assert_eq!(cluster.rack.as_deref(), Some("az-2"));
        assert_eq!(config.node.node_id, 2);
        assert_eq!(
            config.controller_listen,
            Some("127.0.0.1:9193".parse().unwrap())
        );
        // Any interface, as long as the port is the one peers are told.
        let wide = config_with_listen("0.0.0.0:9193").unwrap();
        assert_eq!(
            wide.controller_listen,
            Some("0.0.0.0:9193".parse().unwrap())
        );
    }

    fn config_with_listen(listen: &str) -> anyhow::Result<ServerConfig> {
        config_with_listen_as(2, listen)
    }

    fn config_with_listen_as(node_id: i32, listen: &str) -> anyhow::Result<ServerConfig> {
        config(&[
            "--node-id",
            &node_id.to_string(),
            "--voters",
            VOTERS,
            "--controller-listen",
            listen,
        ])
    }

    #[test]
    fn cluster_flags_that_do_not_fit_are_named() {
        assert!(format!("{:#}", config_with_listen("127.0.0.1:9999").unwrap_err())
            .contains("--controller-listen 127.0.0.1:9999 does not match this node's entry 2@127.0.0.1:9193"));
        assert!(error(&["--node-id", "1", "--voters", "1@localhost:9192"])
            .contains("give --controller-listen IP:9192"));
        assert!(error(&["--voters", "1@127.0.0.1"]).contains("--voters"));
        assert!(error(&["--rack", "az-1"]).contains("--voters"));
    }

    #[test]
    fn a_node_outside_the_voters_is_a_broker_only() {
        let config = config(&["--node-id", "4", "--voters", VOTERS]).unwrap();
        let cluster = config.node.cluster.expect("cluster mode");
        assert!(!cluster.voters.contains_key(&4));
        assert_eq!(config.controller_listen, None);
        let config = config_with_listen_as(4, "127.0.0.1:9999").unwrap();
        assert_eq!(
            config.controller_listen,
            Some("127.0.0.1:9999".parse().unwrap())
        );
    }

    #[test]
    fn a_standalone_broker_may_have_a_controller_listener() {
        let config = config(&["--controller-listen", "127.0.0.1:9192"]).unwrap();
        assert_eq!(
            config.controller_listen,
            Some("127.0.0.1:9192".parse().unwrap())
        );
        assert_eq!(config.node.cluster, None);
    }
}
