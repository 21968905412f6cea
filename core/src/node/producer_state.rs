//! Idempotent producers: per partition, the last batches of each producer,
//! so that a retried batch is acknowledged once and a gap is refused.
//!
//! Kafka's rules (ProducerStateManager / ProducerAppendInfo): a batch of a
//! newer epoch must start at sequence 0; an older epoch is fenced; within
//! an epoch the next batch starts right after the last one, and a batch
//! matching one of the last five is a duplicate, answered with the offset
//! it was first written at. A producer unknown to the partition (its state
//! was lost to retention, or it never wrote here) may start anywhere.

use crate::batch::BatchHeader;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, VecDeque};

/// Batches remembered per producer, as Kafka's `NUM_BATCHES_TO_RETAIN`.
pub const BATCHES_CACHED_PER_PRODUCER: usize = 5;
/// Producers remembered per partition; past it the one that wrote least
/// recently is forgotten (Kafka expires them by time instead).
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMeta {
    first_sequence: i32,
    last_sequence: i32,
    first_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

/// What to do with an idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// In sequence (or not idempotent): append it.
    Append,
    /// Already written: answer with its first offset, append nothing (and
    /// acknowledge once `last_offset` is durable).
    Duplicate { first_offset: i64, last_offset: i64 },
}

#[derive(Debug, Default)]
pub struct ProducerStateTable {
    producers: BTreeMap<i64, ProducerEntry>,
}

/// Sequence numbers wrap from `i32::MAX` to 0.
fn sequence_add(sequence: i32, delta: i32) -> i32 {
    debug_assert!(sequence >= 0 && delta >= 0);
    ((i64::from(sequence) + i64::from(delta)) % (i64::from(i32::MAX) + 1)) as i32
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last sequence of the producer's latest batch.
    pub last_sequence: i32,
}

