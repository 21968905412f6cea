//! End-of-run checks over the client history and the final log (names from
//! INVARIANTS.md, following Jepsen's Kafka checker).
//!
//! The final log is read after the liveness phase healed every fault, so
//! "never read" is a definite verdict, not a timeout.

use crate::history::{ConsumerEvent, History, SendId, SendOutcome, Tp};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Findings {
    pub violations: Vec<(&'static str, String)>,
    /// Values found at two or more offsets. Expected without idempotence
    /// (a retried send whose first attempt landed); a statistic then.
    pub duplicates: u64,
    /// Those values, for judging them when idempotence is on.
    pub duplicate_values: Vec<Vec<u8>>,
    /// acks=1 writes acknowledged and absent from the healed log, when
    /// that is allowed (see `check_history`).
    pub acks1_lost: u64,
}

/// What a run's clients were promised, which the history is judged by.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryRules {
    /// In a cluster an acks=1 write is acknowledged by the leader alone and
    /// a fail-over may truncate it away, as Kafka promises no more; such
    /// writes are then counted (`acks1_lost`), not judged by `lost_write`,
    /// and left out of `nonmonotonic_send` (a lost write's offset is
    /// reused). On a standalone broker every acknowledged write is judged.
    pub leader_acks_may_be_lost: bool,
    /// Producers are idempotent: `nonmonotonic_send` follows send order,
    /// not acknowledgement order (see there).
    pub idempotent: bool,
}

