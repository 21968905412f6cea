//! The partition log: segments of record batches on a [`Storage`], sparse
//! offset and time indexes, the leader epoch cache, retention and recovery.
//!
//! Batches stay bytes end to end; the log never decodes individual records.
//!
//! On disk a partition directory holds:
//! - `{base_offset:020}.log`: segments, whole v2 batches back to back;
//! - `leader-epoch-checkpoint`: the leader epoch cache, Kafka's text format;
//! - `log-start-offset`: the log start offset, written when DeleteRecords
//!   moves it past the first segment's base offset;
//! - `cleaner-offset-checkpoint`: where the last compaction pass ended
//!   (see [`compaction`]).
//!
//! There are no index files: the sparse offset and time indexes live in
//! memory and are rebuilt on open by scanning batch headers (see
//! [`index`]). Only the last segment's batches are CRC-checked on open; the
//! others get the header scan, which still catches torn tails and gaps.
//!
//! Durability: segment appends are durable only once the driver syncs the
//! paths [`PartitionLog::unsynced_paths`] names and reports it through
//! [`PartitionLog::mark_synced`]. Checkpoints go through
//! `Storage::write_atomic` and are durable at once; they are written before
//! the segment changes they describe, so that a crash leaves a checkpoint
//! ahead of the data, which open then reconciles (epoch entries beyond the
//! log end are dropped, a log start beyond it empties the log).

pub mod compaction;
mod epoch_cache;
mod index;
mod segment;

pub use compaction::{CleanerStats, CleanupPolicy, CompactionStep};
pub use epoch_cache::{EpochCacheView, LeaderEpochCache, LEADER_EPOCH_CHECKPOINT};

use crate::batch::{
    set_base_offset, set_partition_leader_epoch, validate_batches, BatchError, BatchIter,
    BATCH_HEADER_LEN,
};
use crate::storage::{join, Storage, StorageError};
use crate::time::Instant;
use bytes::Bytes;
use segment::{parse_segment_file_name, Segment};
use std::collections::BTreeSet;

/// The file holding the log start offset: a version line `0`, then the offset.
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset";

/// Positions in a segment are kept as `u32` in the indexes, so a segment
/// never grows past this whatever `segment.bytes` says (Kafka's
/// `segment.bytes` is an `int` too).
const SEGMENT_BYTES_CAP: u64 = i32::MAX as u64;

/// Per-partition settings, Kafka's topic configs of the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment when it would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment when its first batch is older.
    pub segment_ms: u64,
    /// `retention.bytes`: delete oldest whole segments past this size (-1: none).
    pub retention_bytes: i64,
    /// `retention.ms`: delete whole segments whose newest record is older (-1: none).
    pub retention_ms: i64,
    /// `index.interval.bytes`: bytes between two sparse index entries.
    pub index_interval_bytes: u32,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: u32,
    /// `cleanup.policy`: retention deletes old segments, compaction keeps
    /// the latest record per key, or both.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long a tombstone outlives the first
    /// compaction pass that saw it.
    pub delete_retention_ms: u64,
    /// `min.cleanable.dirty.ratio` in millionths: a compaction pass starts
    /// when the never-compacted bytes exceed this share of the closed ones.
    pub min_cleanable_dirty_ratio_ppm: u32,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            max_message_bytes: 1024 * 1024 + 12,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_cleanable_dirty_ratio_ppm: compaction::RATIO_PPM_ONE / 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// Largest record timestamp among the appended batches.
    pub max_timestamp: i64,
    pub batch_count: u32,
    pub bytes: u64,
}

/// Whole batches read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Concatenated whole batches, the one holding the requested offset first.
    pub records: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// What recovery found on open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecoveryReport {
    pub segments: usize,
    pub batches_scanned: u64,
    /// Bytes cut off the tail: a torn or corrupt batch and everything after it.
    pub truncated_bytes: u64,
}

impl LogError {
    /// The Kafka error code a client receives for this error.
    pub fn kafka_error_code(&self) -> i16 {
        /// KAFKA_STORAGE_ERROR: the disk failed under the log.
        const KAFKA_STORAGE_ERROR: i16 = 56;
        /// OFFSET_OUT_OF_RANGE.
        const OFFSET_OUT_OF_RANGE: i16 = 1;
        match self {
            LogError::Storage(_) => KAFKA_STORAGE_ERROR,
            LogError::Batch(error) => error.kafka_error_code(),
            LogError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        }
    }
}

/// A partition's log: a run of segments on a [`Storage`], the last one
/// active, with the leader epoch cache and the log start offset.
///
/// It owns no storage: every call that touches the disk is handed one, so
/// the node can keep a single `Storage` for all its partitions.
pub struct PartitionLog {
    dir: String,
    config: LogConfig,
    /// Sorted by base offset, contiguous (each starts where the previous
    /// ends), never empty; the last is the active segment. Only the active
    /// segment may be empty. The count is bounded by retention, not here.
    segments: Vec<Segment>,
    log_start_offset: i64,
    /// Sum of the segment sizes.
    size_bytes: u64,
    epoch_cache: LeaderEpochCache,
    synced_offset: i64,
    /// Segment paths appended to or created since the last `mark_synced`.
    unsynced: BTreeSet<String>,
    cleaner: compaction::Cleaner,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .field("log_start_offset", &self.log_start_offset)
            .field("log_end_offset", &self.log_end_offset())
            .field("segments", &self.segments.len())
            .field("size_bytes", &self.size_bytes)
            .field("synced_offset", &self.synced_offset)
            .field("epoch_cache", &self.epoch_cache.entries())
            .finish()
    }
}

