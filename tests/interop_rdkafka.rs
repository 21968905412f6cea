//! librdkafka (through the `rdkafka` crate) against a real `seedlog serve`.

mod common;

use common::{
    consume_from_beginning, create_topic, expected_values, produce_values, scratch_dir, Broker,
};

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
