//! kcat (librdkafka's command-line client) against a real `seedlog serve`,
//! exactly as a user would run it from a shell.

mod common;

use common::{kcat, kcat_available, scratch_dir, Broker};

const PARTITIONS: i32 = 3;
const RECORDS: usize = 100_000;

fn lines_for(partition: i32) -> Vec<String> {
    (0..RECORDS)
        .filter(|i| i % PARTITIONS as usize == partition as usize)
        .map(|i| format!("record-{i:06}"))
        .collect()
}

#[test]
fn kcat_produces_and_consumes_100k_records_over_three_partitions() {
    if !kcat_available() {
        return;
    }
    let dir = scratch_dir("interop-kcat");
    let broker = Broker::start(&dir, &["--num-partitions", "3"]);
    for partition in 0..PARTITIONS {
        kcat::produce(
            &broker.bootstrap,
            "kcat-interop",
            partition,
            &lines_for(partition),
            &[],
        );
    }
    let mut total = 0;
    for partition in 0..PARTITIONS {
        let read = kcat::consume_values(&broker.bootstrap, "kcat-interop", partition);
        let expected: Vec<(i64, String)> = lines_for(partition)
            .into_iter()
            .enumerate()
            .map(|(o, v)| (o as i64, v))
            .collect();
        assert_eq!(
            read.len(),
            expected.len(),
            "partition {partition} record count"
        );
        assert!(
            read == expected,
            "partition {partition}: offsets contiguous from 0, values in produce order"
        );
        total += read.len();
    }
    assert_eq!(total, RECORDS);
    broker.stop();
}
