//! kcat (librdkafka's command-line client), run as a user runs it from a
//! shell. Every run is bounded by coreutils' `timeout`, so a kcat that
//! waits for something that never comes fails the test instead of hanging
//! it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Seconds any one kcat run may take.
const TIMEOUT_SECONDS: &str = "60";

fn kcat(args: &[&str]) -> Command {
    let mut command = Command::new("timeout");
    command.args([TIMEOUT_SECONDS, "kcat"]).args(args);
    command
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "kcat {what} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs kcat with `args` and returns its standard output.
pub fn run(args: &[&str]) -> String {
    let output = kcat(args).output().expect("kcat runs");
    assert_success(&args.join(" "), &output);
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// `kcat -P` of `lines` (one record each) to one partition with acks=all;
/// `extra_args` are added (a key delimiter, a codec, ...).
pub fn produce(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    lines: &[String],
    extra_args: &[&str],
) {
    let partition = partition.to_string();
    let mut child = kcat(&["-P", "-b", bootstrap, "-t", topic, "-p", &partition])
        .args(["-X", "acks=all"])
        .args(extra_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat starts");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut input = lines.join("\n");
    input.push('\n');
    stdin
        .write_all(input.as_bytes())
        .expect("kcat reads its input");
    drop(stdin);
    let output = child.wait_with_output().expect("kcat -P ends");
    assert_success("-P", &output);
}

/// `kcat -C` of one partition from the beginning to its end, each record
/// printed with `format` (kcat's -f; one line per record).
pub fn consume(bootstrap: &str, topic: &str, partition: i32, format: &str) -> Vec<String> {
    let partition = partition.to_string();
    run(&[
        "-C",
        "-b",
        bootstrap,
        "-t",
        topic,
        "-p",
        &partition,
        "-o",
        "beginning",
        "-e",
        "-q",
        "-f",
        format,
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// `(offset, value)` pairs of one partition, read from the beginning to
/// the end.
pub fn consume_values(bootstrap: &str, topic: &str, partition: i32) -> Vec<(i64, String)> {
    consume(bootstrap, topic, partition, "%o %s\\n")
        .iter()
        .map(|line| {
            let (offset, value) = line.split_once(' ').expect("offset and value");
            (offset.parse().expect("an offset"), value.to_string())
        })
        .collect()
}

/// Starts `kcat -G GROUP` (the balanced consumer) on `topic`, reading from
/// the earliest offset where the group has no commit, until every
/// partition it was assigned is at its end; prints "partition offset
/// value" per record. `wait_group` collects its output.
pub fn spawn_group_member(bootstrap: &str, group: &str, topic: &str) -> std::process::Child {
    kcat(&["-G", group, "-b", bootstrap])
        .args(["-X", "auto.offset.reset=earliest", "-e", "-q"])
        .args(["-f", "%p %o %s\\n", topic])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat -G starts")
}

/// Waits for a `spawn_group_member` and returns `(partition, offset,
/// value)` per record it consumed.
pub fn wait_group(member: std::process::Child) -> Vec<(i32, i64, String)> {
    let output = member.wait_with_output().expect("kcat -G ends");
    assert_success("-G", &output);
    String::from_utf8(output.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|line| {
            let mut fields = line.splitn(3, ' ');
            let mut next = || fields.next().expect("partition, offset and value");
            let partition = next().parse().expect("a partition");
            let offset = next().parse().expect("an offset");
            (partition, offset, next().to_string())
        })
        .collect()
}
