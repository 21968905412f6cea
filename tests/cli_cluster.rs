//! `seedlog cluster`: starts its nodes, says where they are, and takes them
//! all down on Ctrl-C.

mod common;

use common::{free_port_base, scratch_dir};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BROKERS: u16 = 3;

#[test]
fn cluster_prints_its_nodes_and_a_bootstrap_line_and_sigint_stops_every_child() {
    let dir = scratch_dir("cli-cluster");
    let base = free_port_base(BROKERS);
    let mut cluster = Command::new(env!("CARGO_BIN_EXE_seedlog"))
        .args(["cluster", "--brokers", &BROKERS.to_string()])
        .args(["--base-port", &base.to_string(), "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("seedlog cluster starts");
    let stdout = cluster.stdout.take().expect("piped stdout");
    // Reading on a thread of its own, so a silent cluster fails the test
    // at the deadline instead of hanging it.
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pids = Vec::new();
    let bootstrap = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("seedlog cluster printed every node and BOOTSTRAP in time");
        if let Some(bootstrap) = line.strip_prefix("BOOTSTRAP=") {
            break bootstrap.to_string();
        }
        let n = pids.len() as u16;
        let expected = format!(
            "node={id} rack=az-{id} listener=127.0.0.1:{client} controller=127.0.0.1:{controller} pid=",
            id = n + 1,
            client = base + n,
            controller = base + 100 + n,
        );
        let pid = line
            .strip_prefix(&expected)
            .unwrap_or_else(|| panic!("expected `{expected}PID`, got `{line}`"));
        pids.push(pid.parse::<u32>().expect("a pid"));
    };
    assert_eq!(pids.len(), usize::from(BROKERS));
    let clients: Vec<String> = (0..BROKERS)
        .map(|n| format!("127.0.0.1:{}", base + n))
        .collect();
    assert_eq!(bootstrap, clients.join(","));
    for pid in &pids {
        assert!(alive(*pid), "node pid {pid} runs");
    }
    for n in 1..=BROKERS {
        assert!(
            dir.join(format!("node-{n}")).is_dir(),
            "node-{n} has its data dir"
        );
    }

    let status = Command::new("kill")
        .args(["-INT", &cluster.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = cluster.try_wait().expect("waits") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "seedlog cluster stops within 30 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "a clean stop: {status}");
    for pid in pids {
        assert!(!alive(pid), "node pid {pid} is gone");
    }
}

/// Whether the process exists (not yet reaped). `seedlog cluster` waits for
/// its children, so after it exits they are gone for good.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
