//! A real `seedlog serve` process on 127.0.0.1 for interop tests; a
//! three-node cluster of them in `cluster`, logged consumer-group members
//! in `groups`, kcat runs in `kcat`.

#![allow(dead_code)]

pub mod cli;
pub mod cluster;
pub mod groups;
pub mod kcat;
pub mod metrics;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Child,
    pub bootstrap: String,
    pub data_dir: PathBuf,
    /// What `serve` printed before its listening line (the metrics
    /// listener's, with `--metrics-listen`).
    pub preamble: Vec<String>,
}

/// `seedlog serve` on `listen` with its data in `data_dir`, logging warnings.
fn serve_command(data_dir: &Path, listen: &str, extra_args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_seedlog"));
    command
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .args(extra_args)
        .env("RUST_LOG", "warn");
    command
}

impl Broker {
    /// Starts `seedlog serve` on an ephemeral loopback port and waits for
    /// its "listening" line.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Broker {
        Broker::start_listening(data_dir, "127.0.0.1:0", extra_args)
    }

    /// `start`, listening for clients on `listen` (a fixed port lets a
    /// restarted node come back at the same address).
    pub fn start_listening(data_dir: &Path, listen: &str, extra_args: &[&str]) -> Broker {
        Broker::spawn(serve_command(data_dir, listen, extra_args), data_dir)
    }

    /// `start`, with the broker's log (stderr, level warn) going to `log`.
    pub fn start_logging_to(data_dir: &Path, extra_args: &[&str], log: &Path) -> Broker {
        let log = std::fs::File::create(log).expect("log file");
        let mut command = serve_command(data_dir, "127.0.0.1:0", extra_args);
        command.stderr(Stdio::from(log));
        Broker::spawn(command, data_dir)
    }

    /// Runs `command` (a `seedlog serve`) and waits for its "listening"
    /// line.
    pub fn spawn(mut command: Command, data_dir: &Path) -> Broker {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("seedlog serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut preamble = Vec::new();
        let bootstrap = loop {
            assert!(
                Instant::now() < deadline,
                "seedlog serve did not report its address in time"
            );
            let line = lines
                .next()
                .expect("seedlog serve printed its address")
                .expect("utf-8 stdout");
            if let Some(address) = line.strip_prefix("seedlog listening on ") {
                break address.trim().to_string();
            }
            preamble.push(line);
        };
        // Keep draining stdout so the broker never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Broker {
            child,
            bootstrap,
            data_dir: data_dir.to_path_buf(),
            preamble,
        }
    }

    /// The metrics URL the broker printed; started with `--metrics-listen`.
    pub fn metrics_url(&self) -> String {
        self.preamble
            .iter()
            .find_map(|l| l.strip_prefix("seedlog metrics listening on "))
            .expect("started with --metrics-listen")
            .trim()
            .to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait: a graceful shutdown.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("seedlog serve did not stop within 20 s of SIGTERM");
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory under the target dir, removed first if it exists.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A port P such that P..P+count and P+100..P+100+count are all free on
/// 127.0.0.1 right now (the layout `seedlog cluster --base-port` uses: client
/// ports, then controller ports 100 above). Outside the kernel's ephemeral
/// range, so that other tests' port-0 listeners do not take them meanwhile,
/// and never the same ports twice in one test process, whose tests run in
/// parallel.
pub fn free_port_base(count: u16) -> u16 {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    const FIRST: u32 = 20_000;
    const LAST: u32 = 28_000;
    let spread = (LAST - FIRST) / 20;
    let start = FIRST + std::process::id() % spread * 20;
    let candidates = (start..LAST)
        .chain(FIRST..start)
        .step_by(usize::from(count));
    let mut handed_out = HANDED_OUT.lock().expect("no test panicked holding it");
    for base in candidates.take(400) {
        let base = u16::try_from(base).expect("below 28000");
        let ports: Vec<u16> = (base..base + count)
            .chain(base + 100..base + 100 + count)
            .collect();
        if ports.iter().any(|port| handed_out.contains(port)) {
            continue;
        }
        let bound: Result<Vec<_>, _> = ports
            .iter()
            .map(|port| std::net::TcpListener::bind(("127.0.0.1", *port)))
            .collect();
        if bound.is_ok() {
            handed_out.extend(ports);
            return base;
        }
    }
    panic!("no {count} free ports (and {count} more 100 above) on 127.0.0.1");
}

/// Creates a topic through librdkafka's admin client (CreateTopics), with
/// replication factor 1, and asserts it was created.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    create_replicated_topic(bootstrap, topic, partitions, 1);
}

