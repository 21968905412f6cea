//! Compaction against a model: random appends (a few keys, some
//! tombstones, every codec), rolls, syncs, compaction steps, time passing,
//! time retention (`compact,delete`), DeleteRecords, restarts and power
//! cuts on one `MemoryStorage`. After every step the
//! log must still hold the latest record of every key at its original
//! offset, invent or alter nothing, leave everything at or above the
//! cleanable end alone, drop a tombstone only `delete.retention.ms` after
//! it was written, and keep its own invariants. At the end, a full
//! compaction must leave exactly the latest live record of each key.

mod compaction_support;

use compaction_support::*;
use proptest::prelude::*;
use seedlog_core::batch::BatchError;
use seedlog_core::log::{CleanupPolicy, CompactionStep, LogConfig, LogError, PartitionLog};
use seedlog_core::storage::MemoryStorage;
use seedlog_core::Instant;
use std::collections::BTreeMap;

const KEYS: u8 = 4;
const T0_MS: u64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// One batch: (key, value) with `None` a tombstone; `codec` indexes
    /// `CODECS`.
    Append {
        records: Vec<(u8, Option<u8>)>,
        codec: usize,
    },
    /// A batch with a keyless record: refused.
    AppendKeyless,
    /// `segment.ms` elapses: the active segment rolls.
    Roll,
    Sync,
    /// Up to this many compaction steps.
    Compact {
        steps: u8,
    },
    Advance {
        ms: u16,
    },
    /// The high watermark moves this share of the way to the log end.
    RaiseHighWatermark {
        percent: u8,
    },
    /// Time retention (deletes only under `compact,delete`).
    Retention,
    /// DeleteRecords up to this share of the way to the high watermark.
    DeleteRecords {
        percent: u8,
    },
    /// A process restart: everything written survives.
    Restart,
    /// A power cut: what was not synced is lost.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (
            proptest::collection::vec((0..KEYS, proptest::option::weighted(0.8, any::<u8>())), 1..4),
            0..CODECS.len(),
        )
            .prop_map(|(records, codec)| Op::Append { records, codec }),
        1 => Just(Op::AppendKeyless),
        2 => Just(Op::Roll),
        3 => Just(Op::Sync),
        5 => (1u8..6).prop_map(|steps| Op::Compact { steps }),
        3 => (0u16..1500).prop_map(|ms| Op::Advance { ms }),
        3 => (0u8..=100).prop_map(|percent| Op::RaiseHighWatermark { percent }),
        1 => Just(Op::Retention),
        1 => (0u8..=100).prop_map(|percent| Op::DeleteRecords { percent }),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

#[derive(Debug, Clone)]
struct Params {
    config: LogConfig,
    /// `None`: the default bound.
    offset_map_keys_max: Option<usize>,
}

fn params() -> impl Strategy<Value = Params> {
    (
        200u64..700,
        50u64..2000,
        prop_oneof![Just(0u32), 0u32..800_000],
        // Maps smaller than the key set make passes stop early.
        proptest::option::weighted(0.7, 1usize..5),
        // `compact,delete` with this `retention.ms`, else `compact`.
        proptest::option::weighted(0.3, 200i64..3000),
    )
        .prop_map(
            |(segment_bytes, delete_retention_ms, ratio_ppm, keys_max, retention_ms)| Params {
                config: LogConfig {
                    segment_bytes,
                    delete_retention_ms,
                    min_cleanable_dirty_ratio_ppm: ratio_ppm,
                    cleanup_policy: match retention_ms {
                        Some(_) => CleanupPolicy::CompactDelete,
                        None => CleanupPolicy::Compact,
                    },
                    retention_ms: retention_ms.unwrap_or(-1),
                    ..compact_config()
                },
                offset_map_keys_max: keys_max,
            },
        )
}

/// A record as the model keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    timestamp_ms: i64,
}

struct World {
    params: Params,
    storage: MemoryStorage,
    log: PartitionLog,
    now: Instant,
    high_watermark: i64,
    /// Every record appended and not lost to a crash, by offset.
    written: BTreeMap<i64, Written>,
    /// No compaction step ever looked at or above this.
    cleaned_below: i64,
}

fn key_of(key: u8) -> Vec<u8> {
    format!("k{key}").into_bytes()
}

