//! Log compaction, Kafka's `cleanup.policy=compact` (its `LogCleaner`),
//! run by the node in bounded steps.
//!
//! A pass keeps the latest record of every key and drops the older ones,
//! in the closed segments only. It has two phases, each a series of steps
//! of at most one segment read or rewritten:
//!
//! 1. Mapping: from the first dirty offset (where the last pass ended,
//!    kept in `cleaner-offset-checkpoint`) to the cleanable end, an offset
//!    map of key -> offset of its latest record. The map is bounded
//!    ([`OFFSET_MAP_KEYS_MAX`], [`OFFSET_MAP_KEY_BYTES_MAX`]); when it
//!    fills, the pass covers what was mapped and the next pass goes on from
//!    there, as Kafka's does.
//! 2. Cleaning: every segment below the map's end, oldest first, is read
//!    and rewritten without the records the map supersedes.
//!
//! # The cleanable end
//!
//! The lowest of the active segment's base offset, the high watermark the
//! caller passes and the synced offset, rounded down to a segment
//! boundary. A record is only ever removed because a later record of the
//! same key exists; that later record must not be taken back afterwards,
//! neither by a crash (it is synced) nor by a follower truncating after a
//! leader change (it is committed). Kafka bounds by the last stable offset
//! for the same reason.
//!
//! # Which records stay (Kafka's `shouldRetainRecord`)
//!
//! A record at or after the map's end stays (the map knows nothing newer).
//! Below it, a record without a key goes (a compacted topic refuses them,
//! see [`check_keys_present`]); a record goes when the map holds a later
//! offset for its key; a tombstone (null value) that is the latest of its
//! key goes once its batch's delete horizon has passed (KIP-534, below).
//! Control batches (transaction markers) are kept as they are: this broker
//! has no transactions, so none should exist.
//!
//! # Batches
//!
//! A batch with records left keeps its base offset, last offset delta,
//! leader epoch and producer fields (Kafka's `buildRetainedRecordsInto`),
//! so it covers the same offsets and producer sequences as before, with
//! gaps inside. Retained records keep their bytes; only their timestamp
//! delta is re-encoded when the batch's base timestamp changes. The batch
//! is recompressed with its own codec.
//!
//! Batches left with no records do not vanish outright: each run of
//! consecutive emptied batches of one leader epoch becomes a single empty
//! batch (no records, no producer id) spanning the run's offsets, as
//! Kafka's `RETAIN_EMPTY` batches do. The log's batches thus stay dense:
//! recovery still treats a gap between batches as corruption (a base
//! offset lies outside the CRC), a follower copying a compacted leader
//! still sees contiguous batches, and a segment keeps its offset range.
//! The cost is one header (61 bytes) per run, so at most one per retained
//! batch, leader epoch and segment. Kafka instead keeps the last batch of
//! each producer for idempotence; here a producer whose batches all went
//! is unknown after a restart, which the producer state table accepts
//! (an unknown producer may start at any sequence), so only a retry of a
//! batch that compaction already removed would go undetected.
//!
//! # Tombstones (KIP-534)
//!
//! The first pass that keeps a tombstone sets its batch's delete horizon
//! (attribute bit 6; the base timestamp becomes `now + delete.retention.ms`
//! and the records' timestamp deltas are re-encoded against it). A later
//! pass at or after the horizon removes the tombstone. A tombstone thus
//! outlives the first pass that saw it by at least `delete.retention.ms`,
//! long enough for a consumer reading from the start to see it. A batch
//! whose tombstones are gone loses its flag, and a segment holding a
//! passed horizon makes a pass due whatever the dirty ratio, so that
//! tombstones go even when nothing new is written.
//!
//! # Crash safety
//!
//! A cleaned segment replaces the old one through `Storage::write_atomic`
//! (temporary file, sync, rename: the adapter's file storage; one insert
//! in `MemoryStorage`), so a crash leaves either the old or the new
//! segment, each a valid run of batches over the same offsets. Any mix of
//! cleaned and uncleaned segments is a valid log: a record is only removed
//! when a later, durable record of its key exists. The checkpoint of the
//! first dirty offset is a hint, written when a pass ends; a stale or lost
//! one only makes the next pass do more work.
//!
//! # Records are sliced, not decoded to `kafka_protocol::records::Record`
//!
//! Decompression and compression use `kafka-protocol`'s codecs. Its
//! `Record` type is not used:
//! headers land in a map, so two headers with one key would merge, and a
//! header key that is not UTF-8 fails to decode; re-encoding would change
//! what producers wrote. Records are sliced out of the (decompressed)
//! records section instead and copied byte for byte.
//!
//! # Bounds
//!
//! A step reads at most one segment, batch by batch, and writes at most
//! one: it holds one batch and the cleaned segment in memory. A cleaned
//! segment is about the old one's size at most: setting a delete horizon
//! re-encodes timestamp deltas against a later base, a few bytes more per
//! record of that batch, which the records removed usually outweigh. The offset map holds at most [`OFFSET_MAP_KEYS_MAX`]
//! keys of [`OFFSET_MAP_KEY_BYTES_MAX`] bytes in all, plus the keys of the
//! one batch being mapped.

use super::segment::Segment;
use super::{read_small_file, LogError, PartitionLog};
use crate::batch::varint::{put_varlong, read_varlong};
use crate::batch::{
    assemble_batch, validate_batch, BatchError, BatchHeader, Compression, RebuiltFields,
    TimestampType, ATTRIBUTE_DELETE_HORIZON, BATCH_HEADER_LEN,
};
use crate::storage::{join, Storage};
use crate::time::Instant;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};
use std::collections::BTreeMap;

/// The file holding the first dirty offset: a version line `0`, then the
/// offset (Kafka's `cleaner-offset-checkpoint`, per partition here).
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// How soon the node comes back for the next step while a pass is under
/// way: a pass of N segments takes about 2N steps, and between two steps
/// the node serves everything else.
pub const COMPACTION_STEP_INTERVAL_MS: u64 = 100;

/// Keys the offset map holds at most (Kafka bounds its map by
/// `log.cleaner.dedupe.buffer.size` instead).
pub const OFFSET_MAP_KEYS_MAX: usize = 1 << 20;

/// Key bytes the offset map holds at most.
pub const OFFSET_MAP_KEY_BYTES_MAX: u64 = 64 << 20;

