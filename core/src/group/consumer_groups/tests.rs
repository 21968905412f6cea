use super::*;
use rand::{Rng, SeedableRng};

fn topics(partitions: i32) -> TopicsView {
    BTreeMap::from([("t".to_string(), (Uuid::from_u64_pair(0, 7), partitions))])
}

fn join(member: &str) -> HeartbeatIn {
    HeartbeatIn {
        group_id: "g".to_string(),
        member_id: member.to_string(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["t".to_string()]),
        ..HeartbeatIn::default()
    }
}

/// A heartbeat that reports owning what the member was last told it holds
/// (a client that reconciles at once).
fn beat(member: &str, epoch: i32, owned: &BTreeSet<TopicPartition>) -> HeartbeatIn {
    HeartbeatIn {
        group_id: "g".to_string(),
        member_id: member.to_string(),
        member_epoch: epoch,
        owned: Some(owned.clone()),
        ..HeartbeatIn::default()
    }
}

fn no_id() -> String {
    panic!("members bring their ids here")
}

struct Client {
    epoch: i32,
    owned: BTreeSet<TopicPartition>,
}

fn step(
    cg: &mut ConsumerGroups,
    now: Instant,
    clients: &mut BTreeMap<String, Client>,
    member: &str,
    view: &TopicsView,
) {
    let c = &clients[member];
    let out = cg.heartbeat(now, beat(member, c.epoch, &c.owned), view, no_id);
    assert_eq!(out.error, 0, "{member}: {out:?}");
    let c = clients.get_mut(member).unwrap();
    c.epoch = out.member_epoch;
    if let Some(a) = out.assignment {
        c.owned = a;
    }
    cg.check_invariants();
}

#[test]
fn members_share_partitions_and_a_newcomer_waits_for_revocation() {
    let mut cg = ConsumerGroups::new(ConsumerGroupsConfig::default());
    let now = Instant::from_millis(1_000);
    let view = topics(6);
    let a = cg.heartbeat(now, join("a"), &view, no_id);
    assert_eq!(a.error, 0);
    assert_eq!(
        a.assignment.as_ref().map(BTreeSet::len),
        Some(6),
        "alone: every partition"
    );
    assert!(a.member_epoch > 0);
    let mut clients = BTreeMap::from([(
        "a".to_string(),
        Client {
            epoch: a.member_epoch,
            owned: a.assignment.unwrap(),
        },
    )]);
    let b = cg.heartbeat(now, join("b"), &view, no_id);
    assert_eq!(b.error, 0);
    assert_eq!(
        b.assignment,
        Some(BTreeSet::new()),
        "b gets nothing a still owns"
    );
    cg.check_invariants();
    clients.insert(
        "b".to_string(),
        Client {
            epoch: b.member_epoch,
            owned: BTreeSet::new(),
        },
    );
    // a is told to give up three; b receives them only after a confirms.
    step(&mut cg, now, &mut clients, "a", &view);
    assert_eq!(clients["a"].owned.len(), 3);
    step(&mut cg, now, &mut clients, "b", &view);
    assert!(clients["b"].owned.is_empty(), "a has not confirmed yet");
    step(&mut cg, now, &mut clients, "a", &view); // confirms by reporting 3
    step(&mut cg, now, &mut clients, "b", &view);
    assert_eq!(clients["b"].owned.len(), 3);
    assert!(clients["a"].owned.is_disjoint(&clients["b"].owned));
    assert_eq!(cg.group("g").unwrap().state(), "Stable");
    assert_eq!(
        clients["a"].epoch, clients["b"].epoch,
        "both at the target epoch"
    );
}

