//! The metadata records, named and shaped as Kafka's own
//! (`metadata/src/main/resources/common/metadata/*.json`), and their
//! encoding as record values inside v2 batches.
//!
//! `kafka-protocol` has no metadata-record types, so these are plain Rust
//! structs with the fields seedlog uses. The encoding is seedlog's own, not
//! Kafka's: the metadata log is only ever read by seedlog controllers and
//! brokers, and a compact fixed-layout encoding is easy to check.
//!
//! # Encoding (version 0)
//!
//! A record is one v2 record with a null key and this value:
//!
//! ```text
//! u8   api key     Kafka's metadata apiKey (RegisterBrokerRecord = 0, ...)
//! u8   version     0
//! ...  fields      in declaration order, big-endian:
//!                    i8/i16/i32/i64/u16 fixed width; bool as one byte 0/1;
//!                    uuid as 16 bytes;
//!                    string as i16 length + UTF-8 (-1 = null);
//!                    int32 array as i32 count + items (-1 = null, for the
//!                    "no change" of PartitionChangeRecord's optional lists);
//!                    endpoint array as i32 count + (string name, string
//!                    host, u16 port, i16 security protocol) each.
//! ```
//!
//! Version 1 exists only for PartitionRecord and PartitionChangeRecord: the
//! version 0 fields followed by addingReplicas and removingReplicas
//! (KIP-455). It is written only when a reassignment is involved.
//!
//! Decoding rejects unknown keys and versions, counts above
//! [`ARRAY_LEN_MAX`], invalid UTF-8, and trailing bytes: a metadata record
//! that does not decode exactly is a corrupt log, never something to guess
//! at.

use crate::batch::{BatchIter, BatchWriter, RecordReader};
use uuid::Uuid;

/// Kafka's `NO_LEADER`.
pub const NO_LEADER: i32 = -1;
/// Kafka's `NO_LEADER_CHANGE`: PartitionChangeRecord leaves the leader (and
/// so the leader epoch) alone.
pub const NO_LEADER_CHANGE: i32 = -2;
/// Bound on every array in a record (replicas, endpoints): far above any
/// real replication factor, low enough that a corrupt count cannot make the
/// decoder allocate without limit.
pub const ARRAY_LEN_MAX: usize = 4096;
/// Records per batch that [`encode_batch`] accepts (one controller result).
pub const BATCH_RECORDS_MAX: usize = 100_000;

const VERSION: u8 = 0;
/// PartitionRecord and PartitionChangeRecord with the KIP-455 fields
/// (adding and removing replicas). Written only when a reassignment is in
/// play, so every other record keeps its version 0 bytes (Kafka carries
/// these fields as tagged fields, absent unless set, for the same reason).
const VERSION_REASSIGNMENT: u8 = 1;

/// `ConfigRecord.resourceType` for a topic (Kafka's ConfigResource.Type).
pub const CONFIG_RESOURCE_TOPIC: i8 = 2;
/// `ConfigRecord.resourceType` for a broker.
pub const CONFIG_RESOURCE_BROKER: i8 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: i16,
}

/// apiKey 0. `broker_epoch` is the offset of this very record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBrokerRecord {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    pub broker_epoch: i64,
    pub end_points: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

/// apiKey 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: Uuid,
}

/// apiKey 3: a new partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    pub partition_id: i32,
    pub topic_id: Uuid,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// KIP-966.
    pub eligible_leader_replicas: Vec<i32>,
    pub last_known_elr: Vec<i32>,
    /// KIP-455: replicas joining in an ongoing reassignment (not yet in
    /// the ISR when it started).
    pub adding_replicas: Vec<i32>,
    /// KIP-455: replicas that leave once the reassignment completes.
    pub removing_replicas: Vec<i32>,
}

/// apiKey 4. `value` None deletes the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRecord {
    pub resource_type: i8,
    pub resource_name: String,
    pub name: String,
    pub value: Option<String>,
}

/// apiKey 5: a change of an existing partition. `None` lists and
/// `leader == NO_LEADER_CHANGE` leave the field alone. Every change bumps
/// the partition epoch; a leader change (even to the same leader, or to
/// `NO_LEADER`) also bumps the leader epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChangeRecord {
    pub partition_id: i32,
    pub topic_id: Uuid,
    pub isr: Option<Vec<i32>>,
    pub leader: i32,
    pub replicas: Option<Vec<i32>>,
    pub eligible_leader_replicas: Option<Vec<i32>>,
    pub last_known_elr: Option<Vec<i32>>,
    /// KIP-455; `None` leaves the field alone, empty clears it.
    pub adding_replicas: Option<Vec<i32>>,
    pub removing_replicas: Option<Vec<i32>>,
}