impl ProducerStateTable {
    /// Every remembered producer, by producer id.
    pub fn iter(&self) -> impl Iterator<Item = ProducerSummary> + '_ {
        self.producers.iter().map(|(&producer_id, entry)| {
            let latest = entry.batches.back().expect("a known producer has a batch");
            ProducerSummary {
                producer_id,
                epoch: entry.epoch,
                last_sequence: latest.last_sequence,
            }
        })
    }

    /// Checks a batch against the producer's state; the error is a Kafka
    /// error code.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, i16> {
        let producer_id = header.producer_id();
        if producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        let first = header.base_sequence();
        if first < 0 {
            return Err(ResponseError::InvalidRecord.code());
        }
        let last = sequence_add(first, header.last_offset_delta());
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        let epoch = header.producer_epoch();
        if epoch < entry.epoch {
            return Err(ResponseError::InvalidProducerEpoch.code());
        }
        if epoch > entry.epoch {
            return if first == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(ResponseError::OutOfOrderSequenceNumber.code())
            };
        }
        if let Some(batch) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == first && b.last_sequence == last)
        {
            return Ok(SequenceCheck::Duplicate {
                first_offset: batch.first_offset,
                last_offset: batch.last_offset,
            });
        }
        let latest = entry.batches.back().expect("a known producer has a batch");
        if first == sequence_add(latest.last_sequence, 1) {
            Ok(SequenceCheck::Append)
        } else {
            Err(ResponseError::OutOfOrderSequenceNumber.code())
        }
    }

    /// Records a batch as written at its (final) offsets.
    pub fn record(&mut self, header: &BatchHeader) {
        let producer_id = header.producer_id();
        if producer_id < 0 {
            return;
        }
        let meta = BatchMeta {
            first_sequence: header.base_sequence(),
            last_sequence: sequence_add(header.base_sequence().max(0), header.last_offset_delta()),
            first_offset: header.base_offset(),
            last_offset: header.last_offset(),
        };
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch(),
                batches: VecDeque::new(),
            });
        if header.producer_epoch() != entry.epoch {
            entry.epoch = header.producer_epoch();
            entry.batches.clear();
        }
        entry.batches.push_back(meta);
        if entry.batches.len() > BATCHES_CACHED_PER_PRODUCER {
            entry.batches.pop_front();
        }
        if self.producers.len() > PRODUCERS_PER_PARTITION_MAX {
            self.evict_least_recent();
        }
    }

    /// Forgets every batch at or beyond `offset` (the log was truncated).
    // Followers truncate on divergence once replication lands (issue 5).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn truncate_to(&mut self, offset: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }

    fn evict_least_recent(&mut self) {
        let oldest = self
            .producers
            .iter()
            .min_by_key(|(_, e)| e.batches.back().map_or(i64::MIN, |b| b.last_offset))
            .map(|(id, _)| *id)
            .expect("over the limit, so not empty");
        self.producers.remove(&oldest);
    }

    pub fn check_invariants(&self) {
        assert!(
            self.producers.len() <= PRODUCERS_PER_PARTITION_MAX,
            "producer state is bounded"
        );
        for (id, entry) in &self.producers {
            assert!(*id >= 0, "only idempotent producers have state");
            assert!(
                !entry.batches.is_empty() && entry.batches.len() <= BATCHES_CACHED_PER_PRODUCER,
                "1..=5 batches per producer"
            );
            for pair in entry.batches.iter().collect::<Vec<_>>().windows(2) {
                assert!(
                    pair[0].last_offset < pair[1].first_offset,
                    "a producer's batches are in offset order"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build_batch, set_base_offset, BatchHeader};

    /// A batch of `count` records from producer 7 at `epoch`, starting at
    /// `sequence`, written at `offset`.
    fn header(epoch: i16, sequence: i32, count: usize, offset: i64) -> BatchHeader {
        let records: Vec<crate::batch::TestRecord> =
            (0..count).map(|_| (None, Some(&b"v"[..]))).collect();
        let mut bytes = build_batch(&records, 0);
        bytes[43..51].copy_from_slice(&7i64.to_be_bytes());
        bytes[51..53].copy_from_slice(&epoch.to_be_bytes());
        bytes[53..57].copy_from_slice(&sequence.to_be_bytes());
        set_base_offset(&mut bytes, offset);
        BatchHeader::parse(&bytes).unwrap()
    }

    #[test]
    fn iter_reports_each_producer_with_its_latest_sequence() {
        let mut table = ProducerStateTable::default();
        assert_eq!(table.iter().count(), 0, "no producer yet");
        table.record(&header(2, 0, 3, 10));
        table.record(&header(2, 3, 4, 13));
        let all: Vec<ProducerSummary> = table.iter().collect();
        assert_eq!(
            all,
            vec![ProducerSummary {
                producer_id: 7,
                epoch: 2,
                last_sequence: 6
            }],
            "one producer, its epoch and the last sequence written"
        );
    }

    #[test]
    fn in_sequence_batches_append_and_retries_are_duplicates() {
        let mut table = ProducerStateTable::default();
        let first = header(0, 0, 3, 10);
        assert_eq!(table.check(&first), Ok(SequenceCheck::Append));
        table.record(&first);
        assert_eq!(
            table.check(&header(0, 0, 3, 99)),
            Ok(SequenceCheck::Duplicate {
                first_offset: 10,
                last_offset: 12
            })
        );
        assert_eq!(table.check(&header(0, 3, 1, 13)), Ok(SequenceCheck::Append));
        assert_eq!(
            table.check(&header(0, 5, 1, 13)),
            Err(ResponseError::OutOfOrderSequenceNumber.code()),
            "a gap"
        );
        table.check_invariants();
    }

    #[test]
    fn epochs_fence_and_reset_sequences() {
        let mut table = ProducerStateTable::default();
        table.record(&header(1, 0, 2, 0));
        assert_eq!(
            table.check(&header(0, 2, 1, 2)),
            Err(ResponseError::InvalidProducerEpoch.code())
        );
        assert_eq!(
            table.check(&header(2, 5, 1, 2)),
            Err(ResponseError::OutOfOrderSequenceNumber.code())
        );
        assert_eq!(table.check(&header(2, 0, 1, 2)), Ok(SequenceCheck::Append));
        table.record(&header(2, 0, 1, 2));
        assert_eq!(table.check(&header(2, 1, 1, 3)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_truncation_forgets() {
        let mut table = ProducerStateTable::default();
        for i in 0..7 {
            table.record(&header(0, i, 1, i64::from(i)));
        }
        assert_eq!(
            table.check(&header(0, 1, 1, 50)),
            Err(ResponseError::OutOfOrderSequenceNumber.code()),
            "too old to be recognised"
        );
        assert_eq!(
            table.check(&header(0, 6, 1, 50)),
            Ok(SequenceCheck::Duplicate {
                first_offset: 6,
                last_offset: 6
            })
        );
        table.truncate_to(6);
        assert_eq!(
            table.check(&header(0, 6, 1, 6)),
            Ok(SequenceCheck::Append),
            "the truncated batch may be written again"
        );
        table.check_invariants();
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(sequence_add(i32::MAX, 1), 0);
        assert_eq!(sequence_add(i32::MAX - 1, 3), 1);
    }
}
