//! librdkafka consumer-group members whose ownership is logged from their
//! own rebalance callbacks, in one global order, and the checks run on
//! that log: no partition is owned by two members at once, and every
//! record is consumed by a member that owned its partition then. So no
//! record is consumed by two members of one generation.

use super::message_unless_tolerated;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const PARTITIONS: i32 = 6;
/// The strategy name that stands for the KIP-848 consumer protocol.
pub const KIP_848: &str = "consumer-protocol";
/// Records per phase per partition.
pub const PER_PARTITION: usize = 50;
/// Records per phase.
pub const PHASE: usize = PARTITIONS as usize * PER_PARTITION;

#[derive(Debug, Clone)]
pub enum Event {
    Assign(usize, Vec<i32>),
    Revoke(usize, Vec<i32>),
    Consumed(usize, i32, i64),
    /// What the test did at this point, for the history of a failure.
    Note(String),
}

pub type Log = Arc<Mutex<Vec<Event>>>;

pub struct Tracker {
    id: usize,
    log: Log,
}

/// `GROUPS_DEBUG=1` prints librdkafka's group-coordination log.
impl ClientContext for Tracker {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        if std::env::var("GROUPS_DEBUG").is_ok() {
            eprintln!("[{}] {level:?} {fac}: {log_message}", self.id);
        }
    }
}

impl ConsumerContext for Tracker {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |tpl: &rdkafka::TopicPartitionList| {
            tpl.elements()
                .iter()
                .map(|e| e.partition())
                .collect::<Vec<_>>()
        };
        let event = match rebalance {
            Rebalance::Assign(tpl) => Event::Assign(self.id, partitions(tpl)),
            Rebalance::Revoke(tpl) => Event::Revoke(self.id, partitions(tpl)),
            Rebalance::Error(e) => panic!("rebalance error at consumer {}: {e}", self.id),
        };
        self.log.lock().unwrap().push(event);
    }
}

pub type Member = BaseConsumer<Tracker>;

/// Produces `PER_PARTITION` records to each partition; values are unique
/// ("phase-partition-i").
pub fn produce_phase(bootstrap: &str, topic: &str, phase: usize) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for partition in 0..PARTITIONS {
        for i in 0..PER_PARTITION {
            let value = format!("{phase}-{partition}-{i}");
            producer
                .send(
                    BaseRecord::<(), _>::to(topic)
                        .partition(partition)
                        .payload(&value),
                )
                .expect("queued");
        }
    }
    // Long enough for a killed leader's partitions to move (its broker
    // session times out after 9 s).
    producer
        .flush(Duration::from_secs(60))
        .expect("every record acknowledged");
}

/// A member of `group` subscribed to `topic`, auto-committing every
/// 200 ms, logging to `log` as member `id`.
pub fn member(
    bootstrap: &str,
    topic: &str,
    group: &str,
    strategy: &str,
    id: usize,
    log: &Log,
) -> Member {
    let mut config = ClientConfig::new();
    if std::env::var("GROUPS_DEBUG").is_ok() {
        config
            .set("debug", "cgrp")
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("client.id", format!("member-{id}"));
    if strategy == KIP_848 {
        // The broker assigns (KIP-848): no client-side strategy or
        // session settings, librdkafka refuses them with this protocol.
        config.set("group.protocol", "consumer");
    } else {
        config
            .set("partition.assignment.strategy", strategy)
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "300");
    }
    let consumer: Member = config
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "200")
        .set("auto.offset.reset", "earliest")
        .create_with_context(Tracker {
            id,
            log: log.clone(),
        })
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribed");
    consumer
}

/// Polls every member until `want` distinct records were consumed overall.
/// Consumer errors with one of the `tolerated` codes are passed over (a
/// killed broker's connections fail); any other fails the test.
pub fn consume_until(
    members: &mut [(usize, Member)],
    log: &Log,
    seen: &mut BTreeSet<(i32, i64)>,
    want: usize,
    tolerated: &[RDKafkaErrorCode],
) {
    // KIP-848 members receive freed partitions on their next heartbeat
    // (5 s apart by default), so a rebalance takes a few of them; a
    // coordinator fail-over waits out the dead node's session (9 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < want {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {want} records in time",
            seen.len()
        );
        for (id, consumer) in members.iter_mut() {
            poll_once(*id, consumer, log, seen, tolerated);
        }
    }
}