impl PartitionChangeRecord {
    /// A record that changes nothing yet (every field "no change").
    pub fn unchanged(topic_id: Uuid, partition_id: i32) -> PartitionChangeRecord {
        PartitionChangeRecord {
            partition_id,
            topic_id,
            isr: None,
            leader: NO_LEADER_CHANGE,
            replicas: None,
            eligible_leader_replicas: None,
            last_known_elr: None,
            adding_replicas: None,
            removing_replicas: None,
        }
    }

    /// Whether the record changes nothing (and so need not be written).
    pub fn is_no_op(&self) -> bool {
        self.isr.is_none()
            && self.leader == NO_LEADER_CHANGE
            && self.replicas.is_none()
            && self.eligible_leader_replicas.is_none()
            && self.last_known_elr.is_none()
            && self.adding_replicas.is_none()
            && self.removing_replicas.is_none()
    }
}

/// apiKey 7: the broker leaves every ISR before this record (the partition
/// changes precede it in the same batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceBrokerRecord {
    pub id: i32,
    pub epoch: i64,
}

/// apiKey 8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfenceBrokerRecord {
    pub id: i32,
    pub epoch: i64,
}

/// apiKey 9.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveTopicRecord {
    pub topic_id: Uuid,
}

/// apiKey 15: the next producer id block starts at `producer_ids_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerIdsRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub producer_ids_end: i64,
}

