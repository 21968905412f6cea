//! Kafka's answer to each classic-group request in each group state, after
//! `GroupCoordinator.scala` (Kafka 2.8-3.x) and its successor
//! `GroupMetadataManager`'s classic-group paths.

use super::classic::{check_assignments, Group, CONSUMER_PROTOCOL_TYPE};
use super::consumer_groups::HeartbeatOut;
use super::member::Member;
use super::offsets::{Committed, TopicPartition};
use super::records::{
    self, decode_group_value, decode_key, decode_offset_value, encode_group_value, encode_key,
    encode_offset_value, OffsetValue, RawRecord, RecordKey,
};
use super::state::GroupState;
use super::timers::{TimerKey, Timers};
use crate::time::Instant;
use bytes::Bytes;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

pub type WriteId = u64;

/// Groups held at once; a JoinGroup or commit creating one more is refused
/// with COORDINATOR_NOT_AVAILABLE (retriable) rather than growing memory.
const GROUPS_MAX: usize = 100_000;
/// Writes appended but not yet durable.
const PENDING_WRITES_MAX: usize = 10_000;
/// Replies parked behind writes.
const DEFERRED_REPLIES_MAX: usize = 100_000;
/// A new member whose JoinGroup is parked is dropped after this long
/// (Kafka's `NewMemberJoinTimeoutMs`): its client probably gave up and
/// will retry with a fresh join, which would otherwise leave a defunct
/// member holding the rebalance open.
const NEW_MEMBER_JOIN_TIMEOUT_MS: u64 = 300_000;
/// Strings written to `__consumer_offsets` carry an i16 length.
const STRING_LEN_MAX: usize = i16::MAX as usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_partitions: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.max.size`.
    pub group_max_size: usize,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> CoordinatorConfig {
        CoordinatorConfig {
            offsets_topic_partitions: 50,
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            group_max_size: 1_000,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offset_metadata_max_bytes: 4096,
        }
    }
}

// --- requests ----------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a first join.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a first join is answered MEMBER_ID_REQUIRED with an id.
    pub require_known_member_id: bool,
    /// The id this join gets if it is a new member (drawn by the node from
    /// its seeded RNG, so runs replay).
    pub fresh_member_id: String,
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// Non-zero when the node already refused this partition (an unknown
    /// topic): passed through untouched.
    pub error: i16,
}

#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub partitions: Vec<CommitPartition>,
}

// --- replies -----------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: String,
    pub member_id: String,
    /// Filled for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    pub fn error(member_id: &str, error: i16) -> JoinResult {
        JoinResult {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(error: i16) -> SyncResult {
        SyncResult {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResult {
    pub topic: String,
    pub partition: i32,
    pub error: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub error: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub group_id: String,
    pub error: i16,
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol_data: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
}

/// An answer the node turns into the response of the request's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(JoinResult),
    Sync(SyncResult),
    Commit(Vec<PartitionResult>),
    DeleteGroups(Vec<(String, i16)>),
    OffsetDelete {
        error: i16,
        partitions: Vec<PartitionResult>,
    },
    /// A classic Heartbeat's error code, answered once the group's records
    /// are durable (see `reply_after_group_writes`).
    Heartbeat(i16),
    /// A KIP-848 heartbeat, answered once the group's records are durable.
    ConsumerHeartbeat {
        group_id: String,
        out: HeartbeatOut,
    },
}

impl Reply {
    /// The reply as it reads when the write it waited for failed: whatever
    /// was about to succeed fails with `code`.
    fn fail(&mut self, code: i16) {
        let set = |e: &mut i16| {
            if *e == 0 {
                *e = code;
            }
        };
        match self {
            Reply::Join(r) => set(&mut r.error),
            Reply::Heartbeat(error) => set(error),
            Reply::Sync(r) => {
                set(&mut r.error);
                r.assignment = Bytes::new();
            }
            Reply::Commit(parts)
            | Reply::OffsetDelete {
                partitions: parts, ..
            } => parts.iter_mut().for_each(|p| set(&mut p.error)),
            Reply::DeleteGroups(groups) => groups.iter_mut().for_each(|(_, e)| set(e)),
            Reply::ConsumerHeartbeat { out, .. } => {
                if out.error == 0 {
                    // The member learns nothing of a state that may not
                    // be in the log: it retries at the epoch it had.
                    out.error = code;
                    out.error_message = None;
                    out.member_epoch = -1;
                    out.assignment = None;
                }
            }
        }
    }
}

/// Records for the node to append to partition `partition` of
/// `__consumer_offsets`, then report with `handle_write_completed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub id: WriteId,
    pub partition: i32,
    pub records: Vec<RawRecord>,
    pub timestamp_ms: i64,
}

#[derive(Debug)]
struct PendingWrite {
    group: String,
    incarnation: u64,
    /// Applied to the offset store once durable, in log order, so memory
    /// matches what a replay of the log would rebuild.
    offset_changes: Vec<(TopicPartition, Option<Committed>)>,
    /// Partitions whose commit is in this write (UNSTABLE for require_stable).
    pending_commits: Vec<TopicPartition>,
    /// Replies waiting for this write.
    deferred: Vec<u64>,
    /// For a KIP-848 group's write: the keys written, which are unknown in
    /// the log if the write fails.
    consumer_keys: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct Deferred<R> {
    to: R,
    reply: Reply,
    writes_left: usize,
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

fn too_long(s: &str) -> bool {
    s.len() > STRING_LEN_MAX
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[derive(Debug)]
pub struct Coordinator<R> {
    config: CoordinatorConfig,
    groups: BTreeMap<String, Group<R>>,
    timers: Timers,
    next_incarnation: u64,
    next_write_id: WriteId,
    next_deferred_id: u64,
    writes: VecDeque<Write>,
    pending_writes: BTreeMap<WriteId, PendingWrite>,
    deferred: BTreeMap<u64, Deferred<R>>,
    replies: VecDeque<(R, Reply)>,
    /// KIP-848 writes that failed while the group is still served here:
    /// (group, keys) for `ConsumerGroups::write_failed`.
    failed_consumer_writes: VecDeque<(String, Vec<Vec<u8>>)>,
    /// The `__consumer_offsets` partitions this coordinator serves. `None`:
    /// all of them (a standalone broker). In a cluster, the partitions this
    /// broker leads, loaded when it becomes leader and unloaded when it
    /// stops (Kafka's onElection / onResignation).
    owned: Option<BTreeSet<i32>>,
}

impl<R: Copy + std::fmt::Debug> Coordinator<R> {
    pub fn new(config: CoordinatorConfig) -> Coordinator<R> {
        assert!(
            config.offsets_topic_partitions > 0,
            "offsets topic partitions must be positive"
        );
        assert!(config.group_max_size > 0, "group.max.size must be positive");
        Coordinator {
            config,
            groups: BTreeMap::new(),
            timers: Timers::default(),
            next_incarnation: 0,
            next_write_id: 0,
            next_deferred_id: 0,
            writes: VecDeque::new(),
            pending_writes: BTreeMap::new(),
            deferred: BTreeMap::new(),
            replies: VecDeque::new(),
            failed_consumer_writes: VecDeque::new(),
            owned: None,
        }
    }

    /// A coordinator that serves only the partitions it is told to load.
    pub fn new_partitioned(config: CoordinatorConfig) -> Coordinator<R> {
        let mut coordinator = Coordinator::new(config);
        coordinator.owned = Some(BTreeSet::new());
        coordinator
    }

    // --- getters ---------------------------------------------------------------

    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// The `__consumer_offsets` partition that holds `group_id`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        records::partition_for(group_id, self.config.offsets_topic_partitions)
    }

    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state())
    }

    pub fn generation(&self, group_id: &str) -> Option<i32> {
        self.groups.get(group_id).map(|g| g.generation_id)
    }

