//! Consumer groups in the simulator: the group scenarios pass without bug
//! flags; `static-member-dup` and `cooperative-direct-move` switched back on
//! are caught by `no_double_ownership` at fixed seeds, which pass without
//! them; bad `[groups]` fields are named; a group run replays identically.

use seedlog_sim::replay::{replay, ReplayOutcome};
use seedlog_sim::{run, Bug, RunOptions, RunReport, Scenario};
use std::path::Path;

fn scenario(name: &str) -> Scenario {
    Scenario::resolve(name).unwrap_or_else(|e| panic!("{e}"))
}

fn checkers(report: &RunReport) -> Vec<&str> {
    report
        .violations
        .iter()
        .map(|v| v.checker.as_str())
        .collect()
}

fn with_bug(bug: Bug) -> RunOptions {
    RunOptions {
        bugs: vec![bug],
        ..RunOptions::default()
    }
}

#[test]
fn group_scenarios_pass_and_their_members_work() {
    for name in ["group-classic", "group-cooperative", "group-kip848"] {
        let s = scenario(name);
        for seed in 0..2 {
            let report = run(&s, seed, &RunOptions::default());
            assert!(
                report.passed(),
                "{name} seed {seed}: {:?}",
                report.violations
            );
            let g = report.groups.as_ref().expect("a group report");
            assert!(g.joins > 0 && g.commits_accepted > 0, "{name}: {g:?}");
            assert!(g.stable_after_heal_ms.is_some(), "{name}: {g:?}");
        }
    }
}

/// The first failing seed of `seedlog sim explore SCENARIO --seeds 0..400
/// --jobs 1 --bug FLAG` for each flag; without flags all 400 seeds of each
/// group scenario pass. Seeds to find:
///
/// | scenario | flag | first failing seed | failing of 0..400 |
/// |---|---|---|---|
/// | group-kip848 | static-member-dup | 3 | 216 (coordinator's view) |
/// | group-kip848 | cooperative-direct-move | 0 | 400 (both views) |
/// | group-cooperative | cooperative-direct-move | 2 | 329 (members' view) |
///
/// `static-member-dup` shows in the coordinator's view only: the old
/// incarnation it leaves in the group is dead, and the live members'
/// reconciliation keeps what they may act on apart.
#[test]
fn group_bug_flags_are_caught_and_their_fixes_pass() {
    for (name, seed, bug) in [
        ("group-kip848", 3, Bug::StaticMemberDup),
        ("group-kip848", 0, Bug::CooperativeDirectMove),
        ("group-cooperative", 2, Bug::CooperativeDirectMove),
    ] {
        let s = scenario(name);
        let buggy = run(&s, seed, &with_bug(bug));
        assert!(
            checkers(&buggy).contains(&"no_double_ownership"),
            "{name} seed {seed} --bug {}: {:?}",
            bug.name(),
            buggy.violations
        );
        let fixed = run(&s, seed, &RunOptions::default());
        assert!(
            fixed.passed(),
            "{name} seed {seed} without the bug: {:?}",
            fixed.violations
        );
        assert_eq!(
            buggy.schedule, fixed.schedule,
            "the flag changes the coordinator or the assignor, not the faults"
        );
    }
}