/// apiKey 17, used for controlled shutdown: `fenced` is -1 unfence, 0 no
/// change, 1 fence; `in_controlled_shutdown` 0 no change, 1 entering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistrationChangeRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub fenced: i8,
    pub in_controlled_shutdown: i8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    RegisterBroker(RegisterBrokerRecord),
    Topic(TopicRecord),
    Partition(PartitionRecord),
    Config(ConfigRecord),
    PartitionChange(PartitionChangeRecord),
    FenceBroker(FenceBrokerRecord),
    UnfenceBroker(UnfenceBrokerRecord),
    RemoveTopic(RemoveTopicRecord),
    ProducerIds(ProducerIdsRecord),
    BrokerRegistrationChange(BrokerRegistrationChangeRecord),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordDecodeError {
    #[error("metadata record ends early at byte {0}")]
    Truncated(usize),
    #[error("unknown metadata record api key {0}")]
    UnknownApiKey(u8),
    #[error("unsupported version {version} of metadata record {api_key}")]
    UnknownVersion { api_key: u8, version: u8 },
    #[error("array of {0} items exceeds the bound")]
    ArrayTooLong(i32),
    #[error("invalid length {0}")]
    BadLength(i32),
    #[error("string is not UTF-8")]
    NotUtf8,
    #[error("{0} trailing bytes after the record")]
    Trailing(usize),
    #[error("a metadata record has a null value")]
    NullValue,
    #[error("metadata batch: {0}")]
    Batch(#[from] crate::batch::BatchError),
}

impl MetadataRecord {
    /// Kafka's apiKey of the record type.
    pub fn api_key(&self) -> u8 {
        match self {
            MetadataRecord::RegisterBroker(_) => 0,
            MetadataRecord::Topic(_) => 2,
            MetadataRecord::Partition(_) => 3,
            MetadataRecord::Config(_) => 4,
            MetadataRecord::PartitionChange(_) => 5,
            MetadataRecord::FenceBroker(_) => 7,
            MetadataRecord::UnfenceBroker(_) => 8,
            MetadataRecord::RemoveTopic(_) => 9,
            MetadataRecord::ProducerIds(_) => 15,
            MetadataRecord::BrokerRegistrationChange(_) => 17,
        }
    }

    /// The encoding version: 1 only for partition records that carry
    /// reassignment fields.
    fn version(&self) -> u8 {
        let reassigning = match self {
            MetadataRecord::Partition(r) => {
                !r.adding_replicas.is_empty() || !r.removing_replicas.is_empty()
            }
            MetadataRecord::PartitionChange(r) => {
                r.adding_replicas.is_some() || r.removing_replicas.is_some()
            }
            _ => false,
        };
        if reassigning {
            VERSION_REASSIGNMENT
        } else {
            VERSION
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Room for a partition record with three replicas in one
        // allocation (64 bytes grew once for nearly every one of them).
        let mut out = Vec::with_capacity(128);
        self.encode_into(&mut out);
        out
    }

    /// Appends the record's encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut w = Writer(std::mem::take(out));
        let version = self.version();
        w.u8(self.api_key());
        w.u8(version);
        match self {
            MetadataRecord::RegisterBroker(r) => {
                w.i32(r.broker_id);
                w.uuid(r.incarnation_id);
                w.i64(r.broker_epoch);
                w.len(r.end_points.len());
                for e in &r.end_points {
                    w.string(Some(&e.name));
                    w.string(Some(&e.host));
                    w.u16(e.port);
                    w.i16(e.security_protocol);
                }
                w.string(r.rack.as_deref());
                w.bool(r.fenced);
                w.bool(r.in_controlled_shutdown);
            }
            MetadataRecord::Topic(r) => {
                w.string(Some(&r.name));
                w.uuid(r.topic_id);
            }
            MetadataRecord::Partition(r) => {
                w.i32(r.partition_id);
                w.uuid(r.topic_id);
                w.ints(Some(&r.replicas));
                w.ints(Some(&r.isr));
                w.i32(r.leader);
                w.i32(r.leader_epoch);
                w.i32(r.partition_epoch);
                w.ints(Some(&r.eligible_leader_replicas));
                w.ints(Some(&r.last_known_elr));
                if version == VERSION_REASSIGNMENT {
                    w.ints(Some(&r.adding_replicas));
                    w.ints(Some(&r.removing_replicas));
                }
            }
            MetadataRecord::Config(r) => {
                w.i8(r.resource_type);
                w.string(Some(&r.resource_name));
                w.string(Some(&r.name));
                w.string(r.value.as_deref());
            }
            MetadataRecord::PartitionChange(r) => {
                w.i32(r.partition_id);
                w.uuid(r.topic_id);
                w.ints(r.isr.as_deref());
                w.i32(r.leader);
                w.ints(r.replicas.as_deref());
                w.ints(r.eligible_leader_replicas.as_deref());
                w.ints(r.last_known_elr.as_deref());
                if version == VERSION_REASSIGNMENT {
                    w.ints(r.adding_replicas.as_deref());
                    w.ints(r.removing_replicas.as_deref());
                }
            }
            MetadataRecord::FenceBroker(r) => {
                w.i32(r.id);
                w.i64(r.epoch);
            }
            MetadataRecord::UnfenceBroker(r) => {
                w.i32(r.id);
                w.i64(r.epoch);
            }
            MetadataRecord::RemoveTopic(r) => w.uuid(r.topic_id),
            MetadataRecord::ProducerIds(r) => {
                w.i32(r.broker_id);
                w.i64(r.broker_epoch);
                w.i64(r.producer_ids_end);
            }
            MetadataRecord::BrokerRegistrationChange(r) => {
                w.i32(r.broker_id);
                w.i64(r.broker_epoch);
                w.i8(r.fenced);
                w.i8(r.in_controlled_shutdown);
            }
        }
        *out = w.0;
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, RecordDecodeError> {
        let mut r = Reader { bytes, at: 0 };
        let api_key = r.u8()?;
        let version = r.u8()?;
        let reassignment_version =
            version == VERSION_REASSIGNMENT && (api_key == 3 || api_key == 5);
        if version != VERSION && !reassignment_version {
            return Err(RecordDecodeError::UnknownVersion { api_key, version });
        }
        let record = match api_key {
            0 => {
                let broker_id = r.i32()?;
                let incarnation_id = r.uuid()?;
                let broker_epoch = r.i64()?;
                let count = r.len()?;
                let mut end_points = Vec::with_capacity(count);
                for _ in 0..count {
                    end_points.push(BrokerEndpoint {
                        name: r.required_string()?,
                        host: r.required_string()?,
                        port: r.u16()?,
                        security_protocol: r.i16()?,
                    });
                }
                MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    broker_id,
                    incarnation_id,
                    broker_epoch,
                    end_points,
                    rack: r.string()?,
                    fenced: r.bool()?,
                    in_controlled_shutdown: r.bool()?,
                })
            }
            2 => MetadataRecord::Topic(TopicRecord {
                name: r.required_string()?,
                topic_id: r.uuid()?,
            }),
            3 => MetadataRecord::Partition(PartitionRecord {
                partition_id: r.i32()?,
                topic_id: r.uuid()?,
                replicas: r.required_ints()?,
                isr: r.required_ints()?,
                leader: r.i32()?,
                leader_epoch: r.i32()?,
                partition_epoch: r.i32()?,
                eligible_leader_replicas: r.required_ints()?,
                last_known_elr: r.required_ints()?,
                adding_replicas: if reassignment_version {
                    r.required_ints()?
                } else {
                    Vec::new()
                },
                removing_replicas: if reassignment_version {
                    r.required_ints()?
                } else {
                    Vec::new()
                },
            }),
            4 => MetadataRecord::Config(ConfigRecord {
                resource_type: r.i8()?,
                resource_name: r.required_string()?,
                name: r.required_string()?,
                value: r.string()?,
            }),
            5 => MetadataRecord::PartitionChange(PartitionChangeRecord {
                partition_id: r.i32()?,
                topic_id: r.uuid()?,
                isr: r.ints()?,
                leader: r.i32()?,
                replicas: r.ints()?,
                eligible_leader_replicas: r.ints()?,
                last_known_elr: r.ints()?,
                adding_replicas: if reassignment_version {
                    r.ints()?
                } else {
                    None
                },
                removing_replicas: if reassignment_version {
                    r.ints()?
                } else {
                    None
                },
            }),
            7 => MetadataRecord::FenceBroker(FenceBrokerRecord {
                id: r.i32()?,
                epoch: r.i64()?,
            }),
            8 => MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
                id: r.i32()?,
                epoch: r.i64()?,
            }),
            9 => MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: r.uuid()?,
            }),
            15 => MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: r.i32()?,
                broker_epoch: r.i64()?,
                producer_ids_end: r.i64()?,
            }),
            17 => MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                broker_id: r.i32()?,
                broker_epoch: r.i64()?,
                fenced: r.i8()?,
                in_controlled_shutdown: r.i8()?,
            }),
            other => return Err(RecordDecodeError::UnknownApiKey(other)),
        };
        if r.at != bytes.len() {
            return Err(RecordDecodeError::Trailing(bytes.len() - r.at));
        }
        Ok(record)
    }
}

