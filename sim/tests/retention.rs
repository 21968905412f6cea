//! Bounded memory over long runs (issue #4): with `disk.retention_bytes`
//! brokers delete old segments as Kafka does, and the checkers' history
//! forgets what every replica deleted, while every checker still passes
//! and the final log is judged from its log start on.

use seedlog_sim::{run, RunOptions, Scenario};
use std::path::Path;

fn retention_scenario() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/long/cluster-steady-state-retention.toml");
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn retention_deletes_segments_and_the_history_forgets_them() {
    let s = retention_scenario();
    let report = run(&s, 0, &RunOptions::default());
    assert!(report.passed(), "{:?}", report.violations);
    // Every broker deleted segments of the busiest partitions: their logs
    // no longer start at 0.
    let state = &report.cluster.as_ref().expect("a cluster").final_state;
    let moved = state
        .iter()
        .filter(|l| l.contains(" orders-") && !l.contains(" log 0.."))
        .count();
    assert!(moved >= 6, "log starts moved on most replicas: {state:#?}");
    let (sends, reads) = report.history_forgotten;
    assert!(sends > 100, "acknowledged sends forgotten: {sends}");
    assert!(reads > 100, "reads forgotten: {reads}");
    assert!(
        sends < report.stats.acked && reads < report.stats.records_read,
        "only what retention deleted: {sends} of {} sends, {reads} of {} reads",
        report.stats.acked,
        report.stats.records_read
    );
}

#[test]
fn without_retention_nothing_is_forgotten() {
    let mut s = retention_scenario();
    s.disk.retention_bytes = None;
    let report = run(&s, 0, &RunOptions::default());
    assert!(report.passed(), "{:?}", report.violations);
    assert_eq!(report.history_forgotten, (0, 0));
}

#[test]
fn retention_bytes_must_be_positive() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/long/cluster-steady-state-retention.toml");
    let text = std::fs::read_to_string(&path).expect("readable");
    let bad = text.replace("retention_bytes = 32768", "retention_bytes = 0");
    assert_ne!(bad, text);
    let err = Scenario::from_toml(&bad, Path::new("r.toml")).unwrap_err();
    assert!(err.to_string().contains("disk.retention_bytes"), "{err}");
}
