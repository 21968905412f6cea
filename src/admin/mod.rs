//! The admin commands (`seedlog topics`, `seedlog groups`, `seedlog cluster
//! describe`): a Kafka admin client over the wire protocol, so they work
//! against seedlog and Apache Kafka alike.

pub mod client;
pub mod cluster;
pub mod groups;
mod reassign;
mod table;
pub mod topics;

use anyhow::bail;
use clap::Args;
use std::str::FromStr;
use std::time::Duration;

/// Where the cluster is and how to print; every admin command takes them.
#[derive(Debug, Clone, Args)]
pub struct Connect {
    /// Brokers to ask first, HOST:PORT[,HOST:PORT...]; the others are
    /// found through Metadata.
    #[arg(
        long,
        global = true,
        env = "SEEDLOG_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT[,...]"
    )]
    pub bootstrap_server: String,

    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// Connect and answer timeout per request, in milliseconds.
    #[arg(long, global = true, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
}

impl Connect {
    pub fn admin(&self) -> anyhow::Result<client::Admin> {
        client::Admin::connect(
            &self.bootstrap_server,
            Duration::from_millis(self.timeout_ms),
        )
    }
}

/// `--config KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub key: String,
    pub value: String,
}

impl FromStr for ConfigEntry {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<ConfigEntry> {
        let Some((key, value)) = s.split_once('=') else {
            bail!("expected KEY=VALUE, got '{s}'");
        };
        let key = key.trim();
        if key.is_empty() {
            bail!("expected KEY=VALUE, got '{s}' (no key)");
        }
        Ok(ConfigEntry {
            key: key.to_string(),
            value: value.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_entries_are_key_equals_value() {
        let entry: ConfigEntry = "retention.ms=1000".parse().unwrap();
        assert_eq!(entry.key, "retention.ms");
        assert_eq!(entry.value, "1000");
        let entry: ConfigEntry = "a=b=c".parse().unwrap();
        assert_eq!(entry.value, "b=c");
        assert!("retention.ms".parse::<ConfigEntry>().is_err());
        assert!("=1".parse::<ConfigEntry>().is_err());
    }
}