#[test]
fn stale_epochs_unknown_members_and_leaving() {
    let mut cg = ConsumerGroups::new(ConsumerGroupsConfig::default());
    let now = Instant::from_millis(1_000);
    let view = topics(2);
    let a = cg.heartbeat(now, join("a"), &view, no_id);
    let out = cg.heartbeat(
        now,
        beat("a", a.member_epoch + 5, &BTreeSet::new()),
        &view,
        no_id,
    );
    assert_eq!(out.error, ResponseError::FencedMemberEpoch.code());
    let out = cg.heartbeat(now, beat("zz", 3, &BTreeSet::new()), &view, no_id);
    assert_eq!(out.error, ResponseError::UnknownMemberId.code());
    assert_eq!(cg.check_member("g", "a", a.member_epoch), Ok(()));
    assert_eq!(
        cg.check_member("g", "a", a.member_epoch - 1),
        Err(ResponseError::StaleMemberEpoch.code())
    );
    let mut leave = beat("a", -1, &BTreeSet::new());
    leave.owned = None;
    assert_eq!(cg.heartbeat(now, leave, &view, no_id).error, 0);
    assert!(!cg.contains("g"), "the last member left");
    let mut bad = join("c");
    bad.server_assignor = Some("sticky".to_string());
    assert_eq!(
        cg.heartbeat(now, bad, &view, no_id).error,
        ResponseError::UnsupportedAssignor.code()
    );
}

#[test]
fn sessions_expire_and_free_partitions() {
    let mut cg = ConsumerGroups::new(ConsumerGroupsConfig::default());
    let now = Instant::from_millis(1_000);
    let view = topics(4);
    let a = cg.heartbeat(now, join("a"), &view, no_id);
    assert_eq!(a.assignment.unwrap().len(), 4);
    let later = now + Duration::from_millis(45_001);
    assert!(cg.next_timeout().is_some_and(|t| t <= later));
    cg.handle_timeout(later);
    assert!(!cg.contains("g"));
}

#[test]
fn range_assigns_contiguous_ranges() {
    let mut cg = ConsumerGroups::new(ConsumerGroupsConfig::default());
    let now = Instant::from_millis(1_000);
    let view = topics(5);
    let mut a = join("a");
    a.server_assignor = Some(ASSIGNOR_RANGE.to_string());
    cg.heartbeat(now, a, &view, no_id);
    cg.heartbeat(now, join("b"), &view, no_id);
    let target = &cg.group("g").unwrap().target;
    let id = view["t"].0;
    assert_eq!(target["a"], BTreeSet::from([(id, 0), (id, 1), (id, 2)]));
    assert_eq!(target["b"], BTreeSet::from([(id, 3), (id, 4)]));
}

/// Random joins, leaves, heartbeats and topic growth: no partition is ever
/// owned twice, and once everyone heartbeats a few times in a quiet group,
/// every partition is held by exactly one member at the target epoch.
#[test]
fn random_membership_never_double_owns_and_converges() {
    for seed in 0..200u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut cg = ConsumerGroups::new(ConsumerGroupsConfig::default());
        let mut clients: BTreeMap<String, Client> = BTreeMap::new();
        let mut partitions = rng.gen_range(1..12);
        let mut now = Instant::from_millis(1_000);
        for _ in 0..200 {
            now = now + Duration::from_millis(rng.gen_range(0..200));
            let view = topics(partitions);
            match rng.gen_range(0..10) {
                0 if clients.len() < 6 => {
                    let id = format!("m{}", rng.gen_range(0..8));
                    let out = cg.heartbeat(now, join(&id), &view, no_id);
                    assert_eq!(out.error, 0);
                    clients.insert(
                        id,
                        Client {
                            epoch: out.member_epoch,
                            owned: out.assignment.unwrap_or_default(),
                        },
                    );
                }
                1 if !clients.is_empty() => {
                    let id = clients
                        .keys()
                        .nth(rng.gen_range(0..clients.len()))
                        .unwrap()
                        .clone();
                    let mut leave = beat(&id, -1, &BTreeSet::new());
                    leave.owned = None;
                    cg.heartbeat(now, leave, &view, no_id);
                    clients.remove(&id);
                }
                2 => partitions = (partitions + 1).min(16),
                _ if !clients.is_empty() => {
                    let id = clients
                        .keys()
                        .nth(rng.gen_range(0..clients.len()))
                        .unwrap()
                        .clone();
                    step(&mut cg, now, &mut clients, &id, &view);
                }
                _ => {}
            }
            cg.check_invariants();
        }
        let view = topics(partitions);
        let ids: Vec<String> = clients.keys().cloned().collect();
        for _ in 0..4 {
            for id in &ids {
                step(&mut cg, now, &mut clients, id, &view);
            }
        }
        if ids.is_empty() {
            continue;
        }
        let group = cg.group("g").unwrap();
        assert_eq!(group.state(), "Stable", "seed {seed}");
        let held: usize = clients.values().map(|c| c.owned.len()).sum();
        assert_eq!(
            held, partitions as usize,
            "seed {seed}: every partition held once"
        );
    }
}

