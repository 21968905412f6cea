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
