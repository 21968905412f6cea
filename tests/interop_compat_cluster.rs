//! The compatibility matrix: each client against a three-node cluster
//! (topics with 3 replicas), each capability in a small test of its own
//! with a fresh cluster. The README's compatibility table names these
//! tests; cells proved elsewhere name those tests.
//!
//! Clients: the `rdkafka` crate (librdkafka), kcat (librdkafka's command
//! line), confluent-kafka (librdkafka for Python) and kafka-python (pure
//! Python), the Python ones through `tests/python/compat.py`. What a client
//! produces is read back by librdkafka, and what it consumes librdkafka
//! produced, so each direction is checked against a reference.

mod common;

use common::cluster::{
    agreed_coordinator, create_led_topic, leaders, wait_for, Cluster, STARTUP_WAIT,
};
use common::groups::committed_offsets;
use common::{
    admin_client, compressed_value, confluent_kafka_available, consume_from_beginning,
    expected_values, kafka_python_available, kcat, kcat_available, produce_compressed,
    produce_values, record_value, run_python, scratch_dir, CODECS,
};
use rdkafka::Offset;
use std::collections::BTreeSet;
use std::time::Duration;

const PARTITIONS: i32 = 6;
const RECORDS: usize = 600;
/// Records per codec in the compression cases.
const COMPRESSED: usize = 100;

/// A fresh cluster (`extra_args` to every node) with each of `topics`
/// created with 3 replicas and led everywhere; the cluster and its
/// bootstrap list.
fn cluster_with(name: &str, extra_args: &[&str], topics: &[(&str, i32)]) -> (Cluster, String) {
    let dir = scratch_dir(&format!("interop-compat-{name}"));
    let cluster = Cluster::start_ready(&dir, extra_args);
    let bootstrap = cluster.bootstrap();
    for (topic, partitions) in topics {
        create_led_topic(&bootstrap, topic, *partitions, 3);
    }
    (cluster, bootstrap)
}

/// `compressed_value(codec k, 0..COMPRESSED)` in partition k, read back
/// by librdkafka.
fn assert_compressed_readable(bootstrap: &str, topic: &str) {
    let values = consume_from_beginning(
        bootstrap,
        topic,
        CODECS.len() as i32,
        COMPRESSED * CODECS.len(),
    );
    for (partition, codec) in CODECS.iter().enumerate() {
        let expected: Vec<String> = (0..COMPRESSED)
            .map(|i| compressed_value(codec, i))
            .collect();
        assert!(
            values[partition] == expected,
            "{codec}: librdkafka reads every record, in order ({} of {COMPRESSED})",
            values[partition].len()
        );
    }
}

// --- the rdkafka crate ----------------------------------------------------
// Produce and consume: interop_cluster.rs; consumer groups:
// interop_cluster_groups.rs and interop_cluster_group_failover.rs.

