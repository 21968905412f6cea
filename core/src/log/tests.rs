use super::*;
use crate::batch::{build_batch, decode_records_for_test, error_codes, BatchHeader, TestRecord};
use crate::storage::MemoryStorage;

const DIR: &str = "t-0";

/// A batch of `records` records of 100-byte values, stamped `timestamp_ms`.
fn batch(records: usize, timestamp_ms: i64) -> Vec<u8> {
    let value = [7u8; 100];
    let list: Vec<TestRecord<'_>> = (0..records).map(|_| (None, Some(&value[..]))).collect();
    build_batch(&list, timestamp_ms)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024 * 1024,
        segment_ms: u64::MAX / 2,
        retention_bytes: -1,
        retention_ms: -1,
        index_interval_bytes: 256,
        max_message_bytes: 1024 * 1024,
        ..LogConfig::default()
    }
}

fn open(storage: &mut MemoryStorage, config: LogConfig) -> PartitionLog {
    PartitionLog::open(storage, DIR, config, Instant::ZERO)
        .unwrap()
        .0
}

fn headers(records: &[u8]) -> Vec<BatchHeader> {
    BatchIter::new(records).map(|(_, h)| h).collect()
}

#[test]
fn empty_log_opens_at_zero() {
    let mut s = MemoryStorage::new();
    let (log, report) = PartitionLog::open(&mut s, DIR, config(), Instant::ZERO).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(report.segments, 1);
    assert_eq!(log.latest_epoch(), None);
    assert!(s.exists("t-0/00000000000000000000.log"));
}

#[test]
fn append_assigns_offsets_and_stamps_the_epoch() {
    let mut s = MemoryStorage::new();
    let mut log = open(&mut s, config());
    let mut records = batch(3, 10);
    records.extend_from_slice(&batch(2, 20));
    let info = log
        .append_as_leader(&mut s, &records, 4, Instant::ZERO)
        .unwrap();
    assert_eq!(
        info,
        AppendInfo {
            first_offset: 0,
            last_offset: 4,
            max_timestamp: 20,
            batch_count: 2,
            bytes: records.len() as u64
        }
    );
    let read = log.read(&mut s, 0, usize::MAX, i64::MAX).unwrap();
    let hs = headers(&read.records);
    assert_eq!(
        hs.iter().map(|h| h.base_offset()).collect::<Vec<_>>(),
        vec![0, 3]
    );
    assert!(hs.iter().all(|h| h.partition_leader_epoch() == 4));
    crate::batch::validate_batches(&read.records, u32::MAX).expect("CRCs still valid");
    assert_eq!(decode_records_for_test(&read.records).len(), 5);
    assert_eq!(log.epoch_cache().entries(), &[(4, 0)]);
}

#[test]
fn invalid_appends_change_nothing() {
    let mut s = MemoryStorage::new();
    let mut log = open(&mut s, config());
    let error = log
        .append_as_leader(&mut s, &[], 0, Instant::ZERO)
        .unwrap_err();
    assert_eq!(error, LogError::Batch(BatchError::Empty));
    assert_eq!(error.kafka_error_code(), error_codes::INVALID_RECORD);

    let mut records = batch(1, 0);
    let mut bad = batch(1, 0);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    records.extend_from_slice(&bad);
    let error = log
        .append_as_leader(&mut s, &records, 0, Instant::ZERO)
        .unwrap_err();
    assert_eq!(error.kafka_error_code(), error_codes::CORRUPT_MESSAGE);
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(
        log.latest_epoch(),
        None,
        "no epoch recorded for a rejected append"
    );

    let big = batch(20, 0);
    log.set_config(LogConfig {
        max_message_bytes: big.len() as u32 - 1,
        ..config()
    });
    let error = log
        .append_as_leader(&mut s, &big, 0, Instant::ZERO)
        .unwrap_err();
    assert_eq!(error.kafka_error_code(), error_codes::MESSAGE_TOO_LARGE);
}