/// `min.cleanable.dirty.ratio` is kept in millionths: 1.0 is this.
pub const RATIO_PPM_ONE: u32 = 1_000_000;

/// The smallest record: length, attributes, two deltas, key and value
/// lengths and a header count, one byte each.
const RECORD_BYTES_MIN: usize = 7;

/// `cleanup.policy`: what happens to old segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Whole segments go past `retention.ms` / `retention.bytes`.
    #[default]
    Delete,
    /// Compaction keeps the latest record of every key; no time or size
    /// retention.
    Compact,
    /// Both.
    CompactDelete,
}

impl CleanupPolicy {
    /// Kafka's list syntax: `delete`, `compact`, or both separated by a
    /// comma in either order, spaces allowed around the items.
    pub fn parse(value: &str) -> Option<CleanupPolicy> {
        let (mut compact, mut delete) = (false, false);
        for item in value.split(',') {
            match item.trim() {
                "compact" if !compact => compact = true,
                "delete" if !delete => delete = true,
                _ => return None,
            }
        }
        match (compact, delete) {
            (true, true) => Some(CleanupPolicy::CompactDelete),
            (true, false) => Some(CleanupPolicy::Compact),
            (false, true) => Some(CleanupPolicy::Delete),
            (false, false) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    /// Whether time and size retention delete old segments.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// Whether compaction runs.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }
}

/// What one compaction step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionStep {
    /// Nothing: the policy does not compact, or no pass is due.
    Idle,
    /// Read one segment (from `from_offset` on) into the offset map.
    Mapped {
        base_offset: i64,
        from_offset: i64,
        bytes_read: u64,
    },
    /// Cleaned one segment. It was rewritten only when something changed
    /// (`bytes_after < bytes_before`, or a batch's delete horizon was set
    /// or cleared). `pass_finished` when it was the last of the pass.
    Cleaned {
        base_offset: i64,
        bytes_before: u64,
        bytes_after: u64,
        rewritten: bool,
        pass_finished: bool,
    },
    /// The pass ended with no segment left to clean: retention or
    /// DeleteRecords removed them since the last step.
    Finished,
}

/// Counters since the log was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanerStats {
    pub passes_finished: u64,
    pub segments_mapped: u64,
    pub segments_cleaned: u64,
    pub segments_rewritten: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
}

/// Compaction's state in a [`PartitionLog`].
#[derive(Debug)]
pub(crate) struct Cleaner {
    /// Offsets below this went through a finished pass (Kafka's first
    /// dirty offset). A hint: safety never depends on it.
    first_dirty_offset: i64,
    /// Keys a pass's offset map may hold, at most [`OFFSET_MAP_KEYS_MAX`].
    offset_map_keys_max: usize,
    pass: Option<Pass>,
    stats: CleanerStats,
}

impl Default for Cleaner {
    fn default() -> Cleaner {
        Cleaner {
            first_dirty_offset: 0,
            offset_map_keys_max: OFFSET_MAP_KEYS_MAX,
            pass: None,
            stats: CleanerStats::default(),
        }
    }
}

#[derive(Debug)]
struct Pass {
    /// The cleanable end when the pass began; the map never goes past it.
    dirty_end_offset: i64,
    map: OffsetMap,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The next offset to map.
    Mapping { next_offset: i64 },
    /// The next segment to clean is the one holding this offset.
    Cleaning { next_offset: i64 },
}

/// Key -> offset of its latest record, over `[start, end_offset)`.
#[derive(Debug)]
struct OffsetMap {
    /// Ordered by key bytes; no iteration order is ever observed, but a
    /// `BTreeMap` keeps the core free of hash seeds.
    latest: BTreeMap<Bytes, i64>,
    keys_max: usize,
    key_bytes: u64,
    /// Every keyed record from the pass's first dirty offset up to here
    /// was mapped; records at or after it stay whatever their key.
    end_offset: i64,
    full: bool,
}

impl OffsetMap {
    fn new(start_offset: i64, keys_max: usize) -> OffsetMap {
        assert!(
            (1..=OFFSET_MAP_KEYS_MAX).contains(&keys_max),
            "an offset map holds 1 to {OFFSET_MAP_KEYS_MAX} keys"
        );
        OffsetMap {
            latest: BTreeMap::new(),
            keys_max,
            key_bytes: 0,
            end_offset: start_offset,
            full: false,
        }
    }

    /// Records `offset` as the latest of `key`. False (and nothing
    /// recorded) when a new key does not fit: the map is then full. The
    /// first key always fits, however long, so that every pass maps at
    /// least one record and the next one starts further on.
    fn insert(&mut self, key: &[u8], offset: i64) -> bool {
        assert!(
            offset >= self.end_offset,
            "records are mapped in offset order: {offset} below {}",
            self.end_offset
        );
        if let Some(latest) = self.latest.get_mut(key) {
            *latest = offset;
            return true;
        }
        let key_bytes = self.key_bytes + key.len() as u64;
        let fits = self.latest.len() < self.keys_max && key_bytes <= OFFSET_MAP_KEY_BYTES_MAX;
        if !fits && !self.latest.is_empty() {
            self.full = true;
            return false;
        }
        // A copy: a slice would keep the whole segment read alive.
        self.latest.insert(Bytes::copy_from_slice(key), offset);
        self.key_bytes = key_bytes;
        true
    }

    fn latest(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }
}

// ----- records -----

/// One record of a batch, sliced out of the records section.
#[derive(Debug, Clone)]
struct RecordView {
    attributes: i8,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<Bytes>,
    is_tombstone: bool,
    /// The record as stored, its length prefix included.
    whole: Bytes,
    /// The record from its key on (key, value, headers).
    from_key: Bytes,
}

fn corrupt(what: String) -> LogError {
    LogError::Batch(BatchError::Corrupt(what))
}

