//! DescribeConfigs for topics (every config, defaults included) and for
//! this broker.

use super::super::topic_config::{self, ConfigSource};
use super::super::Node;
use super::str_bytes;
use crate::storage::Storage;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::ResponseError;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's ConfigSource for a value set in the broker's static config.
const STATIC_BROKER_CONFIG: i8 = 4;
/// DescribeConfigs v3 added the type of each config.
const CONFIG_TYPE_VERSION_MIN: i16 = 3;

impl<S: Storage> Node<S> {
    pub(crate) fn handle_describe_configs(
        &mut self,
        request: &DescribeConfigsRequest,
        version: i16,
    ) -> DescribeConfigsResponse {
        let mut response = DescribeConfigsResponse::default();
        for resource in &request.resources {
            let mut result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => self.topic_entries(resource.resource_name.as_str()),
                RESOURCE_BROKER => self.broker_entries(resource.resource_name.as_str()),
                other => Err((
                    ResponseError::InvalidRequest.code(),
                    format!("resource type {other} has no configs here"),
                )),
            };
            match entries {
                Ok(entries) => {
                    // Null or empty both mean every config, as clients send either.
                    let wanted = resource
                        .configuration_keys
                        .as_ref()
                        .filter(|keys| !keys.is_empty());
                    result.configs = entries
                        .into_iter()
                        .filter(|(name, ..)| {
                            wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
                        })
                        .map(|(name, value, source, config_type)| {
                            let mut entry = DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(&name))
                                .with_value(Some(str_bytes(&value)))
                                .with_config_source(source);
                            if version >= CONFIG_TYPE_VERSION_MIN {
                                entry.config_type = config_type;
                            }
                            entry
                        })
                        .collect();
                }
                Err((code, message)) => {
                    result.error_code = code;
                    result.error_message = Some(str_bytes(&message));
                }
            }
            response.results.push(result);
        }
        response
    }

    #[allow(clippy::type_complexity)]
    fn topic_entries(&self, name: &str) -> Result<Vec<(String, String, i8, i8)>, (i16, String)> {
        let unknown = || {
            (
                ResponseError::UnknownTopicOrPartition.code(),
                format!("no topic '{name}'"),
            )
        };
        // A cluster node may host no partition of the topic: the committed
        // metadata is the truth there.
        let overrides = match &self.cluster {
            Some(_) if !self.metadata_caught_up() => {
                return Err((
                    ResponseError::LeaderNotAvailable.code(),
                    format!(
                        "broker {} is still catching up with the metadata log",
                        self.config.node_id
                    ),
                ));
            }
            Some(cluster) => {
                cluster.image.topic_by_name(name).ok_or_else(unknown)?;
                cluster
                    .image
                    .configs
                    .get(&(crate::node::config_change::RESOURCE_TOPIC, name.to_string()))
                    .cloned()
                    .unwrap_or_default()
            }
            None => self.topics.get(name).ok_or_else(unknown)?.overrides.clone(),
        };
        Ok(topic_config::describe(&overrides, &self.config.log)
            .into_iter()
            .map(|c| (c.name.to_string(), c.value, c.source as i8, c.config_type))
            .collect())
    }

    #[allow(clippy::type_complexity)]
    fn broker_entries(&self, name: &str) -> Result<Vec<(String, String, i8, i8)>, (i16, String)> {
        if !(name.is_empty() || name == self.config.node_id.to_string()) {
            return Err((
                ResponseError::InvalidRequest.code(),
                format!("this is broker {}, not '{name}'", self.config.node_id),
            ));
        }
        const BOOLEAN: i8 = 1;
        const INT: i8 = 3;
        const LONG: i8 = 5;
        let c = &self.config;
        let statics = [
            (
                "auto.create.topics.enable",
                c.auto_create_topics.to_string(),
                BOOLEAN,
            ),
            (
                "log.retention.bytes",
                c.log.retention_bytes.to_string(),
                LONG,
            ),
            (
                "log.retention.check.interval.ms",
                c.retention_check_interval_ms.to_string(),
                LONG,
            ),
            ("log.retention.ms", c.log.retention_ms.to_string(), LONG),
            ("log.roll.ms", c.log.segment_ms.to_string(), LONG),
            ("log.segment.bytes", c.log.segment_bytes.to_string(), INT),
            (
                "message.max.bytes",
                c.log.max_message_bytes.to_string(),
                INT,
            ),
            ("node.id", c.node_id.to_string(), INT),
            ("num.partitions", c.num_partitions.to_string(), INT),
        ];
        let _ = ConfigSource::Default;
        Ok(statics
            .into_iter()
            .map(|(n, v, t)| (n.to_string(), v, STATIC_BROKER_CONFIG, t))
            .collect())
    }
}