#[test]
fn a_full_disk_midway_rolls_the_append_back() {
    let mut s = MemoryStorage::new();
    let mut log = open(&mut s, config());
    log.append_as_leader(&mut s, &batch(1, 0), 0, Instant::ZERO)
        .unwrap();
    let mut records = batch(1, 0);
    records.extend_from_slice(&batch(1, 0));
    // Room for the first batch and half of the second.
    s.set_capacity_bytes(Some(s.used_bytes() + records.len() as u64 - 50));
    let error = log
        .append_as_leader(&mut s, &records, 1, Instant::ZERO)
        .unwrap_err();
    assert!(
        matches!(error, LogError::Storage(StorageError::NoSpace(_))),
        "{error:?}"
    );
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.latest_epoch(), Some(0), "the new epoch was rolled back");
    assert_eq!(
        s.len("t-0/00000000000000000000.log").unwrap(),
        log.size_bytes()
    );
    s.set_capacity_bytes(None);
    log.append_as_leader(&mut s, &records, 1, Instant::ZERO)
        .unwrap();
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
#[should_panic(expected = "below the cached epoch")]
fn an_older_leader_epoch_panics() {
    let mut s = MemoryStorage::new();
    let mut log = open(&mut s, config());
    log.append_as_leader(&mut s, &batch(1, 0), 5, Instant::ZERO)
        .unwrap();
    let _ = log.append_as_leader(&mut s, &batch(1, 0), 4, Instant::ZERO);
}

#[test]
fn segments_roll_by_size_and_a_huge_batch_goes_alone() {
    let mut s = MemoryStorage::new();
    let one = batch(1, 0).len() as u64;
    let mut log = open(
        &mut s,
        LogConfig {
            segment_bytes: 3 * one,
            ..config()
        },
    );
    for _ in 0..7 {
        log.append_as_leader(&mut s, &batch(1, 0), 0, Instant::ZERO)
            .unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 3, 6]);
    let huge = batch(10, 0);
    assert!(huge.len() as u64 > 3 * one);
    log.append_as_leader(&mut s, &huge, 0, Instant::ZERO)
        .unwrap();
    log.append_as_leader(&mut s, &batch(1, 0), 0, Instant::ZERO)
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 3, 6, 7, 17]);
    assert_eq!(
        s.len("t-0/00000000000000000007.log").unwrap(),
        huge.len() as u64
    );
    log.check_invariants();
}

#[test]
fn segments_roll_by_time_on_append_and_on_retention() {
    let mut s = MemoryStorage::new();
    let mut log = open(
        &mut s,
        LogConfig {
            segment_ms: 1000,
            ..config()
        },
    );
    // An empty segment never rolls.
    assert_eq!(
        log.enforce_retention(&mut s, Instant::from_millis(5000))
            .unwrap(),
        0
    );
    assert_eq!(log.segment_count(), 1);
    log.append_as_leader(&mut s, &batch(1, 0), 0, Instant::from_millis(5000))
        .unwrap();
    log.append_as_leader(&mut s, &batch(1, 0), 0, Instant::from_millis(5999))
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0]);
    log.append_as_leader(&mut s, &batch(1, 0), 0, Instant::from_millis(6000))
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    log.enforce_retention(&mut s, Instant::from_millis(6999))
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    log.enforce_retention(&mut s, Instant::from_millis(7000))
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 3]);
}