#[test]
fn rdkafka_admin_creates_describes_configures_and_deletes_a_topic() {
    use rdkafka::admin::{AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
    let (_cluster, bootstrap) = cluster_with("rdkafka-admin", &[], &[]);
    let (admin, runtime) = admin_client(&bootstrap);
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let topic = "administered";
    let new = NewTopic::new(topic, 3, TopicReplication::Fixed(3)).set("retention.ms", "123456");
    for result in runtime
        .block_on(admin.create_topics(&[new], &options))
        .expect("CreateTopics answered")
    {
        result.expect("topic created");
    }

    // Described (Metadata): three partitions, each led, three replicas in sync.
    wait_for(
        "3 partitions, each led, with 3 replicas in sync",
        &bootstrap,
        Some(topic),
        STARTUP_WAIT,
        |m| {
            leaders(m, topic, 3)?;
            let t = m.topics().iter().find(|t| t.name() == topic)?;
            t.partitions()
                .iter()
                .all(|p| p.replicas().len() == 3 && p.isr().len() == 3)
                .then_some(())
        },
    );

    // Nodes other than the controller learn of a new topic a little later
    // and answer UNKNOWN_TOPIC_OR_PARTITION meanwhile.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let retention = loop {
        let described = runtime
            .block_on(admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &options))
            .expect("DescribeConfigs answered");
        match &described[0] {
            Ok(resource) => {
                break resource
                    .get("retention.ms")
                    .and_then(|entry| entry.value.clone())
            }
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "DescribeConfigs of the topic: {e:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(retention.as_deref(), Some("123456"));

    for result in runtime
        .block_on(admin.delete_topics(&[topic], &options))
        .expect("DeleteTopics answered")
    {
        result.expect("topic deleted");
    }
    // Metadata for every topic (a request for this one would create it again).
    wait_for(
        "the topic gone from Metadata",
        &bootstrap,
        None,
        STARTUP_WAIT,
        |m| m.topics().iter().all(|t| t.name() != topic).then_some(()),
    );
}

#[test]
fn rdkafka_round_trips_every_codec() {
    let (_cluster, bootstrap) = cluster_with("rdkafka-compression", &[], &[("z", 4)]);
    for (partition, codec) in CODECS.iter().enumerate() {
        produce_compressed(&bootstrap, "z", codec, partition as i32, COMPRESSED);
    }
    assert_compressed_readable(&bootstrap, "z");
}

// --- kcat -----------------------------------------------------------------

#[test]
fn kcat_produces_and_consumes() {
    if !kcat_available() {
        return;
    }
    let (_cluster, bootstrap) = cluster_with(
        "kcat-produce-consume",
        &[],
        &[("by-kcat", PARTITIONS), ("for-kcat", PARTITIONS)],
    );
    // kcat produces (key:value lines), librdkafka reads.
    for partition in 0..PARTITIONS {
        let lines: Vec<String> = (0..RECORDS)
            .filter(|i| i % PARTITIONS as usize == partition as usize)
            .map(|i| format!("{i}:{}", record_value(i)))
            .collect();
        kcat::produce(&bootstrap, "by-kcat", partition, &lines, &["-K", ":"]);
    }
    assert_eq!(
        consume_from_beginning(&bootstrap, "by-kcat", PARTITIONS, RECORDS),
        expected_values(PARTITIONS, RECORDS)
    );

    // librdkafka produces, kcat reads: offsets, keys and values.
    produce_values(&bootstrap, "for-kcat", PARTITIONS, 0..RECORDS, &[]);
    for partition in 0..PARTITIONS {
        let read = kcat::consume(&bootstrap, "for-kcat", partition, "%o %k %s\\n");
        let expected: Vec<String> = (0..RECORDS)
            .filter(|i| i % PARTITIONS as usize == partition as usize)
            .enumerate()
            .map(|(offset, i)| format!("{offset} {i} {}", record_value(i)))
            .collect();
        assert!(
            read == expected,
            "partition {partition}: kcat read {} of {} records as produced",
            read.len(),
            expected.len()
        );
    }
}

#[test]
fn kcat_balanced_consumers_share_partitions_commit_and_resume() {
    if !kcat_available() {
        return;
    }
    // Both members join within the group's first rebalance delay, so the
    // first generation has both: each reads its partitions to the end and
    // exits (-e).
    let (cluster, bootstrap) = cluster_with(
        "kcat-group",
        &["--group-initial-rebalance-delay-ms", "1000"],
        &[("kcat-group", PARTITIONS)],
    );
    let (topic, group) = ("kcat-group", "kcat-group");
    produce_values(&bootstrap, topic, PARTITIONS, 0..RECORDS, &[]);
    // The coordinator ready first (the first FindCoordinator of a cluster
    // creates __consumer_offsets), so neither member waits for it.
    agreed_coordinator(&cluster, group, STARTUP_WAIT);
    let first = kcat::spawn_group_member(&bootstrap, group, topic);
    let second = kcat::spawn_group_member(&bootstrap, group, topic);
    let (first, second) = (kcat::wait_group(first), kcat::wait_group(second));
    let partitions_of = |records: &[(i32, i64, String)]| -> BTreeSet<i32> {
        records.iter().map(|(p, _, _)| *p).collect()
    };
    let (mine, theirs) = (partitions_of(&first), partitions_of(&second));
    assert!(
        !mine.is_empty() && !theirs.is_empty() && mine.is_disjoint(&theirs),
        "the two members share the partitions: {mine:?} and {theirs:?}"
    );
    let mut read: Vec<(i32, i64, String)> = first.into_iter().chain(second).collect();
    read.sort();
    let expected: Vec<(i32, i64, String)> = expected_values(PARTITIONS, RECORDS)
        .into_iter()
        .enumerate()
        .flat_map(|(p, values)| {
            values
                .into_iter()
                .enumerate()
                .map(move |(offset, value)| (p as i32, offset as i64, value))
        })
        .collect();
    assert!(read == expected, "every record read once, as produced");
    let per_partition = (RECORDS / PARTITIONS as usize) as i64;
    assert_eq!(
        committed_offsets(&bootstrap, group, topic),
        vec![Offset::Offset(per_partition); PARTITIONS as usize],
        "kcat committed what it read"
    );

    // A member started again resumes at the commits: only what is new.
    produce_values(&bootstrap, topic, PARTITIONS, RECORDS..2 * RECORDS, &[]);
    let resumed = kcat::wait_group(kcat::spawn_group_member(&bootstrap, group, topic));
    assert_eq!(resumed.len(), RECORDS, "the new records, once each");
    assert!(
        resumed
            .iter()
            .all(|(_, offset, _)| *offset >= per_partition),
        "nothing below the committed offsets is read again"
    );
}

#[test]
fn kcat_lists_cluster_metadata() {
    if !kcat_available() {
        return;
    }
    let (_cluster, bootstrap) = cluster_with("kcat-metadata", &[], &[("listed", PARTITIONS)]);
    // The node kcat asks may not have applied the new topic yet (it then
    // answers LEADER_NOT_AVAILABLE, as Kafka's brokers do); kcat does not
    // retry, a user would.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let listing = loop {
        let listing = kcat::run(&["-L", "-b", &bootstrap, "-t", "listed"]);
        if listing.contains("topic \"listed\" with 6 partitions:") {
            break listing;
        }
        assert!(std::time::Instant::now() < deadline, "{listing}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(listing.contains(" 3 brokers:\n"), "{listing}");
    let partitions: Vec<&str> = listing
        .lines()
        .filter(|l| l.trim_start().starts_with("partition "))
        .collect();
    assert_eq!(partitions.len(), PARTITIONS as usize, "{listing}");
    for line in partitions {
        let (_, replicas) = line.split_once("replicas: ").expect("replicas listed");
        let (replicas, isrs) = replicas.split_once(", isrs: ").expect("isrs listed");
        assert_eq!(replicas.split(',').count(), 3, "{line}");
        assert_eq!(isrs.trim().split(',').count(), 3, "{line}");
    }
}

#[test]
fn kcat_round_trips_every_codec() {
    if !kcat_available() {
        return;
    }
    let (_cluster, bootstrap) = cluster_with("kcat-compression", &[], &[("kz", 4)]);
    for (partition, codec) in CODECS.iter().enumerate() {
        let lines: Vec<String> = (0..COMPRESSED)
            .map(|i| compressed_value(codec, i))
            .collect();
        kcat::produce(&bootstrap, "kz", partition as i32, &lines, &["-z", codec]);
        let read = kcat::consume_values(&bootstrap, "kz", partition as i32);
        let expected: Vec<(i64, String)> = lines
            .into_iter()
            .enumerate()
            .map(|(o, v)| (o as i64, v))
            .collect();
        assert!(read == expected, "{codec}: kcat reads back what it wrote");
    }
    assert_compressed_readable(&bootstrap, "kz");
}

// --- the Python clients ---------------------------------------------------

/// `compat.py CLIENT CASE BOOTSTRAP TOPIC ARGS...`; its "ok" line.
fn compat(client: &str, case: &str, bootstrap: &str, topic: &str, args: &[&str]) -> String {
    let mut all = vec![client, case, bootstrap, topic];
    all.extend_from_slice(args);
    let stdout = run_python("compat.py", &all);
    let line = stdout.trim().to_string();
    assert!(line.starts_with("ok"), "{client} {case}: {line}");
    eprintln!("{client} {case}: {line}");
    line
}

/// The client produces, librdkafka reads; librdkafka produces, the client
/// reads.
fn python_produces_and_consumes(client: &str) {
    let (_cluster, bootstrap) = cluster_with(
        &format!("{client}-produce-consume"),
        &[],
        &[("by-python", PARTITIONS), ("for-python", PARTITIONS)],
    );
    let (partitions, records) = (PARTITIONS.to_string(), RECORDS.to_string());
    compat(
        client,
        "produce",
        &bootstrap,
        "by-python",
        &[&partitions, &records],
    );
    assert_eq!(
        consume_from_beginning(&bootstrap, "by-python", PARTITIONS, RECORDS),
        expected_values(PARTITIONS, RECORDS)
    );
    produce_values(&bootstrap, "for-python", PARTITIONS, 0..RECORDS, &[]);
    compat(
        client,
        "consume",
        &bootstrap,
        "for-python",
        &[&partitions, &records],
    );
}

fn python_admin(client: &str) {
    let (_cluster, bootstrap) = cluster_with(&format!("{client}-admin"), &[], &[]);
    compat(client, "admin", &bootstrap, "administered", &[]);
    // librdkafka, asking any node, agrees the topic is gone (once every
    // node has applied the deletion).
    wait_for(
        "the topic gone from Metadata",
        &bootstrap,
        None,
        Duration::from_secs(10),
        |m| {
            m.topics()
                .iter()
                .all(|t| t.name() != "administered")
                .then_some(())
        },
    );
}

fn python_compression(client: &str) {
    let (_cluster, bootstrap) = cluster_with(&format!("{client}-compression"), &[], &[("pz", 4)]);
    compat(
        client,
        "compression",
        &bootstrap,
        "pz",
        &[&COMPRESSED.to_string()],
    );
    assert_compressed_readable(&bootstrap, "pz");
}

/// Two members share the partitions, one leaves, a restarted one resumes
/// at the commits (checked by compat.py); librdkafka reads the commits.
fn python_group(client: &str, strategy: &str) {
    const PER_PHASE: usize = 50;
    let (_cluster, bootstrap) = cluster_with(
        &format!("{client}-group-{strategy}"),
        &["--group-initial-rebalance-delay-ms", "300"],
        &[("py-group", common::groups::PARTITIONS)],
    );
    let group = format!("{client}-{strategy}");
    let partitions = common::groups::PARTITIONS.to_string();
    let per_phase = PER_PHASE.to_string();
    let line = compat(
        client,
        "group",
        &bootstrap,
        "py-group",
        &[&group, &partitions, &per_phase, strategy],
    );
    let records = 3 * PER_PHASE * common::groups::PARTITIONS as usize;
    assert!(
        line.starts_with(&format!("ok consumed={records} ")),
        "{line}"
    );
    assert_eq!(
        committed_offsets(&bootstrap, &group, "py-group"),
        vec![Offset::Offset(3 * PER_PHASE as i64); common::groups::PARTITIONS as usize],
        "{client} {strategy}: everything consumed is committed"
    );
}

#[test]
fn confluent_kafka_produces_and_consumes() {
    if confluent_kafka_available() {
        python_produces_and_consumes("confluent-kafka");
    }
}

#[test]
fn confluent_kafka_range_group_shares_partitions_and_resumes_from_commits() {
    if confluent_kafka_available() {
        python_group("confluent-kafka", "range");
    }
}

#[test]
fn confluent_kafka_kip_848_group_shares_partitions_and_resumes_from_commits() {
    if confluent_kafka_available() {
        python_group("confluent-kafka", "consumer");
    }
}

#[test]
fn confluent_kafka_admin_creates_describes_configures_and_deletes_a_topic() {
    if confluent_kafka_available() {
        python_admin("confluent-kafka");
    }
}

#[test]
fn confluent_kafka_round_trips_every_codec() {
    if confluent_kafka_available() {
        python_compression("confluent-kafka");
    }
}

/// kafka-python has no KIP-848; classic groups with eager and cooperative
/// rebalancing (its KIP-429 support, since 3.0).
#[test]
fn kafka_python_range_group_shares_partitions_and_resumes_from_commits() {
    if kafka_python_available() {
        python_group("kafka-python", "range");
    }
}

#[test]
fn kafka_python_cooperative_sticky_group_shares_partitions_and_resumes_from_commits() {
    if kafka_python_available() {
        python_group("kafka-python", "cooperative-sticky");
    }
}

#[test]
fn kafka_python_produces_and_consumes() {
    if kafka_python_available() {
        python_produces_and_consumes("kafka-python");
    }
}

#[test]
fn kafka_python_admin_creates_describes_configures_and_deletes_a_topic() {
    if kafka_python_available() {
        python_admin("kafka-python");
    }
}

#[test]
fn kafka_python_round_trips_every_codec() {
    if kafka_python_available() {
        python_compression("kafka-python");
    }
}
