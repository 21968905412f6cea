//! Topic configs: the catalogue of names the node knows, their validation,
//! and the effective value of each (topic override, else broker default).

use crate::log::compaction::RATIO_PPM_ONE;
use crate::log::{CleanupPolicy, LogConfig};
use std::collections::BTreeMap;

/// Where a config value came from, Kafka's `ConfigSource` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    TopicOverride = 1,
    Default = 5,
}

/// Kafka's `ConfigType` codes for DescribeConfigs v3+.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Long {
        min: i64,
    },
    Int {
        min: i64,
    },
    Bool,
    OneOf(&'static [&'static str]),
    /// A double in [0, 1].
    Ratio,
    /// `cleanup.policy`'s list of `compact` and `delete`.
    CleanupPolicy,
}

struct ConfigDef {
    name: &'static str,
    kind: Kind,
}

/// Every topic config the node accepts. Others are rejected with
/// INVALID_CONFIG rather than silently ignored.
const CATALOGUE: &[ConfigDef] = &[
    ConfigDef {
        name: "cleanup.policy",
        kind: Kind::CleanupPolicy,
    },
    ConfigDef {
        name: "compression.type",
        kind: Kind::OneOf(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
    },
    ConfigDef {
        name: "delete.retention.ms",
        kind: Kind::Long { min: 0 },
    },
    ConfigDef {
        name: "index.interval.bytes",
        kind: Kind::Int { min: 0 },
    },
    ConfigDef {
        name: "max.message.bytes",
        kind: Kind::Int { min: 0 },
    },
    ConfigDef {
        name: "message.timestamp.type",
        kind: Kind::OneOf(&["CreateTime"]),
    },
    ConfigDef {
        name: "min.cleanable.dirty.ratio",
        kind: Kind::Ratio,
    },
    ConfigDef {
        name: "min.insync.replicas",
        kind: Kind::Int { min: 1 },
    },
    ConfigDef {
        name: "retention.bytes",
        kind: Kind::Long { min: -1 },
    },
    ConfigDef {
        name: "retention.ms",
        kind: Kind::Long { min: -1 },
    },
    ConfigDef {
        name: "segment.bytes",
        kind: Kind::Int { min: 14 },
    },
    ConfigDef {
        name: "segment.ms",
        kind: Kind::Long { min: 1 },
    },
    ConfigDef {
        name: "unclean.leader.election.enable",
        kind: Kind::Bool,
    },
];

fn def(name: &str) -> Option<&'static ConfigDef> {
    CATALOGUE.iter().find(|d| d.name == name)
}

/// Checks that `name` is a topic config this broker knows.
pub fn validate_name(name: &str) -> Result<(), String> {
    def(name)
        .map(|_| ())
        .ok_or_else(|| format!("unknown topic config '{name}'"))
}

/// Checks one `name=value` pair; the error names the field and what is allowed.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let def = def(name).ok_or_else(|| format!("unknown topic config '{name}'"))?;
    match def.kind {
        Kind::Long { min } | Kind::Int { min } => {
            let max = if matches!(def.kind, Kind::Int { .. }) {
                i32::MAX as i64
            } else {
                i64::MAX
            };
            match value.parse::<i64>() {
                Ok(v) if v >= min && v <= max => Ok(()),
                _ => Err(format!(
                    "invalid value '{value}' for '{name}': expected an integer in [{min}, {max}]"
                )),
            }
        }
        Kind::Bool => match value {
            "true" | "false" => Ok(()),
            _ => Err(format!(
                "invalid value '{value}' for '{name}': expected true or false"
            )),
        },
        Kind::OneOf(allowed) => {
            if allowed.contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "invalid value '{value}' for '{name}': supported values are {allowed:?}"
                ))
            }
        }
        Kind::Ratio => parse_ratio_ppm(value).map(|_| ()).ok_or_else(|| {
            format!("invalid value '{value}' for '{name}': expected a number in [0, 1]")
        }),
        Kind::CleanupPolicy => CleanupPolicy::parse(value).map(|_| ()).ok_or_else(|| {
            format!(
                "invalid value '{value}' for '{name}': expected 'delete', 'compact' or 'compact,delete'"
            )
        }),
    }
}

/// A ratio in [0, 1] as millionths (how `LogConfig` keeps it, exactly).
fn parse_ratio_ppm(value: &str) -> Option<u32> {
    let ratio: f64 = value.trim().parse().ok()?;
    if !(0.0..=1.0).contains(&ratio) {
        return None; // also NaN
    }
    Some((ratio * f64::from(RATIO_PPM_ONE)).round() as u32)
}

fn format_ratio_ppm(ppm: u32) -> String {
    (f64::from(ppm) / f64::from(RATIO_PPM_ONE)).to_string()
}

/// The broker-wide default of each config, as a string.
fn default_value(name: &str, defaults: &LogConfig) -> String {
    match name {
        "cleanup.policy" => defaults.cleanup_policy.as_str().into(),
        "delete.retention.ms" => defaults.delete_retention_ms.to_string(),
        "compression.type" => "producer".into(),
        "index.interval.bytes" => defaults.index_interval_bytes.to_string(),
        "max.message.bytes" => defaults.max_message_bytes.to_string(),
        "message.timestamp.type" => "CreateTime".into(),
        "min.cleanable.dirty.ratio" => format_ratio_ppm(defaults.min_cleanable_dirty_ratio_ppm),
        "min.insync.replicas" => "1".into(),
        "retention.bytes" => defaults.retention_bytes.to_string(),
        "retention.ms" => defaults.retention_ms.to_string(),
        "segment.bytes" => defaults.segment_bytes.to_string(),
        "segment.ms" => defaults.segment_ms.to_string(),
        "unclean.leader.election.enable" => "false".into(),
        other => unreachable!("no default for config '{other}' outside the catalogue"),
    }
}