/// librdkafka's admin client, and a runtime to wait for its answers on.
pub fn admin_client(
    bootstrap: &str,
) -> (
    rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>,
    tokio::runtime::Runtime,
) {
    let admin = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    (admin, runtime)
}

/// Creates a topic with `replication` replicas per partition, as
/// `create_topic` does.
pub fn create_replicated_topic(bootstrap: &str, topic: &str, partitions: i32, replication: i32) {
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    let (admin, runtime) = admin_client(bootstrap);
    let results = runtime
        .block_on(admin.create_topics(
            &[NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(replication),
            )],
            &AdminOptions::new(),
        ))
        .expect("CreateTopics answered");
    for result in results {
        result.expect("topic created");
    }
}

/// Sends one record through librdkafka, waiting while its local queue is
/// full (the only error a healthy broker should cause here).
pub fn send_waiting_for_queue_space(
    producer: &rdkafka::producer::BaseProducer,
    mut record: rdkafka::producer::BaseRecord<'_, String, String>,
) {
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((e, r)) => {
                assert!(
                    matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ),
                    "send failed: {e}"
                );
                producer.poll(std::time::Duration::from_millis(10));
                record = r;
            }
        }
    }
    producer.poll(std::time::Duration::ZERO);
}

/// Reads partitions `0..partitions` of `topic` from the beginning with an
/// assigned (not subscribed) librdkafka consumer until `records` arrived;
/// asserts each partition comes in offset order without gaps. Returns the
/// values per partition. Any consumer error fails the test.
pub fn consume_from_beginning(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    records: usize,
) -> Vec<Vec<String>> {
    consume_from_beginning_tolerating(bootstrap, topic, partitions, records, &[])
}

/// `consume_from_beginning`, where consumer errors with one of these codes
/// are passed over: after a broker is killed, librdkafka reports its
/// failing connections (BrokerTransportFailure) while it reads on from the
/// others.
pub fn consume_from_beginning_tolerating(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    records: usize,
    tolerated: &[rdkafka::types::RDKafkaErrorCode],
) -> Vec<Vec<String>> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    use std::time::Duration;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka's assign() needs a group id even though no group is
        // joined and nothing is committed.
        .set("group.id", format!("seedlog-interop-{topic}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition added");
    }
    consumer.assign(&assignment).expect("assign");
    let mut values = vec![Vec::new(); partitions as usize];
    let mut offsets = vec![0i64; partitions as usize];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut total = 0;
    while total < records {
        assert!(
            Instant::now() < deadline,
            "consumed only {total} of {records} records: next offsets {offsets:?}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let Some(message) = message_unless_tolerated(message, tolerated, "consumer") else {
            continue;
        };
        let p = message.partition() as usize;
        assert_eq!(
            message.offset(),
            offsets[p],
            "partition {p} read in offset order without gaps"
        );
        offsets[p] += 1;
        values[p]
            .push(String::from_utf8(message.payload().expect("a value").to_vec()).expect("utf-8"));
        total += 1;
    }
    values
}

/// The message of a poll, or None for a consumer error with one of the
/// `tolerated` codes; any other error fails the test, naming `who`.
pub fn message_unless_tolerated<'a>(
    result: rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'a>>,
    tolerated: &[rdkafka::types::RDKafkaErrorCode],
    who: &str,
) -> Option<rdkafka::message::BorrowedMessage<'a>> {
    match result {
        Ok(message) => Some(message),
        Err(e)
            if e.rdkafka_error_code()
                .is_some_and(|c| tolerated.contains(&c)) =>
        {
            eprintln!("{who}: tolerated consumer error: {e}");
            None
        }
        Err(e) => panic!("{who}: consumer error: {e}"),
    }
}

