//! Metadata as a cluster node answers it: brokers, leaders, replicas and
//! ISRs from the committed image; auto-creation through the controller.

use super::super::handlers::str_bytes;
use super::super::topics::validate_topic_name;
use super::super::Node;
use super::controller_host::ControllerCall;
use crate::controller::TopicImage;
use crate::storage::Storage;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

impl<S: Storage> Node<S> {
    /// Whether this broker describes the cluster to clients: it has
    /// replayed the metadata log up to its own registration and the
    /// controller has unfenced it since it started (see
    /// `BrokerLifecycle::running`). Before that it answers as a broker in
    /// its startup phase does (`cluster_metadata`).
    pub(in crate::node) fn metadata_caught_up(&self) -> bool {
        self.cluster().broker.is_running()
    }

    /// The brokers clients may talk to: registered and not fenced. None
    /// before the catch-up: clients keep what they knew on an answer
    /// without brokers (see `cluster_metadata`), where a partial list
    /// would replace it.
    pub(in crate::node) fn cluster_brokers(&self) -> Vec<MetadataResponseBroker> {
        if !self.metadata_caught_up() {
            return Vec::new();
        }
        self.cluster()
            .image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| {
                let endpoint = b.end_points.first()?;
                Some(
                    MetadataResponseBroker::default()
                        .with_node_id(b.id.into())
                        .with_host(str_bytes(&endpoint.host))
                        .with_port(i32::from(endpoint.port))
                        .with_rack(b.rack.as_deref().map(str_bytes)),
                )
            })
            .collect()
    }

    /// The active controller as clients see it (-1 while unknown, and
    /// before the catch-up, with no brokers to name it among).
    pub(in crate::node) fn cluster_controller_id(&self) -> i32 {
        if !self.metadata_caught_up() {
            return -1;
        }
        self.cluster().quorum.leader_id().unwrap_or(-1)
    }

    pub(in crate::node) fn cluster_metadata(
        &mut self,
        request: &MetadataRequest,
        all_topics: bool,
        allow_auto_create: bool,
    ) -> MetadataResponse {
        let mut response = MetadataResponse::default()
            .with_brokers(self.cluster_brokers())
            .with_cluster_id(Some(str_bytes(&self.config.cluster_id)))
            .with_controller_id(self.cluster_controller_id().into())
            .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
        if !self.metadata_caught_up() {
            // No brokers and no topics, whatever was asked: whether a topic
            // exists is not known yet, so none is described from the
            // partial image and none is auto-created. Every client reads
            // this answer as "ask again": librdkafka retries a response
            // with neither brokers nor topics and otherwise decommissions
            // every broker the response leaves out (the soak's stalled
            // producer) and drops a topic answered UNKNOWN_TOPIC_OR_PARTITION
            // ("partition count changed from 3 to 0"); Java's client and
            // kafka-python ignore any answer without brokers.
            return response;
        }
        let image = &self.cluster().image;
        if all_topics {
            response.topics = image.topics.values().map(describe).collect();
            return response;
        }
        let mut to_create = Vec::new();
        for requested in request.topics.iter().flatten() {
            let image = &self.cluster().image;
            let topic = match &requested.name {
                None => match image.topics.get(&requested.topic_id) {
                    Some(topic) => describe(topic),
                    None => error_topic(None, ResponseError::UnknownTopicId.code())
                        .with_topic_id(requested.topic_id),
                },
                Some(name) => match image.topic_by_name(name.0.as_str()) {
                    Some(topic) => describe(topic),
                    None if validate_topic_name(name.0.as_str()).is_err() => error_topic(
                        Some(name.clone()),
                        ResponseError::InvalidTopicException.code(),
                    ),
                    None if allow_auto_create => {
                        to_create.push(name.clone());
                        error_topic(Some(name.clone()), ResponseError::LeaderNotAvailable.code())
                    }
                    None => error_topic(
                        Some(name.clone()),
                        ResponseError::UnknownTopicOrPartition.code(),
                    ),
                },
            };
            response.topics.push(topic);
        }
        if !to_create.is_empty() {
            self.auto_create(to_create);
        }
        response
    }

    fn auto_create(&mut self, names: Vec<TopicName>) {
        let topics = names
            .into_iter()
            .map(|name| {
                CreatableTopic::default()
                    .with_name(name)
                    .with_num_partitions(self.config.num_partitions)
                    .with_replication_factor(-1)
            })
            .collect();
        let request = CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(30_000);
        if !self.send_to_controller(
            ControllerCall::AutoCreate,
            RequestKind::CreateTopics(request),
        ) {
            tracing::debug!("no controller known; auto-creation waits for the next request");
        }
    }
}

fn error_topic(name: Option<TopicName>, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(name)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

fn describe(topic: &TopicImage) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|(&index, registration)| {
            let a = &registration.assignment;
            let error = if a.leader < 0 {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(index)
                .with_leader_id(a.leader.into())
                .with_leader_epoch(a.leader_epoch)
                .with_replica_nodes(a.replicas.iter().map(|r| (*r).into()).collect())
                .with_isr_nodes(a.isr.iter().map(|r| (*r).into()).collect())
                .with_offline_replicas(Vec::new())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&topic.name))))
        .with_topic_id(topic.topic_id)
        .with_is_internal(topic.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
