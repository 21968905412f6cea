//! Log compaction on `MemoryStorage`, case by case: what stays, what goes,
//! emptied and all-tombstone segments, crashes between and around
//! rewrites, the cleanable end, and the policy's effect on retention. The
//! node running it from its retention timer is in `node_single_broker.rs`.

mod compaction_support;

use compaction_support::*;
use kafka_protocol::records::Compression;
use seedlog_core::batch::BatchError;
use seedlog_core::log::{CleanupPolicy, CompactionStep, LogConfig, LogError, PartitionLog};
use seedlog_core::storage::{MemoryStorage, Storage};
use seedlog_core::Instant;
use std::collections::BTreeMap;

const T0_MS: u64 = 1_700_000_000_000;

fn at(ms: u64) -> Instant {
    Instant::from_millis(T0_MS + ms)
}

/// Appends one single-record batch per `(key, value)`, all at `t`.
fn append_each(
    storage: &mut MemoryStorage,
    log: &mut PartitionLog,
    records: &[KeyValue],
    compression: Compression,
    t: Instant,
) {
    for record in records {
        let bytes = batch(std::slice::from_ref(record), t.unix_millis(), compression);
        log.append_as_leader(storage, &bytes, 0, t).expect("append");
    }
}

/// A log holding `records`, one batch each, all synced.
fn synced_log(
    config: LogConfig,
    records: &[KeyValue],
    codec: Compression,
) -> (MemoryStorage, PartitionLog) {
    let mut s = MemoryStorage::new();
    let mut log = open(&mut s, config, at(0));
    append_each(&mut s, &mut log, records, codec, at(0));
    sync(&mut s, &mut log);
    (s, log)
}

/// A log whose closed segments hold `segments` (segment `i` written at
/// `i` ms, one batch per record), then an active segment holding `z`;
/// everything synced.
fn log_of_segments(
    config: LogConfig,
    segments: &[(&[KeyValue], Compression)],
) -> (MemoryStorage, PartitionLog) {
    let mut s = MemoryStorage::new();
    let mut log = open(&mut s, config, at(0));
    for (i, (records, codec)) in (0..).zip(segments) {
        append_each(&mut s, &mut log, records, *codec, at(i));
        roll(&mut s, &mut log, at(i + 1));
    }
    let active = [kv("z", Some("active"))];
    let t = at(segments.len() as u64);
    append_each(&mut s, &mut log, &active, Compression::None, t);
    sync(&mut s, &mut log);
    (s, log)
}

/// `count` updates cycling over `keys` keys: `k{i % keys}` = `v{i}`.
fn updates(count: usize, keys: usize) -> Vec<KeyValue> {
    (0..count)
        .map(|i| kv(&format!("k{}", i % keys), Some(&format!("v{i}"))))
        .collect()
}

/// What a pass up to `cleanable_end` should leave of `written` (records by
/// offset): below the end, the latest record of each key (tombstones
/// included); from the end on, everything.
fn expected_after_pass(written: &[ReadRecord], cleanable_end: i64) -> Vec<ReadRecord> {
    let mut latest: BTreeMap<&[u8], i64> = BTreeMap::new();
    for r in written.iter().filter(|r| r.offset < cleanable_end) {
        latest.insert(r.key.as_deref().expect("keyed"), r.offset);
    }
    written
        .iter()
        .filter(|r| r.offset >= cleanable_end || latest[r.key.as_deref().unwrap()] == r.offset)
        .cloned()
        .collect()
}

fn active_base(log: &PartitionLog) -> i64 {
    *log.segment_base_offsets().last().unwrap()
}

