//! One classic group (Kafka's `ClassicGroup`): members, generation, leader, selected protocol.
//! The rules of each request live in `coordinator.rs`; this file keeps the
//! group's own bookkeeping consistent.

use super::member::Member;
use super::offsets::OffsetStore;
use super::records::{GroupValue, MemberValue};
use super::state::GroupState;
use bytes::Bytes;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;
use std::collections::{BTreeMap, BTreeSet};

/// The protocol type whose assignments the coordinator can read.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

#[derive(Debug)]
pub struct Group<R> {
    pub id: String,
    /// Distinguishes this group from an earlier one of the same id that was
    /// deleted: a write of the old one must not touch the new one.
    pub incarnation: u64,
    state: GroupState,
    /// When the group entered its state (Kafka's `currentStateTimestamp`).
    pub state_since_ms: i64,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub members: BTreeMap<String, Member<R>>,
    /// group.instance.id -> member id (KIP-345).
    pub static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pub pending_members: BTreeSet<String>,
    /// Members that joined this generation but have not sent SyncGroup.
    pub pending_sync: BTreeSet<String>,
    /// A member joined during the initial delay: extend it once more.
    pub new_member_added: bool,
    /// `Some(ms left of the rebalance timeout)` while the initial rebalance
    /// delay of a group that was Empty runs.
    pub initial_delay_remaining_ms: Option<u64>,
    /// The write persisting the current generation's assignment, while it is
    /// not durable; SyncGroup answers wait for it.
    pub pending_metadata_write: Option<u64>,
    pub offsets: OffsetStore,
}

impl<R> Group<R> {
    pub fn new(id: String, incarnation: u64, now_ms: i64) -> Group<R> {
        Group {
            id,
            incarnation,
            state: GroupState::Empty,
            state_since_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeSet::new(),
            pending_sync: BTreeSet::new(),
            new_member_added: false,
            initial_delay_remaining_ms: None,
            pending_metadata_write: None,
            offsets: OffsetStore::default(),
        }
    }

    // --- getters -------------------------------------------------------------

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    pub fn awaiting_join_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    /// Every member has rejoined and no member id handed out is still
    /// outstanding (Kafka's `hasAllMembersJoined`).
    pub fn has_all_members_joined(&self) -> bool {
        self.awaiting_join_count() == self.members.len() && self.pending_members.is_empty()
    }

