//! kafka-python (pure Python client, idempotent producer by default)
//! against a real `seedlog serve`.

mod common;

use common::{kafka_python_available, run_python, scratch_dir, Broker};

#[test]
fn kafka_python_idempotent_producer_and_consumer_round_trip() {
    if !kafka_python_available() {
        return;
    }
    let dir = scratch_dir("interop-kafka-python");
    let broker = Broker::start(&dir, &[]);
    let stdout = run_python(
        "kafka_python_roundtrip.py",
        &[&broker.bootstrap, "py-interop", "3", "5000"],
    );
    assert_eq!(stdout.trim(), "ok 5000");
    broker.stop();
}