#[test]
fn the_latest_record_of_each_key_stays_at_its_offset_in_every_codec() {
    for codec in CODECS {
        let (mut s, mut log) = synced_log(compact_config(), &updates(60, 4), codec);
        let written = read_all(&mut s, &mut log);
        let (end, bases, size) = (
            log.log_end_offset(),
            log.segment_base_offsets(),
            log.size_bytes(),
        );
        assert!(bases.len() > 3, "{codec:?}: several closed segments");

        let steps = run_pass(&mut s, &mut log, at(1), end);
        let cleanable_end = active_base(&log);
        assert_eq!(
            steps,
            2 * (bases.len() - 1),
            "{codec:?}: one step per segment mapped, one per segment cleaned"
        );
        let kept = read_all(&mut s, &mut log);
        assert_eq!(
            kept,
            expected_after_pass(&written, cleanable_end),
            "{codec:?}"
        );
        assert_eq!(log.log_end_offset(), end, "offsets are preserved");
        assert_eq!(
            log.segment_base_offsets(),
            bases,
            "segments keep their ranges"
        );
        assert!(log.size_bytes() < size, "{codec:?}: bytes were reclaimed");
        assert_eq!(log.first_dirty_offset(), cleanable_end);
        for header in headers(&mut s, &log) {
            if header.records_count() > 0 {
                assert_eq!(
                    header.compression_codec(),
                    codec as i16,
                    "recompressed alike"
                );
            }
        }

        // A reopened log reads the same; a second pass finds nothing due.
        let mut reopened = open(&mut s, compact_config(), at(2));
        assert_eq!(read_all(&mut s, &mut reopened), kept);
        assert_eq!(reopened.first_dirty_offset(), cleanable_end, "checkpointed");
        assert_eq!(run_pass(&mut s, &mut reopened, at(2), end), 0);
    }
}

#[test]
fn a_fetch_at_a_compacted_offset_gets_the_next_batch() {
    let (mut s, mut log) = synced_log(compact_config(), &updates(40, 2), Compression::None);
    let end = log.log_end_offset();
    run_pass(&mut s, &mut log, at(1), end);
    let kept = offsets(&read_all(&mut s, &mut log));
    let removed = (0..end)
        .find(|o| !kept.contains(o))
        .expect("something went");
    let read = log.read(&mut s, removed, 1, end).unwrap();
    let first = seedlog_core::batch::BatchHeader::parse(&read.records).unwrap();
    assert!(first.base_offset() <= removed && removed <= first.last_offset());
    let next_kept = kept.iter().copied().find(|&o| o > removed).unwrap();
    let mut offset = removed;
    // Empty batches (removed runs) and gaps lead to the next kept record.
    for _ in 0..end {
        let read = log.read(&mut s, offset, 1, end).unwrap();
        let header = seedlog_core::batch::BatchHeader::parse(&read.records).unwrap();
        if header.records_count() > 0 {
            assert!(header.last_offset() >= next_kept);
            break;
        }
        offset = header.next_offset();
    }
}

#[test]
fn an_emptied_segment_keeps_its_range_as_one_empty_batch() {
    let config = LogConfig {
        segment_bytes: 10_000,
        ..compact_config()
    };
    // Segment 0: ten batches of k0..k9, all overwritten by segment 1.
    let (mut s, mut log) = log_of_segments(
        config.clone(),
        &[
            (&updates(10, 10), Compression::Lz4),
            (&updates(10, 10), Compression::None),
        ],
    );
    assert_eq!(log.segment_base_offsets(), vec![0, 10, 20]);

    run_pass(&mut s, &mut log, at(11), i64::MAX);
    let all = headers(&mut s, &log);
    let first = all[0];
    assert_eq!(
        (
            first.base_offset(),
            first.last_offset(),
            first.records_count()
        ),
        (0, 9, 0),
        "ten emptied batches became one empty batch over their offsets"
    );
    assert_eq!((first.producer_id(), first.base_sequence()), (-1, -1));
    assert_eq!(all.len(), 1 + 10 + 1);
    assert_eq!(log.segment_base_offsets(), vec![0, 10, 20]);
    let records = read_all(&mut s, &mut log);
    assert_eq!(offsets(&records), (10..21).collect::<Vec<_>>());
    let reopened_records = {
        let mut reopened = open(&mut s, config, at(12));
        read_all(&mut s, &mut reopened)
    };
    assert_eq!(reopened_records, records);
}

