//! The records the coordinator writes to `__consumer_offsets`, in Kafka's
//! own formats, so that a dump of the topic reads like Kafka's and a future
//! replica (or Kafka's `GroupMetadataMessageFormatter`) understands it.
//!
//! Keys and values are Kafka's non-flexible schemas, big-endian:
//!
//! ```text
//! OffsetCommitKey     v1: version i16 = 1, group string, topic string, partition i32
//! OffsetCommitValue   v3: version i16 = 3, offset i64, leader_epoch i32,
//!                         metadata string, commit_timestamp i64
//! GroupMetadataKey    v2: version i16 = 2, group string
//! GroupMetadataValue  v3: version i16 = 3, protocol_type string, generation i32,
//!                         protocol nullable string, leader nullable string,
//!                         current_state_timestamp i64,
//!                         members [member_id string, group_instance_id nullable string,
//!                                  client_id string, client_host string,
//!                                  rebalance_timeout i32, session_timeout i32,
//!                                  subscription bytes, assignment bytes]
//! ```
//!
//! A null value is a tombstone: the offset or the group is gone.
//! `kafka-protocol` 0.18 has no generated types for these (they are not
//! RPCs), hence the hand-written codec here.

use bytes::Bytes;

const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
const GROUP_METADATA_KEY_VERSION: i16 = 2;
const GROUP_METADATA_VALUE_VERSION: i16 = 3;
/// A bound on members decoded from one record, so a corrupt count cannot
/// allocate without limit.
const DECODED_MEMBERS_MAX: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

impl RecordKey {
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. } | RecordKey::Group { group } => group,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record truncated")]
    Truncated,
    #[error("unknown key version {0}")]
    UnknownKeyVersion(i16),
    #[error("unknown value version {0}")]
    UnknownValueVersion(i16),
    #[error("invalid utf-8 in a string")]
    Utf8,
    #[error("invalid length {0}")]
    Length(i64),
    #[error("{0}")]
    Batch(#[from] crate::batch::BatchError),
}

// --- encoding ---------------------------------------------------------------

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = i16::try_from(s.len()).expect("strings are bounded below 32 KiB by validation");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
        Some(s) => put_str(out, s),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let len = i32::try_from(b.len()).expect("bytes fit i32");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
}

pub fn encode_key(key: &RecordKey) -> Vec<u8> {
    let mut out = Vec::new();
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            out.extend_from_slice(&OFFSET_COMMIT_KEY_VERSION.to_be_bytes());
            put_str(&mut out, group);
            put_str(&mut out, topic);
            out.extend_from_slice(&partition.to_be_bytes());
        }
        RecordKey::Group { group } => {
            out.extend_from_slice(&GROUP_METADATA_KEY_VERSION.to_be_bytes());
            put_str(&mut out, group);
        }
    }
    out
}

pub fn encode_offset_value(value: &OffsetValue) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&OFFSET_COMMIT_VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&value.offset.to_be_bytes());
    out.extend_from_slice(&value.leader_epoch.to_be_bytes());
    put_str(&mut out, &value.metadata);
    out.extend_from_slice(&value.commit_timestamp_ms.to_be_bytes());
    out
}

pub fn encode_group_value(value: &GroupValue) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&GROUP_METADATA_VALUE_VERSION.to_be_bytes());
    put_str(&mut out, &value.protocol_type);
    out.extend_from_slice(&value.generation_id.to_be_bytes());
    put_nullable_str(&mut out, value.protocol_name.as_deref());
    put_nullable_str(&mut out, value.leader_id.as_deref());
    out.extend_from_slice(&value.current_state_timestamp_ms.to_be_bytes());
    let count = i32::try_from(value.members.len()).expect("members are bounded");
    out.extend_from_slice(&count.to_be_bytes());
    for m in &value.members {
        put_str(&mut out, &m.member_id);
        put_nullable_str(&mut out, m.group_instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
        out.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out
}

// --- decoding ---------------------------------------------------------------

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
    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn nullable_str(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(len as usize)?;
        Ok(Some(
            std::str::from_utf8(raw)
                .map_err(|_| RecordError::Utf8)?
                .to_string(),
        ))
    }
    fn str(&mut self) -> Result<String, RecordError> {
        self.nullable_str()?.ok_or(RecordError::Length(-1))
    }
    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }
}

pub fn decode_key(bytes: &[u8]) -> Result<RecordKey, RecordError> {
    let mut r = Reader { bytes, position: 0 };
    match r.i16()? {
        // v0 and v1 share the offset key layout.
        0 | 1 => Ok(RecordKey::Offset {
            group: r.str()?,
            topic: r.str()?,
            partition: r.i32()?,
        }),
        2 => Ok(RecordKey::Group { group: r.str()? }),
        v => Err(RecordError::UnknownKeyVersion(v)),
    }
}

pub fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut r = Reader { bytes, position: 0 };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownValueVersion(version));
    }
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.str()?;
    let commit_timestamp_ms = r.i64()?;
    if version == 1 {
        let _expire_timestamp = r.i64()?;
    }
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

