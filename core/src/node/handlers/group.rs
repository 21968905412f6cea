//! The classic group APIs (FindCoordinator, JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, DescribeGroups, ListGroups, DeleteGroups) and the
//! plumbing between the node and its group coordinator: appending the
//! coordinator's records to `__consumer_offsets`, reporting them durable,
//! replaying them on start.
//!
//! The coordinator (`crate::group`) speaks version-free results; this file
//! turns them into each request version's response.

use super::super::responder::Slot;
use super::super::topics::{after_leader_append, Replica};
use super::super::{Node, NodeConfig, NodeError};
use super::str_bytes;
use crate::batch::BatchIter;
use crate::group::consumer_groups::is_consumer_group_key;
use crate::group::records::{decode_batch_records, encode_batch};
use crate::group::{
    Coordinator, CoordinatorConfig, JoinRequest, JoinResult, Reply, SyncRequest, SyncResult, Write,
    WriteId, OFFSETS_TOPIC,
};
use crate::storage::Storage;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, ResponseKind, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

/// A parked group request: where its answer goes and at which version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupReplyTo {
    pub slot: Slot,
    pub version: i16,
}

/// A coordinator write appended to the log, answered once synced to here.
#[derive(Debug)]
pub struct GroupWriteWait {
    pub id: WriteId,
    pub partition: i32,
    pub end_offset: i64,
}

/// Rounds of write/complete/reply in one `drive_groups`: a completed write
/// can cause at most one more write (a failed assignment write rebalances,
/// which may empty the group), so a few rounds always settle.
const GROUP_DRIVE_ROUNDS_MAX: usize = 16;
/// A replayed batch is read in chunks of this size.
const REPLAY_READ_BYTES: usize = 1 << 20;
/// Client ids are cut to this length before they prefix a member id.
const CLIENT_ID_LEN_MAX: usize = 1024;

/// FindCoordinator v4+ batches keys.
const FIND_COORDINATOR_BATCHED_VERSION_MIN: i16 = 4;
/// JoinGroup v4+ answers a first join with MEMBER_ID_REQUIRED (KIP-394).
const JOIN_GROUP_MEMBER_ID_REQUIRED_VERSION_MIN: i16 = 4;
/// JoinGroup v7+ has a nullable protocol name; before, "" stands for none.
const JOIN_GROUP_NULLABLE_PROTOCOL_VERSION_MIN: i16 = 7;
/// Group instance ids (KIP-345) appear in JoinGroup v5+.
const JOIN_GROUP_INSTANCE_ID_VERSION_MIN: i16 = 5;
/// SyncGroup v5+ returns the protocol type and name.
const SYNC_GROUP_PROTOCOL_VERSION_MIN: i16 = 5;
/// LeaveGroup v3+ batches members.
const LEAVE_GROUP_BATCHED_VERSION_MIN: i16 = 3;
/// DescribeGroups v4+ shows group instance ids.
const DESCRIBE_GROUPS_INSTANCE_ID_VERSION_MIN: i16 = 4;
/// ListGroups v4+ filters by and reports state; v5 by type.
const LIST_GROUPS_STATE_VERSION_MIN: i16 = 4;
const LIST_GROUPS_TYPE_VERSION_MIN: i16 = 5;
/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub(crate) fn coordinator_config(config: &NodeConfig) -> CoordinatorConfig {
    CoordinatorConfig {
        offsets_topic_partitions: config.offsets_topic_partitions,
        initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
        min_session_timeout_ms: config.group_min_session_timeout_ms,
        max_session_timeout_ms: config.group_max_session_timeout_ms,
        group_max_size: config.group_max_size,
        offsets_retention_ms: i64::try_from(config.offsets_retention_minutes)
            .unwrap_or(i64::MAX / 60_000)
            .saturating_mul(60_000),
        ..CoordinatorConfig::default()
    }
}