#[test]
fn an_all_tombstone_segment_goes_only_after_delete_retention() {
    let config = LogConfig {
        segment_bytes: 10_000,
        delete_retention_ms: 1_000,
        ..compact_config()
    };
    let values: Vec<KeyValue> = (0..4).map(|i| kv(&format!("k{i}"), Some("v"))).collect();
    let tombstones: Vec<KeyValue> = (0..4).map(|i| kv(&format!("k{i}"), None)).collect();
    let (mut s, mut log) = log_of_segments(
        config,
        &[
            (&values, Compression::Gzip),
            (&tombstones, Compression::Zstd),
        ],
    );
    let end = log.log_end_offset();

    // First pass at 10 ms: values go, tombstones stay with a horizon at
    // 10 ms + delete.retention.ms.
    run_pass(&mut s, &mut log, at(10), end);
    let records = read_all(&mut s, &mut log);
    assert_eq!(offsets(&records), vec![4, 5, 6, 7, 8]);
    assert!(records[..4].iter().all(|r| r.value.is_none()));
    assert!(records[..4]
        .iter()
        .all(|r| r.timestamp == at(1).unix_millis()));
    let horizons: Vec<_> = headers(&mut s, &log)
        .iter()
        .filter(|h| h.has_delete_horizon())
        .map(|h| h.base_timestamp())
        .collect();
    assert_eq!(horizons, vec![at(1_010).unix_millis(); 4]);

    // Before the horizon nothing is due; at it, a pass is, and the
    // tombstones go, leaving one empty batch in their segment.
    assert_eq!(run_pass(&mut s, &mut log, at(1_009), end), 0);
    assert_eq!(read_all(&mut s, &mut log), records);
    assert!(run_pass(&mut s, &mut log, at(1_010), end) > 0);
    let records = read_all(&mut s, &mut log);
    assert_eq!(offsets(&records), vec![8]);
    let all = headers(&mut s, &log);
    assert_eq!(
        all.len(),
        3,
        "one empty batch per segment, and the active one"
    );
    assert!(all.iter().all(|h| !h.has_delete_horizon()));
    assert_eq!(log.log_end_offset(), end);
    // Nothing left to remove: no pass is due any more.
    assert_eq!(run_pass(&mut s, &mut log, at(5_000), end), 0);
}

#[test]
fn a_crash_at_any_step_of_a_pass_leaves_a_log_that_reads_right() {
    let mut base = MemoryStorage::new();
    let mut log = open(&mut base, compact_config(), at(0));
    let mut written_kv = updates(30, 3);
    written_kv.push(kv("k0", None));
    written_kv.extend(updates(12, 5));
    append_each(&mut base, &mut log, &written_kv, Compression::Snappy, at(0));
    sync(&mut base, &mut log);
    let written = read_all(&mut base, &mut log);
    let end = log.log_end_offset();
    let mut reference = base.clone();
    let steps = {
        let mut log = open(&mut reference, compact_config(), at(0));
        run_pass(&mut reference, &mut log, at(1), end)
    };
    let expected = expected_after_pass(&written, active_base(&log));

    for crash_after in 0..=steps {
        let mut s = base.clone();
        let mut log = open(&mut s, compact_config(), at(0));
        for _ in 0..crash_after {
            log.compact_step(&mut s, at(1), end).unwrap();
        }
        // Unsynced bytes are lost; rewrites are not (write_atomic).
        s.crash();
        let mut reopened = open(&mut s, compact_config(), at(2));
        assert_eq!(
            reopened.log_end_offset(),
            end,
            "crash after {crash_after} steps"
        );
        let records = read_all(&mut s, &mut reopened);
        // Between the states before and after the pass, per record.
        assert!(
            expected.iter().all(|r| records.contains(r)),
            "crash after {crash_after} steps lost a latest record"
        );
        assert!(records.iter().all(|r| written.contains(r)));
        run_pass(&mut s, &mut reopened, at(3), end);
        assert_eq!(read_all(&mut s, &mut reopened), expected);
    }
}

