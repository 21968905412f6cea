//! The coordinator of a consumer group dies mid-rebalance. On a three-node
//! cluster two librdkafka members share six partitions and commit; the
//! nodes agree (FindCoordinator asked of each) which one coordinates the
//! group; a third member joins, and as soon as the rebalance has begun
//! (a member gave partitions up) that node is SIGKILLed. The group must
//! re-form on another node, with all three members, consumption must go on
//! without a record consumed by two owners at once (the ownership log of
//! `common::groups`), and the offsets committed before the kill must still
//! be there, as read by a client outside the group. Eager `range` and the
//! KIP-848 consumer protocol.

mod common;

use common::cluster::{agreed_coordinator, create_led_topic, Cluster};
use common::groups::{
    all_owned_by, check_ownership, close, commit, committed_offsets, consume_until, member,
    poll_once, produce_phase, Event, Log, Member, KIP_848, PARTITIONS, PER_PARTITION, PHASE,
};
use common::scratch_dir;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const TOPIC: &str = "t";
/// What librdkafka reports about the killed node while it works on with
/// the others. The coordinator codes come from an automatic offset
/// commit: librdkafka defers a commit refused with NOT_COORDINATOR (or
/// COORDINATOR_NOT_AVAILABLE) once, until it has found the coordinator
/// again, and reports a second refusal to the application as a consumer
/// error (`rd_kafka_cgrp_defer_offset_commit`, rdkafka_cgrp.c). That
/// happens when the node it finds has not yet taken the group over: the
/// commit is lost, as Kafka allows for an asynchronous commit, and the
/// next one carries the offsets. (Seen once in a full test run on a
/// loaded machine.)
const DEAD_NODE: &[RDKafkaErrorCode] = &[
    RDKafkaErrorCode::BrokerTransportFailure,
    RDKafkaErrorCode::AllBrokersDown,
    RDKafkaErrorCode::NotCoordinator,
    RDKafkaErrorCode::CoordinatorNotAvailable,
];

/// Polls every member until `done` holds, or panics after `within` saying
/// `what`.
fn poll_until(
    what: &str,
    members: &mut [(usize, Member)],
    log: &Log,
    seen: &mut BTreeSet<(i32, i64)>,
    within: Duration,
    done: impl Fn() -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        for (id, consumer) in members.iter_mut() {
            poll_once(*id, consumer, log, seen, DEAD_NODE);
        }
    }
}

fn run(strategy: &str) {
    let dir = scratch_dir(&format!("interop-group-failover-{strategy}"));
    let mut cluster = Cluster::start_ready(&dir, &["--group-initial-rebalance-delay-ms", "300"]);
    let bootstrap = cluster.bootstrap();
    create_led_topic(&bootstrap, TOPIC, PARTITIONS, 3);
    let group = format!("failover-{strategy}");
    let log: Log = Default::default();

    // Two members share the partitions and commit all they consumed.
    produce_phase(&bootstrap, TOPIC, 0);
    let mut members: Vec<(usize, Member)> = (0..2)
        .map(|id| (id, member(&bootstrap, TOPIC, &group, strategy, id, &log)))
        .collect();
    let mut seen = BTreeSet::new();
    consume_until(&mut members, &log, &mut seen, PHASE, &[]);
    for (id, consumer) in &members {
        commit(*id, consumer);
    }
    let before = committed_offsets(&bootstrap, &group, TOPIC);
    assert_eq!(
        before,
        vec![Offset::Offset(PER_PARTITION as i64); PARTITIONS as usize],
        "{strategy}: the first phase is committed"
    );
    let coordinator = agreed_coordinator(&cluster, &group, Duration::from_secs(10));

    // A third member joins; once a member has given up partitions for the
    // new assignment, the coordinator dies.
    let events_before_join = log.lock().unwrap().len();
    log.lock()
        .unwrap()
        .push(Event::Note("member 2 joins".to_string()));
    members.push((2, member(&bootstrap, TOPIC, &group, strategy, 2, &log)));
    poll_until(
        "a member revokes partitions after the third joined",
        &mut members,
        &log,
        &mut seen,
        Duration::from_secs(20),
        || {
            log.lock().unwrap()[events_before_join..]
                .iter()
                .any(|e| matches!(e, Event::Revoke(_, partitions) if !partitions.is_empty()))
        },
    );
    cluster.take(coordinator).kill();
    log.lock().unwrap().push(Event::Note(format!(
        "coordinator (node {coordinator}) killed"
    )));
    let killed_at = Instant::now();
    let survivors = cluster.bootstrap();

    // The group re-forms on another node: each of the three members owns
    // partitions again, and they consume a new phase between them.
    produce_phase(&survivors, TOPIC, 1);
    consume_until(&mut members, &log, &mut seen, 2 * PHASE, DEAD_NODE);
    poll_until(
        "every partition owned, each of the three members owning some",
        &mut members,
        &log,
        &mut seen,
        Duration::from_secs(60),
        || all_owned_by(&log, 3),
    );
    let reformed_after = killed_at.elapsed();
    let new_coordinator = agreed_coordinator(&cluster, &group, Duration::from_secs(30));
    assert_ne!(new_coordinator, coordinator, "a running node coordinates");

    // Nothing committed before the kill went missing with the coordinator.
    let after = committed_offsets(&survivors, &group, TOPIC);
    for (p, (before, after)) in before.iter().zip(&after).enumerate() {
        let (Offset::Offset(before), Offset::Offset(after)) = (before, after) else {
            panic!(
                "{strategy}: partition {p}: committed {before:?} before the kill, {after:?} after"
            );
        };
        assert!(
            after >= before,
            "{strategy}: partition {p}: committed {before} before the kill, {after} after"
        );
    }

    // Everyone commits and leaves: all of both phases is committed.
    for (id, consumer) in members.drain(..) {
        close(id, consumer);
    }
    assert_eq!(
        committed_offsets(&survivors, &group, TOPIC),
        vec![Offset::Offset(2 * PER_PARTITION as i64); PARTITIONS as usize],
        "{strategy}: everything consumed is committed on the new coordinator"
    );
    let (duplicates, _) = check_ownership(&log);
    let per_member: BTreeMap<usize, usize> =
        log.lock()
            .unwrap()
            .iter()
            .fold(BTreeMap::new(), |mut counts, event| {
                if let Event::Consumed(id, _, _) = event {
                    *counts.entry(*id).or_default() += 1;
                }
                counts
            });
    eprintln!(
        "{strategy}: coordinator {coordinator} killed, node {new_coordinator} took over; \
         group re-formed {reformed_after:?} after the kill; consumed per member {per_member:?}, \
         {duplicates} redelivered"
    );
    // The survivors are killed on drop: their clean stop is not under test.
}

