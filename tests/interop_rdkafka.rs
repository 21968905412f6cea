//! librdkafka (through the `rdkafka` crate) against a real `seedlog serve`.

mod common;

use common::{create_topic, scratch_dir, send_waiting_for_queue_space, Broker};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 4;
const RECORDS: usize = 100_000;

fn produce_all(bootstrap: &str, topic: &str) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .expect("producer");
    for i in 0..RECORDS {
        let partition = (i % PARTITIONS as usize) as i32;
        let key = i.to_string();
        let value = format!("value-{i:06}");
        let record = BaseRecord::to(topic)
            .partition(partition)
            .key(&key)
            .payload(&value);
        send_waiting_for_queue_space(&producer, record);
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("every record acknowledged");
}

/// Reads every partition from the beginning; returns the values per partition.
fn consume_all(bootstrap: &str, topic: &str) -> Vec<Vec<String>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka's assign() needs a group id even though no group is
        // joined and nothing is committed.
        .set("group.id", "seedlog-interop")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    let mut values = vec![Vec::new(); PARTITIONS as usize];
    let mut offsets = vec![0i64; PARTITIONS as usize];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut total = 0;
    while total < RECORDS {
        assert!(
            Instant::now() < deadline,
            "consumed only {total} of {RECORDS} records"
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("no consumer error");
        let p = message.partition() as usize;
        assert_eq!(
            message.offset(),
            offsets[p],
            "partition {p} read in offset order without gaps"
        );
        offsets[p] += 1;
        values[p].push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
        total += 1;
    }
    values
}

fn expected() -> Vec<Vec<String>> {
    let mut values = vec![Vec::new(); PARTITIONS as usize];
    for i in 0..RECORDS {
        values[i % PARTITIONS as usize].push(format!("value-{i:06}"));
    }
    values
}

#[test]
fn librdkafka_produces_and_consumes_100k_records_in_order_across_a_restart() {
    let dir = scratch_dir("interop-rdkafka");
    let broker = Broker::start(&dir, &[]);
    create_topic(&broker.bootstrap, "interop", PARTITIONS);
    produce_all(&broker.bootstrap, "interop");
    assert_eq!(consume_all(&broker.bootstrap, "interop"), expected());

    // Every acknowledged record was flushed before its ack: a SIGKILL loses none.
    broker.kill();
    let broker = Broker::start(&dir, &[]);
    assert_eq!(consume_all(&broker.bootstrap, "interop"), expected());
    broker.stop();
}