#[test]
fn a_write_torn_inside_the_swap_leaves_only_a_stray_temporary_file() {
    let (mut s, mut log) = synced_log(compact_config(), &updates(30, 2), Compression::None);
    let written = read_all(&mut s, &mut log);
    // Storage::write_atomic writes a temporary file, syncs, renames: a
    // crash before the rename leaves the old segment and a stray file,
    // which is not a segment name and is ignored.
    let first = log.segment_paths()[0].clone();
    s.append(&format!("{first}.seedlog-tmp"), &[0xAB; 77])
        .unwrap();
    s.sync(&format!("{first}.seedlog-tmp")).unwrap();
    s.crash();
    let mut reopened = open(&mut s, compact_config(), at(1));
    assert_eq!(read_all(&mut s, &mut reopened), written);
    run_pass(&mut s, &mut reopened, at(1), i64::MAX);
    reopened.check_invariants();
}

#[test]
fn nothing_at_or_above_the_high_watermark_or_the_synced_offset_changes() {
    let mut s = MemoryStorage::new();
    let mut log = open(&mut s, compact_config(), at(0));
    append_each(&mut s, &mut log, &updates(50, 2), Compression::None, at(0));
    let end = log.log_end_offset();
    // Nothing synced yet: nothing is cleanable.
    assert_eq!(log.synced_offset(), 0);
    assert_eq!(run_pass(&mut s, &mut log, at(1), end), 0);
    sync(&mut s, &mut log);
    let written = read_all(&mut s, &mut log);

    let high_watermark = end / 2;
    run_pass(&mut s, &mut log, at(1), high_watermark);
    let bases = log.segment_base_offsets();
    let cleanable_end = *bases.iter().rev().find(|&&b| b <= high_watermark).unwrap();
    assert!(cleanable_end > 0 && cleanable_end < active_base(&log));
    let records = read_all(&mut s, &mut log);
    assert_eq!(records, expected_after_pass(&written, cleanable_end));
    assert_eq!(log.first_dirty_offset(), cleanable_end);
}

#[test]
fn the_dirty_ratio_decides_when_a_pass_is_due() {
    let mut s = MemoryStorage::new();
    let config = LogConfig {
        min_cleanable_dirty_ratio_ppm: 500_000,
        ..compact_config()
    };
    let mut log = open(&mut s, config, at(0));
    append_each(&mut s, &mut log, &updates(60, 60), Compression::None, at(0));
    sync(&mut s, &mut log);
    assert!(run_pass(&mut s, &mut log, at(1), i64::MAX) > 0, "all dirty");
    let clean_end = log.first_dirty_offset();
    // A little more: dirty below half of the cleanable bytes.
    append_each(&mut s, &mut log, &updates(12, 60), Compression::None, at(2));
    sync(&mut s, &mut log);
    assert!(log.first_dirty_offset() < active_base(&log));
    assert_eq!(run_pass(&mut s, &mut log, at(3), i64::MAX), 0);
    // Much more: due.
    append_each(&mut s, &mut log, &updates(80, 60), Compression::None, at(4));
    sync(&mut s, &mut log);
    assert!(run_pass(&mut s, &mut log, at(5), i64::MAX) > 0);
    assert!(log.first_dirty_offset() > clean_end);
}

#[test]
fn a_pass_keeps_the_end_it_began_with() {
    let (mut s, mut log) = synced_log(compact_config(), &updates(40, 3), Compression::None);
    let end = log.log_end_offset();
    let first = log.compact_step(&mut s, at(1), end).unwrap();
    assert!(matches!(
        first,
        CompactionStep::Mapped { from_offset: 0, .. }
    ));
    assert!(log.compaction_in_progress());
    let pass_end = active_base(&log);
    // Appends and rolls meanwhile belong to the next pass.
    append_each(&mut s, &mut log, &updates(40, 3), Compression::None, at(1));
    sync(&mut s, &mut log);
    run_pass(&mut s, &mut log, at(1), i64::MAX);
    assert_eq!(log.first_dirty_offset(), pass_end, "the pass kept its end");
    run_pass(&mut s, &mut log, at(2), i64::MAX);
    assert_eq!(log.first_dirty_offset(), active_base(&log));
}

