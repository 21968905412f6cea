//! KIP-848 groups in `__consumer_offsets`, so that a coordinator that takes
//! over a partition (fail-over, restart) knows every member, its epoch and
//! what it owns.
//!
//! # Record format: Kafka's own record types
//!
//! The records are Kafka's (`group-coordinator/.../ConsumerGroup*.json`:
//! their non-tagged fields; tagged ones from newer Kafkas, such as the
//! metadata hash of KIP-1101, are skipped on read and not written), not a
//! private snapshot record. PartitionMetadata is written as the schema
//! without the `Epoch` field of early KIP-848 drafts; Kafka 4.1+ replaces
//! that record by the metadata hash, and a rebuild here does not need it
//! (without it, the next heartbeat recomputes the target at a new epoch):
//!
//! ```text
//! key v3 ConsumerGroupMetadata         (group)          value: epoch i32
//! key v4 ConsumerGroupPartitionMetadata(group)          value: topics [id uuid, name string,
//!                                                              partitions i32, racks []]
//! key v5 ConsumerGroupMemberMetadata   (group, member)  value: instance_id string?, rack_id string?,
//!                                                              client_id, client_host string,
//!                                                              subscribed_topic_names [string],
//!                                                              subscribed_topic_regex string? (null),
//!                                                              rebalance_timeout_ms i32,
//!                                                              server_assignor string?
//! key v6 ConsumerGroupTargetAssignmentMetadata (group)  value: assignment_epoch i32
//! key v7 ConsumerGroupTargetAssignmentMember (group, member)
//!                                                       value: [topic_id uuid, partitions [i32]]
//! key v8 ConsumerGroupCurrentMemberAssignment (group, member)
//!                                                       value: member_epoch i32, previous_epoch i32,
//!                                                              state i8, assigned [topic_id, [i32]],
//!                                                              pending_revocation [topic_id, [i32]]
//! ```
//!
//! Keys are non-flexible (i16 version, i16-length strings) like the
//! classic ones; values are version 0 in the flexible encoding (compact
//! strings and arrays, an empty tagged-field section after every struct).
//!
//! Why Kafka's records rather than one snapshot per group: a dump reads
//! like Kafka's (the point of `records.rs`), and records per member keep a
//! heartbeat's write to what that heartbeat changed (typically one
//! member's assignment) instead of the whole group, which matters for
//! groups of hundreds of members that all heartbeat. Compaction keeps the
//! newest record per key, which is exactly the group's state.
//!
//! # How writes are made
//!
//! [`snapshot`] is the set of records that describes a group now (none for
//! a group without members: an emptied group is a deleted one here). The
//! coordinator remembers per group what the log holds ([`Persisted`]); a
//! change writes the difference ([`diff`]): records whose value changed,
//! and tombstones for keys that are gone. Replay fills the same map, and
//! [`rebuild`] turns it back into a group.

use super::{ConsumerGroup, Member, TopicPartition, TopicsView};
use crate::group::records::{RawRecord, RecordError};
use crate::time::Instant;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use uuid::Uuid;

const KEY_GROUP_METADATA: i16 = 3;
const KEY_PARTITION_METADATA: i16 = 4;
const KEY_MEMBER_METADATA: i16 = 5;
const KEY_TARGET_METADATA: i16 = 6;
const KEY_TARGET_MEMBER: i16 = 7;
const KEY_CURRENT_ASSIGNMENT: i16 = 8;
const VALUE_VERSION: i16 = 0;
/// A bound on array lengths decoded from one record, so a corrupt length
/// cannot allocate without limit.
const DECODED_ARRAY_MAX: usize = 1_000_000;

/// Kafka's `MemberState` (written for readers of the topic; a rebuild
/// derives the state from the partitions instead).
const MEMBER_STATE_STABLE: i8 = 0;
const MEMBER_STATE_UNREVOKED_PARTITIONS: i8 = 1;
const MEMBER_STATE_UNRELEASED_PARTITIONS: i8 = 2;

