//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions,
//! DeleteRecords.

use super::super::partition_map::PartitionMap;
use super::super::topic_config;
use super::super::topics::{
    partition_dir, validate_topic_name, Partition, Topic, PARTITIONS_PER_TOPIC_MAX,
};
use super::super::Node;
use super::produce::log_error_code;
use super::str_bytes;
use crate::log::PartitionLog;
use crate::storage::Storage;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    TopicName,
};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use uuid::Uuid;

/// A Kafka error code with the message that explains it to an operator.
pub type AdminError = (i16, String);

/// CreateTopics v5 and later return the topic's configs and counts.
const CREATE_TOPICS_CONFIGS_VERSION_MIN: i16 = 5;
/// DeleteTopics v6 may name topics by id.
const DELETE_TOPICS_BY_ID_VERSION_MIN: i16 = 6;

impl<S: Storage> Node<S> {
    /// Validates and creates a topic; its logs exist and the registry is
    /// durable before this returns Ok.
    pub(crate) fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
    ) -> Result<Uuid, AdminError> {
        self.validate_new_topic(name, partitions, &overrides)?;
        let mut id = self.random_uuid();
        while id.is_nil() || self.topics.name_of(&id).is_some() {
            id = self.random_uuid();
        }
        let config = topic_config::log_config(&overrides, &self.config.log);
        let mut logs = PartitionMap::default();
        for index in 0..partitions {
            let (log, _) = PartitionLog::open(
                &mut self.storage,
                &partition_dir(name, index),
                config.clone(),
                self.now,
            )
            .map_err(|e| (ResponseError::KafkaStorageError.code(), e.to_string()))?;
            logs.insert(index, Partition::new(log, 0));
        }
        self.topics
            .insert(Topic::new(name.to_string(), id, logs, overrides, false));
        if let Err(e) = self.topics.persist(&mut self.storage) {
            let topic = self.topics.remove(name).expect("just inserted");
            for p in topic.into_partitions().into_values() {
                let _ = p.log.delete(&mut self.storage);
            }
            return Err((ResponseError::KafkaStorageError.code(), e.to_string()));
        }
        Ok(id)
    }

    fn validate_new_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        validate_topic_name(name).map_err(|m| (ResponseError::InvalidTopicException.code(), m))?;
        if self.topics.contains(name) {
            return Err((
                ResponseError::TopicAlreadyExists.code(),
                format!("topic '{name}' already exists"),
            ));
        }
        if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
            return Err((
                ResponseError::InvalidPartitions.code(),
                format!(
                    "partition count must be in [1, {PARTITIONS_PER_TOPIC_MAX}], got {partitions}"
                ),
            ));
        }
        for (key, value) in overrides {
            topic_config::validate(key, value)
                .map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
        }
        Ok(())
    }

    pub(crate) fn handle_create_topics(
        &mut self,
        request: &CreateTopicsRequest,
        version: i16,
    ) -> CreateTopicsResponse {
        let mut response = CreateTopicsResponse::default();
        for topic in &request.topics {
            let partitions = if topic.num_partitions == -1 {
                self.config.num_partitions
            } else {
                topic.num_partitions
            };
            let mut result = CreatableTopicResult::default()
                .with_name(topic.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            let outcome = self.create_topics_one(topic, partitions, request.validate_only);
            match outcome {
                Ok(id) => {
                    result.topic_id = id;
                    if version >= CREATE_TOPICS_CONFIGS_VERSION_MIN {
                        result.num_partitions = partitions;
                        result.replication_factor = 1;
                        result.configs = Some(self.creatable_configs(&overrides_of(topic)));
                    }
                }
                Err((code, message)) => {
                    result.error_code = code;
                    result.error_message = Some(str_bytes(&message));
                }
            }
            response.topics.push(result);
        }
        response
    }

    fn create_topics_one(
        &mut self,
        topic: &kafka_protocol::messages::create_topics_request::CreatableTopic,
        partitions: i32,
        validate_only: bool,
    ) -> Result<Uuid, AdminError> {
        let name = topic.name.0.as_str();
        if !(topic.replication_factor == -1 || topic.replication_factor == 1) {
            return Err((
                ResponseError::InvalidReplicationFactor.code(),
                format!(
                    "replication factor {} is larger than the 1 available broker",
                    topic.replication_factor
                ),
            ));
        }
        let mut partitions = partitions;
        if !topic.assignments.is_empty() {
            if topic.num_partitions != -1 || topic.replication_factor != -1 {
                return Err((
                    ResponseError::InvalidRequest.code(),
                    "give either assignments or partitions and replication factor".into(),
                ));
            }
            let node: i32 = self.config.node_id;
            if topic
                .assignments
                .iter()
                .any(|a| a.broker_ids.iter().any(|b| b.0 != node) || a.broker_ids.len() != 1)
            {
                return Err((
                    ResponseError::InvalidReplicaAssignment.code(),
                    format!("assignments may only name broker {node}"),
                ));
            }
            partitions = topic.assignments.len() as i32;
        }
        let overrides = overrides_of(topic);
        if validate_only {
            self.validate_new_topic(name, partitions, &overrides)?;
            return Ok(Uuid::nil());
        }
        let id = self.create_topic(name, partitions, overrides)?;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(id)
    }

    fn creatable_configs(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<CreatableTopicConfigs> {
        topic_config::describe(overrides, &self.config.log)
            .into_iter()
            .map(|c| {
                CreatableTopicConfigs::default()
                    .with_name(str_bytes(c.name))
                    .with_value(Some(str_bytes(&c.value)))
                    .with_config_source(c.source as i8)
            })
            .collect()
    }

    pub(crate) fn handle_delete_topics(
        &mut self,
        request: &DeleteTopicsRequest,
        version: i16,
    ) -> DeleteTopicsResponse {
        let mut targets: Vec<(Option<String>, Uuid)> = request
            .topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect();
        if version >= DELETE_TOPICS_BY_ID_VERSION_MIN {
            targets = request
                .topics
                .iter()
                .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
                .collect();
        }
        let mut response = DeleteTopicsResponse::default();
        for (name, id) in targets {
            let name = name.or_else(|| self.topics.name_of(&id).map(str::to_string));
            let mut result = DeletableTopicResult::default().with_topic_id(id);
            match name {
                None => result.error_code = ResponseError::UnknownTopicId.code(),
                Some(name) => {
                    result.name = Some(TopicName(str_bytes(&name)));
                    if let Err((code, message)) = self.delete_topic(&name) {
                        result.error_code = code;
                        result.error_message = Some(str_bytes(&message));
                    }
                }
            }
            response.responses.push(result);
        }
        response
    }

    fn delete_topic(&mut self, name: &str) -> Result<(), AdminError> {
        let topic = self.topics.remove(name).ok_or_else(|| {
            (
                ResponseError::UnknownTopicOrPartition.code(),
                format!("no topic '{name}'"),
            )
        })?;
        self.topics
            .persist(&mut self.storage)
            .map_err(|e| (ResponseError::KafkaStorageError.code(), e.to_string()))?;
        for p in topic.into_partitions().into_values() {
            if let Err(e) = p.log.delete(&mut self.storage) {
                tracing::warn!(topic = name, error = %e, "deleting a partition's files failed; load will remove the orphan");
            }
        }
        // Parked fetches on this topic must now answer UNKNOWN_TOPIC.
        self.high_watermark_moved = true;
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    pub(crate) fn handle_create_partitions(
        &mut self,
        request: &CreatePartitionsRequest,
    ) -> CreatePartitionsResponse {
        let mut response = CreatePartitionsResponse::default();
        for topic in &request.topics {
            let mut result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
            if let Err((code, message)) = self.create_partitions(
                topic.name.0.as_str(),
                topic.count,
                topic.assignments.as_deref().filter(|a| !a.is_empty()),
                request.validate_only,
            ) {
                result.error_code = code;
                result.error_message = Some(str_bytes(&message));
            }
            response.results.push(result);
        }
        response
    }

    fn create_partitions(
        &mut self,
        name: &str,
        count: i32,
        assignments: Option<
            &[kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment],
        >,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let node_id = self.config.node_id;
        let now = self.now;
        let defaults = self.config.log.clone();
        let topic = self.topics.get_mut(name).ok_or_else(|| {
            (
                ResponseError::UnknownTopicOrPartition.code(),
                format!("no topic '{name}'"),
            )
        })?;
        let current = topic.partitions().len() as i32;
        if count <= current || count > PARTITIONS_PER_TOPIC_MAX {
            return Err((ResponseError::InvalidPartitions.code(), format!("topic '{name}' has {current} partitions; the new count must be in [{}, {PARTITIONS_PER_TOPIC_MAX}], got {count}", current + 1)));
        }
        if let Some(assignments) = assignments {
            if assignments.len() as i32 != count - current
                || assignments
                    .iter()
                    .any(|a| a.broker_ids.len() != 1 || a.broker_ids[0].0 != node_id)
            {
                return Err((
                    ResponseError::InvalidReplicaAssignment.code(),
                    format!("one assignment per new partition, naming only broker {node_id}"),
                ));
            }
        }
        if validate_only {
            return Ok(());
        }
        let config = topic_config::log_config(&topic.overrides, &defaults);
        for index in current..count {
            let (log, _) = PartitionLog::open(
                &mut self.storage,
                &partition_dir(name, index),
                config.clone(),
                now,
            )
            .map_err(|e| (ResponseError::KafkaStorageError.code(), e.to_string()))?;
            topic.insert_partition(index, Partition::new(log, 0));
        }
        self.topics
            .persist(&mut self.storage)
            .map_err(|e| (ResponseError::KafkaStorageError.code(), e.to_string()))?;
        tracing::info!(
            topic = name,
            from = current,
            to = count,
            "created partitions"
        );
        Ok(())
    }

    /// ElectLeaders on a standalone broker: every partition already has its
    /// one replica as leader, so each election is not needed (a cluster node
    /// forwards the request to the controller instead).
    pub(crate) fn handle_elect_leaders_standalone(
        &mut self,
        request: &kafka_protocol::messages::ElectLeadersRequest,
    ) -> kafka_protocol::messages::ElectLeadersResponse {
        use kafka_protocol::messages::elect_leaders_response::{
            PartitionResult, ReplicaElectionResult,
        };
        let wanted: Vec<(TopicName, Vec<i32>)> = match &request.topic_partitions {
            Some(list) => list
                .iter()
                .map(|t| (t.topic.clone(), t.partitions.clone()))
                .collect(),
            None => self
                .topics
                .iter()
                .map(|t| {
                    (
                        TopicName(super::str_bytes(&t.name)),
                        t.partitions().keys().copied().collect(),
                    )
                })
                .collect(),
        };
        let mut response = kafka_protocol::messages::ElectLeadersResponse::default();
        for (topic, partitions) in wanted {
            let known = self.topics.get(topic.0.as_str());
            let results = partitions
                .into_iter()
                .map(|partition| {
                    let error = match known.filter(|t| t.partitions().contains_key(&partition)) {
                        Some(_) => ResponseError::ElectionNotNeeded,
                        None => ResponseError::UnknownTopicOrPartition,
                    };
                    PartitionResult::default()
                        .with_partition_id(partition)
                        .with_error_code(error.code())
                })
                .collect();
            response.replica_election_results.push(
                ReplicaElectionResult::default()
                    .with_topic(topic)
                    .with_partition_result(results),
            );
        }
        response
    }

    /// AlterPartitionReassignments on a standalone broker: the only broker
    /// is this one, so the only valid target is `[self]`, which is where
    /// every partition already is; nothing is ever in progress to cancel.
    pub(crate) fn handle_alter_partition_reassignments_standalone(
        &mut self,
        request: &kafka_protocol::messages::AlterPartitionReassignmentsRequest,
    ) -> kafka_protocol::messages::AlterPartitionReassignmentsResponse {
        use kafka_protocol::messages::alter_partition_reassignments_response::{
            ReassignablePartitionResponse, ReassignableTopicResponse,
        };
        let self_id = self.config.node_id;
        let mut response = kafka_protocol::messages::AlterPartitionReassignmentsResponse::default()
            .with_allow_replication_factor_change(request.allow_replication_factor_change);
        for topic in &request.topics {
            let known = self.topics.get(topic.name.0.as_str());
            let mut result = ReassignableTopicResponse::default().with_name(topic.name.clone());
            for partition in &topic.partitions {
                let exists =
                    known.is_some_and(|t| t.partitions().contains_key(&partition.partition_index));
                let refusal = match &partition.replicas {
                    _ if !exists => {
                        Some((ResponseError::UnknownTopicOrPartition, "no such partition"))
                    }
                    None => Some((
                        ResponseError::NoReassignmentInProgress,
                        "no reassignment in progress",
                    )),
                    Some(r) if r.len() == 1 && r[0].0 == self_id => None,
                    Some(_) => Some((
                        ResponseError::InvalidReplicaAssignment,
                        "a standalone broker is the only replica there is",
                    )),
                };
                let mut p = ReassignablePartitionResponse::default()
                    .with_partition_index(partition.partition_index);
                if let Some((code, message)) = refusal {
                    p.error_code = code.code();
                    p.error_message = Some(super::str_bytes(message));
                }
                result.partitions.push(p);
            }
            response.responses.push(result);
        }
        response
    }

    pub(crate) fn handle_delete_records(
        &mut self,
        request: &DeleteRecordsRequest,
    ) -> DeleteRecordsResponse {
        let mut response = DeleteRecordsResponse::default();
        for topic in &request.topics {
            let mut result = DeleteRecordsTopicResult::default().with_name(topic.name.clone());
            for dp in &topic.partitions {
                let mut pr = DeleteRecordsPartitionResult::default()
                    .with_partition_index(dp.partition_index)
                    .with_low_watermark(-1);
                match self.delete_records(topic.name.0.as_str(), dp.partition_index, dp.offset) {
                    Ok(low_watermark) => pr.low_watermark = low_watermark,
                    Err(code) => pr.error_code = code,
                }
                result.partitions.push(pr);
            }
            response.topics.push(result);
        }
        response
    }

    /// Kafka's DeleteRecords: `-1` means the high watermark; beyond it is
    /// OFFSET_OUT_OF_RANGE.
    fn delete_records(&mut self, topic: &str, partition: i32, offset: i64) -> Result<i64, i16> {
        let p = crate::node::leader_partition(
            &mut self.topics,
            self.cluster.as_ref(),
            topic,
            partition,
        )?;
        let offset = if offset == -1 {
            p.high_watermark
        } else {
            offset
        };
        if offset < 0 || offset > p.high_watermark {
            return Err(ResponseError::OffsetOutOfRange.code());
        }
        let low_watermark = p
            .log
            .delete_records_before(&mut self.storage, offset)
            .map_err(|e| log_error_code(&e))?;
        tracing::info!(topic, partition, low_watermark, "deleted records");
        Ok(low_watermark)
    }
}

fn overrides_of(
    topic: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> BTreeMap<String, String> {
    topic
        .configs
        .iter()
        .filter_map(|c| {
            c.value
                .as_ref()
                .map(|v| (c.name.to_string(), v.to_string()))
        })
        .collect()
}
