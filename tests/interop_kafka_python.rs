//! kafka-python (pure Python client, idempotent producer by default)
//! against a real `seedlog serve`.

mod common;

use common::metrics::{scrape, value};
use common::{kafka_python_available, run_python, scratch_dir, Broker};
use std::time::{Duration, Instant};

#[test]
fn kafka_python_idempotent_producer_and_consumer_round_trip() {
    if !kafka_python_available() {
        return;
    }
    let dir = scratch_dir("interop-kafka-python");
    let broker = Broker::start(&dir, &["--metrics-listen", "127.0.0.1:0"]);
    let stdout = run_python(
        "kafka_python_roundtrip.py",
        &[&broker.bootstrap, "py-interop", "3", "5000"],
    );
    assert_eq!(stdout.trim(), "ok 5000");
    // kafka-python asks for a KIP-227 fetch session (a full fetch at epoch
    // 0) and, once given one, fetches incrementally: the 5,000 records
    // above were read through it. The session outlives the consumer
    // (until evicted), so the gauge, sampled each second, shows it. It
    // holds the partitions of the consumer's last fetch: kafka-python
    // leaves out (forgets) a partition whose records it still buffers.
    // Its incremental fetches left unread the partitions with nothing new
    // (a consumer of 3 partitions that is caught up on some of them), and
    // still read all 5,000 records.
    let url = broker.metrics_url();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = scrape(&url);
        let sessions = value(&metrics, "seedlog_fetch_sessions");
        let partitions = value(&metrics, "seedlog_fetch_session_partitions");
        let unread = value(&metrics, "seedlog_fetch_session_partitions_unread_total");
        if sessions >= 1.0 && partitions >= 1.0 && unread >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no fetch session of the consumer, or none of its partitions left unread: {sessions} sessions, {partitions} partitions, {unread} unread"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    broker.stop();
}
