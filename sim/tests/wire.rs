//! The simulator hands most messages over as values; a real cluster puts
//! every one through the codec at the version the nodes speak. A field that
//! does not travel at that version reads as its default on the other side,
//! which the simulator sees only for the share it round-trips. Here every
//! message goes through the codec, and the cluster must behave as it does
//! without: nothing the core relies on may be lost on the wire.

use seedlog_sim::scenario::RandomFaults;
use seedlog_sim::{run, RunOptions, Scenario};

/// cluster-steady-state without faults, shortened, with every message
/// (`true`) or none (`false`) through the codec.
fn steady_state(through_codec: bool) -> Scenario {
    let mut s = Scenario::resolve("cluster-steady-state").unwrap_or_else(|e| panic!("{e}"));
    s.faults.random = RandomFaults::default();
    s.phases.fault_ms = 3_000;
    s.expect.acked_sends_min = 10;
    let percent = if through_codec { 100 } else { 0 };
    s.workload.codec_roundtrip_percent = percent;
    s.workload.codec_roundtrip_percent_min = percent;
    s
}

/// Setting up a cluster (brokers register, the topics are created, every
/// partition gets a leader and a full ISR) is a chain of KRaft commits that
/// each broker must learn. Peers once spoke Fetch v17, where the replica's
/// high watermark (KIP-1166) does not travel: the KRaft leader could not
/// tell a commit was news to a follower, held its fetch for the max wait,
/// and every commit reached the other brokers ~500 ms late on a real
/// cluster, but not in the simulator, which passed the field as a value.
#[test]
fn a_cluster_sets_up_as_fast_with_every_message_through_the_codec() {
    for seed in [0, 1, 2] {
        let values = run(&steady_state(false), seed, &RunOptions::default());
        let wire = run(&steady_state(true), seed, &RunOptions::default());
        for report in [&values, &wire] {
            assert!(report.passed(), "seed {seed}: {:?}", report.violations);
        }
        assert_eq!(values.stats.codec_roundtrips, 0);
        assert_eq!(wire.stats.codec_roundtrips, wire.stats.messages);
        let setup_ms = |r: &seedlog_sim::RunReport| {
            r.cluster
                .as_ref()
                .and_then(|c| c.setup_ms)
                .expect("the cluster was set up")
        };
        let (values_ms, wire_ms) = (setup_ms(&values), setup_ms(&wire));
        // Latencies and message sizes differ a little between the runs;
        // one KRaft fetch max wait (500 ms) per commit does not.
        assert!(
            wire_ms <= values_ms + 150,
            "seed {seed}: set up in {values_ms} ms as values, {wire_ms} ms through the codec"
        );
    }
}