/// The records section of a whole `batch`, decompressed.
fn records_section(header: &BatchHeader, batch: &Bytes) -> Result<Bytes, LogError> {
    let mut stored = batch.slice(BATCH_HEADER_LEN..header.total_size());
    let take = |buf: &mut Bytes| Ok(std::mem::take(buf));
    let decompressed = match header.compression() {
        Some(Compression::None) => return Ok(stored),
        Some(Compression::Gzip) => Gzip::decompress(&mut stored, take),
        Some(Compression::Snappy) => Snappy::decompress(&mut stored, take),
        Some(Compression::Lz4) => Lz4::decompress(&mut stored, take),
        Some(Compression::Zstd) => Zstd::decompress(&mut stored, take),
        None => unreachable!("a validated batch has a known codec"),
    };
    decompressed.map_err(|e| {
        corrupt(format!(
            "batch at offset {}: cannot decompress: {e}",
            header.base_offset()
        ))
    })
}

/// `raw` (a records section) compressed with `compression`.
fn compress(compression: Compression, raw: &[u8]) -> Result<Vec<u8>, LogError> {
    let mut out = BytesMut::with_capacity(raw.len() / 2 + 64);
    let fill = |buf: &mut BytesMut| {
        buf.put_slice(raw);
        Ok(())
    };
    let compressed = match compression {
        Compression::None => return Ok(raw.to_vec()),
        Compression::Gzip => Gzip::compress(&mut out, fill),
        Compression::Snappy => Snappy::compress(&mut out, fill),
        Compression::Lz4 => Lz4::compress(&mut out, fill),
        Compression::Zstd => Zstd::compress(&mut out, fill),
    };
    compressed.map_err(|e| corrupt(format!("cannot compress with {compression:?}: {e}")))?;
    Ok(out.to_vec())
}

/// Slices the records of a (decompressed) records section, checking that
/// they fill it exactly and that offset deltas increase within the batch.
/// Only what compaction needs is read: the deltas, the key, whether the
/// value is null; headers stay unread in `from_key`.
fn parse_records(header: &BatchHeader, section: &Bytes) -> Result<Vec<RecordView>, LogError> {
    let bad = |what: &str| corrupt(format!("batch at offset {}: {what}", header.base_offset()));
    let count = usize::try_from(header.records_count()).expect("a validated count is >= 0");
    // Before allocating for `count` records, make sure they could fit.
    if count.saturating_mul(RECORD_BYTES_MIN) > section.len() {
        return Err(bad("more records than bytes"));
    }
    let bytes = &section[..];
    let varint =
        |position: &mut usize| read_varlong(bytes, position).ok_or_else(|| bad("bad varint"));
    // A length or count: a non-negative int, or -1 for null.
    let length = |position: &mut usize, end: usize| -> Result<Option<usize>, LogError> {
        match varint(position)? {
            -1 => Ok(None),
            n => usize::try_from(n)
                .ok()
                .filter(|&n| n <= end.saturating_sub(*position))
                .map(Some)
                .ok_or_else(|| bad("length out of bounds")),
        }
    };
    let mut records = Vec::with_capacity(count);
    let mut position = 0usize;
    let mut previous_delta = -1i64;
    for _ in 0..count {
        let start = position;
        let record_length = length(&mut position, bytes.len())?
            .filter(|&n| n > 0)
            .ok_or_else(|| bad("bad record length"))?;
        let end = position + record_length;
        let attributes = bytes[position] as i8;
        position += 1;
        let timestamp_delta = varint(&mut position)?;
        let offset_delta = varint(&mut position)?;
        if offset_delta <= previous_delta || offset_delta > i64::from(header.last_offset_delta()) {
            return Err(bad("record offset deltas out of order"));
        }
        previous_delta = offset_delta;
        let from_key = position;
        let key = match length(&mut position, end)? {
            None => None,
            Some(key_length) => {
                position += key_length;
                Some(section.slice(position - key_length..position))
            }
        };
        let value_length = length(&mut position, end)?;
        if position > end {
            return Err(bad("record fields overrun its length"));
        }
        records.push(RecordView {
            attributes,
            timestamp_delta,
            offset_delta: i32::try_from(offset_delta).expect("at most the last offset delta"),
            key,
            is_tombstone: value_length.is_none(),
            whole: section.slice(start..end),
            from_key: section.slice(from_key..end),
        });
        position = end;
    }
    if position != bytes.len() {
        return Err(bad("bytes after the last record"));
    }
    Ok(records)
}

/// Appends `record` with a new timestamp delta (its base timestamp moved).
fn encode_record(out: &mut Vec<u8>, record: &RecordView, timestamp_delta: i64) {
    let mut body = Vec::with_capacity(record.whole.len() + 10);
    body.push(record.attributes as u8);
    put_varlong(&mut body, timestamp_delta);
    put_varlong(&mut body, i64::from(record.offset_delta));
    body.extend_from_slice(&record.from_key);
    put_varlong(out, body.len() as i64);
    out.extend_from_slice(&body);
}

/// Kafka refuses records without a key on a compacted topic
/// (INVALID_RECORD): compaction keeps the latest record per key, so a
/// keyless one has no place there. Checked on the leader's produce path
/// only; this is the one place the core decodes records of a produced
/// batch (decompressing it first), and only for compacted topics.
pub(crate) fn check_keys_present(records: &[u8]) -> Result<(), LogError> {
    for (position, header) in crate::batch::BatchIter::new(records) {
        if header.is_control() {
            continue;
        }
        let batch = Bytes::copy_from_slice(&records[position..position + header.total_size()]);
        let section = records_section(&header, &batch)?;
        if let Some(keyless) = parse_records(&header, &section)?
            .iter()
            .find(|r| r.key.is_none())
        {
            return Err(LogError::Batch(BatchError::NullKeyInCompactedTopic {
                offset_delta: keyless.offset_delta,
            }));
        }
    }
    Ok(())
}

// ----- cleaning batches -----

/// What the cleaner knows when it judges a batch.
struct Rules<'a> {
    map: &'a OffsetMap,
    now_ms: i64,
    delete_retention_ms: u64,
}

/// What becomes of one batch.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    Keep,
    Rewrite {
        batch: Vec<u8>,
        records_removed: u64,
    },
    /// No records left: the batch joins a run of emptied batches.
    Empty {
        records_removed: u64,
    },
}

