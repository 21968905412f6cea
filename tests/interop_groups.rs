//! librdkafka consumer groups (classic protocol, eager `range` and
//! `cooperative-sticky`, and the KIP-848 consumer protocol) against a real
//! `seedlog serve`: three members share six partitions, one leaves, one
//! joins, and a restarted consumer resumes at its committed offsets.
//!
//! Ownership is checked from the clients' own rebalance callbacks, logged in
//! one global order (`common::groups`): no partition is owned by two members
//! at once, and every record is consumed by a member that owned its
//! partition then. So no record is consumed by two members of one
//! generation.

mod common;

use common::groups::{share_leave_join_resume, KIP_848, PARTITIONS};
use common::{create_topic, scratch_dir, Broker};

fn run(strategy: &str) {
    let dir = scratch_dir(&format!("interop-groups-{strategy}"));
    let broker = Broker::start(&dir, &["--group-initial-rebalance-delay-ms", "300"]);
    create_topic(&broker.bootstrap, "t", PARTITIONS);
    share_leave_join_resume(
        &broker.bootstrap,
        "t",
        &format!("group-{strategy}"),
        strategy,
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