#[test]
fn retention_by_size_keeps_at_least_retention_bytes() {
    let mut s = MemoryStorage::new();
    let one = batch(1, 0).len() as u64;
    let mut log = open(
        &mut s,
        LogConfig {
            segment_bytes: 2 * one,
            ..config()
        },
    );
    for _ in 0..9 {
        log.append_as_leader(&mut s, &batch(1, 0), 0, Instant::ZERO)
            .unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 4, 6, 8]);
    log.set_config(LogConfig {
        segment_bytes: 2 * one,
        retention_bytes: (3 * one) as i64,
        ..config()
    });
    let deleted = log.enforce_retention(&mut s, Instant::ZERO).unwrap();
    // 9 batches; deleting 2 segments leaves 5 >= 3, a third would leave 3 >= 3,
    // a fourth would leave 1 < 3.
    assert_eq!(deleted, 3);
    assert_eq!(log.segment_base_offsets(), vec![6, 8]);
    assert_eq!(log.log_start_offset(), 6);
    assert!(!s.exists("t-0/00000000000000000000.log"));
    assert_eq!(log.size_bytes(), 3 * one);
    assert!(matches!(
        log.read(&mut s, 5, 1000, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn retention_by_time_deletes_the_old_prefix_only() {
    let mut s = MemoryStorage::new();
    let one = batch(1, 0).len() as u64;
    let mut log = open(
        &mut s,
        LogConfig {
            segment_bytes: one,
            retention_ms: 1000,
            ..config()
        },
    );
    for ts in [100, 200, 5000, 300, 6000] {
        log.append_as_leader(&mut s, &batch(1, ts), 0, Instant::ZERO)
            .unwrap();
    }
    assert_eq!(log.segment_count(), 5);
    // now - retention = 5500: segments 0..=3 (100, 200, 5000, 300) are all
    // older; segment 4 is older than nothing but is active anyway.
    let deleted = log
        .enforce_retention(&mut s, Instant::from_millis(6500))
        .unwrap();
    assert_eq!(deleted, 4);
    assert_eq!(log.log_start_offset(), 4);
    // The active segment stays whatever its age.
    assert_eq!(
        log.enforce_retention(&mut s, Instant::from_millis(100_000))
            .unwrap(),
        0
    );
    assert_eq!(log.segment_count(), 1);

    // A young segment stops the prefix even if a later one is old.
    let mut s = MemoryStorage::new();
    let mut log = open(
        &mut s,
        LogConfig {
            segment_bytes: one,
            retention_ms: 1000,
            ..config()
        },
    );
    for ts in [100, 9000, 200, 300] {
        log.append_as_leader(&mut s, &batch(1, ts), 0, Instant::ZERO)
            .unwrap();
    }
    assert_eq!(
        log.enforce_retention(&mut s, Instant::from_millis(9500))
            .unwrap(),
        1
    );
    assert_eq!(log.segment_base_offsets(), vec![1, 2, 3]);
}

#[test]
fn delete_records_moves_the_start_and_deletes_whole_segments() {
    let mut s = MemoryStorage::new();
    let one = batch(2, 0).len() as u64;
    let mut log = open(
        &mut s,
        LogConfig {
            segment_bytes: 2 * one,
            ..config()
        },
    );
    for _ in 0..4 {
        log.append_as_leader(&mut s, &batch(2, 0), 0, Instant::ZERO)
            .unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 4]);
    assert_eq!(log.delete_records_before(&mut s, 3).unwrap(), 3);
    assert_eq!(
        log.segment_base_offsets(),
        vec![0, 4],
        "segment 0 still holds offset 3"
    );
    assert!(matches!(
        log.read(&mut s, 2, 1000, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Reading at the start returns the batch holding it, from offset 2.
    let read = log.read(&mut s, 3, 1, i64::MAX).unwrap();
    assert_eq!(headers(&read.records)[0].base_offset(), 2);
    assert_eq!(read.log_start_offset, 3);
    // Going backwards is a no-op.
    assert_eq!(log.delete_records_before(&mut s, 1).unwrap(), 3);
    assert_eq!(log.delete_records_before(&mut s, 4).unwrap(), 4);
    assert_eq!(log.segment_base_offsets(), vec![4]);
    let error = log.delete_records_before(&mut s, 9).unwrap_err();
    assert!(matches!(
        error,
        LogError::OffsetOutOfRange { offset: 9, .. }
    ));
    assert_eq!(error.kafka_error_code(), 1);
    // Up to the log end: the active segment rolls, then goes.
    assert_eq!(log.delete_records_before(&mut s, 8).unwrap(), 8);
    assert_eq!(log.segment_base_offsets(), vec![8]);
    assert_eq!(log.size_bytes(), 0);
    let read = log.read(&mut s, 8, 1000, i64::MAX).unwrap();
    assert!(read.records.is_empty());

    // The start survives a reopen.
    let log = open(&mut s, config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (8, 8));
}

#[test]
fn a_log_start_beyond_the_recovered_end_empties_the_log() {
    let mut s = MemoryStorage::new();
    let mut log = open(&mut s, config());
    log.append_as_leader(&mut s, &batch(2, 0), 0, Instant::ZERO)
        .unwrap();
    s.sync("t-0/00000000000000000000.log").unwrap();
    log.append_as_leader(&mut s, &batch(2, 0), 0, Instant::ZERO)
        .unwrap();
    log.delete_records_before(&mut s, 3).unwrap();
    s.crash(); // loses offsets 2..4, keeps the durable start 3
    let log = open(&mut s, config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (3, 3));
    log.check_invariants();
}

#[test]
fn read_edges_and_limits() {
    let mut s = MemoryStorage::new();
    let mut log = open(&mut s, config());
    for i in 0..10 {
        log.append_as_leader(&mut s, &batch(3, i), 0, Instant::ZERO)
            .unwrap();
    }
    assert_eq!(log.log_end_offset(), 30);
    // At the log end: empty, not an error. Beyond: an error.
    assert!(log
        .read(&mut s, 30, 1000, i64::MAX)
        .unwrap()
        .records
        .is_empty());
    assert!(matches!(
        log.read(&mut s, 31, 1000, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // max_bytes below one batch still returns that batch.
    let read = log.read(&mut s, 0, 1, i64::MAX).unwrap();
    assert_eq!(headers(&read.records).len(), 1);
    // A middle offset returns the batch holding it first.
    let read = log.read(&mut s, 13, 1000, i64::MAX).unwrap();
    let hs = headers(&read.records);
    assert_eq!(hs[0].base_offset(), 12);
    assert!(read.records.len() <= 1000);
    // max_offset_exclusive: nothing whose last offset reaches it.
    let read = log.read(&mut s, 13, usize::MAX, 20).unwrap();
    assert_eq!(headers(&read.records).last().unwrap().last_offset(), 17);
    assert!(log
        .read(&mut s, 13, usize::MAX, 14)
        .unwrap()
        .records
        .is_empty());
    // Everything, in one read.
    let read = log.read(&mut s, 0, usize::MAX, i64::MAX).unwrap();
    assert_eq!(headers(&read.records).len(), 10);
}

#[test]
fn offset_for_timestamp_finds_the_first_batch_at_or_after() {
    let mut s = MemoryStorage::new();
    let mut log = open(&mut s, config());
    for ts in [10, 30, 20, 40] {
        log.append_as_leader(&mut s, &batch(2, ts), 0, Instant::ZERO)
            .unwrap();
    }
    assert_eq!(log.offset_for_timestamp(&mut s, 0).unwrap(), Some((0, 10)));
    assert_eq!(log.offset_for_timestamp(&mut s, 15).unwrap(), Some((2, 30)));
    assert_eq!(log.offset_for_timestamp(&mut s, 31).unwrap(), Some((6, 40)));
    assert_eq!(log.offset_for_timestamp(&mut s, 41).unwrap(), None);
    log.delete_records_before(&mut s, 3).unwrap();
    assert_eq!(log.offset_for_timestamp(&mut s, 0).unwrap(), Some((3, 30)));
}

#[test]
fn epoch_cache_is_persisted_and_reconciled_on_reopen() {
    let mut s = MemoryStorage::new();
    let mut log = open(&mut s, config());
    log.append_as_leader(&mut s, &batch(2, 0), 1, Instant::ZERO)
        .unwrap();
    log.append_as_leader(&mut s, &batch(2, 0), 1, Instant::ZERO)
        .unwrap();
    log.append_as_leader(&mut s, &batch(2, 0), 3, Instant::ZERO)
        .unwrap();
    assert_eq!(
        s.read_at("t-0/leader-epoch-checkpoint", 0, 100).unwrap(),
        Bytes::from_static(b"0\n2\n1 0\n3 4\n")
    );
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 4)));
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 4)));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 6)));
    let paths = log.unsynced_paths();
    for path in &paths {
        s.sync(path).unwrap();
    }
    log.mark_synced(log.log_end_offset());
    let log = open(&mut s, config());
    assert_eq!(log.epoch_cache().entries(), &[(1, 0), (3, 4)]);

    // Epoch 5 is checkpointed durably but its data is lost in a crash.
    let mut log = log;
    log.append_as_leader(&mut s, &batch(2, 0), 5, Instant::ZERO)
        .unwrap();
    s.crash();
    let log = open(&mut s, config());
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.epoch_cache().entries(), &[(1, 0), (3, 4)]);
    assert_eq!(
        s.read_at("t-0/leader-epoch-checkpoint", 0, 100).unwrap(),
        Bytes::from_static(b"0\n2\n1 0\n3 4\n")
    );
}

