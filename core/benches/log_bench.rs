//! Append and sequential-read throughput of `PartitionLog` on
//! `MemoryStorage`: the cost of the log itself (validation, CRC, header
//! rewrite, indexing, segment rolls), without a disk.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use seedlog_core::batch::{build_batch, TestRecord};
use seedlog_core::log::{LogConfig, PartitionLog};
use seedlog_core::storage::MemoryStorage;
use seedlog_core::Instant;

const RECORD_BYTES: usize = 1024;
/// 16 records of 1 KiB: a 16 KiB batch, a typical producer `batch.size`.
const RECORDS_PER_BATCH: usize = 16;
/// Batches per measured iteration: 16 MiB of appends.
const BATCHES_PER_ITERATION: usize = 1024;

fn sample_batch() -> Vec<u8> {
    let value = vec![0xabu8; RECORD_BYTES];
    let records: Vec<TestRecord<'_>> = (0..RECORDS_PER_BATCH)
        .map(|_| (None, Some(&value[..])))
        .collect();
    build_batch(&records, 1_700_000_000_000)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4 * 1024 * 1024,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn bench_append(c: &mut Criterion) {
    let batch = sample_batch();
    let mut group = c.benchmark_group("log_append");
    group.throughput(Throughput::Bytes(
        (batch.len() * BATCHES_PER_ITERATION) as u64,
    ));
    group.sample_size(20);
    group.bench_function("16KiB_batches_memory_storage", |b| {
        b.iter_batched(
            || {
                let mut storage = MemoryStorage::new();
                let (log, _) =
                    PartitionLog::open(&mut storage, "bench-0", config(), Instant::ZERO).unwrap();
                (storage, log)
            },
            |(mut storage, mut log)| {
                for _ in 0..BATCHES_PER_ITERATION {
                    log.append_as_leader(&mut storage, &batch, 0, Instant::ZERO)
                        .unwrap();
                }
                (storage, log)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn bench_read(c: &mut Criterion) {
    let batch = sample_batch();
    let mut storage = MemoryStorage::new();
    let (mut log, _) =
        PartitionLog::open(&mut storage, "bench-0", config(), Instant::ZERO).unwrap();
    for _ in 0..BATCHES_PER_ITERATION {
        log.append_as_leader(&mut storage, &batch, 0, Instant::ZERO)
            .unwrap();
    }
    let total_bytes = log.size_bytes();
    let mut group = c.benchmark_group("log_read");
    group.throughput(Throughput::Bytes(total_bytes));
    group.sample_size(20);
    // A consumer's default fetch.max.bytes-ish partition budget of 1 MiB.
    group.bench_function("sequential_1MiB_fetches_memory_storage", |b| {
        b.iter(|| {
            let mut offset = log.log_start_offset();
            let mut bytes = 0usize;
            while offset < log.log_end_offset() {
                let read = log
                    .read(&mut storage, offset, 1024 * 1024, i64::MAX)
                    .unwrap();
                bytes += read.records.len();
                let last = seedlog_core::batch::BatchIter::new(&read.records)
                    .last()
                    .unwrap()
                    .1;
                offset = last.next_offset();
            }
            assert_eq!(bytes as u64, total_bytes, "every byte read once");
            bytes
        })
    });
    group.finish();
}

criterion_group!(benches, bench_append, bench_read);
criterion_main!(benches);