pub fn decode_group_value(bytes: &[u8]) -> Result<GroupValue, RecordError> {
    let mut r = Reader { bytes, position: 0 };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownValueVersion(version));
    }
    let protocol_type = r.str()?;
    let generation_id = r.i32()?;
    let protocol_name = r.nullable_str()?;
    let leader_id = r.nullable_str()?;
    let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    if count < 0 || count as usize > DECODED_MEMBERS_MAX {
        return Err(RecordError::Length(count.into()));
    }
    let mut members = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let member_id = r.str()?;
        let group_instance_id = if version >= 3 {
            r.nullable_str()?
        } else {
            None
        };
        let client_id = r.str()?;
        let client_host = r.str()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let rebalance_timeout_ms = if version >= 1 {
            rebalance_timeout_ms
        } else {
            session_timeout_ms
        };
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation_id,
        protocol_name,
        leader_id,
        current_state_timestamp_ms,
        members,
    })
}

/// Kafka's `partitionFor`: `Utils.abs(groupId.hashCode) % partitions`, with
/// Java's `String.hashCode` over UTF-16 code units, so that a group lands on
/// the same `__consumer_offsets` partition as it would on Kafka.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    assert!(partitions > 0, "the offsets topic has partitions");
    let mut hash: i32 = 0;
    for unit in group.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    // Kafka's Utils.abs maps MIN_VALUE to 0 rather than overflowing.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions
}

/// A (key, value) pair read back from `__consumer_offsets`.
pub type RawRecord = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The records of one uncompressed v2 batch (header already validated by the
/// log). Unlike the test decoder this never panics: the offsets topic is a
/// topic like any other and a client could write garbage into it.
pub fn decode_batch_records(batch: &[u8]) -> Result<Vec<RawRecord>, RecordError> {
    let header = crate::batch::BatchHeader::parse(batch).map_err(|_| RecordError::Truncated)?;
    if header.compression_codec() != 0 || header.is_control() {
        return Err(RecordError::UnknownValueVersion(header.attributes()));
    }
    let batch = batch
        .get(..header.total_size())
        .ok_or(RecordError::Truncated)?;
    crate::batch::RecordReader::new(batch, &header)?
        .map(|record| {
            let record = record?;
            Ok((
                record.key.map(<[u8]>::to_vec),
                record.value.map(<[u8]>::to_vec),
            ))
        })
        .collect()
}

/// Encodes records as one uncompressed v2 batch, the format every partition
/// log stores.
pub fn encode_batch(records: &[RawRecord], timestamp_ms: i64) -> Vec<u8> {
    assert!(!records.is_empty(), "a write holds at least one record");
    let field_bytes = |f: &Option<Vec<u8>>| f.as_ref().map_or(0, Vec::len);
    let records_bytes = records
        .iter()
        .map(|(k, v)| field_bytes(k) + field_bytes(v) + 16)
        .sum();
    let mut batch = crate::batch::BatchWriter::new(timestamp_ms, records_bytes);
    for (key, value) in records {
        batch.push(key.as_deref(), value.as_deref());
    }
    batch.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let key = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        assert_eq!(decode_key(&encode_key(&key)).unwrap(), key);
        let key = RecordKey::Group { group: "g".into() };
        assert_eq!(decode_key(&encode_key(&key)).unwrap(), key);
        let value = OffsetValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_timestamp_ms: 1000,
        };
        assert_eq!(
            decode_offset_value(&encode_offset_value(&value)).unwrap(),
            value
        );
        let value = GroupValue {
            protocol_type: "consumer".into(),
            generation_id: 5,
            protocol_name: Some("range".into()),
            leader_id: Some("m1".into()),
            current_state_timestamp_ms: 9,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/h".into(),
                rebalance_timeout_ms: 100,
                session_timeout_ms: 10,
                subscription: Bytes::from_static(b"s"),
                assignment: Bytes::from_static(b"a"),
            }],
        };
        assert_eq!(
            decode_group_value(&encode_group_value(&value)).unwrap(),
            value
        );
        assert_eq!(decode_key(&[0, 9]), Err(RecordError::UnknownKeyVersion(9)));
        assert_eq!(decode_key(&[0, 1, 0]), Err(RecordError::Truncated));
    }

    #[test]
    fn batches_round_trip_with_tombstones() {
        let records = vec![
            (Some(b"k1".to_vec()), Some(b"v1".to_vec())),
            (Some(b"k2".to_vec()), None),
        ];
        let batch = encode_batch(&records, 5);
        assert_eq!(decode_batch_records(&batch).unwrap(), records);
        assert!(decode_batch_records(&batch[..batch.len() - 1]).is_err());
        // A client may write garbage into the offsets topic: a record
        // length past the batch is an error, not a panic.
        let mut damaged = batch.clone();
        damaged[crate::batch::BATCH_HEADER_LEN] = 0x7e;
        crate::batch::reseal_crc(&mut damaged);
        assert!(matches!(
            decode_batch_records(&damaged),
            Err(RecordError::Batch(_))
        ));
    }

    #[test]
    fn partition_matches_java_string_hash_code() {
        // "test-group".hashCode() == 627841412 in Java.
        assert_eq!(partition_for("test-group", 50), 627841412 % 50);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE in Java.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("", 50), 0);
    }
}