/// One v2 batch (offsets from 0, as `QuorumNode::propose` expects) holding
/// `records` in order, each as a null-key record.
pub fn encode_batch(records: &[MetadataRecord], timestamp_ms: i64) -> Vec<u8> {
    assert!(
        !records.is_empty(),
        "a metadata batch holds at least one record"
    );
    assert!(
        records.len() <= BATCH_RECORDS_MAX,
        "{} records exceed the batch bound {BATCH_RECORDS_MAX}",
        records.len()
    );
    // Each record is encoded straight into the batch (a snapshot of a large
    // cluster is ~10,000 records, and checkers encode one often).
    let mut batch = BatchWriter::new(timestamp_ms, records.len() * 128);
    for record in records {
        batch.push_value(|out| record.encode_into(out));
    }
    batch.finish()
}

/// Every metadata record in `bytes` (whole v2 batches as the quorum log
/// returns them) with its offset. Control batches (the quorum's
/// LeaderChangeMessage) carry no metadata and are skipped. The bytes must be
/// committed, CRC-checked log content; a record that does not decode is an
/// error.
pub fn decode_batches(bytes: &[u8]) -> Result<Vec<(i64, MetadataRecord)>, RecordDecodeError> {
    decode_batches_from(bytes, i64::MIN)
}

