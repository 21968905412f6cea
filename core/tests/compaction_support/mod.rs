//! Helpers shared by the compaction tests: keyed batches in any codec
//! (kafka-protocol's encoder, as clients build them), a full read of a log
//! decoded back to records, syncing, and running a pass to its end.

#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use seedlog_core::batch::{BatchHeader, BatchIter};
use seedlog_core::log::{CleanupPolicy, CompactionStep, LogConfig, PartitionLog};
use seedlog_core::storage::{MemoryStorage, Storage};
use seedlog_core::Instant;

pub const DIR: &str = "c-0";
/// Steps a test lets one pass take before calling it stuck.
pub const PASS_STEPS_MAX: usize = 10_000;

pub const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// A record as a test writes it: key, value (`None`: a tombstone).
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// A record read back, at its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
}

/// A compacted topic with small segments and no time or size retention.
pub fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        segment_ms: u64::MAX / 2,
        retention_bytes: -1,
        retention_ms: -1,
        index_interval_bytes: 100,
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: 1_000,
        min_cleanable_dirty_ratio_ppm: 0,
        ..LogConfig::default()
    }
}

pub fn kv(key: &str, value: Option<&str>) -> KeyValue {
    (
        Some(key.as_bytes().to_vec()),
        value.map(|v| v.as_bytes().to_vec()),
    )
}

/// One batch of `records` (offsets from 0, no producer id), every record
/// stamped `timestamp_ms`.
pub fn batch(records: &[KeyValue], timestamp_ms: i64, compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // No producer: base sequence -1. The encoder derives it from the
            // first record and splits batches where `offset - sequence`
            // changes, so sequences follow offsets from -1.
            sequence: i as i32 - 1,
            timestamp: timestamp_ms,
            key: key.as_deref().map(Bytes::copy_from_slice),
            value: value.as_deref().map(Bytes::copy_from_slice),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encodes");
    let header = BatchHeader::parse(&buf).expect("a header");
    assert_eq!(header.total_size(), buf.len(), "one batch");
    assert_eq!(header.base_sequence(), -1);
    buf.to_vec()
}

pub fn open(storage: &mut MemoryStorage, config: LogConfig, now: Instant) -> PartitionLog {
    let (log, _) = PartitionLog::open(storage, DIR, config, now).expect("opens");
    log.check_invariants();
    log
}

/// Syncs what the log wrote, as the node does on a flush.
pub fn sync(storage: &mut MemoryStorage, log: &mut PartitionLog) {
    for path in log.unsynced_paths() {
        storage.sync(&path).expect("sync");
    }
    let end = log.log_end_offset();
    log.mark_synced(end);
}

/// Rolls the active segment (if it holds anything) by letting `segment.ms`
/// expire at `now`, which must be at least 1 ms after its first append.
pub fn roll(storage: &mut MemoryStorage, log: &mut PartitionLog, now: Instant) {
    let config = log.config().clone();
    log.set_config(LogConfig {
        segment_ms: 1,
        ..config.clone()
    });
    log.enforce_retention(storage, now).expect("roll");
    log.set_config(config);
}

/// Steps until the pass under way (or the one due now) ends; returns the
/// steps taken (0: no pass was due).
pub fn run_pass(
    storage: &mut MemoryStorage,
    log: &mut PartitionLog,
    now: Instant,
    high_watermark: i64,
) -> usize {
    for steps in 0..PASS_STEPS_MAX {
        match log
            .compact_step(storage, now, high_watermark)
            .expect("step")
        {
            CompactionStep::Idle => return steps,
            CompactionStep::Cleaned {
                pass_finished: true,
                ..
            }
            | CompactionStep::Finished => return steps + 1,
            _ => {}
        }
        log.check_invariants();
    }
    panic!("a pass did not end in {PASS_STEPS_MAX} steps");
}

/// Every batch header from the log start, in order.
pub fn headers(storage: &mut MemoryStorage, log: &PartitionLog) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    log.for_each_batch_header(storage, |h| out.push(*h))
        .expect("headers");
    out
}

/// Every record from the log start, decoded (any codec), read through
/// `PartitionLog::read` as a consumer would, `max_bytes` at a time.
pub fn read_all(storage: &mut MemoryStorage, log: &mut PartitionLog) -> Vec<ReadRecord> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    // Each read returns at least one batch, so this many reads suffice.
    for _ in 0..=end - offset {
        if offset >= end {
            return out;
        }
        let read = log.read(storage, offset, 4096, i64::MAX).expect("read");
        let mut next = offset;
        for (position, header) in BatchIter::new(&read.records) {
            assert!(
                header.last_offset() >= offset,
                "a read starts with the batch holding the offset"
            );
            let mut bytes = read.records.slice(position..position + header.total_size());
            for record in RecordBatchDecoder::decode(&mut bytes)
                .expect("decodes")
                .records
            {
                if record.offset >= offset {
                    out.push(ReadRecord {
                        offset: record.offset,
                        key: record.key.map(|k| k.to_vec()),
                        value: record.value.map(|v| v.to_vec()),
                        timestamp: record.timestamp,
                    });
                }
            }
            next = header.next_offset();
        }
        assert!(next > offset, "reads make progress");
        offset = next;
    }
    unreachable!("reads end at the log end");
}

/// The records at `offsets`' positions, by offset: what a consumer sees.
pub fn offsets(records: &[ReadRecord]) -> Vec<i64> {
    records.iter().map(|r| r.offset).collect()
}