/// The value `produce_values` gives record `i`.
pub fn record_value(i: usize) -> String {
    format!("value-{i:06}")
}

/// Produces records `range` with acks=all through librdkafka, record `i`
/// to partition `i % partitions` with key `i` and value `record_value(i)`,
/// and waits until every one is acknowledged. `settings` are added to (or
/// override) the producer's configuration.
pub fn produce_values(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    range: std::ops::Range<usize>,
    settings: &[(&str, &str)],
) {
    let records = range.map(|i| {
        (
            (i % partitions as usize) as i32,
            i.to_string(),
            record_value(i),
        )
    });
    produce_records(bootstrap, topic, settings, records);
}

/// Produces `(partition, key, value)` records with acks=all through
/// librdkafka and waits until every one is acknowledged. `settings` are
/// added to (or override) the producer's configuration.
pub fn produce_records(
    bootstrap: &str,
    topic: &str,
    settings: &[(&str, &str)],
    records: impl IntoIterator<Item = (i32, String, String)>,
) {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "200000");
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let producer: BaseProducer = config
        .create()
        .unwrap_or_else(|e| panic!("producer with {settings:?}: {e}"));
    for (partition, key, value) in records {
        let record = BaseRecord::to(topic)
            .partition(partition)
            .key(&key)
            .payload(&value);
        send_waiting_for_queue_space(&producer, record);
    }
    producer
        .flush(std::time::Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{settings:?}: every record acknowledged: {e}"));
}

/// What `consume_from_beginning` returns after `produce_values` of
/// `0..records`.
pub fn expected_values(partitions: i32, records: usize) -> Vec<Vec<String>> {
    let mut values = vec![Vec::new(); partitions as usize];
    for i in 0..records {
        values[i % partitions as usize].push(record_value(i));
    }
    values
}

/// Whether a client the test drives is installed: `probe` (a command line)
/// runs and succeeds. Missing, the test skips with a message saying how to
/// install it (`install`), unless `SEEDLOG_REQUIRE_CLIENTS` is set (as
/// `.ci/run` does): then it fails.
pub fn client_available(name: &str, probe: &[&str], install: &str) -> bool {
    let found = std::process::Command::new(probe[0])
        .args(&probe[1..])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("SEEDLOG_REQUIRE_CLIENTS").is_none(),
            "{name} is required here ({install})"
        );
        eprintln!("SKIPPED: {name} is not installed ({install}); .ci/run installs it and requires this test");
    }
    found
}

pub fn kcat_available() -> bool {
    client_available("kcat", &["kcat", "-V"], "apt-get install kcat")
}

pub fn confluent_kafka_available() -> bool {
    client_available(
        "confluent-kafka",
        &["python3", "-c", "import confluent_kafka"],
        "pip install confluent-kafka",
    )
}

pub fn kafka_python_available() -> bool {
    client_available(
        "kafka-python",
        &["python3", "-c", "import kafka"],
        "pip install kafka-python",
    )
}

/// Runs `tests/python/SCRIPT` with `args` and returns its stdout, failing
/// the test with both outputs if it exits non-zero.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script} {args:?} failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The codecs Kafka defines besides none.
pub const CODECS: [&str; 4] = ["gzip", "snappy", "lz4", "zstd"];

/// Record `i`'s value in the compression tests: repetitive, so every codec
/// actually shrinks the batch (`compressed_value` of tests/python/compat.py
/// is the same).
pub fn compressed_value(codec: &str, i: usize) -> String {
    format!("{codec}-value-{i:06}-{}", "abc".repeat(i % 20))
}

/// Produces `compressed_value(codec, 0..records)` through librdkafka with
/// `codec` to one partition, in small batches (several compressed batches
/// per partition, so offsets are assigned across batch boundaries), and
/// waits until every one is acknowledged.
pub fn produce_compressed(
    bootstrap: &str,
    topic: &str,
    codec: &str,
    partition: i32,
    records: usize,
) {
    let records = (0..records).map(|i| (partition, i.to_string(), compressed_value(codec, i)));
    let settings = [("compression.type", codec), ("batch.size", "16384")];
    produce_records(bootstrap, topic, &settings, records);
}
