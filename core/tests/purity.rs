//! The core is sans-IO: no async runtime among its dependencies, and no
//! socket, file, clock, thread, global RNG or unordered map in its source.
//! This test is the fence; `banned_calls_are_caught` proves the fence works.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Crates that would bring an executor, a reactor or real I/O into the core.
const BANNED_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "async-std",
    "smol",
    "async-io",
    "futures-executor",
    "socket2",
];

/// Source patterns and why each is banned.
const BANNED_PATTERNS: &[(&str, &str)] = &[
    ("std::net", "sockets belong to the adapter"),
    ("std::fs", "files go through the Storage trait"),
    ("std::io::stdin", "no terminal in the core"),
    ("Instant::now", "time is passed in"),
    ("SystemTime", "time is passed in"),
    ("thread::spawn", "the core is single-threaded"),
    ("std::thread", "the core is single-threaded"),
    ("thread_rng", "randomness comes from the node's seeded RNG"),
    (
        "rand::random",
        "randomness comes from the node's seeded RNG",
    ),
    ("OsRng", "randomness comes from the node's seeded RNG"),
    (
        "from_entropy",
        "randomness comes from the node's seeded RNG",
    ),
    (
        "HashMap",
        "iteration order must be deterministic: use BTreeMap",
    ),
    (
        "HashSet",
        "iteration order must be deterministic: use BTreeSet",
    ),
    ("std::env", "configuration is passed in"),
    ("std::process", "no processes in the core"),
];

/// Every banned pattern found in `source`, as `(line number, pattern, why)`.
/// Comments are skipped so that docs may name what they forbid.
fn violations(source: &str) -> Vec<(usize, &'static str, &'static str)> {
    let mut found = Vec::new();
    for (index, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for (pattern, why) in BANNED_PATTERNS {
            if code.contains(pattern) {
                found.push((index + 1, *pattern, *why));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("core/src is readable") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_source_makes_no_io_clock_thread_or_global_rng_calls() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 5, "found the core's sources");
    let mut report = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("source is utf-8");
        for (line, pattern, why) in violations(&source) {
            report.push(format!("{}:{line}: `{pattern}`: {why}", file.display()));
        }
    }
    assert!(
        report.is_empty(),
        "seedlog-core must stay sans-IO:\n{}",
        report.join("\n")
    );
}

#[test]
fn core_depends_on_no_async_runtime() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        tree.contains("kafka-protocol"),
        "the tree lists the core's dependencies:\n{tree}"
    );
    let banned: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| BANNED_CRATES.contains(name))
        .collect();
    assert!(
        banned.is_empty(),
        "seedlog-core must not depend on {banned:?}"
    );
}

#[test]
fn banned_calls_are_caught() {
    let bad = "fn f() {\n    let t = std::time::Instant::now();\n    let f = std::fs::read(\"x\");\n    let m: std::collections::HashMap<u8, u8> = Default::default();\n    let r = rand::thread_rng();\n    std::thread::spawn(|| {});\n}\n";
    let found: Vec<&str> = violations(bad).into_iter().map(|(_, p, _)| p).collect();
    for expected in [
        "Instant::now",
        "std::fs",
        "HashMap",
        "thread_rng",
        "thread::spawn",
    ] {
        assert!(
            found.contains(&expected),
            "{expected} not caught in {found:?}"
        );
    }
    assert!(violations("// Instant::now is banned, says this comment\nlet x = 1;").is_empty());
}
