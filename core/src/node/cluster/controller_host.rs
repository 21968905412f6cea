//! The controller on this node: active when this voter leads the quorum and
//! has committed everything in its log, passive (replaying committed
//! records) otherwise.
//!
//! Requests reach the controller from peers (over a connection: the answer
//! goes to the request's slot) or from this node's own broker (the answer
//! goes to [`ControllerCall`]). The active controller turns a request into
//! records, proposes them as one batch, replays them at once (the next
//! request is judged against them, as Kafka's QuorumController does) and
//! answers once the quorum's high watermark passes the batch. On losing
//! leadership every unanswered request gets NOT_CONTROLLER and the
//! controller is rebuilt from the committed log, dropping what was proposed
//! and never committed.

use super::super::responder::Slot;
use super::super::Node;
use super::read_committed_records;
use crate::controller::{configs, encode_batch, Controller, ControllerConfig, MetadataRecord};
use crate::node::config_change;
use crate::storage::Storage;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use std::collections::VecDeque;

/// Requests proposed and not yet committed; more are refused (the quorum's
/// own backlog bound is the real limit, this keeps the queue finite).
const PENDING_REPLIES_MAX: usize = 16_384;
/// Broker sessions expired per timer run.
const FENCES_PER_TIMEOUT_MAX: usize = 64;

/// What this node's own broker asked the controller, so the answer can be
/// routed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerCall {
    Registration,
    Heartbeat,
    /// Sent by the partition's leader in these epochs (its answer is
    /// only for the change pending in them).
    AlterPartition {
        topic: String,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A client's admin request forwarded here; answer its slot at its
    /// version.
    Forward {
        slot: Slot,
    },
    /// Metadata auto-creation: nobody waits for the answer.
    AutoCreate,
    /// The next block of producer ids for InitProducerId.
    AllocateProducerIds,
}

#[derive(Debug, Clone)]
pub enum ControllerReply {
    Remote(Slot),
    Local(ControllerCall),
}

#[derive(Debug)]
struct PendingReply {
    /// The answer may leave once the high watermark reaches this offset.
    commit_offset: i64,
    reply: ControllerReply,
    response: ResponseKind,
}

pub struct ControllerHost {
    config: ControllerConfig,
    controller: Controller,
    /// The next committed offset to replay while passive.
    replayed_to: i64,
    /// The quorum epoch this controller is active in.
    active_epoch: Option<i32>,
    pending: VecDeque<PendingReply>,
}

impl ControllerHost {
    pub fn new(config: ControllerConfig) -> ControllerHost {
        ControllerHost {
            controller: Controller::new(config.clone()),
            config,
            replayed_to: 0,
            active_epoch: None,
            pending: VecDeque::new(),
        }
    }

    pub fn is_active(&self) -> bool {
        self.active_epoch.is_some()
    }

    /// The metadata log offset replayed into the controller so far.
    pub fn replayed_to(&self) -> i64 {
        self.replayed_to
    }

    pub fn check_invariants(&self) {
        self.controller.check_invariants();
        assert!(
            self.pending.len() <= PENDING_REPLIES_MAX,
            "pending replies bounded"
        );
        assert!(
            self.active_epoch.is_some() || self.pending.is_empty(),
            "only an active controller owes answers"
        );
        assert!(
            self.pending
                .iter()
                .zip(self.pending.iter().skip(1))
                .all(|(a, b)| a.commit_offset <= b.commit_offset),
            "replies wait in commit order"
        );
    }
}

