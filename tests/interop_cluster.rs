//! Three `seedlog serve` processes as one cluster on 127.0.0.1, against
//! librdkafka: a replicated topic takes 20,000 acks=all records, gives them
//! back in order, loses the leader of partition 0 to SIGKILL, takes 5,000
//! more and gives back all 25,000. And a leader stopped with SIGTERM hands
//! its partitions over before it exits.

mod common;

use common::{
    consume_from_beginning, consume_from_beginning_tolerating, create_replicated_topic,
    expected_values, free_port_base, produce_values, scratch_dir, Broker,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const NODES: u16 = 3;
const TOPIC: &str = "replicated";
const PARTITIONS: i32 = 6;
const REPLICATION: i32 = 3;
const FIRST_RECORDS: usize = 20_000;
const SECOND_RECORDS: usize = 5_000;
/// Each record is written once even when librdkafka retries across the
/// fail-over, so that reading back can demand exact sequences.
const PRODUCER_SETTINGS: &[(&str, &str)] = &[("enable.idempotence", "true")];

/// The nodes by id, all voters, node N in rack az-N.
struct Cluster {
    nodes: BTreeMap<i32, Broker>,
}

impl Cluster {
    fn start(dir: &std::path::Path) -> Cluster {
        let base = free_port_base(NODES);
        let controller = |id: u16| format!("127.0.0.1:{}", base + 100 + id - 1);
        let voters: Vec<String> = (1..=NODES)
            .map(|id| format!("{id}@{}", controller(id)))
            .collect();
        let voters = voters.join(",");
        let nodes = (1..=NODES)
            .map(|id| {
                let node_id = id.to_string();
                let rack = format!("az-{id}");
                let controller = controller(id);
                let args = [
                    "--node-id",
                    node_id.as_str(),
                    "--rack",
                    rack.as_str(),
                    "--controller-listen",
                    controller.as_str(),
                    "--voters",
                    voters.as_str(),
                ];
                let broker = Broker::start(&dir.join(format!("node-{id}")), &args);
                (i32::from(id), broker)
            })
            .collect();
        Cluster { nodes }
    }

    /// Takes node `id` out of the cluster, to stop or kill it.
    fn take(&mut self, id: i32) -> Broker {
        self.nodes
            .remove(&id)
            .unwrap_or_else(|| panic!("node {id} is one of ours and still running"))
    }

    /// SIGTERM to each node in turn, waiting for each to exit.
    fn stop(self) {
        for (_, node) in self.nodes {
            node.stop();
        }
    }

    /// Every running node's client listener.
    fn bootstrap(&self) -> String {
        let listeners: Vec<&str> = self.nodes.values().map(|b| b.bootstrap.as_str()).collect();
        listeners.join(",")
    }
}

fn metadata(bootstrap: &str, topic: Option<&str>) -> Option<Metadata> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("metadata client");
    consumer.fetch_metadata(topic, Duration::from_secs(5)).ok()
}

/// How long a cluster may take to form and lead a new topic.
const STARTUP_WAIT: Duration = Duration::from_secs(60);
/// How soon after a node's controlled shutdown the others show the
/// handover: well below the broker session timeout (9 s) that fences a node
/// that died without one.
const HANDOVER_WAIT: Duration = Duration::from_secs(3);

