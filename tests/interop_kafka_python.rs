//! kafka-python (pure Python client, idempotent producer by default)
//! against a real `seedlog serve`.

mod common;

use common::{scratch_dir, Broker};
use std::process::Command;

fn kafka_python_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import kafka"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("SEEDLOG_REQUIRE_CLIENTS").is_none(),
            "kafka-python is required here (pip install kafka-python)"
        );
        eprintln!("SKIPPED: kafka-python is not installed (pip install kafka-python); .ci/run installs it and requires this test");
    }
    found
}

#[test]
fn kafka_python_idempotent_producer_and_consumer_round_trip() {
    if !kafka_python_available() {
        return;
    }
    let dir = scratch_dir("interop-kafka-python");
    let broker = Broker::start(&dir, &[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/kafka_python_roundtrip.py"
    );
    let output = Command::new("python3")
        .args([script, &broker.bootstrap, "py-interop", "3", "5000"])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kafka-python round trip failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), "ok 5000");
    broker.stop();
}
