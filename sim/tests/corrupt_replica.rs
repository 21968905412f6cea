//! A deliberately broken invariant (issue #4): the test-only
//! `corrupt_replica` fault silently rewrites one committed batch of one
//! follower. `log_matching` must catch it at the event that did it, the
//! same run without that fault must pass, and the shrinker must cut the
//! random schedule down to that one fault.

use seedlog_sim::scenario::FaultKind;
use seedlog_sim::shrink::{shrink, with_schedule};
use seedlog_sim::{run, RunOptions, Scenario};
use std::path::Path;

/// Materializes six faults (five random, the corruption); found by
/// `seedlog sim shrink scenarios/test-only/corrupt-replica.toml --seed N`
/// for N in 1..8.
const SEED: u64 = 3;

fn corrupt_replica() -> Scenario {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/test-only/corrupt-replica.toml");
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn log_matching_catches_the_corrupted_replica_at_the_fault() {
    let s = corrupt_replica();
    let report = run(&s, SEED, &RunOptions::default());
    let first = report.violations.first().expect("the corruption is caught");
    assert_eq!(first.checker, "log_matching", "{:?}", report.violations);
    let fault = s
        .faults
        .schedule
        .iter()
        .find(|f| f.kind == FaultKind::CorruptReplica);
    let at_ms = fault.expect("scheduled").at_ms;
    // Times in the report count from the start of the run, the schedule's
    // from the end of cluster setup: caught within the fault's millisecond
    // or so, never before it.
    assert!(first.at_ms >= at_ms, "not before the fault: {first:?}");

    // Without the corruption the same seed and random faults pass: the
    // checker fires on the corruption, not on the faults around it.
    let others: Vec<_> = report
        .schedule
        .iter()
        .filter(|f| f.kind != FaultKind::CorruptReplica)
        .cloned()
        .collect();
    assert!(others.len() >= 3, "random faults around it: {others:?}");
    let clean = run(&with_schedule(&s, others), SEED, &RunOptions::default());
    assert!(clean.passed(), "{:?}", clean.violations);
}

#[test]
fn the_shrinker_cuts_the_schedule_down_to_the_corruption() {
    let s = corrupt_replica();
    let shrunk = shrink(&s, SEED, &[], None, 50).expect("it fails, so it shrinks");
    assert_eq!(shrunk.checker, "log_matching");
    assert!(shrunk.faults_before >= 4, "{}", shrunk.faults_before);
    assert_eq!(
        shrunk.faults_after, 1,
        "{:?}",
        shrunk.scenario.faults.schedule
    );
    assert_eq!(
        shrunk.scenario.faults.schedule[0].kind,
        FaultKind::CorruptReplica
    );
    // The written scenario fails the same way on its own.
    let again = run(&shrunk.scenario, SEED, &RunOptions::default());
    assert_eq!(
        again.violations.first().map(|v| v.checker.as_str()),
        Some("log_matching")
    );
}