fn clean_batch(header: &BatchHeader, batch: &Bytes, rules: &Rules<'_>) -> Result<Fate, LogError> {
    if header.is_control() {
        return Ok(Fate::Keep);
    }
    if header.records_count() == 0 {
        return Ok(Fate::Empty { records_removed: 0 });
    }
    let section = records_section(header, batch)?;
    let records = parse_records(header, &section)?;
    let horizon_passed = header.has_delete_horizon() && rules.now_ms >= header.base_timestamp();
    let retained: Vec<&RecordView> = records
        .iter()
        .filter(|r| {
            let offset = header.base_offset() + i64::from(r.offset_delta);
            if offset >= rules.map.end_offset {
                return true;
            }
            let Some(key) = &r.key else {
                return false;
            };
            if rules.map.latest(key).is_some_and(|latest| offset < latest) {
                return false;
            }
            !(r.is_tombstone && horizon_passed)
        })
        .collect();
    let records_removed = (records.len() - retained.len()) as u64;
    if retained.is_empty() {
        return Ok(Fate::Empty { records_removed });
    }
    let tombstones_left = retained.iter().any(|r| r.is_tombstone);
    let had_horizon = header.has_delete_horizon();
    // A first tombstone starts its clock; a batch whose tombstones are gone
    // drops the flag (keeping its base timestamp, so deltas stay valid) so
    // that its segment stops making passes due.
    let base_timestamp = if tombstones_left && !had_horizon {
        let retention_ms = i64::try_from(rules.delete_retention_ms).unwrap_or(i64::MAX);
        rules.now_ms.saturating_add(retention_ms)
    } else {
        header.base_timestamp()
    };
    if records_removed == 0 && tombstones_left == had_horizon {
        return Ok(Fate::Keep);
    }
    let mut raw = Vec::with_capacity(section.len());
    let mut max_timestamp = i64::MIN;
    for record in &retained {
        let timestamp = header.base_timestamp().wrapping_add(record.timestamp_delta);
        max_timestamp = max_timestamp.max(timestamp);
        if base_timestamp == header.base_timestamp() {
            raw.extend_from_slice(&record.whole);
        } else {
            encode_record(&mut raw, record, timestamp.wrapping_sub(base_timestamp));
        }
    }
    if header.timestamp_type() == TimestampType::LogAppendTime {
        // Readers take every record's timestamp from the batch.
        max_timestamp = header.max_timestamp();
    }
    let compression = header.compression().expect("a validated codec");
    let records_section = compress(compression, &raw)?;
    let mut attributes = header.attributes() & !ATTRIBUTE_DELETE_HORIZON;
    if tombstones_left {
        attributes |= ATTRIBUTE_DELETE_HORIZON;
    }
    let fields = RebuiltFields {
        attributes,
        base_timestamp,
        max_timestamp,
        records_count: i32::try_from(retained.len()).expect("fewer records than before"),
        ..RebuiltFields::of(header)
    };
    Ok(Fate::Rewrite {
        batch: assemble_batch(header, &fields, &records_section),
        records_removed,
    })
}

/// A run of consecutive emptied batches of one leader epoch, which becomes
/// one empty batch spanning their offsets.
#[derive(Debug, Clone)]
struct EmptyRun {
    first: BatchHeader,
    /// The first batch as it was: a lone empty batch that comes out the
    /// same needs no rewrite.
    first_batch: Bytes,
    batches: u32,
    last_offset: i64,
    max_timestamp: i64,
}

impl EmptyRun {
    fn new(header: &BatchHeader, batch: &Bytes) -> EmptyRun {
        EmptyRun {
            first: *header,
            first_batch: batch.clone(),
            batches: 1,
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp(),
        }
    }

    /// Whether `header`, the next batch, may join: same epoch, and the
    /// span still fits a last offset delta.
    fn can_extend(&self, header: &BatchHeader) -> bool {
        debug_assert_eq!(header.base_offset(), self.last_offset + 1, "dense batches");
        header.partition_leader_epoch() == self.first.partition_leader_epoch()
            && header.last_offset() - self.first.base_offset() <= i64::from(i32::MAX)
    }

    fn extend(&mut self, header: &BatchHeader) {
        assert!(self.can_extend(header), "a run grows by a batch that fits");
        self.batches += 1;
        self.last_offset = header.last_offset();
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp());
    }

    /// The empty batch: no records, no producer, both timestamps the run's
    /// largest (as Kafka's empty batches), so segment timestamps and time
    /// retention do not move.
    fn to_batch(&self) -> Vec<u8> {
        let fields = RebuiltFields {
            attributes: 0,
            last_offset_delta: i32::try_from(self.last_offset - self.first.base_offset())
                .expect("can_extend bounds the span"),
            base_timestamp: self.max_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: 0,
        };
        assemble_batch(&self.first, &fields, &[])
    }
}

/// The cleaned copy of one segment, built batch by batch.
struct CleanedSegment {
    bytes: Vec<u8>,
    segment: Segment,
    index_interval_bytes: u32,
    run: Option<EmptyRun>,
    records_removed: u64,
    /// Whether `bytes` differ from the segment's: only then is it written.
    changed: bool,
}

impl CleanedSegment {
    fn push(&mut self, batch: &[u8]) {
        let header = BatchHeader::parse(batch).expect("a whole batch");
        debug_assert_eq!(header.total_size(), batch.len(), "one whole batch");
        self.segment.on_append(&header, self.index_interval_bytes);
        self.bytes.extend_from_slice(batch);
    }

    fn flush_run(&mut self) {
        if let Some(run) = self.run.take() {
            let batch = run.to_batch();
            self.changed |= run.batches > 1 || batch[..] != run.first_batch[..];
            self.push(&batch);
        }
    }

    fn add(&mut self, header: &BatchHeader, batch: &Bytes, fate: Fate) {
        match fate {
            Fate::Empty { records_removed } => {
                self.records_removed += records_removed;
                self.changed |= records_removed > 0;
                match &mut self.run {
                    Some(run) if run.can_extend(header) => run.extend(header),
                    _ => {
                        self.flush_run();
                        self.run = Some(EmptyRun::new(header, batch));
                    }
                }
            }
            Fate::Keep => {
                self.flush_run();
                self.push(batch);
            }
            Fate::Rewrite {
                batch,
                records_removed,
            } => {
                self.records_removed += records_removed;
                self.changed = true;
                self.flush_run();
                self.push(&batch);
            }
        }
    }
}

