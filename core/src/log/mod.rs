//! The partition log: segments of record batches on a [`Storage`], sparse
//! offset and time indexes, the leader epoch cache, retention and recovery.
//!
//! API CONTRACT (the node is written against it; keep the signatures):
//! batches stay bytes end to end; the log never decodes individual records.

use crate::batch::BatchError;
use crate::storage::{Storage, StorageError};
use crate::time::Instant;
use bytes::Bytes;

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

pub struct PartitionLog {
    _private: (),
}

impl PartitionLog {
    /// Opens the log in `dir` (creating an empty one if `dir` holds nothing),
    /// rebuilding indexes and cutting the tail at the first torn or corrupt
    /// batch.
    pub fn open(
        _storage: &mut dyn Storage,
        _dir: &str,
        _config: LogConfig,
        _now: Instant,
    ) -> Result<(PartitionLog, RecoveryReport), LogError> {
        todo!()
    }

    pub fn dir(&self) -> &str {
        todo!()
    }
    pub fn config(&self) -> &LogConfig {
        todo!()
    }
    pub fn set_config(&mut self, _config: LogConfig) {
        todo!()
    }
    pub fn log_start_offset(&self) -> i64 {
        todo!()
    }
    pub fn log_end_offset(&self) -> i64 {
        todo!()
    }
    /// Size of all segments in bytes.
    pub fn size_bytes(&self) -> u64 {
        todo!()
    }
    /// The latest epoch in the leader epoch cache, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        todo!()
    }

    /// Validates `records` (one or more v2 batches), assigns offsets from the
    /// log end, stamps `leader_epoch` into each batch header, records the
    /// epoch in the cache if new, rolls segments as configured, appends.
    /// Nothing is appended if any batch is invalid.
    pub fn append_as_leader(
        &mut self,
        _storage: &mut dyn Storage,
        _records: &[u8],
        _leader_epoch: i32,
        _now: Instant,
    ) -> Result<AppendInfo, LogError> {
        todo!()
    }

    /// Reads whole batches starting with the one that holds `offset`, up to
    /// `max_bytes`, never returning a batch whose last offset is at or beyond
    /// `max_offset_exclusive` (the high watermark for consumers). Returns at
    /// least one batch when one qualifies, even if larger than `max_bytes`.
    pub fn read(
        &mut self,
        _storage: &mut dyn Storage,
        _offset: i64,
        _max_bytes: usize,
        _max_offset_exclusive: i64,
    ) -> Result<ReadResult, LogError> {
        todo!()
    }

    /// The first offset whose batch max timestamp is >= `timestamp`, with that
    /// timestamp; `None` when every batch is older (ListOffsets by time).
    pub fn offset_for_timestamp(
        &mut self,
        _storage: &mut dyn Storage,
        _timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        todo!()
    }

    /// DeleteRecords: moves the log start offset up to `offset` (must be
    /// <= log end) and deletes segments wholly below it. Returns the new log
    /// start offset.
    pub fn delete_records_before(
        &mut self,
        _storage: &mut dyn Storage,
        _offset: i64,
    ) -> Result<i64, LogError> {
        todo!()
    }

    /// Deletes whole segments past `retention.bytes` or older than
    /// `retention.ms` (never the active segment), and rolls the active segment
    /// when `segment.ms` has elapsed. Returns how many segments were deleted.
    pub fn enforce_retention(
        &mut self,
        _storage: &mut dyn Storage,
        _now: Instant,
    ) -> Result<usize, LogError> {
        todo!()
    }

    /// Paths written since the last `mark_synced`, for an `Output::Flush`.
    pub fn unsynced_paths(&self) -> Vec<String> {
        todo!()
    }
    /// The driver synced every path `unsynced_paths` returned when the log
    /// end was `log_end_offset`: everything below it is durable.
    pub fn mark_synced(&mut self, _log_end_offset: i64) {
        todo!()
    }
    /// Offsets below this are durable.
    pub fn synced_offset(&self) -> i64 {
        todo!()
    }

    /// Removes everything and deletes the directory (DeleteTopics).
    pub fn delete(self, _storage: &mut dyn Storage) -> Result<(), LogError> {
        todo!()
    }

    /// Panics with a reason when an internal invariant is broken.
    pub fn check_invariants(&self) {
        todo!()
    }
}