/// Kafka's error answer of each controller request.
fn not_controller(request: &RequestKind) -> ResponseKind {
    let code = ResponseError::NotController.code();
    match request {
        RequestKind::BrokerRegistration(_) => ResponseKind::BrokerRegistration(
            BrokerRegistrationResponse::default()
                .with_error_code(code)
                .with_broker_epoch(-1),
        ),
        RequestKind::BrokerHeartbeat(_) => ResponseKind::BrokerHeartbeat(
            BrokerHeartbeatResponse::default()
                .with_error_code(code)
                .with_is_fenced(true),
        ),
        RequestKind::AlterPartition(_) => {
            ResponseKind::AlterPartition(AlterPartitionResponse::default().with_error_code(code))
        }
        RequestKind::AllocateProducerIds(_) => ResponseKind::AllocateProducerIds(
            AllocateProducerIdsResponse::default().with_error_code(code),
        ),
        RequestKind::CreateTopics(r) => {
            let mut response = CreateTopicsResponse::default();
            for t in &r.topics {
                response.topics.push(
                    create_topics_response::CreatableTopicResult::default()
                        .with_name(t.name.clone())
                        .with_error_code(code)
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                );
            }
            ResponseKind::CreateTopics(response)
        }
        RequestKind::DeleteTopics(r) => {
            let mut response = DeleteTopicsResponse::default();
            for name in &r.topic_names {
                response.responses.push(
                    delete_topics_response::DeletableTopicResult::default()
                        .with_name(Some(name.clone()))
                        .with_error_code(code),
                );
            }
            for t in &r.topics {
                response.responses.push(
                    delete_topics_response::DeletableTopicResult::default()
                        .with_name(t.name.clone())
                        .with_topic_id(t.topic_id)
                        .with_error_code(code),
                );
            }
            ResponseKind::DeleteTopics(response)
        }
        RequestKind::ElectLeaders(_) => {
            ResponseKind::ElectLeaders(ElectLeadersResponse::default().with_error_code(code))
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            AlterPartitionReassignmentsResponse::default()
                .with_error_code(code)
                .with_allow_replication_factor_change(r.allow_replication_factor_change),
        ),
        RequestKind::ListPartitionReassignments(_) => ResponseKind::ListPartitionReassignments(
            ListPartitionReassignmentsResponse::default().with_error_code(code),
        ),
        RequestKind::IncrementalAlterConfigs(r) => {
            let changes = config_change::incremental_changes(r);
            let results = refused(changes);
            ResponseKind::IncrementalAlterConfigs(config_change::incremental_response(results))
        }
        RequestKind::AlterConfigs(r) => {
            let changes = config_change::legacy_changes(r);
            let results = refused(changes);
            ResponseKind::AlterConfigs(config_change::legacy_response(results))
        }
        RequestKind::CreatePartitions(r) => {
            let mut response = CreatePartitionsResponse::default();
            for t in &r.topics {
                response.results.push(
                    create_partitions_response::CreatePartitionsTopicResult::default()
                        .with_name(t.name.clone())
                        .with_error_code(code),
                );
            }
            ResponseKind::CreatePartitions(response)
        }
        other => panic!("not a controller request: {other:?}"),
    }
}

pub fn not_controller_answer(request: &RequestKind) -> ResponseKind {
    not_controller(request)
}

impl<S: Storage> Node<S> {
    /// A request for the controller, from a peer (`Remote`) or from this
    /// node (`Local`).
    pub(in crate::node) fn handle_controller_request(
        &mut self,
        reply: ControllerReply,
        request: RequestKind,
    ) {
        let host = &self.cluster().controller;
        if !host.is_active() || host.pending.len() >= PENDING_REPLIES_MAX {
            let answer = not_controller(&request);
            self.deliver_controller_reply(reply, answer);
            return;
        }
        let now = self.now;
        let next_offset = self.cluster().quorum.log_end_offset();
        let controller = &mut self.cluster_mut().controller.controller;
        let (records, response) = match &request {
            RequestKind::BrokerRegistration(r) => {
                let result = controller.handle_broker_registration(now, r, next_offset);
                (
                    result.records,
                    ResponseKind::BrokerRegistration(result.response),
                )
            }
            RequestKind::BrokerHeartbeat(r) => {
                let result = controller.handle_broker_heartbeat(now, r);
                (
                    result.records,
                    ResponseKind::BrokerHeartbeat(result.response),
                )
            }
            RequestKind::AlterPartition(r) => {
                let result = controller.handle_alter_partition(r);
                (
                    result.records,
                    ResponseKind::AlterPartition(result.response),
                )
            }
            RequestKind::AllocateProducerIds(r) => {
                let result = controller.handle_allocate_producer_ids(r);
                (
                    result.records,
                    ResponseKind::AllocateProducerIds(result.response),
                )
            }
            RequestKind::CreateTopics(r) => {
                let result = controller.handle_create_topics(r);
                (result.records, ResponseKind::CreateTopics(result.response))
            }
            RequestKind::DeleteTopics(r) => {
                let result = controller.handle_delete_topics(r);
                (result.records, ResponseKind::DeleteTopics(result.response))
            }
            RequestKind::CreatePartitions(r) => {
                let result = controller.handle_create_partitions(r);
                (
                    result.records,
                    ResponseKind::CreatePartitions(result.response),
                )
            }
            RequestKind::ElectLeaders(r) => {
                let result = controller.handle_elect_leaders(r);
                (result.records, ResponseKind::ElectLeaders(result.response))
            }
            RequestKind::AlterPartitionReassignments(r) => {
                let result = controller.handle_alter_partition_reassignments(r);
                (
                    result.records,
                    ResponseKind::AlterPartitionReassignments(result.response),
                )
            }
            RequestKind::ListPartitionReassignments(r) => {
                let response = controller.handle_list_partition_reassignments(r);
                (
                    Vec::new(),
                    ResponseKind::ListPartitionReassignments(response),
                )
            }
            RequestKind::IncrementalAlterConfigs(r) => {
                let changes = config_change::incremental_changes(r);
                let (records, results) =
                    configs::alter_configs(controller.image(), changes, r.validate_only);
                let response = config_change::incremental_response(results);
                (records, ResponseKind::IncrementalAlterConfigs(response))
            }
            RequestKind::AlterConfigs(r) => {
                let changes = config_change::legacy_changes(r);
                let (records, results) =
                    configs::alter_configs(controller.image(), changes, r.validate_only);
                (
                    records,
                    ResponseKind::AlterConfigs(config_change::legacy_response(results)),
                )
            }
            other => panic!("not a controller request: {other:?}"),
        };
        if records.is_empty() {
            self.deliver_controller_reply(reply, response);
            return;
        }
        match self.propose_records(&records) {
            Some(commit_offset) => self
                .cluster_mut()
                .controller
                .pending
                .push_back(PendingReply {
                    commit_offset,
                    reply,
                    response,
                }),
            None => {
                let answer = not_controller(&request);
                self.deliver_controller_reply(reply, answer);
            }
        }
    }

