//! End-of-run checks over the client history and the final log (names from
//! INVARIANTS.md, following Jepsen's Kafka checker).
//!
//! The final log is read after the liveness phase healed every fault, so
//! "never read" is a definite verdict, not a timeout.

use crate::history::{ConsumerEvent, History, SendId, SendOp, SendOutcome, Tp};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

/// Value -> where the final log holds it.
type ValueMap<'a> = HashMap<&'a [u8], Vec<(&'a Tp, i64)>, BuildHasherDefault<DefaultHasher>>;

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
///
/// Offsets below a partition's `log_start` (deleted by retention before the
/// final read) or below what the history forgot (`History::judged_from`)
/// are not judged: nothing holds them any more. Without retention both
/// are 0.
///
/// `nonmonotonic_poll` and `poll_skip` are judged as reads happen
/// ([`PollOrder`]), and so is `nonmonotonic_send` without idempotence
/// ([`SendOrder`], in acknowledgement order): the history may forget
/// what they looked at.
pub fn check_history(
    history: &History,
    log: &BTreeMap<Tp, Vec<(i64, Vec<u8>)>>,
    log_start: &BTreeMap<Tp, i64>,
    rules: HistoryRules,
) -> Findings {
    let judged_from = |tp: &Tp| {
        history
            .judged_from(tp)
            .max(log_start.get(tp).copied().unwrap_or(0))
    };
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
    for (tp, records) in log {
        let mut expected = records.first().map(|(o, _)| *o);
        for (offset, _) in records {
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
        }
    }
    // The final read goes up one offset at a time: each partition's records
    // are sorted by offset, searched rather than copied into a map.
    let at_offset = |tp: &Tp, offset: i64| -> Option<&[u8]> {
        let records = log.get(tp)?;
        let i = records.binary_search_by_key(&offset, |(o, _)| *o).ok()?;
        Some(records[i].1.as_slice())
    };
    for event in &history.consumer_events {
        if let ConsumerEvent::Read {
            consumer,
            tp,
            offset,
            value,
            ..
        } = event
        {
            if !log.contains_key(tp) || *offset < judged_from(tp) {
                continue;
            }
            match at_offset(tp, *offset) {
                Some(v) if v == value.as_slice() => {}
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

    // Where each value ended up. Hashed (with fixed keys: nothing here
    // depends on the seed of a process); what is reported is sorted, so
    // the messages are those of an ordered map.
    let mut offsets_of: ValueMap<'_> = HashMap::default();
    offsets_of.reserve(log.values().map(Vec::len).sum());
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
    f.duplicate_values.sort_unstable();
    f.duplicates = f.duplicate_values.len() as u64;
    let mut unowned: Vec<&[u8]> = offsets_of
        .keys()
        .copied()
        .filter(|v| history.owner_of(v).is_none())
        .collect();
    unowned.sort_unstable();
    for value in unowned {
        first(
            &mut f,
            "inconsistent_offsets",
            format!(
                "the log holds {:?}, which no producer sent",
                String::from_utf8_lossy(value)
            ),
        );
    }

    // lost_write: acknowledged with acks=1/all, absent from the final log.
    for send in history.sends() {
        let SendOutcome::Acked { offset } = send.outcome else {
            continue;
        };
        assert_ne!(send.acks, 0, "acks=0 sends are never acknowledged");
        let tp = (send.topic.clone(), send.partition);
        if !log.contains_key(&tp) || offset < judged_from(&tp) {
            // Retention may have deleted some of its records.
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

    // single_producer_epoch: no (producer id, epoch) was given twice,
    // whichever brokers and controllers handed them out.
    let mut holders: BTreeMap<(i64, i16), &crate::history::ProducerGrant> = BTreeMap::new();
    for grant in &history.producer_grants {
        let key = (grant.producer_id, grant.producer_epoch);
        if let Some(earlier) = holders.insert(key, grant) {
            first(
                &mut f,
                "single_producer_epoch",
                format!(
                    "producer id {} epoch {} went to producer {} at {} ms and again to producer {} at {} ms",
                    key.0, key.1, earlier.producer, earlier.at_ms, grant.producer, grant.at_ms
                ),
            );
        }
    }

    // nonmonotonic_send with idempotence: Kafka promises more, and
    // differently: a producer's batches to a partition land in the order
    // it sent them, while their acknowledgements may come out of that
    // order (a retry's first attempt landed and its answer was lost: the
    // retry is acknowledged as a duplicate, at its original offset, after
    // later batches were). So in send order, here; without idempotence in
    // acknowledgement order, as the acks arrive.
    if rules.idempotent {
        let mut order: Vec<SendId> = history.ack_order.clone();
        order.sort_unstable();
        let mut sends = SendOrder::default();
        for id in order {
            if let Some(message) = sends.acked(history.send(id), rules) {
                first(&mut f, "nonmonotonic_send", message);
            }
        }
    }
    f
}

/// `nonmonotonic_send`: per producer and partition, offsets increase, in
/// acknowledgement order (or send order with idempotence, see
/// `check_history`). Fed one acknowledged send at a time.
#[derive(Debug, Default)]
pub struct SendOrder {
    /// (producer, partition) -> topic -> (offset, send) of the last one.
    /// Nested so that an ack looks its topic up by reference.
    last_acked: BTreeMap<(u32, i32), BTreeMap<String, (i64, SendId)>>,
}

impl SendOrder {
    /// Judges the next acknowledged send; the violation's message if any.
    pub fn acked(&mut self, send: &SendOp, rules: HistoryRules) -> Option<String> {
        let SendOutcome::Acked { offset } = send.outcome else {
            unreachable!("only acknowledged sends are ordered")
        };
        if rules.leader_acks_may_be_lost && send.acks == 1 {
            return None;
        }
        // A send re-sequenced under a new producer id has no order with
        // the sends of the old one.
        if rules.idempotent && send.resequenced {
            return None;
        }
        let verb = if rules.idempotent {
            "sent"
        } else {
            "acknowledged"
        };
        let topics = self
            .last_acked
            .entry((send.producer, send.partition))
            .or_default();
        let previous = match topics.get_mut(send.topic.as_str()) {
            Some(last) => std::mem::replace(last, (offset, send.id)),
            None => {
                topics.insert(send.topic.clone(), (offset, send.id));
                return None;
            }
        };
        let (previous, previous_id) = previous;
        (offset <= previous).then(|| {
            format!(
                "producer {} {}-{}: send {} ({verb} after send {previous_id}) is at offset {offset}, not above {previous_id}'s {previous}",
                send.producer, send.topic, send.partition, send.id
            )
        })
    }
}

/// `nonmonotonic_poll` / `poll_skip`: a consumer's reads of a partition go
/// up one offset at a time, unless it seeked. Fed the consumer events in
/// the order they happen.
#[derive(Debug, Default)]
pub struct PollOrder {
    /// consumer -> partition -> the offset it read last (None after a
    /// seek). Nested so that a read looks its partition up by reference.
    last_read: BTreeMap<u32, BTreeMap<Tp, Option<i64>>>,
}

impl PollOrder {
    /// Judges the next consumer event: (checker, message) if it breaks one.
    pub fn event(&mut self, event: &ConsumerEvent) -> Option<(&'static str, String)> {
        let (consumer, tp, read) = match event {
            ConsumerEvent::Seek { consumer, tp, .. } => (consumer, tp, None),
            ConsumerEvent::Read {
                consumer,
                tp,
                offset,
                ..
            } => (consumer, tp, Some(*offset)),
        };
        let reads = self.last_read.entry(*consumer).or_default();
        let previous = match reads.get_mut(tp) {
            Some(last) => std::mem::replace(last, read),
            None => {
                reads.insert(tp.clone(), read);
                None
            }
        };
        let (offset, previous) = (read?, previous?);
        let checker = if offset <= previous {
            "nonmonotonic_poll"
        } else if offset != previous + 1 {
            "poll_skip"
        } else {
            return None;
        };
        let message = format!(
            "consumer {consumer} {}-{}: read offset {offset} after {previous}",
            tp.0, tp.1
        );
        Some((checker, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::ProducerGrant;

    fn grant(producer: u32, producer_id: i64, producer_epoch: i16) -> ProducerGrant {
        ProducerGrant {
            producer,
            producer_id,
            producer_epoch,
            at_ms: u64::from(producer) * 10,
        }
    }

    fn judge(grants: &[ProducerGrant]) -> Vec<(&'static str, String)> {
        let mut history = History::default();
        history.producer_grants = grants.to_vec();
        check_history(
            &history,
            &BTreeMap::new(),
            &BTreeMap::new(),
            HistoryRules::default(),
        )
        .violations
    }

    #[test]
    fn single_producer_epoch_flags_an_id_and_epoch_given_twice() {
        let distinct = [
            grant(0, 0, 0),
            grant(1, 1000, 0),
            grant(0, 1, 0),
            grant(2, 0, 1),
        ];
        assert!(judge(&distinct).is_empty(), "ids or epochs differ");
        let twice = [grant(0, 7, 0), grant(1, 1000, 0), grant(2, 7, 0)];
        let found = judge(&twice);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "single_producer_epoch");
        assert!(
            found[0].1.contains("producer id 7 epoch 0"),
            "{}",
            found[0].1
        );
    }
}
