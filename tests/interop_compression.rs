//! librdkafka producing compressed batches (gzip, snappy, lz4, zstd, none)
//! to a real `seedlog serve`, then reading them back. The broker stores
//! compressed batches as they arrive; the consumer decompresses them.

mod common;

use common::{
    consume_from_beginning, create_topic, scratch_dir, send_waiting_for_queue_space, Broker,
};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::Duration;

const CODECS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];
const RECORDS: usize = 3_000;
const TOPIC: &str = "compressed";

fn value(codec: &str, i: usize) -> String {
    // Repetitive payloads, so every codec actually shrinks the batch.
    format!("{codec}-value-{i:06}-{}", "abc".repeat(i % 20))
}

fn produce(bootstrap: &str, codec: &str, partition: i32) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("compression.type", codec)
        .set("linger.ms", "5")
        // Small batches: several compressed batches per partition, so
        // offsets are assigned across batch boundaries.
        .set("batch.size", "16384")
        .create()
        .unwrap_or_else(|e| panic!("{codec} producer: {e}"));
    for i in 0..RECORDS {
        let payload = value(codec, i);
        let key = i.to_string();
        let record = BaseRecord::to(TOPIC)
            .partition(partition)
            .key(&key)
            .payload(&payload);
        send_waiting_for_queue_space(&producer, record);
    }
    producer
        .flush(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{codec}: every record acknowledged: {e}"));
}

#[test]
fn librdkafka_round_trips_every_compression_codec() {
    let dir = scratch_dir("interop-compression");
    let broker = Broker::start(&dir, &[]);
    create_topic(&broker.bootstrap, TOPIC, CODECS.len() as i32);
    for (partition, codec) in CODECS.iter().enumerate() {
        produce(&broker.bootstrap, codec, partition as i32);
    }
    let values = consume_from_beginning(
        &broker.bootstrap,
        TOPIC,
        CODECS.len() as i32,
        RECORDS * CODECS.len(),
    );
    for (partition, codec) in CODECS.iter().enumerate() {
        let expected: Vec<String> = (0..RECORDS).map(|i| value(codec, i)).collect();
        assert!(
            values[partition] == expected,
            "{codec}: values arrive complete and in order ({} of {RECORDS})",
            values[partition].len()
        );
    }
    broker.stop();
}