/// Calls `visit` with every batch of `segment` at or after `from_offset`
/// (whole, CRC-checked), in offset order; stops early when `visit` says
/// false. Returns the bytes read.
fn for_each_batch(
    storage: &mut dyn Storage,
    segment: &Segment,
    from_offset: i64,
    mut visit: impl FnMut(&BatchHeader, &Bytes) -> Result<bool, LogError>,
) -> Result<u64, LogError> {
    let mut position = 0u64;
    let mut bytes_read = 0u64;
    // Each step passes one whole batch of at least a header's size.
    for _ in 0..=segment.size_bytes / BATCH_HEADER_LEN as u64 {
        if position >= segment.size_bytes {
            break;
        }
        let header = segment.read_header(storage, position)?;
        let total = header.total_size();
        if header.last_offset() >= from_offset {
            let batch = storage.read_at(&segment.path, position, total)?;
            bytes_read += batch.len() as u64;
            // Closed segments were only header-checked on open: a bad CRC
            // must not be laundered into a fresh one by a rewrite.
            validate_batch(&batch, u32::MAX)?;
            if !visit(&header, &batch)? {
                break;
            }
        }
        position += total as u64;
    }
    Ok(bytes_read)
}

// ----- the log's side -----

impl Cleaner {
    /// Reads the first dirty offset back, clamped into the log. A missing
    /// or malformed checkpoint means the whole log is dirty.
    pub(crate) fn load(
        storage: &mut dyn Storage,
        dir: &str,
        log_start_offset: i64,
        log_end_offset: i64,
    ) -> Result<Cleaner, LogError> {
        let path = join(dir, CLEANER_OFFSET_CHECKPOINT);
        let first_dirty_offset = match read_small_file(storage, &path)? {
            None => log_start_offset,
            Some(bytes) => match super::parse_offset_checkpoint(&path, &bytes) {
                Ok(offset) => offset,
                Err(error) => {
                    tracing::warn!(%path, %error, "ignoring the cleaner checkpoint");
                    log_start_offset
                }
            },
        };
        Ok(Cleaner {
            first_dirty_offset: first_dirty_offset.clamp(log_start_offset, log_end_offset),
            ..Cleaner::default()
        })
    }

    /// The log was cut back to `log_end_offset`: a pass under way may have
    /// mapped records that are gone, so it stops.
    pub(crate) fn on_truncated(&mut self, log_end_offset: i64) {
        self.pass = None;
        self.first_dirty_offset = self.first_dirty_offset.min(log_end_offset);
    }

    /// The policy no longer compacts.
    pub(crate) fn on_config_changed(&mut self, compacts: bool) {
        if !compacts {
            self.pass = None;
        }
    }

    pub(crate) fn check_invariants(&self, active_base_offset: i64, log_end_offset: i64) {
        assert!(
            self.first_dirty_offset <= log_end_offset,
            "first dirty offset {} beyond the log end {log_end_offset}",
            self.first_dirty_offset
        );
        if let Some(pass) = &self.pass {
            assert!(
                pass.dirty_end_offset <= active_base_offset,
                "a pass never reaches into the active segment"
            );
            assert!(
                pass.map.end_offset <= pass.dirty_end_offset,
                "the map stays below the pass's dirty end"
            );
            assert!(
                pass.map.latest.len() <= pass.map.keys_max
                    && (pass.map.key_bytes <= OFFSET_MAP_KEY_BYTES_MAX
                        || pass.map.latest.len() == 1),
                "the offset map stays within its bounds"
            );
        }
    }
}

impl PartitionLog {
    /// Offsets below this went through a finished compaction pass, or
    /// are gone (below the log start).
    pub fn first_dirty_offset(&self) -> i64 {
        self.cleaner
            .first_dirty_offset
            .max(self.log_start_offset)
            .min(self.log_end_offset())
    }

    pub fn compaction_in_progress(&self) -> bool {
        self.cleaner.pass.is_some()
    }

    pub fn cleaner_stats(&self) -> CleanerStats {
        self.cleaner.stats
    }

    /// Bounds the offset map of the passes that start from now on to
    /// `keys_max` keys (default and ceiling [`OFFSET_MAP_KEYS_MAX`]): the
    /// knob Kafka calls `log.cleaner.dedupe.buffer.size`. A smaller map
    /// means shorter passes that each cover less of the dirty part.
    pub fn set_offset_map_keys_max(&mut self, keys_max: usize) {
        assert!(
            (1..=OFFSET_MAP_KEYS_MAX).contains(&keys_max),
            "an offset map holds 1 to {OFFSET_MAP_KEYS_MAX} keys"
        );
        self.cleaner.offset_map_keys_max = keys_max;
    }

    /// One bounded step of compaction: starts a pass when one is due,
    /// otherwise maps or cleans the next segment of the pass under way.
    /// Reads at most one segment and rewrites at most one (see the module
    /// docs). `max_offset_exclusive` is the high watermark: nothing at or
    /// above it is ever looked at.
    ///
    /// On an error the pass stops (the log stays valid: every rewrite is
    /// atomic); the next step may start a new one.
    pub fn compact_step(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        max_offset_exclusive: i64,
    ) -> Result<CompactionStep, LogError> {
        if !self.config.cleanup_policy.compacts() {
            self.cleaner.pass = None;
            return Ok(CompactionStep::Idle);
        }
        let result = self.compact_step_inner(storage, now, max_offset_exclusive);
        if let Err(error) = &result {
            tracing::warn!(dir = %self.dir, %error, "compaction pass abandoned");
            self.cleaner.pass = None;
        }
        #[cfg(debug_assertions)]
        self.check_invariants();
        result
    }

    fn compact_step_inner(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        max_offset_exclusive: i64,
    ) -> Result<CompactionStep, LogError> {
        let now_ms = now.unix_millis();
        if self.cleaner.pass.is_none() {
            let cleanable_end = self.cleanable_end_offset(max_offset_exclusive);
            if !self.compaction_due(now_ms, cleanable_end) {
                return Ok(CompactionStep::Idle);
            }
            let first_dirty = self.first_dirty_offset().min(cleanable_end);
            let phase = if first_dirty < cleanable_end {
                Phase::Mapping {
                    next_offset: first_dirty,
                }
            } else {
                Phase::Cleaning {
                    next_offset: self.segments[0].base_offset,
                }
            };
            tracing::debug!(dir = %self.dir, first_dirty, cleanable_end, "compaction pass starts");
            self.cleaner.pass = Some(Pass {
                dirty_end_offset: cleanable_end,
                map: OffsetMap::new(first_dirty, self.cleaner.offset_map_keys_max),
                phase,
            });
        }
        let pass = self.cleaner.pass.as_ref().expect("a pass is under way");
        match pass.phase {
            Phase::Mapping { next_offset } => self.map_segment(storage, next_offset, now_ms),
            Phase::Cleaning { next_offset } => self.clean_segment(storage, next_offset, now_ms),
        }
    }

