//! Metadata: this broker, and the topics asked for (auto-creating them when
//! the broker and the request allow it, as Kafka does).

use super::super::topics::validate_topic_name;
use super::super::Node;
use super::str_bytes;
use crate::storage::Storage;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::ResponseError;

/// Kafka's "authorized operations were not requested".
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// Before v4 the request had no `allow_auto_topic_creation` and Kafka
/// always auto-created.
const ALLOW_AUTO_CREATE_VERSION_MIN: i16 = 4;

impl<S: Storage> Node<S> {
    pub(crate) fn handle_metadata(
        &mut self,
        request: &MetadataRequest,
        version: i16,
    ) -> MetadataResponse {
        if self.cluster.is_some() {
            let all_topics = match &request.topics {
                None => true,
                Some(topics) => topics.is_empty() && version == 0,
            };
            let allow_auto_create = self.config.auto_create_topics
                && (version < ALLOW_AUTO_CREATE_VERSION_MIN || request.allow_auto_topic_creation);
            return self.cluster_metadata(request, all_topics, allow_auto_create);
        }
        let broker = MetadataResponseBroker::default()
            .with_node_id(self.config.node_id.into())
            .with_host(str_bytes(&self.config.advertised_host))
            .with_port(self.config.advertised_port);
        let mut response = MetadataResponse::default()
            .with_brokers(vec![broker])
            .with_cluster_id(Some(str_bytes(&self.config.cluster_id)))
            .with_controller_id(self.config.node_id.into())
            .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
        let all_topics = match &request.topics {
            None => true,
            Some(topics) => topics.is_empty() && version == 0,
        };
        if all_topics {
            let names: Vec<String> = self.topics.iter().map(|t| t.name.clone()).collect();
            response.topics = names.iter().map(|n| self.describe_topic(n)).collect();
            return response;
        }
        let allow_auto_create = self.config.auto_create_topics
            && (version < ALLOW_AUTO_CREATE_VERSION_MIN || request.allow_auto_topic_creation);
        for requested in request.topics.iter().flatten() {
            let name = match (&requested.name, self.topics.name_of(&requested.topic_id)) {
                (Some(name), _) => name.0.to_string(),
                (None, Some(name)) => name.to_string(),
                (None, None) => {
                    let topic = MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_topic_id(requested.topic_id)
                        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
                    response.topics.push(topic);
                    continue;
                }
            };
            let topic = self.metadata_for(&name, allow_auto_create);
            response.topics.push(topic);
        }
        response
    }

    fn metadata_for(&mut self, name: &str, allow_auto_create: bool) -> MetadataResponseTopic {
        let error = |code: i16| {
            MetadataResponseTopic::default()
                .with_error_code(code)
                .with_name(Some(TopicName(str_bytes(name))))
                .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
        };
        if self.topics.contains(name) {
            return self.describe_topic(name);
        }
        if validate_topic_name(name).is_err() {
            return error(ResponseError::InvalidTopicException.code());
        }
        if !allow_auto_create {
            return error(ResponseError::UnknownTopicOrPartition.code());
        }
        let partitions = self.config.num_partitions;
        match self.create_topic(name, partitions, Default::default()) {
            Ok(_) => {
                tracing::info!(topic = name, partitions, "auto-created topic");
                self.describe_topic(name)
            }
            Err((code, message)) => {
                tracing::warn!(topic = name, %message, "auto-creating topic failed");
                error(code)
            }
        }
    }

    fn describe_topic(&self, name: &str) -> MetadataResponseTopic {
        let topic = self.topics.get(name).expect("described topics exist");
        let node_id = self.config.node_id;
        let partitions = topic
            .partitions()
            .iter()
            .map(|(&index, p)| {
                MetadataResponsePartition::default()
                    .with_partition_index(index)
                    .with_leader_id(node_id.into())
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(vec![node_id.into()])
                    .with_isr_nodes(vec![node_id.into()])
            })
            .collect();
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(str_bytes(name))))
            .with_topic_id(topic.id)
            .with_is_internal(name.starts_with("__"))
            .with_partitions(partitions)
            .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
    }
}
