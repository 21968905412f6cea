//! Issue #5: a three-node cluster (RF 3, min.insync.replicas 2) keeps
//! every record librdkafka had acknowledged (acks=all, idempotent) while
//! the leader of partition 0 is SIGKILLed and restarted, round after round,
//! under a producer that never stops. Read back from the beginning, each
//! partition holds every acknowledged record at the offset it was
//! acknowledged with, in the order it was sent, and no record twice.

mod common;

use common::cluster::{leaders, wait_for, Cluster, STARTUP_WAIT};
use common::{admin_client, scratch_dir};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOPIC: &str = "kill-loop";
const PARTITIONS: i32 = 3;
const ROUNDS: usize = 4;
/// Records the producer offers per second.
const RATE: u64 = 2_000;
/// How long a killed leader may take to be replaced: the broker session
/// timeout (9 s) plus election and client reconnects.
const FAILOVER_WAIT: Duration = Duration::from_secs(30);
/// How long a restarted node may take to catch up and rejoin every ISR.
const REJOIN_WAIT: Duration = Duration::from_secs(45);

/// One acknowledged record: partition, offset, sequence number.
type Ack = (i32, i64, u64);

/// What librdkafka reported for every record: the acknowledged ones in
/// the order the acknowledgements arrived, the failed ones by error.
#[derive(Default)]
struct AckLog {
    acked: Mutex<Vec<Ack>>,
    failed: Mutex<BTreeMap<String, u64>>,
    /// Highest acknowledged sequence number per partition, plus one.
    acked_below: [AtomicU64; PARTITIONS as usize],
}

/// The producer's context: writes librdkafka's answers into the log.
struct Reporter(Arc<AckLog>);

impl ClientContext for Reporter {}

impl ProducerContext for Reporter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let log = &self.0;
        match result {
            Ok(message) => {
                let seq = sequence_of(message.key().expect("a key"));
                let partition = message.partition();
                log.acked
                    .lock()
                    .unwrap()
                    .push((partition, message.offset(), seq));
                log.acked_below[partition as usize].fetch_max(seq + 1, Ordering::SeqCst);
            }
            Err((e, _)) => {
                *log.failed.lock().unwrap().entry(e.to_string()).or_default() += 1;
            }
        }
    }
}

fn sequence_of(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .expect("utf-8")
        .parse()
        .expect("a sequence number")
}

/// Writes records 0, 1, 2, ... (record n to partition n % PARTITIONS, key
/// n) at about `RATE` per second until `stop`, then waits for the last
/// answers. Returns librdkafka's fatal error, if it raised one.
fn produce_until(
    bootstrap: &str,
    log: Arc<AckLog>,
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Option<String> {
    let producer: BaseProducer<Reporter> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "40000")
        .create_with_context(Reporter(log))
        .expect("idempotent producer");
    let started = Instant::now();
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let due = started.elapsed().as_millis() as u64 * RATE / 1000;
        while seq < due {
            let key = seq.to_string();
            let value = format!("record-{seq:09}");
            let mut record = BaseRecord::to(TOPIC)
                .partition((seq % PARTITIONS as u64) as i32)
                .key(&key)
                .payload(&value);
            while let Err((e, r)) = producer.send(record) {
                assert_eq!(
                    e.rdkafka_error_code(),
                    Some(RDKafkaErrorCode::QueueFull),
                    "send failed: {e}"
                );
                producer.poll(Duration::from_millis(10));
                record = r;
            }
            seq += 1;
            next.store(seq, Ordering::SeqCst);
        }
        producer.poll(Duration::from_millis(10));
    }
    // Unanswered records fail after message.timeout.ms at the latest.
    let _ = producer.flush(Duration::from_secs(60));
    producer
        .client()
        .fatal_error()
        .map(|(code, reason)| format!("{code:?}: {reason}"))
}