    /// The end of the closed, synced, committed segments: see the module
    /// docs for why each bound.
    fn cleanable_end_offset(&self, max_offset_exclusive: i64) -> i64 {
        let limit = max_offset_exclusive
            .min(self.synced_offset)
            .min(self.active().base_offset);
        self.segments
            .iter()
            .take_while(|s| s.next_offset <= limit)
            .last()
            .map_or(self.segments[0].base_offset, |s| s.next_offset)
    }

    /// Kafka's trigger: dirty bytes over all cleanable bytes above
    /// `min.cleanable.dirty.ratio`; and ours: a delete horizon has passed.
    fn compaction_due(&self, now_ms: i64, cleanable_end: i64) -> bool {
        let first_dirty = self.first_dirty_offset();
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        let mut horizon_passed = false;
        for segment in self
            .segments
            .iter()
            .take_while(|s| s.next_offset <= cleanable_end)
        {
            if segment.next_offset <= first_dirty {
                clean_bytes += segment.size_bytes;
            } else {
                dirty_bytes += segment.size_bytes;
            }
            horizon_passed |= segment.delete_horizon_ms_min.is_some_and(|h| h <= now_ms);
        }
        let ratio_ppm = u128::from(self.config.min_cleanable_dirty_ratio_ppm);
        let dirty_enough = dirty_bytes > 0
            && u128::from(dirty_bytes) * u128::from(RATIO_PPM_ONE)
                > ratio_ppm * u128::from(clean_bytes + dirty_bytes);
        dirty_enough || horizon_passed
    }

    /// Maps the segment holding `next_offset`, from there on.
    fn map_segment(
        &mut self,
        storage: &mut dyn Storage,
        next_offset: i64,
        now_ms: i64,
    ) -> Result<CompactionStep, LogError> {
        let from_offset = next_offset.max(self.segments[0].base_offset);
        let pass = self.cleaner.pass.as_mut().expect("a pass is under way");
        if from_offset >= pass.dirty_end_offset {
            // Retention or DeleteRecords removed the rest of the dirty part
            // since the last step: clean what was mapped.
            pass.phase = Phase::Cleaning {
                next_offset: self.segments[0].base_offset,
            };
            let first_base_offset = self.segments[0].base_offset;
            return self.clean_segment(storage, first_base_offset, now_ms);
        }
        let index = self
            .segments
            .partition_point(|s| s.base_offset <= from_offset)
            - 1;
        let segment = &self.segments[index];
        assert!(
            segment.next_offset <= pass.dirty_end_offset,
            "mapping stays in closed segments"
        );
        let map = &mut pass.map;
        let bytes_read = for_each_batch(storage, segment, from_offset, |header, batch| {
            if header.is_control() || header.records_count() == 0 {
                return Ok(true);
            }
            let section = records_section(header, batch)?;
            for record in parse_records(header, &section)? {
                let offset = header.base_offset() + i64::from(record.offset_delta);
                if offset < from_offset {
                    continue;
                }
                if let Some(key) = &record.key {
                    if !map.insert(key, offset) {
                        map.end_offset = offset;
                        return Ok(false);
                    }
                }
                map.end_offset = offset + 1;
            }
            Ok(true)
        })?;
        if !map.full {
            map.end_offset = segment.next_offset;
        }
        let (base_offset, next) = (segment.base_offset, segment.next_offset);
        pass.phase = if map.full || next >= pass.dirty_end_offset {
            Phase::Cleaning {
                next_offset: self.segments[0].base_offset,
            }
        } else {
            Phase::Mapping { next_offset: next }
        };
        let stats = &mut self.cleaner.stats;
        stats.segments_mapped += 1;
        stats.bytes_read += bytes_read;
        Ok(CompactionStep::Mapped {
            base_offset,
            from_offset,
            bytes_read,
        })
    }

    /// Cleans the segment holding `next_offset` (or the first one, if
    /// retention removed it meanwhile), and ends the pass after the last
    /// segment below the map's end.
    fn clean_segment(
        &mut self,
        storage: &mut dyn Storage,
        next_offset: i64,
        now_ms: i64,
    ) -> Result<CompactionStep, LogError> {
        let offset = next_offset.max(self.segments[0].base_offset);
        let pass = self.cleaner.pass.as_ref().expect("a pass is under way");
        if offset >= pass.map.end_offset {
            // Nothing mapped below here (retention took it all): done.
            self.finish_pass(storage)?;
            return Ok(CompactionStep::Finished);
        }
        let index = self.segments.partition_point(|s| s.base_offset <= offset) - 1;
        let old = &self.segments[index];
        assert!(
            index + 1 < self.segments.len() && old.next_offset <= pass.dirty_end_offset,
            "the active segment is never cleaned"
        );
        let rules = Rules {
            map: &pass.map,
            now_ms,
            delete_retention_ms: self.config.delete_retention_ms,
        };
        let mut cleaned = CleanedSegment {
            bytes: Vec::with_capacity(old.size_bytes as usize),
            segment: Segment::new(&self.dir, old.base_offset),
            index_interval_bytes: self.config.index_interval_bytes,
            run: None,
            records_removed: 0,
            changed: false,
        };
        let bytes_read = for_each_batch(storage, old, old.base_offset, |header, batch| {
            let fate = clean_batch(header, batch, &rules)?;
            cleaned.add(header, batch, fate);
            Ok(true)
        })?;
        cleaned.flush_run();
        assert_eq!(bytes_read, old.size_bytes, "the whole segment was read");
        let CleanedSegment {
            bytes,
            segment: mut rebuilt,
            records_removed,
            changed: rewritten,
            ..
        } = cleaned;
        assert_eq!(
            (rebuilt.base_offset, rebuilt.next_offset),
            (old.base_offset, old.next_offset),
            "a cleaned segment covers the same offsets"
        );
        let (base_offset, bytes_before, bytes_after) =
            (old.base_offset, old.size_bytes, rebuilt.size_bytes);
        let next = old.next_offset;
        assert!(
            rewritten || bytes_after == bytes_before,
            "an unchanged segment keeps its size"
        );
        // An unchanged segment (nothing removed, no horizon set or cleared)
        // is not written: a pass rewrites only what it cleans.
        if rewritten {
            // The swap: atomic and durable (see the module docs).
            storage.write_atomic(&old.path, &bytes)?;
            rebuilt.created_at = old.created_at;
            // Compaction never cleans the active segment.
            rebuilt.seal();
            let old_size = old.size_bytes;
            self.segments[index] = rebuilt;
            self.size_bytes = self.size_bytes - old_size + bytes_after;
            tracing::debug!(
                dir = %self.dir, base_offset, bytes_before, bytes_after, records_removed,
                "compacted segment"
            );
        }
        let stats = &mut self.cleaner.stats;
        stats.segments_cleaned += 1;
        stats.bytes_read += bytes_read;
        stats.records_removed += records_removed;
        if rewritten {
            stats.segments_rewritten += 1;
            stats.bytes_written += bytes_after;
        }
        let pass = self.cleaner.pass.as_mut().expect("a pass is under way");
        let pass_finished = next >= pass.map.end_offset;
        if pass_finished {
            self.finish_pass(storage)?;
        } else {
            pass.phase = Phase::Cleaning { next_offset: next };
        }
        Ok(CompactionStep::Cleaned {
            base_offset,
            bytes_before,
            bytes_after,
            rewritten,
            pass_finished,
        })
    }

