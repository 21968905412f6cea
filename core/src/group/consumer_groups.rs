//! The consumer group protocol of KIP-848: members heartbeat, the
//! coordinator assigns partitions (server-side assignors `uniform` and
//! `range`), and every member reconciles towards its target through member
//! epochs, giving up partitions before anyone else receives them.
//!
//! Pure state: no I/O, time passed in. The node turns Kafka requests into
//! [`HeartbeatIn`] and [`HeartbeatOut`] back into responses.
//!
//! # The reconciliation rule
//!
//! A partition is owned by at most one member at a time, counting both the
//! partitions a member holds and those it has been asked to give up and has
//! not yet confirmed (`revoking`). A member first loses what its target no
//! longer holds (its epoch stays), and only once it confirms (its owned
//! partitions no longer include them) are they free; a member moves to the
//! new epoch once it holds nothing outside its target, and receives each
//! target partition as soon as no one else owns it.
//!
//! # Persistence
//!
//! A group's durable state (epochs, members, subscriptions, assignments,
//! the target) is written to its `__consumer_offsets` partition in Kafka's
//! record types (`persist.rs`). Every input marks the groups it touched
//! dirty; the node drains [`ConsumerGroups::take_writes`] after it, appends
//! the records, and answers the heartbeat only once they are durable, so a
//! member never acts on an epoch or an assignment a new coordinator would
//! not know. A coordinator that loads the partition rebuilds the groups
//! from the records ([`ConsumerGroups::load_record`],
//! [`ConsumerGroups::finish_load`]). Committed offsets go through the
//! classic offset store.

use crate::group::records::RawRecord;
use crate::time::Instant;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use uuid::Uuid;

/// A partition as KIP-848 names it: topic id and index.
pub type TopicPartition = (Uuid, i32);
/// The topics the assignors may use: name -> (id, partition count).
pub type TopicsView = BTreeMap<String, (Uuid, i32)>;

/// Bounds: groups, members per group, subscribed topics per member.
pub const GROUPS_MAX: usize = 10_000;
const TOPICS_PER_MEMBER_MAX: usize = 10_000;

pub const ASSIGNOR_UNIFORM: &str = "uniform";
pub const ASSIGNOR_RANGE: &str = "range";

/// Historical group-coordination bugs the simulator must find, off by
/// default (../shared/INVARIANTS.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupBugs {
    /// `static-member-dup`: a static member that comes back under a new
    /// member id takes over its old assignment while the old member is not
    /// fenced, so both hold the same partitions.
    pub static_member_dup: bool,
    /// `cooperative-direct-move`: a partition goes to its new owner before
    /// the old one has given it up.
    pub cooperative_direct_move: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupsConfig {
    /// `group.consumer.session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// `group.consumer.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u64,
    /// `group.consumer.max.size`.
    pub group_max_size: usize,
    pub bugs: GroupBugs,
}

impl Default for ConsumerGroupsConfig {
    fn default() -> ConsumerGroupsConfig {
        ConsumerGroupsConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            group_max_size: 1_000,
            bugs: GroupBugs::default(),
        }
    }
}

/// A ConsumerGroupHeartbeat, version-free. `None` fields are "unchanged".
#[derive(Debug, Clone, Default)]
pub struct HeartbeatIn {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now, when it says.
    pub owned: Option<BTreeSet<TopicPartition>>,
    pub client_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatOut {
    pub error: i16,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment when it changed since it was last told.
    pub assignment: Option<BTreeSet<TopicPartition>>,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub epoch: i32,
    previous_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    /// The server assignor this member last named.
    pub server_assignor: Option<String>,
    pub subscribed: BTreeSet<String>,
    rebalance_timeout_ms: u64,
    /// Partitions this member holds.
    pub assigned: BTreeSet<TopicPartition>,
    /// Partitions it was asked to give up and still owns.
    pub revoking: BTreeSet<TopicPartition>,
    revoking_since: Option<Instant>,
    session_deadline: Instant,
    /// What the member was last told it holds.
    last_sent: Option<BTreeSet<TopicPartition>>,
}

#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: BTreeMap<String, Member>,
    pub target: BTreeMap<String, BTreeSet<TopicPartition>>,
    /// The subscribed topics' metadata the target was computed from.
    metadata: TopicsView,
}

impl ConsumerGroup {
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || !m.revoking.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Who owns `tp`, counting partitions being revoked.
    fn owner(&self, tp: &TopicPartition) -> Option<&str> {
        self.members
            .values()
            .find(|m| m.assigned.contains(tp) || m.revoking.contains(tp))
            .map(|m| m.member_id.as_str())
    }
}

