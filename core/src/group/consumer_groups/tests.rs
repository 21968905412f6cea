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

/// A revocation whose answer was lost: the member's next plain heartbeat
/// is not told again (the coordinator believes it was), its full request
/// (what Java's client sends after a failed heartbeat) is, as in Kafka.
#[test]
fn a_full_request_is_answered_with_the_assignment_again() {
    let mut cg = ConsumerGroups::new(ConsumerGroupsConfig::default());
    let now = Instant::from_millis(1_000);
    let view = topics(4);
    let a = cg.heartbeat(now, join("a"), &view, no_id);
    let owned = a.assignment.clone().expect("a joining member is told");
    assert_eq!(owned.len(), 4);
    let epoch = a.member_epoch;
    cg.heartbeat(now, join("b"), &view, no_id);
    // This answer, telling `a` to give two partitions up, is lost.
    let lost = cg.heartbeat(now, beat("a", epoch, &owned), &view, no_id);
    let kept = lost.assignment.expect("the revocation is announced");
    assert_eq!(kept.len(), 2);
    let plain = cg.heartbeat(now, beat("a", epoch, &owned), &view, no_id);
    assert_eq!(plain.error, 0);
    assert_eq!(plain.assignment, None, "unchanged since it was last sent");
    let full = HeartbeatIn {
        subscribed_topic_names: Some(vec!["t".to_string()]),
        rebalance_timeout_ms: 30_000,
        ..beat("a", epoch, &owned)
    };
    let again = cg.heartbeat(now, full, &view, no_id);
    assert_eq!(again.error, 0);
    assert_eq!(again.assignment, Some(kept), "told again what it keeps");
    assert_eq!(
        cg.group("g").unwrap().state(),
        "Reconciling",
        "still revoking: `a` reported the two it must give up"
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

// --- persistence -----------------------------------------------------------------

/// The log of `__consumer_offsets` as the coordinator writes it.
type Log = Vec<RawRecord>;

/// Drains the coordinator's writes into `log`, as a node appends them.
fn write(cg: &mut ConsumerGroups, log: &mut Log) {
    for (_, records) in cg.take_writes() {
        assert!(!records.is_empty(), "a write holds records");
        log.extend(records);
    }
}

/// A fresh coordinator that replayed `log` at `now`.
fn replay(log: &Log, now: Instant) -> ConsumerGroups {
    let mut cg = ConsumerGroups::new(ConsumerGroupsConfig::default());
    for (key, value) in log {
        let key = key.as_ref().expect("keyed");
        assert!(is_consumer_group_key(key));
        cg.load_record(key, value.as_deref());
    }
    cg.finish_load(now, |_| true);
    cg.check_invariants();
    cg
}

/// What a group is, leaving out what is not durable (timers, what each
/// member was last told).
fn durable(cg: &ConsumerGroups) -> String {
    let mut out = String::new();
    for (id, g) in cg.groups() {
        out += &format!(
            "{id}: epoch {} assignment {} assignor {:?} metadata {:?} target {:?}\n",
            g.epoch, g.assignment_epoch, g.assignor, g.metadata, g.target
        );
        for m in g.members.values() {
            out += &format!(
                "  {} epoch {}/{} instance {:?} rack {:?} client {:?} assignor {:?} subscribed {:?} rebalance {} assigned {:?} revoking {:?}\n",
                m.member_id,
                m.epoch,
                m.previous_epoch,
                m.instance_id,
                m.rack_id,
                m.client_id,
                m.server_assignor,
                m.subscribed,
                m.rebalance_timeout_ms,
                m.assigned,
                m.revoking
            );
        }
    }
    out
}

#[test]
fn every_record_round_trips() {
    let t = Uuid::from_u64_pair(1, 2);
    let u = Uuid::from_u64_pair(3, 4);
    let records = [
        (
            persist::RecordId::GroupMetadata,
            persist::Value::GroupMetadata { epoch: 7 },
        ),
        (
            persist::RecordId::PartitionMetadata,
            persist::Value::PartitionMetadata {
                topics: BTreeMap::from([("a".to_string(), (t, 3)), ("b".to_string(), (u, 1))]),
            },
        ),
        (
            persist::RecordId::MemberMetadata("m".to_string()),
            persist::Value::MemberMetadata(persist::MemberValue {
                instance_id: Some("i".to_string()),
                rack_id: None,
                client_id: "c".to_string(),
                client_host: String::new(),
                subscribed: BTreeSet::from(["a".to_string(), "b".to_string()]),
                rebalance_timeout_ms: 30_000,
                server_assignor: Some(ASSIGNOR_RANGE.to_string()),
            }),
        ),
        (
            persist::RecordId::TargetMetadata,
            persist::Value::TargetMetadata {
                assignment_epoch: 6,
            },
        ),
        (
            persist::RecordId::TargetMember("m".to_string()),
            persist::Value::TargetMember {
                partitions: BTreeSet::from([(t, 0), (t, 2), (u, 0)]),
            },
        ),
        (
            persist::RecordId::CurrentAssignment("m".to_string()),
            persist::Value::CurrentAssignment(persist::AssignmentValue {
                epoch: 5,
                previous_epoch: 4,
                state: 1,
                assigned: BTreeSet::from([(t, 0)]),
                revoking: BTreeSet::from([(t, 1), (u, 0)]),
            }),
        ),
    ];
    for (version, (id, value)) in (3i16..).zip(&records) {
        let key = persist::encode_key("group", id);
        assert_eq!(i16::from_be_bytes([key[0], key[1]]), version, "{id:?}");
        assert!(is_consumer_group_key(&key));
        assert_eq!(
            persist::decode_key(&key).unwrap(),
            ("group".to_string(), id.clone())
        );
        let bytes = persist::encode_value(value);
        assert_eq!(persist::decode_value(id, &bytes).unwrap(), *value);
        assert!(
            persist::decode_value(id, &bytes[..bytes.len() - 1]).is_err(),
            "{id:?}: truncated"
        );
    }
    // ConsumerGroupMetadataValue v0 as Kafka writes it: version, epoch,
    // no tagged fields.
    assert_eq!(
        persist::encode_value(&persist::Value::GroupMetadata { epoch: 7 }),
        vec![0, 0, 0, 0, 0, 7, 0]
    );
    // A tagged field from a newer Kafka (MetadataHash, tag 0) is skipped.
    let tagged = [0, 0, 0, 0, 0, 7, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 42];
    assert_eq!(
        persist::decode_value(&persist::RecordId::GroupMetadata, &tagged).unwrap(),
        persist::Value::GroupMetadata { epoch: 7 }
    );
    // The classic keys are not ours.
    assert!(!is_consumer_group_key(&[0, 2, 0, 1, b'g']));
    assert!(!is_consumer_group_key(&[0, 1]));
}

/// Random joins, leaves, heartbeats, expiries and topic growth, with a
/// fresh coordinator replaying the log after every step: it always has
/// the same groups, and a member it knows carries on at its epoch.
#[test]
fn a_fresh_coordinator_replays_the_same_groups() {
    for seed in 0..100u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut cg = ConsumerGroups::new(ConsumerGroupsConfig::default());
        let mut log = Log::new();
        let mut clients: BTreeMap<String, Client> = BTreeMap::new();
        let mut partitions = rng.gen_range(1..8);
        let mut now = Instant::from_millis(1_000);
        for _ in 0..60 {
            now = now + Duration::from_millis(rng.gen_range(0..2_000));
            let view = topics(partitions);
            match rng.gen_range(0..10) {
                0 if clients.len() < 5 => {
                    let id = format!("m{}", rng.gen_range(0..6));
                    let mut request = join(&id);
                    request.server_assignor = Some(ASSIGNOR_RANGE.to_string());
                    request.instance_id = Some(format!("i-{id}"));
                    let out = cg.heartbeat(now, request, &view, no_id);
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
                    let id = clients.keys().next().unwrap().clone();
                    let mut leave = beat(&id, -1, &BTreeSet::new());
                    leave.owned = None;
                    cg.heartbeat(now, leave, &view, no_id);
                    clients.remove(&id);
                }
                2 => partitions = (partitions + 1).min(12),
                3 => {
                    // A pause past every session: the members expire.
                    now = now + Duration::from_millis(45_001);
                    cg.handle_timeout(now);
                    clients
                        .retain(|id, _| cg.group("g").is_some_and(|g| g.members.contains_key(id)));
                }
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
            write(&mut cg, &mut log);
            let mut replayed = replay(&log, now);
            assert_eq!(durable(&replayed), durable(&cg), "seed {seed}");
            assert_eq!(replayed.persisted, cg.persisted, "seed {seed}");
            // Every member the old coordinator knew heartbeats on.
            for (id, c) in &clients {
                let out = replayed.heartbeat(now, beat(id, c.epoch, &c.owned), &view, no_id);
                assert_eq!(out.error, 0, "seed {seed}: {id} after replay: {out:?}");
                assert!(out.member_epoch >= c.epoch, "seed {seed}: epochs go on");
                replayed.check_invariants();
            }
        }
    }
}

#[test]
fn a_member_heartbeats_on_after_replay_and_reconciliation_continues() {
    let mut cg = ConsumerGroups::new(ConsumerGroupsConfig::default());
    let mut log = Log::new();
    let now = Instant::from_millis(1_000);
    let view = topics(6);
    let a = cg.heartbeat(now, join("a"), &view, no_id);
    let mut clients = BTreeMap::from([(
        "a".to_string(),
        Client {
            epoch: a.member_epoch,
            owned: a.assignment.unwrap(),
        },
    )]);
    let b = cg.heartbeat(now, join("b"), &view, no_id);
    clients.insert(
        "b".to_string(),
        Client {
            epoch: b.member_epoch,
            owned: BTreeSet::new(),
        },
    );
    // a is told to revoke three, and the coordinator dies before a confirms.
    step(&mut cg, now, &mut clients, "a", &view);
    write(&mut cg, &mut log);
    let group = cg.group("g").unwrap();
    assert_eq!(group.members["a"].revoking.len(), 3);

    let later = now + Duration::from_millis(60_000);
    let mut cg = replay(&log, later);
    assert_eq!(
        cg.next_timeout(),
        Some(later + Duration::from_millis(30_000)),
        "the revocation deadline restarts at the load"
    );
    // b may not have a's partitions yet: a still owns them.
    step(&mut cg, later, &mut clients, "b", &view);
    assert!(clients["b"].owned.is_empty());
    assert_eq!(cg.double_ownership(), None);
    // a confirms at its epoch (it was told its assignment again), then b
    // receives what a gave up.
    step(&mut cg, later, &mut clients, "a", &view);
    step(&mut cg, later, &mut clients, "b", &view);
    assert_eq!(clients["b"].owned.len(), 3);
    assert!(clients["a"].owned.is_disjoint(&clients["b"].owned));
    assert_eq!(cg.group("g").unwrap().state(), "Stable");
    // Sessions started at the load: a silent member expires a session
    // after it, not after its last heartbeat before the fail-over.
    assert!(cg
        .next_timeout()
        .is_some_and(|t| t >= later + Duration::from_millis(45_000)));
}

#[test]
fn an_emptied_group_is_deleted_with_tombstones() {
    let mut cg = ConsumerGroups::new(ConsumerGroupsConfig::default());
    let mut log = Log::new();
    let now = Instant::from_millis(1_000);
    let view = topics(2);
    cg.heartbeat(now, join("a"), &view, no_id);
    cg.heartbeat(now, join("b"), &view, no_id);
    write(&mut cg, &mut log);
    let keys: BTreeSet<Vec<u8>> = log.iter().map(|(k, _)| k.clone().unwrap()).collect();
    // b leaves: its records get tombstones, the group's are rewritten.
    let mut leave = beat("b", -1, &BTreeSet::new());
    leave.owned = None;
    cg.heartbeat(now, leave, &view, no_id);
    let writes = cg.take_writes();
    assert_eq!(writes.len(), 1);
    let tombstoned: BTreeSet<persist::RecordId> = writes[0]
        .1
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| persist::decode_key(k.as_ref().unwrap()).unwrap().1)
        .collect();
    assert_eq!(
        tombstoned,
        BTreeSet::from([
            persist::RecordId::MemberMetadata("b".to_string()),
            persist::RecordId::TargetMember("b".to_string()),
            persist::RecordId::CurrentAssignment("b".to_string()),
        ])
    );
    log.extend(writes.into_iter().flat_map(|(_, r)| r));
    // a's session expires: the group is empty, so all of it goes, the
    // group metadata last.
    cg.handle_timeout(now + Duration::from_millis(45_000));
    assert!(!cg.contains("g"));
    let writes = cg.take_writes();
    let records = &writes[0].1;
    assert!(records.iter().all(|(_, v)| v.is_none()), "only tombstones");
    assert_eq!(
        persist::decode_key(records.last().unwrap().0.as_ref().unwrap())
            .unwrap()
            .1,
        persist::RecordId::GroupMetadata
    );
    log.extend(writes.into_iter().flat_map(|(_, r)| r));
    // Every key ever written ends in a tombstone: compaction drops them all.
    let mut last: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
    for (k, v) in &log {
        last.insert(k.clone().unwrap(), v.is_some());
    }
    assert!(keys.iter().all(|k| !last[k]) && last.values().all(|live| !live));
    let replayed = replay(&log, now);
    assert!(!replayed.contains("g"));
    assert!(replayed.persisted.is_empty());
    assert!(cg.persisted.is_empty());
}

#[test]
fn a_failed_write_is_rewritten_and_bad_records_are_deleted() {
    let mut cg = ConsumerGroups::new(ConsumerGroupsConfig::default());
    let now = Instant::from_millis(1_000);
    let view = topics(2);
    let a = cg.heartbeat(now, join("a"), &view, no_id);
    let lost = cg.take_writes();
    let keys: Vec<Vec<u8>> = lost[0].1.iter().map(|(k, _)| k.clone().unwrap()).collect();
    cg.write_failed("g", &keys);
    // Nothing changed, but the next heartbeat rewrites all the failed
    // write held.
    let owned = cg.group("g").unwrap().members["a"].assigned.clone();
    cg.heartbeat(now, beat("a", a.member_epoch, &owned), &view, no_id);
    let rewritten = cg.take_writes();
    assert_eq!(rewritten, lost);

    // Records without their group metadata make no group: a coordinator
    // that loads them deletes them.
    let mut log: Log = rewritten[0]
        .1
        .iter()
        .filter(|(k, _)| {
            persist::decode_key(k.as_ref().unwrap()).unwrap().1 != persist::RecordId::GroupMetadata
        })
        .cloned()
        .collect();
    log.push((
        Some(persist::encode_key("g", &persist::RecordId::TargetMetadata)),
        Some(vec![0, 9]),
    ));
    let mut replayed = replay(&log, now);
    assert!(!replayed.contains("g"));
    let deletes = replayed.take_writes();
    assert_eq!(deletes.len(), 1);
    assert!(deletes[0].1.iter().all(|(_, v)| v.is_none()));
    assert!(replayed.persisted.is_empty());
}