#[test]
fn a_full_offset_map_ends_the_pass_early_and_the_next_goes_on() {
    // Six keys, each written ten times; the map holds four keys.
    let (mut s, mut log) = synced_log(compact_config(), &updates(60, 6), Compression::Snappy);
    let written = read_all(&mut s, &mut log);
    log.set_offset_map_keys_max(4);
    run_pass(&mut s, &mut log, at(1), i64::MAX);
    let stop = log.first_dirty_offset();
    assert_eq!(stop, 4, "the fifth key (offset 4) did not fit");
    // Below the stop only what the map saw went; the rest is untouched.
    let records = read_all(&mut s, &mut log);
    assert!(records
        .iter()
        .filter(|r| r.offset >= stop)
        .eq(written.iter().filter(|r| r.offset >= stop)));
    // Later passes go on from there, each as far as four keys reach (the
    // map counts a key once, however often it repeats).
    for _ in 0..20 {
        if log.first_dirty_offset() == active_base(&log) {
            break;
        }
        assert!(run_pass(&mut s, &mut log, at(2), i64::MAX) > 0);
    }
    assert_eq!(log.first_dirty_offset(), active_base(&log));
    // Every key keeps its latest record; older copies below the point the
    // passes covered with that key's latest are gone.
    let records = read_all(&mut s, &mut log);
    for key in 0..6 {
        let key = format!("k{key}").into_bytes();
        let latest = written
            .iter()
            .rev()
            .find(|r| r.key.as_ref() == Some(&key))
            .unwrap();
        assert!(records.contains(latest));
    }
    assert!(records.len() < written.len());
    assert!(records.iter().all(|r| written.contains(r)));
}

#[test]
fn a_tombstone_past_the_map_end_stays_even_after_its_horizon() {
    // k0 = v, k1 = x, k0 deleted, all in one closed segment; the map holds
    // one key. Pass 1 maps k0 and stops at k1: the tombstone lies past
    // the map's end but gets its horizon (its segment was cleaned). Pass 2,
    // after the horizon, maps k1 and stops at the tombstone: removing it
    // there would bring `v` back, since no pass has yet seen that k0 was
    // deleted.
    let writes = [kv("k0", Some("v")), kv("k1", Some("x")), kv("k0", None)];
    let (mut s, mut log) = log_of_segments(compact_config(), &[(&writes, Compression::None)]);
    log.set_offset_map_keys_max(1);

    run_pass(&mut s, &mut log, at(2), i64::MAX);
    assert_eq!(log.first_dirty_offset(), 1);
    run_pass(&mut s, &mut log, at(5_000), i64::MAX);
    assert_eq!(log.first_dirty_offset(), 2);
    let records = read_all(&mut s, &mut log);
    assert_eq!(
        offsets(&records),
        vec![0, 1, 2, 3],
        "the tombstone still hides v"
    );
    // Pass 3 maps the tombstone: v goes, and the tombstone with it.
    run_pass(&mut s, &mut log, at(5_001), i64::MAX);
    assert_eq!(offsets(&read_all(&mut s, &mut log)), vec![1, 3]);
}

#[test]
fn retention_or_delete_records_during_a_pass_only_shortens_it() {
    for delete_records in [false, true] {
        let config = LogConfig {
            cleanup_policy: CleanupPolicy::CompactDelete,
            retention_ms: 1_000,
            ..compact_config()
        };
        let (mut s, mut log) = synced_log(config, &updates(60, 3), Compression::Lz4);
        let end = log.log_end_offset();
        assert!(matches!(
            log.compact_step(&mut s, at(1), end).unwrap(),
            CompactionStep::Mapped { .. }
        ));
        // Every closed segment goes, mid-pass.
        if delete_records {
            log.delete_records_before(&mut s, end).unwrap();
        } else {
            assert!(log.enforce_retention(&mut s, at(60_000)).unwrap() > 0);
        }
        run_pass(&mut s, &mut log, at(60_000), end);
        assert!(!log.compaction_in_progress());
        log.check_invariants();
    }
}