fn static_join(member: &str, instance: &str) -> HeartbeatIn {
    HeartbeatIn {
        instance_id: Some(instance.to_string()),
        ..join(member)
    }
}

/// A static member comes back under a new id: it takes over the old
/// assignment and the old id is fenced, unless `static-member-dup` is on.
fn static_return(bugs: GroupBugs) -> ConsumerGroups {
    let mut cg = ConsumerGroups::new(ConsumerGroupsConfig {
        bugs,
        ..ConsumerGroupsConfig::default()
    });
    let now = Instant::from_millis(1_000);
    let view = topics(4);
    let first = cg.heartbeat(now, static_join("a-1", "i"), &view, no_id);
    assert_eq!(first.assignment.map(|a| a.len()), Some(4));
    let second = cg.heartbeat(now, static_join("a-2", "i"), &view, no_id);
    assert_eq!(second.error, 0);
    if bugs == GroupBugs::default() {
        assert_eq!(
            second.assignment.map(|a| a.len()),
            Some(4),
            "the new incarnation carries on"
        );
    }
    cg
}

#[test]
fn a_returning_static_member_replaces_its_old_incarnation() {
    let mut cg = static_return(GroupBugs::default());
    assert_eq!(cg.double_ownership(), None);
    let old = cg.heartbeat(
        Instant::from_millis(1_001),
        beat("a-1", 1, &BTreeSet::new()),
        &topics(4),
        no_id,
    );
    assert_eq!(
        old.error,
        ResponseError::UnknownMemberId.code(),
        "the old id is fenced"
    );
}

#[test]
fn static_member_dup_bug_leaves_two_owners() {
    let cg = static_return(GroupBugs {
        static_member_dup: true,
        ..GroupBugs::default()
    });
    assert!(
        cg.double_ownership().is_some(),
        "the bug shows as double ownership"
    );
}

#[test]
fn cooperative_direct_move_bug_assigns_before_revocation() {
    let run = |bugs: GroupBugs| {
        let mut cg = ConsumerGroups::new(ConsumerGroupsConfig {
            bugs,
            ..ConsumerGroupsConfig::default()
        });
        let now = Instant::from_millis(1_000);
        let view = topics(4);
        let a = cg.heartbeat(now, join("a"), &view, no_id);
        let owned = a.assignment.unwrap();
        cg.heartbeat(now, join("b"), &view, no_id);
        // a is told to give two up but has not confirmed; b heartbeats.
        cg.heartbeat(now, beat("a", a.member_epoch, &owned), &view, no_id);
        cg.heartbeat(now, beat("b", 0, &BTreeSet::new()), &view, no_id);
        cg.double_ownership()
    };
    assert_eq!(run(GroupBugs::default()), None);
    assert!(
        run(GroupBugs {
            cooperative_direct_move: true,
            ..GroupBugs::default()
        })
        .is_some(),
        "with the bug, b holds partitions a still owns"
    );
}