#[derive(Debug, Default)]
pub struct ConsumerGroups {
    config: ConsumerGroupsConfig,
    groups: BTreeMap<String, ConsumerGroup>,
    /// What `__consumer_offsets` holds for each group (written, or loaded).
    persisted: BTreeMap<String, persist::Persisted>,
    /// Groups an input may have changed: their records are compared with
    /// `persisted` in `take_writes`.
    dirty: BTreeSet<String>,
}

impl ConsumerGroups {
    pub fn new(config: ConsumerGroupsConfig) -> ConsumerGroups {
        ConsumerGroups {
            config,
            groups: BTreeMap::new(),
            persisted: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    // --- getters ---------------------------------------------------------------

    pub fn contains(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id)
    }

    pub fn group(&self, group_id: &str) -> Option<&ConsumerGroup> {
        self.groups.get(group_id)
    }

    pub fn groups(&self) -> impl Iterator<Item = (&String, &ConsumerGroup)> {
        self.groups.iter()
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.groups
            .values()
            .flat_map(|g| g.members.values())
            .flat_map(|m| {
                let revocation = m
                    .revoking_since
                    .map(|at| at + Duration::from_millis(m.rebalance_timeout_ms));
                [Some(m.session_deadline), revocation]
            })
            .flatten()
            .min()
    }

    // --- inputs ----------------------------------------------------------------

    /// One heartbeat. `new_member_id` names a joining member that brought
    /// none (ConsumerGroupHeartbeat v0).
    pub fn heartbeat(
        &mut self,
        now: Instant,
        request: HeartbeatIn,
        topics: &TopicsView,
        new_member_id: impl FnOnce() -> String,
    ) -> HeartbeatOut {
        let interval = i32::try_from(self.config.heartbeat_interval_ms).unwrap_or(i32::MAX);
        let fail = |error: ResponseError, member_id: &str, message: &str| HeartbeatOut {
            error: error.code(),
            error_message: Some(message.to_string()),
            member_id: member_id.to_string(),
            member_epoch: -1,
            heartbeat_interval_ms: interval,
            assignment: None,
        };
        if let Err((error, message)) = validate(&request) {
            return fail(error, &request.member_id, &message);
        }
        if request.member_epoch < 0 {
            self.dirty.insert(request.group_id.clone());
            self.leave(&request.group_id, &request.member_id);
            return HeartbeatOut {
                error: 0,
                error_message: None,
                member_id: request.member_id,
                member_epoch: request.member_epoch,
                heartbeat_interval_ms: interval,
                assignment: None,
            };
        }
        if !self.groups.contains_key(&request.group_id) && self.groups.len() >= GROUPS_MAX {
            return fail(
                ResponseError::GroupMaxSizeReached,
                &request.member_id,
                "too many groups",
            );
        }
        let member_id = if request.member_id.is_empty() {
            new_member_id()
        } else {
            request.member_id.clone()
        };
        self.dirty.insert(request.group_id.clone());
        let max_size = self.config.group_max_size;
        let bugs = self.config.bugs;
        let session = Duration::from_millis(self.config.session_timeout_ms);
        let group = self.groups.entry(request.group_id.clone()).or_default();
        let joining = request.member_epoch == 0;
        let full = request.owned.is_some() && request.subscribed_topic_names.is_some();
        match group.members.get(&member_id) {
            None if !joining => {
                return fail(ResponseError::UnknownMemberId, &member_id, "unknown member")
            }
            None if group.members.len() >= max_size => {
                return fail(
                    ResponseError::GroupMaxSizeReached,
                    &member_id,
                    "group is full",
                )
            }
            Some(m)
                if !joining
                    && request.member_epoch != m.epoch
                    && request.member_epoch != m.previous_epoch =>
            {
                return fail(
                    ResponseError::FencedMemberEpoch,
                    &member_id,
                    "the member epoch is not the current one",
                )
            }
            _ => {}
        }
        if joining {
            // A (re)join starts from nothing: what it held is free again.
            group.members.remove(&member_id);
            let mut member = new_member(&member_id, &request, now);
            if let Some(old) = replaced_static_member(group, &member, bugs) {
                // KIP-345 in KIP-848: the instance comes back under a new
                // id and carries on where its old incarnation stopped; the
                // old id is fenced (its heartbeats find no member).
                member.epoch = old.epoch;
                member.previous_epoch = old.previous_epoch;
                member.assigned = old.assigned;
                member.revoking = old.revoking;
                member.revoking_since = old.revoking_since;
            }
            group.members.insert(member_id.clone(), member);
            group.epoch += 1;
        }
        let member = group.members.get_mut(&member_id).expect("present");
        member.session_deadline = now + session;
        if let Some(names) = &request.subscribed_topic_names {
            let subscribed: BTreeSet<String> = names.iter().cloned().collect();
            if subscribed != member.subscribed {
                member.subscribed = subscribed;
                group.epoch += 1;
            }
        }
        if let Some(assignor) = &request.server_assignor {
            group.assignor = assignor.clone();
            member.server_assignor = Some(assignor.clone());
        }
        refresh_target(group, topics);
        reconcile(group, &member_id, request.owned.as_ref(), now, bugs);
        let member = group.members.get_mut(&member_id).expect("present");
        // Kafka (GroupMetadataManager.consumerGroupHeartbeat) answers a
        // full request (a join, or the member's whole state, as its client
        // sends after an error or a lost answer) with the assignment even
        // if unchanged: an answer that was lost may have carried a
        // revocation, and the member must learn it before its rebalance
        // timeout fences it.
        if joining || full {
            member.last_sent = None;
        }
        let assignment = (member.last_sent.as_ref() != Some(&member.assigned)).then(|| {
            member.last_sent = Some(member.assigned.clone());
            member.assigned.clone()
        });
        HeartbeatOut {
            error: 0,
            error_message: None,
            member_id,
            member_epoch: member.epoch,
            heartbeat_interval_ms: interval,
            assignment,
        }
    }

    /// Expires members whose session lapsed or who did not give up their
    /// partitions within their rebalance timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (id, group) in self.groups.iter_mut() {
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| {
                    m.session_deadline <= now
                        || m.revoking_since.is_some_and(|at| {
                            at + Duration::from_millis(m.rebalance_timeout_ms) <= now
                        })
                })
                .map(|m| m.member_id.clone())
                .collect();
            for member_id in expired {
                self.dirty.insert(id.clone());
                tracing::info!(member = %member_id, "consumer group member expired");
                group.members.remove(&member_id);
                group.target.remove(&member_id);
                group.epoch += 1;
            }
        }
        self.groups.retain(|_, g| !g.members.is_empty());
    }

    /// Whether an offset commit (or a fetch naming a member) may go ahead:
    /// the member exists at that epoch. An empty group takes commits from
    /// outside it (admin tools), as Kafka does.
    pub fn check_member(&self, group_id: &str, member_id: &str, epoch: i32) -> Result<(), i16> {
        let Some(group) = self.groups.get(group_id) else {
            return Ok(());
        };
        if member_id.is_empty() && epoch < 0 && group.members.is_empty() {
            return Ok(());
        }
        let Some(member) = group.members.get(member_id) else {
            return Err(ResponseError::UnknownMemberId.code());
        };
        match epoch.cmp(&member.epoch) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less => Err(ResponseError::StaleMemberEpoch.code()),
            std::cmp::Ordering::Greater => Err(ResponseError::FencedMemberEpoch.code()),
        }
    }

    /// Forgets the groups `owned` says this coordinator no longer serves.
    pub fn retain_groups(&mut self, mut owned: impl FnMut(&str) -> bool) {
        self.groups.retain(|id, _| owned(id));
        self.persisted.retain(|id, _| owned(id));
        self.dirty.retain(|id| owned(id));
    }

    // --- persistence -------------------------------------------------------------

    /// The records to write for every group an input changed, one write
    /// per group (so each goes to the group's partition as one batch, and
    /// a group's state changes atomically in the log).
    pub fn take_writes(&mut self) -> Vec<(String, Vec<RawRecord>)> {
        let mut writes = Vec::new();
        // This runs after every input, and nearly every input changes no
        // group: taking the empty set apart was most of its cost.
        if self.dirty.is_empty() {
            return writes;
        }
        for id in std::mem::take(&mut self.dirty) {
            let now = self
                .groups
                .get(&id)
                .map(persist::snapshot)
                .unwrap_or_default();
            let mut persisted = self.persisted.remove(&id).unwrap_or_default();
            let records = persist::diff(&id, &mut persisted, now);
            if !persisted.is_empty() {
                self.persisted.insert(id.clone(), persisted);
            }
            if !records.is_empty() {
                writes.push((id, records));
            }
        }
        writes
    }

    /// Groups changed since `take_writes` last ran (none between inputs).
    pub fn unwritten(&self) -> usize {
        self.dirty.len()
    }

    /// A write of `group_id`'s records failed: what the log holds for those
    /// keys is unknown, so the group's next write rewrites them.
    pub fn write_failed(&mut self, group_id: &str, keys: &[Vec<u8>]) {
        let persisted = self.persisted.entry(group_id.to_string()).or_default();
        for key in keys {
            if let Ok((_, id)) = persist::decode_key(key) {
                persisted.insert(id, None);
            }
        }
    }

    /// A heartbeat answer did not reach its member (its write failed): the
    /// member is told its assignment again on its next heartbeat.
    pub fn forget_sent(&mut self, group_id: &str, member_id: &str) {
        if let Some(m) = self
            .groups
            .get_mut(group_id)
            .and_then(|g| g.members.get_mut(member_id))
        {
            m.last_sent = None;
        }
    }

    /// Applies one KIP-848 record read back from `__consumer_offsets`, in
    /// log order (`persist::is_consumer_group_key` tells which keys are
    /// ours). Unreadable records are skipped: the topic is writable by
    /// clients too.
    pub fn load_record(&mut self, key: &[u8], value: Option<&[u8]>) {
        let (group_id, id) = match persist::decode_key(key) {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::warn!(error = %e, "skipping an unreadable consumer group key");
                return;
            }
        };
        let persisted = self.persisted.entry(group_id.clone()).or_default();
        match value.map(|v| persist::decode_value(&id, v)) {
            None => {
                persisted.remove(&id);
            }
            Some(Ok(value)) => {
                persisted.insert(id, Some(value));
            }
            Some(Err(e)) => {
                tracing::warn!(group = %group_id, record = ?id, error = %e, "skipping an unreadable consumer group record");
            }
        }
        if persisted.is_empty() {
            self.persisted.remove(&group_id);
        }
    }

    /// After the records of the groups `loaded` selects were replayed:
    /// rebuilds those groups. Sessions start now, as they do in Kafka: the
    /// members do not know the coordinator changed. Records that do not
    /// make a group are deleted by the next write (the group is dirty).
    pub fn finish_load(&mut self, now: Instant, mut loaded: impl FnMut(&str) -> bool) {
        let session = Duration::from_millis(self.config.session_timeout_ms);
        for (id, records) in &self.persisted {
            if !loaded(id) || self.groups.contains_key(id) {
                continue;
            }
            match persist::rebuild(records, now, session) {
                Ok(group) => {
                    tracing::info!(group = %id, members = group.members.len(), epoch = group.epoch, "consumer group loaded");
                    self.groups.insert(id.clone(), group);
                    // Records another writer left incomplete (no
                    // partition metadata, say) are completed.
                    self.dirty.insert(id.clone());
                }
                Err(why) => {
                    tracing::warn!(group = %id, %why, "consumer group records do not make a group; deleting them");
                    self.dirty.insert(id.clone());
                }
            }
        }
    }

    fn leave(&mut self, group_id: &str, member_id: &str) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if group.members.remove(member_id).is_some() {
            group.target.remove(member_id);
            group.epoch += 1;
        }
        if group.members.is_empty() {
            self.groups.remove(group_id);
        }
    }

    /// `no_double_ownership` (INVARIANTS.md): a partition held, or being
    /// given up, by two members of one group. `None` when every partition
    /// has at most one owner.
    pub fn double_ownership(&self) -> Option<String> {
        for (id, group) in &self.groups {
            let mut owned: BTreeMap<TopicPartition, &str> = BTreeMap::new();
            for m in group.members.values() {
                for tp in m.assigned.iter().chain(&m.revoking) {
                    if let Some(other) = owned.insert(*tp, &m.member_id) {
                        return Some(format!(
                            "group {id}: partition {tp:?} owned by {other} and {}",
                            m.member_id
                        ));
                    }
                }
            }
        }
        None
    }

    /// Panics with the broken rule. Double ownership is the bug flags'
    /// symptom, so with a flag on it is left for the checkers to report.
    pub fn check_invariants(&self) {
        assert!(self.groups.len() <= GROUPS_MAX, "groups bounded");
        if self.config.bugs == GroupBugs::default() {
            if let Some(violation) = self.double_ownership() {
                panic!("no_double_ownership: {violation}");
            }
        }
        self.check_persisted();
        for (id, group) in &self.groups {
            assert!(
                group.assignment_epoch <= group.epoch,
                "{id}: target ahead of the group"
            );
            for m in group.members.values() {
                assert!(
                    m.assigned.is_disjoint(&m.revoking),
                    "{id}: held and revoking at once"
                );
                assert!(
                    m.epoch <= group.assignment_epoch,
                    "{id}: member ahead of the target"
                );
            }
        }
    }
}