    pub fn member_ids(&self, group_id: &str) -> Vec<String> {
        self.groups
            .get(group_id)
            .map(|g| g.members.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether this coordinator serves `group_id` (NOT_COORDINATOR if not).
    pub fn owns(&self, group_id: &str) -> bool {
        let partition = self.partition_for(group_id);
        self.owned.as_ref().is_none_or(|o| o.contains(&partition))
    }

    pub fn owns_partition(&self, partition: i32) -> bool {
        self.owned.as_ref().is_none_or(|o| o.contains(&partition))
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    // --- outputs ---------------------------------------------------------------

    pub fn poll_write(&mut self) -> Option<Write> {
        self.writes.pop_front()
    }

    pub fn poll_reply(&mut self) -> Option<(R, Reply)> {
        self.replies.pop_front()
    }

    pub fn poll_failed_consumer_write(&mut self) -> Option<(String, Vec<Vec<u8>>)> {
        self.failed_consumer_writes.pop_front()
    }

    // --- KIP-848 groups ----------------------------------------------------------

    /// Writes the records of KIP-848 group `group_id` (its state lives in
    /// `ConsumerGroups`; this coordinator only appends and tracks them).
    pub fn write_consumer_group(&mut self, now: Instant, group_id: &str, records: Vec<RawRecord>) {
        let consumer_keys: Vec<Vec<u8>> = records.iter().filter_map(|(k, _)| k.clone()).collect();
        assert_eq!(consumer_keys.len(), records.len(), "every record has a key");
        // Incarnation 0 is never a classic group's: nothing of a classic
        // group of the same id changes when this write completes.
        let id = self.write_for(now, group_id, 0, records, Vec::new(), Vec::new());
        self.pending_writes
            .get_mut(&id)
            .expect("just written")
            .consumer_keys = consumer_keys;
    }

    /// Answers `reply` once every write of `group_id` pending now is
    /// durable, as Kafka answers a heartbeat once the records written up to
    /// it are committed (another member's change the answer reflects
    /// included).
    pub fn reply_after_group_writes(&mut self, to: R, reply: Reply, group_id: &str) {
        let writes: Vec<WriteId> = self
            .pending_writes
            .iter()
            .filter(|(_, w)| w.group == group_id)
            .map(|(id, _)| *id)
            .collect();
        self.defer(to, reply, &writes);
    }

    // --- JoinGroup -------------------------------------------------------------

    pub fn handle_join(&mut self, now: Instant, to: R, request: JoinRequest) {
        let fail =
            |error: ResponseError| Reply::Join(JoinResult::error(&request.member_id, code(error)));
        if request.group_id.is_empty() || too_long(&request.group_id) {
            return self.reply(to, fail(ResponseError::InvalidGroupId));
        }
        if !self.owns(&request.group_id) {
            return self.reply(to, fail(ResponseError::NotCoordinator));
        }
        let strings = [
            Some(&request.member_id),
            request.group_instance_id.as_ref(),
            Some(&request.protocol_type),
            Some(&request.client_id),
        ];
        if strings.into_iter().flatten().any(|s| too_long(s)) {
            return self.reply(to, fail(ResponseError::InvalidRequest));
        }
        if !(self.config.min_session_timeout_ms..=self.config.max_session_timeout_ms)
            .contains(&request.session_timeout_ms)
        {
            return self.reply(to, fail(ResponseError::InvalidSessionTimeout));
        }
        let is_unknown = request.member_id.is_empty();
        let mut group = match self.groups.remove(&request.group_id) {
            Some(group) => group,
            None if !is_unknown => return self.reply(to, fail(ResponseError::UnknownMemberId)),
            None if self.groups.len() >= GROUPS_MAX => {
                return self.reply(to, fail(ResponseError::CoordinatorNotAvailable))
            }
            None => self.new_group(&request.group_id, now),
        };
        if !self.accepts_joining_member(&group, &request.member_id) {
            self.reply(to, fail(ResponseError::GroupMaxSizeReached));
        } else if is_unknown {
            self.join_new_member(now, &mut group, to, request);
        } else {
            self.join_current_member(now, &mut group, to, request);
        }
        self.maybe_complete_join(now, &mut group);
        self.put_back(group);
    }

    /// Kafka's `acceptJoiningMember`: a full group takes back its own
    /// members, not new ones.
    fn accepts_joining_member(&self, group: &Group<R>, member_id: &str) -> bool {
        let max = self.config.group_max_size;
        match group.state() {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                group
                    .members
                    .get(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || group.awaiting_join_count() < max
            }
            _ => group.members.contains_key(member_id) || group.members.len() < max,
        }
    }

    fn join_new_member(&mut self, now: Instant, group: &mut Group<R>, to: R, request: JoinRequest) {
        if group.is(GroupState::Dead) {
            return self.reply_join_error(to, "", ResponseError::CoordinatorNotAvailable);
        }
        if !group.supports_protocols("", &request.protocol_type, &request.protocols) {
            return self.reply_join_error(to, "", ResponseError::InconsistentGroupProtocol);
        }
        let new_id = request.fresh_member_id.clone();
        assert!(!new_id.is_empty(), "the node supplies a fresh member id");
        if let Some(instance) = request.group_instance_id.clone() {
            match group.static_members.get(&instance).cloned() {
                Some(old_id) => {
                    self.replace_static_member(now, group, to, request, &instance, &old_id)
                }
                None => self.add_member_and_rebalance(now, group, to, request, new_id),
            }
        } else if request.require_known_member_id {
            // KIP-394: hand out the id first, so that a client that times out
            // and retries does not leave a ghost member behind.
            if group.pending_members.len() >= self.config.group_max_size {
                return self.reply_join_error(to, "", ResponseError::GroupMaxSizeReached);
            }
            group.pending_members.insert(new_id.clone());
            self.timers.set(
                TimerKey::Heartbeat {
                    group: group.id.clone(),
                    member: new_id.clone(),
                },
                now + ms(request.session_timeout_ms as u64),
            );
            self.reply_join_error(to, &new_id, ResponseError::MemberIdRequired);
        } else {
            self.add_member_and_rebalance(now, group, to, request, new_id);
        }
    }

    fn join_current_member(
        &mut self,
        now: Instant,
        group: &mut Group<R>,
        to: R,
        request: JoinRequest,
    ) {
        let member_id = request.member_id.clone();
        if group.is(GroupState::Dead) {
            return self.reply_join_error(to, &member_id, ResponseError::CoordinatorNotAvailable);
        }
        if !group.supports_protocols(&member_id, &request.protocol_type, &request.protocols) {
            return self.reply_join_error(to, &member_id, ResponseError::InconsistentGroupProtocol);
        }
        if group.pending_members.remove(&member_id) {
            self.timers.cancel(&TimerKey::Heartbeat {
                group: group.id.clone(),
                member: member_id.clone(),
            });
            return self.add_member_and_rebalance(now, group, to, request, member_id);
        }
        if let Some(error) =
            validate_current_member(group, &member_id, request.group_instance_id.as_deref())
        {
            return self.reply_join_error(to, &member_id, error);
        }
        let member = &group.members[&member_id];
        let unchanged = member.matches(&request.protocols);
        match group.state() {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(now, group, to, request)
            }
            GroupState::CompletingRebalance if unchanged => {
                // The member lost our answer and asks again: same answer.
                let result = join_result(group, &member_id, true);
                self.schedule_heartbeat(now, group, &member_id);
                self.reply(to, Reply::Join(result));
            }
            GroupState::Stable if unchanged && !group.is_leader(&member_id) => {
                let result = join_result(group, &member_id, false);
                self.schedule_heartbeat(now, group, &member_id);
                self.reply(to, Reply::Join(result));
            }
            // A leader's rejoin in Stable asks for a rebalance (it may have
            // seen metadata change); so do changed protocols.
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(now, group, to, request)
            }
            GroupState::Empty | GroupState::Dead => {
                self.reply_join_error(to, &member_id, ResponseError::UnknownMemberId)
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        now: Instant,
        group: &mut Group<R>,
        to: R,
        request: JoinRequest,
        member_id: String,
    ) {
        if group.is(GroupState::PreparingRebalance) && group.generation_id == 0 {
            group.new_member_added = true;
        }
        group.add(
            Member {
                member_id: member_id.clone(),
                group_instance_id: request.group_instance_id,
                client_id: request.client_id,
                client_host: request.client_host,
                rebalance_timeout_ms: request.rebalance_timeout_ms,
                session_timeout_ms: request.session_timeout_ms,
                protocols: request.protocols,
                assignment: Bytes::new(),
                awaiting_join: Some(to),
                awaiting_sync: None,
                is_new: true,
            },
            &request.protocol_type,
        );
        self.timers.set(
            TimerKey::Heartbeat {
                group: group.id.clone(),
                member: member_id,
            },
            now + ms(NEW_MEMBER_JOIN_TIMEOUT_MS),
        );
        self.maybe_prepare_rebalance(now, group);
    }

    fn update_member_and_rebalance(
        &mut self,
        now: Instant,
        group: &mut Group<R>,
        to: R,
        request: JoinRequest,
    ) {
        let member = group
            .members
            .get_mut(&request.member_id)
            .expect("validated member");
        member.protocols = request.protocols;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.session_timeout_ms = request.session_timeout_ms;
        if let Some(previous) = member.awaiting_join.replace(to) {
            // A second join from the same member: the first one's client has
            // moved on; it must not hold a response slot forever.
            let error =
                JoinResult::error(&request.member_id, code(ResponseError::RebalanceInProgress));
            self.reply(previous, Reply::Join(error));
        }
        self.maybe_prepare_rebalance(now, group);
    }

    /// KIP-345: a static member rejoining with an unknown member id takes
    /// over its instance's place under a new id; the old id is fenced.
    fn replace_static_member(
        &mut self,
        now: Instant,
        group: &mut Group<R>,
        to: R,
        request: JoinRequest,
        instance: &str,
        old_id: &str,
    ) {
        let new_id = request.fresh_member_id.clone();
        let old_leader = group.leader_id.clone().unwrap_or_default();
        let old = group.members.get_mut(old_id).expect("static member exists");
        let fenced = code(ResponseError::FencedInstanceId);
        if let Some(parked) = old.awaiting_join.take() {
            self.replies
                .push_back((parked, Reply::Join(JoinResult::error(old_id, fenced))));
        }
        if let Some(parked) = old.awaiting_sync.take() {
            self.replies
                .push_back((parked, Reply::Sync(SyncResult::error(fenced))));
        }
        self.timers.cancel(&TimerKey::Heartbeat {
            group: group.id.clone(),
            member: old_id.to_string(),
        });
        group.replace_static_member(instance, old_id, &new_id);
        let member = group.members.get_mut(&new_id).expect("just replaced");
        let old_protocols = std::mem::replace(&mut member.protocols, request.protocols.clone());
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.session_timeout_ms = request.session_timeout_ms;
        self.schedule_heartbeat(now, group, &new_id);
        match group.state() {
            GroupState::Stable => {
                if group.protocol_name.as_deref() == Some(group.select_protocol().as_str()) {
                    // No rebalance: persist the new member id, then answer.
                    // The leader id returned is the old one, so that a
                    // rejoining static leader does not run a trivial
                    // assignment a Stable group would not broadcast.
                    let _ = old_protocols;
                    let result = JoinResult {
                        error: 0,
                        generation_id: group.generation_id,
                        protocol_type: group.protocol_type.clone(),
                        protocol_name: group.protocol_name.clone(),
                        leader_id: old_leader,
                        member_id: new_id.clone(),
                        members: Vec::new(),
                    };
                    tracing::info!(group = %group.id, instance, old_id, %new_id, "static member rejoined without rebalance");
                    self.persist_group(now, group, vec![(to, Reply::Join(result))]);
                } else {
                    group
                        .members
                        .get_mut(&new_id)
                        .expect("member")
                        .awaiting_join = Some(to);
                    self.maybe_prepare_rebalance(now, group);
                }
            }
            GroupState::CompletingRebalance => {
                // The leader may already be computing an assignment for the
                // old id; only a new rebalance gives the new id one.
                group
                    .members
                    .get_mut(&new_id)
                    .expect("member")
                    .awaiting_join = Some(to);
                self.prepare_rebalance(now, group);
            }
            GroupState::PreparingRebalance => {
                group
                    .members
                    .get_mut(&new_id)
                    .expect("member")
                    .awaiting_join = Some(to);
            }
            GroupState::Empty | GroupState::Dead => unreachable!(
                "group {}: a static member in a group without members",
                group.id
            ),
        }
    }

    fn maybe_prepare_rebalance(&mut self, now: Instant, group: &mut Group<R>) {
        if matches!(
            group.state(),
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(now, group);
        }
        self.maybe_complete_join(now, group);
    }

    fn prepare_rebalance(&mut self, now: Instant, group: &mut Group<R>) {
        if group.is(GroupState::CompletingRebalance) {
            self.reset_and_propagate_assignment_error(group, ResponseError::RebalanceInProgress);
        }
        self.timers.cancel(&TimerKey::Sync {
            group: group.id.clone(),
        });
        group.pending_sync.clear();
        let was_empty = group.is(GroupState::Empty);
        group.transition(GroupState::PreparingRebalance, now.unix_millis());
        let delay_ms = self.config.initial_rebalance_delay_ms;
        let rebalance_timeout_ms = group.rebalance_timeout_ms();
        let join = TimerKey::Join {
            group: group.id.clone(),
        };
        if was_empty && delay_ms > 0 {
            // Let more members of a starting group arrive before the first
            // generation, instead of one rebalance per arriving member.
            group.initial_delay_remaining_ms = Some(rebalance_timeout_ms.saturating_sub(delay_ms));
            group.new_member_added = false;
            self.timers.set(join, now + ms(delay_ms));
        } else {
            group.initial_delay_remaining_ms = None;
            self.timers.set(join, now + ms(rebalance_timeout_ms));
        }
        tracing::debug!(group = %group.id, generation = group.generation_id, "preparing rebalance");
    }

    /// Clears the assignments of a generation that will not become Stable
    /// and tells every member waiting in SyncGroup.
    fn reset_and_propagate_assignment_error(&mut self, group: &mut Group<R>, error: ResponseError) {
        assert!(
            group.is(GroupState::CompletingRebalance),
            "group {}: assignments reset outside CompletingRebalance",
            group.id
        );
        for member in group.members.values_mut() {
            member.assignment = Bytes::new();
            if let Some(parked) = member.awaiting_sync.take() {
                self.replies
                    .push_back((parked, Reply::Sync(SyncResult::error(code(error)))));
            }
        }
    }

    fn maybe_complete_join(&mut self, now: Instant, group: &mut Group<R>) {
        if group.is(GroupState::PreparingRebalance)
            && group.initial_delay_remaining_ms.is_none()
            && group.has_all_members_joined()
        {
            self.complete_join(now, group);
        }
    }

    /// The join phase ends: members that did not rejoin are dropped, the
    /// generation advances, every joined member gets its answer.
    fn complete_join(&mut self, now: Instant, group: &mut Group<R>) {
        assert!(group.is(GroupState::PreparingRebalance));
        let group_id = group.id.clone();
        self.timers.cancel(&TimerKey::Join {
            group: group_id.clone(),
        });
        group.initial_delay_remaining_ms = None;
        // Static members keep their place (they may be restarting); dynamic
        // ones that did not rejoin are gone.
        let not_rejoined: Vec<String> = group
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in not_rejoined {
            self.remove_member(group, &member_id, ResponseError::UnknownMemberId);
        }
        if !group.members.is_empty() && !elect_joined_leader(group) {
            // Only static members that have not rejoined: wait for them.
            let at = now + ms(group.rebalance_timeout_ms());
            self.timers.set(TimerKey::Join { group: group_id }, at);
            return;
        }
        let next = group
            .generation_id
            .checked_add(1)
            .expect("generation ids do not wrap within a group's life");
        assert!(next > group.generation_id, "generations only grow");
        group.generation_id = next;
        if group.members.is_empty() {
            group.protocol_name = None;
            group.transition(GroupState::Empty, now.unix_millis());
            // Persisted so that a restart does not hand out this generation
            // number again.
            self.persist_group(now, group, Vec::new());
            tracing::info!(group = %group_id, generation = next, "group is empty");
            return;
        }
        group.protocol_name = Some(group.select_protocol());
        group.transition(GroupState::CompletingRebalance, now.unix_millis());
        let member_ids: Vec<String> = group.members.keys().cloned().collect();
        for member_id in &member_ids {
            let parked = group
                .members
                .get_mut(member_id)
                .expect("listed")
                .awaiting_join
                .take();
            if let Some(parked) = parked {
                let result = join_result(group, member_id, true);
                self.replies.push_back((parked, Reply::Join(result)));
                group.members.get_mut(member_id).expect("listed").is_new = false;
                self.schedule_heartbeat(now, group, member_id);
            }
        }
        group.pending_sync = member_ids.into_iter().collect();
        let at = now + ms(group.rebalance_timeout_ms());
        self.timers.set(
            TimerKey::Sync {
                group: group_id.clone(),
            },
            at,
        );
        tracing::info!(group = %group_id, generation = next, members = group.members.len(), protocol = ?group.protocol_name, "rebalance joined");
    }

    // --- SyncGroup -------------------------------------------------------------

    pub fn handle_sync(&mut self, now: Instant, to: R, request: SyncRequest) {
        if request.group_id.is_empty() {
            return self.reply(
                to,
                Reply::Sync(SyncResult::error(code(ResponseError::InvalidGroupId))),
            );
        }
        if !self.owns(&request.group_id) {
            return self.reply(
                to,
                Reply::Sync(SyncResult::error(code(ResponseError::NotCoordinator))),
            );
        }
        let Some(mut group) = self.groups.remove(&request.group_id) else {
            return self.reply(
                to,
                Reply::Sync(SyncResult::error(code(ResponseError::UnknownMemberId))),
            );
        };
        if let Err(error) = self.sync(now, &mut group, to, request) {
            self.reply(to, Reply::Sync(SyncResult::error(code(error))));
        }
        self.put_back(group);
    }

    fn sync(
        &mut self,
        now: Instant,
        group: &mut Group<R>,
        to: R,
        request: SyncRequest,
    ) -> Result<(), ResponseError> {
        if group.is(GroupState::Dead) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let member_id = request.member_id.as_str();
        if let Some(error) =
            validate_current_member(group, member_id, request.group_instance_id.as_deref())
        {
            return Err(error);
        }
        if request.generation_id != group.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
        if request
            .protocol_type
            .as_ref()
            .is_some_and(|t| group.protocol_type.as_ref() != Some(t))
            || request
                .protocol_name
                .as_ref()
                .is_some_and(|n| group.protocol_name.as_ref() != Some(n))
        {
            return Err(ResponseError::InconsistentGroupProtocol);
        }
        match group.state() {
            GroupState::Empty | GroupState::Dead => Err(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                self.schedule_heartbeat(now, group, member_id);
                group.pending_sync.remove(member_id);
                let member = group.members.get_mut(member_id).expect("validated");
                if let Some(previous) = member.awaiting_sync.replace(to) {
                    let error = SyncResult::error(code(ResponseError::RebalanceInProgress));
                    self.replies.push_back((previous, Reply::Sync(error)));
                }
                if group.is_leader(member_id) {
                    self.complete_sync(now, group, request.assignments);
                }
                Ok(())
            }
            GroupState::Stable => {
                self.schedule_heartbeat(now, group, member_id);
                group.pending_sync.remove(member_id);
                let result = SyncResult {
                    error: 0,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: group.members[member_id].assignment.clone(),
                };
                match group.pending_metadata_write {
                    Some(write) => self.defer(to, Reply::Sync(result), &[write]),
                    None => self.reply(to, Reply::Sync(result)),
                }
                Ok(())
            }
        }
    }

    /// The leader's assignment arrived: the group becomes Stable and every
    /// parked SyncGroup is answered once the assignment is durable.
    fn complete_sync(
        &mut self,
        now: Instant,
        group: &mut Group<R>,
        assignments: Vec<(String, Bytes)>,
    ) {
        let mut assignments: BTreeMap<String, Bytes> = assignments
            .into_iter()
            .filter(|(m, _)| group.members.contains_key(m))
            .collect();
        if group.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE) {
            if let Err(partition) = check_assignments(assignments.values()) {
                // Kafka would store it; refusing keeps `no_double_ownership`
                // true by construction. The members rejoin and the leader
                // assigns again.
                tracing::warn!(group = %group.id, ?partition, "leader assigned a partition twice; rebalancing");
                self.prepare_rebalance(now, group);
                return;
            }
        }
        for (member_id, member) in group.members.iter_mut() {
            member.assignment = assignments.remove(member_id).unwrap_or_default();
        }
        group.transition(GroupState::Stable, now.unix_millis());
        let mut replies = Vec::new();
        for member in group.members.values_mut() {
            if let Some(parked) = member.awaiting_sync.take() {
                let result = SyncResult {
                    error: 0,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                };
                replies.push((parked, Reply::Sync(result)));
            }
        }
        tracing::info!(group = %group.id, generation = group.generation_id, "group is stable");
        self.persist_group(now, group, replies);
    }

    // --- Heartbeat and LeaveGroup ----------------------------------------------

    /// Kafka's answer to a heartbeat: NONE, or why the member must rejoin.
    pub fn handle_heartbeat(
        &mut self,
        now: Instant,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> i16 {
        if group_id.is_empty() {
            return code(ResponseError::InvalidGroupId);
        }
        if !self.owns(group_id) {
            return code(ResponseError::NotCoordinator);
        }
        let Some(group) = self.groups.remove(group_id) else {
            return code(ResponseError::UnknownMemberId);
        };
        let result = if group.is(GroupState::Dead) {
            Err(ResponseError::CoordinatorNotAvailable)
        } else if let Some(error) = validate_current_member(&group, member_id, group_instance_id) {
            Err(error)
        } else if generation_id != group.generation_id {
            Err(ResponseError::IllegalGeneration)
        } else {
            match group.state() {
                GroupState::Empty | GroupState::Dead => Err(ResponseError::UnknownMemberId),
                GroupState::PreparingRebalance => {
                    self.schedule_heartbeat(now, &group, member_id);
                    Err(ResponseError::RebalanceInProgress)
                }
                // A member may heartbeat between its JoinGroup answer and
                // its SyncGroup: that is a normal heartbeat.
                GroupState::CompletingRebalance | GroupState::Stable => {
                    self.schedule_heartbeat(now, &group, member_id);
                    Ok(())
                }
            }
        };
        self.put_back(group);
        result.map_or_else(code, |()| 0)
    }

    /// Removes the members named (v3+ batches them); returns the top-level
    /// error and one error per member.
    pub fn handle_leave(
        &mut self,
        now: Instant,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> (i16, Vec<i16>) {
        if group_id.is_empty() {
            return (code(ResponseError::InvalidGroupId), Vec::new());
        }
        if !self.owns(group_id) {
            return (code(ResponseError::NotCoordinator), Vec::new());
        }
        let Some(mut group) = self.groups.remove(group_id) else {
            let unknown = code(ResponseError::UnknownMemberId);
            return (0, vec![unknown; members.len()]);
        };
        if group.is(GroupState::Dead) {
            self.put_back(group);
            return (code(ResponseError::CoordinatorNotAvailable), Vec::new());
        }
        let mut errors = Vec::with_capacity(members.len());
        for (member_id, instance) in members {
            let result = self.leave_one(now, &mut group, member_id, instance.as_deref());
            errors.push(result.map_or_else(code, |()| 0));
        }
        self.put_back(group);
        (0, errors)
    }

    fn leave_one(
        &mut self,
        now: Instant,
        group: &mut Group<R>,
        member_id: &str,
        instance: Option<&str>,
    ) -> Result<(), ResponseError> {
        let member_id = if member_id.is_empty() {
            // v3+: a static member may leave by instance id alone.
            let instance = instance.ok_or(ResponseError::UnknownMemberId)?;
            group
                .static_members
                .get(instance)
                .cloned()
                .ok_or(ResponseError::UnknownMemberId)?
        } else {
            member_id.to_string()
        };
        if group.pending_members.remove(&member_id) {
            self.timers.cancel(&TimerKey::Heartbeat {
                group: group.id.clone(),
                member: member_id.clone(),
            });
            self.maybe_complete_join(now, group);
            return Ok(());
        }
        if let Some(error) = validate_current_member(group, &member_id, instance) {
            return Err(error);
        }
        tracing::info!(group = %group.id, member = %member_id, "member left");
        self.remove_member_and_update_group(now, group, &member_id);
        Ok(())
    }

    /// Drops a member, answering whatever it had parked, and moves the group
    /// on: a Stable group rebalances, a rebalance may now complete.
    fn remove_member_and_update_group(
        &mut self,
        now: Instant,
        group: &mut Group<R>,
        member_id: &str,
    ) {
        self.remove_member(group, member_id, ResponseError::UnknownMemberId);
        match group.state() {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(now, group)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now, group),
        }
    }

    fn remove_member(&mut self, group: &mut Group<R>, member_id: &str, error: ResponseError) {
        self.timers.cancel(&TimerKey::Heartbeat {
            group: group.id.clone(),
            member: member_id.to_string(),
        });
        let Some(member) = group.remove(member_id) else {
            return;
        };
        if let Some(parked) = member.awaiting_join {
            self.replies.push_back((
                parked,
                Reply::Join(JoinResult::error(member_id, code(error))),
            ));
        }
        if let Some(parked) = member.awaiting_sync {
            self.replies
                .push_back((parked, Reply::Sync(SyncResult::error(code(error)))));
        }
    }

    fn schedule_heartbeat(&mut self, now: Instant, group: &Group<R>, member_id: &str) {
        let Some(member) = group.members.get(member_id) else {
            return;
        };
        self.timers.set(
            TimerKey::Heartbeat {
                group: group.id.clone(),
                member: member_id.to_string(),
            },
            now + ms(member.session_timeout_ms.max(0) as u64),
        );
    }

    // --- timers ----------------------------------------------------------------

    pub fn handle_timeout(&mut self, now: Instant) {
        // Bounded: each pop removes a timer, and handling one sets at most a
        // few others strictly in the future.
        let bound = self.timers.len() + 1;
        for _ in 0..bound {
            let Some(key) = self.timers.pop_due(now) else {
                return;
            };
            match key {
                TimerKey::Heartbeat { group, member } => {
                    self.expire_heartbeat(now, &group, &member)
                }
                TimerKey::Join { group } => self.expire_join(now, &group),
                TimerKey::Sync { group } => self.expire_sync(now, &group),
            }
        }
    }

    fn expire_heartbeat(&mut self, now: Instant, group_id: &str, member_id: &str) {
        let Some(mut group) = self.groups.remove(group_id) else {
            return;
        };
        if group.pending_members.remove(member_id) {
            tracing::debug!(
                group = group_id,
                member = member_id,
                "pending member expired"
            );
            self.maybe_complete_join(now, &mut group);
        } else if let Some(member) = group.members.get(member_id) {
            let keep_alive = if member.awaiting_join.is_some() {
                !member.is_new
            } else {
                member.awaiting_sync.is_some()
            };
            if keep_alive {
                // It cannot heartbeat while its request is parked.
                self.schedule_heartbeat(now, &group, member_id);
            } else {
                tracing::info!(group = group_id, member = member_id, "session expired");
                self.remove_member_and_update_group(now, &mut group, member_id);
            }
        }
        self.put_back(group);
    }

    fn expire_join(&mut self, now: Instant, group_id: &str) {
        let Some(mut group) = self.groups.remove(group_id) else {
            return;
        };
        if group.is(GroupState::PreparingRebalance) {
            match group.initial_delay_remaining_ms {
                Some(remaining_ms) if group.new_member_added && remaining_ms > 0 => {
                    // Someone arrived during the delay: wait once more, within
                    // the rebalance timeout.
                    let delay_ms = self.config.initial_rebalance_delay_ms.min(remaining_ms);
                    group.new_member_added = false;
                    group.initial_delay_remaining_ms = Some(remaining_ms - delay_ms);
                    self.timers.set(
                        TimerKey::Join {
                            group: group_id.to_string(),
                        },
                        now + ms(delay_ms),
                    );
                }
                _ => self.complete_join(now, &mut group),
            }
        }
        self.put_back(group);
    }

    /// Members that joined but never synced within the rebalance timeout are
    /// removed, and the group rebalances without them.
    fn expire_sync(&mut self, now: Instant, group_id: &str) {
        let Some(mut group) = self.groups.remove(group_id) else {
            return;
        };
        if matches!(
            group.state(),
            GroupState::CompletingRebalance | GroupState::Stable
        ) && !group.pending_sync.is_empty()
        {
            let late: Vec<String> = group.pending_sync.iter().cloned().collect();
            tracing::info!(group = group_id, ?late, "members did not sync in time");
            for member_id in late {
                self.remove_member(&mut group, &member_id, ResponseError::UnknownMemberId);
            }
            self.maybe_prepare_rebalance(now, &mut group);
        }
        self.put_back(group);
    }

    // --- offsets ---------------------------------------------------------------

    pub fn handle_commit(&mut self, now: Instant, to: R, request: CommitRequest) {
        let reply_all = |this: &mut Self, error: ResponseError| {
            let results = request
                .partitions
                .iter()
                .map(|p| PartitionResult {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    error: if p.error != 0 { p.error } else { code(error) },
                })
                .collect();
            this.reply(to, Reply::Commit(results));
        };
        if too_long(&request.group_id) {
            return reply_all(self, ResponseError::InvalidGroupId);
        }
        if !self.owns(&request.group_id) {
            return reply_all(self, ResponseError::NotCoordinator);
        }
        let mut group = match self.groups.remove(&request.group_id) {
            Some(group) => group,
            // No group management: a standalone consumer stores offsets.
            None if request.generation_id < 0 && self.groups.len() < GROUPS_MAX => {
                self.new_group(&request.group_id, now)
            }
            None if request.generation_id < 0 => {
                return reply_all(self, ResponseError::CoordinatorNotAvailable)
            }
            // Or a member of a generation that no longer exists.
            None => return reply_all(self, ResponseError::IllegalGeneration),
        };
        match self.validate_commit(now, &group, &request) {
            Err(error) => reply_all(self, error),
            Ok(()) if self.pending_writes.len() >= PENDING_WRITES_MAX => {
                reply_all(self, ResponseError::CoordinatorNotAvailable)
            }
            Ok(()) => {
                let mut results = Vec::with_capacity(request.partitions.len());
                let mut records = Vec::new();
                let mut changes = Vec::new();
                for p in &request.partitions {
                    let metadata = p.metadata.clone().unwrap_or_default();
                    let error = if p.error != 0 {
                        p.error
                    } else if metadata.len() > self.config.offset_metadata_max_bytes {
                        code(ResponseError::OffsetMetadataTooLarge)
                    } else {
                        let committed = Committed {
                            offset: p.offset,
                            leader_epoch: p.leader_epoch,
                            metadata,
                            commit_timestamp_ms: now.unix_millis(),
                        };
                        let key = RecordKey::Offset {
                            group: group.id.clone(),
                            topic: p.topic.clone(),
                            partition: p.partition,
                        };
                        let value = encode_offset_value(&OffsetValue {
                            offset: committed.offset,
                            leader_epoch: committed.leader_epoch,
                            metadata: committed.metadata.clone(),
                            commit_timestamp_ms: committed.commit_timestamp_ms,
                        });
                        records.push((Some(encode_key(&key)), Some(value)));
                        changes.push(((p.topic.clone(), p.partition), Some(committed)));
                        0
                    };
                    results.push(PartitionResult {
                        topic: p.topic.clone(),
                        partition: p.partition,
                        error,
                    });
                }
                if records.is_empty() {
                    self.reply(to, Reply::Commit(results));
                } else {
                    let pending: Vec<TopicPartition> =
                        changes.iter().map(|(tp, _)| tp.clone()).collect();
                    for tp in &pending {
                        group.offsets.add_pending(tp.clone());
                    }
                    let id = self.write(now, &group, records, changes, pending);
                    self.defer(to, Reply::Commit(results), &[id]);
                }
            }
        }
        self.put_back(group);
    }

    /// Kafka's `doCommitOffsets` checks: who may commit in which state.
    fn validate_commit(
        &mut self,
        now: Instant,
        group: &Group<R>,
        request: &CommitRequest,
    ) -> Result<(), ResponseError> {
        if group.is(GroupState::Dead) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if request.generation_id < 0 && group.is(GroupState::Empty) {
            return Ok(()); // only storing offsets, no group management
        }
        if request.generation_id >= 0
            || !request.member_id.is_empty()
            || request.group_instance_id.is_some()
        {
            if let Some(error) = validate_current_member(
                group,
                &request.member_id,
                request.group_instance_id.as_deref(),
            ) {
                return Err(error);
            }
            if request.generation_id != group.generation_id {
                return Err(ResponseError::IllegalGeneration);
            }
        } else if !group.is(GroupState::Empty) {
            // When the group is non-empty, only members can commit.
            return Err(ResponseError::UnknownMemberId);
        }
        match group.state() {
            // During PreparingRebalance commits are still allowed: members
            // learn of the rebalance from their heartbeats.
            GroupState::Stable | GroupState::PreparingRebalance => {
                self.schedule_heartbeat(now, group, &request.member_id);
                Ok(())
            }
            // The member has its JoinGroup answer but not its assignment.
            GroupState::CompletingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::Empty => Ok(()),
            GroupState::Dead => Err(ResponseError::CoordinatorNotAvailable),
        }
    }

    /// Committed offsets of `group_id` for `topics` (all when `None`).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
        require_stable: bool,
    ) -> Vec<(String, Vec<FetchedPartition>)> {
        let group = self
            .groups
            .get(group_id)
            .filter(|g| !g.is(GroupState::Dead));
        let fetch = |topic: &str, partition: i32| {
            let tp = (topic.to_string(), partition);
            let unknown = FetchedPartition {
                partition,
                offset: -1,
                leader_epoch: -1,
                metadata: Some(String::new()),
                error: 0,
            };
            let Some(group) = group else { return unknown };
            if require_stable && group.offsets.is_pending(&tp) {
                return FetchedPartition {
                    error: code(ResponseError::UnstableOffsetCommit),
                    ..unknown
                };
            }
            match group.offsets.get(&tp) {
                Some(c) => FetchedPartition {
                    partition,
                    offset: c.offset,
                    leader_epoch: c.leader_epoch,
                    metadata: Some(c.metadata.clone()),
                    error: 0,
                },
                None => unknown,
            }
        };
        match topics {
            Some(topics) => topics
                .iter()
                .map(|(topic, partitions)| {
                    (
                        topic.clone(),
                        partitions.iter().map(|p| fetch(topic, *p)).collect(),
                    )
                })
                .collect(),
            None => {
                let mut out: BTreeMap<String, Vec<FetchedPartition>> = BTreeMap::new();
                if let Some(group) = group {
                    for ((topic, partition), _) in group.offsets.iter() {
                        out.entry(topic.clone())
                            .or_default()
                            .push(fetch(topic, *partition));
                    }
                }
                out.into_iter().collect()
            }
        }
    }

    /// OffsetDelete: only offsets of topics the group does not consume.
    pub fn handle_offset_delete(
        &mut self,
        now: Instant,
        to: R,
        group_id: &str,
        partitions: Vec<(String, i32, i16)>,
    ) {
        if !self.owns(group_id) {
            let reply = Reply::OffsetDelete {
                error: code(ResponseError::NotCoordinator),
                partitions: Vec::new(),
            };
            return self.reply(to, reply);
        }
        let Some(group) = self.groups.remove(group_id) else {
            let reply = Reply::OffsetDelete {
                error: code(ResponseError::GroupIdNotFound),
                partitions: Vec::new(),
            };
            return self.reply(to, reply);
        };
        let subscribed = if group.is(GroupState::Empty) {
            Some(Default::default())
        } else {
            group.subscribed_topics()
        };
        let reply = match subscribed {
            _ if group.is(GroupState::Dead) => Reply::OffsetDelete {
                error: code(ResponseError::GroupIdNotFound),
                partitions: Vec::new(),
            },
            None => Reply::OffsetDelete {
                error: code(ResponseError::NonEmptyGroup),
                partitions: Vec::new(),
            },
            Some(subscribed) => {
                let mut results = Vec::new();
                let mut records = Vec::new();
                let mut changes = Vec::new();
                for (topic, partition, error) in partitions {
                    let error = if error != 0 {
                        error
                    } else if subscribed.contains(&topic) {
                        code(ResponseError::GroupSubscribedToTopic)
                    } else {
                        let tp = (topic.clone(), partition);
                        if group.offsets.get(&tp).is_some() {
                            records.push((
                                Some(encode_key(&RecordKey::Offset {
                                    group: group.id.clone(),
                                    topic: topic.clone(),
                                    partition,
                                })),
                                None,
                            ));
                            changes.push((tp, None));
                        }
                        0
                    };
                    results.push(PartitionResult {
                        topic,
                        partition,
                        error,
                    });
                }
                let reply = Reply::OffsetDelete {
                    error: 0,
                    partitions: results,
                };
                if !records.is_empty() {
                    let id = self.write(now, &group, records, changes, Vec::new());
                    self.defer(to, reply, &[id]);
                    self.put_back(group);
                    return;
                }
                reply
            }
        };
        self.reply(to, reply);
        self.put_back(group);
    }

    /// DeleteGroups: only Empty groups go; their offsets and metadata get
    /// tombstones, and the answer waits until those are durable.
    pub fn handle_delete_groups(&mut self, now: Instant, to: R, group_ids: &[String]) {
        let mut results = Vec::with_capacity(group_ids.len());
        let mut writes = Vec::new();
        for group_id in group_ids {
            if !self.owns(group_id) {
                results.push((group_id.clone(), code(ResponseError::NotCoordinator)));
                continue;
            }
            let error = match self.groups.remove(group_id) {
                None => code(ResponseError::GroupIdNotFound),
                Some(group) if group.is(GroupState::Dead) => {
                    self.put_back(group);
                    code(ResponseError::GroupIdNotFound)
                }
                Some(group) if !group.is(GroupState::Empty) => {
                    self.put_back(group);
                    code(ResponseError::NonEmptyGroup)
                }
                Some(mut group) => {
                    writes.push(self.remove_group(now, &mut group));
                    0
                }
            };
            results.push((group_id.clone(), error));
        }
        self.defer(to, Reply::DeleteGroups(results), &writes);
    }

    /// Marks `group` Dead and writes tombstones for all it holds.
    fn remove_group(&mut self, now: Instant, group: &mut Group<R>) -> WriteId {
        assert!(
            group.members.is_empty(),
            "only a group without members is removed"
        );
        let mut records: Vec<RawRecord> = group
            .offsets
            .iter()
            .map(|((topic, partition), _)| {
                let key = RecordKey::Offset {
                    group: group.id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                (Some(encode_key(&key)), None)
            })
            .collect();
        records.push((
            Some(encode_key(&RecordKey::Group {
                group: group.id.clone(),
            })),
            None,
        ));
        let id = self.write(now, group, records, Vec::new(), Vec::new());
        group.transition(GroupState::Dead, now.unix_millis());
        self.timers.cancel_group(&group.id);
        tracing::info!(group = %group.id, "group removed");
        id
    }

    /// Offsets retention (`offsets.retention.minutes`) for Empty groups; a
    /// group left with nothing is removed. Called on the node's retention
    /// timer.
    pub fn expire_offsets(&mut self, now: Instant) {
        let retention_ms = self.config.offsets_retention_ms;
        let ids: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.is(GroupState::Empty))
            .map(|(id, _)| id.clone())
            .collect();
        for group_id in ids {
            if self.pending_writes.len() >= PENDING_WRITES_MAX {
                return; // the next retention check continues
            }
            let mut group = self.groups.remove(&group_id).expect("listed");
            let expired = group
                .offsets
                .expired(now, Some(group.state_since_ms), retention_ms);
            if !expired.is_empty()
                && expired.len() == group.offsets.len()
                && group.offsets.topics().count() > 0
            {
                tracing::info!(group = %group_id, offsets = expired.len(), "offsets expired; removing group");
                let _ = self.remove_group(now, &mut group);
            } else if !expired.is_empty() {
                tracing::info!(group = %group_id, offsets = expired.len(), "offsets expired");
                let records = expired
                    .iter()
                    .map(|(topic, partition)| {
                        let key = RecordKey::Offset {
                            group: group_id.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                        };
                        (Some(encode_key(&key)), None)
                    })
                    .collect();
                let changes = expired.into_iter().map(|tp| (tp, None)).collect();
                let _ = self.write(now, &group, records, changes, Vec::new());
            }
            self.put_back(group);
        }
    }

    // --- DescribeGroups and ListGroups -----------------------------------------

    pub fn describe(&self, group_id: &str) -> DescribedGroup {
        let dead = DescribedGroup {
            group_id: group_id.to_string(),
            error: 0,
            state: GroupState::Dead.name(),
            protocol_type: String::new(),
            protocol_data: String::new(),
            members: Vec::new(),
        };
        if !self.owns(group_id) {
            return DescribedGroup {
                error: code(ResponseError::NotCoordinator),
                ..dead
            };
        }
        let Some(group) = self.groups.get(group_id) else {
            return dead;
        };
        // Metadata and assignments are shown only when Stable: otherwise they
        // belong to a generation that is being replaced.
        let stable = group.is(GroupState::Stable);
        let protocol = group.protocol_name.clone().unwrap_or_default();
        DescribedGroup {
            group_id: group_id.to_string(),
            error: 0,
            state: group.state().name(),
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: group
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol).cloned().unwrap_or_default()
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// Every offset committed by the groups coordinated here: (group,
    /// (topic, partition), offset). Read-only, for the broker's metrics.
    pub fn committed_offsets(&self) -> impl Iterator<Item = (&str, &TopicPartition, i64)> + '_ {
        self.groups.values().flat_map(|g| {
            g.offsets
                .iter()
                .map(move |(tp, c)| (g.id.as_str(), tp, c.offset))
        })
    }

    /// Groups, optionally only those in the named states (case-insensitive).
    pub fn list(&self, states_filter: &[String]) -> Vec<ListedGroup> {
        self.groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .filter(|g| {
                states_filter.is_empty()
                    || states_filter
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state().name()))
            })
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state().name(),
            })
            .collect()
    }

    // --- writes ----------------------------------------------------------------

    fn persist_group(&mut self, now: Instant, group: &mut Group<R>, replies: Vec<(R, Reply)>) {
        let key = encode_key(&RecordKey::Group {
            group: group.id.clone(),
        });
        let value = encode_group_value(&group.to_value());
        let id = self.write(
            now,
            group,
            vec![(Some(key), Some(value))],
            Vec::new(),
            Vec::new(),
        );
        group.pending_metadata_write = Some(id);
        for (to, reply) in replies {
            self.defer(to, reply, &[id]);
        }
    }

    fn write(
        &mut self,
        now: Instant,
        group: &Group<R>,
        records: Vec<RawRecord>,
        offset_changes: Vec<(TopicPartition, Option<Committed>)>,
        pending_commits: Vec<TopicPartition>,
    ) -> WriteId {
        self.write_for(
            now,
            &group.id,
            group.incarnation,
            records,
            offset_changes,
            pending_commits,
        )
    }

    fn write_for(
        &mut self,
        now: Instant,
        group_id: &str,
        incarnation: u64,
        records: Vec<RawRecord>,
        offset_changes: Vec<(TopicPartition, Option<Committed>)>,
        pending_commits: Vec<TopicPartition>,
    ) -> WriteId {
        assert!(!records.is_empty(), "a write holds records");
        let id = self.next_write_id;
        self.next_write_id += 1;
        self.writes.push_back(Write {
            id,
            partition: self.partition_for(group_id),
            records,
            timestamp_ms: now.unix_millis(),
        });
        self.pending_writes.insert(
            id,
            PendingWrite {
                group: group_id.to_string(),
                incarnation,
                offset_changes,
                pending_commits,
                deferred: Vec::new(),
                consumer_keys: Vec::new(),
            },
        );
        id
    }

    /// Answers `reply` once every write in `writes` completed (at once if
    /// none).
    fn defer(&mut self, to: R, reply: Reply, writes: &[WriteId]) {
        if writes.is_empty() || self.deferred.len() >= DEFERRED_REPLIES_MAX {
            if !writes.is_empty() {
                tracing::warn!("deferred replies at their bound; answering early");
            }
            return self.reply(to, reply);
        }
        let id = self.next_deferred_id;
        self.next_deferred_id += 1;
        for write in writes {
            self.pending_writes
                .get_mut(write)
                .expect("deferring on a pending write")
                .deferred
                .push(id);
        }
        self.deferred.insert(
            id,
            Deferred {
                to,
                reply,
                writes_left: writes.len(),
            },
        );
    }

    /// The node appended and synced (`Ok`) a write, or could not (`Err`
    /// with the Kafka error for the waiting clients).
    pub fn handle_write_completed(&mut self, now: Instant, id: WriteId, result: Result<(), i16>) {
        let Some(write) = self.pending_writes.remove(&id) else {
            panic!("completion of unknown write {id}");
        };
        if result.is_err() && !write.consumer_keys.is_empty() && self.owns(&write.group) {
            self.failed_consumer_writes
                .push_back((write.group.clone(), write.consumer_keys));
        }
        if let Some(mut group) = self.groups.remove(&write.group) {
            if group.incarnation == write.incarnation {
                for tp in &write.pending_commits {
                    group.offsets.remove_pending(tp);
                }
                if result.is_ok() {
                    for (tp, change) in write.offset_changes {
                        match change {
                            Some(committed) => group.offsets.put(tp, committed),
                            None => {
                                group.offsets.remove(&tp);
                            }
                        }
                    }
                }
                if group.pending_metadata_write == Some(id) {
                    group.pending_metadata_write = None;
                    if result.is_err() {
                        // The assignment is not durable: start over, as
                        // Kafka does when storing the group fails.
                        tracing::warn!(group = %group.id, "group metadata write failed; rebalancing");
                        self.maybe_prepare_rebalance(now, &mut group);
                    }
                }
            }
            self.put_back(group);
        }
        for deferred_id in write.deferred {
            let deferred = self
                .deferred
                .get_mut(&deferred_id)
                .expect("deferred reply exists");
            if let Err(error) = result {
                deferred.reply.fail(error);
            }
            deferred.writes_left -= 1;
            if deferred.writes_left == 0 {
                let deferred = self.deferred.remove(&deferred_id).expect("present");
                self.replies.push_back((deferred.to, deferred.reply));
            }
        }
    }

    // --- loading -----------------------------------------------------------------

    /// Applies one record read back from partition `partition` of
    /// `__consumer_offsets`, in log order.
    pub fn load_record(&mut self, now: Instant, partition: i32, key: &[u8], value: Option<&[u8]>) {
        let key = match decode_key(key) {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(partition, error = %e, "skipping an unreadable offsets-topic key");
                return;
            }
        };
        if self.partition_for(key.group()) != partition {
            tracing::warn!(
                partition,
                group = key.group(),
                "record in the wrong offsets partition; skipped"
            );
            return;
        }
        let group_id = key.group().to_string();
        match (key, value) {
            (
                RecordKey::Offset {
                    topic, partition, ..
                },
                Some(value),
            ) => match decode_offset_value(value) {
                Ok(v) => {
                    let mut group = self
                        .groups
                        .remove(&group_id)
                        .unwrap_or_else(|| self.new_group(&group_id, now));
                    group.offsets.put(
                        (topic, partition),
                        Committed {
                            offset: v.offset,
                            leader_epoch: v.leader_epoch,
                            metadata: v.metadata,
                            commit_timestamp_ms: v.commit_timestamp_ms,
                        },
                    );
                    self.groups.insert(group_id, group);
                }
                Err(e) => {
                    tracing::warn!(group = %group_id, error = %e, "skipping an unreadable offset")
                }
            },
            (
                RecordKey::Offset {
                    topic, partition, ..
                },
                None,
            ) => {
                if let Some(group) = self.groups.get_mut(&group_id) {
                    group.offsets.remove(&(topic, partition));
                }
            }
            (RecordKey::Group { .. }, Some(value)) => match decode_group_value(value) {
                Ok(v) => {
                    let mut group = self
                        .groups
                        .remove(&group_id)
                        .unwrap_or_else(|| self.new_group(&group_id, now));
                    group.restore(v);
                    self.groups.insert(group_id, group);
                }
                Err(e) => {
                    tracing::warn!(group = %group_id, error = %e, "skipping unreadable group metadata")
                }
            },
            (RecordKey::Group { .. }, None) => {
                self.groups.remove(&group_id);
            }
        }
    }

    /// Starts serving `partition`: its records follow through `load_record`,
    /// then `finish_load_partition`.
    pub fn begin_load_partition(&mut self, partition: i32) {
        let owned = self.owned.as_mut().expect("a partitioned coordinator");
        owned.insert(partition);
    }

    /// `finish_load` for the groups of one partition.
    pub fn finish_load_partition(&mut self, now: Instant, partition: i32) {
        let ids: Vec<String> = self
            .groups
            .keys()
            .filter(|g| self.partition_for(g) == partition)
            .cloned()
            .collect();
        for group_id in ids {
            let mut group = self.groups.remove(&group_id).expect("listed");
            self.resume_loaded(now, &mut group);
            self.groups.insert(group_id, group);
        }
    }

    /// A group just loaded goes on from what was stored. Its members must
    /// heartbeat within their session timeout or leave: they do not know
    /// the coordinator changed.
    ///
    /// A group with members also rebalances, where Kafka leaves it Stable.
    /// The stored generation may be the first half of a cooperative move
    /// (KIP-429): the partition taken from its owner is given to nobody
    /// until the owner's follow-up join starts the second rebalance. If
    /// that join was lost with the old coordinator (the owner was expelled
    /// there, and came back as a static member, which in a Stable group
    /// takes its stored assignment without a rebalance, KIP-345), the
    /// partition stays unowned for as long as the group stays Stable
    /// (`explore group-cooperative`, seed 3538). One more rebalance per
    /// coordinator fail-over, incremental under cooperative assignors,
    /// closes that gap.
    fn resume_loaded(&mut self, now: Instant, group: &mut Group<R>) {
        let members: Vec<String> = group.members.keys().cloned().collect();
        for member_id in members {
            self.schedule_heartbeat(now, group, &member_id);
        }
        if group.is(GroupState::Stable) {
            assert!(!group.members.is_empty(), "a Stable group has members");
            tracing::info!(group = %group.id, generation = group.generation_id, "loaded group rebalances");
            self.prepare_rebalance(now, group);
        }
    }

    /// Stops serving `partition` (another broker leads it now): its groups
    /// are forgotten here, and every request of theirs still waiting is
    /// answered NOT_COORDINATOR so the client looks for the new one.
    pub fn unload_partition(&mut self, partition: i32) {
        let owned = self.owned.as_mut().expect("a partitioned coordinator");
        if !owned.remove(&partition) {
            return;
        }
        let not_coordinator = code(ResponseError::NotCoordinator);
        let ids: Vec<String> = self
            .groups
            .keys()
            .filter(|g| self.partition_for(g) == partition)
            .cloned()
            .collect();
        for group_id in &ids {
            let group = self.groups.remove(group_id).expect("listed");
            self.timers.cancel_group(group_id);
            for member in group.members.values() {
                if let Some(to) = member.awaiting_join {
                    let reply = Reply::Join(JoinResult::error(&member.member_id, not_coordinator));
                    self.replies.push_back((to, reply));
                }
                if let Some(to) = member.awaiting_sync {
                    self.replies
                        .push_back((to, Reply::Sync(SyncResult::error(not_coordinator))));
                }
            }
        }
        // Writes of the partition's groups (KIP-848 ones too, which have
        // no classic group here) are forgotten; their replies fail.
        let config = &self.config;
        let in_partition = |w: &PendingWrite| {
            records::partition_for(&w.group, config.offsets_topic_partitions) == partition
        };
        let deferred_ids: Vec<u64> = self
            .pending_writes
            .values()
            .filter(|w| in_partition(w))
            .flat_map(|w| w.deferred.iter().copied())
            .collect();
        self.pending_writes.retain(|_, w| !in_partition(w));
        self.failed_consumer_writes.retain(|(g, _)| {
            records::partition_for(g, config.offsets_topic_partitions) != partition
        });
        for id in deferred_ids {
            if let Some(mut d) = self.deferred.remove(&id) {
                d.reply.fail(not_coordinator);
                self.replies.push_back((d.to, d.reply));
            }
        }
        tracing::info!(partition, groups = ids.len(), "offsets partition unloaded");
    }

    /// After every partition was replayed: members of loaded groups must
    /// heartbeat within their session timeout or leave (they do not know
    /// the coordinator restarted).
    pub fn finish_load(&mut self, now: Instant) {
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in ids {
            let mut group = self.groups.remove(&group_id).expect("listed");
            if group.members.is_empty() && group.offsets.is_empty() && group.generation_id == 0 {
                continue;
            }
            self.resume_loaded(now, &mut group);
            self.groups.insert(group_id, group);
        }
        tracing::info!(
            groups = self.groups.len(),
            "groups loaded from the offsets topic"
        );
    }

    // --- helpers -----------------------------------------------------------------

    fn new_group(&mut self, group_id: &str, now: Instant) -> Group<R> {
        self.next_incarnation += 1;
        Group::new(
            group_id.to_string(),
            self.next_incarnation,
            now.unix_millis(),
        )
    }

    /// Returns a group taken out of the map; a Dead group, or one that was
    /// only created for a request that failed, is dropped instead.
    fn put_back(&mut self, group: Group<R>) {
        let forgettable = group.is(GroupState::Dead)
            || (group.is(GroupState::Empty)
                && group.generation_id == 0
                && group.members.is_empty()
                && group.pending_members.is_empty()
                && group.offsets.is_empty()
                && group.pending_metadata_write.is_none());
        if forgettable {
            self.timers.cancel_group(&group.id);
            return;
        }
        let previous = self.groups.insert(group.id.clone(), group);
        assert!(
            previous.is_none(),
            "a group is taken out before it is put back"
        );
    }

    fn reply(&mut self, to: R, reply: Reply) {
        self.replies.push_back((to, reply));
    }

    fn reply_join_error(&mut self, to: R, member_id: &str, error: ResponseError) {
        self.reply(to, Reply::Join(JoinResult::error(member_id, code(error))));
    }

    pub fn check_invariants(&self) {
        self.timers.check_invariants();
        assert!(self.groups.len() <= GROUPS_MAX, "groups unbounded");
        assert!(
            self.pending_writes.len() <= PENDING_WRITES_MAX + GROUPS_MAX,
            "pending writes unbounded"
        );
        assert!(
            self.deferred.len() <= DEFERRED_REPLIES_MAX,
            "deferred replies unbounded"
        );
        for (id, group) in &self.groups {
            assert_eq!(id, &group.id, "groups keyed by id");
            group.check_invariants(self.config.group_max_size);
            if group.is(GroupState::PreparingRebalance) {
                assert!(
                    self.timers
                        .deadline(&TimerKey::Join { group: id.clone() })
                        .is_some(),
                    "group {id}: a rebalance without a join deadline never ends"
                );
            }
            for member_id in group.members.keys().chain(group.pending_members.iter()) {
                assert!(
                    self.timers
                        .deadline(&TimerKey::Heartbeat {
                            group: id.clone(),
                            member: member_id.clone(),
                        })
                        .is_some(),
                    "group {id}: member {member_id} has no session timer"
                );
            }
            if let Some(write) = group.pending_metadata_write {
                assert!(
                    self.pending_writes.contains_key(&write),
                    "group {id}: metadata write lost"
                );
            }
        }
        for deferred in self.deferred.values() {
            assert!(
                deferred.writes_left > 0,
                "a ready deferred reply was not released"
            );
        }
    }
}

