//! kcat (librdkafka's command-line client) against a real `seedlog serve`,
//! exactly as a user would run it from a shell.

mod common;

use common::{kcat_available, scratch_dir, Broker};
use std::io::Write;
use std::process::{Command, Stdio};

const PARTITIONS: usize = 3;
const RECORDS: usize = 100_000;

fn lines_for(partition: usize) -> Vec<String> {
    (0..RECORDS)
        .filter(|i| i % PARTITIONS == partition)
        .map(|i| format!("record-{i:06}"))
        .collect()
}

fn kcat_produce(bootstrap: &str, topic: &str, partition: usize, lines: &[String]) {
    let mut child = Command::new("kcat")
        .args([
            "-P",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-p",
            &partition.to_string(),
            "-X",
            "acks=all",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat starts");
    let mut stdin = child.stdin.take().unwrap();
    let mut input = lines.join("\n");
    input.push('\n');
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success(), "kcat -P exited cleanly");
}

/// `(offset, value)` pairs of one partition, read from the beginning to the end.
fn kcat_consume(bootstrap: &str, topic: &str, partition: usize) -> Vec<(i64, String)> {
    let output = Command::new("kcat")
        .args([
            "-C",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-p",
            &partition.to_string(),
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%o %s\\n",
        ])
        .output()
        .expect("kcat runs");
    assert!(
        output.status.success(),
        "kcat -C failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (offset, value) = line.split_once(' ').expect("offset and value");
            (offset.parse().unwrap(), value.to_string())
        })
        .collect()
}

#[test]
fn kcat_produces_and_consumes_100k_records_over_three_partitions() {
    if !kcat_available() {
        return;
    }
    let dir = scratch_dir("interop-kcat");
    let broker = Broker::start(&dir, &["--num-partitions", "3"]);
    for partition in 0..PARTITIONS {
        kcat_produce(
            &broker.bootstrap,
            "kcat-interop",
            partition,
            &lines_for(partition),
        );
    }
    let mut total = 0;
    for partition in 0..PARTITIONS {
        let read = kcat_consume(&broker.bootstrap, "kcat-interop", partition);
        let expected: Vec<(i64, String)> = lines_for(partition)
            .into_iter()
            .enumerate()
            .map(|(o, v)| (o as i64, v))
            .collect();
        assert_eq!(
            read.len(),
            expected.len(),
            "partition {partition} record count"
        );
        assert!(
            read == expected,
            "partition {partition}: offsets contiguous from 0, values in produce order"
        );
        total += read.len();
    }
    assert_eq!(total, RECORDS);
    broker.stop();
}