/// Which record of a group, without the group id. The order is the order
/// of upserts in a write; tombstones go in reverse (members before the
/// group metadata, as Kafka deletes a group).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordId {
    GroupMetadata,
    PartitionMetadata,
    MemberMetadata(String),
    TargetMetadata,
    TargetMember(String),
    CurrentAssignment(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: BTreeSet<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentValue {
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: i8,
    pub assigned: BTreeSet<TopicPartition>,
    pub revoking: BTreeSet<TopicPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    GroupMetadata {
        epoch: i32,
    },
    PartitionMetadata {
        topics: TopicsView,
    },
    MemberMetadata(MemberValue),
    TargetMetadata {
        assignment_epoch: i32,
    },
    TargetMember {
        partitions: BTreeSet<TopicPartition>,
    },
    CurrentAssignment(AssignmentValue),
}

/// What the log holds for one group, by record. `None`: unknown (a write
/// of it failed), so the next write rewrites it whatever it holds.
pub type Persisted = BTreeMap<RecordId, Option<Value>>;

// --- keys ------------------------------------------------------------------

fn put_key_str(out: &mut Vec<u8>, s: &str) {
    let len = i16::try_from(s.len()).expect("ids are bounded below 32 KiB by validation");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub fn encode_key(group: &str, id: &RecordId) -> Vec<u8> {
    let (version, member) = match id {
        RecordId::GroupMetadata => (KEY_GROUP_METADATA, None),
        RecordId::PartitionMetadata => (KEY_PARTITION_METADATA, None),
        RecordId::MemberMetadata(m) => (KEY_MEMBER_METADATA, Some(m)),
        RecordId::TargetMetadata => (KEY_TARGET_METADATA, None),
        RecordId::TargetMember(m) => (KEY_TARGET_MEMBER, Some(m)),
        RecordId::CurrentAssignment(m) => (KEY_CURRENT_ASSIGNMENT, Some(m)),
    };
    let mut out = Vec::new();
    out.extend_from_slice(&version.to_be_bytes());
    put_key_str(&mut out, group);
    if let Some(member) = member {
        put_key_str(&mut out, member);
    }
    out
}

/// Whether `key` is one of the KIP-848 record keys (versions 3-8).
pub fn is_consumer_group_key(key: &[u8]) -> bool {
    key.len() >= 2
        && (KEY_GROUP_METADATA..=KEY_CURRENT_ASSIGNMENT)
            .contains(&i16::from_be_bytes([key[0], key[1]]))
}

pub fn decode_key(bytes: &[u8]) -> Result<(String, RecordId), RecordError> {
    let mut r = Reader { bytes, position: 0 };
    let version = r.i16()?;
    let group = r.key_str()?;
    let id = match version {
        KEY_GROUP_METADATA => RecordId::GroupMetadata,
        KEY_PARTITION_METADATA => RecordId::PartitionMetadata,
        KEY_MEMBER_METADATA => RecordId::MemberMetadata(r.key_str()?),
        KEY_TARGET_METADATA => RecordId::TargetMetadata,
        KEY_TARGET_MEMBER => RecordId::TargetMember(r.key_str()?),
        KEY_CURRENT_ASSIGNMENT => RecordId::CurrentAssignment(r.key_str()?),
        v => return Err(RecordError::UnknownKeyVersion(v)),
    };
    Ok((group, id))
}

// --- values (flexible encoding) --------------------------------------------

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    put_uvarint(out, len as u64 + 1);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_uvarint(out, 0),
        Some(s) => put_str(out, s),
    }
}

/// An empty tagged-field section: every flexible struct ends with one.
fn put_no_tags(out: &mut Vec<u8>) {
    put_uvarint(out, 0);
}

/// `[]TopicPartitions`: per topic id (in order), its partitions.
fn put_partitions(out: &mut Vec<u8>, partitions: &BTreeSet<TopicPartition>) {
    let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(*topic).or_default().push(*partition);
    }
    put_len(out, by_topic.len());
    for (topic, partitions) in by_topic {
        out.extend_from_slice(topic.as_bytes());
        put_len(out, partitions.len());
        for p in partitions {
            out.extend_from_slice(&p.to_be_bytes());
        }
        put_no_tags(out);
    }
}