/// Kafka's `validateCurrentMember`: a static member's instance id must map
/// to this member id (else it is fenced), and the member must exist.
fn validate_current_member<R>(
    group: &Group<R>,
    member_id: &str,
    group_instance_id: Option<&str>,
) -> Option<ResponseError> {
    if let Some(instance) = group_instance_id {
        return match group.static_members.get(instance) {
            Some(current) if current != member_id => Some(ResponseError::FencedInstanceId),
            Some(_) => None,
            None => Some(ResponseError::UnknownMemberId),
        };
    }
    if !group.members.contains_key(member_id) {
        return Some(ResponseError::UnknownMemberId);
    }
    None
}

/// The leader must be a member that rejoined; pick one if it is not.
fn elect_joined_leader<R>(group: &mut Group<R>) -> bool {
    if let Some(leader) = &group.leader_id {
        if group.members[leader].awaiting_join.is_some() {
            return true;
        }
    }
    match group.members.values().find(|m| m.awaiting_join.is_some()) {
        Some(joined) => {
            group.leader_id = Some(joined.member_id.clone());
            true
        }
        None => false,
    }
}

fn join_result<R>(group: &Group<R>, member_id: &str, members_for_leader: bool) -> JoinResult {
    let protocol = group.protocol_name.clone().unwrap_or_default();
    let members = if members_for_leader && group.is_leader(member_id) {
        group
            .members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(&protocol).cloned().unwrap_or_default(),
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinResult {
        error: 0,
        generation_id: group.generation_id,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        leader_id: group.leader_id.clone().unwrap_or_default(),
        member_id: member_id.to_string(),
        members,
    }
}
