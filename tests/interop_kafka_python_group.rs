//! A kafka-python consumer group (classic protocol; kafka-python has no
//! KIP-848) on a three-node cluster, eager `range` and
//! `cooperative-sticky`: two members share an RF 3 topic's partitions and
//! commit, one leaves and the other takes over, and a restarted member
//! resumes at the committed offsets (`tests/python/kafka_python_group.py`
//! checks ownership and resumption). What kafka-python committed is then
//! read back by librdkafka (OffsetFetch from outside the group).

mod common;

use common::cluster::{create_led_topic, Cluster};
use common::groups::{committed_offsets, PARTITIONS};
use common::{kafka_python_available, run_python, scratch_dir};
use rdkafka::Offset;

const PER_PHASE: usize = 50;

fn run(strategy: &str) {
    if !kafka_python_available() {
        return;
    }
    let dir = scratch_dir(&format!("interop-kafka-python-group-{strategy}"));
    let cluster = Cluster::start_ready(&dir, &["--group-initial-rebalance-delay-ms", "300"]);
    let bootstrap = cluster.bootstrap();
    let topic = "py-group";
    create_led_topic(&bootstrap, topic, PARTITIONS, 3);
    let group = format!("py-group-{strategy}");
    let stdout = run_python(
        "kafka_python_group.py",
        &[
            &bootstrap,
            topic,
            &group,
            &PARTITIONS.to_string(),
            &PER_PHASE.to_string(),
            strategy,
        ],
    );
    let records = 3 * PER_PHASE * PARTITIONS as usize;
    assert!(
        stdout
            .trim()
            .starts_with(&format!("ok consumed={records} ")),
        "{strategy}: {stdout}"
    );
    assert_eq!(
        committed_offsets(&bootstrap, &group, topic),
        vec![Offset::Offset(3 * PER_PHASE as i64); PARTITIONS as usize],
        "{strategy}: kafka-python committed everything it consumed"
    );
    eprintln!("{strategy}: {}", stdout.trim());
    // Killed on drop: the cluster's clean stop is not under test here.
    drop(cluster);
}

#[test]
fn kafka_python_range_group_on_a_cluster_shares_partitions_and_resumes_from_commits() {
    run("range");
}

#[test]
fn kafka_python_cooperative_sticky_group_on_a_cluster_shares_partitions_and_resumes_from_commits() {
    run("cooperative-sticky");
}
