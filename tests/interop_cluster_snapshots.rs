//! KIP-630 on a real 3-node cluster (`seedlog serve` processes on
//! 127.0.0.1): with a tiny snapshot threshold, a node is killed while
//! enough metadata is written that the others snapshot and delete their
//! metadata log below it; restarted, it must catch up through FetchSnapshot
//! and see every topic.

mod common;

use common::cluster::{create_led_topic, wait_for, Cluster, STARTUP_WAIT};
use common::scratch_dir;
use std::path::Path;

const TOPICS: usize = 12;
const STOPPED: i32 = 3;

/// The metadata log start a node's data dir records (0 without one).
fn metadata_log_start(node_dir: &Path) -> i64 {
    let path = node_dir.join("__cluster_metadata-0/log-start-offset");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.lines().nth(1)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The metadata log end on a stopped node's disk: the next offset after
/// the last whole v2 batch of its newest segment (base offset at bytes
/// 0..8, batch length at 8..12, last offset delta at 23..27).
fn metadata_log_end(node_dir: &Path) -> i64 {
    let dir = node_dir.join("__cluster_metadata-0");
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .expect("a metadata dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".log"))
        .collect();
    segments.sort();
    let newest = segments.last().expect("a segment");
    let bytes = std::fs::read(dir.join(newest)).expect("segment readable");
    let mut end: i64 = newest
        .trim_end_matches(".log")
        .parse()
        .expect("a base offset");
    let mut at = 0;
    while at + 27 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        let length = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let delta = i32::from_be_bytes(bytes[at + 23..at + 27].try_into().unwrap());
        if at + 12 + length > bytes.len() {
            break;
        }
        end = base + i64::from(delta) + 1;
        at += 12 + length;
    }
    end
}

/// The end offsets of the snapshot files in a node's metadata dir.
fn snapshot_offsets(node_dir: &Path) -> Vec<i64> {
    let Ok(entries) = std::fs::read_dir(node_dir.join("__cluster_metadata-0")) else {
        return Vec::new();
    };
    let mut offsets: Vec<i64> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            let stem = name.strip_suffix(".checkpoint")?;
            let (offset, epoch) = stem.split_once('-')?;
            (offset.len() == 20 && epoch.len() == 10).then(|| offset.parse().ok())?
        })
        .collect();
    offsets.sort_unstable();
    offsets
}

#[test]
fn a_node_stopped_past_the_snapshot_catches_up_through_fetch_snapshot() {
    let dir = scratch_dir("interop-cluster-snapshots");
    let mut cluster =
        Cluster::start_restartable(&dir, &["--metadata-max-records-between-snapshots", "4"]);
    let node_dir = |id: i32| dir.join(format!("node-{id}"));
    cluster.kill(STOPPED);
    let names: Vec<String> = (0..TOPICS).map(|i| format!("snap-{i}")).collect();
    let bootstrap = cluster.bootstrap();
    // The killed node is fenced (its session expires) and a controller is
    // elected among the others before any topic is created.
    wait_for(
        "the running nodes to fence the killed one",
        &bootstrap,
        None,
        STARTUP_WAIT,
        |m| (m.brokers().len() == 2).then_some(()),
    );
    for name in &names {
        create_led_topic(&bootstrap, name, 1, 2);
    }
    // The running nodes snapshotted and cut their logs beyond the stopped
    // node's log end.
    let stopped_end = metadata_log_end(&node_dir(STOPPED));
    let running_start = wait_for(
        "the running nodes to snapshot and cut their metadata logs",
        &bootstrap,
        None,
        STARTUP_WAIT,
        |_| {
            let starts: Vec<i64> = [1, 2]
                .iter()
                .map(|&id| metadata_log_start(&node_dir(id)))
                .collect();
            let min = *starts.iter().min().expect("two nodes");
            (min > 0).then_some(min)
        },
    );
    for id in [1, 2] {
        let start = metadata_log_start(&node_dir(id));
        assert!(
            snapshot_offsets(&node_dir(id)).contains(&start),
            "node {id}: a snapshot file ends exactly at its log start {start}"
        );
    }
    assert!(
        running_start > stopped_end,
        "the running nodes' logs start at {running_start}, beyond the stopped node's end {stopped_end}: \
         plain fetches cannot catch it up"
    );

    cluster.restart(STOPPED);
    let listener = cluster.listeners()[&STOPPED].clone();
    wait_for(
        "the restarted node to list every topic created while it was down",
        &listener,
        None,
        STARTUP_WAIT,
        |m| {
            let seen = m
                .topics()
                .iter()
                .filter(|t| names.iter().any(|n| n == t.name()))
                .count();
            (seen == TOPICS).then_some(())
        },
    );
    // It got there through the leader's snapshot: its own metadata log now
    // starts at a snapshot at or beyond where the others had cut theirs.
    let start = metadata_log_start(&node_dir(STOPPED));
    assert!(
        start >= running_start,
        "the restarted node's log starts at {start}, below the {running_start} the others cut to"
    );
    assert!(snapshot_offsets(&node_dir(STOPPED)).contains(&start));
    cluster.stop();
}
