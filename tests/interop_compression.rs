//! librdkafka producing compressed batches (gzip, snappy, lz4, zstd, none)
//! to a real `seedlog serve`, then reading them back. The broker stores
//! compressed batches as they arrive; the consumer decompresses them.

mod common;

use common::{
    compressed_value, consume_from_beginning, create_topic, produce_compressed, scratch_dir, Broker,
};

const CODECS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];
const RECORDS: usize = 3_000;
const TOPIC: &str = "compressed";

#[test]
fn librdkafka_round_trips_every_compression_codec() {
    let dir = scratch_dir("interop-compression");
    let broker = Broker::start(&dir, &[]);
    create_topic(&broker.bootstrap, TOPIC, CODECS.len() as i32);
    for (partition, codec) in CODECS.iter().enumerate() {
        produce_compressed(&broker.bootstrap, TOPIC, codec, partition as i32, RECORDS);
    }
    let values = consume_from_beginning(
        &broker.bootstrap,
        TOPIC,
        CODECS.len() as i32,
        RECORDS * CODECS.len(),
    );
    for (partition, codec) in CODECS.iter().enumerate() {
        let expected: Vec<String> = (0..RECORDS).map(|i| compressed_value(codec, i)).collect();
        assert!(
            values[partition] == expected,
            "{codec}: values arrive complete and in order ({} of {RECORDS})",
            values[partition].len()
        );
    }
    broker.stop();
}