impl ConsumerGroups {
    /// Memory matches the log: every group not changed since its last
    /// write is what a replay of its records would rebuild (unless a write
    /// failed, and the next one rewrites what it held).
    fn check_persisted(&self) {
        let ids: BTreeSet<&String> = self.groups.keys().chain(self.persisted.keys()).collect();
        for id in ids {
            let persisted = self.persisted.get(id);
            if self.dirty.contains(id) || persisted.is_some_and(|p| p.values().any(Option::is_none))
            {
                continue;
            }
            let now = self
                .groups
                .get(id)
                .map(persist::snapshot)
                .unwrap_or_default();
            let logged: BTreeMap<&persist::RecordId, &persist::Value> = persisted
                .into_iter()
                .flatten()
                .map(|(record, value)| (record, value.as_ref().expect("known")))
                .collect();
            assert!(
                now.iter().eq(logged),
                "{id}: a change of the group was not written to the log"
            );
        }
    }
}

fn validate(request: &HeartbeatIn) -> Result<(), (ResponseError, String)> {
    if request.group_id.is_empty() {
        return Err((ResponseError::InvalidGroupId, "empty group id".to_string()));
    }
    if request.member_epoch == 0 && request.subscribed_topic_names.is_none() {
        return Err((
            ResponseError::InvalidRequest,
            "a joining member must name its subscription".to_string(),
        ));
    }
    if request.member_epoch == 0 && request.rebalance_timeout_ms <= 0 {
        return Err((
            ResponseError::InvalidRequest,
            "a joining member must give its rebalance timeout".to_string(),
        ));
    }
    if request
        .subscribed_topic_names
        .as_ref()
        .is_some_and(|t| t.len() > TOPICS_PER_MEMBER_MAX)
    {
        return Err((ResponseError::InvalidRequest, "too many topics".to_string()));
    }
    match request.server_assignor.as_deref() {
        None | Some(ASSIGNOR_UNIFORM) | Some(ASSIGNOR_RANGE) => Ok(()),
        Some(other) => Err((
            ResponseError::UnsupportedAssignor,
            format!("assignor '{other}' is not supported; use uniform or range"),
        )),
    }
}