/// [`decode_batches`] of the records at `from_offset` and after: a read
/// of the log starts at a batch boundary, which may lie before the offset
/// the reader is at; the records before it are skipped, not decoded.
pub fn decode_batches_from(
    bytes: &[u8],
    from_offset: i64,
) -> Result<Vec<(i64, MetadataRecord)>, RecordDecodeError> {
    let mut out = Vec::new();
    let mut iter = BatchIter::new(bytes);
    for (start, header) in iter.by_ref() {
        if header.is_control() || header.next_offset() <= from_offset {
            continue;
        }
        let slice = &bytes[start..start + header.total_size()];
        // Sized up front: a record is a large enum, and growing by doubling
        // copied each one about twice (a broker replays ~10,000 partition
        // records when a large cluster's topics are created). Bounded by
        // the batch's bytes (a record takes at least one), so a count the
        // records cannot back reserves no more than they could fill; the
        // decode below then reports what is wrong with them.
        let count = usize::try_from(header.records_count()).unwrap_or(0);
        out.reserve(count.min(slice.len()));
        for record in RecordReader::new(slice, &header)? {
            let record = record?;
            let offset = header.base_offset() + i64::from(record.offset_delta);
            if offset < from_offset {
                continue;
            }
            let value = record.value.ok_or(RecordDecodeError::NullValue)?;
            out.push((offset, MetadataRecord::decode(value)?));
        }
    }
    if let Some(error) = iter.tail_error() {
        return Err(error.into());
    }
    Ok(out)
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn i8(&mut self, v: i8) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i16(&mut self, v: i16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn uuid(&mut self, v: Uuid) {
        self.0.extend_from_slice(v.as_bytes());
    }
    fn len(&mut self, len: usize) {
        assert!(
            len <= ARRAY_LEN_MAX,
            "array of {len} exceeds {ARRAY_LEN_MAX}"
        );
        self.i32(len as i32);
    }
    fn string(&mut self, v: Option<&str>) {
        match v {
            None => self.i16(-1),
            Some(s) => {
                let len = i16::try_from(s.len()).expect("metadata strings fit an i16 length");
                self.i16(len);
                self.0.extend_from_slice(s.as_bytes());
            }
        }
    }
    fn ints(&mut self, v: Option<&[i32]>) {
        match v {
            None => self.i32(-1),
            Some(items) => {
                self.len(items.len());
                for &item in items {
                    self.i32(item);
                }
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], RecordDecodeError> {
        let end = self.at + N;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(RecordDecodeError::Truncated(self.at))?;
        self.at = end;
        Ok(slice.try_into().expect("slice of N bytes"))
    }
    fn u8(&mut self) -> Result<u8, RecordDecodeError> {
        Ok(self.take::<1>()?[0])
    }
    fn i8(&mut self) -> Result<i8, RecordDecodeError> {
        Ok(i8::from_be_bytes(self.take()?))
    }
    fn bool(&mut self) -> Result<bool, RecordDecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(RecordDecodeError::BadLength(i32::from(other))),
        }
    }
    fn u16(&mut self) -> Result<u16, RecordDecodeError> {
        Ok(u16::from_be_bytes(self.take()?))
    }
    fn i16(&mut self) -> Result<i16, RecordDecodeError> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, RecordDecodeError> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, RecordDecodeError> {
        Ok(i64::from_be_bytes(self.take()?))
    }
    fn uuid(&mut self) -> Result<Uuid, RecordDecodeError> {
        Ok(Uuid::from_bytes(self.take()?))
    }
    /// An array count: -1 is null.
    fn count(&mut self) -> Result<Option<usize>, RecordDecodeError> {
        let count = self.i32()?;
        if count == -1 {
            return Ok(None);
        }
        if count < 0 {
            return Err(RecordDecodeError::BadLength(count));
        }
        if count as usize > ARRAY_LEN_MAX {
            return Err(RecordDecodeError::ArrayTooLong(count));
        }
        Ok(Some(count as usize))
    }
    fn len(&mut self) -> Result<usize, RecordDecodeError> {
        self.count()?.ok_or(RecordDecodeError::BadLength(-1))
    }
    fn string(&mut self) -> Result<Option<String>, RecordDecodeError> {
        let len = self.i16()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(RecordDecodeError::BadLength(i32::from(len)));
        }
        let end = self.at + len as usize;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(RecordDecodeError::Truncated(self.at))?;
        self.at = end;
        let s = std::str::from_utf8(slice).map_err(|_| RecordDecodeError::NotUtf8)?;
        Ok(Some(s.to_string()))
    }
    fn required_string(&mut self) -> Result<String, RecordDecodeError> {
        self.string()?.ok_or(RecordDecodeError::BadLength(-1))
    }
    fn ints(&mut self) -> Result<Option<Vec<i32>>, RecordDecodeError> {
        let Some(count) = self.count()? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(self.i32()?);
        }
        Ok(Some(out))
    }
    fn required_ints(&mut self) -> Result<Vec<i32>, RecordDecodeError> {
        self.ints()?.ok_or(RecordDecodeError::BadLength(-1))
    }
}
