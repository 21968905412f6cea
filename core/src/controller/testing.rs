//! A test harness that plays the node's part: it hands requests to a
//! [`Controller`], "commits" the records at once at consecutive offsets,
//! replays them, and checks the invariants after every record. For tests
//! and the simulator's unit checks only.

use super::{
    Controller, ControllerConfig, ControllerResult, MetadataRecord, PartitionRegistration,
};
use crate::time::Instant;
use kafka_protocol::messages::{
    alter_partition_reassignments_request, alter_partition_request, create_topics_request,
    list_partition_reassignments_request, AlterPartitionReassignmentsRequest,
    AlterPartitionRequest, BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId,
    BrokerRegistrationRequest, CreateTopicsRequest, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;
use uuid::Uuid;

/// An ongoing reassignment as a test compares it: (topic, partition,
/// replicas, adding, removing).
pub type Ongoing = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// The reassignments a ListPartitionReassignments answer lists.
#[doc(hidden)]
pub fn ongoing_reassignments(response: &ListPartitionReassignmentsResponse) -> Vec<Ongoing> {
    assert_eq!(response.error_code, 0, "{response:?}");
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    ids(&p.replicas),
                    ids(&p.adding_replicas),
                    ids(&p.removing_replicas),
                )
            })
        })
        .collect()
}

#[doc(hidden)]
pub struct Harness {
    pub controller: Controller,
    pub now: Instant,
    /// Every record applied, with its offset: the "committed log".
    pub log: Vec<(i64, MetadataRecord)>,
    incarnations: u128,
}

#[doc(hidden)]
impl Harness {
    pub fn new(config: ControllerConfig) -> Harness {
        Harness {
            controller: Controller::new(config),
            now: Instant::from_millis(1_000),
            log: Vec::new(),
            incarnations: 0,
        }
    }

    /// The offset the next record gets.
    pub fn next_offset(&self) -> i64 {
        self.log.len() as i64
    }

    /// Replays `records` at the next offsets, checking invariants after
    /// each one.
    pub fn apply(&mut self, records: Vec<MetadataRecord>) {
        for record in records {
            let offset = self.next_offset();
            self.controller.replay(offset, &record);
            self.controller.check_invariants();
            self.log.push((offset, record));
        }
    }

    /// Hands a request to the controller and commits what it returns.
    pub fn run<R>(&mut self, request: impl FnOnce(&mut Controller) -> ControllerResult<R>) -> R {
        let result = request(&mut self.controller);
        self.apply(result.records);
        result.response
    }

    pub fn advance_ms(&mut self, ms: u64) {
        self.now = self.now + Duration::from_millis(ms);
    }

    /// Registers `id`; `clean` names the previous epoch as a broker that
    /// shut down cleanly does. Returns the new epoch or the error code.
    pub fn register(&mut self, id: i32, rack: &str, clean: bool) -> Result<i64, i16> {
        let previous = self
            .controller
            .image()
            .brokers
            .get(&id)
            .map(|b| b.epoch)
            .filter(|_| clean)
            .unwrap_or(-1);
        self.incarnations += 1;
        let mut request = BrokerRegistrationRequest::default();
        request.broker_id = BrokerId(id);
        request.cluster_id = StrBytes::from_string(self.controller.config().cluster_id.clone());
        request.incarnation_id = Uuid::from_u128(self.incarnations);
        request.rack = Some(StrBytes::from_string(rack.to_string()));
        request.previous_broker_epoch = previous;
        let now = self.now;
        let next = self.next_offset();
        let response = self.run(|c| c.handle_broker_registration(now, &request, next));
        if response.error_code != 0 {
            return Err(response.error_code);
        }
        Ok(response.broker_epoch)
    }

    /// A heartbeat from `id` at its current epoch, caught up with the log.
    pub fn heartbeat(
        &mut self,
        id: i32,
        want_fence: bool,
        want_shut_down: bool,
    ) -> BrokerHeartbeatResponse {
        let mut request = BrokerHeartbeatRequest::default();
        request.broker_id = BrokerId(id);
        request.broker_epoch = self
            .controller
            .image()
            .brokers
            .get(&id)
            .map_or(-1, |b| b.epoch);
        request.current_metadata_offset = self.next_offset() - 1;
        request.want_fence = want_fence;
        request.want_shut_down = want_shut_down;
        let now = self.now;
        self.run(|c| c.handle_broker_heartbeat(now, &request))
    }

    /// Registers and unfences.
    pub fn start(&mut self, id: i32, rack: &str) {
        self.register(id, rack, false)
            .expect("registration succeeds");
        let response = self.heartbeat(id, false, false);
        assert!(!response.is_fenced, "broker {id} unfenced");
    }