/// The member a returning static member replaces (removed from the group,
/// or, with the `static-member-dup` bug, left in place), if any.
fn replaced_static_member(
    group: &mut ConsumerGroup,
    member: &Member,
    bugs: GroupBugs,
) -> Option<Member> {
    let instance = member.instance_id.as_ref()?;
    let old_id = group
        .members
        .values()
        .find(|m| m.instance_id.as_ref() == Some(instance) && m.member_id != member.member_id)?
        .member_id
        .clone();
    tracing::info!(instance = %instance, old = %old_id, new = %member.member_id, "static member replaced");
    if bugs.static_member_dup {
        return group.members.get(&old_id).cloned();
    }
    group.target.remove(&old_id);
    group.members.remove(&old_id)
}

fn new_member(member_id: &str, request: &HeartbeatIn, now: Instant) -> Member {
    Member {
        member_id: member_id.to_string(),
        epoch: 0,
        previous_epoch: -1,
        instance_id: request.instance_id.clone(),
        rack_id: request.rack_id.clone(),
        client_id: request.client_id.clone(),
        server_assignor: None,
        subscribed: BTreeSet::new(),
        rebalance_timeout_ms: request.rebalance_timeout_ms.max(1) as u64,
        assigned: BTreeSet::new(),
        revoking: BTreeSet::new(),
        revoking_since: None,
        session_deadline: now,
        last_sent: None,
    }
}

