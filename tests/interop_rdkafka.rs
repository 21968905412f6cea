//! librdkafka (through the `rdkafka` crate) against a real `seedlog serve`.

mod common;

use common::metrics::{scrape, value};
use common::{
    consume_from_beginning, create_topic, expected_values, produce_records, produce_values,
    record_value, scratch_dir, Broker,
};
use std::time::{Duration, Instant};

/// `probe` until it answers or `within` passes.
fn wait_until<T>(within: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + within;
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

const PARTITIONS: i32 = 4;
const RECORDS: usize = 100_000;

#[test]
fn librdkafka_produces_and_consumes_100k_records_in_order_across_a_restart() {
    let dir = scratch_dir("interop-rdkafka");
    let broker = Broker::start(&dir, &[]);
    create_topic(&broker.bootstrap, "interop", PARTITIONS);
    produce_values(&broker.bootstrap, "interop", PARTITIONS, 0..RECORDS, &[]);
    assert_eq!(
        consume_from_beginning(&broker.bootstrap, "interop", PARTITIONS, RECORDS),
        expected_values(PARTITIONS, RECORDS)
    );

    // Every acknowledged record was flushed before its ack: a SIGKILL loses none.
    broker.kill();
    let broker = Broker::start(&dir, &[]);
    assert_eq!(
        consume_from_beginning(&broker.bootstrap, "interop", PARTITIONS, RECORDS),
        expected_values(PARTITIONS, RECORDS)
    );
    broker.stop();
}

/// A 1 KiB value for record `i`: its number, padded.
fn kib_value(i: usize) -> String {
    format!("{:<1024}", record_value(i))
}

#[test]
fn librdkafka_consumes_mapped_reads_in_order_while_the_log_grows() {
    // Without a page cache window (the default) a consumer's reads of
    // 64 KiB or more are lent as mappings of the segment. librdkafka checks
    // every batch's CRC; the values are checked in order, in a log that
    // grows between the two reads (appends behind a lent mapping).
    const KIB_RECORDS: usize = 8_000; // ~4 MB per partition
    let dir = scratch_dir("interop-rdkafka-mapped");
    let broker = Broker::start(&dir, &["--metrics-listen", "127.0.0.1:0"]);
    create_topic(&broker.bootstrap, "mapped", 2);
    let kib = |range: std::ops::Range<usize>| {
        range.map(|i| ((i % 2) as i32, i.to_string(), kib_value(i)))
    };
    let expected = |records: usize| -> Vec<Vec<String>> {
        expected_values(2, records)
            .into_iter()
            .map(|values| values.iter().map(|v| format!("{v:<1024}")).collect())
            .collect()
    };
    produce_records(&broker.bootstrap, "mapped", &[], kib(0..KIB_RECORDS));
    assert_eq!(
        consume_from_beginning(&broker.bootstrap, "mapped", 2, KIB_RECORDS),
        expected(KIB_RECORDS)
    );
    produce_records(
        &broker.bootstrap,
        "mapped",
        &[],
        kib(KIB_RECORDS..2 * KIB_RECORDS),
    );
    assert_eq!(
        consume_from_beginning(&broker.bootstrap, "mapped", 2, 2 * KIB_RECORDS),
        expected(2 * KIB_RECORDS)
    );
    let url = broker.metrics_url();
    let mapped = wait_until(Duration::from_secs(10), || {
        let n = value(&scrape(&url), "seedlog_storage_reads_mapped_total");
        (n >= 4.0).then_some(n)
    });
    assert!(
        mapped.is_some(),
        "mapped reads {}",
        value(&scrape(&url), "seedlog_storage_reads_mapped_total")
    );
    broker.stop();
}

#[test]
fn librdkafka_reads_a_log_mostly_before_its_page_cache_window_in_order() {
    // With a 1 MiB window, all but the last MiB of each partition is read
    // around the page cache (O_DIRECT, read ahead in 4 MiB chunks), and
    // each fetched MiB goes out as a part of its frame, not a copy.
    const KIB_RECORDS: usize = 24_000; // ~12 MB per partition
    let dir = scratch_dir("interop-rdkafka-window");
    let window = [
        "--page-cache-window-bytes",
        "1048576",
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    let broker = Broker::start(&dir, &window);
    create_topic(&broker.bootstrap, "window", 2);
    let records = (0..KIB_RECORDS).map(|i| ((i % 2) as i32, i.to_string(), kib_value(i)));
    produce_records(&broker.bootstrap, "window", &[], records);
    let expected: Vec<Vec<String>> = expected_values(2, KIB_RECORDS)
        .into_iter()
        .map(|values| {
            values
                .iter()
                .map(|v| format!("{v:<1024}"))
                .collect::<Vec<String>>()
        })
        .collect();
    assert_eq!(
        consume_from_beginning(&broker.bootstrap, "window", 2, KIB_RECORDS),
        expected
    );
    // The reads went around the cache, and most were read ahead (the
    // metrics are sampled each second).
    let url = broker.metrics_url();
    let sampled = wait_until(Duration::from_secs(10), || {
        let samples = scrape(&url);
        let direct = value(&samples, "seedlog_storage_reads_direct_total");
        let hits = value(&samples, "seedlog_storage_read_ahead_hits_total");
        (direct >= 10.0 && hits >= direct / 2.0).then_some((direct, hits))
    });
    let samples = scrape(&url);
    assert!(
        sampled.is_some(),
        "reads around the cache {}, read-ahead hits {}",
        value(&samples, "seedlog_storage_reads_direct_total"),
        value(&samples, "seedlog_storage_read_ahead_hits_total")
    );
    // After a restart nothing is cached by the broker: read again.
    broker.kill();
    let broker = Broker::start(&dir, &window);
    assert_eq!(
        consume_from_beginning(&broker.bootstrap, "window", 2, KIB_RECORDS),
        expected
    );
    broker.stop();
}
