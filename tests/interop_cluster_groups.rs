//! librdkafka consumer groups on a three-node cluster: the group's
//! coordinator is the leader of its `__consumer_offsets` partition, which
//! is replicated to all three nodes, and the topic's six partitions are
//! led by all three. Three members share them, one leaves, one joins, no
//! record is consumed by two members of one generation (the ownership log
//! of `common::groups`), and a restarted consumer resumes at its committed
//! offsets: eager `range`, `cooperative-sticky` and the KIP-848 consumer
//! protocol.

mod common;

use common::cluster::{create_led_topic, Cluster};
use common::groups::{share_leave_join_resume, KIP_848, PARTITIONS};
use common::scratch_dir;

fn run(strategy: &str) {
    let dir = scratch_dir(&format!("interop-cluster-groups-{strategy}"));
    let cluster = Cluster::start_ready(&dir, &["--group-initial-rebalance-delay-ms", "300"]);
    let bootstrap = cluster.bootstrap();
    create_led_topic(&bootstrap, "t", PARTITIONS, 3);
    share_leave_join_resume(&bootstrap, "t", &format!("group-{strategy}"), strategy);
    // Killed on drop: the cluster's clean stop is not under test here.
    drop(cluster);
}

#[test]
fn eager_range_group_on_a_cluster_shares_partitions_and_resumes_from_commits() {
    run("range");
}

#[test]
fn cooperative_sticky_group_on_a_cluster_shares_partitions_and_resumes_from_commits() {
    run("cooperative-sticky");
}

#[test]
fn kip_848_group_on_a_cluster_shares_partitions_and_resumes_from_commits() {
    run(KIP_848);
}