/// Recomputes the target assignment when the group's epoch moved or the
/// subscribed topics changed (created, deleted, grown).
fn refresh_target(group: &mut ConsumerGroup, topics: &TopicsView) {
    let subscribed: BTreeSet<&String> =
        group.members.values().flat_map(|m| &m.subscribed).collect();
    let metadata: TopicsView = topics
        .iter()
        .filter(|(name, _)| subscribed.contains(name))
        .map(|(n, v)| (n.clone(), *v))
        .collect();
    if metadata != group.metadata {
        group.metadata = metadata;
        group.epoch += 1;
    }
    if group.assignment_epoch == group.epoch {
        return;
    }
    group.target = match group.assignor.as_str() {
        ASSIGNOR_RANGE => assign_range(group),
        _ => assign_uniform(group),
    };
    group.assignment_epoch = group.epoch;
}

/// Moves one member towards its target (see the module comment).
fn reconcile(
    group: &mut ConsumerGroup,
    member_id: &str,
    owned: Option<&BTreeSet<TopicPartition>>,
    now: Instant,
    bugs: GroupBugs,
) {
    let target = group.target.get(member_id).cloned().unwrap_or_default();
    let member = group.members.get_mut(member_id).expect("present");
    if !member.revoking.is_empty() {
        let confirmed = owned.is_some_and(|o| o.is_disjoint(&member.revoking));
        if !confirmed {
            return;
        }
        member.revoking.clear();
        member.revoking_since = None;
    }
    let to_revoke: BTreeSet<TopicPartition> =
        member.assigned.difference(&target).copied().collect();
    if !to_revoke.is_empty() {
        member.assigned.retain(|tp| !to_revoke.contains(tp));
        member.revoking = to_revoke;
        member.revoking_since = Some(now);
        return;
    }
    if member.epoch != group.assignment_epoch {
        member.previous_epoch = member.epoch;
        member.epoch = group.assignment_epoch;
    }
    let wanted: Vec<TopicPartition> = target.difference(&member.assigned).copied().collect();
    for tp in wanted {
        if group.owner(&tp).is_none() || bugs.cooperative_direct_move {
            let member = group.members.get_mut(member_id).expect("present");
            member.assigned.insert(tp);
        }
    }
}