/// Seeds a 22,500-run explore of the group scenarios found failing, each
/// fixed since (see `scenarios/found/group-explore-2026-12-05.md`):
/// - group-kip848 1857: a member's heartbeat answer telling it to revoke
///   was lost; its next heartbeat was answered without the assignment (the
///   coordinator thought it had told it) and renewed its lease, so it kept
///   the partition until the rebalance timeout fenced it and the partition
///   went to another member. Now its next heartbeat is a full request,
///   answered with the assignment, and its lease runs from the lost
///   heartbeat's send time.
/// - group-cooperative 9743: a static member stalled through generation 3
///   and rejoined generation 4 still holding its generation-2 partitions,
///   one of them handed on meanwhile; it committed and gave that one up
///   while its generation-3 owner held it too. A member that missed a
///   generation now treats what it held as lost (no commit).
/// - group-kip848 1681 (liveness_group: a member owned nothing, the group
///   never stable) passes since the 1857 fix.
/// - group-cooperative 3538 (liveness_group): the second half of a
///   cooperative move was lost with a failed-over coordinator; a classic
///   group loaded Stable now rebalances once (a deviation from Kafka).
/// - group-cooperative 3145 (second 10,000-seed explore): the coordinator
///   lost `__consumer_offsets` to an AZ cut without knowing it and went on
///   answering a member's heartbeats; the new coordinator expired that
///   member and gave its partition away while the member's lease still
///   ran. A classic Heartbeat now waits for the group's pending writes, as
///   Kafka's coordinator runtime does, so a cut-off coordinator renews no
///   lease.
#[test]
fn explore_failures_stay_fixed() {
    const FIXED: &[(&str, u64)] = &[
        ("group-kip848", 1857),
        ("group-cooperative", 9743),
        ("group-kip848", 1681),
        ("group-cooperative", 3538),
        ("group-cooperative", 3145),
    ];
    for &(name, seed) in FIXED {
        let report = run(&scenario(name), seed, &RunOptions::default());
        assert!(
            report.passed(),
            "{name} seed {seed}: {:?}",
            report.violations
        );
    }
}

#[test]
fn bad_group_fields_are_named() {
    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/group-classic.toml"),
    )
    .unwrap();
    Scenario::from_toml(&good, Path::new("g.toml")).expect("the scenario parses");
    for (from, to, field) in [
        (
            "assignor = \"range\"",
            "assignor = \"uniform\"",
            "groups.assignor",
        ),
        (
            "protocol = \"classic\"",
            "protocol = \"kip848\"",
            "protocol",
        ),
        (
            "members = [\"az-a\", \"az-b\", \"az-c\", \"az-a\"]",
            "members = [\"az-x\"]",
            "groups.members",
        ),
        (
            "members = [\"az-a\", \"az-b\", \"az-c\", \"az-a\"]",
            "members = []",
            "groups.members",
        ),
        (
            "heartbeat_interval_ms = 300",
            "heartbeat_interval_ms = 2000",
            "groups.heartbeat_interval_ms",
        ),
        (
            "session_timeout_ms = 3000",
            "session_timeout_ms = 0",
            "groups.session_timeout_ms",
        ),
        (
            "stable_ms_max = 12000",
            "stable_ms_max = 99000",
            "groups.stable_ms_max",
        ),
        (
            "leave_per_min = 2.0",
            "leave_per_min = -1.0",
            "groups.churn.leave_per_min",
        ),
        (
            "down_ms = [300, 4000]",
            "down_ms = [300, 40000]",
            "groups.churn.down_ms",
        ),
        (
            "commit_interval_ms = 500",
            "commit_every_ms = 500",
            "commit_every_ms",
        ),
    ] {
        assert!(good.contains(from), "{from}");
        let bad = good.replacen(from, to, 1);
        let err = Scenario::from_toml(&bad, Path::new("g.toml"))
            .expect_err(to)
            .to_string();
        assert!(err.contains(field), "{to}: {err}");
    }
    // Group bugs need a [groups] section.
    let plain = scenario("leader-crash");
    let err = plain
        .bugs_with(&[Bug::StaticMemberDup])
        .unwrap_err()
        .to_string();
    assert!(err.contains("[groups]"), "{err}");
    // And a [groups] section needs a cluster.
    let standalone = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/steady-state.toml"),
    )
    .unwrap();
    let with_groups = format!(
        "{standalone}\n[groups]\nprotocol = \"classic\"\nmembers = [\"{}\"]\n",
        scenario("steady-state").topology.azs[0]
    );
    let err = Scenario::from_toml(&with_groups, Path::new("s.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("[cluster]"), "{err}");
}

#[test]
fn a_group_run_replays_identically() {
    let s = scenario("group-kip848");
    let dir = std::env::temp_dir().join(format!("seedlog-groups-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.jsonl");
    let first = run(
        &s,
        5,
        &RunOptions {
            trace_file: Some(path.clone()),
            ..RunOptions::default()
        },
    );
    let again = run(&s, 5, &RunOptions::default());
    assert_eq!(first.trace_hash, again.trace_hash, "same seed, same trace");
    let (_, outcome) = replay(&path).expect("replays");
    assert!(
        matches!(outcome, ReplayOutcome::Identical { .. }),
        "replay differs: {outcome:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