impl World {
    fn new(params: Params) -> World {
        let mut storage = MemoryStorage::new();
        let now = Instant::from_millis(T0_MS);
        let mut log = open(&mut storage, params.config.clone(), now);
        if let Some(keys_max) = params.offset_map_keys_max {
            log.set_offset_map_keys_max(keys_max);
        }
        World {
            params,
            storage,
            log,
            now,
            high_watermark: 0,
            written: BTreeMap::new(),
            cleaned_below: 0,
        }
    }

    /// Opens the log again on what the storage holds and syncs it, as the
    /// node's load does before serving.
    fn reopen(&mut self) {
        self.log = open(&mut self.storage, self.params.config.clone(), self.now);
        if let Some(keys_max) = self.params.offset_map_keys_max {
            self.log.set_offset_map_keys_max(keys_max);
        }
        sync(&mut self.storage, &mut self.log);
    }

    /// The cleanable end the log computes: the last segment boundary at or
    /// below the high watermark, the synced offset and the active base.
    fn cleanable_end(&self) -> i64 {
        let limit = self
            .high_watermark
            .min(self.log.synced_offset())
            .min(self.log.log_end_offset());
        let bases = self.log.segment_base_offsets();
        let active_base = *bases.last().unwrap();
        bases
            .into_iter()
            .filter(|&b| b <= limit.min(active_base))
            .max()
            .unwrap_or(0)
    }