#[test]
fn recovery_cuts_a_torn_tail_and_a_corrupt_batch() {
    let mut s = MemoryStorage::new();
    let mut log = open(&mut s, config());
    let path = "t-0/00000000000000000000.log";
    log.append_as_leader(&mut s, &batch(2, 0), 0, Instant::ZERO)
        .unwrap();
    s.sync(path).unwrap();
    let durable = s.len(path).unwrap();
    log.append_as_leader(&mut s, &batch(2, 0), 0, Instant::ZERO)
        .unwrap();
    s.crash_torn(path, 30);
    let (log, report) = PartitionLog::open(&mut s, DIR, config(), Instant::ZERO).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(report.truncated_bytes, 30);
    assert_eq!(report.batches_scanned, 1);
    assert_eq!(s.len(path).unwrap(), durable);

    let mut log = log;
    log.append_as_leader(&mut s, &batch(2, 0), 0, Instant::ZERO)
        .unwrap();
    let end = s.len(path).unwrap() as usize;
    s.flip_bit(path, end - 3, 2);
    let (log, report) = PartitionLog::open(&mut s, DIR, config(), Instant::ZERO).unwrap();
    assert_eq!(log.log_end_offset(), 2, "the corrupt batch is cut");
    assert!(report.truncated_bytes > 0);
}