/// Every record of the topic, per partition, as (offset, sequence
/// number), read from the beginning up to each partition's high
/// watermark.
fn read_everything(bootstrap: &str) -> Vec<Vec<(i64, u64)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "seedlog-kill-loop-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let ends: Vec<i64> = (0..PARTITIONS)
        .map(|p| {
            consumer
                .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect();
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(TOPIC, p, Offset::Beginning)
            .expect("partition added");
    }
    consumer.assign(&assignment).expect("assign");
    let mut read = vec![Vec::new(); PARTITIONS as usize];
    let mut next = vec![0i64; PARTITIONS as usize];
    let deadline = Instant::now() + Duration::from_secs(120);
    while (0..PARTITIONS as usize).any(|p| next[p] < ends[p]) {
        assert!(
            Instant::now() < deadline,
            "read only up to {next:?} of {ends:?} within 120 s"
        );
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(e)) => eprintln!("reader: consumer error: {e}"),
            Some(Ok(message)) => {
                let p = message.partition() as usize;
                next[p] = message.offset() + 1;
                let seq = sequence_of(message.key().expect("a key"));
                read[p].push((message.offset(), seq));
            }
        }
    }
    println!("high watermarks at the end: {ends:?}");
    read
}

fn create_topic(bootstrap: &str) {
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    let (admin, runtime) = admin_client(bootstrap);
    let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3))
        .set("min.insync.replicas", "2");
    for result in runtime
        .block_on(admin.create_topics(&[topic], &AdminOptions::new()))
        .expect("CreateTopics answered")
    {
        result.expect("topic created");
    }
}

/// The leader of each partition once every partition has one and all
/// three nodes are in every ISR.
fn fully_replicated(m: &rdkafka::metadata::Metadata) -> Option<Vec<i32>> {
    let led = leaders(m, TOPIC, PARTITIONS)?;
    let topic = m.topics().iter().find(|t| t.name() == TOPIC)?;
    let full = topic.partitions().iter().all(|p| p.isr().len() == 3);
    (full && m.brokers().len() == 3).then_some(led)
}

fn wait_until(what: &str, within: Duration, done: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "no {what} within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// The two tests share the machine's cores; one cluster at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn acked_records_survive_repeated_leader_kills_and_restarts() {
    kill_loop("interop-cluster-kill-loop", None);
}

/// As above, but each killed leader comes back 1 s after the kill, well
/// before its broker session (9 s) expires and the controller fences it.
#[test]
fn acked_records_survive_leaders_restarted_before_their_session_expires() {
    kill_loop(
        "interop-cluster-kill-loop-quick",
        Some(Duration::from_secs(1)),
    );
}

