//! The scheduled `reassign` op: bad values are refused with the field
//! named, and scenarios/reassignment.toml passes every checker (lost_write,
//! strong_isr, log_matching, liveness_reassignment...) on seed 1, the seed
//! that caught a removed leader acknowledging a write its successors did
//! not hold.

use seedlog_sim::scenario::{Fault, FaultKind};
use seedlog_sim::{run, RunOptions, Scenario};
use std::path::Path;

fn scenario() -> Scenario {
    Scenario::resolve("reassignment").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn bad_reassign_values_are_refused_with_the_field_named() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/reassignment.toml"),
    )
    .unwrap();
    let cases = [
        ("nodes = [3, 1, 2]", "nodes = []"),
        ("nodes = [3, 1, 2]", "nodes = [3, 3, 1]"),
        ("nodes = [3, 1, 2]", "nodes = [0, 4]"),
        ("nodes = [3, 1, 2]", "nodes = [0, 1]\ntarget = \"leader\""),
    ];
    for (from, to) in cases {
        let bad = text.replacen(from, to, 1);
        let error = Scenario::from_toml(&bad, Path::new("bad.toml"))
            .expect_err(to)
            .to_string();
        assert!(error.contains("faults.schedule[0]"), "{to}: {error}");
    }
    let unknown = text.replacen("nodes = [3, 1, 2]", "nodes = [3, 1, 2]\nreplicas = [1]", 1);
    assert!(Scenario::from_toml(&unknown, Path::new("bad.toml")).is_err());
}

#[test]
fn the_reassignment_scenario_passes_on_the_seed_that_found_a_lost_write() {
    let s = scenario();
    assert!(s
        .faults
        .schedule
        .iter()
        .any(|f: &Fault| f.kind == FaultKind::Reassign));
    let report = run(&s, 1, &RunOptions::default());
    assert!(report.passed(), "{:?}", report.violations);
}