pub fn encode_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    match value {
        Value::GroupMetadata { epoch } => out.extend_from_slice(&epoch.to_be_bytes()),
        Value::PartitionMetadata { topics } => {
            put_len(&mut out, topics.len());
            for (name, (id, partitions)) in topics {
                out.extend_from_slice(id.as_bytes());
                put_str(&mut out, name);
                out.extend_from_slice(&partitions.to_be_bytes());
                put_len(&mut out, 0); // racks per partition: not tracked
                put_no_tags(&mut out);
            }
        }
        Value::MemberMetadata(m) => {
            put_nullable_str(&mut out, m.instance_id.as_deref());
            put_nullable_str(&mut out, m.rack_id.as_deref());
            put_str(&mut out, &m.client_id);
            put_str(&mut out, &m.client_host);
            put_len(&mut out, m.subscribed.len());
            for topic in &m.subscribed {
                put_str(&mut out, topic);
            }
            put_nullable_str(&mut out, None); // no regex subscriptions
            out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
            put_nullable_str(&mut out, m.server_assignor.as_deref());
        }
        Value::TargetMetadata { assignment_epoch } => {
            out.extend_from_slice(&assignment_epoch.to_be_bytes())
        }
        Value::TargetMember { partitions } => put_partitions(&mut out, partitions),
        Value::CurrentAssignment(a) => {
            out.extend_from_slice(&a.epoch.to_be_bytes());
            out.extend_from_slice(&a.previous_epoch.to_be_bytes());
            out.push(a.state as u8);
            put_partitions(&mut out, &a.assigned);
            put_partitions(&mut out, &a.revoking);
        }
    }
    put_no_tags(&mut out);
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self.position.checked_add(n).ok_or(RecordError::Truncated)?;
        let slice = self
            .bytes
            .get(self.position..end)
            .ok_or(RecordError::Truncated)?;
        self.position = end;
        Ok(slice)
    }
    fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn uuid(&mut self) -> Result<Uuid, RecordError> {
        Ok(Uuid::from_bytes(
            self.take(16)?.try_into().expect("16 bytes"),
        ))
    }
    fn utf8(raw: &[u8]) -> Result<String, RecordError> {
        Ok(std::str::from_utf8(raw)
            .map_err(|_| RecordError::Utf8)?
            .to_string())
    }
    /// A non-flexible string (keys).
    fn key_str(&mut self) -> Result<String, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Err(RecordError::Length(len.into()));
        }
        Reader::utf8(self.take(len as usize)?)
    }
    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut v: u64 = 0;
        // At most 10 groups of 7 bits hold 64 bits.
        for group in 0..10 {
            let byte = self.take(1)?[0];
            v |= u64::from(byte & 0x7f) << (7 * group);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordError::Length(-1))
    }
    /// A compact length: `None` for null.
    fn len(&mut self) -> Result<Option<usize>, RecordError> {
        let raw = self.uvarint()?;
        if raw == 0 {
            return Ok(None);
        }
        let len = usize::try_from(raw - 1).map_err(|_| RecordError::Length(-1))?;
        if len > DECODED_ARRAY_MAX.max(self.bytes.len()) {
            return Err(RecordError::Length(len as i64));
        }
        Ok(Some(len))
    }
    fn array_len(&mut self) -> Result<usize, RecordError> {
        self.len()?.ok_or(RecordError::Length(-1))
    }
    fn nullable_str(&mut self) -> Result<Option<String>, RecordError> {
        match self.len()? {
            None => Ok(None),
            Some(len) => Ok(Some(Reader::utf8(self.take(len)?)?)),
        }
    }
    fn str(&mut self) -> Result<String, RecordError> {
        self.nullable_str()?.ok_or(RecordError::Length(-1))
    }
    /// Skips a tagged-field section (fields newer than this reader).
    fn tags(&mut self) -> Result<(), RecordError> {
        let count = self.uvarint()?;
        for _ in 0..count {
            let _tag = self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).map_err(|_| RecordError::Length(-1))?;
            self.take(size)?;
        }
        Ok(())
    }
    fn partitions(&mut self) -> Result<BTreeSet<TopicPartition>, RecordError> {
        let mut out = BTreeSet::new();
        for _ in 0..self.array_len()? {
            let topic = self.uuid()?;
            for _ in 0..self.array_len()? {
                out.insert((topic, self.i32()?));
            }
            self.tags()?;
        }
        Ok(out)
    }
}