    fn finish_pass(&mut self, storage: &mut dyn Storage) -> Result<(), LogError> {
        let pass = self.cleaner.pass.take().expect("a pass is under way");
        let first_dirty = pass.map.end_offset.max(self.cleaner.first_dirty_offset);
        let path = join(&self.dir, CLEANER_OFFSET_CHECKPOINT);
        storage.write_atomic(&path, format!("0\n{first_dirty}\n").as_bytes())?;
        self.cleaner.first_dirty_offset = first_dirty;
        self.cleaner.stats.passes_finished += 1;
        tracing::debug!(dir = %self.dir, first_dirty, "compaction pass finished");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression as WireCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
        RecordEncodeOptions, TimestampType as WireTimestampType,
    };

    fn wire_record(offset: i64, key: Option<&str>, value: Option<&str>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 3,
            producer_id: 7,
            producer_epoch: 1,
            timestamp_type: WireTimestampType::Creation,
            offset,
            sequence: 10 + offset as i32,
            timestamp: 1_000 + offset,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        }
    }

    fn encode(records: &[Record], compression: WireCompression) -> Bytes {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.freeze()
    }

    fn map_of(entries: &[(&str, i64)], end_offset: i64) -> OffsetMap {
        let mut map = OffsetMap::new(0, OFFSET_MAP_KEYS_MAX);
        for &(key, offset) in entries {
            assert!(map.insert(key.as_bytes(), offset));
        }
        map.end_offset = end_offset;
        map
    }

    fn decoded(batch: &[u8]) -> Vec<Record> {
        let mut bytes = Bytes::copy_from_slice(batch);
        RecordBatchDecoder::decode(&mut bytes).unwrap().records
    }

    #[test]
    fn cleanup_policy_parses_kafka_lists() {
        assert_eq!(CleanupPolicy::parse("delete"), Some(CleanupPolicy::Delete));
        assert_eq!(
            CleanupPolicy::parse("compact"),
            Some(CleanupPolicy::Compact)
        );
        for both in ["compact,delete", "delete,compact", " compact , delete "] {
            assert_eq!(
                CleanupPolicy::parse(both),
                Some(CleanupPolicy::CompactDelete)
            );
        }
        for bad in [
            "",
            "compact,compact",
            "compact,",
            "remove",
            "compact;delete",
        ] {
            assert_eq!(CleanupPolicy::parse(bad), None, "{bad:?}");
        }
        for policy in [
            CleanupPolicy::Delete,
            CleanupPolicy::Compact,
            CleanupPolicy::CompactDelete,
        ] {
            assert_eq!(CleanupPolicy::parse(policy.as_str()), Some(policy));
        }
    }

    #[test]
    fn superseded_records_go_and_the_batch_keeps_its_offsets_and_producer() {
        for compression in [
            WireCompression::None,
            WireCompression::Gzip,
            WireCompression::Snappy,
            WireCompression::Lz4,
            WireCompression::Zstd,
        ] {
            let batch = encode(
                &[
                    wire_record(0, Some("a"), Some("1")),
                    wire_record(1, Some("b"), Some("2")),
                    wire_record(2, Some("a"), Some("3")),
                    wire_record(3, None, Some("keyless")),
                ],
                compression,
            );
            let header = validate_batch(&batch, u32::MAX).unwrap();
            let map = map_of(&[("a", 2), ("b", 9)], 10);
            let rules = Rules {
                map: &map,
                now_ms: 0,
                delete_retention_ms: 0,
            };
            let Fate::Rewrite {
                batch: cleaned,
                records_removed,
            } = clean_batch(&header, &batch, &rules).unwrap()
            else {
                panic!("{compression:?}: records were removed");
            };
            assert_eq!(records_removed, 3, "{compression:?}");
            let new_header = validate_batch(&cleaned, u32::MAX).unwrap();
            assert_eq!(new_header.base_offset(), 0);
            assert_eq!(new_header.last_offset(), 3, "the offset range is kept");
            assert_eq!(new_header.records_count(), 1);
            assert_eq!(new_header.producer_id(), 7);
            assert_eq!(new_header.base_sequence(), header.base_sequence());
            assert_eq!(new_header.partition_leader_epoch(), 3);
            assert_eq!(new_header.compression(), header.compression());
            assert_eq!(new_header.max_timestamp(), 1_002);
            let records = decoded(&cleaned);
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].offset, 2);
            assert_eq!(records[0].sequence, 12, "sequences follow offsets");
            assert_eq!(records[0].value.as_deref(), Some(&b"3"[..]));
            assert_eq!(records[0].timestamp, 1_002);
        }
    }

    #[test]
    fn records_past_the_map_end_stay_and_an_untouched_batch_is_kept() {
        let batch = encode(
            &[
                wire_record(5, Some("a"), Some("1")),
                wire_record(6, None, Some("2")),
            ],
            WireCompression::None,
        );
        let header = validate_batch(&batch, u32::MAX).unwrap();
        let map = map_of(&[("a", 9)], 5);
        let rules = Rules {
            map: &map,
            now_ms: 0,
            delete_retention_ms: 0,
        };
        assert_eq!(clean_batch(&header, &batch, &rules).unwrap(), Fate::Keep);
    }

    #[test]
    fn a_tombstone_gets_a_horizon_then_goes_after_it() {
        let batch = encode(
            &[
                wire_record(0, Some("a"), Some("1")),
                wire_record(1, Some("b"), None),
            ],
            WireCompression::Lz4,
        );
        let header = validate_batch(&batch, u32::MAX).unwrap();
        let map = map_of(&[("a", 0), ("b", 1)], 2);
        let first = Rules {
            map: &map,
            now_ms: 5_000,
            delete_retention_ms: 1_000,
        };
        let Fate::Rewrite { batch: marked, .. } = clean_batch(&header, &batch, &first).unwrap()
        else {
            panic!("the horizon is set by a rewrite");
        };
        let marked_header = validate_batch(&marked, u32::MAX).unwrap();
        assert!(marked_header.has_delete_horizon());
        assert_eq!(marked_header.base_timestamp(), 6_000);
        let records = decoded(&marked);
        assert_eq!(
            records.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
            vec![1_000, 1_001],
            "timestamps survive the new base"
        );
        assert!(records[1].value.is_none());

        let before = Rules {
            now_ms: 5_999,
            ..first
        };
        let marked = Bytes::from(marked);
        assert_eq!(
            clean_batch(&marked_header, &marked, &before).unwrap(),
            Fate::Keep
        );
        let after = Rules {
            now_ms: 6_000,
            ..first
        };
        let Fate::Rewrite {
            batch: swept,
            records_removed: 1,
        } = clean_batch(&marked_header, &marked, &after).unwrap()
        else {
            panic!("the tombstone goes at the horizon");
        };
        let swept_header = validate_batch(&swept, u32::MAX).unwrap();
        assert!(!swept_header.has_delete_horizon(), "no tombstone left");
        let records = decoded(&swept);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].timestamp, 1_000);
    }

    #[test]
    fn duplicate_and_binary_header_keys_survive_byte_for_byte() {
        // Two headers named "h" and one whose name is not UTF-8: the record
        // body is built by hand since kafka-protocol's Record cannot hold it.
        let mut body = vec![0u8]; // attributes
        put_varlong(&mut body, 0); // timestamp delta
        put_varlong(&mut body, 1); // offset delta
        for field in [&b"k"[..], &b"v"[..]] {
            put_varlong(&mut body, field.len() as i64);
            body.extend_from_slice(field);
        }
        put_varlong(&mut body, 3);
        for (name, value) in [(&b"h"[..], &b"1"[..]), (b"h", b"2"), (b"\xff", b"3")] {
            put_varlong(&mut body, name.len() as i64);
            body.extend_from_slice(name);
            put_varlong(&mut body, value.len() as i64);
            body.extend_from_slice(value);
        }
        let mut section = Vec::new();
        put_varlong(&mut section, body.len() as i64);
        section.extend_from_slice(&body);
        let superseded = encode(
            &[wire_record(0, Some("k"), Some("old"))],
            WireCompression::None,
        );
        let mut records = superseded[BATCH_HEADER_LEN..].to_vec();
        records.extend_from_slice(&section);
        let template = validate_batch(&superseded, u32::MAX).unwrap();
        let fields = RebuiltFields {
            last_offset_delta: 1,
            records_count: 2,
            ..RebuiltFields::of(&template)
        };
        let batch = Bytes::from(assemble_batch(&template, &fields, &records));
        let header = validate_batch(&batch, u32::MAX).unwrap();

        let map = map_of(&[("k", 1)], 2);
        let rules = Rules {
            map: &map,
            now_ms: 0,
            delete_retention_ms: 0,
        };
        let Fate::Rewrite { batch: cleaned, .. } = clean_batch(&header, &batch, &rules).unwrap()
        else {
            panic!("the first record is superseded");
        };
        assert_eq!(
            &cleaned[BATCH_HEADER_LEN..],
            &section[..],
            "the record's own bytes"
        );
    }

    #[test]
    fn corrupt_records_are_refused_not_rewritten() {
        let batch = encode(
            &[wire_record(0, Some("a"), Some("1"))],
            WireCompression::None,
        );
        let header = validate_batch(&batch, u32::MAX).unwrap();
        // The record's length claims more bytes than the section holds.
        let mut section = batch.slice(BATCH_HEADER_LEN..).to_vec();
        section[0] = 0x7e;
        assert!(parse_records(&header, &Bytes::from(section)).is_err());
        // Trailing bytes after the last record.
        let mut section = batch.slice(BATCH_HEADER_LEN..).to_vec();
        section.push(0);
        assert!(parse_records(&header, &Bytes::from(section)).is_err());
    }

    #[test]
    fn keyless_records_are_refused_for_compacted_topics() {
        let keyed = encode(
            &[wire_record(0, Some("a"), Some("1"))],
            WireCompression::Gzip,
        );
        assert_eq!(check_keys_present(&keyed), Ok(()));
        let keyless = encode(
            &[
                wire_record(0, Some("a"), Some("1")),
                wire_record(1, None, Some("2")),
            ],
            WireCompression::Zstd,
        );
        let error = check_keys_present(&keyless).unwrap_err();
        assert_eq!(
            error,
            LogError::Batch(BatchError::NullKeyInCompactedTopic { offset_delta: 1 })
        );
        assert_eq!(error.kafka_error_code(), 87, "INVALID_RECORD");
    }

    #[test]
    fn the_offset_map_fills_by_key_count() {
        let mut map = OffsetMap::new(0, 1000);
        let mut offset = 0i64;
        while map.insert(&offset.to_be_bytes(), offset) {
            offset += 1;
        }
        assert!(map.full);
        assert_eq!(map.latest.len(), 1000);
        // A known key still updates when full.
        assert!(map.insert(&0i64.to_be_bytes(), offset + 1));
        assert_eq!(map.latest(&0i64.to_be_bytes()), Some(offset + 1));
    }
}
