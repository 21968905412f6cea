//! Compaction throughput of `PartitionLog` on `MemoryStorage`: one whole
//! pass (map every closed segment, then clean each) over a log of keyed
//! updates, uncompressed and LZ4, without a disk. Throughput counts the
//! bytes of the closed segments (the ones a pass reads) before the pass.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use seedlog_core::log::{CleanupPolicy, CompactionStep, LogConfig, PartitionLog};
use seedlog_core::storage::{MemoryStorage, Storage};
use seedlog_core::Instant;

const VALUE_BYTES: usize = 100;
const RECORDS_PER_BATCH: usize = 16;
/// 4096 batches of 16 records: 65,536 updates.
const BATCHES: usize = 4096;
/// Distinct keys: each is updated 16 times on average.
const KEYS: usize = 4096;
const STEPS_MAX: usize = 100_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024 * 1024,
        retention_ms: -1,
        cleanup_policy: CleanupPolicy::Compact,
        min_cleanable_dirty_ratio_ppm: 0,
        ..LogConfig::default()
    }
}

fn keyed_batch(first: usize, compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = (0..RECORDS_PER_BATCH)
        .map(|i| {
            let n = first + i;
            // A multiplicative hash spreads updates of one key apart.
            let key = (n.wrapping_mul(2_654_435_761)) % KEYS;
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32 - 1,
                timestamp: 1_700_000_000_000,
                key: Some(Bytes::from(format!("key-{key:06}"))),
                value: Some(Bytes::from(value(n))),
                headers: Default::default(),
            }
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
    .unwrap();
    buf.to_vec()
}

/// Bytes that compress about as well as text: an LCG's low bits.
fn value(seed: usize) -> Vec<u8> {
    let mut state = seed as u64 ^ 0x9e37_79b9_7f4a_7c15;
    (0..VALUE_BYTES)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            b'a' + ((state >> 33) % 16) as u8
        })
        .collect()
}

/// A synced log of `BATCHES` batches.
fn prepared(compression: Compression) -> MemoryStorage {
    let mut storage = MemoryStorage::new();
    let now = Instant::from_millis(1_700_000_000_000);
    let (mut log, _) = PartitionLog::open(&mut storage, "bench-0", config(), now).unwrap();
    for b in 0..BATCHES {
        let batch = keyed_batch(b * RECORDS_PER_BATCH, compression);
        log.append_as_leader(&mut storage, &batch, 0, now).unwrap();
    }
    for path in log.unsynced_paths() {
        storage.sync(&path).unwrap();
    }
    storage
}

fn open(storage: &mut MemoryStorage) -> PartitionLog {
    let now = Instant::from_millis(1_700_000_000_000);
    PartitionLog::open(storage, "bench-0", config(), now)
        .unwrap()
        .0
}

/// Steps until the pass ends; returns the steps taken.
fn run_pass(storage: &mut MemoryStorage, log: &mut PartitionLog) -> usize {
    let now = Instant::from_millis(1_700_000_001_000);
    for steps in 1..=STEPS_MAX {
        match log.compact_step(storage, now, i64::MAX).unwrap() {
            CompactionStep::Idle => return steps - 1,
            CompactionStep::Cleaned {
                pass_finished: true,
                ..
            }
            | CompactionStep::Finished => return steps,
            _ => {}
        }
    }
    panic!("no end in {STEPS_MAX} steps");
}

fn bench_compaction(c: &mut Criterion) {
    let mut group = c.benchmark_group("compaction_pass");
    group.sample_size(10);
    for (name, compression) in [
        ("uncompressed", Compression::None),
        ("lz4", Compression::Lz4),
    ] {
        let storage = prepared(compression);
        let (closed_bytes, before, after, segments, steps) = {
            let mut storage = storage.clone();
            let mut log = open(&mut storage);
            let active = log.segment_paths().pop().unwrap();
            let before = log.size_bytes();
            let closed_bytes = before - storage.len(&active).unwrap();
            let steps = run_pass(&mut storage, &mut log);
            let segments = log.segment_count();
            (closed_bytes, before, log.size_bytes(), segments, steps)
        };
        eprintln!(
            "compaction {name}: {before} bytes ({closed_bytes} in {} closed segments) -> {after} bytes in {steps} steps",
            segments - 1
        );
        group.throughput(Throughput::Bytes(closed_bytes));
        group.bench_function(
            format!("16x{VALUE_BYTES}B_batches_{KEYS}_keys_{name}"),
            |b| {
                b.iter_batched(
                    || {
                        let mut storage = storage.clone();
                        let log = open(&mut storage);
                        (storage, log)
                    },
                    |(mut storage, mut log)| {
                        run_pass(&mut storage, &mut log);
                        (storage, log)
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_compaction);
criterion_main!(benches);
