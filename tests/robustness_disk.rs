//! A real `seedlog serve` against real disk trouble: a full file system
//! (a small tmpfs) and a segment corrupted while the broker was down.
//! librdkafka is the client; nothing acknowledged may be lost, nothing
//! corrupt may be served, and the broker keeps serving.

mod common;

use common::{consume_from_beginning, create_topic, produce_values, scratch_dir, Broker};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The tmpfs the full-disk test fills: a few hundred 4 KiB records.
const TMPFS_SIZE: &str = "size=3m";
const VALUE_BYTES: usize = 4096;
/// More than the tmpfs can hold: the test stops at the first refusal.
const RECORDS_MAX: usize = 2_000;

/// `mount` and `umount` as root: directly when the test runs as root (CI),
/// else through `sudo -n` (never prompting).
fn as_root(program: &str) -> Command {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Command::new(program);
    }
    let mut command = Command::new("sudo");
    command.args(["-n", program]);
    command
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    /// Mounts a small tmpfs at `dir`. Needs root (or sudo without a
    /// password); without it the test
    /// skips, unless `SEEDLOG_REQUIRE_CLIENTS` is set (as in `.ci/run`).
    fn mount(dir: &'a Path) -> Option<Tmpfs<'a>> {
        let mounted = as_root("mount")
            .args(["-t", "tmpfs", "-o", TMPFS_SIZE, "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Tmpfs(dir));
        }
        assert!(
            std::env::var_os("SEEDLOG_REQUIRE_CLIENTS").is_none(),
            "cannot mount a tmpfs at {} (the full-disk test needs root)",
            dir.display()
        );
        eprintln!("SKIPPED: cannot mount a tmpfs (needs root)");
        None
    }

    fn resize(&self, options: &str) {
        let status = as_root("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.0)
            .status()
            .expect("mount runs");
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = as_root("umount").arg(self.0).status();
    }
}

fn value(i: usize) -> String {
    let mut value = format!("value-{i:06}-");
    value.extend(std::iter::repeat_n('x', VALUE_BYTES - value.len()));
    value
}

/// Produces `value(i)` for i = `from`.. one at a time (acks=all, no
/// retries), until the broker refuses one or `RECORDS_MAX` is reached.
/// Returns the first index not acknowledged and the refusal.
fn produce_until_refused(bootstrap: &str, topic: &str, from: usize) -> (usize, RDKafkaErrorCode) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("retries", "0")
        .set("max.in.flight.requests.per.connection", "1")
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for i in from..RECORDS_MAX {
        let value = value(i);
        let key = i.to_string();
        let record = FutureRecord::to(topic)
            .partition(0)
            .key(&key)
            .payload(&value);
        match runtime.block_on(producer.send(record, Duration::from_secs(20))) {
            Ok(delivery) => assert_eq!(delivery.offset, i as i64, "acked in order"),
            Err((e, _)) => {
                let code = e.rdkafka_error_code().expect("a broker error code");
                return (i, code);
            }
        }
    }
    panic!("{RECORDS_MAX} records of {VALUE_BYTES} bytes fit in a {TMPFS_SIZE} tmpfs");
}

fn high_watermark(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("ListOffsets answered");
    high
}

fn assert_values(bootstrap: &str, topic: &str, range: std::ops::Range<usize>) {
    let read = consume_from_beginning(bootstrap, topic, 1, range.len());
    let expected: Vec<String> = range.map(value).collect();
    assert_eq!(read[0].len(), expected.len());
    assert!(
        read[0] == expected,
        "acknowledged records read back as sent"
    );
}

#[test]
fn a_full_disk_refuses_produce_with_storage_error_while_reads_go_on() {
    let dir = scratch_dir("robustness-disk-full");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let Some(tmpfs) = Tmpfs::mount(&data) else {
        return;
    };
    let broker = Broker::start(&data, &[]);
    create_topic(&broker.bootstrap, "full", 1);

    let (acked, refusal) = produce_until_refused(&broker.bootstrap, "full", 0);
    assert!(acked > 10, "the disk held some records before it filled");
    assert_eq!(refusal, RDKafkaErrorCode::KafkaStorageError);
    // Reads go on: everything acknowledged is there, nothing more.
    assert_eq!(high_watermark(&broker.bootstrap, "full"), acked as i64);
    assert_values(&broker.bootstrap, "full", 0..acked);

    // Space comes back: produce works again, after what was acked.
    tmpfs.resize("size=64m");
    let more = produce_until_retried(&broker.bootstrap, "full", acked, 20);
    assert_values(&broker.bootstrap, "full", 0..more);

    // Nothing acknowledged is lost across a restart either.
    broker.kill();
    let broker = Broker::start(&data, &[]);
    assert_eq!(high_watermark(&broker.bootstrap, "full"), more as i64);
    assert_values(&broker.bootstrap, "full", 0..more);
    broker.stop();
}

/// Produces `count` records from `from` once the disk has room again;
/// the first attempts may still meet the refusal of a write that failed
/// half-way. Returns the index after the last record.
fn produce_until_retried(bootstrap: &str, topic: &str, from: usize, count: usize) -> usize {
    let settings = [
        ("retries", "10"),
        ("retry.backoff.ms", "200"),
        ("enable.idempotence", "false"),
        ("max.in.flight.requests.per.connection", "1"),
    ];
    let records = (from..from + count).map(|i| (0, i.to_string(), value(i)));
    common::produce_records(bootstrap, topic, &settings, records);
    assert_eq!(
        high_watermark(bootstrap, topic),
        (from + count) as i64,
        "every record after the refusal was appended once"
    );
    from + count
}

#[test]
fn a_corrupted_segment_tail_is_cut_at_restart_and_never_served() {
    const RECORDS: usize = 200;
    let dir = scratch_dir("robustness-corrupt-segment");
    let broker = Broker::start(&dir, &[]);
    create_topic(&broker.bootstrap, "corrupt", 1);
    // Several small produce calls: several batches in the segment.
    for chunk in 0..10 {
        let range = chunk * RECORDS / 10..(chunk + 1) * RECORDS / 10;
        produce_values(&broker.bootstrap, "corrupt", 1, range, &[]);
    }
    broker.kill();

    let segment = dir.join("corrupt-0").join("00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).expect("the segment file");
    let at = bytes.len() * 3 / 5;
    bytes[at] ^= 0x40;
    std::fs::write(&segment, &bytes).expect("corrupted segment written");

    let log = dir.join("broker.log");
    let broker = Broker::start_logging_to(&dir, &[], &log);
    let served = high_watermark(&broker.bootstrap, "corrupt") as usize;
    let log_text = std::fs::read_to_string(&log).expect("broker log");
    assert!(
        log_text.contains("cutting a torn or corrupt segment tail"),
        "the cut is logged: {log_text}"
    );
    assert!(
        0 < served && served < RECORDS,
        "records before the corrupt batch kept, the rest cut: {served}"
    );
    // Exactly the records written before the corrupt batch come back.
    let read = consume_from_beginning(&broker.bootstrap, "corrupt", 1, served);
    let expected: Vec<String> = (0..served).map(common::record_value).collect();
    assert!(
        read[0] == expected,
        "the intact prefix is served as written"
    );

    // The log goes on from the cut.
    produce_values(&broker.bootstrap, "corrupt", 1, RECORDS..RECORDS + 10, &[]);
    assert_eq!(
        high_watermark(&broker.bootstrap, "corrupt") as usize,
        served + 10
    );
    broker.stop();
}
