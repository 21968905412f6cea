//! librdkafka (through the `rdkafka` crate) against a real `seedlog serve`.

mod common;

use common::{
    consume_from_beginning, create_topic, scratch_dir, send_waiting_for_queue_space, Broker,
};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::Duration;

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
    assert_eq!(
        consume_from_beginning(&broker.bootstrap, "interop", PARTITIONS, RECORDS),
        expected()
    );

    // Every acknowledged record was flushed before its ack: a SIGKILL loses none.
    broker.kill();
    let broker = Broker::start(&dir, &[]);
    assert_eq!(
        consume_from_beginning(&broker.bootstrap, "interop", PARTITIONS, RECORDS),
        expected()
    );
    broker.stop();
}