/// One short poll of one member, logging what it consumed.
pub fn poll_once(
    id: usize,
    consumer: &Member,
    log: &Log,
    seen: &mut BTreeSet<(i32, i64)>,
    tolerated: &[RDKafkaErrorCode],
) {
    let Some(result) = consumer.poll(Duration::from_millis(20)) else {
        return;
    };
    let Some(message) = message_unless_tolerated(result, tolerated, &format!("member {id}")) else {
        return;
    };
    log.lock()
        .unwrap()
        .push(Event::Consumed(id, message.partition(), message.offset()));
    seen.insert((message.partition(), message.offset()));
}

/// Replays the log: at every point each partition has at most one owner,
/// and every record was consumed by its partition's owner. Returns how
/// many records were consumed again (after an ownership change) and who
/// owns each partition at the end. A violation panics with the history of
/// the partition concerned.
pub fn check_ownership(log: &Log) -> (usize, BTreeMap<i32, usize>) {
    let events = log.lock().unwrap().clone();
    let mut owner: BTreeMap<i32, usize> = BTreeMap::new();
    let mut duplicates = 0;
    let mut consumed: BTreeSet<(i32, i64)> = BTreeSet::new();
    let fail = |at: usize, p: i32, what: String| -> ! {
        panic!(
            "{what}\nhistory of partition {p} up to there:\n{}",
            history(&events[..=at], p)
        )
    };
    for (at, event) in events.iter().enumerate() {
        match event {
            Event::Assign(id, partitions) => {
                for &p in partitions {
                    if let Some(other) = owner.insert(p, *id) {
                        if other != *id {
                            fail(
                                at,
                                p,
                                format!("partition {p} assigned to {id} while {other} owns it"),
                            );
                        }
                    }
                }
            }
            Event::Revoke(id, partitions) => {
                for &p in partitions {
                    if owner.remove(&p) != Some(*id) {
                        fail(at, p, format!("{id} revoked {p} it did not own"));
                    }
                }
            }
            Event::Consumed(id, p, offset) => {
                if owner.get(p) != Some(id) {
                    fail(
                        at,
                        *p,
                        format!("{id} consumed {p}@{offset} without owning it"),
                    );
                }
                if !consumed.insert((*p, *offset)) {
                    duplicates += 1; // redelivered after an ownership change
                }
            }
            Event::Note(_) => {}
        }
    }
    (duplicates, owner)
}

/// Whether, by the log, every partition is owned and `members` distinct
/// members own them.
pub fn all_owned_by(log: &Log, members: usize) -> bool {
    let (_, owners) = check_ownership(log);
    let owning: BTreeSet<usize> = owners.values().copied().collect();
    owners.len() == PARTITIONS as usize && owning.len() == members
}

/// The events that concern partition `p`, one a line; runs of records one
/// member consumed in a row as one line.
fn history(events: &[Event], p: i32) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut run: Option<(usize, i64, i64)> = None;
    let flush = |run: &mut Option<(usize, i64, i64)>, lines: &mut Vec<String>| {
        if let Some((id, first, last)) = run.take() {
            lines.push(format!("  member {id} consumed {p}@{first}..={last}"));
        }
    };
    for event in events {
        match event {
            Event::Consumed(id, q, offset) if *q == p => match &mut run {
                Some((run_id, _, last)) if run_id == id => *last = *offset,
                _ => {
                    flush(&mut run, &mut lines);
                    run = Some((*id, *offset, *offset));
                }
            },
            Event::Consumed(..) => {}
            Event::Assign(id, partitions) if partitions.contains(&p) => {
                flush(&mut run, &mut lines);
                lines.push(format!("  member {id} assigned {partitions:?}"));
            }
            Event::Revoke(id, partitions) if partitions.contains(&p) => {
                flush(&mut run, &mut lines);
                lines.push(format!("  member {id} revoked {partitions:?}"));
            }
            Event::Assign(..) | Event::Revoke(..) => {}
            Event::Note(note) => {
                flush(&mut run, &mut lines);
                lines.push(format!("  -- {note}"));
            }
        }
    }
    flush(&mut run, &mut lines);
    lines.join("\n")
}