    /// Proposes `records` as one batch and replays them; returns the offset
    /// the high watermark must reach for them to be committed.
    fn propose_records(&mut self, records: &[MetadataRecord]) -> Option<i64> {
        assert!(!records.is_empty(), "nothing to propose");
        let now = self.now;
        let batch = encode_batch(records, now.unix_millis());
        let Node {
            cluster, storage, ..
        } = self;
        let cluster = cluster.as_mut().expect("cluster node");
        match cluster.quorum.propose(storage, now, &batch) {
            Ok(first_offset) => {
                let host = &mut cluster.controller;
                host.controller.replay_all(first_offset, records);
                host.replayed_to = first_offset + records.len() as i64;
                self.drain_quorum(None);
                Some(first_offset + records.len() as i64)
            }
            Err(e) => {
                tracing::warn!(error = %e, "controller proposal refused");
                None
            }
        }
    }

    fn deliver_controller_reply(&mut self, reply: ControllerReply, response: ResponseKind) {
        match reply {
            ControllerReply::Remote(slot) => {
                self.responder.complete(slot, response, &mut self.outputs)
            }
            ControllerReply::Local(call) => self.handle_controller_answer(call, Some(response)),
        }
    }

    /// Activation, deactivation, passive replay and committed answers.
    pub(in crate::node) fn drive_controller(&mut self) {
        let quorum = &self.cluster().quorum;
        if quorum.is_observer() {
            // A broker-only node runs no controller (Kafka's
            // process.roles=broker): it never leads the quorum, so a
            // controller here could never activate, and replaying the log
            // into one would keep a second copy of the image it acts on.
            debug_assert!(!self.cluster().controller.is_active());
            debug_assert_eq!(self.cluster().controller.replayed_to, 0);
            return;
        }
        let (is_leader, epoch) = (quorum.is_leader(), quorum.epoch());
        let high_watermark = quorum.high_watermark().unwrap_or(0);
        let log_end_offset = quorum.log_end_offset();
        let host = &self.cluster().controller;
        if let Some(active_epoch) = host.active_epoch {
            if !is_leader || epoch != active_epoch {
                self.deactivate_controller();
            } else {
                self.release_committed_replies(high_watermark);
                return;
            }
        }
        self.replay_committed_into_controller(high_watermark);
        let host = &self.cluster().controller;
        // Active only once every record in the log (those of earlier epochs
        // included) is committed and replayed: the image is then the truth.
        if is_leader && high_watermark == log_end_offset && host.replayed_to >= high_watermark {
            tracing::info!(node = self.config.node_id, epoch, "controller active");
            self.cluster_mut().controller.active_epoch = Some(epoch);
            // Every unfenced broker gets a full session from now (Kafka's
            // rule for a new controller); this also starts their timers.
            let now = self.now;
            let records = self.cluster_mut().controller.controller.handle_timeout(now);
            assert!(records.is_empty(), "no session expires at activation");
        }
    }