fn check_config(config: &LogConfig) {
    assert!(config.segment_bytes > 0, "segment.bytes must be positive");
    assert!(
        config.index_interval_bytes > 0,
        "index.interval.bytes must be positive"
    );
    assert!(
        config.max_message_bytes > 0,
        "max.message.bytes must be positive"
    );
    assert!(
        config.min_cleanable_dirty_ratio_ppm <= compaction::RATIO_PPM_ONE,
        "min.cleanable.dirty.ratio is at most 1"
    );
}

/// Reads a small checkpoint file whole, `None` when it does not exist.
fn read_small_file(storage: &mut dyn Storage, path: &str) -> Result<Option<Bytes>, LogError> {
    if !storage.exists(path) {
        return Ok(None);
    }
    let len = storage.len(path)?;
    // Checkpoints are tiny; anything huge is not one of ours.
    const CHECKPOINT_BYTES_MAX: u64 = 64 * 1024 * 1024;
    if len > CHECKPOINT_BYTES_MAX {
        return Err(StorageError::Io {
            path: path.to_string(),
            message: format!("checkpoint of {len} bytes is implausibly large"),
        }
        .into());
    }
    Ok(Some(storage.read_at(path, 0, len as usize)?))
}

/// Parses a checkpoint holding one offset: a version line `0`, then it.
fn parse_offset_checkpoint(path: &str, bytes: &[u8]) -> Result<i64, StorageError> {
    let bad = || StorageError::Io {
        path: path.to_string(),
        message: "malformed offset checkpoint".to_string(),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| bad())?;
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return Err(bad());
    }
    let offset: i64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(bad)?;
    if offset < 0 {
        return Err(bad());
    }
    Ok(offset)
}

/// How `write_batches` treats each header.
#[derive(Debug, Clone, Copy)]
enum Stamp {
    /// Assign offsets from the log end and stamp this leader epoch.
    Leader(i32),
    /// Keep the leader's offsets and epochs.
    Follower,
}

impl PartitionLog {
    /// Opens the log in `dir` (creating an empty one if `dir` holds nothing),
    /// rebuilding indexes and cutting the tail at the first torn or corrupt
    /// batch.
    ///
    /// Every segment gets a header scan (sane header, whole, base offset
    /// following the previous batch); the last one also gets its CRCs
    /// checked. The first failure ends the valid prefix: that segment is cut
    /// there and every later segment deleted.
    ///
    /// What open finds counts as durable (`synced_offset() ==
    /// log_end_offset()`): after a power cut only synced bytes are left, and
    /// after a mere process restart the OS still holds the rest and writes
    /// it back. Every non-empty segment is nevertheless listed in
    /// `unsynced_paths`, and the node syncs them before it serves anything
    /// (`Topics::load`): after a process kill the tail may be in the page
    /// cache only, and a power cut before that sync would take back records
    /// already exposed (found by the simulator's `process-kill` scenario).
    pub fn open(
        storage: &mut dyn Storage,
        dir: &str,
        config: LogConfig,
        now: Instant,
    ) -> Result<(PartitionLog, RecoveryReport), LogError> {
        check_config(&config);
        let names = match storage.list(dir) {
            Ok(names) => names,
            Err(StorageError::NotFound(_)) => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        // Names come sorted and zero-padded, so this is offset order; sort
        // anyway rather than trust every Storage to sort.
        let mut base_offsets: Vec<i64> = names
            .iter()
            .filter_map(|n| parse_segment_file_name(n))
            .collect();
        base_offsets.sort_unstable();

        let epoch_path = join(dir, LEADER_EPOCH_CHECKPOINT);
        let epoch_cache = match read_small_file(storage, &epoch_path)? {
            Some(bytes) => LeaderEpochCache::from_checkpoint(&epoch_path, &bytes)?,
            None => LeaderEpochCache::default(),
        };
        let start_path = join(dir, LOG_START_OFFSET_CHECKPOINT);
        let start_checkpoint = match read_small_file(storage, &start_path)? {
            Some(bytes) => Some(parse_offset_checkpoint(&start_path, &bytes)?),
            None => None,
        };

        let mut report = RecoveryReport::default();
        let mut segments: Vec<Segment> = Vec::new();
        let last_index = base_offsets.len().saturating_sub(1);
        let mut cut_from: Option<usize> = None;
        for (index, &base_offset) in base_offsets.iter().enumerate() {
            if let Some(previous) = segments.last() {
                if previous.next_offset != base_offset {
                    cut_from = Some(index); // a gap or an overlap
                    break;
                }
            }
            let verify_crc = index == last_index;
            let (segment, outcome) = Segment::scan(
                storage,
                dir,
                base_offset,
                config.index_interval_bytes,
                verify_crc,
            )?;
            report.batches_scanned += outcome.batches;
            let cut = outcome.valid_bytes < outcome.file_bytes;
            if cut {
                tracing::warn!(
                    path = %segment.path,
                    valid_bytes = outcome.valid_bytes,
                    file_bytes = outcome.file_bytes,
                    "cutting a torn or corrupt segment tail"
                );
                storage.truncate(&segment.path, outcome.valid_bytes)?;
                report.truncated_bytes += outcome.file_bytes - outcome.valid_bytes;
            }
            segments.push(segment);
            if cut {
                cut_from = Some(index + 1);
                break;
            }
        }
        if let Some(cut_from) = cut_from {
            for &base_offset in &base_offsets[cut_from..] {
                let path = join(dir, &segment::segment_file_name(base_offset));
                report.truncated_bytes += storage.len(&path)?;
                storage.remove(&path)?;
            }
        }

        let mut log = PartitionLog {
            dir: dir.to_string(),
            config,
            segments,
            log_start_offset: 0,
            size_bytes: 0,
            epoch_cache,
            synced_offset: 0,
            unsynced: BTreeSet::new(),
            cleaner: compaction::Cleaner::default(),
        };
        if log.segments.is_empty() {
            let base_offset = start_checkpoint.unwrap_or(0);
            log.create_segment(storage, base_offset)?;
        }
        // Only the active segment keeps the tail of its offset index.
        let sealed = log.segments.len() - 1;
        for segment in &mut log.segments[..sealed] {
            segment.seal();
        }
        log.size_bytes = log.segments.iter().map(|s| s.size_bytes).sum();
        let first_base = log.segments[0].base_offset;
        log.log_start_offset = start_checkpoint.map_or(first_base, |c| c.max(first_base));
        if log.log_start_offset > log.log_end_offset() {
            // DeleteRecords went past data that a crash then lost: nothing
            // below the recorded start may come back, so start empty there.
            let start = log.log_start_offset;
            log.truncate_fully_and_start_at(storage, start)?;
        }
        let end = log.log_end_offset();
        let start = log.log_start_offset;
        let mut epochs_changed = log.epoch_cache.truncate_from_end(end);
        epochs_changed |= log.epoch_cache.truncate_from_start(start);
        if epochs_changed {
            log.write_epoch_checkpoint(storage)?;
        }
        log.cleaner = compaction::Cleaner::load(storage, dir, start, end)?;

        let active = log
            .segments
            .last_mut()
            .expect("a log has an active segment");
        if !active.is_empty() {
            active.created_at = Some(now);
        }
        log.synced_offset = log.log_end_offset();
        log.unsynced = log
            .segments
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.path.clone())
            .collect();
        report.segments = log.segments.len();
        log.check_invariants();
        Ok((log, report))
    }

