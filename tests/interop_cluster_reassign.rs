//! Partition reassignment (KIP-455) on a real 3-node cluster over TCP on
//! 127.0.0.1: a topic on brokers {1, 2} moves to {2, 3} through the
//! `seedlog topics reassign` CLI while librdkafka produces with acks=all;
//! the move completes (ListPartitionReassignments empty, Metadata shows
//! {2, 3}), broker 1 deletes its copy, and a consumer reads every acked
//! record exactly once, in order.

mod common;

use common::cli::{fails, json, ok};
use common::cluster::{metadata, wait_for, Cluster, STARTUP_WAIT};
use common::{
    admin_client, consume_from_beginning, expected_values, record_value, scratch_dir,
    send_waiting_for_queue_space,
};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOPIC: &str = "moved";
const RECORDS: usize = 4_000;

/// `topics reassign TOPIC --partition 0` and `more`.
fn reassign_partition_0<'a>(more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["topics", "reassign", TOPIC, "--partition", "0"];
    args.extend_from_slice(more);
    args
}

/// The replicas Metadata shows for partition 0, once it has a leader.
fn replicas(m: &rdkafka::metadata::Metadata) -> Option<BTreeSet<i32>> {
    let topic = m.topics().iter().find(|t| t.name() == TOPIC)?;
    let p = topic.partitions().iter().find(|p| p.id() == 0)?;
    (p.error().is_none() && p.leader() >= 0).then(|| p.replicas().iter().copied().collect())
}

/// Whether any directory under `dir` holds the partition's log.
fn holds_partition_dir(dir: &Path) -> bool {
    let wanted = format!("{TOPIC}-0");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        path.is_dir() && (e.file_name().to_string_lossy() == wanted || holds_partition_dir(&path))
    })
}

#[test]
fn a_partition_moves_from_brokers_1_2_to_2_3_under_acks_all_writes() {
    let dir = scratch_dir("interop-cluster-reassign");
    let cluster = Cluster::start_ready(&dir, &[]);
    let b = cluster.bootstrap();

    let (admin, runtime) = admin_client(&b);
    let assignment: &[&[i32]] = &[&[1, 2]];
    let created = runtime
        .block_on(
            admin.create_topics(
                &[
                    NewTopic::new(TOPIC, 1, TopicReplication::Variable(assignment))
                        .set("min.insync.replicas", "2"),
                ],
                &AdminOptions::new(),
            ),
        )
        .expect("CreateTopics answered");
    for result in created {
        result.expect("topic created");
    }
    let before = wait_for(
        "a leader on {1, 2}",
        &b,
        Some(TOPIC),
        STARTUP_WAIT,
        replicas,
    );
    assert_eq!(before, BTreeSet::from([1, 2]));
    let node_1_dir = dir.join("node-1");
    // Metadata may come from a node that applied the topic before broker
    // 1 did.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !holds_partition_dir(&node_1_dir) {
        assert!(Instant::now() < deadline, "broker 1 never hosted a copy");
        std::thread::sleep(Duration::from_millis(50));
    }

    // acks=all, idempotent: a retried batch is written once.
    let acked = Arc::new(AtomicUsize::new(0));
    let producer_thread = {
        let b = b.clone();
        let acked = Arc::clone(&acked);
        std::thread::spawn(move || {
            let producer: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", &b)
                .set("acks", "all")
                .set("enable.idempotence", "true")
                .set("linger.ms", "5")
                .create()
                .expect("producer");
            for i in 0..RECORDS {
                let key = i.to_string();
                let value = record_value(i);
                let record = BaseRecord::to(TOPIC).partition(0).key(&key).payload(&value);
                send_waiting_for_queue_space(&producer, record);
                // Spread the writes over the whole move.
                if i % 100 == 99 {
                    producer
                        .flush(Duration::from_secs(60))
                        .expect("every record acknowledged");
                    acked.store(i + 1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                }
            }
            producer
                .flush(Duration::from_secs(60))
                .expect("every record acknowledged");
            acked.store(RECORDS, Ordering::SeqCst);
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < 500 {
        assert!(Instant::now() < deadline, "no writes acknowledged");
        std::thread::sleep(Duration::from_millis(20));
    }

    let started = json(&b, &reassign_partition_0(&["--replicas", "2,3"]));
    assert_eq!(started["reassigning"], true, "{started}");
    let acked_at_start = acked.load(Ordering::SeqCst);

    // In progress, the listing shows the grown set; then it empties.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_in_progress = false;
    loop {
        let listed = json(&b, &["topics", "reassignments", TOPIC]);
        let ongoing = listed.as_array().expect("a JSON list");
        if ongoing.is_empty() {
            break;
        }
        seen_in_progress = true;
        let o = &ongoing[0];
        assert_eq!(
            (o["topic"].as_str(), o["partition"].as_i64()),
            (Some(TOPIC), Some(0))
        );
        assert_eq!(o["replicas"], serde_json::json!([2, 3, 1]), "{o}");
        assert_eq!(o["adding"], serde_json::json!([3]), "{o}");
        assert_eq!(o["removing"], serde_json::json!([1]), "{o}");
        assert!(
            Instant::now() < deadline,
            "the reassignment never completed: {listed}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = wait_for(
        "replicas {2, 3}",
        &b,
        Some(TOPIC),
        Duration::from_secs(30),
        |m| replicas(m).filter(|r| *r == BTreeSet::from([2, 3])),
    );
    assert_eq!(after, BTreeSet::from([2, 3]));
    let acked_at_done = acked.load(Ordering::SeqCst);

    producer_thread
        .join()
        .expect("the producer had every record acknowledged");

    // Broker 1 stopped following and deleted its copy.
    let deadline = Instant::now() + Duration::from_secs(30);
    while holds_partition_dir(&node_1_dir) {
        assert!(Instant::now() < deadline, "broker 1 kept its copy");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Every acked record once, in order, and nothing else.
    let consumed = consume_from_beginning(&b, TOPIC, 1, RECORDS);
    assert_eq!(consumed, expected_values(1, RECORDS));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .create()
        .expect("consumer");
    let (low, high) = consumer
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!((low, high), (0, RECORDS as i64), "no duplicates, no gaps");
    eprintln!(
        "reassignment: {acked_at_start} records acked when it started, {acked_at_done} when it \
         completed (listing seen in progress: {seen_in_progress}), {RECORDS} consumed"
    );
    assert!(metadata(&b, Some(TOPIC)).is_some());

    // What the CLI says when it refuses, and its table.
    let refused = fails(&b, &reassign_partition_0(&["--replicas", "2,9"]));
    assert!(refused.contains("INVALID_REPLICA_ASSIGNMENT"), "{refused}");
    let refused = fails(&b, &reassign_partition_0(&["--cancel"]));
    assert!(refused.contains("NO_REASSIGNMENT_IN_PROGRESS"), "{refused}");
    let refused = fails(&b, &reassign_partition_0(&[]));
    assert!(
        refused.contains("--replicas"),
        "clap asks for the target: {refused}"
    );
    let table = ok(&b, &["topics", "reassignments"]);
    assert_eq!(table, "No partition reassignment in progress.\n");
    cluster.stop();
}
