//! DescribeTopicPartitions (KIP-966): leaders, replicas, ISR and eligible
//! leader replicas per partition, paged with a cursor as Kafka does. A
//! cluster node answers from the committed metadata; a standalone broker
//! is every partition's only replica.

use super::super::Node;
use super::str_bytes;
use crate::storage::Storage;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition as PartitionAnswer,
    DescribeTopicPartitionsResponseTopic as TopicAnswer,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;

/// Kafka's `max.request.partition.size.limit`: partitions per response.
const PARTITIONS_PER_RESPONSE_MAX: i32 = 2000;
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// A topic as this answer needs it: id, and each partition's answer.
struct Described {
    id: Uuid,
    partitions: Vec<PartitionAnswer>,
}

fn ids(ids: impl IntoIterator<Item = i32>) -> Vec<BrokerId> {
    ids.into_iter().map(BrokerId).collect()
}

impl<S: Storage> Node<S> {
    pub(crate) fn handle_describe_topic_partitions(
        &mut self,
        request: &DescribeTopicPartitionsRequest,
    ) -> DescribeTopicPartitionsResponse {
        let mut names: Vec<String> = request.topics.iter().map(|t| t.name.to_string()).collect();
        names.sort();
        names.dedup();
        let (start_topic, start_partition) = match &request.cursor {
            Some(c) => (Some(c.topic_name.to_string()), c.partition_index),
            None => (None, 0),
        };
        let mut budget = request
            .response_partition_limit
            .clamp(1, PARTITIONS_PER_RESPONSE_MAX);
        let mut response = DescribeTopicPartitionsResponse::default();
        for name in names {
            if start_topic.as_ref().is_some_and(|start| name < *start) {
                continue;
            }
            let first = if start_topic.as_deref() == Some(name.as_str()) {
                start_partition
            } else {
                0
            };
            let mut topic = TopicAnswer::default()
                .with_name(Some(TopicName(str_bytes(&name))))
                .with_is_internal(name.starts_with("__"))
                .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
            let Some(described) = self.describe_partitions(&name) else {
                // Before the metadata catch-up whether the topic exists is
                // not known yet: a transient error, not "no such topic".
                let starting = self.cluster.is_some() && !self.metadata_caught_up();
                topic.error_code = if starting {
                    ResponseError::LeaderNotAvailable.code()
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                };
                response.topics.push(topic);
                continue;
            };
            topic.topic_id = described.id;
            for partition in described
                .partitions
                .into_iter()
                .filter(|p| p.partition_index >= first)
            {
                if budget == 0 {
                    response.next_cursor = Some(
                        Cursor::default()
                            .with_topic_name(TopicName(str_bytes(&name)))
                            .with_partition_index(partition.partition_index),
                    );
                    break;
                }
                budget -= 1;
                topic.partitions.push(partition);
            }
            response.topics.push(topic);
            if response.next_cursor.is_some() {
                break;
            }
        }
        response
    }

    fn describe_partitions(&self, name: &str) -> Option<Described> {
        if let Some(cluster) = &self.cluster {
            if !self.metadata_caught_up() {
                return None;
            }
            let topic = cluster.image.topic_by_name(name)?;
            let partitions = topic
                .partitions
                .iter()
                .map(|(&index, r)| {
                    let a = &r.assignment;
                    let offline: Vec<i32> = a
                        .replicas
                        .iter()
                        .copied()
                        .filter(|b| !cluster.image.is_active(*b))
                        .collect();
                    PartitionAnswer::default()
                        .with_partition_index(index)
                        .with_error_code(if a.leader < 0 {
                            ResponseError::LeaderNotAvailable.code()
                        } else {
                            0
                        })
                        .with_leader_id(BrokerId(a.leader))
                        .with_leader_epoch(a.leader_epoch)
                        .with_replica_nodes(ids(a.replicas.iter().copied()))
                        .with_isr_nodes(ids(a.isr.iter().copied()))
                        .with_eligible_leader_replicas(Some(ids(r.elr.iter().copied())))
                        .with_last_known_elr(Some(ids(r.last_known_elr.iter().copied())))
                        .with_offline_replicas(ids(offline))
                })
                .collect();
            return Some(Described {
                id: topic.topic_id,
                partitions,
            });
        }
        let topic = self.topics.get(name)?;
        let me = self.config.node_id;
        let partitions = topic
            .partitions()
            .iter()
            .map(|(&index, p)| {
                PartitionAnswer::default()
                    .with_partition_index(index)
                    .with_leader_id(BrokerId(me))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(ids([me]))
                    .with_isr_nodes(ids([me]))
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
            })
            .collect();
        Some(Described {
            id: topic.id,
            partitions,
        })
    }
}