    // ----- getters -----

    pub fn dir(&self) -> &str {
        &self.dir
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    /// New settings apply from the next append or retention pass.
    pub fn set_config(&mut self, config: LogConfig) {
        check_config(&config);
        self.cleaner
            .on_config_changed(config.cleanup_policy.compacts());
        self.config = config;
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }
    /// Size of all segments in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }
    /// The latest epoch in the leader epoch cache, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epoch_cache.latest_epoch()
    }
    /// The leader epoch cache, with the log end its answers need.
    pub fn epoch_cache(&self) -> EpochCacheView<'_> {
        EpochCacheView {
            cache: &self.epoch_cache,
            log_end_offset: self.log_end_offset(),
        }
    }
    /// OffsetForLeaderEpoch: see [`LeaderEpochCache::end_offset_for_epoch`].
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epoch_cache().end_offset_for_epoch(epoch)
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(|s| s.base_offset).collect()
    }
    /// Storage paths of the segments, oldest first.
    pub fn segment_paths(&self) -> Vec<String> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    // ----- appends -----

    /// Validates `records` (one or more v2 batches), assigns offsets from the
    /// log end, stamps `leader_epoch` into each batch header, records the
    /// epoch in the cache if new, rolls segments as configured, appends.
    /// Nothing is appended if any batch is invalid, nor if the storage fails
    /// midway (what was written is cut off again).
    ///
    /// Panics if `leader_epoch` is older than the latest cached epoch: a
    /// fenced leader must not get here.
    pub fn append_as_leader(
        &mut self,
        storage: &mut dyn Storage,
        records: &[u8],
        leader_epoch: i32,
        now: Instant,
    ) -> Result<AppendInfo, LogError> {
        let batch_count = self.validate_produced(records)?;
        self.append_validated_as_leader(storage, records, batch_count, leader_epoch, now)
    }

    /// What a leader checks of produced batches before anything else reads
    /// their headers (the producer-state check trusts their counts, as
    /// Kafka's `analyzeAndValidateRecords` comes before its producer-state
    /// analysis): whole, sane, within `max.message.bytes`, CRC intact,
    /// dense, keyed where the log compacts. The number of batches.
    pub fn validate_produced(&self, records: &[u8]) -> Result<usize, LogError> {
        let batch_count = validate_batches(records, self.config.max_message_bytes)?;
        for (_, header) in BatchIter::new(records) {
            header.check_produced()?;
        }
        if self.config.cleanup_policy.compacts() {
            compaction::check_keys_present(records)?;
        }
        Ok(batch_count)
    }

    /// [`PartitionLog::append_as_leader`] for records that
    /// [`PartitionLog::validate_produced`] accepted (`batch_count` is its
    /// answer), so that the CRCs are computed once per produce.
    pub fn append_validated_as_leader(
        &mut self,
        storage: &mut dyn Storage,
        records: &[u8],
        batch_count: usize,
        leader_epoch: i32,
        now: Instant,
    ) -> Result<AppendInfo, LogError> {
        debug_assert_eq!(
            self.validate_produced(records).ok(),
            Some(batch_count),
            "the caller validated these records"
        );
        assert!(
            leader_epoch >= 0,
            "a leader epoch is non-negative, got {leader_epoch}"
        );
        if let Some(latest) = self.latest_epoch() {
            assert!(
                leader_epoch >= latest,
                "append with leader epoch {leader_epoch} below the cached epoch {latest}"
            );
        }
        let first_offset = self.log_end_offset();

        // The checkpoint goes first: a crash then leaves an entry past the
        // log end, which open drops, never data without its epoch.
        if self.epoch_cache.assign(leader_epoch, first_offset) {
            if let Err(error) = self.write_epoch_checkpoint(storage) {
                self.epoch_cache.truncate_from_end(first_offset);
                return Err(error);
            }
        }

        let info = self.write_batches(
            storage,
            records,
            first_offset,
            Stamp::Leader(leader_epoch),
            now,
        )?;
        assert_eq!(
            info.batch_count as usize, batch_count,
            "every validated batch was written"
        );
        debug_assert!(
            info.last_offset >= info.first_offset,
            "an append adds offsets"
        );
        #[cfg(debug_assertions)]
        self.check_invariants();
        Ok(info)
    }

    /// Records that `epoch` starts at the log end, as a new leader does
    /// before it appends anything (Kafka's `maybeAssignEpochStartOffset`;
    /// without it a follower of an older epoch is told the wrong divergence
    /// point: KAFKA-7415). No-op when `epoch` is already the latest.
    pub fn assign_leader_epoch(
        &mut self,
        storage: &mut dyn Storage,
        epoch: i32,
    ) -> Result<(), LogError> {
        let start_offset = self.log_end_offset();
        if self.epoch_cache.assign(epoch, start_offset) {
            if let Err(error) = self.write_epoch_checkpoint(storage) {
                // Memory must not claim an epoch the disk does not hold.
                self.epoch_cache.truncate_from_end(start_offset);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Appends batches that already carry their offsets and leader epochs
    /// (a follower copying its leader). The first batch must start at the
    /// log end and the batches must be contiguous; the epoch cache learns
    /// each new epoch from the batch headers.
    pub fn append_as_follower(
        &mut self,
        storage: &mut dyn Storage,
        records: &[u8],
        now: Instant,
    ) -> Result<AppendInfo, LogError> {
        let batch_count = validate_batches(records, self.config.max_message_bytes)?;
        let first_offset = self.log_end_offset();
        // Check sequence before writing anything, all or nothing.
        let mut expected = first_offset;
        let mut epoch = self.latest_epoch().unwrap_or(-1);
        for (_, header) in BatchIter::new(records) {
            if header.base_offset() != expected || header.partition_leader_epoch() < epoch {
                return Err(LogError::OffsetOutOfRange {
                    offset: header.base_offset(),
                    log_start_offset: self.log_start_offset,
                    log_end_offset: expected,
                });
            }
            expected = header.next_offset();
            epoch = header.partition_leader_epoch();
        }
        let info = self.write_batches(storage, records, first_offset, Stamp::Follower, now)?;
        assert_eq!(
            info.batch_count as usize, batch_count,
            "every validated batch was written"
        );
        #[cfg(debug_assertions)]
        self.check_invariants();
        Ok(info)
    }

    /// Writes validated `records` at the log end, batch by batch, rolling the
    /// whole append back if any write fails. A leader stamps each header
    /// with its offset and epoch; a follower keeps the leader's and teaches
    /// the epoch cache every new epoch first (checkpoint before data).
    fn write_batches(
        &mut self,
        storage: &mut dyn Storage,
        records: &[u8],
        first_offset: i64,
        stamp: Stamp,
        now: Instant,
    ) -> Result<AppendInfo, LogError> {
        assert_eq!(
            first_offset,
            self.log_end_offset(),
            "appends start at the log end"
        );
        let mut max_timestamp = i64::MIN;
        let mut written = 0u32;
        for (position, header) in BatchIter::new(records) {
            let mut head = *header.as_bytes();
            match stamp {
                Stamp::Leader(epoch) => {
                    set_base_offset(&mut head, self.log_end_offset());
                    set_partition_leader_epoch(&mut head, epoch);
                }
                Stamp::Follower => {
                    let epoch = header.partition_leader_epoch();
                    if epoch >= 0 && self.epoch_cache.assign(epoch, header.base_offset()) {
                        if let Err(error) = self.write_epoch_checkpoint(storage) {
                            self.rollback_append(storage, first_offset);
                            return Err(error);
                        }
                    }
                }
            }
            let body = &records[position + BATCH_HEADER_LEN..position + header.total_size()];
            if let Err(error) = self.write_batch(storage, &head, body, now) {
                self.rollback_append(storage, first_offset);
                return Err(error);
            }
            max_timestamp = max_timestamp.max(header.max_timestamp());
            written += 1;
        }
        Ok(AppendInfo {
            first_offset,
            last_offset: self.log_end_offset() - 1,
            max_timestamp,
            batch_count: written,
            bytes: records.len() as u64,
        })
    }

    /// Writes one batch (its final header, then the rest, so the batch is
    /// never copied whole) at the log end, rolling first if needed.
    fn write_batch(
        &mut self,
        storage: &mut dyn Storage,
        head: &[u8; BATCH_HEADER_LEN],
        body: &[u8],
        now: Instant,
    ) -> Result<(), LogError> {
        let header = crate::batch::BatchHeader::parse(head).expect("a whole header");
        assert_eq!(
            header.base_offset(),
            self.log_end_offset(),
            "batches are written at the log end"
        );
        assert_eq!(
            header.total_size(),
            BATCH_HEADER_LEN + body.len(),
            "header and body agree"
        );
        self.maybe_roll(
            storage,
            header.total_size() as u64,
            header.last_offset(),
            now,
        )?;
        let active = self.segments.last_mut().expect("active segment");
        storage.append(&active.path, head)?;
        storage.append(&active.path, body)?;
        active.on_append(&header, self.config.index_interval_bytes);
        if active.created_at.is_none() {
            active.created_at = Some(now);
        }
        self.size_bytes += header.total_size() as u64;
        self.unsynced.insert(active.path.clone());
        Ok(())
    }

    /// Undoes a failed append back to `first_offset`: cuts the active file
    /// back to what memory says (dropping a half-written batch), then the
    /// whole batches this append wrote. Errors here mean the disk is gone;
    /// they are logged, and the caller reports the original error.
    fn rollback_append(&mut self, storage: &mut dyn Storage, first_offset: i64) {
        let active = self.active();
        let (path, size) = (active.path.clone(), active.size_bytes);
        if let Err(error) = storage.truncate(&path, size) {
            tracing::error!(%path, %error, "cannot cut a half-written batch; the log needs recovery");
        }
        if let Err(error) = self.truncate_to(storage, first_offset) {
            tracing::error!(dir = %self.dir, %error, "cannot roll back a failed append");
        }
        if self.epoch_cache.truncate_from_end(self.log_end_offset()) {
            if let Err(error) = self.write_epoch_checkpoint(storage) {
                tracing::error!(dir = %self.dir, %error, "cannot roll back the epoch checkpoint");
            }
        }
    }

    /// Rolls the active segment if a batch of `batch_bytes` ending at
    /// `last_offset` would overfill it, or if it is older than `segment.ms`.
    /// An empty active segment is never rolled: a batch larger than
    /// `segment.bytes` goes alone into a fresh segment.
    fn maybe_roll(
        &mut self,
        storage: &mut dyn Storage,
        batch_bytes: u64,
        last_offset: i64,
        now: Instant,
    ) -> Result<(), LogError> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let segment_bytes = self.config.segment_bytes.min(SEGMENT_BYTES_CAP);
        let full = active.size_bytes + batch_bytes > segment_bytes;
        let expired = self.segment_expired(now);
        // Relative offsets are u32 in the indexes.
        let offsets_overflow = last_offset - active.base_offset > i64::from(u32::MAX);
        if full || expired || offsets_overflow {
            let base_offset = active.next_offset;
            self.create_segment(storage, base_offset)?;
        }
        Ok(())
    }

    fn segment_expired(&self, now: Instant) -> bool {
        let active = self.active();
        match active.created_at {
            Some(created_at) if !active.is_empty() => {
                let age_ms = now.saturating_duration_since(created_at).as_millis();
                age_ms >= u128::from(self.config.segment_ms)
            }
            _ => false,
        }
    }

    /// Starts a new, empty active segment at `base_offset` (the log end).
    fn create_segment(
        &mut self,
        storage: &mut dyn Storage,
        base_offset: i64,
    ) -> Result<(), LogError> {
        if let Some(active) = self.segments.last_mut() {
            assert!(!active.is_empty(), "an empty segment is never rolled");
            assert_eq!(
                base_offset, active.next_offset,
                "a new segment starts at the log end"
            );
            active.seal();
        }
        let segment = Segment::new(&self.dir, base_offset);
        // An empty append creates the file, so that a reopen finds the
        // segment (and its base offset) even before the first batch.
        storage.append(&segment.path, &[])?;
        self.unsynced.insert(segment.path.clone());
        self.segments.push(segment);
        Ok(())
    }

    // ----- reads -----

    /// Reads whole batches starting with the one that holds `offset`, up to
    /// `max_bytes`, never returning a batch whose last offset is at or beyond
    /// `max_offset_exclusive` (the high watermark for consumers). Returns at
    /// least one batch when one qualifies, even if larger than `max_bytes`.
    /// Batches come from one segment per call, as in Kafka.
    pub fn read(
        &self,
        storage: &mut dyn Storage,
        offset: i64,
        max_bytes: usize,
        max_offset_exclusive: i64,
    ) -> Result<ReadResult, LogError> {
        self.read_batches(storage, offset, max_bytes, max_offset_exclusive, false)
    }

    /// `read` for a consumer's Fetch: bytes below `high_watermark`, sent
    /// and dropped, so the storage may lend them rather than copy them
    /// (`Storage::read_to_send`).
    pub fn read_to_send(
        &self,
        storage: &mut dyn Storage,
        offset: i64,
        max_bytes: usize,
        high_watermark: i64,
    ) -> Result<ReadResult, LogError> {
        self.read_batches(storage, offset, max_bytes, high_watermark, true)
    }

    fn read_batches(
        &self,
        storage: &mut dyn Storage,
        offset: i64,
        max_bytes: usize,
        max_offset_exclusive: i64,
        to_send: bool,
    ) -> Result<ReadResult, LogError> {
        let log_end_offset = self.log_end_offset();
        let empty = |log: &PartitionLog| ReadResult {
            records: Bytes::new(),
            log_start_offset: log.log_start_offset,
            log_end_offset,
        };
        if offset < self.log_start_offset || offset > log_end_offset {
            return Err(self.out_of_range(offset));
        }
        if offset == log_end_offset {
            return Ok(empty(self));
        }
        let segment = &self.segments[self.segment_index_for(offset)];
        let (position, first) = segment.find_batch(storage, offset)?;
        if first.last_offset() >= max_offset_exclusive {
            return Ok(empty(self));
        }
        let remaining = segment.size_bytes - position;
        let want = (max_bytes.max(first.total_size()) as u64).min(remaining);
        let chunk = if to_send {
            storage.read_to_send(&segment.path, position, want as usize)?
        } else {
            storage.read_at(&segment.path, position, want as usize)?
        };
        if chunk.len() < first.total_size() {
            return Err(StorageError::Io {
                path: segment.path.clone(),
                message: format!(
                    "short read at {position}: {} of {} bytes",
                    chunk.len(),
                    first.total_size()
                ),
            }
            .into());
        }
        // The first batch always goes; later ones while they fit in
        // `max_bytes` and end below `max_offset_exclusive`.
        let mut end = 0usize;
        for (batch_position, header) in BatchIter::new(&chunk) {
            debug_assert_eq!(batch_position, end, "batches are back to back");
            let batch_end = batch_position + header.total_size();
            if end > 0 && (batch_end > max_bytes || header.last_offset() >= max_offset_exclusive) {
                break;
            }
            end = batch_end;
        }
        assert!(
            end >= first.total_size(),
            "the first batch is always returned"
        );
        Ok(ReadResult {
            records: chunk.slice(..end),
            log_start_offset: self.log_start_offset,
            log_end_offset,
        })
    }

    /// The first offset whose batch max timestamp is >= `timestamp`, with that
    /// timestamp; `None` when every batch is older (ListOffsets by time).
    ///
    /// The offset is the base offset of that batch (or the log start, if the
    /// batch straddles it): records are not decoded, so a consumer may see a
    /// few older records of the same batch, which it skips by timestamp.
    pub fn offset_for_timestamp(
        &mut self,
        storage: &mut dyn Storage,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        // Segment max timestamps are not monotonic (producers set them), so
        // walk segments in offset order; the first one holding a match has
        // the first matching batch.
        for segment in &self.segments {
            if let Some(header) =
                segment.find_by_timestamp(storage, timestamp, self.log_start_offset)?
            {
                let offset = header.base_offset().max(self.log_start_offset);
                return Ok(Some((offset, header.max_timestamp())));
            }
        }
        Ok(None)
    }

    /// ListOffsets' MAX_TIMESTAMP: the largest record timestamp below
    /// `max_offset_exclusive` and an offset that carries it. Records are not
    /// decoded, so the offset is the last one of the first batch holding that
    /// timestamp (Kafka's "shallow" answer before KAFKA-16310).
    pub fn max_timestamp_offset(
        &mut self,
        storage: &mut dyn Storage,
        max_offset_exclusive: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let best = self.segments.iter().filter_map(|s| s.max_timestamp).max();
        let Some(timestamp) = best else {
            return Ok(None);
        };
        for segment in &self.segments {
            if segment.max_timestamp != Some(timestamp) {
                continue;
            }
            let Some(header) =
                segment.find_by_timestamp(storage, timestamp, self.log_start_offset)?
            else {
                continue;
            };
            if header.last_offset() < max_offset_exclusive {
                return Ok(Some((header.last_offset(), header.max_timestamp())));
            }
            // The batch is not visible yet: no answer rather than a wrong one.
            return Ok(None);
        }
        Ok(None)
    }

    /// Calls `visit` with the header of every batch at or above the log
    /// start, in offset order, reading 61 bytes per batch (rebuilding
    /// producer state after a restart needs no record bytes).
    pub fn for_each_batch_header(
        &self,
        storage: &mut dyn Storage,
        mut visit: impl FnMut(&crate::batch::BatchHeader),
    ) -> Result<(), LogError> {
        for segment in &self.segments {
            let mut position = 0u64;
            // Each step passes one whole batch of at least a header's size.
            for _ in 0..=segment.size_bytes / crate::batch::BATCH_HEADER_LEN as u64 {
                if position >= segment.size_bytes {
                    break;
                }
                let header = segment.read_header(storage, position)?;
                if header.last_offset() >= self.log_start_offset {
                    visit(&header);
                }
                position += header.total_size() as u64;
            }
            assert_eq!(
                position, segment.size_bytes,
                "the walk ends at the segment end"
            );
        }
        Ok(())
    }

    fn segment_index_for(&self, offset: i64) -> usize {
        let count = self.segments.partition_point(|s| s.base_offset <= offset);
        assert!(count > 0, "offset {offset} below the first segment");
        count - 1
    }

    fn out_of_range(&self, offset: i64) -> LogError {
        LogError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset(),
        }
    }

    // ----- deletion and retention -----

    /// DeleteRecords: moves the log start offset up to `offset` (must be
    /// <= log end) and deletes segments wholly below it. Returns the new log
    /// start offset. An offset at or below the current start changes nothing.
    pub fn delete_records_before(
        &mut self,
        storage: &mut dyn Storage,
        offset: i64,
    ) -> Result<i64, LogError> {
        if offset > self.log_end_offset() || offset < 0 {
            return Err(self.out_of_range(offset));
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        // Durable first: records below the new start must never come back,
        // even if the deletions below are lost in a crash.
        self.write_log_start_checkpoint(storage, offset)?;
        self.log_start_offset = offset;
        if offset == self.log_end_offset() && !self.active().is_empty() {
            // The active segment is wholly below the new start; roll so that
            // it can go too.
            self.create_segment(storage, offset)?;
        }
        self.delete_segments_below_start(storage)?;
        self.after_log_start_moved(storage)?;
        self.check_invariants();
        Ok(self.log_start_offset)
    }

    /// Deletes whole segments past `retention.bytes` or older than
    /// `retention.ms` (never the active segment; only when `cleanup.policy`
    /// deletes), and rolls the active segment when `segment.ms` has elapsed.
    /// Returns how many segments were deleted.
    ///
    /// Like Kafka, deletion is by prefix: it stops at the first segment that
    /// must stay, even if a later one has older timestamps.
    pub fn enforce_retention(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
    ) -> Result<usize, LogError> {
        if self.segment_expired(now) {
            let base_offset = self.log_end_offset();
            self.create_segment(storage, base_offset)?;
        }
        let mut deleted = self.delete_segments_below_start(storage)?;
        let expired_before_ms = now.unix_millis().saturating_sub(self.config.retention_ms);
        // At most one deletion per non-active segment.
        while self.config.cleanup_policy.deletes() && self.segments.len() > 1 {
            let oldest = &self.segments[0];
            let by_size = self.config.retention_bytes >= 0
                && self.size_bytes - oldest.size_bytes >= self.config.retention_bytes as u64;
            let by_time = self.config.retention_ms >= 0
                && oldest.max_timestamp.is_none_or(|ts| ts < expired_before_ms);
            if !(by_size || by_time) {
                break;
            }
            self.delete_oldest_segment(storage)?;
            deleted += 1;
        }
        if deleted > 0 {
            let first_base = self.segments[0].base_offset;
            if first_base > self.log_start_offset {
                // Recovered from the first segment on open; no checkpoint.
                self.log_start_offset = first_base;
                self.synced_offset = self
                    .synced_offset
                    .max(first_base)
                    .min(self.log_end_offset());
            }
            self.after_log_start_moved(storage)?;
        }
        self.check_invariants();
        Ok(deleted)
    }

    fn delete_segments_below_start(
        &mut self,
        storage: &mut dyn Storage,
    ) -> Result<usize, LogError> {
        let mut deleted = 0;
        while self.segments.len() > 1 && self.segments[0].next_offset <= self.log_start_offset {
            self.delete_oldest_segment(storage)?;
            deleted += 1;
        }
        Ok(deleted)
    }

    fn delete_oldest_segment(&mut self, storage: &mut dyn Storage) -> Result<(), LogError> {
        assert!(
            self.segments.len() > 1,
            "the active segment is never deleted"
        );
        storage.remove(&self.segments[0].path)?;
        let segment = self.segments.remove(0);
        self.size_bytes -= segment.size_bytes;
        self.unsynced.remove(&segment.path);
        tracing::debug!(path = %segment.path, "deleted segment");
        Ok(())
    }

    fn after_log_start_moved(&mut self, storage: &mut dyn Storage) -> Result<(), LogError> {
        if self.epoch_cache.truncate_from_start(self.log_start_offset) {
            self.write_epoch_checkpoint(storage)?;
        }
        Ok(())
    }

    // ----- truncation (replication) -----

    /// Drops everything at and after `offset`, as a follower does when its
    /// log diverged from the leader's. The cut falls on a batch boundary:
    /// if `offset` is inside a batch, that whole batch goes, so the new log
    /// end may be below `offset`. An offset below the log start empties the
    /// log and restarts it at `offset`. No-op at or beyond the log end.
    pub fn truncate_to(&mut self, storage: &mut dyn Storage, offset: i64) -> Result<(), LogError> {
        assert!(
            offset >= 0,
            "truncation offset is non-negative, got {offset}"
        );
        if offset >= self.log_end_offset() {
            // No record to cut, but an epoch that starts at the log end holds
            // none either: a cut there ends it (as Kafka's truncateTo cuts
            // the epoch cache from the end), so the next fetch names the
            // epoch of the last record. Found by the simulator: a follower
            // kept naming such an empty epoch, the leader kept answering
            // "diverging" at that very offset, and it never caught up.
            if offset == self.log_end_offset() && self.epoch_cache.truncate_from_end(offset) {
                self.write_epoch_checkpoint(storage)?;
            }
            return Ok(());
        }
        if offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(storage, offset);
        }
        let index = self.segment_index_for(offset);
        let segment = &self.segments[index];
        let (position, header) = segment.find_batch(storage, offset)?;
        if header.base_offset() < self.log_start_offset {
            // The batch straddles the log start; cutting it would put the
            // log end below the start.
            return self.truncate_fully_and_start_at(storage, offset);
        }
        // Later segments go newest first, so a crash midway leaves a prefix.
        while self.segments.len() > index + 1 {
            let last = self.segments.pop().expect("len > index + 1");
            storage.remove(&last.path)?;
            self.unsynced.remove(&last.path);
        }
        let (base_offset, path) = (
            self.segments[index].base_offset,
            self.segments[index].path.clone(),
        );
        storage.truncate(&path, position)?;
        let (mut rebuilt, outcome) = Segment::scan(
            storage,
            &self.dir,
            base_offset,
            self.config.index_interval_bytes,
            false,
        )?;
        assert_eq!(
            outcome.valid_bytes, position,
            "the kept prefix of a segment scans whole"
        );
        rebuilt.created_at = self.segments[index]
            .created_at
            .filter(|_| !rebuilt.is_empty());
        self.segments[index] = rebuilt;
        self.size_bytes = self.segments.iter().map(|s| s.size_bytes).sum();
        self.after_truncation(storage)
    }

    /// Deletes every segment and restarts the log, empty, at `offset`
    /// (below or beyond the log end alike): a follower that installed a
    /// snapshot ending there (KIP-630).
    pub fn restart_at(&mut self, storage: &mut dyn Storage, offset: i64) -> Result<(), LogError> {
        self.truncate_fully_and_start_at(storage, offset)
    }

    /// Deletes every segment and restarts the log, empty, at `offset`.
    fn truncate_fully_and_start_at(
        &mut self,
        storage: &mut dyn Storage,
        offset: i64,
    ) -> Result<(), LogError> {
        assert!(offset >= 0, "a log starts at a non-negative offset");
        self.write_log_start_checkpoint(storage, offset)?;
        for segment in self.segments.drain(..) {
            storage.remove(&segment.path)?;
        }
        self.unsynced.clear();
        self.size_bytes = 0;
        self.log_start_offset = offset;
        self.create_segment(storage, offset)?;
        if self.epoch_cache.clear() {
            self.write_epoch_checkpoint(storage)?;
        }
        self.after_truncation(storage)
    }

    fn after_truncation(&mut self, storage: &mut dyn Storage) -> Result<(), LogError> {
        let end = self.log_end_offset();
        self.synced_offset = self.synced_offset.min(end);
        self.cleaner.on_truncated(end);
        if self.epoch_cache.truncate_from_end(end) {
            self.write_epoch_checkpoint(storage)?;
        }
        self.check_invariants();
        Ok(())
    }

    // ----- durability -----

    /// Paths written since the last `mark_synced`, for an `Output::Flush`.
    pub fn unsynced_paths(&self) -> Vec<String> {
        self.unsynced.iter().cloned().collect()
    }

    /// The driver synced every path `unsynced_paths` returned when the log
    /// end was `log_end_offset`: everything below it is durable. Segments
    /// appended to since then stay unsynced.
    pub fn mark_synced(&mut self, log_end_offset: i64) {
        let synced = log_end_offset.min(self.log_end_offset());
        self.synced_offset = self.synced_offset.max(synced);
        let segments = &self.segments;
        self.unsynced.retain(|path| {
            segments
                .iter()
                .find(|s| &s.path == path)
                .is_some_and(|s| s.next_offset > synced)
        });
    }

    /// Offsets below this are durable.
    pub fn synced_offset(&self) -> i64 {
        self.synced_offset
    }

    /// Removes everything and deletes the directory (DeleteTopics).
    pub fn delete(self, storage: &mut dyn Storage) -> Result<(), LogError> {
        storage.remove_dir(&self.dir)?;
        Ok(())
    }

    fn write_epoch_checkpoint(&mut self, storage: &mut dyn Storage) -> Result<(), LogError> {
        let path = join(&self.dir, LEADER_EPOCH_CHECKPOINT);
        storage.write_atomic(&path, self.epoch_cache.to_checkpoint().as_bytes())?;
        Ok(())
    }

    fn write_log_start_checkpoint(
        &mut self,
        storage: &mut dyn Storage,
        offset: i64,
    ) -> Result<(), LogError> {
        let path = join(&self.dir, LOG_START_OFFSET_CHECKPOINT);
        storage.write_atomic(&path, format!("0\n{offset}\n").as_bytes())?;
        Ok(())
    }

    /// Panics with a reason when an internal invariant is broken.
    pub fn check_invariants(&self) {
        assert!(
            !self.segments.is_empty(),
            "a log always has an active segment"
        );
        let log_end_offset = self.log_end_offset();
        assert!(
            self.segments[0].base_offset <= self.log_start_offset,
            "log start {} below the first segment {}",
            self.log_start_offset,
            self.segments[0].base_offset
        );
        assert!(
            self.log_start_offset <= log_end_offset,
            "log start {} beyond log end {log_end_offset}",
            self.log_start_offset
        );
        for pair in self.segments.windows(2) {
            assert_eq!(
                pair[0].next_offset, pair[1].base_offset,
                "segments are contiguous and sorted"
            );
            assert!(!pair[0].is_empty(), "only the active segment may be empty");
            assert!(
                !pair[0].has_index_tail(),
                "only the active segment lists its index tail"
            );
        }
        for segment in &self.segments {
            segment.check_invariants();
        }
        let size_bytes: u64 = self.segments.iter().map(|s| s.size_bytes).sum();
        assert_eq!(
            self.size_bytes, size_bytes,
            "size_bytes is the sum of the segments"
        );
        self.epoch_cache
            .check_invariants(self.log_start_offset, log_end_offset);
        assert!(
            self.synced_offset <= log_end_offset,
            "synced offset {} beyond log end {log_end_offset}",
            self.synced_offset
        );
        for path in &self.unsynced {
            assert!(
                self.segments.iter().any(|s| &s.path == path),
                "unsynced path {path} is not a live segment"
            );
        }
        self.cleaner
            .check_invariants(self.active().base_offset, log_end_offset);
    }
}

#[cfg(test)]
mod tests;
