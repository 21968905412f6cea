//! `seedlog serve`: flags, environment and `--config` file (see
//! [`crate::settings`]) to a `ServerConfig`, then `seedlog_net::run`.
//!
//! Without `--voters` the node is a standalone broker; with it, one node of
//! a KRaft cluster: a voter (combined broker and controller, listening for
//! the other voters on `--controller-listen`) if its id is among the voters,
//! a broker only (an observer) if not.

use crate::settings::{self, Defaults, Resolved, Source, SETTINGS};
use crate::voters::{Address, Voters};
use anyhow::{bail, Context};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches};
use seedlog_net::ServerConfig;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// `seedlog serve`'s arguments: `--config`, and every setting of
/// [`SETTINGS`] given as a flag or an environment variable. The clap
/// arguments are made from the table, so `--help` lists every setting with
/// its variable and default.
#[derive(Debug)]
pub struct ServeArgs {
    config: Option<PathBuf>,
    print_config: bool,
    /// Settings given by flag or environment (clap lets the flag win).
    given: BTreeMap<&'static str, (Source, String)>,
}

/// Shorthands kept from before the config file: `--no-X` is `--X false`.
const NEGATIVE_FLAGS: &[(&str, &str)] = &[
    ("no-auto-create-topics", "auto_create_topics"),
    ("no-flush-before-ack", "flush_before_ack"),
];

impl clap::Args for ServeArgs {
    fn augment_args(cmd: Command) -> Command {
        let defaults = Defaults::builtin();
        let mut cmd = cmd
            .after_help(
                "Every setting is also a key of the --config file (the flag's name with _ for -) \
                 and an environment variable; a flag beats the environment, which beats the \
                 file, which beats the default. seedlog.example.toml lists them all.",
            )
            .arg(
                Arg::new("config")
                    .long("config")
                    .env("SEEDLOG_CONFIG")
                    .value_name("FILE.toml")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("Read settings from this TOML file (one `key = value` per setting)."),
            )
            .arg(
                Arg::new("print_config")
                    .long("print-config")
                    .action(ArgAction::SetTrue)
                    .help("Print the settings in effect, each with where it came from, and exit."),
            );
        for setting in SETTINGS {
            let mut arg = Arg::new(setting.key)
                .long(setting.flag())
                .env(setting.env())
                .value_name(setting.kind.value_name())
                // `--log-retention-bytes -1`: a value, not a flag.
                .allow_negative_numbers(true)
                .help(format!("{} [allowed: {}]", setting.help, setting.allowed()));
            arg = match (setting.default)(&defaults) {
                // Shown by --help; a value clap fills in from it counts
                // as not given, so the file can still set it.
                Some(default) => arg.default_value(default),
                None => arg,
            };
            cmd = cmd.arg(arg);
        }
        for (flag, key) in NEGATIVE_FLAGS {
            cmd = cmd.arg(
                Arg::new(*flag)
                    .long(*flag)
                    .action(ArgAction::SetTrue)
                    .help(format!("Same as --{} false.", key.replace('_', "-"))),
            );
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for ServeArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = BTreeMap::new();
        for setting in SETTINGS {
            let source = match m.value_source(setting.key) {
                Some(ValueSource::CommandLine) => Source::Flag,
                Some(ValueSource::EnvVariable) => Source::Env,
                _ => continue,
            };
            let value = m
                .get_one::<String>(setting.key)
                .expect("a value from its source");
            given.insert(setting.key, (source, value.clone()));
        }
        for (flag, key) in NEGATIVE_FLAGS {
            if !m.get_flag(flag) {
                continue;
            }
            // Over the environment, as any flag; not with its own flag.
            if given
                .get(key)
                .is_some_and(|(source, _)| *source == Source::Flag)
            {
                return Err(clap::Error::raw(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("--{flag} and --{} both given\n", key.replace('_', "-")),
                ));
            }
            given.insert(*key, (Source::Flag, "false".to_string()));
        }
        Ok(ServeArgs {
            config: m.get_one::<PathBuf>("config").cloned(),
            print_config: m.get_flag("print_config"),
            given,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = ServeArgs::from_arg_matches(m)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `serve`'s settings resolved: what to run and how to log.
pub struct Serve {
    pub config: ServerConfig,
    pub log_format: LogFormat,
    /// `--print-config`: the settings to print instead of serving.
    pub print: Option<String>,
}

impl ServeArgs {
    /// Resolves flags, environment, file and defaults into a config.
    pub fn resolve(&self) -> anyhow::Result<Serve> {
        let file = match &self.config {
            Some(path) => Some((path.as_path(), settings::read_file(path)?)),
            None => None,
        };
        let resolved = Resolved::new(
            &self.given,
            file.as_ref().map(|(path, table)| (*path, table)),
        )?;
        let (mut config, log_format) = resolved.build()?;
        if let Some(cluster) = &config.node.cluster {
            let voters = Voters(cluster.voters.clone());
            config.controller_listen =
                controller_listen_in(config.node.node_id, config.controller_listen, &voters)?;
        }
        let log_format = match log_format.as_str() {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        };
        Ok(Serve {
            config,
            log_format,
            print: self.print_config.then(|| resolved.to_toml()),
        })
    }
}

/// Where this node listens for its peers. A voter: where the others
/// will connect, as `voters` says. A node outside `voters` is a broker
/// only (a KRaft observer): no voter calls it on that listener, and
/// replicas fetch from its `listen` address, so it needs none.
fn controller_listen_in(
    id: i32,
    controller_listen: Option<SocketAddr>,
    voters: &Voters,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(me) = voters.0.get(&id) else {
        return Ok(controller_listen);
    };
    let entry = format!("{id}@{}", Address(me));
    match controller_listen {
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

pub fn run(serve: Serve) -> anyhow::Result<()> {
    if let Some(printed) = serve.print {
        print!("{printed}");
        return Ok(());
    }
    let config = serve.config;
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
        Ok(cli.serve.resolve()?.config)
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