    fn replay_committed_into_controller(&mut self, high_watermark: i64) {
        let log_start = self.cluster().quorum.log_start_offset();
        if self.cluster().controller.replayed_to < log_start {
            // Below the log start only the snapshot holds the records.
            let Node {
                cluster, storage, ..
            } = self;
            let cluster = cluster.as_mut().expect("cluster node");
            let Some(image) = super::load_metadata_snapshot(&cluster.quorum, storage) else {
                return;
            };
            assert!(
                !cluster.controller.is_active(),
                "an active controller is never behind the log start"
            );
            cluster.controller.controller.load_snapshot(image);
            cluster.controller.replayed_to = log_start;
        }
        let from = self.cluster().controller.replayed_to;
        if from >= high_watermark {
            return;
        }
        let Node {
            cluster, storage, ..
        } = self;
        let cluster = cluster.as_mut().expect("cluster node");
        let (records, next) = read_committed_records(&mut cluster.quorum, storage, from);
        let host = &mut cluster.controller;
        for (offset, record) in &records {
            host.controller.replay(*offset, record);
        }
        host.replayed_to = next;
    }

    fn deactivate_controller(&mut self) {
        tracing::info!(node = self.config.node_id, "controller no longer active");
        let host = &mut self.cluster_mut().controller;
        host.active_epoch = None;
        host.controller = Controller::new(host.config.clone());
        host.replayed_to = 0;
        let pending = std::mem::take(&mut host.pending);
        for p in pending {
            let answer = not_controller_for(&p.response);
            self.deliver_controller_reply(p.reply, answer);
        }
    }

    fn release_committed_replies(&mut self, high_watermark: i64) {
        while let Some(front) = self.cluster().controller.pending.front() {
            if front.commit_offset > high_watermark {
                break;
            }
            let p = self
                .cluster_mut()
                .controller
                .pending
                .pop_front()
                .expect("front exists");
            self.deliver_controller_reply(p.reply, p.response);
        }
    }

    /// Fences brokers whose sessions expired (active controller only).
    pub(in crate::node) fn controller_timeouts(&mut self) {
        let now = self.now;
        for _ in 0..FENCES_PER_TIMEOUT_MAX {
            let host = &mut self.cluster_mut().controller;
            if !host.is_active() || host.controller.poll_timeout().is_none_or(|at| at > now) {
                return;
            }
            let records = host.controller.handle_timeout(now);
            if records.is_empty() || self.propose_records(&records).is_none() {
                return;
            }
        }
    }

    pub(in crate::node) fn controller_deadline(&self) -> Option<crate::time::Instant> {
        let host = &self.cluster().controller;
        if host.is_active() {
            host.controller.poll_timeout()
        } else {
            None
        }
    }
}

/// Every resource refused with NOT_CONTROLLER.
fn refused(changes: Vec<config_change::ResourceChange>) -> config_change::ChangeResults {
    changes
        .into_iter()
        .map(|c| {
            let error = (
                ResponseError::NotController,
                "no active controller".to_string(),
            );
            (c, Err(error))
        })
        .collect()
}

/// NOT_CONTROLLER in the shape of an answer already built.
fn not_controller_for(response: &ResponseKind) -> ResponseKind {
    let code = ResponseError::NotController.code();
    let mut answer = response.clone();
    match &mut answer {
        ResponseKind::BrokerRegistration(r) => {
            r.error_code = code;
            r.broker_epoch = -1;
        }
        ResponseKind::BrokerHeartbeat(r) => r.error_code = code,
        ResponseKind::AlterPartition(r) => r.error_code = code,
        ResponseKind::AllocateProducerIds(r) => r.error_code = code,
        ResponseKind::CreateTopics(r) => r.topics.iter_mut().for_each(|t| t.error_code = code),
        ResponseKind::DeleteTopics(r) => r.responses.iter_mut().for_each(|t| t.error_code = code),
        ResponseKind::CreatePartitions(r) => r.results.iter_mut().for_each(|t| t.error_code = code),
        ResponseKind::ElectLeaders(r) => r.error_code = code,
        ResponseKind::AlterPartitionReassignments(r) => {
            r.error_code = code;
            r.responses.clear();
        }
        ResponseKind::ListPartitionReassignments(r) => {
            r.error_code = code;
            r.topics.clear();
        }
        ResponseKind::IncrementalAlterConfigs(r) => {
            r.responses.iter_mut().for_each(|t| t.error_code = code)
        }
        ResponseKind::AlterConfigs(r) => r.responses.iter_mut().for_each(|t| t.error_code = code),
        _ => {}
    }
    answer
}
