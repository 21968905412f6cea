//! The admin commands (`seedlog topics`, `seedlog groups`, `seedlog cluster
//! describe`) as a user runs them: the built binary against a real
//! `seedlog serve` on 127.0.0.1, with a real librdkafka consumer group.
//! Assertions read the `--json` output; the tables are checked for the
//! lines a reader looks for.

mod common;

use common::cli::{fails, json, ok, seedlog};
use common::cluster::{Cluster, NODES};
use common::{produce_values, scratch_dir, Broker};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

fn topic<'a>(described: &'a Value, name: &str) -> &'a Value {
    described
        .as_array()
        .expect("a list of topics")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("topic {name} in {described}"))
}

fn config<'a>(topic: &'a Value, key: &str) -> Option<&'a str> {
    topic["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .find(|c| c[0] == key)
        .and_then(|c| c[1].as_str())
}

#[test]
fn topics_are_created_described_altered_and_deleted() {
    let dir = scratch_dir("cli-admin-topics");
    let broker = Broker::start(&dir, &["--no-auto-create-topics"]);
    let b = broker.bootstrap.as_str();

    let created = ok(
        b,
        &[
            "topics",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=3600000",
        ],
    );
    assert!(created.contains("Created topic orders"), "{created}");
    let list = ok(b, &["topics", "list"]);
    assert!(list.lines().any(|l| l == "orders"), "{list}");

    let described = json(b, &["topics", "describe", "orders"]);
    let orders = topic(&described, "orders");
    assert_eq!(orders["partitions"].as_array().unwrap().len(), 3);
    for p in orders["partitions"].as_array().unwrap() {
        assert_eq!(p["leader"], 1);
        assert_eq!(p["replicas"], serde_json::json!([1]));
        assert_eq!(p["isr"], serde_json::json!([1]));
    }
    assert_eq!(config(orders, "retention.ms"), Some("3600000"));
    assert_eq!(
        config(orders, "cleanup.policy"),
        None,
        "only configs set on the topic"
    );
    let table = ok(b, &["topics", "describe", "orders"]);
    assert!(
        table.contains("PartitionCount: 3") && table.contains("Configs: retention.ms=3600000"),
        "{table}"
    );

    // Alter: a config set, one removed, more partitions.
    ok(
        b,
        &[
            "topics",
            "alter",
            "orders",
            "--config",
            "cleanup.policy=compact",
            "--delete-config",
            "retention.ms",
            "--partitions",
            "5",
        ],
    );
    let described = json(b, &["topics", "describe", "orders"]);
    let orders = topic(&described, "orders");
    assert_eq!(orders["partitions"].as_array().unwrap().len(), 5);
    assert_eq!(config(orders, "cleanup.policy"), Some("compact"));
    assert_eq!(config(orders, "retention.ms"), None);

    // Errors: named, with Kafka's error code, and a non-zero exit.
    let again = fails(b, &["topics", "create", "orders"]);
    assert!(
        again.contains("topic 'orders': TOPIC_ALREADY_EXISTS"),
        "{again}"
    );
    let unknown = fails(b, &["topics", "describe", "no-such-topic"]);
    assert!(
        unknown.contains("topic 'no-such-topic': UNKNOWN_TOPIC_OR_PARTITION"),
        "{unknown}"
    );
    let unknown = fails(b, &["topics", "alter", "no-such-topic", "--config", "a=b"]);
    assert!(unknown.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{unknown}");
    let bad = fails(b, &["topics", "create", "x", "--config", "retention.ms"]);
    assert!(
        bad.contains("expected KEY=VALUE, got 'retention.ms'"),
        "{bad}"
    );
    let bad = fails(b, &["topics", "alter", "orders", "--config", "=5"]);
    assert!(bad.contains("KEY=VALUE"), "{bad}");
    let fewer = fails(b, &["topics", "alter", "orders", "--partitions", "2"]);
    assert!(
        fewer.contains("topic 'orders': INVALID_PARTITIONS"),
        "{fewer}"
    );

    ok(b, &["topics", "delete", "orders"]);
    let list = ok(b, &["topics", "list"]);
    assert!(!list.lines().any(|l| l == "orders"), "{list}");
    let gone = fails(b, &["topics", "delete", "orders"]);
    assert!(gone.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{gone}");
    broker.stop();
}

#[test]
fn an_unreachable_bootstrap_server_is_a_clear_error() {
    // A port nothing listens on: bound, then released.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let bootstrap = format!("127.0.0.1:{port}");
    for args in [
        &["topics", "list"][..],
        &["groups", "list"],
        &["cluster", "describe"],
    ] {
        let error = fails(&bootstrap, args);
        assert!(
            error.contains(&format!("cannot reach any bootstrap server ({bootstrap})")),
            "{args:?}: {error}"
        );
    }
    // And the environment variable is read.
    let output = Command::new(env!("CARGO_BIN_EXE_seedlog"))
        .args(["topics", "list"])
        .env("SEEDLOG_BOOTSTRAP", &bootstrap)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains(&bootstrap));
}

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("client.id", "cli-admin-consumer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "30000")
        .create()
        .expect("consumer")
}

/// The group's state as `groups describe --json` says, polled until
/// `ready` holds.
fn describe_until(
    bootstrap: &str,
    group: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let described = json(bootstrap, &["groups", "describe", group]);
        if ready(&described) {
            return described;
        }
        assert!(
            Instant::now() < deadline,
            "group {group} not {what} within 30 s: {described}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// (partition, committed, log end, lag) of each row of a description.
type OffsetRow = (i64, Option<i64>, Option<i64>, Option<i64>);

fn offsets(described: &Value) -> Vec<OffsetRow> {
    described["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["partition"].as_i64().unwrap(),
                o["committed"].as_i64(),
                o["log_end_offset"].as_i64(),
                o["lag"].as_i64(),
            )
        })
        .collect()
}

#[test]
fn a_consumer_group_is_described_reset_only_when_empty_and_deleted() {
    let dir = scratch_dir("cli-admin-groups");
    let broker = Broker::start(&dir, &["--group-initial-rebalance-delay-ms", "0"]);
    let b = broker.bootstrap.as_str();
    ok(b, &["topics", "create", "events", "--partitions", "2"]);
    // Ten records, five per partition.
    produce_values(b, "events", 2, 0..10, &[]);

    let group = "cli-admin-group";
    let member = consumer(b, group);
    member.subscribe(&["events"]).expect("subscribe");
    consume_and_commit(&member, 10);
    // Four more per partition after the commit: a lag of 4 on each.
    produce_values(b, "events", 2, 10..18, &[]);

    let described = describe_until(b, group, "Stable with lag", |d| {
        d["state"] == "Stable" && offsets(d).iter().all(|o| o.3 == Some(4))
    });
    assert_eq!(described["group_type"], "classic");
    assert_eq!(described["protocol_type"], "consumer");
    assert_eq!(described["protocol"], "range");
    let members = described["members"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["client_id"], "cli-admin-consumer");
    assert_eq!(
        members[0]["assignment"],
        serde_json::json!({ "events": [0, 1] })
    );
    assert_eq!(
        offsets(&described),
        vec![
            (0, Some(5), Some(9), Some(4)),
            (1, Some(5), Some(9), Some(4))
        ]
    );
    let member_id = members[0]["member_id"].as_str().unwrap();
    for o in described["offsets"].as_array().unwrap() {
        assert_eq!(o["member_id"], member_id);
    }
    let table = ok(b, &["groups", "describe", group]);
    assert!(table.contains("State: Stable"), "{table}");
    assert!(table.contains("events:0,1"), "{table}");
    assert!(
        table.lines().any(|l| l
            .split_whitespace()
            .take(5)
            .eq(["events", "0", "5", "9", "4"])),
        "{table}"
    );
    let listed = json(b, &["groups", "list"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == group && g["state"] == "Stable"),
        "{listed}"
    );

    // A live group's offsets stay put.
    let refused = fails(
        b,
        &[
            "groups",
            "reset-offsets",
            group,
            "--topic",
            "events",
            "--to-earliest",
        ],
    );
    assert!(
        refused.contains(&format!("group '{group}' is Stable with 1 member(s)"))
            && refused.contains("Empty"),
        "{refused}"
    );
    let still = json(b, &["groups", "describe", group]);
    assert_eq!(offsets(&still)[0].1, Some(5));
    let refused = fails(b, &["groups", "delete", group]);
    assert!(refused.contains("NON_EMPTY_GROUP"), "{refused}");

    // Once the member has left, the group is Empty and its offsets move.
    member.unsubscribe();
    drop(member);
    describe_until(b, group, "Empty", |d| d["state"] == "Empty");
    let reset = json(
        b,
        &[
            "groups",
            "reset-offsets",
            group,
            "--topic",
            "events",
            "--to-earliest",
        ],
    );
    assert_eq!(reset["offsets"][0]["previous"], 5);
    assert_eq!(reset["offsets"][0]["offset"], 0);
    let described = json(b, &["groups", "describe", group]);
    assert_eq!(
        offsets(&described),
        vec![
            (0, Some(0), Some(9), Some(9)),
            (1, Some(0), Some(9), Some(9))
        ]
    );
    ok(
        b,
        &[
            "groups",
            "reset-offsets",
            group,
            "--topic",
            "events",
            "--to-offset",
            "7",
        ],
    );
    let described = json(b, &["groups", "describe", group]);
    assert_eq!(offsets(&described)[0].1, Some(7));
    // Beyond the log end: kept at the end.
    ok(
        b,
        &[
            "groups",
            "reset-offsets",
            group,
            "--topic",
            "events",
            "--to-offset",
            "1000",
        ],
    );
    let described = json(b, &["groups", "describe", group]);
    assert_eq!(offsets(&described)[1].1, Some(9));
    let dry = ok(
        b,
        &[
            "groups",
            "reset-offsets",
            group,
            "--topic",
            "events",
            "--to-latest",
            "--dry-run",
        ],
    );
    assert!(dry.contains("dry run"), "{dry}");
    let unknown_topic = fails(
        b,
        &[
            "groups",
            "reset-offsets",
            group,
            "--topic",
            "nope",
            "--to-latest",
        ],
    );
    assert!(
        unknown_topic.contains("topic 'nope': UNKNOWN_TOPIC_OR_PARTITION"),
        "{unknown_topic}"
    );
    let no_target = fails(b, &["groups", "reset-offsets", group, "--topic", "events"]);
    assert!(no_target.contains("--to-earliest"), "{no_target}");

    ok(b, &["groups", "delete", group]);
    let gone = fails(b, &["groups", "describe", group]);
    assert!(gone.contains("GROUP_ID_NOT_FOUND"), "{gone}");
    broker.stop();
}

#[test]
fn cluster_describe_lists_every_broker_with_its_rack() {
    let dir = scratch_dir("cli-admin-cluster");
    let cluster = Cluster::start_ready(&dir, &[]);
    let b = cluster.bootstrap();

    // Metadata listed every node already; each node's own view of the
    // registered brokers (DescribeCluster) may take a moment more.
    let deadline = Instant::now() + Duration::from_secs(30);
    let described = loop {
        let described = json(&b, &["cluster", "describe"]);
        if described["brokers"].as_array().unwrap().len() == usize::from(NODES) {
            break described;
        }
        assert!(
            Instant::now() < deadline,
            "not every broker described: {described}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let brokers = described["brokers"].as_array().unwrap();
    for (i, broker) in brokers.iter().enumerate() {
        let id = i as i64 + 1;
        assert_eq!(broker["id"], id);
        assert_eq!(broker["rack"], format!("az-{id}"));
        assert_eq!(broker["fenced"], false);
    }
    let controller = described["controller_id"].as_i64().unwrap();
    assert!((1..=3).contains(&controller), "{described}");
    assert!(described["cluster_id"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    let table = ok(&b, &["cluster", "describe"]);
    assert!(
        table.contains("az-2") && table.contains("Under-replicated partitions: 0"),
        "{table}"
    );

    // A replicated topic, created and described through the CLI.
    ok(
        &b,
        &[
            "topics",
            "create",
            "replicated",
            "--partitions",
            "2",
            "--replication-factor",
            "3",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The node asked may not have applied the new topic yet.
        let output = seedlog(&b, &["topics", "describe", "replicated", "--json"]);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{stderr}");
            assert!(Instant::now() < deadline, "topic never described: {stderr}");
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let described: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let partitions = topic(&described, "replicated")["partitions"].clone();
        let full = partitions.as_array().unwrap().iter().all(|p| {
            p["leader"].as_i64().unwrap() >= 1
                && p["replicas"].as_array().unwrap().len() == 3
                && p["isr"].as_array().unwrap().len() == 3
        });
        if full {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not fully replicated: {described}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    cluster.stop();
}

#[test]
fn a_kip_848_group_is_described_with_members_and_lag_and_reset_once_empty() {
    let dir = scratch_dir("cli-admin-kip848");
    let broker = Broker::start(&dir, &["--group-initial-rebalance-delay-ms", "0"]);
    let b = broker.bootstrap.as_str();
    ok(b, &["topics", "create", "kip848", "--partitions", "2"]);
    produce_values(b, "kip848", 2, 0..10, &[]);

    let group = "cli-admin-kip848";
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b)
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("client.id", "cli-admin-kip848")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    member.subscribe(&["kip848"]).expect("subscribe");
    consume_and_commit(&member, 10);
    produce_values(b, "kip848", 2, 10..14, &[]);

    let described = describe_until(b, group, "Stable with lag", |d| {
        d["state"] == "Stable" && offsets(d).iter().all(|o| o.3 == Some(2))
    });
    assert_eq!(described["group_type"], "consumer", "{described}");
    let members = described["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{described}");
    assert_eq!(members[0]["client_id"], "cli-admin-kip848");
    assert_eq!(
        members[0]["assignment"],
        serde_json::json!({ "kip848": [0, 1] })
    );
    assert_eq!(
        offsets(&described),
        vec![
            (0, Some(5), Some(7), Some(2)),
            (1, Some(5), Some(7), Some(2))
        ]
    );
    let listed = json(b, &["groups", "list"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == group && g["group_type"] == "consumer"),
        "{listed}"
    );
    let refused = fails(
        b,
        &[
            "groups",
            "reset-offsets",
            group,
            "--topic",
            "kip848",
            "--to-latest",
        ],
    );
    assert!(refused.contains("is Stable with 1 member(s)"), "{refused}");

    member.unsubscribe();
    drop(member);
    describe_until(b, group, "Empty", |d| d["state"] == "Empty");
    ok(
        b,
        &[
            "groups",
            "reset-offsets",
            group,
            "--topic",
            "kip848",
            "--to-latest",
        ],
    );
    let described = json(b, &["groups", "describe", group]);
    assert_eq!(
        offsets(&described),
        vec![
            (0, Some(7), Some(7), Some(0)),
            (1, Some(7), Some(7), Some(0))
        ]
    );
    broker.stop();
}

/// Polls `member` until it has read `count` records (60 s at most), then
/// commits its position synchronously.
fn consume_and_commit(member: &BaseConsumer, count: usize) {
    let mut consumed = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumed < count {
        assert!(Instant::now() < deadline, "consumed {consumed} of {count}");
        if let Some(message) = member.poll(Duration::from_millis(200)) {
            message.expect("no consumer error");
            consumed += 1;
        }
    }
    member
        .commit_consumer_state(CommitMode::Sync)
        .expect("offsets committed");
}