    fn step(&mut self, op: &Op) {
        self.apply(op);
        // Retention, DeleteRecords (and a crash) take a prefix away.
        let start = self.log.log_start_offset();
        self.written.retain(|&offset, _| offset >= start);
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append { records, codec } => {
                let records: Vec<KeyValue> = records
                    .iter()
                    .map(|&(key, value)| (Some(key_of(key)), value.map(|v| vec![v; 3])))
                    .collect();
                let timestamp_ms = self.now.unix_millis();
                let bytes = batch(&records, timestamp_ms, CODECS[*codec]);
                let info = self
                    .log
                    .append_as_leader(&mut self.storage, &bytes, 0, self.now)
                    .expect("append");
                for (offset, (key, value)) in (info.first_offset..).zip(records) {
                    let written = Written {
                        key: key.unwrap(),
                        value,
                        timestamp_ms,
                    };
                    self.written.insert(offset, written);
                }
            }
            Op::AppendKeyless => {
                let end = self.log.log_end_offset();
                let bytes = batch(&[kv("k0", Some("v")), (None, Some(vec![1]))], 0, CODECS[0]);
                let error = self
                    .log
                    .append_as_leader(&mut self.storage, &bytes, 0, self.now)
                    .unwrap_err();
                assert_eq!(
                    error,
                    LogError::Batch(BatchError::NullKeyInCompactedTopic { offset_delta: 1 })
                );
                assert_eq!(self.log.log_end_offset(), end);
            }
            Op::Roll => {
                self.now = self.now + std::time::Duration::from_millis(1);
                roll(&mut self.storage, &mut self.log, self.now);
            }
            Op::Sync => sync(&mut self.storage, &mut self.log),
            Op::Compact { steps } => {
                for _ in 0..*steps {
                    self.cleaned_below = self.cleaned_below.max(self.cleanable_end());
                    let step = self
                        .log
                        .compact_step(&mut self.storage, self.now, self.high_watermark)
                        .expect("compaction step");
                    if step == CompactionStep::Idle {
                        break;
                    }
                }
            }
            Op::Advance { ms } => {
                self.now = self.now + std::time::Duration::from_millis(u64::from(*ms));
            }
            Op::RaiseHighWatermark { percent } => {
                let end = self.log.log_end_offset();
                self.high_watermark += (end - self.high_watermark) * i64::from(*percent) / 100;
            }
            Op::Retention => {
                self.log
                    .enforce_retention(&mut self.storage, self.now)
                    .expect("retention");
            }
            Op::DeleteRecords { percent } => {
                let start = self.log.log_start_offset();
                let to = start + (self.high_watermark - start).max(0) * i64::from(*percent) / 100;
                self.log
                    .delete_records_before(&mut self.storage, to)
                    .expect("delete records");
            }
            Op::Restart => self.reopen(),
            Op::Crash => {
                let synced = self.log.synced_offset();
                self.storage.crash();
                self.reopen();
                let end = self.log.log_end_offset();
                assert!(
                    end >= synced,
                    "a crash keeps what was synced: {end} < {synced}"
                );
                self.written.retain(|&offset, _| offset < end);
                self.high_watermark = self.high_watermark.min(end);
            }
        }
    }

    /// The latest written record of each key, by key.
    fn latest(&self, below: i64) -> BTreeMap<&[u8], (i64, &Written)> {
        let mut latest = BTreeMap::new();
        for (&offset, w) in self.written.range(..below) {
            latest.insert(&w.key[..], (offset, w));
        }
        latest
    }

    fn check(&mut self) {
        self.log.check_invariants();
        let end = self.log.log_end_offset();
        assert_eq!(
            self.written
                .keys()
                .next_back()
                .map_or(0, |o| o + 1)
                .max(end),
            end,
            "the log end is where the last append left it"
        );
        // A reopened log starts its first dirty offset at the log start.
        let start = self.log.log_start_offset();
        assert!(self.log.first_dirty_offset() <= self.cleaned_below.max(start));
        let records = read_all(&mut self.storage, &mut self.log);
        let mut previous = -1;
        for r in &records {
            assert!(r.offset > previous, "offsets increase: {r:?}");
            previous = r.offset;
            let w = self
                .written
                .get(&r.offset)
                .unwrap_or_else(|| panic!("offset {} was never written", r.offset));
            assert_eq!(
                (r.key.as_ref(), &r.value, r.timestamp),
                (Some(&w.key), &w.value, w.timestamp_ms),
                "offset {} changed",
                r.offset
            );
        }
        let read: BTreeMap<i64, &ReadRecord> = records.iter().map(|r| (r.offset, r)).collect();
        let delete_retention_ms = self.params.config.delete_retention_ms as i64;
        for (key, (offset, w)) in self.latest(end) {
            let tombstone_may_go =
                w.value.is_none() && self.now.unix_millis() >= w.timestamp_ms + delete_retention_ms;
            assert!(
                read.contains_key(&offset) || tombstone_may_go,
                "the latest record of {key:?} at {offset} is gone"
            );
        }
        // A consumer replaying the whole log ends with the state the
        // writes left: the latest value per key, tombstones deleting.
        let mut replayed: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
        for r in &records {
            let key = r.key.as_deref().expect("keyed");
            match &r.value {
                Some(value) => replayed.insert(key, value),
                None => replayed.remove(key),
            };
        }
        let mut state: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
        for w in self.written.values() {
            match &w.value {
                Some(value) => state.insert(&w.key, value),
                None => state.remove(&w.key[..]),
            };
        }
        assert_eq!(replayed, state, "replaying the log gives the written state");
        for (offset, _) in self.written.range(self.cleaned_below..) {
            assert!(
                read.contains_key(offset),
                "offset {offset}, at or above the cleaned point {}, is gone",
                self.cleaned_below
            );
        }
    }

    /// Everything synced and committed, time past every horizon, passes
    /// until none is due: below the cleanable end exactly the latest
    /// record of each key remains, and no tombstone.
    fn finish(&mut self) {
        // Whatever the dirty ratio, every pass is due from here on.
        self.params.config.min_cleanable_dirty_ratio_ppm = 0;
        self.log.set_config(self.params.config.clone());
        self.step(&Op::Roll);
        sync(&mut self.storage, &mut self.log);
        self.high_watermark = self.log.log_end_offset();
        let retention = std::time::Duration::from_millis(self.params.config.delete_retention_ms);
        // Passes to map everything (a small map takes several), then one
        // after the tombstones' horizon.
        for round in 0..2 {
            for _ in 0..100 {
                self.cleaned_below = self.cleaned_below.max(self.cleanable_end());
                if run_pass(
                    &mut self.storage,
                    &mut self.log,
                    self.now,
                    self.high_watermark,
                ) == 0
                {
                    break;
                }
                self.check();
            }
            if round == 0 {
                self.now = self.now + retention;
            }
        }
        let end = self.cleanable_end();
        assert_eq!(self.log.first_dirty_offset(), end, "every pass is done");
        let mut expected: Vec<i64> = self
            .latest(end)
            .values()
            .filter(|(_, w)| w.value.is_some())
            .map(|&(offset, _)| offset)
            .collect();
        expected.extend(self.written.range(end..).map(|(&offset, _)| offset));
        expected.sort_unstable();
        let records = read_all(&mut self.storage, &mut self.log);
        assert_eq!(
            offsets(&records),
            expected,
            "compaction left exactly the latest records"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compaction_keeps_the_latest_record_of_every_key(
        params in params(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut world = World::new(params);
        for op in &ops {
            world.step(op);
            world.check();
        }
        world.finish();
    }
}
