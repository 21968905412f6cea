//! Consumer groups on a cluster node: the coordinator of a group is the
//! leader of its `__consumer_offsets` partition (created through the
//! controller, replicated like any topic). A broker loads a partition's
//! groups when it becomes that partition's leader and unloads them when it
//! stops, so after a fail-over the new leader replays the replicated log and
//! the group carries on there.

use super::super::handlers::str_bytes;
use super::super::Node;
use super::controller_host::ControllerCall;
use crate::group::OFFSETS_TOPIC;
use crate::storage::Storage;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, RequestKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// The offsets topic keeps the groups' state: no time or size retention.
const OFFSETS_TOPIC_CONFIGS: [(&str, &str); 4] = [
    ("cleanup.policy", "compact"),
    ("retention.ms", "-1"),
    ("retention.bytes", "-1"),
    ("max.message.bytes", "104857600"),
];

impl<S: Storage> Node<S> {
    /// FindCoordinator for a group on a cluster node: the broker leading the
    /// group's offsets partition, or COORDINATOR_NOT_AVAILABLE while there
    /// is none (the topic is being created, the partition has no leader).
    pub(in crate::node) fn cluster_coordinator_for(
        &mut self,
        group_id: &str,
    ) -> Result<CoordinatorEntry, i16> {
        let unavailable = ResponseError::CoordinatorNotAvailable.code();
        if !self.metadata_caught_up() {
            // A partial image may name a stale coordinator, or lack the
            // offsets topic and have it created again.
            return Err(unavailable);
        }
        let partition = self.groups.partition_for(group_id);
        let image = &self.cluster().image;
        let Some(topic) = image.topic_by_name(OFFSETS_TOPIC) else {
            self.create_offsets_topic();
            return Err(unavailable);
        };
        let leader = topic
            .partitions
            .get(&partition)
            .map_or(-1, |p| p.assignment.leader);
        let broker = image.brokers.get(&leader).filter(|b| !b.fenced);
        let Some(endpoint) = broker.and_then(|b| b.end_points.first()) else {
            return Err(unavailable);
        };
        Ok(CoordinatorEntry::default()
            .with_node_id(BrokerId(leader))
            .with_host(str_bytes(&endpoint.host))
            .with_port(i32::from(endpoint.port)))
    }

    fn create_offsets_topic(&mut self) {
        let configs = OFFSETS_TOPIC_CONFIGS
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str(k))
                    .with_value(Some(StrBytes::from_static_str(v)))
            })
            .collect();
        let topic = CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(OFFSETS_TOPIC)))
            .with_num_partitions(self.config.offsets_topic_partitions)
            .with_replication_factor(-1)
            .with_configs(configs);
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(30_000);
        if !self.send_to_controller(
            ControllerCall::AutoCreate,
            RequestKind::CreateTopics(request),
        ) {
            tracing::debug!("no controller known; {OFFSETS_TOPIC} is created on a later request");
        }
    }

    /// The listener saw this node's role for an offsets partition change.
    pub(in crate::node) fn offsets_leadership_changed(&mut self, partition: i32, leads: bool) {
        let owned = self.groups.owns_partition(partition);
        match (leads, owned) {
            (true, false) => self.load_offsets_partition(partition),
            (false, true) => {
                self.groups.unload_partition(partition);
                // Its writes were forgotten with it; none completes here.
                self.group_writes.retain(|w| w.partition != partition);
                let groups = &self.groups;
                self.consumer_groups.retain_groups(|id| groups.owns(id));
            }
            _ => {}
        }
    }
}