/// Commits what `consumer` consumed, synchronously, retrying while the
/// coordinator is unavailable.
pub fn commit(id: usize, consumer: &Member) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => return,
            // Auto-commit already stored everything consumed.
            Err(rdkafka::error::KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => return,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "member {id}: no commit within 30 s: {e}"
                );
                eprintln!("member {id}: commit failed ({e}); retrying");
                consumer.poll(Duration::from_millis(100));
            }
        }
    }
}

/// Commits what was consumed, then leaves (drop closes: LeaveGroup).
pub fn close(id: usize, consumer: Member) {
    commit(id, &consumer);
    drop(consumer);
}

/// What the broker holds for `group` on partitions `0..PARTITIONS` of
/// `topic`: OffsetFetch from a client that does not join the group.
pub fn committed_offsets(bootstrap: &str, group: &str, topic: &str) -> Vec<Offset> {
    let checker: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("checker");
    let mut wanted = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        wanted.add_partition(topic, p);
    }
    let committed = checker
        .committed_offsets(wanted, Duration::from_secs(30))
        .expect("OffsetFetch");
    let mut offsets: Vec<(i32, Offset)> = committed
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect();
    offsets.sort_by_key(|(p, _)| *p);
    offsets.into_iter().map(|(_, offset)| offset).collect()
}

/// Three members of `group` share the `PARTITIONS` partitions of `topic`,
/// one leaves, one joins, each phase of records consumed once by the
/// partition's owner; then all commit and leave, and a restarted member
/// resumes at the committed offsets.
pub fn share_leave_join_resume(bootstrap: &str, topic: &str, group: &str, strategy: &str) {
    let log: Log = Arc::default();
    let started = Instant::now();

    // Three members share six partitions.
    produce_phase(bootstrap, topic, 0);
    let mut members: Vec<(usize, Member)> = (0..3)
        .map(|id| (id, member(bootstrap, topic, group, strategy, id, &log)))
        .collect();
    let mut seen = BTreeSet::new();
    consume_until(&mut members, &log, &mut seen, PHASE, &[]);

    // One leaves; the others take over its partitions.
    let (id, leaving) = members.remove(2);
    close(id, leaving);
    produce_phase(bootstrap, topic, 1);
    consume_until(&mut members, &log, &mut seen, 2 * PHASE, &[]);

    // One joins.
    members.push((3, member(bootstrap, topic, group, strategy, 3, &log)));
    produce_phase(bootstrap, topic, 2);
    consume_until(&mut members, &log, &mut seen, 3 * PHASE, &[]);
    let (duplicates, _) = check_ownership(&log);

    // Everyone commits and leaves; a restarted consumer resumes at the
    // committed offsets: it reads the next phase and nothing older.
    for (id, consumer) in members.drain(..) {
        close(id, consumer);
    }
    produce_phase(bootstrap, topic, 3);
    let restarted_log: Log = Arc::default();
    let mut restarted = vec![(
        9,
        member(bootstrap, topic, group, strategy, 9, &restarted_log),
    )];
    let mut resumed = BTreeSet::new();
    consume_until(&mut restarted, &restarted_log, &mut resumed, PHASE, &[]);
    let committed_end = 3 * PER_PARTITION as i64;
    for (p, offset) in &resumed {
        assert!(
            *offset >= committed_end,
            "{strategy}: restarted consumer re-read {p}@{offset} below the committed {committed_end}"
        );
    }
    let (_, consumer) = restarted.pop().unwrap();
    close(9, consumer);
    assert_eq!(
        committed_offsets(bootstrap, group, topic),
        vec![Offset::Offset(4 * PER_PARTITION as i64); PARTITIONS as usize],
        "{strategy}: everything consumed is committed"
    );
    check_ownership(&restarted_log);
    eprintln!(
        "{strategy}: {} records, {duplicates} redelivered across ownership changes, {:?}",
        seen.len() + resumed.len(),
        started.elapsed()
    );
}
