//! The same seed gives a byte-identical trace (equal FNV-1a hashes); a
//! different seed gives a different one.

use seedlog_sim::{run, RunOptions, Scenario};

#[test]
fn same_seed_same_trace_different_seed_different_trace() {
    let scenario = Scenario::resolve("flaky-network").expect("scenario");
    let options = RunOptions {
        keep_trace: true,
        ..RunOptions::default()
    };
    let a = run(&scenario, 42, &options);
    let b = run(&scenario, 42, &options);
    assert_eq!(a.trace_hash, b.trace_hash, "same seed, same trace hash");
    assert_eq!(a.trace, b.trace, "same seed, same trace lines");
    assert!(a.trace_lines > 1_000, "the run did something");
    let c = run(&scenario, 43, &options);
    assert_ne!(a.trace_hash, c.trace_hash, "another seed, another trace");
}

/// The same for a three-broker KRaft cluster: peer connections, elections,
/// replication and fail-over replay byte for byte.
#[test]
fn a_three_broker_cluster_replays_byte_for_byte() {
    let scenario = Scenario::resolve("leader-crash").expect("scenario");
    assert_eq!(scenario.topology.brokers.len(), 3);
    let options = RunOptions {
        keep_trace: true,
        ..RunOptions::default()
    };
    let a = run(&scenario, 7, &options);
    let b = run(&scenario, 7, &options);
    assert_eq!(a.trace_hash, b.trace_hash, "same seed, same trace hash");
    assert_eq!(a.trace, b.trace, "same seed, same trace lines");
    let cluster = a.cluster.as_ref().expect("a cluster report");
    assert!(cluster.setup_ms.is_some(), "the cluster came up");
    assert!(cluster.stats.peer_requests > 1_000, "brokers talked");
    assert!(a.stats.acked > 100, "the workload ran");
    let c = run(&scenario, 8, &options);
    assert_ne!(a.trace_hash, c.trace_hash, "another seed, another trace");
}