#[test]
fn eager_range_group_reforms_when_its_coordinator_is_killed_mid_rebalance() {
    run("range");
}

#[test]
fn cooperative_sticky_group_reforms_when_its_coordinator_is_killed_mid_rebalance() {
    run("cooperative-sticky");
}

/// See `kip_848_members_are_not_forgotten_when_the_coordinator_is_killed`
/// for the same failure in its smallest form.
#[test]
fn kip_848_group_reforms_when_its_coordinator_is_killed_mid_rebalance() {
    run(KIP_848);
}

/// The smallest form of the KIP-848 fail-over failure: two members share
/// the partitions in a steady group, the coordinator is killed, and only
/// member 0 is polled afterwards. Member 1 keeps heartbeating (librdkafka
/// does that in the background) but its application does not take part,
/// so it holds its partitions until told otherwise: Kafka's new
/// coordinator, which replays the members from `__consumer_offsets`, waits
/// for member 1 to give them up (or for its session to expire, 45 s) before
/// member 0 may have them.
#[test]
fn kip_848_members_are_not_forgotten_when_the_coordinator_is_killed() {
    let dir = scratch_dir("interop-group-failover-kip-848-steady");
    let mut cluster = Cluster::start_ready(&dir, &[]);
    let bootstrap = cluster.bootstrap();
    create_led_topic(&bootstrap, TOPIC, PARTITIONS, 3);
    let group = "failover-kip-848-steady";
    let log: Log = Default::default();
    let mut members: Vec<(usize, Member)> = (0..2)
        .map(|id| (id, member(&bootstrap, TOPIC, group, KIP_848, id, &log)))
        .collect();
    let mut seen = BTreeSet::new();
    poll_until(
        "both members own partitions",
        &mut members,
        &log,
        &mut seen,
        Duration::from_secs(60),
        || all_owned_by(&log, 2),
    );
    let coordinator = agreed_coordinator(&cluster, group, Duration::from_secs(10));
    cluster.take(coordinator).kill();
    log.lock().unwrap().push(Event::Note(format!(
        "coordinator (node {coordinator}) killed"
    )));
    let (_, member_1) = members.pop().expect("member 1");
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        poll_once(0, &members[0].1, &log, &mut seen, DEAD_NODE);
        check_ownership(&log);
    }
    let (_, owners) = check_ownership(&log);
    drop(member_1);
    eprintln!("after 40 s member 0 owns {owners:?}");
}