/// The value of record `id`, as written by [`encode_value`] (or by Kafka).
pub fn decode_value(id: &RecordId, bytes: &[u8]) -> Result<Value, RecordError> {
    let mut r = Reader { bytes, position: 0 };
    let version = r.i16()?;
    if version != VALUE_VERSION {
        return Err(RecordError::UnknownValueVersion(version));
    }
    let value = match id {
        RecordId::GroupMetadata => Value::GroupMetadata { epoch: r.i32()? },
        RecordId::PartitionMetadata => {
            let mut topics = TopicsView::new();
            for _ in 0..r.array_len()? {
                let id = r.uuid()?;
                let name = r.str()?;
                let partitions = r.i32()?;
                for _ in 0..r.array_len()? {
                    let _partition = r.i32()?;
                    for _ in 0..r.array_len()? {
                        let _rack = r.str()?;
                    }
                    r.tags()?;
                }
                r.tags()?;
                topics.insert(name, (id, partitions));
            }
            Value::PartitionMetadata { topics }
        }
        RecordId::MemberMetadata(_) => {
            let instance_id = r.nullable_str()?;
            let rack_id = r.nullable_str()?;
            let client_id = r.str()?;
            let client_host = r.str()?;
            let mut subscribed = BTreeSet::new();
            for _ in 0..r.array_len()? {
                subscribed.insert(r.str()?);
            }
            let _regex = r.nullable_str()?;
            Value::MemberMetadata(MemberValue {
                instance_id,
                rack_id,
                client_id,
                client_host,
                subscribed,
                rebalance_timeout_ms: r.i32()?,
                server_assignor: r.nullable_str()?,
            })
        }
        RecordId::TargetMetadata => Value::TargetMetadata {
            assignment_epoch: r.i32()?,
        },
        RecordId::TargetMember(_) => Value::TargetMember {
            partitions: r.partitions()?,
        },
        RecordId::CurrentAssignment(_) => Value::CurrentAssignment(AssignmentValue {
            epoch: r.i32()?,
            previous_epoch: r.i32()?,
            state: r.i8()?,
            assigned: r.partitions()?,
            revoking: r.partitions()?,
        }),
    };
    r.tags()?;
    Ok(value)
}

// --- group <-> records -------------------------------------------------------

fn member_state(group: &ConsumerGroup, m: &Member) -> i8 {
    if !m.revoking.is_empty() {
        MEMBER_STATE_UNREVOKED_PARTITIONS
    } else if m.epoch != group.assignment_epoch
        || group.target.get(&m.member_id).unwrap_or(&BTreeSet::new()) != &m.assigned
    {
        MEMBER_STATE_UNRELEASED_PARTITIONS
    } else {
        MEMBER_STATE_STABLE
    }
}

/// The records that describe `group` now; none for a group without
/// members (it is deleted).
pub fn snapshot(group: &ConsumerGroup) -> BTreeMap<RecordId, Value> {
    let mut out = BTreeMap::new();
    if group.members.is_empty() {
        return out;
    }
    out.insert(
        RecordId::GroupMetadata,
        Value::GroupMetadata { epoch: group.epoch },
    );
    out.insert(
        RecordId::PartitionMetadata,
        Value::PartitionMetadata {
            topics: group.metadata.clone(),
        },
    );
    out.insert(
        RecordId::TargetMetadata,
        Value::TargetMetadata {
            assignment_epoch: group.assignment_epoch,
        },
    );
    for (member_id, partitions) in &group.target {
        out.insert(
            RecordId::TargetMember(member_id.clone()),
            Value::TargetMember {
                partitions: partitions.clone(),
            },
        );
    }
    for m in group.members.values() {
        out.insert(
            RecordId::MemberMetadata(m.member_id.clone()),
            Value::MemberMetadata(MemberValue {
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                client_id: m.client_id.clone(),
                // The core does not see socket addresses.
                client_host: String::new(),
                subscribed: m.subscribed.clone(),
                rebalance_timeout_ms: i32::try_from(m.rebalance_timeout_ms).unwrap_or(i32::MAX),
                server_assignor: m.server_assignor.clone(),
            }),
        );
        out.insert(
            RecordId::CurrentAssignment(m.member_id.clone()),
            Value::CurrentAssignment(AssignmentValue {
                epoch: m.epoch,
                previous_epoch: m.previous_epoch,
                state: member_state(group, m),
                assigned: m.assigned.clone(),
                revoking: m.revoking.clone(),
            }),
        );
    }
    out
}

/// The records that take the log from `persisted` to `now` for `group`:
/// changed or unknown records, then tombstones for records that are gone.
/// `persisted` becomes `now`.
pub fn diff(
    group: &str,
    persisted: &mut Persisted,
    now: BTreeMap<RecordId, Value>,
) -> Vec<RawRecord> {
    let mut records = Vec::new();
    for (id, value) in &now {
        if persisted.get(id) != Some(&Some(value.clone())) {
            records.push((Some(encode_key(group, id)), Some(encode_value(value))));
        }
    }
    for id in persisted.keys().rev().filter(|id| !now.contains_key(*id)) {
        records.push((Some(encode_key(group, id)), None));
    }
    *persisted = now.into_iter().map(|(id, v)| (id, Some(v))).collect();
    records
}

