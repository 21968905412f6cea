//! `seedlog bench produce-path`, the workload of the CI instruction-count
//! guard (bench/callgrind_guard.sh), keeps working and keeps doing the
//! same work: every record stored and fetched back, the same responses
//! byte for byte on two runs. No timing here; the guard counts
//! instructions under callgrind.

use std::process::Command;

fn run(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_seedlog"))
        .args(["bench", "produce-path"])
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("seedlog runs");
    assert!(
        output.status.success(),
        "seedlog bench produce-path {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn produce_path_stores_and_fetches_every_record_deterministically() {
    let args = ["--batches", "200", "--records-per-batch", "10", "--fetch"];
    let first = run(&args);
    assert!(
        first.contains("2000 records stored, 2000 fetched"),
        "{first}"
    );
    assert!(
        first.contains("200 flushes"),
        "acks=1 flushes each batch: {first}"
    );
    assert_eq!(first, run(&args), "two runs differ");
}

#[test]
fn produce_path_spreads_batches_over_partitions_with_acks_all() {
    let out = run(&[
        "--batches",
        "30",
        "--partitions",
        "3",
        "--acks",
        "-1",
        "--fetch",
    ]);
    assert!(out.contains("300 records stored, 300 fetched"), "{out}");
}
