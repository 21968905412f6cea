//! `seedlog serve --metrics-listen`: a real broker's `/metrics` scraped over
//! HTTP before and after real traffic; on a three-node cluster, a killed
//! node shows up as under-replicated partitions and ISR shrinks. And
//! `--log-format json` writes one JSON object per log line.

mod common;

use common::cluster::{create_led_topic, Cluster};
use common::metrics::{http_get, scrape, value};
use common::{produce_values, scratch_dir, Broker};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn metrics_count_produce_requests_bytes_and_latency() {
    let dir = scratch_dir("metrics-produce");
    let broker = Broker::start(&dir, &["--metrics-listen", "127.0.0.1:0"]);
    let url = broker.metrics_url();
    let before = scrape(&url);
    assert_eq!(
        value(&before, r#"seedlog_requests_total{api="Produce"}"#),
        0.0
    );

    common::create_topic(&broker.bootstrap, "metered", 2);
    produce_values(&broker.bootstrap, "metered", 2, 0..1_000, &[]);

    // The partition gauges are sampled each second.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = scrape(&url);
        if value(&after, "seedlog_partition_leaders") >= 2.0 {
            break after;
        }
        assert!(
            Instant::now() < deadline,
            "leaders never counted: {after:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let produces = value(&after, r#"seedlog_requests_total{api="Produce"}"#);
    assert!(produces >= 1.0, "{after:?}");
    let bytes_in =
        value(&after, "seedlog_bytes_in_total") - value(&before, "seedlog_bytes_in_total");
    // 1,000 values of 12 bytes each, at least, went in.
    assert!(bytes_in >= 12_000.0, "bytes in grew by {bytes_in}");
    assert!(value(&after, "seedlog_bytes_out_total") > value(&before, "seedlog_bytes_out_total"));
    assert_eq!(
        value(
            &after,
            r#"seedlog_request_duration_seconds_count{api="Produce"}"#
        ),
        produces,
        "every acks=all produce was answered and timed"
    );
    assert_eq!(
        value(
            &after,
            r#"seedlog_request_duration_seconds_bucket{le="+Inf",api="Produce"}"#
        )
        .max(value(
            &after,
            r#"seedlog_request_duration_seconds_bucket{api="Produce",le="+Inf"}"#
        )),
        produces
    );
    assert!(value(&after, r#"seedlog_requests_total{api="CreateTopics"}"#) >= 1.0);
    assert!(value(&after, "seedlog_connections_accepted_total") >= 2.0);
    assert_eq!(value(&after, "seedlog_partitions_under_replicated"), 0.0);
    assert_eq!(value(&after, "seedlog_partitions_offline"), 0.0);

    // Consumer lag: offsets committed for a group (through the admin CLI,
    // which may commit for a group with no members), against 500 records
    // in each partition.
    let reset = Command::new(env!("CARGO_BIN_EXE_seedlog"))
        .args(["groups", "reset-offsets", "lagging", "--topic", "metered"])
        .args([
            "--to-offset",
            "100",
            "--bootstrap-server",
            &broker.bootstrap,
        ])
        .output()
        .unwrap();
    assert!(reset.status.success(), "{reset:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let samples = scrape(&url);
        let lag = |p: i32| {
            value(
                &samples,
                &format!(
                    r#"seedlog_consumer_lag{{group="lagging",topic="metered",partition="{p}"}}"#
                ),
            )
        };
        if lag(0) == 400.0 && lag(1) == 400.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no lag of 400: {samples:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let (status, _) = http_get(&url.replace("/metrics", "/nope"));
    assert!(status.contains("404"), "{status}");
    broker.stop();
}

#[test]
fn a_killed_node_shows_as_under_replicated_partitions_and_isr_shrinks() {
    let dir = scratch_dir("metrics-cluster");
    let mut cluster = Cluster::start_ready(&dir, &["--metrics-listen", "127.0.0.1:0"]);
    let bootstrap = cluster.bootstrap();
    let leaders = create_led_topic(&bootstrap, "replicated", 3, 3);
    // Every replica in sync first: the leaders report nothing missing.
    let urls: BTreeMap<i32, String> = (1..=3)
        .map(|id| (id, cluster.node(id).metrics_url()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let led: f64 = urls
            .values()
            .map(|u| value(&scrape(u), "seedlog_partition_leaders"))
            .sum();
        let under: f64 = urls
            .values()
            .map(|u| value(&scrape(u), "seedlog_partitions_under_replicated"))
            .sum();
        // 3 partitions of ours plus __consumer_offsets' if it exists.
        if led >= 3.0 && under == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "led {led}, under-replicated {under}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // Kill a node that leads nothing of ours if there is one, so the
    // survivors keep leading and see it leave their ISRs.
    let victim = (1..=3).rev().find(|id| !leaders.contains(id)).unwrap_or(3);
    cluster.take(victim).kill();
    let survivors: Vec<i32> = (1..=3).filter(|id| *id != victim).collect();
    // A partition the victim led moves to a new leader whose ISR starts
    // without it: no shrink is seen there, only under-replication.
    let kept_leader = leaders.iter().filter(|l| **l != victim).count() as f64;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let scrapes: Vec<_> = survivors.iter().map(|id| scrape(&urls[id])).collect();
        let under: f64 = scrapes
            .iter()
            .map(|s| value(s, "seedlog_partitions_under_replicated"))
            .sum();
        let shrinks: f64 = scrapes
            .iter()
            .map(|s| value(s, "seedlog_isr_shrinks_total"))
            .sum();
        if under >= 3.0 && shrinks >= kept_leader {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {victim} killed 90 s ago: under-replicated {under}, ISR shrinks {shrinks}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The admin CLI sees the same.
    let bootstrap = survivors
        .iter()
        .map(|id| cluster.node(*id).bootstrap.clone())
        .collect::<Vec<_>>()
        .join(",");
    let output = Command::new(env!("CARGO_BIN_EXE_seedlog"))
        .args([
            "cluster",
            "describe",
            "--json",
            "--bootstrap-server",
            &bootstrap,
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let described: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let under = described["under_replicated_partitions"].as_array().unwrap();
    assert!(
        under.iter().filter(|p| p["topic"] == "replicated").count() == 3,
        "{described}"
    );
    cluster.stop();
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let dir = scratch_dir("log-format-json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_seedlog"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(&dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("seedlog serve starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let line = lines.next().expect("a log line").expect("utf-8");
    let _ = child.kill();
    let _ = child.wait();
    let entry: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(entry["level"], "INFO", "{line}");
    assert!(entry["timestamp"].is_string(), "{line}");
    assert!(entry["fields"]["message"].is_string(), "{line}");

    let bad = Command::new(env!("CARGO_BIN_EXE_seedlog"))
        .args(["serve", "--log-format", "xml"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("text, json"));
}