/// The group `records` describe, as a coordinator that just loaded them
/// sees it: sessions (and revocation deadlines) start at `now`, no member
/// has been told its assignment yet. `Err` says why the records do not
/// make a group (no metadata, no member, broken invariants).
pub fn rebuild(
    records: &Persisted,
    now: Instant,
    session: Duration,
) -> Result<ConsumerGroup, String> {
    let mut group = ConsumerGroup::default();
    let mut metadata_seen = false;
    let mut member_values: BTreeMap<&str, &MemberValue> = BTreeMap::new();
    let mut assignments: BTreeMap<&str, &AssignmentValue> = BTreeMap::new();
    for (id, value) in records {
        match (id, value) {
            (_, None) => return Err(format!("record {id:?} is unknown (a write failed)")),
            (RecordId::GroupMetadata, Some(Value::GroupMetadata { epoch })) => {
                group.epoch = *epoch;
                metadata_seen = true;
            }
            (RecordId::PartitionMetadata, Some(Value::PartitionMetadata { topics })) => {
                group.metadata = topics.clone();
            }
            (RecordId::TargetMetadata, Some(Value::TargetMetadata { assignment_epoch })) => {
                group.assignment_epoch = *assignment_epoch;
            }
            (RecordId::TargetMember(m), Some(Value::TargetMember { partitions })) => {
                group.target.insert(m.clone(), partitions.clone());
            }
            (RecordId::MemberMetadata(m), Some(Value::MemberMetadata(v))) => {
                member_values.insert(m, v);
            }
            (RecordId::CurrentAssignment(m), Some(Value::CurrentAssignment(a))) => {
                assignments.insert(m, a);
            }
            (id, Some(value)) => return Err(format!("record {id:?} holds {value:?}")),
        }
    }
    if !metadata_seen {
        return Err("no group metadata record".to_string());
    }
    for (member_id, v) in &member_values {
        let Some(a) = assignments.get(member_id) else {
            return Err(format!("member {member_id} has no current assignment"));
        };
        group.members.insert(
            member_id.to_string(),
            Member {
                member_id: member_id.to_string(),
                epoch: a.epoch,
                previous_epoch: a.previous_epoch,
                instance_id: v.instance_id.clone(),
                rack_id: v.rack_id.clone(),
                client_id: v.client_id.clone(),
                server_assignor: v.server_assignor.clone(),
                subscribed: v.subscribed.clone(),
                rebalance_timeout_ms: v.rebalance_timeout_ms.max(1) as u64,
                assigned: a.assigned.clone(),
                revoking: a.revoking.clone(),
                // Kafka restarts these timers at load time too.
                revoking_since: (!a.revoking.is_empty()).then_some(now),
                session_deadline: now + session,
                last_sent: None,
            },
        );
    }
    if let Some(orphan) = assignments.keys().find(|m| !member_values.contains_key(*m)) {
        return Err(format!("assignment of {orphan} without member metadata"));
    }
    if group.members.is_empty() {
        return Err("no members".to_string());
    }
    group.assignor = group_assignor(&group);
    check_group(&group)?;
    Ok(group)
}

/// The assignor a rebuilt group uses: the one most of its members named
/// (live, a group uses the one named last, which the records do not keep;
/// members of one group name the same one in practice).
fn group_assignor(group: &ConsumerGroup) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for m in group.members.values() {
        if let Some(a) = &m.server_assignor {
            *counts.entry(a).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(a, _)| a.to_string())
        .unwrap_or_default()
}

/// The invariants `ConsumerGroups::check_invariants` asserts, as an error:
/// records from the log are input, not a promise.
fn check_group(group: &ConsumerGroup) -> Result<(), String> {
    if group.assignment_epoch > group.epoch {
        return Err("target ahead of the group".to_string());
    }
    let mut owners: BTreeMap<TopicPartition, &str> = BTreeMap::new();
    for m in group.members.values() {
        if !m.assigned.is_disjoint(&m.revoking) {
            return Err(format!("{}: held and revoking at once", m.member_id));
        }
        if m.epoch > group.assignment_epoch {
            return Err(format!("{}: member ahead of the target", m.member_id));
        }
        for tp in m.assigned.iter().chain(&m.revoking) {
            if let Some(other) = owners.insert(*tp, &m.member_id) {
                return Err(format!("{tp:?} owned by {other} and {}", m.member_id));
            }
        }
    }
    Ok(())
}