#[test]
fn a_segment_with_nothing_to_remove_is_not_rewritten() {
    let (mut s, mut log) = synced_log(compact_config(), &updates(30, 30), Compression::None);
    run_pass(&mut s, &mut log, at(1), i64::MAX);
    assert_eq!(
        log.cleaner_stats().segments_rewritten,
        0,
        "every key is distinct"
    );
    append_each(&mut s, &mut log, &updates(30, 30), Compression::None, at(2));
    sync(&mut s, &mut log);
    let before = log.cleaner_stats();
    run_pass(&mut s, &mut log, at(3), i64::MAX);
    let after = log.cleaner_stats();
    assert!(after.segments_rewritten > before.segments_rewritten);
    assert!(
        after.segments_cleaned - before.segments_cleaned
            > after.segments_rewritten - before.segments_rewritten,
        "the segments written after the updates hold the latest records: kept as they are"
    );
}

#[test]
fn a_truncation_stops_the_pass_under_way() {
    let (mut s, mut log) = synced_log(compact_config(), &updates(40, 3), Compression::None);
    let end = log.log_end_offset();
    log.compact_step(&mut s, at(1), end).unwrap();
    assert!(log.compaction_in_progress());
    log.truncate_to(&mut s, 5).unwrap();
    assert!(!log.compaction_in_progress());
    assert!(log.first_dirty_offset() <= 5);
}

#[test]
fn compact_alone_keeps_old_segments_that_compact_delete_removes() {
    for (policy, survives) in [
        (CleanupPolicy::Compact, true),
        (CleanupPolicy::CompactDelete, false),
        (CleanupPolicy::Delete, false),
    ] {
        let mut s = MemoryStorage::new();
        let config = LogConfig {
            cleanup_policy: policy,
            retention_ms: 1_000,
            ..compact_config()
        };
        let mut log = open(&mut s, config, at(0));
        append_each(&mut s, &mut log, &updates(30, 30), Compression::None, at(0));
        let segments = log.segment_count();
        let deleted = log.enforce_retention(&mut s, at(60_000)).unwrap();
        assert_eq!(deleted == 0, survives, "{policy:?}");
        assert_eq!(log.segment_count() == segments, survives, "{policy:?}");
    }
}

#[test]
fn a_compacted_topic_refuses_keyless_records() {
    let mut s = MemoryStorage::new();
    let mut log = open(&mut s, compact_config(), at(0));
    let keyless = batch(
        &[kv("k", Some("v")), (None, Some(b"x".to_vec()))],
        0,
        Compression::Zstd,
    );
    let error = log
        .append_as_leader(&mut s, &keyless, 0, at(0))
        .unwrap_err();
    assert_eq!(
        error,
        LogError::Batch(BatchError::NullKeyInCompactedTopic { offset_delta: 1 })
    );
    assert_eq!(error.kafka_error_code(), 87, "INVALID_RECORD");
    assert_eq!(log.log_end_offset(), 0, "nothing appended");
    log.set_config(LogConfig {
        cleanup_policy: CleanupPolicy::Delete,
        ..compact_config()
    });
    log.append_as_leader(&mut s, &keyless, 0, at(0))
        .expect("a delete topic takes keyless records");
}

#[test]
fn a_follower_copies_a_compacted_leader_batch_for_batch() {
    let (mut leader_storage, mut leader) =
        synced_log(compact_config(), &updates(50, 3), Compression::Gzip);
    let end = leader.log_end_offset();
    run_pass(&mut leader_storage, &mut leader, at(1), end);

    let mut s = MemoryStorage::new();
    let (mut follower, _) = PartitionLog::open(&mut s, "f-0", compact_config(), at(0)).unwrap();
    for _ in 0..end {
        let offset = follower.log_end_offset();
        if offset == end {
            break;
        }
        let read = leader.read(&mut leader_storage, offset, 1000, end).unwrap();
        follower
            .append_as_follower(&mut s, &read.records, at(2))
            .expect("compacted batches are dense");
    }
    assert_eq!(follower.log_end_offset(), end);
    assert_eq!(
        read_all(&mut s, &mut follower),
        read_all(&mut leader_storage, &mut leader)
    );
}