#[test]
fn recovery_drops_segments_after_a_gap() {
    let mut s = MemoryStorage::new();
    let one = batch(1, 0).len() as u64;
    let mut log = open(
        &mut s,
        LogConfig {
            segment_bytes: one,
            ..config()
        },
    );
    for _ in 0..3 {
        log.append_as_leader(&mut s, &batch(1, 0), 0, Instant::ZERO)
            .unwrap();
    }
    // Segment 1 loses its batch but segment 2 survives: a gap.
    s.truncate("t-0/00000000000000000001.log", 0).unwrap();
    let (log, report) = PartitionLog::open(&mut s, DIR, config(), Instant::ZERO).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 1]);
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(report.truncated_bytes, one);
    assert!(!s.exists("t-0/00000000000000000002.log"));
}

#[test]
fn flush_tracking_keeps_segments_written_after_the_snapshot() {
    let mut s = MemoryStorage::new();
    let one = batch(1, 0).len() as u64;
    let mut log = open(
        &mut s,
        LogConfig {
            segment_bytes: one,
            ..config()
        },
    );
    log.mark_synced(0);
    assert!(log.unsynced_paths().is_empty());
    log.append_as_leader(&mut s, &batch(1, 0), 0, Instant::ZERO)
        .unwrap();
    log.append_as_leader(&mut s, &batch(1, 0), 0, Instant::ZERO)
        .unwrap();
    assert_eq!(
        log.unsynced_paths(),
        vec![
            "t-0/00000000000000000000.log",
            "t-0/00000000000000000001.log"
        ]
    );
    let snapshot = log.log_end_offset();
    log.append_as_leader(&mut s, &batch(1, 0), 0, Instant::ZERO)
        .unwrap();
    log.mark_synced(snapshot);
    assert_eq!(log.synced_offset(), 2);
    assert_eq!(log.unsynced_paths(), vec!["t-0/00000000000000000002.log"]);
    log.mark_synced(log.log_end_offset());
    assert!(log.unsynced_paths().is_empty());
    assert_eq!(log.synced_offset(), 3);
}

