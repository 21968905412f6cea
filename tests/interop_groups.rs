//! librdkafka consumer groups (classic protocol, eager `range` and
//! `cooperative-sticky`) against a real `seedlog serve`: three members share
//! six partitions, one leaves, one joins, and a restarted consumer resumes
//! at its committed offsets.
//!
//! Ownership is checked from the clients' own rebalance callbacks, logged in
//! one global order: no partition is owned by two members at once, and
//! every record is consumed by a member that owned its partition then. So
//! no record is consumed by two members of one generation.

mod common;

use common::{create_topic, scratch_dir, Broker};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Offset;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 6;
/// `run`'s strategy name for the KIP-848 consumer protocol.
const KIP_848: &str = "consumer-protocol";
/// Records per phase per partition.
const PER_PARTITION: usize = 50;

#[derive(Debug, Clone)]
enum Event {
    Assign(usize, Vec<i32>),
    Revoke(usize, Vec<i32>),
    Consumed(usize, i32, i64),
}

type Log = Arc<Mutex<Vec<Event>>>;

struct Tracker {
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

type Member = BaseConsumer<Tracker>;

/// Produces `PER_PARTITION` records to each partition; values are unique
/// ("phase-partition-i").
fn produce(bootstrap: &str, topic: &str, phase: usize) {
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
    producer
        .flush(Duration::from_secs(30))
        .expect("every record acknowledged");
}

fn member(bootstrap: &str, group: &str, strategy: &str, id: usize, log: &Log) -> Member {
    let mut config = ClientConfig::new();
    if std::env::var("GROUPS_DEBUG").is_ok() {
        config.set("debug", "cgrp");
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
    consumer.subscribe(&["t"]).expect("subscribed");
    consumer
}

/// Polls every member until `want` distinct records were consumed overall.
fn consume_until(
    members: &mut [(usize, Member)],
    log: &Log,
    seen: &mut BTreeSet<(i32, i64)>,
    want: usize,
) {
    // KIP-848 members receive freed partitions on their next heartbeat
    // (5 s apart by default), so a rebalance takes a few of them.
    let deadline = Instant::now() + Duration::from_secs(45);
    while seen.len() < want {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {want} records in time",
            seen.len()
        );
        for (id, consumer) in members.iter_mut() {
            if let Some(result) = consumer.poll(Duration::from_millis(20)) {
                let message = result.expect("no consumer error");
                log.lock().unwrap().push(Event::Consumed(
                    *id,
                    message.partition(),
                    message.offset(),
                ));
                seen.insert((message.partition(), message.offset()));
            }
        }
    }
}

/// Replays the log: at every point each partition has at most one owner,
/// and every record was consumed by its partition's owner.
fn check_ownership(log: &Log) -> usize {
    let events = log.lock().unwrap().clone();
    let mut owner: BTreeMap<i32, usize> = BTreeMap::new();
    let mut duplicates = 0;
    let mut consumed: BTreeSet<(i32, i64)> = BTreeSet::new();
    for event in events {
        match event {
            Event::Assign(id, partitions) => {
                for p in partitions {
                    if let Some(other) = owner.insert(p, id) {
                        assert_eq!(
                            other, id,
                            "partition {p} assigned to {id} while {other} owns it"
                        );
                    }
                }
            }
            Event::Revoke(id, partitions) => {
                for p in partitions {
                    assert_eq!(
                        owner.remove(&p),
                        Some(id),
                        "{id} revoked {p} it did not own"
                    );
                }
            }
            Event::Consumed(id, p, offset) => {
                assert_eq!(
                    owner.get(&p),
                    Some(&id),
                    "{id} consumed {p}@{offset} without owning it"
                );
                if !consumed.insert((p, offset)) {
                    duplicates += 1; // redelivered after an ownership change
                }
            }
        }
    }
    duplicates
}

fn close(id: usize, consumer: Member) {
    // Commit what was consumed, then leave (drop closes: LeaveGroup).
    for _ in 0..50 {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => break,
            // Auto-commit already stored everything consumed.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => break,
            Err(e) => {
                eprintln!("member {id}: commit failed ({e}); retrying");
                consumer.poll(Duration::from_millis(100));
            }
        }
    }
    drop(consumer);
}

fn run(strategy: &str) {
    let dir = scratch_dir(&format!("interop-groups-{strategy}"));
    let broker = Broker::start(&dir, &["--group-initial-rebalance-delay-ms", "300"]);
    let bootstrap = broker.bootstrap.clone();
    create_topic(&bootstrap, "t", PARTITIONS);
    let group = format!("group-{strategy}");
    let log: Log = Arc::default();
    let started = Instant::now();

    // Three members share six partitions.
    produce(&bootstrap, "t", 0);
    let mut members: Vec<(usize, Member)> = (0..3)
        .map(|id| (id, member(&bootstrap, &group, strategy, id, &log)))
        .collect();
    let mut seen = BTreeSet::new();
    let phase = PARTITIONS as usize * PER_PARTITION;
    consume_until(&mut members, &log, &mut seen, phase);

    // One leaves; the others take over its partitions.
    let (id, leaving) = members.remove(2);
    close(id, leaving);
    produce(&bootstrap, "t", 1);
    consume_until(&mut members, &log, &mut seen, 2 * phase);

    // One joins.
    members.push((3, member(&bootstrap, &group, strategy, 3, &log)));
    produce(&bootstrap, "t", 2);
    consume_until(&mut members, &log, &mut seen, 3 * phase);
    let duplicates = check_ownership(&log);

    // Everyone commits and leaves; a restarted consumer resumes at the
    // committed offsets: it reads the next phase and nothing older.
    for (id, consumer) in members.drain(..) {
        close(id, consumer);
    }
    produce(&bootstrap, "t", 3);
    let restarted_log: Log = Arc::default();
    let mut restarted = vec![(9, member(&bootstrap, &group, strategy, 9, &restarted_log))];
    let mut resumed = BTreeSet::new();
    consume_until(&mut restarted, &restarted_log, &mut resumed, phase);
    let committed_end = 3 * PER_PARTITION as i64;
    for (p, offset) in &resumed {
        assert!(
            *offset >= committed_end,
            "{strategy}: restarted consumer re-read {p}@{offset} below the committed {committed_end}"
        );
    }
    let (_, consumer) = restarted.pop().unwrap();
    close(9, consumer);
    // What the broker holds for the group: OffsetFetch from a client that
    // does not join it.
    let checker: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &group)
        .create()
        .expect("checker");
    let mut wanted = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        wanted.add_partition("t", p);
    }
    let committed = checker
        .committed_offsets(wanted, Duration::from_secs(10))
        .expect("OffsetFetch");
    for element in committed.elements() {
        assert_eq!(
            element.offset(),
            Offset::Offset(4 * PER_PARTITION as i64),
            "{strategy}: everything consumed is committed"
        );
    }
    drop(checker);
    check_ownership(&restarted_log);
    eprintln!(
        "{strategy}: {} records, {duplicates} redelivered across ownership changes, {:?}",
        seen.len() + resumed.len(),
        started.elapsed()
    );
    broker.stop();
}

#[test]
fn eager_range_group_shares_partitions_and_resumes_from_commits() {
    run("range");
}

#[test]
fn cooperative_sticky_group_shares_partitions_and_resumes_from_commits() {
    run("cooperative-sticky");
}

#[test]
fn kip_848_consumer_protocol_group_shares_partitions_and_resumes_from_commits() {
    run(KIP_848);
}