    /// The largest rebalance timeout of any member: the join phase waits
    /// that long for the slowest.
    pub fn rebalance_timeout_ms(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0)
    }

    /// Whether a member with these protocols may join (Kafka's
    /// `supportsProtocols`): an empty group takes any non-empty set; else
    /// the type must match and one protocol must be supported by every
    /// other member.
    pub fn supports_protocols(
        &self,
        member_id: &str,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
    ) -> bool {
        let others: Vec<&Member<R>> = self
            .members
            .values()
            .filter(|m| m.member_id != member_id)
            .collect();
        if others.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| others.iter().all(|m| m.supports(name)))
    }

    /// The protocol every member supports that most members prefer (Kafka's
    /// `selectProtocol`: each member votes for its first candidate); ties
    /// go to the smaller name so the choice is deterministic.
    pub fn select_protocol(&self) -> String {
        let first = self
            .members
            .values()
            .next()
            .expect("a protocol is selected only with members");
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| self.members.values().all(|m| m.supports(name)))
            .collect();
        assert!(
            !candidates.is_empty(),
            "group {}: joins admit only members sharing a protocol",
            self.id
        );
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            let vote = member
                .vote(&candidates)
                .expect("members support candidates");
            *votes.entry(vote).or_insert(0) += 1;
        }
        let (name, _) = votes
            .iter()
            .fold(None::<(&str, usize)>, |best, (name, count)| match best {
                Some((_, c)) if c >= *count => best,
                _ => Some((name, *count)),
            })
            .expect("at least one vote");
        name.to_string()
    }

    /// Topics the members subscribe to, when the protocol type is
    /// "consumer" and the subscriptions decode; `None` when unknown.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            let metadata: Vec<&Bytes> = match &self.protocol_name {
                Some(p) => member.metadata(p).into_iter().collect(),
                None => member.protocols.iter().map(|(_, m)| m).collect(),
            };
            for m in metadata {
                let subscription = decode_subscription(m)?;
                topics.extend(subscription.topics.iter().map(|t| t.to_string()));
            }
        }
        Some(topics)
    }

    // --- mutations -----------------------------------------------------------

    pub fn transition(&mut self, to: GroupState, now_ms: i64) {
        assert!(
            to.can_follow(self.state),
            "group {}: illegal transition {:?} -> {:?}",
            self.id,
            self.state,
            to
        );
        self.state = to;
        self.state_since_ms = now_ms;
    }

    /// Adds a member; the first member of an empty group fixes the
    /// protocol type, and the first member becomes leader.
    pub fn add(&mut self, member: Member<R>, protocol_type: &str) {
        assert!(
            !self.members.contains_key(&member.member_id),
            "group {}: member {} added twice",
            self.id,
            member.member_id
        );
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_string());
        }
        if let Some(instance) = &member.group_instance_id {
            let previous = self
                .static_members
                .insert(instance.clone(), member.member_id.clone());
            assert!(
                previous.is_none(),
                "group {}: instance {instance} mapped twice",
                self.id
            );
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member; a removed leader is replaced by the first member.
    pub fn remove(&mut self, member_id: &str) -> Option<Member<R>> {
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync.remove(member_id);
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        Some(member)
    }

    /// Gives a static member a new member id (KIP-345): same assignment,
    /// same place in the group; the old id is fenced from now on.
    pub fn replace_static_member(&mut self, instance: &str, old_id: &str, new_id: &str) {
        let mut member = self
            .members
            .remove(old_id)
            .expect("the static member being replaced exists");
        assert_eq!(member.group_instance_id.as_deref(), Some(instance));
        member.member_id = new_id.to_string();
        self.members.insert(new_id.to_string(), member);
        self.static_members
            .insert(instance.to_string(), new_id.to_string());
        if self.is_leader(old_id) {
            self.leader_id = Some(new_id.to_string());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_string());
        }
    }

    /// The value persisted to `__consumer_offsets` for this group now.
    pub fn to_value(&self) -> GroupValue {
        let protocol = self.protocol_name.as_deref();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation_id: self.generation_id,
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone(),
            current_state_timestamp_ms: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .and_then(|p| m.metadata(p).cloned())
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Restores the state a persisted value describes: Stable with its
    /// members (who must heartbeat within their session timeout), or Empty.
    pub fn restore(&mut self, value: GroupValue) {
        self.generation_id = value.generation_id;
        self.protocol_type = Some(value.protocol_type).filter(|t| !t.is_empty());
        self.protocol_name = value.protocol_name;
        self.leader_id = value.leader_id;
        self.state_since_ms = value.current_state_timestamp_ms;
        self.members.clear();
        self.static_members.clear();
        let protocol = self.protocol_name.clone().unwrap_or_default();
        for m in value.members {
            if let Some(instance) = &m.group_instance_id {
                self.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            self.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    awaiting_join: None,
                    awaiting_sync: None,
                    is_new: false,
                },
            );
        }
        if self
            .leader_id
            .as_ref()
            .is_some_and(|l| !self.members.contains_key(l))
        {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }

    /// Panics if the group's bookkeeping is inconsistent.
    pub fn check_invariants(&self, members_max: usize) {
        let id = &self.id;
        assert!(self.generation_id >= 0, "group {id}: negative generation");
        assert!(
            self.members.len() <= members_max,
            "group {id}: {} members beyond the bound {members_max}",
            self.members.len()
        );
        assert!(
            self.pending_members.len() <= members_max,
            "group {id}: pending members unbounded"
        );
        match self.state {
            GroupState::Empty | GroupState::Dead => assert!(
                self.members.is_empty(),
                "group {id}: {:?} with members",
                self.state
            ),
            _ => assert!(
                !self.members.is_empty() || self.is(GroupState::PreparingRebalance),
                "group {id}: {:?} without members",
                self.state
            ),
        }
        match &self.leader_id {
            Some(leader) => assert!(
                self.members.contains_key(leader),
                "group {id}: leader {leader} is not a member"
            ),
            None => assert!(
                self.members.is_empty(),
                "group {id}: members without a leader"
            ),
        }
        for (instance, member_id) in &self.static_members {
            let member = self
                .members
                .get(member_id)
                .unwrap_or_else(|| panic!("group {id}: instance {instance} maps to no member"));
            assert_eq!(member.group_instance_id.as_deref(), Some(instance.as_str()));
        }
        for (member_id, member) in &self.members {
            assert_eq!(
                &member.member_id, member_id,
                "group {id}: member keyed by its id"
            );
            assert!(
                member.awaiting_join.is_none() || self.is(GroupState::PreparingRebalance),
                "group {id}: a join parked outside PreparingRebalance"
            );
            assert!(
                member.awaiting_sync.is_none() || self.is(GroupState::CompletingRebalance),
                "group {id}: a sync parked outside CompletingRebalance"
            );
        }
        assert!(
            self.pending_sync
                .iter()
                .all(|m| self.members.contains_key(m)),
            "group {id}: pending sync of a non-member"
        );
        if matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) {
            assert!(self.protocol_name.is_some(), "group {id}: no protocol");
        }
        if let Err(partition) = self.check_single_ownership() {
            panic!(
                "group {id}: generation {} assigns {partition:?} to two members",
                self.generation_id
            );
        }
    }

    /// Assignments all belong to the current generation (they are set
    /// together by the leader's SyncGroup), so no partition may appear in
    /// two of them. Checked when the assignments decode as Kafka's consumer
    /// protocol; other protocol types are opaque.
    pub fn check_single_ownership(&self) -> Result<(), (String, i32)> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return Ok(());
        }
        check_assignments(self.members.values().map(|m| &m.assignment))
    }
}

/// Ok if no (topic, partition) appears in two of the decodable
/// `assignments`; empty or undecodable ones are skipped.
pub fn check_assignments<'a>(
    assignments: impl Iterator<Item = &'a Bytes>,
) -> Result<(), (String, i32)> {
    let mut owned: BTreeSet<(String, i32)> = BTreeSet::new();
    for bytes in assignments {
        let Some(assignment) = decode_assignment(bytes) else {
            continue;
        };
        for tp in &assignment.assigned_partitions {
            for p in &tp.partitions {
                if !owned.insert((tp.topic.to_string(), *p)) {
                    return Err((tp.topic.to_string(), *p));
                }
            }
        }
    }
    Ok(())
}

/// Consumer protocol payloads are a version (i16) then the struct; newer
/// versions than the codec knows decode as its newest (fields only append),
/// as Kafka's `ConsumerProtocol` does.
fn decode_versioned<T: Decodable>(bytes: &Bytes, max_version: i16) -> Option<T> {
    if bytes.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version < 0 {
        return None;
    }
    let mut body = bytes.slice(2..);
    T::decode(&mut body, version.min(max_version)).ok()
}

pub fn decode_assignment(bytes: &Bytes) -> Option<ConsumerProtocolAssignment> {
    decode_versioned(bytes, 3)
}

pub fn decode_subscription(bytes: &Bytes) -> Option<ConsumerProtocolSubscription> {
    decode_versioned(bytes, 3)
}