#[test]
fn truncate_to_cuts_at_batch_boundaries_and_fixes_the_epoch_cache() {
    let mut s = MemoryStorage::new();
    let one = batch(2, 0).len() as u64;
    let mut log = open(
        &mut s,
        LogConfig {
            segment_bytes: 2 * one,
            ..config()
        },
    );
    for epoch in [0, 0, 1, 2, 2] {
        log.append_as_leader(&mut s, &batch(2, 0), epoch, Instant::ZERO)
            .unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 4, 8]);
    assert_eq!(log.epoch_cache().entries(), &[(0, 0), (1, 4), (2, 6)]);
    log.truncate_to(&mut s, 5).unwrap(); // inside the batch [4, 6)
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(log.segment_base_offsets(), vec![0, 4]);
    assert_eq!(log.epoch_cache().entries(), &[(0, 0)]);
    assert!(!s.exists("t-0/00000000000000000008.log"));
    log.append_as_leader(&mut s, &batch(2, 0), 3, Instant::ZERO)
        .unwrap();
    assert_eq!(log.epoch_cache().entries(), &[(0, 0), (3, 4)]);
    let log = open(&mut s, config());
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.epoch_cache().entries(), &[(0, 0), (3, 4)]);
}

#[test]
fn follower_appends_keep_offsets_and_learn_epochs() {
    let mut leader_storage = MemoryStorage::new();
    let mut leader = open(&mut leader_storage, config());
    leader
        .append_as_leader(&mut leader_storage, &batch(2, 0), 1, Instant::ZERO)
        .unwrap();
    leader
        .append_as_leader(&mut leader_storage, &batch(2, 0), 4, Instant::ZERO)
        .unwrap();
    let fetched = leader
        .read(&mut leader_storage, 0, usize::MAX, i64::MAX)
        .unwrap();

    let mut s = MemoryStorage::new();
    let mut follower = PartitionLog::open(&mut s, "f-0", config(), Instant::ZERO)
        .unwrap()
        .0;
    let info = follower
        .append_as_follower(&mut s, &fetched.records, Instant::ZERO)
        .unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 3));
    assert_eq!(
        follower.epoch_cache().entries(),
        leader.epoch_cache().entries()
    );
    // Not at the log end: refused.
    assert!(follower
        .append_as_follower(&mut s, &fetched.records, Instant::ZERO)
        .is_err());
    assert_eq!(follower.log_end_offset(), 4);
}

#[test]
fn delete_removes_the_directory() {
    let mut s = MemoryStorage::new();
    let mut log = open(&mut s, config());
    log.append_as_leader(&mut s, &batch(1, 0), 0, Instant::ZERO)
        .unwrap();
    log.delete(&mut s).unwrap();
    assert!(s.paths().is_empty());
}

#[test]
fn a_cut_at_the_log_end_ends_an_epoch_that_holds_no_record() {
    let mut s = MemoryStorage::new();
    let mut log = open(&mut s, config());
    log.append_as_leader(&mut s, &batch(3, 10), 1, Instant::ZERO)
        .unwrap();
    // Leader of epoch 2 for a moment, with nothing appended in it.
    log.assign_leader_epoch(&mut s, 2).unwrap();
    assert_eq!(log.latest_epoch(), Some(2));
    log.truncate_to(&mut s, 3).unwrap();
    assert_eq!(log.latest_epoch(), Some(1), "the empty epoch 2 is gone");
    assert_eq!(log.log_end_offset(), 3, "no record was cut");
    // And it stays gone after a restart (the checkpoint was rewritten).
    let log = open(&mut s, config());
    assert_eq!(log.latest_epoch(), Some(1));
}
