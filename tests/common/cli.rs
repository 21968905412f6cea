//! The `seedlog` binary as a user runs it against a running broker.

use serde_json::Value;
use std::process::{Command, Output};

/// Runs `seedlog ARGS --bootstrap-server BOOTSTRAP`.
pub fn seedlog(bootstrap: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seedlog"))
        .args(args)
        .args(["--bootstrap-server", bootstrap])
        .env_remove("SEEDLOG_BOOTSTRAP")
        .output()
        .expect("seedlog runs")
}

/// Runs it, asserts success, returns stdout.
pub fn ok(bootstrap: &str, args: &[&str]) -> String {
    let output = seedlog(bootstrap, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "seedlog {args:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs it with `--json`, asserts success, parses stdout.
pub fn json(bootstrap: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let stdout = ok(bootstrap, &args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"))
}

/// Runs it, asserts a non-zero exit, returns stderr.
pub fn fails(bootstrap: &str, args: &[&str]) -> String {
    let output = seedlog(bootstrap, args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "seedlog {args:?} succeeded but should not have:\nstdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_ne!(output.status.code(), Some(0));
    stderr
}
