//! ConsumerGroupHeartbeat and ConsumerGroupDescribe (KIP-848): Kafka
//! requests in and out of the pure `group::consumer_groups` state machine.
//! The coordinator of a group is the same as for the classic protocol (the
//! leader of its `__consumer_offsets` partition).

use super::super::responder::Slot;
use super::super::Node;
use super::group::GroupReplyTo;
use super::str_bytes;
use crate::group::consumer_groups::{HeartbeatIn, HeartbeatOut, TopicPartition, TopicsView};
use crate::group::Reply;
use crate::storage::Storage;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member, TopicPartitions as DescribedTopic,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, GroupId, ResponseKind, TopicName,
};
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// `{topic id: [partitions]}` from a set of topic partitions.
fn by_topic(partitions: &BTreeSet<TopicPartition>) -> BTreeMap<Uuid, Vec<i32>> {
    let mut out: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        out.entry(*topic).or_default().push(*partition);
    }
    out
}

impl<S: Storage> Node<S> {
    /// Every topic a member may subscribe to: name -> (id, partitions).
    fn topics_view(&self) -> TopicsView {
        match &self.cluster {
            Some(cluster) => cluster
                .image
                .topics
                .values()
                .map(|t| (t.name.clone(), (t.topic_id, t.partitions.len() as i32)))
                .collect(),
            None => self
                .topics
                .iter()
                .map(|t| (t.name.clone(), (t.id, t.partitions().len() as i32)))
                .collect(),
        }
    }

    /// A heartbeat is answered once the records of what it changed (and of
    /// every earlier change of its group) are durable: see
    /// `drive_groups`, which writes them.
    pub(crate) fn handle_consumer_group_heartbeat(
        &mut self,
        slot: Slot,
        version: i16,
        client_id: Option<&str>,
        request: &ConsumerGroupHeartbeatRequest,
    ) {
        let group_id = request.group_id.to_string();
        let refuse = |node: &mut Self, error: ResponseError| {
            let response = ConsumerGroupHeartbeatResponse::default()
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(&error.to_string())))
                .with_member_epoch(-1);
            node.responder.complete(
                slot,
                ResponseKind::ConsumerGroupHeartbeat(response),
                &mut node.outputs,
            );
        };
        if !self.groups.owns(&group_id) {
            return refuse(self, ResponseError::NotCoordinator);
        }
        let classic_busy = !self.groups.member_ids(&group_id).is_empty();
        if classic_busy {
            return refuse(self, ResponseError::InconsistentGroupProtocol);
        }
        let input = HeartbeatIn {
            group_id: group_id.clone(),
            member_id: request.member_id.to_string(),
            member_epoch: request.member_epoch,
            instance_id: request.instance_id.as_ref().map(|s| s.to_string()),
            rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            subscribed_topic_names: request
                .subscribed_topic_names
                .as_ref()
                .map(|names| names.iter().map(|n| n.to_string()).collect()),
            server_assignor: request.server_assignor.as_ref().map(|s| s.to_string()),
            owned: request.topic_partitions.as_ref().map(|tps| {
                tps.iter()
                    .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
                    .collect()
            }),
            client_id: client_id.unwrap_or_default().to_string(),
        };
        let topics = self.topics_view();
        let now = self.now;
        let new_id = self.random_uuid().to_string();
        let out = self
            .consumer_groups
            .heartbeat(now, input, &topics, || new_id);
        self.persist_consumer_groups();
        let to = GroupReplyTo { slot, version };
        let reply = Reply::ConsumerHeartbeat {
            group_id: group_id.clone(),
            out,
        };
        self.groups.reply_after_group_writes(to, reply, &group_id);
    }

    /// Hands the records of every KIP-848 group an input changed to the
    /// coordinator, which appends them like its own.
    pub(crate) fn persist_consumer_groups(&mut self) {
        let now = self.now;
        let writes = self.consumer_groups.take_writes();
        if writes.is_empty() {
            return;
        }
        for (group_id, records) in writes {
            self.groups.write_consumer_group(now, &group_id, records);
        }
    }

    /// The response a heartbeat's result becomes.
    pub(crate) fn consumer_group_heartbeat_response(
        out: HeartbeatOut,
    ) -> ConsumerGroupHeartbeatResponse {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(out.error)
            .with_error_message(out.error_message.as_deref().map(str_bytes))
            .with_member_id(Some(str_bytes(&out.member_id)))
            .with_member_epoch(out.member_epoch)
            .with_heartbeat_interval_ms(out.heartbeat_interval_ms)
            .with_assignment(out.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    by_topic(&a)
                        .into_iter()
                        .map(|(topic_id, partitions)| {
                            TopicPartitions::default()
                                .with_topic_id(topic_id)
                                .with_partitions(partitions)
                        })
                        .collect(),
                )
            }))
    }

    pub(crate) fn handle_consumer_group_describe(
        &mut self,
        request: &ConsumerGroupDescribeRequest,
    ) -> ConsumerGroupDescribeResponse {
        let names: BTreeMap<Uuid, String> = self
            .topics_view()
            .into_iter()
            .map(|(name, (id, _))| (id, name))
            .collect();
        let assignment = |a: &BTreeSet<TopicPartition>| {
            DescribedAssignment::default().with_topic_partitions(
                by_topic(a)
                    .into_iter()
                    .map(|(id, partitions)| {
                        DescribedTopic::default()
                            .with_topic_id(id)
                            .with_topic_name(TopicName(str_bytes(
                                names.get(&id).map_or("", String::as_str),
                            )))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
        };
        let groups = request
            .group_ids
            .iter()
            .map(|id| {
                let mut described = DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
                if !self.groups.owns(id) {
                    described.error_code = ResponseError::NotCoordinator.code();
                    return described;
                }
                let Some(group) = self.consumer_groups.group(id) else {
                    described.error_code = ResponseError::GroupIdNotFound.code();
                    described.group_state = str_bytes("Dead");
                    return described;
                };
                let empty = BTreeSet::new();
                described
                    .with_group_state(str_bytes(group.state()))
                    .with_group_epoch(group.epoch)
                    .with_assignment_epoch(group.assignment_epoch)
                    .with_assignor_name(str_bytes(if group.assignor.is_empty() {
                        "uniform"
                    } else {
                        &group.assignor
                    }))
                    .with_members(
                        group
                            .members
                            .values()
                            .map(|m| {
                                Member::default()
                                    .with_member_id(str_bytes(&m.member_id))
                                    .with_instance_id(m.instance_id.as_deref().map(str_bytes))
                                    .with_rack_id(m.rack_id.as_deref().map(str_bytes))
                                    .with_member_epoch(m.epoch)
                                    .with_client_id(str_bytes(&m.client_id))
                                    .with_subscribed_topic_names(
                                        m.subscribed
                                            .iter()
                                            .map(|t| TopicName(str_bytes(t)))
                                            .collect(),
                                    )
                                    .with_assignment(assignment(&m.assigned))
                                    .with_target_assignment(assignment(
                                        group.target.get(&m.member_id).unwrap_or(&empty),
                                    ))
                            })
                            .collect(),
                    )
            })
            .collect();
        ConsumerGroupDescribeResponse::default().with_groups(groups)
    }

    /// Whether `group_id` runs the consumer protocol here (its commits are
    /// checked against member epochs, not generations).
    pub(crate) fn is_consumer_protocol_group(&self, group_id: &GroupId) -> bool {
        self.consumer_groups.contains(group_id.as_str())
    }
}