    /// Runs session expiry until nothing more expires.
    pub fn expire_sessions(&mut self) {
        for _ in 0..super::image::BROKERS_MAX {
            let records = self.controller.handle_timeout(self.now);
            if records.is_empty() {
                return;
            }
            self.apply(records);
        }
        panic!("session expiry did not settle");
    }

    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(&str, &str)],
    ) -> Result<Uuid, i16> {
        let mut topic = create_topics_request::CreatableTopic::default();
        topic.name = TopicName(StrBytes::from_string(name.to_string()));
        topic.num_partitions = partitions;
        topic.replication_factor = replication_factor;
        for (key, value) in configs {
            let mut config = create_topics_request::CreatableTopicConfig::default();
            config.name = StrBytes::from_string(key.to_string());
            config.value = Some(StrBytes::from_string(value.to_string()));
            topic.configs.push(config);
        }
        let mut request = CreateTopicsRequest::default();
        request.topics.push(topic);
        let response = self.run(|c| c.handle_create_topics(&request));
        let result = &response.topics[0];
        if result.error_code != 0 {
            return Err(result.error_code);
        }
        Ok(result.topic_id)
    }

    /// Creates a one-partition topic on exactly `replicas` (the first
    /// leads), with `min.insync.replicas` set.
    pub fn create_assigned(
        &mut self,
        name: &str,
        replicas: &[i32],
        min_insync_replicas: usize,
    ) -> Uuid {
        let mut topic = create_topics_request::CreatableTopic::default();
        topic.name = TopicName(StrBytes::from_string(name.to_string()));
        topic.num_partitions = -1;
        topic.replication_factor = -1;
        let mut assignment = create_topics_request::CreatableReplicaAssignment::default();
        assignment.partition_index = 0;
        assignment.broker_ids = replicas.iter().map(|&r| BrokerId(r)).collect();
        topic.assignments.push(assignment);
        let mut config = create_topics_request::CreatableTopicConfig::default();
        config.name = StrBytes::from_static_str(super::MIN_INSYNC_REPLICAS_CONFIG);
        config.value = Some(StrBytes::from_string(min_insync_replicas.to_string()));
        topic.configs.push(config);
        let mut request = CreateTopicsRequest::default();
        request.topics.push(topic);
        let response = self.run(|c| c.handle_create_topics(&request));
        let result = &response.topics[0];
        assert_eq!(result.error_code, 0, "{:?}", result.error_message);
        result.topic_id
    }

    /// AlterPartitionReassignments of one partition: `Some(target)`
    /// reassigns, `None` cancels. Returns the partition's error code.
    pub fn reassign(
        &mut self,
        topic: &str,
        partition: i32,
        target: Option<&[i32]>,
        allow_replication_factor_change: bool,
    ) -> i16 {
        let mut p = alter_partition_reassignments_request::ReassignablePartition::default();
        p.partition_index = partition;
        p.replicas = target.map(|t| t.iter().map(|&r| BrokerId(r)).collect());
        let mut t = alter_partition_reassignments_request::ReassignableTopic::default();
        t.name = TopicName(StrBytes::from_string(topic.to_string()));
        t.partitions.push(p);
        let mut request = AlterPartitionReassignmentsRequest::default();
        request.allow_replication_factor_change = allow_replication_factor_change;
        request.topics.push(t);
        let response = self.run(|c| c.handle_alter_partition_reassignments(&request));
        assert_eq!(response.error_code, 0);
        response.responses[0].partitions[0].error_code
    }

    /// ListPartitionReassignments of `topics` (name, partitions), or of
    /// every partition.
    pub fn list_reassignments(
        &self,
        topics: Option<&[(&str, &[i32])]>,
    ) -> ListPartitionReassignmentsResponse {
        let mut request = ListPartitionReassignmentsRequest::default();
        request.topics = topics.map(|list| {
            list.iter()
                .map(|(name, partitions)| {
                    let mut t =
                        list_partition_reassignments_request::ListPartitionReassignmentsTopics::default();
                    t.name = TopicName(StrBytes::from_string(name.to_string()));
                    t.partition_indexes = partitions.to_vec();
                    t
                })
                .collect()
        });
        self.controller
            .handle_list_partition_reassignments(&request)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> PartitionRegistration {
        self.controller
            .image()
            .topic_by_name(topic)
            .and_then(|t| t.partitions.get(&partition))
            .unwrap_or_else(|| panic!("{topic}-{partition} exists"))
            .clone()
    }

    /// An AlterPartition from the partition's leader naming `members` with
    /// their epochs, and the epochs it believes current. Returns the
    /// partition's error code.
    pub fn alter_partition(
        &mut self,
        topic: &str,
        partition: i32,
        members: &[(i32, i64)],
        leader_epoch: i32,
        partition_epoch: i32,
    ) -> i16 {
        let leader = self.partition(topic, partition).assignment.leader;
        let topic_id = self
            .controller
            .image()
            .topic_by_name(topic)
            .expect("topic")
            .topic_id;
        let mut data = alter_partition_request::PartitionData::default();
        data.partition_index = partition;
        data.leader_epoch = leader_epoch;
        data.partition_epoch = partition_epoch;
        for &(id, epoch) in members {
            let mut state = alter_partition_request::BrokerState::default();
            state.broker_id = BrokerId(id);
            state.broker_epoch = epoch;
            data.new_isr_with_epochs.push(state);
        }
        let mut topic_data = alter_partition_request::TopicData::default();
        topic_data.topic_id = topic_id;
        topic_data.partitions.push(data);
        let mut request = AlterPartitionRequest::default();
        request.broker_id = BrokerId(leader);
        request.broker_epoch = self
            .controller
            .image()
            .brokers
            .get(&leader)
            .map_or(-1, |b| b.epoch);
        request.topics.push(topic_data);
        let response = self.run(|c| c.handle_alter_partition(&request));
        if response.error_code != 0 {
            return response.error_code;
        }
        response.topics[0].partitions[0].error_code
    }

    /// `id` at its current epoch, as an ISR member names itself.
    pub fn member(&self, id: i32) -> (i32, i64) {
        (id, self.controller.image().brokers[&id].epoch)
    }

    /// A fresh controller that replays the whole log.
    pub fn replayed(&self) -> Controller {
        let mut fresh = Controller::new(self.controller.config().clone());
        for (offset, record) in &self.log {
            fresh.replay(*offset, record);
        }
        fresh
    }
}