fn partitions_of(group: &ConsumerGroup, topic: &str) -> Vec<TopicPartition> {
    group
        .metadata
        .get(topic)
        .map(|(id, count)| (0..*count).map(|p| (*id, p)).collect())
        .unwrap_or_default()
}

/// Every member subscribed to `topic`, in member-id order.
fn subscribers<'a>(group: &'a ConsumerGroup, topic: &str) -> Vec<&'a String> {
    group
        .members
        .values()
        .filter(|m| m.subscribed.contains(topic))
        .map(|m| &m.member_id)
        .collect()
}

/// `range`: per topic, contiguous ranges over the subscribers in order.
fn assign_range(group: &ConsumerGroup) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut target: BTreeMap<String, BTreeSet<TopicPartition>> = BTreeMap::new();
    for topic in group.metadata.keys() {
        let members = subscribers(group, topic);
        if members.is_empty() {
            continue;
        }
        let partitions = partitions_of(group, topic);
        let per = partitions.len() / members.len();
        let extra = partitions.len() % members.len();
        let mut start = 0;
        for (i, member) in members.iter().enumerate() {
            let len = per + usize::from(i < extra);
            target
                .entry((*member).clone())
                .or_default()
                .extend(&partitions[start..start + len]);
            start += len;
        }
    }
    target
}

/// `uniform`: balanced per topic, sticky (a partition stays with its
/// current holder while that holder is under its share).
fn assign_uniform(group: &ConsumerGroup) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut target: BTreeMap<String, BTreeSet<TopicPartition>> = BTreeMap::new();
    for topic in group.metadata.keys() {
        let members = subscribers(group, topic);
        if members.is_empty() {
            continue;
        }
        let partitions = partitions_of(group, topic);
        let quota = |i: usize| {
            partitions.len() / members.len() + usize::from(i < partitions.len() % members.len())
        };
        let mut counts: Vec<usize> = vec![0; members.len()];
        let mut free = Vec::new();
        for tp in &partitions {
            let holder = members.iter().position(|m| {
                group.members[*m].assigned.contains(tp) || group.members[*m].revoking.contains(tp)
            });
            match holder {
                Some(i) if counts[i] < quota(i) => {
                    counts[i] += 1;
                    target.entry(members[i].clone()).or_default().insert(*tp);
                }
                _ => free.push(*tp),
            }
        }
        for tp in free {
            let i = (0..members.len())
                .filter(|i| counts[*i] < quota(*i))
                .min_by_key(|i| counts[*i])
                .expect("quotas cover every partition");
            counts[i] += 1;
            target.entry(members[i].clone()).or_default().insert(tp);
        }
    }
    target
}

mod persist;
pub use persist::is_consumer_group_key;

#[cfg(test)]
mod tests;