/// Checks `history` against `log`, the final content of every partition
/// that could be read. A partition absent from `log` (offline at the end of
/// a cluster run, which the liveness checkers report) is not judged for
/// reads and lost writes: what it holds is unknown, not empty.
pub fn check_history(
    history: &History,
    log: &BTreeMap<Tp, Vec<(i64, Vec<u8>)>>,
    rules: HistoryRules,
) -> Findings {
    let mut f = Findings::default();
    let first = |f: &mut Findings, checker: &'static str, message: String| {
        // One message per checker is enough to act on; count the rest.
        if let Some(existing) = f.violations.iter_mut().find(|(c, _)| *c == checker) {
            if !existing.1.ends_with(" more)") {
                existing.1.push_str(" (and more)");
            }
        } else {
            f.violations.push((checker, message));
        }
    };

    // inconsistent_offsets: the final log and every read agree per offset.
    let mut at_offset: BTreeMap<(&Tp, i64), &[u8]> = BTreeMap::new();
    for (tp, records) in log {
        let mut expected = records.first().map(|(o, _)| *o);
        for (offset, value) in records {
            if Some(*offset) != expected {
                first(
                    &mut f,
                    "inconsistent_offsets",
                    format!(
                        "{}-{}: final log jumps to offset {offset} (expected {expected:?})",
                        tp.0, tp.1
                    ),
                );
            }
            expected = Some(offset + 1);
            at_offset.insert((tp, *offset), value);
        }
    }
    for event in &history.consumer_events {
        if let ConsumerEvent::Read {
            consumer,
            tp,
            offset,
            value,
            ..
        } = event
        {
            if !log.contains_key(tp) {
                continue;
            }
            match at_offset.get(&(tp, *offset)) {
                Some(v) if *v == value.as_slice() => {}
                Some(v) => first(
                    &mut f,
                    "inconsistent_offsets",
                    format!(
                        "{}-{} offset {offset}: consumer {consumer} read {:?}, the final log holds {:?}",
                        tp.0,
                        tp.1,
                        String::from_utf8_lossy(value),
                        String::from_utf8_lossy(v)
                    ),
                ),
                None => first(
                    &mut f,
                    "consistent_read",
                    format!(
                        "{}-{} offset {offset}: consumer {consumer} read {:?}, no longer in the log",
                        tp.0,
                        tp.1,
                        String::from_utf8_lossy(value)
                    ),
                ),
            }
        }
    }

    // Where each value ended up.
    let mut offsets_of: BTreeMap<&[u8], Vec<(&Tp, i64)>> = BTreeMap::new();
    for (tp, records) in log {
        for (offset, value) in records {
            offsets_of
                .entry(value.as_slice())
                .or_default()
                .push((tp, *offset));
        }
    }
    f.duplicate_values = offsets_of
        .iter()
        .filter(|(_, at)| at.len() > 1)
        .map(|(v, _)| v.to_vec())
        .collect();
    f.duplicates = f.duplicate_values.len() as u64;
    for value in offsets_of.keys() {
        if !history.value_owner.contains_key(*value) {
            first(
                &mut f,
                "inconsistent_offsets",
                format!(
                    "the log holds {:?}, which no producer sent",
                    String::from_utf8_lossy(value)
                ),
            );
        }
    }

    // lost_write: acknowledged with acks=1/all, absent from the final log.
    for send in &history.sends {
        let SendOutcome::Acked { offset } = send.outcome else {
            continue;
        };
        assert_ne!(send.acks, 0, "acks=0 sends are never acknowledged");
        let tp = (send.topic.clone(), send.partition);
        if !log.contains_key(&tp) {
            continue;
        }
        if rules.leader_acks_may_be_lost && send.acks == 1 {
            let landed = send
                .values
                .iter()
                .all(|v| offsets_of.contains_key(v.as_slice()));
            if !landed {
                f.acks1_lost += 1;
            }
            continue;
        }
        for (i, value) in send.values.iter().enumerate() {
            let expected_offset = offset + i as i64;
            match offsets_of.get(value.as_slice()) {
                None => first(
                    &mut f,
                    "lost_write",
                    format!(
                        "send {} ({:?}, acks={}) was acknowledged at {}-{}:{expected_offset} at {} ms, but the healed log does not hold it",
                        send.id,
                        String::from_utf8_lossy(value),
                        send.acks,
                        tp.0,
                        tp.1,
                        send.complete_ms.unwrap_or(0)
                    ),
                ),
                Some(found) if !found.iter().any(|(t, o)| **t == tp && *o == expected_offset) => {
                    first(
                        &mut f,
                        "inconsistent_offsets",
                        format!(
                            "send {} was acknowledged at {}-{}:{expected_offset}, the log holds its value at {:?}",
                            send.id,
                            tp.0,
                            tp.1,
                            found.iter().map(|(_, o)| *o).collect::<Vec<_>>()
                        ),
                    )
                }
                Some(_) => {}
            }
        }
    }

    // nonmonotonic_send: per producer and partition, in acknowledgement
    // order, offsets increase.
    let mut last_acked: BTreeMap<(u32, &str, i32), (i64, u64)> = BTreeMap::new();
    // With idempotence Kafka promises more, and differently: a producer's
    // batches to a partition land in the order it sent them, while their
    // acknowledgements may come out of that order (a retry's first attempt
    // landed and its answer was lost: the retry is acknowledged as a
    // duplicate, at its original offset, after later batches were).
    let mut order: Vec<SendId> = history.ack_order.clone();
    if rules.idempotent {
        order.sort_unstable();
    }
    let verb = if rules.idempotent {
        "sent"
    } else {
        "acknowledged"
    };
    let acked = order
        .iter()
        .map(|id| {
            let send = history.send(*id);
            let SendOutcome::Acked { offset } = send.outcome else {
                unreachable!("ack_order holds acknowledged sends only")
            };
            (send, offset)
        })
        .filter(|(send, _)| !(rules.leader_acks_may_be_lost && send.acks == 1))
        // A send re-sequenced under a new producer id has no order with
        // the sends of the old one.
        .filter(|(send, _)| !(rules.idempotent && send.resequenced));
    for (send, offset) in acked {
        let key = (send.producer, send.topic.as_str(), send.partition);
        if let Some((previous, previous_id)) = last_acked.get(&key) {
            if offset <= *previous {
                first(
                    &mut f,
                    "nonmonotonic_send",
                    format!(
                        "producer {} {}-{}: send {} ({verb} after send {previous_id}) is at offset {offset}, not above {previous_id}'s {previous}",
                        send.producer, send.topic, send.partition, send.id
                    ),
                );
            }
        }
        last_acked.insert(key, (offset, send.id));
    }

    // nonmonotonic_poll / poll_skip: a consumer's reads of a partition go up
    // one offset at a time, unless it seeked.
    let mut last_read: BTreeMap<(u32, &Tp), Option<i64>> = BTreeMap::new();
    for event in &history.consumer_events {
        match event {
            ConsumerEvent::Seek { consumer, tp, .. } => {
                last_read.insert((*consumer, tp), None);
            }
            ConsumerEvent::Read {
                consumer,
                tp,
                offset,
                ..
            } => {
                let previous = last_read.insert((*consumer, tp), Some(*offset)).flatten();
                if let Some(previous) = previous {
                    if *offset <= previous {
                        first(
                            &mut f,
                            "nonmonotonic_poll",
                            format!(
                                "consumer {consumer} {}-{}: read offset {offset} after {previous}",
                                tp.0, tp.1
                            ),
                        );
                    } else if *offset != previous + 1 {
                        first(
                            &mut f,
                            "poll_skip",
                            format!(
                                "consumer {consumer} {}-{}: read offset {offset} after {previous}",
                                tp.0, tp.1
                            ),
                        );
                    }
                }
            }
        }
    }
    f
}
