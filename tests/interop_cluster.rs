//! Three `seedlog serve` processes as one cluster on 127.0.0.1, against
//! librdkafka: a replicated topic takes 20,000 acks=all records, gives them
//! back in order, loses the leader of partition 0 to SIGKILL, takes 5,000
//! more and gives back all 25,000. And a leader stopped with SIGTERM hands
//! its partitions over before it exits. A node restarted without a quorum
//! holds its clients until it is unfenced.

mod common;

use common::cluster::{create_led_topic, read_response, send_request, wait_for, Cluster};
use common::{
    consume_from_beginning, consume_from_beginning_tolerating, expected_values, produce_values,
    scratch_dir,
};
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

const TOPIC: &str = "replicated";
const PARTITIONS: i32 = 6;
const REPLICATION: i32 = 3;
const FIRST_RECORDS: usize = 20_000;
const SECOND_RECORDS: usize = 5_000;
/// Each record is written once even when librdkafka retries across the
/// fail-over, so that reading back can demand exact sequences.
const PRODUCER_SETTINGS: &[(&str, &str)] = &[("enable.idempotence", "true")];

/// How soon after a node's controlled shutdown the others show the
/// handover: well below the broker session timeout (9 s) that fences a node
/// that died without one.
const HANDOVER_WAIT: Duration = Duration::from_secs(3);

/// A started cluster with `TOPIC` created and led everywhere: the
/// cluster, its bootstrap list and the leader of each partition.
fn cluster_with_topic(dir: &std::path::Path) -> (Cluster, String, Vec<i32>) {
    let cluster = Cluster::start_ready(dir, &[]);
    let bootstrap = cluster.bootstrap();
    let leaders = create_led_topic(&bootstrap, TOPIC, PARTITIONS, REPLICATION);
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

/// As a Kafka broker enables request processing only once it is unfenced,
/// a node takes client connections only once it has caught up with the
/// metadata log and the controller unfenced it: restarted while the quorum
/// is gone, it leaves a client's request unanswered (the connection waits
/// in the listener's backlog, nothing is refused), and answers that same
/// request once a second voter is back.
#[test]
fn a_node_restarted_without_a_quorum_holds_clients_until_it_is_unfenced() {
    use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestKind};
    const VERSION: i16 = 0;
    let dir = scratch_dir("interop-cluster-held");
    let mut cluster = Cluster::start_restartable(&dir, &[]);
    for id in [2, 3, 1] {
        cluster.kill(id);
    }
    cluster.restart(1);
    let listener = cluster.listeners()[&1].clone();
    let mut stream = std::net::TcpStream::connect(&listener).expect("the port is bound");
    let request = RequestKind::ApiVersions(ApiVersionsRequest::default());
    send_request(&mut stream, ApiKey::ApiVersions, VERSION, &request).expect("sent");
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout set");
    let early = read_response::<ApiVersionsResponse>(&mut stream, ApiKey::ApiVersions, VERSION);
    assert!(
        early.is_err(),
        "a node with no quorum answered a client: {early:?}"
    );

    cluster.restart(2);
    stream
        .set_read_timeout(Some(common::cluster::STARTUP_WAIT))
        .expect("timeout set");
    let answer: ApiVersionsResponse = read_response(&mut stream, ApiKey::ApiVersions, VERSION)
        .expect("answered once the quorum is back");
    assert_eq!(answer.error_code, 0);
    assert!(answer
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16));
    cluster.stop();
}
