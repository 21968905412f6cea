//! `seedlog serve --config FILE.toml`: a real broker started from a file,
//! bad values and unknown keys refused by name with exit code 1, the
//! precedence flag > environment > file > default, `--help` documenting
//! every setting, and `seedlog.example.toml` valid.

mod common;

use common::{free_port_base, scratch_dir, Broker};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `seedlog` with no `SEEDLOG_*` variable of the test's own environment.
fn seedlog() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_seedlog"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SEEDLOG_") {
            command.env_remove(name);
        }
    }
    command.env("RUST_LOG", "warn");
    command
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the config file");
    path
}

fn serve(command: Command, data_dir: &Path) -> String {
    Broker::spawn(command, data_dir).bootstrap.clone()
}

/// `seedlog serve --config FILE`, run to its end.
fn serve_with_file(config: &Path) -> Output {
    seedlog()
        .arg("serve")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn refused(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "exit code 1; stdout {} stderr {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_broker_starts_from_a_config_file_and_answers_on_its_port() {
    let dir = scratch_dir("serve-config-good");
    let port = free_port_base(1);
    let config = write(
        &dir,
        "seedlog.toml",
        &format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\nnum_partitions = 3\n\
             auto_create_topics = false\n",
            dir.join("data").display().to_string()
        ),
    );
    let mut command = seedlog();
    command.arg("serve").arg("--config").arg(&config);
    let broker = Broker::spawn(command, &dir);
    let address = broker.bootstrap.clone();
    assert_eq!(address, format!("127.0.0.1:{port}"));
    // A real Kafka client round trip: the topic gets the file's
    // num_partitions, which is not the default of 1.
    let created = seedlog()
        .args(["topics", "create", "from-file", "--bootstrap-server"])
        .arg(&address)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let described = seedlog()
        .args([
            "topics",
            "describe",
            "from-file",
            "--json",
            "--bootstrap-server",
        ])
        .arg(&address)
        .output()
        .unwrap();
    assert!(described.status.success(), "{described:?}");
    let json: serde_json::Value = serde_json::from_slice(&described.stdout).expect("JSON");
    let text = json.to_string();
    let partitions = json
        .pointer("/0/partitions")
        .and_then(|p| p.as_array())
        .unwrap_or_else(|| panic!("partitions in {text}"));
    assert_eq!(partitions.len(), 3, "{text}");
    assert!(dir.join("data").is_dir(), "data_dir from the file");
}