fn config_type(kind: Kind) -> ConfigType {
    match kind {
        Kind::Long { .. } => ConfigType::Long,
        Kind::Int { .. } => ConfigType::Int,
        Kind::Bool => ConfigType::Boolean,
        Kind::OneOf(_) => ConfigType::String,
        Kind::Ratio => ConfigType::Double,
        Kind::CleanupPolicy => ConfigType::List,
    }
}

/// One config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
    pub config_type: i8,
}

/// Every config of a topic with its effective value and source, by name.
pub fn describe(
    overrides: &BTreeMap<String, String>,
    defaults: &LogConfig,
) -> Vec<DescribedConfig> {
    let mut described: Vec<DescribedConfig> = CATALOGUE
        .iter()
        .map(|d| {
            let (value, source) = match overrides.get(d.name) {
                Some(v) => (v.clone(), ConfigSource::TopicOverride),
                None => (default_value(d.name, defaults), ConfigSource::Default),
            };
            DescribedConfig {
                name: d.name,
                value,
                source,
                config_type: config_type(d.kind) as i8,
            }
        })
        .collect();
    described.sort_by_key(|c| c.name);
    described
}

/// The log settings of a topic: broker defaults with the topic's overrides.
pub fn log_config(overrides: &BTreeMap<String, String>, defaults: &LogConfig) -> LogConfig {
    let mut config = defaults.clone();
    for (name, value) in overrides {
        debug_assert!(
            validate(name, value).is_ok(),
            "overrides are validated before they are stored"
        );
        match name.as_str() {
            "cleanup.policy" => {
                config.cleanup_policy = CleanupPolicy::parse(value).expect("validated");
                continue;
            }
            "min.cleanable.dirty.ratio" => {
                config.min_cleanable_dirty_ratio_ppm = parse_ratio_ppm(value).expect("validated");
                continue;
            }
            _ => {}
        }
        let Ok(number) = value.parse::<i64>() else {
            continue;
        };
        match name.as_str() {
            "delete.retention.ms" => config.delete_retention_ms = number as u64,
            "index.interval.bytes" => config.index_interval_bytes = number as u32,
            "max.message.bytes" => config.max_message_bytes = number as u32,
            "retention.bytes" => config.retention_bytes = number,
            "retention.ms" => config.retention_ms = number,
            "segment.bytes" => config.segment_bytes = number as u64,
            "segment.ms" => config.segment_ms = number as u64,
            _ => {}
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field_and_the_range() {
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("retention.ms", "-1").is_ok());
        let err = validate("retention.ms", "-2").unwrap_err();
        assert!(err.contains("retention.ms") && err.contains("[-1"), "{err}");
        assert!(validate("segment.bytes", "10")
            .unwrap_err()
            .contains("segment.bytes"));
        assert!(
            validate("segment.bytes", "99999999999").is_err(),
            "int overflow"
        );
        assert!(validate("no.such.config", "1")
            .unwrap_err()
            .contains("unknown"));
        assert!(validate("unclean.leader.election.enable", "yes").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "compact").is_ok());
        let err = validate("cleanup.policy", "shred").unwrap_err();
        assert!(err.contains("cleanup.policy"), "{err}");
        assert!(validate("min.cleanable.dirty.ratio", "0.25").is_ok());
        for bad in ["1.5", "-0.1", "NaN", "half"] {
            let err = validate("min.cleanable.dirty.ratio", bad).unwrap_err();
            assert!(err.contains("min.cleanable.dirty.ratio"), "{err}");
        }
        assert!(validate("delete.retention.ms", "-1")
            .unwrap_err()
            .contains("delete.retention.ms"));
    }

    #[test]
    fn compaction_configs_reach_the_log_config() {
        let defaults = LogConfig::default();
        let described = describe(&BTreeMap::new(), &defaults);
        let value = |name: &str| {
            described
                .iter()
                .find(|c| c.name == name)
                .map(|c| (c.value.clone(), c.config_type))
                .unwrap()
        };
        assert_eq!(
            value("cleanup.policy"),
            ("delete".into(), ConfigType::List as i8)
        );
        assert_eq!(value("delete.retention.ms").0, "86400000");
        assert_eq!(
            value("min.cleanable.dirty.ratio"),
            ("0.5".into(), ConfigType::Double as i8)
        );

        let overrides: BTreeMap<String, String> = [
            ("cleanup.policy", "delete, compact"),
            ("delete.retention.ms", "1000"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = log_config(&overrides, &defaults);
        assert_eq!(config.cleanup_policy, CleanupPolicy::CompactDelete);
        assert_eq!(config.delete_retention_ms, 1000);
        assert_eq!(config.min_cleanable_dirty_ratio_ppm, 10_000);
    }

    #[test]
    fn overrides_shape_the_log_config_and_the_description() {
        let mut overrides = BTreeMap::new();
        overrides.insert("segment.bytes".to_string(), "1048576".to_string());
        let defaults = LogConfig::default();
        let config = log_config(&overrides, &defaults);
        assert_eq!(config.segment_bytes, 1048576);
        assert_eq!(config.retention_ms, defaults.retention_ms);
        let described = describe(&overrides, &defaults);
        let seg = described
            .iter()
            .find(|c| c.name == "segment.bytes")
            .unwrap();
        assert_eq!(
            (seg.value.as_str(), seg.source),
            ("1048576", ConfigSource::TopicOverride)
        );
        let ret = described.iter().find(|c| c.name == "retention.ms").unwrap();
        assert_eq!(ret.source, ConfigSource::Default);
    }
}