/// Polls Metadata until `ready` returns something, or panics after
/// `within` with the last answer.
fn wait_for<T>(
    what: &str,
    bootstrap: &str,
    topic: Option<&str>,
    within: Duration,
    ready: impl Fn(&Metadata) -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let answer = metadata(bootstrap, topic);
        if let Some(found) = answer.as_ref().and_then(&ready) {
            return found;
        }
        if Instant::now() > deadline {
            let brokers = answer.as_ref().map(|m| m.brokers().len());
            panic!("no {what} within {within:?}; last Metadata had {brokers:?} brokers");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The leader of every partition of `TOPIC`, once each has one.
fn leaders(metadata: &Metadata) -> Option<Vec<i32>> {
    let topic = metadata.topics().iter().find(|t| t.name() == TOPIC)?;
    if topic.error().is_some() || topic.partitions().len() != PARTITIONS as usize {
        return None;
    }
    let mut partitions: Vec<_> = topic.partitions().iter().collect();
    partitions.sort_by_key(|p| p.id());
    partitions
        .iter()
        .map(|p| (p.error().is_none() && p.leader() >= 0).then_some(p.leader()))
        .collect()
}

/// A started cluster with `TOPIC` created and led everywhere: the
/// cluster, its bootstrap list and the leader of each partition.
fn cluster_with_topic(dir: &std::path::Path) -> (Cluster, String, Vec<i32>) {
    let cluster = Cluster::start(dir);
    let bootstrap = cluster.bootstrap();
    wait_for(
        "cluster of 3 brokers",
        &bootstrap,
        None,
        STARTUP_WAIT,
        |m| (m.brokers().len() == usize::from(NODES)).then_some(()),
    );
    create_replicated_topic(&bootstrap, TOPIC, PARTITIONS, REPLICATION);
    let leaders = wait_for(
        "leader for every partition",
        &bootstrap,
        Some(TOPIC),
        STARTUP_WAIT,
        leaders,
    );
    (cluster, bootstrap, leaders)
}

fn produce(bootstrap: &str, range: std::ops::Range<usize>) {
    produce_values(bootstrap, TOPIC, PARTITIONS, range, PRODUCER_SETTINGS);
}

/// Reads all of `0..records` back, passing over librdkafka's reports of a
/// stopped broker.
fn assert_read_back(bootstrap: &str, records: usize) {
    let dead_broker = [RDKafkaErrorCode::BrokerTransportFailure];
    assert_eq!(
        consume_from_beginning_tolerating(bootstrap, TOPIC, PARTITIONS, records, &dead_broker),
        expected_values(PARTITIONS, records)
    );
}

#[test]
fn three_nodes_keep_every_acked_record_when_a_leader_is_killed() {
    let dir = scratch_dir("interop-cluster");
    let (mut cluster, bootstrap, leaders) = cluster_with_topic(&dir);
    produce(&bootstrap, 0..FIRST_RECORDS);
    assert_eq!(
        consume_from_beginning(&bootstrap, TOPIC, PARTITIONS, FIRST_RECORDS),
        expected_values(PARTITIONS, FIRST_RECORDS)
    );

    let victim = leaders[0];
    cluster.take(victim).kill();
    let all = FIRST_RECORDS + SECOND_RECORDS;
    produce(&bootstrap, FIRST_RECORDS..all);
    assert_read_back(&bootstrap, all);
    cluster.stop();
}

#[test]
fn a_leader_stopped_with_sigterm_hands_its_partitions_over_before_it_exits() {
    let dir = scratch_dir("interop-cluster-sigterm");
    let (mut cluster, bootstrap, leaders) = cluster_with_topic(&dir);
    produce(&bootstrap, 0..SECOND_RECORDS);

    let victim = leaders[0];
    cluster.take(victim).stop();
    // A killed node would lead until its broker session expired (9 s);
    // a controlled shutdown hands over before the process exits.
    let survivors = cluster.bootstrap();
    wait_for(
        "partition 0 led elsewhere and the stopped node in no ISR",
        &survivors,
        Some(TOPIC),
        HANDOVER_WAIT,
        |m| {
            let topic = m.topics().iter().find(|t| t.name() == TOPIC)?;
            let handed_over = topic.partitions().iter().all(|p| {
                let led_elsewhere = p.id() != 0 || (p.leader() >= 0 && p.leader() != victim);
                led_elsewhere && !p.isr().contains(&victim)
            });
            handed_over.then_some(())
        },
    );
    let all = SECOND_RECORDS * 2;
    produce(&survivors, SECOND_RECORDS..all);
    assert_read_back(&survivors, all);
    cluster.stop();
}