#[test]
fn a_bad_value_exits_1_naming_the_field_and_the_range() {
    let dir = scratch_dir("serve-config-bad");
    let config = write(&dir, "x.toml", "num_partitions = 0\n");
    let output = serve_with_file(&config);
    assert_eq!(
        refused(&output),
        format!(
            "seedlog: config file {}: num_partitions = 0 is out of range 1..=10000\n",
            config.display()
        )
    );
    // The same check for a flag and a variable, named as given.
    let output = seedlog()
        .args(["serve", "--max-connections", "0"])
        .output()
        .unwrap();
    assert_eq!(
        refused(&output),
        "seedlog: --max-connections 0 is out of range 1..=1000000\n"
    );
    let output = seedlog()
        .args(["serve"])
        .env("SEEDLOG_LOG_RETENTION_MS", "-5")
        .output()
        .unwrap();
    assert_eq!(
        refused(&output),
        "seedlog: SEEDLOG_LOG_RETENTION_MS=-5 is out of range -1..=9223372036854775807\n"
    );
    // A negative value is a value, not an unknown flag.
    let output = seedlog()
        .args(["serve", "--log-retention-bytes", "-2"])
        .output()
        .unwrap();
    assert_eq!(
        refused(&output),
        "seedlog: --log-retention-bytes -2 is out of range -1..=9223372036854775807\n"
    );
    let config = write(&dir, "typed.toml", "flush_before_ack = \"no\"\n");
    let stderr = refused(&serve_with_file(&config));
    assert!(
        stderr.contains("flush_before_ack = \"no\" is a string"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_key_is_refused_by_name() {
    let dir = scratch_dir("serve-config-unknown");
    let config = write(&dir, "x.toml", "num_partitions = 2\nnum_partition = 3\n");
    let stderr = refused(&serve_with_file(&config));
    assert!(
        stderr.contains(&format!(
            "config file {}: unknown setting 'num_partition'",
            config.display()
        )),
        "{stderr}"
    );
    assert!(refused(&serve_with_file(&dir.join("missing.toml"))).contains("missing.toml"));
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file() {
    let dir = scratch_dir("serve-config-precedence");
    let base = free_port_base(3);
    let listen = |i: u16| format!("127.0.0.1:{}", base + i);
    let config = write(
        &dir,
        "x.toml",
        &format!(
            "listen = \"{}\"\ndata_dir = {:?}\nnode_id = 5\n",
            listen(0),
            dir.join("data").display().to_string()
        ),
    );
    let run = |flag: bool, env: bool| {
        let mut command = seedlog();
        command.arg("serve").arg("--config").arg(&config);
        if env {
            command.env("SEEDLOG_LISTEN", listen(1));
        }
        if flag {
            command.args(["--listen", &listen(2)]);
        }
        serve(command, &dir)
    };
    assert_eq!(run(true, true), listen(2), "flag over environment and file");
    assert_eq!(run(false, true), listen(1), "environment over file");
    assert_eq!(run(false, false), listen(0), "file over default");

    // Every source for one setting, as --print-config reports it.
    let printed = |args: &[&str], env: Option<&str>| {
        let mut command = seedlog();
        command
            .args(["serve", "--print-config", "--config"])
            .arg(&config);
        command.args(args);
        if let Some(v) = env {
            command.env("SEEDLOG_NODE_ID", v);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        let text = String::from_utf8(output.stdout).unwrap();
        text.lines()
            .find(|l| l.starts_with("node_id = "))
            .expect("node_id printed")
            .to_string()
    };
    assert_eq!(
        printed(&["--node-id", "7"], Some("6")),
        "node_id = 7 # --node-id"
    );
    assert_eq!(printed(&[], Some("6")), "node_id = 6 # SEEDLOG_NODE_ID");
    assert_eq!(
        printed(&[], None),
        format!("node_id = 5 # {}", config.display())
    );
    let output = seedlog()
        .args(["serve", "--print-config"])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("node_id = 1 # default"), "{text}");
}

/// The settings `--print-config` lists with their defaults: (key, value
/// as TOML writes it, or None when unset).
fn defaults() -> Vec<(String, Option<String>)> {
    let output = seedlog()
        .args(["serve", "--print-config"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let settings: Vec<_> = text
        .lines()
        .map(|line| {
            if let Some(rest) = line.strip_prefix("# ") {
                let key = rest.split_whitespace().next().expect("a key");
                return (key.to_string(), None);
            }
            let (key, rest) = line.split_once(" = ").expect("key = value");
            let value = rest.rsplit_once(" # ").expect("a source").0;
            (key.to_string(), Some(value.to_string()))
        })
        .collect();
    assert!(settings.len() >= 30, "{text}");
    settings
}

#[test]
fn help_documents_every_setting_with_its_variable_and_default() {
    let output = seedlog().args(["serve", "--help"]).output().unwrap();
    assert!(output.status.success());
    // clap wraps long help lines; compare on single spaces.
    let help = String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for (key, default) in defaults() {
        let flag = format!("--{}", key.replace('_', "-"));
        let env = format!("SEEDLOG_{}", key.to_uppercase());
        assert!(help.contains(&flag), "{flag} in --help");
        assert!(help.contains(&env), "{env} in --help");
        if let Some(default) = default {
            let shown = default.trim_matches('"');
            assert!(
                help.contains(&format!("[default: {shown}]")),
                "{key}'s default {shown} in --help"
            );
        }
    }
}

#[test]
fn the_example_file_is_valid_and_names_every_setting() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("seedlog.example.toml");
    let text = std::fs::read_to_string(&example).expect("seedlog.example.toml");
    let printed = print_config(&example);
    assert!(
        printed.contains(&format!("num_partitions = 3 # {}", example.display())),
        "{printed}"
    );
    // Every setting is there, set or as a commented-out line; with those
    // lines uncommented the file is still valid.
    let mut all = String::new();
    for line in text.lines() {
        match line.strip_prefix("# ") {
            Some(rest) if rest.split_once(" = ").is_some_and(|(k, _)| is_key(k)) => {
                all.push_str(rest);
            }
            _ => all.push_str(line),
        }
        all.push('\n');
    }
    for (key, _) in defaults() {
        assert!(
            all.lines().any(|l| l.starts_with(&format!("{key} = "))),
            "{key} in seedlog.example.toml"
        );
    }
    let dir = scratch_dir("serve-config-example");
    let uncommented = write(&dir, "all.toml", &all);
    let printed = print_config(&uncommented);
    assert!(printed.contains("rack = \"az-1\""), "{printed}");
}

/// `seedlog serve --print-config --config FILE`, which must succeed.
fn print_config(file: &Path) -> String {
    let output = seedlog()
        .args(["serve", "--print-config", "--config"])
        .arg(file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("utf-8")
}

fn is_key(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