fn truncate(s: &str, len_max: usize) -> &str {
    if s.len() <= len_max {
        return s;
    }
    let mut end = len_max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl<S: Storage> Node<S> {
    // --- plumbing --------------------------------------------------------------

    /// Replays every partition of `__consumer_offsets` into a fresh
    /// coordinator. The partition count of an existing topic wins over the
    /// configured one: groups hash onto the partitions that exist.
    pub(crate) fn load_groups(&mut self) -> Result<(), NodeError> {
        let Some(topic) = self.topics.get(OFFSETS_TOPIC) else {
            return Ok(());
        };
        let partitions = topic.partitions().len() as i32;
        if partitions != self.config.offsets_topic_partitions {
            tracing::warn!(
                existing = partitions,
                configured = self.config.offsets_topic_partitions,
                "{OFFSETS_TOPIC} exists with another partition count; using it"
            );
        }
        let mut config = coordinator_config(&self.config);
        config.offsets_topic_partitions = partitions;
        self.groups = Coordinator::new(config);
        let now = self.now;
        for index in 0..partitions {
            self.replay_offsets_partition(index)?;
        }
        self.groups.finish_load(now);
        self.consumer_groups.finish_load(now, |_| true);
        Ok(())
    }

    /// A cluster node became the leader of `__consumer_offsets-index`: it
    /// coordinates that partition's groups from now on.
    pub(crate) fn load_offsets_partition(&mut self, index: i32) {
        let now = self.now;
        self.groups.begin_load_partition(index);
        if let Err(e) = self.replay_offsets_partition(index) {
            tracing::error!(partition = index, error = %e, "loading groups failed");
        }
        self.groups.finish_load_partition(now, index);
        let groups = &self.groups;
        self.consumer_groups
            .finish_load(now, |id| groups.partition_for(id) == index);
        tracing::info!(
            partition = index,
            "coordinating the groups of {OFFSETS_TOPIC}-{index}"
        );
    }

    /// Feeds every record of one `__consumer_offsets` partition to the
    /// coordinator, in log order.
    fn replay_offsets_partition(&mut self, index: i32) -> Result<(), NodeError> {
        let now = self.now;
        {
            let Some(p) = self.topics.partition_mut(OFFSETS_TOPIC, index) else {
                return Ok(());
            };
            let end = p.log.log_end_offset();
            let mut offset = p.log.log_start_offset();
            while offset < end {
                let read = p
                    .log
                    .read(&mut self.storage, offset, REPLAY_READ_BYTES, end)?;
                if read.records.is_empty() {
                    break;
                }
                let before = offset;
                for (position, header) in BatchIter::new(&read.records) {
                    let batch = &read.records[position..position + header.total_size()];
                    match decode_batch_records(batch) {
                        Ok(records) => {
                            for (key, value) in records {
                                match key {
                                    Some(key) if is_consumer_group_key(&key) => {
                                        self.consumer_groups.load_record(&key, value.as_deref())
                                    }
                                    Some(key) => {
                                        self.groups.load_record(now, index, &key, value.as_deref())
                                    }
                                    None => {}
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(partition = index, offset = header.base_offset(), error = %e, "skipping an unreadable offsets-topic batch")
                        }
                    }
                    offset = header.next_offset();
                }
                assert!(
                    offset > before,
                    "replay of {OFFSETS_TOPIC}-{index} makes progress"
                );
            }
        }
        Ok(())
    }

    /// Creates `__consumer_offsets` on first use. Its records must outlive
    /// time and size retention (they are the groups' state), so both are
    /// off; compaction keeps the latest record per key, as Kafka's does.
    pub(crate) fn ensure_offsets_topic(&mut self) -> Result<(), i16> {
        if self.topics.contains(OFFSETS_TOPIC) {
            return Ok(());
        }
        if self.cluster.is_some() {
            // The controller creates it (FindCoordinator asks); a node never
            // makes a local, unreplicated one.
            return Err(ResponseError::NotCoordinator.code());
        }
        let overrides: BTreeMap<String, String> = [
            // Kafka's: the latest record per key is the groups' state.
            ("cleanup.policy", "compact"),
            ("retention.ms", "-1"),
            ("retention.bytes", "-1"),
            ("max.message.bytes", "104857600"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let partitions = self.groups.config().offsets_topic_partitions;
        match self.create_topic(OFFSETS_TOPIC, partitions, overrides) {
            Ok(_) => {
                tracing::info!(partitions, "created {OFFSETS_TOPIC}");
                Ok(())
            }
            Err((code, message)) => {
                tracing::error!(code, %message, "cannot create {OFFSETS_TOPIC}");
                Err(ResponseError::CoordinatorNotAvailable.code())
            }
        }
    }

    /// Appends what the coordinator wants written, reports what became
    /// durable, and sends its replies. Every input ends with this.
    pub(crate) fn drive_groups(&mut self) {
        // KIP-848 groups changed by timeouts (expired members).
        self.persist_consumer_groups();
        for _ in 0..GROUP_DRIVE_ROUNDS_MAX {
            let mut progressed = false;
            while let Some(write) = self.groups.poll_write() {
                progressed = true;
                self.append_group_write(write);
            }
            progressed |= self.release_group_writes();
            while let Some((group_id, keys)) = self.groups.poll_failed_consumer_write() {
                self.consumer_groups.write_failed(&group_id, &keys);
            }
            while let Some((to, reply)) = self.groups.poll_reply() {
                progressed = true;
                self.send_group_reply(to, reply);
            }
            if !progressed {
                return;
            }
        }
        tracing::warn!("group coordinator did not settle within {GROUP_DRIVE_ROUNDS_MAX} rounds");
    }

    fn append_group_write(&mut self, write: Write) {
        let now = self.now;
        let unavailable = ResponseError::CoordinatorNotAvailable.code();
        if let Err(code) = self.ensure_offsets_topic() {
            return self.groups.handle_write_completed(now, write.id, Err(code));
        }
        let batch = encode_batch(&write.records, write.timestamp_ms);
        let Some(p) = self
            .topics
            .partition_mut(OFFSETS_TOPIC, write.partition)
            .filter(|p| p.replica.is_leader())
        else {
            return self
                .groups
                .handle_write_completed(now, write.id, Err(unavailable));
        };
        match p
            .log
            .append_as_leader(&mut self.storage, &batch, p.leader_epoch, now)
        {
            Ok(info) => {
                self.high_watermark_moved |= after_leader_append(p, self.config.flush_before_ack);
                self.group_writes.push(GroupWriteWait {
                    id: write.id,
                    partition: write.partition,
                    end_offset: info.last_offset + 1,
                });
            }
            Err(e) => {
                tracing::error!(partition = write.partition, error = %e, "cannot append to {OFFSETS_TOPIC}");
                self.groups
                    .handle_write_completed(now, write.id, Err(unavailable));
            }
        }
    }

    /// Completes the coordinator's writes that are now as durable as the
    /// node promises (synced with `flush_before_ack`, appended without).
    fn release_group_writes(&mut self) -> bool {
        if self.group_writes.is_empty() {
            return false;
        }
        let now = self.now;
        let flush_before_ack = self.config.flush_before_ack;
        let waits = std::mem::take(&mut self.group_writes);
        let mut progressed = false;
        for wait in waits {
            // Replicated writes count once committed (acks=all, as Kafka
            // writes the offsets topic); standalone ones once synced.
            let synced = self
                .topics
                .get(OFFSETS_TOPIC)
                .and_then(|t| t.partitions().get(&wait.partition))
                .and_then(|p| match &p.replica {
                    Replica::Standalone => Some(p.log.synced_offset()),
                    Replica::Leader(leader) => Some(leader.high_watermark()),
                    Replica::Follower(_) | Replica::Offline => None,
                });
            let flush_before_ack = flush_before_ack
                || self
                    .topics
                    .get(OFFSETS_TOPIC)
                    .and_then(|t| t.partitions().get(&wait.partition))
                    .is_some_and(|p| matches!(p.replica, Replica::Leader(_)));
            match synced {
                None => {
                    progressed = true;
                    let error = ResponseError::CoordinatorNotAvailable.code();
                    self.groups.handle_write_completed(now, wait.id, Err(error));
                }
                Some(synced) if !flush_before_ack || synced >= wait.end_offset => {
                    progressed = true;
                    self.groups.handle_write_completed(now, wait.id, Ok(()));
                }
                Some(_) => self.group_writes.push(wait),
            }
        }
        progressed
    }

    fn send_group_reply(&mut self, to: GroupReplyTo, reply: Reply) {
        let version = to.version;
        let body = match reply {
            Reply::Join(result) => ResponseKind::JoinGroup(join_response(result, version)),
            Reply::Heartbeat(error) => {
                ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(error))
            }
            Reply::Sync(result) => ResponseKind::SyncGroup(sync_response(result, version)),
            Reply::Commit(results) => {
                ResponseKind::OffsetCommit(super::offsets::commit_response(results))
            }
            Reply::OffsetDelete { error, partitions } => ResponseKind::OffsetDelete(
                super::offsets::offset_delete_response(error, partitions),
            ),
            Reply::ConsumerHeartbeat { group_id, out } => {
                if out.error != 0 {
                    // An error carries no assignment (one a failed write
                    // took away included): tell the member again next time.
                    self.consumer_groups.forget_sent(&group_id, &out.member_id);
                }
                ResponseKind::ConsumerGroupHeartbeat(Self::consumer_group_heartbeat_response(out))
            }
            Reply::DeleteGroups(results) => ResponseKind::DeleteGroups(
                DeleteGroupsResponse::default().with_results(
                    results
                        .into_iter()
                        .map(|(group, error)| {
                            DeletableGroupResult::default()
                                .with_group_id(GroupId(str_bytes(&group)))
                                .with_error_code(error)
                        })
                        .collect(),
                ),
            ),
        };
        self.responder.complete(to.slot, body, &mut self.outputs);
    }

    // --- FindCoordinator ---------------------------------------------------------

    pub(crate) fn handle_find_coordinator(
        &mut self,
        request: &FindCoordinatorRequest,
        version: i16,
    ) -> FindCoordinatorResponse {
        let keys: Vec<String> = if version >= FIND_COORDINATOR_BATCHED_VERSION_MIN {
            request
                .coordinator_keys
                .iter()
                .map(|k| k.to_string())
                .collect()
        } else {
            vec![request.key.to_string()]
        };
        let mut entries = Vec::with_capacity(keys.len());
        for key in keys {
            let error = match request.key_type {
                KEY_TYPE_GROUP if self.cluster.is_some() => {
                    match self.cluster_coordinator_for(&key) {
                        Ok(broker) => {
                            entries.push(broker.with_key(str_bytes(&key)));
                            continue;
                        }
                        Err(code) => Some(code),
                    }
                }
                KEY_TYPE_GROUP => self.ensure_offsets_topic().err(),
                // No transaction coordinator yet.
                KEY_TYPE_TRANSACTION => Some(ResponseError::CoordinatorNotAvailable.code()),
                _ => Some(ResponseError::InvalidRequest.code()),
            };
            let mut entry = CoordinatorEntry::default().with_key(str_bytes(&key));
            match error {
                None => {
                    entry.node_id = BrokerId(self.config.node_id);
                    entry.host = str_bytes(&self.config.advertised_host);
                    entry.port = self.config.advertised_port;
                }
                Some(code) => {
                    entry.node_id = BrokerId(-1);
                    entry.port = -1;
                    entry.error_code = code;
                    entry.error_message = Some(str_bytes(
                        ResponseError::try_from_code(code)
                            .map(|e| e.to_string())
                            .unwrap_or_default()
                            .as_str(),
                    ));
                }
            }
            entries.push(entry);
        }
        if version >= FIND_COORDINATOR_BATCHED_VERSION_MIN {
            return FindCoordinatorResponse::default().with_coordinators(entries);
        }
        let entry = entries.pop().expect("one key before v4");
        FindCoordinatorResponse::default()
            .with_error_code(entry.error_code)
            .with_error_message(if version >= 1 {
                entry.error_message
            } else {
                None
            })
            .with_node_id(entry.node_id)
            .with_host(entry.host)
            .with_port(entry.port)
    }

    // --- JoinGroup, SyncGroup, Heartbeat, LeaveGroup ----------------------------

    pub(crate) fn handle_join_group(
        &mut self,
        slot: Slot,
        client_id: Option<&str>,
        request: JoinGroupRequest,
        version: i16,
    ) {
        if self.consumer_groups.contains(request.group_id.as_str()) {
            // The group runs KIP-848 here: a classic member cannot join it.
            let result = crate::group::JoinResult::error(
                request.member_id.as_str(),
                ResponseError::InconsistentGroupProtocol.code(),
            );
            let body = ResponseKind::JoinGroup(join_response(result, version));
            self.responder.complete(slot, body, &mut self.outputs);
            return;
        }
        let client_id = truncate(client_id.unwrap_or(""), CLIENT_ID_LEN_MAX).to_string();
        // Kafka's member ids: client id, a dash, a UUID (instance id first
        // for static members), drawn from the node's seeded RNG.
        let prefix = request
            .group_instance_id
            .as_ref()
            .map_or(client_id.clone(), |i| {
                truncate(i, CLIENT_ID_LEN_MAX).to_string()
            });
        let fresh_member_id = format!("{prefix}-{}", self.random_uuid());
        let join = JoinRequest {
            group_id: request.group_id.to_string(),
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id,
            // The core does not see socket addresses.
            client_host: String::new(),
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: if version >= 1 {
                request.rebalance_timeout_ms
            } else {
                request.session_timeout_ms
            },
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
            require_known_member_id: version >= JOIN_GROUP_MEMBER_ID_REQUIRED_VERSION_MIN,
            fresh_member_id,
        };
        self.groups
            .handle_join(self.now, GroupReplyTo { slot, version }, join);
    }

    pub(crate) fn handle_sync_group(
        &mut self,
        slot: Slot,
        request: SyncGroupRequest,
        version: i16,
    ) {
        let sync = SyncRequest {
            group_id: request.group_id.to_string(),
            generation_id: request.generation_id,
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            protocol_type: request.protocol_type.as_ref().map(|s| s.to_string()),
            protocol_name: request.protocol_name.as_ref().map(|s| s.to_string()),
            assignments: request
                .assignments
                .into_iter()
                .map(|a| (a.member_id.to_string(), a.assignment))
                .collect(),
        };
        self.groups
            .handle_sync(self.now, GroupReplyTo { slot, version }, sync);
    }

    /// Answered once every write of the group pending now is durable, as
    /// Kafka's coordinator runtime answers any group operation: a
    /// coordinator that lost its `__consumer_offsets` partition without
    /// knowing it yet (its writes never commit) then renews no member's
    /// session, so none of its members acts on partitions the new
    /// coordinator may already have given away (seed 3145 of
    /// group-cooperative).
    pub(crate) fn handle_heartbeat(
        &mut self,
        slot: Slot,
        version: i16,
        request: &HeartbeatRequest,
    ) {
        let error = self.groups.handle_heartbeat(
            self.now,
            &request.group_id,
            request.generation_id,
            &request.member_id,
            request.group_instance_id.as_deref(),
        );
        let to = GroupReplyTo { slot, version };
        self.groups
            .reply_after_group_writes(to, Reply::Heartbeat(error), &request.group_id);
    }

    pub(crate) fn handle_leave_group(
        &mut self,
        request: &LeaveGroupRequest,
        version: i16,
    ) -> LeaveGroupResponse {
        let members: Vec<(String, Option<String>)> = if version >= LEAVE_GROUP_BATCHED_VERSION_MIN {
            request
                .members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|s| s.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(request.member_id.to_string(), None)]
        };
        let (error, member_errors) =
            self.groups
                .handle_leave(self.now, &request.group_id, &members);
        if version < LEAVE_GROUP_BATCHED_VERSION_MIN {
            let error = if error != 0 {
                error
            } else {
                member_errors.first().copied().unwrap_or(0)
            };
            return LeaveGroupResponse::default().with_error_code(error);
        }
        LeaveGroupResponse::default()
            .with_error_code(error)
            .with_members(
                members
                    .into_iter()
                    .zip(member_errors)
                    .map(|((member_id, instance), error)| {
                        MemberResponse::default()
                            .with_member_id(str_bytes(&member_id))
                            .with_group_instance_id(instance.map(|i| str_bytes(&i)))
                            .with_error_code(error)
                    })
                    .collect(),
            )
    }

    // --- DescribeGroups, ListGroups, DeleteGroups -------------------------------

    pub(crate) fn handle_describe_groups(
        &mut self,
        request: &DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let groups = request
            .groups
            .iter()
            .map(|group_id| {
                let d = self.groups.describe(group_id);
                DescribedGroup::default()
                    .with_error_code(d.error)
                    .with_group_id(GroupId(str_bytes(&d.group_id)))
                    .with_group_state(str_bytes(d.state))
                    .with_protocol_type(str_bytes(&d.protocol_type))
                    .with_protocol_data(str_bytes(&d.protocol_data))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                let instance = if version >= DESCRIBE_GROUPS_INSTANCE_ID_VERSION_MIN
                                {
                                    m.group_instance_id.map(|i| str_bytes(&i))
                                } else {
                                    None
                                };
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(&m.member_id))
                                    .with_group_instance_id(instance)
                                    .with_client_id(str_bytes(&m.client_id))
                                    .with_client_host(str_bytes(&m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    )
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    pub(crate) fn handle_list_groups(
        &mut self,
        request: &ListGroupsRequest,
        version: i16,
    ) -> ListGroupsResponse {
        let states: Vec<String> = if version >= LIST_GROUPS_STATE_VERSION_MIN {
            request
                .states_filter
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            Vec::new()
        };
        // Every group here is a classic group.
        let classic_wanted = version < LIST_GROUPS_TYPE_VERSION_MIN
            || request.types_filter.is_empty()
            || request
                .types_filter
                .iter()
                .any(|t| t.eq_ignore_ascii_case("classic"));
        let consumer_wanted = version >= LIST_GROUPS_TYPE_VERSION_MIN
            && (request.types_filter.is_empty()
                || request
                    .types_filter
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case("consumer")));
        let mut groups: Vec<(crate::group::ListedGroup, &str)> = Vec::new();
        if classic_wanted {
            groups.extend(
                self.groups
                    .list(&states)
                    .into_iter()
                    .filter(|g| !self.consumer_groups.contains(&g.group_id))
                    .map(|g| (g, "classic")),
            );
        }
        if consumer_wanted || version < LIST_GROUPS_TYPE_VERSION_MIN {
            for (id, group) in self.consumer_groups.groups() {
                let state = group.state();
                if states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(state)) {
                    let listed = crate::group::ListedGroup {
                        group_id: id.clone(),
                        protocol_type: crate::group::CONSUMER_PROTOCOL_TYPE.to_string(),
                        state,
                    };
                    groups.push((listed, "consumer"));
                }
            }
        }
        ListGroupsResponse::default().with_groups(
            groups
                .into_iter()
                .map(|(g, group_type)| {
                    let mut listed = ListedGroup::default()
                        .with_group_id(GroupId(str_bytes(&g.group_id)))
                        .with_protocol_type(str_bytes(&g.protocol_type));
                    if version >= LIST_GROUPS_STATE_VERSION_MIN {
                        listed.group_state = str_bytes(g.state);
                    }
                    if version >= LIST_GROUPS_TYPE_VERSION_MIN {
                        listed.group_type = str_bytes(group_type);
                    }
                    listed
                })
                .collect(),
        )
    }

    pub(crate) fn handle_delete_groups(
        &mut self,
        slot: Slot,
        request: &DeleteGroupsRequest,
        version: i16,
    ) {
        let ids: Vec<String> = request.groups_names.iter().map(|g| g.to_string()).collect();
        self.groups
            .handle_delete_groups(self.now, GroupReplyTo { slot, version }, &ids);
    }
}

fn join_response(result: JoinResult, version: i16) -> JoinGroupResponse {
    let nullable = version >= JOIN_GROUP_NULLABLE_PROTOCOL_VERSION_MIN;
    let protocol_name = match result.protocol_name {
        Some(name) if !name.is_empty() => Some(str_bytes(&name)),
        _ if nullable => None,
        _ => Some(str_bytes("")),
    };
    JoinGroupResponse::default()
        .with_error_code(result.error)
        .with_generation_id(result.generation_id)
        .with_protocol_type(if nullable {
            result.protocol_type.map(|t| str_bytes(&t))
        } else {
            None
        })
        .with_protocol_name(protocol_name)
        .with_leader(str_bytes(&result.leader_id))
        .with_member_id(str_bytes(&result.member_id))
        .with_members(
            result
                .members
                .into_iter()
                .map(|m| {
                    let instance = if version >= JOIN_GROUP_INSTANCE_ID_VERSION_MIN {
                        m.group_instance_id.map(|i| str_bytes(&i))
                    } else {
                        None
                    };
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(&m.member_id))
                        .with_group_instance_id(instance)
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

fn sync_response(result: SyncResult, version: i16) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default()
        .with_error_code(result.error)
        .with_assignment(result.assignment);
    if version >= SYNC_GROUP_PROTOCOL_VERSION_MIN {
        response.protocol_type = result.protocol_type.map(|t| str_bytes(&t));
        response.protocol_name = result.protocol_name.map(|n| str_bytes(&n));
    }
    response
}