/// `ROUNDS` times: SIGKILL partition 0's leader, restart it (once
/// partition 0 acknowledges again, or `restart_after` the kill), wait until
/// it is back in every ISR; then read everything back and check.
fn kill_loop(name: &str, restart_after: Option<Duration>) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let test_start = Instant::now();
    let dir = scratch_dir(name);
    let mut cluster = Cluster::start_restartable(&dir, &[]);
    let bootstrap = cluster.all_listeners();
    create_topic(&bootstrap);
    wait_for(
        "every partition led and fully replicated",
        &bootstrap,
        Some(TOPIC),
        STARTUP_WAIT,
        fully_replicated,
    );

    let log = Arc::new(AckLog::default());
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, log, next, stop) =
            (bootstrap.clone(), log.clone(), next.clone(), stop.clone());
        std::thread::spawn(move || produce_until(&bootstrap, log, next, stop))
    };
    let acked = |log: &AckLog| log.acked.lock().unwrap().len();
    wait_until("first 2,000 acks", STARTUP_WAIT, || acked(&log) >= 2_000);

    let mut rounds = Vec::new();
    for round in 1..=ROUNDS {
        let led = wait_for(
            "every partition led",
            &cluster.bootstrap(),
            Some(TOPIC),
            STARTUP_WAIT,
            |m| leaders(m, TOPIC, PARTITIONS),
        );
        let victim = led[0];
        let first_after_kill = next.load(Ordering::SeqCst);
        cluster.kill(victim);
        let killed = Instant::now();
        if let Some(delay) = restart_after {
            std::thread::sleep(delay);
            cluster.restart(victim);
        }
        // Recovered: partition 0 acknowledges a record sent after the kill.
        wait_until("partition 0 acking again", FAILOVER_WAIT, || {
            log.acked_below[0].load(Ordering::SeqCst) > first_after_kill
        });
        let recovery = killed.elapsed();
        if restart_after.is_none() {
            cluster.restart(victim);
        }
        let rejoin = {
            let start = Instant::now();
            wait_for(
                "the restarted node back in every ISR",
                &bootstrap,
                Some(TOPIC),
                REJOIN_WAIT,
                fully_replicated,
            );
            start.elapsed()
        };
        println!(
            "round {round}: killed node {victim} (leader of partition 0) at record {first_after_kill}; \
             partition 0 acked again after {recovery:?}; node {victim} back in every ISR {rejoin:?} after its restart"
        );
        rounds.push((victim, recovery, rejoin));
        let before = acked(&log);
        wait_until("500 more acks", FAILOVER_WAIT, || {
            acked(&log) >= before + 500
        });
    }

    stop.store(true, Ordering::SeqCst);
    let fatal = producer.join().expect("producer thread");
    let sent = next.load(Ordering::SeqCst);
    let acks = log.acked.lock().unwrap().clone();
    let failed = log.failed.lock().unwrap().clone();
    let read = read_everything(&bootstrap);
    let total_read: usize = read.iter().map(Vec::len).sum();

    // Check: every acknowledged record at its acknowledged offset; per
    // partition, sequence numbers strictly increasing (in order, none
    // twice); acknowledgements per partition in sending order.
    let mut problems = Vec::new();
    let mut seen = BTreeMap::new();
    for (p, records) in read.iter().enumerate() {
        for window in records.windows(2) {
            if window[1].1 <= window[0].1 {
                problems.push(format!(
                    "partition {p}: seq {} at offset {} after seq {} at offset {}",
                    window[1].1, window[1].0, window[0].1, window[0].0
                ));
            }
        }
        for (offset, seq) in records {
            if seq % PARTITIONS as u64 != p as u64 {
                problems.push(format!("seq {seq} in partition {p} at offset {offset}"));
            }
            if let Some(other) = seen.insert(*seq, (p, *offset)) {
                problems.push(format!("seq {seq} twice: {other:?} and {:?}", (p, *offset)));
            }
        }
    }
    let mut lost = 0;
    let mut last_acked = vec![None::<u64>; PARTITIONS as usize];
    for (p, offset, seq) in &acks {
        let at = read[*p as usize]
            .binary_search_by_key(offset, |(o, _)| *o)
            .ok()
            .map(|i| read[*p as usize][i].1);
        if at != Some(*seq) {
            lost += 1;
            if lost <= 20 {
                problems.push(format!(
                    "acked seq {seq} at partition {p} offset {offset}; read there: {at:?}"
                ));
            }
        }
        if let Some(previous) = last_acked[*p as usize] {
            if previous >= *seq {
                problems.push(format!(
                    "partition {p}: seq {seq} acked after seq {previous}"
                ));
            }
        }
        last_acked[*p as usize] = Some(*seq);
    }

    println!(
        "kill loop: {ROUNDS} rounds, {sent} records sent, {} acked, {} failed {failed:?}, \
         {total_read} read ({} duplicates or reorderings and {lost} acked records missing), \
         fatal producer error {fatal:?}, {:?} in all",
        acks.len(),
        failed.values().sum::<u64>(),
        problems.len() - lost.min(20),
        test_start.elapsed()
    );
    for (round, (victim, recovery, rejoin)) in rounds.iter().enumerate() {
        println!(
            "  round {}: node {victim}, partition 0 acking again after {recovery:?}, back in ISR after {rejoin:?}",
            round + 1
        );
    }
    assert!(
        problems.is_empty(),
        "{} problems: {problems:#?}",
        problems.len()
    );
    assert_eq!(fatal, None, "the idempotent producer raised a fatal error");
    assert!(acks.len() >= 10_000, "only {} records acked", acks.len());
    cluster.stop();
}
