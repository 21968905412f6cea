//! The controller's metadata state machine end to end: placement over
//! racks, fencing on session timeout with leader election, AlterPartition
//! fencing, replay determinism, and a seeded random walk that checks the
//! partition invariants after every applied record.

use kafka_protocol::messages::{
    create_partitions_request, AllocateProducerIdsRequest, BrokerId, CreatePartitionsRequest,
    DeleteTopicsRequest, ElectLeadersRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use seedlog_core::batch::set_base_offset;
use seedlog_core::controller::records::NO_LEADER;
use seedlog_core::controller::testing::Harness;
use seedlog_core::controller::{
    decode_batches, encode_batch, Controller, ControllerConfig, MIN_INSYNC_REPLICAS_CONFIG,
    UNCLEAN_LEADER_ELECTION_CONFIG,
};
use std::collections::{BTreeMap, BTreeSet};

fn three_racks() -> Harness {
    let mut h = Harness::new(ControllerConfig::new(1, "c"));
    for (id, rack) in [(1, "az-a"), (2, "az-b"), (3, "az-c")] {
        h.start(id, rack);
    }
    h
}

#[test]
fn replicas_span_racks_and_leaders_balance() {
    let mut h = three_racks();
    h.create_topic("orders", 6, 3, &[]).unwrap();
    let image = h.controller.image();
    let topic = image.topic_by_name("orders").unwrap();
    assert_eq!(topic.partitions.len(), 6);
    let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
    for (id, p) in &topic.partitions {
        let a = &p.assignment;
        let racks: BTreeSet<_> = a
            .replicas
            .iter()
            .map(|r| image.brokers[r].rack.clone())
            .collect();
        assert_eq!(racks.len(), 3, "partition {id} spans three racks: {a:?}");
        assert_eq!(a.isr.len(), 3);
        assert_eq!(a.leader, a.replicas[0], "the preferred replica leads");
        *leaders.entry(a.leader).or_default() += 1;
    }
    assert_eq!(
        leaders,
        BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
        "leaders balance"
    );
}

#[test]
fn session_timeout_fences_and_elects_from_the_isr() {
    let mut h = three_racks();
    h.create_topic("orders", 6, 3, &[]).unwrap();
    let before: Vec<_> = (0..6).map(|p| h.partition("orders", p)).collect();
    // Brokers 1 and 3 keep heartbeating; broker 2 goes silent.
    for _ in 0..4 {
        h.advance_ms(3_000);
        h.heartbeat(1, false, false);
        h.heartbeat(3, false, false);
        h.expire_sessions();
    }
    assert!(h.controller.image().brokers[&2].fenced);
    let mut led = 0;
    for (p, old) in before.iter().enumerate() {
        let new = h.partition("orders", p as i32).assignment;
        let old = &old.assignment;
        assert!(!new.isr.contains(&2), "broker 2 left the ISR of {p}");
        assert_eq!(new.partition_epoch, old.partition_epoch + 1);
        if old.leader == 2 {
            led += 1;
            assert!(old.isr.contains(&new.leader) && new.leader != 2);
            assert_eq!(new.leader_epoch, old.leader_epoch + 1);
        } else {
            assert_eq!(
                (new.leader, new.leader_epoch),
                (old.leader, old.leader_epoch)
            );
        }
    }
    assert_eq!(led, 2, "broker 2 led two partitions");
}

#[test]
fn alter_partition_with_stale_epochs_is_rejected() {
    let mut h = three_racks();
    h.create_topic("t", 1, 3, &[]).unwrap();
    let a = h.partition("t", 0).assignment;
    let shrunk = [h.member(a.leader), h.member(a.replicas[1])];
    assert_eq!(
        h.alter_partition("t", 0, &shrunk, a.leader_epoch, a.partition_epoch),
        0
    );
    let all: Vec<_> = a.replicas.iter().map(|&r| h.member(r)).collect();
    assert_eq!(
        h.alter_partition("t", 0, &all, a.leader_epoch, a.partition_epoch),
        ResponseError::InvalidUpdateVersion.code(),
        "partition epoch is stale"
    );
    assert_eq!(
        h.alter_partition("t", 0, &all, a.leader_epoch - 1, a.partition_epoch + 1),
        ResponseError::FencedLeaderEpoch.code(),
        "leader epoch is stale"
    );
    assert_eq!(
        h.alter_partition("t", 0, &all, a.leader_epoch, a.partition_epoch + 1),
        0
    );
    assert_eq!(h.partition("t", 0).assignment.isr.len(), 3);
}

/// Every record of the harness's log, through real batch bytes.
fn through_batches(h: &Harness) -> Controller {
    let mut bytes = Vec::new();
    for chunk in h.log.chunks(7) {
        let records: Vec<_> = chunk.iter().map(|(_, r)| r.clone()).collect();
        let mut batch = encode_batch(&records, 0);
        set_base_offset(&mut batch, chunk[0].0);
        bytes.extend_from_slice(&batch);
    }
    let mut fresh = Controller::new(h.controller.config().clone());
    for (offset, record) in decode_batches(&bytes).unwrap() {
        fresh.replay(offset, &record);
    }
    fresh
}

#[test]
fn replay_of_every_record_rebuilds_an_identical_image() {
    let mut h = three_racks();
    h.create_topic("a", 6, 3, &[(MIN_INSYNC_REPLICAS_CONFIG, "2")])
        .unwrap();
    h.create_topic("b", 2, 2, &[]).unwrap();
    h.heartbeat(3, false, true);
    h.heartbeat(3, false, true);
    h.register(3, "az-c", true).unwrap();
    h.heartbeat(3, false, false);
    h.advance_ms(20_000);
    h.heartbeat(1, false, false);
    h.expire_sessions();
    let fresh = through_batches(&h);
    assert_eq!(fresh.image().describe(), h.controller.image().describe());
    assert_eq!(fresh.image(), h.controller.image());
    fresh.check_invariants();
}

const BROKERS: i32 = 5;
const TOPICS: [&str; 3] = ["t0", "t1", "t2"];

fn random_step(h: &mut Harness, rng: &mut ChaCha8Rng) {
    let broker = rng.gen_range(1..=BROKERS);
    let registered = h.controller.image().brokers.contains_key(&broker);
    match rng.gen_range(0..100) {
        0..=9 => {
            let rack = ["a", "b", "c"][rng.gen_range(0..3)];
            let _ = h.register(broker, rack, rng.gen_bool(0.5));
        }
        10..=39 if registered => {
            let want_fence = rng.gen_bool(0.05);
            let want_shut_down = rng.gen_bool(0.1);
            h.heartbeat(broker, want_fence, want_shut_down);
        }
        40..=49 => {
            h.advance_ms(rng.gen_range(0..6_000));
            h.expire_sessions();
        }
        50..=57 => {
            let name = TOPICS[rng.gen_range(0..TOPICS.len())];
            let min_isr = rng.gen_range(1..=3).to_string();
            let unclean = if rng.gen_bool(0.2) { "true" } else { "false" };
            let _ = h.create_topic(
                name,
                rng.gen_range(1..=4),
                rng.gen_range(1..=3),
                &[
                    (MIN_INSYNC_REPLICAS_CONFIG, &min_isr),
                    (UNCLEAN_LEADER_ELECTION_CONFIG, unclean),
                ],
            );
        }
        58..=60 => {
            let mut request = DeleteTopicsRequest::default();
            let name = TOPICS[rng.gen_range(0..TOPICS.len())];
            request.topic_names = vec![TopicName(StrBytes::from_static_str(name))];
            h.run(|c| c.handle_delete_topics(&request));
        }
        61..=63 => {
            let mut topic = create_partitions_request::CreatePartitionsTopic::default();
            topic.name = TopicName(StrBytes::from_static_str(
                TOPICS[rng.gen_range(0..TOPICS.len())],
            ));
            topic.count = rng.gen_range(1..=6);
            let mut request = CreatePartitionsRequest::default();
            request.topics.push(topic);
            h.run(|c| c.handle_create_partitions(&request));
        }
        64..=89 => random_alter_partition(h, rng),
        90..=94 => {
            let mut request = ElectLeadersRequest::default();
            request.election_type = rng.gen_range(0..2);
            request.topic_partitions = None;
            h.run(|c| c.handle_elect_leaders(&request));
        }
        95..=99 if registered => {
            let mut request = AllocateProducerIdsRequest::default();
            request.broker_id = BrokerId(broker);
            request.broker_epoch = h.member(broker).1;
            h.run(|c| c.handle_allocate_producer_ids(&request));
        }
        _ => {}
    }
}

/// A leader asks for a random ISR: itself plus a random subset of its
/// replicas, sometimes with stale epochs of every kind.
fn random_alter_partition(h: &mut Harness, rng: &mut ChaCha8Rng) {
    let candidates: Vec<(String, i32)> = h
        .controller
        .image()
        .topics
        .values()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|(_, p)| p.assignment.leader != NO_LEADER)
                .map(move |(id, _)| (t.name.clone(), *id))
        })
        .collect();
    if candidates.is_empty() {
        return;
    }
    let (topic, partition) = candidates[rng.gen_range(0..candidates.len())].clone();
    let a = h.partition(&topic, partition).assignment;
    let mut members = vec![h.member(a.leader)];
    for &replica in &a.replicas {
        if replica != a.leader && rng.gen_bool(0.6) {
            let (id, epoch) = h.member(replica);
            let epoch = if rng.gen_bool(0.1) { epoch - 1 } else { epoch };
            members.push((id, epoch));
        }
    }
    let leader_epoch = a.leader_epoch - i32::from(rng.gen_bool(0.1));
    let partition_epoch = a.partition_epoch - i32::from(rng.gen_bool(0.1));
    let code = h.alter_partition(&topic, partition, &members, leader_epoch, partition_epoch);
    if leader_epoch != a.leader_epoch {
        assert_eq!(code, ResponseError::FencedLeaderEpoch.code());
    } else if partition_epoch != a.partition_epoch
        && !h.controller.config().bugs.no_partition_epoch_check
    {
        assert_eq!(code, ResponseError::InvalidUpdateVersion.code());
    }
}

/// Runs `seeds` random walks of 80 steps under `config`; returns how many
/// records of each api key were applied, and whether an ELR was ever seen.
fn random_walks(seeds: u64, config: &ControllerConfig) -> (BTreeMap<u8, usize>, bool) {
    let mut kinds: BTreeMap<u8, usize> = BTreeMap::new();
    let mut saw_elr = false;
    for seed in 0..seeds {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut config = config.clone();
        config.rng_seed = seed;
        let mut h = Harness::new(config);
        for step in 0..80 {
            // The harness checks the invariants after every applied record.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                random_step(&mut h, &mut rng)
            }));
            if let Err(panic) = result {
                eprintln!(
                    "seed {seed} step {step}: image\n{}",
                    h.controller.image().describe()
                );
                std::panic::resume_unwind(panic);
            }
            saw_elr |= h
                .controller
                .image()
                .topics
                .values()
                .any(|t| t.partitions.values().any(|p| !p.elr.is_empty()));
        }
        for (_, record) in &h.log {
            *kinds.entry(record.api_key()).or_default() += 1;
        }
        let fresh = through_batches(&h);
        assert_eq!(
            fresh.image().describe(),
            h.controller.image().describe(),
            "seed {seed}: replay differs"
        );
    }
    (kinds, saw_elr)
}

#[test]
fn seeded_random_operations_keep_the_invariants() {
    let (kinds, saw_elr) = random_walks(300, &ControllerConfig::new(1, "c"));
    // The walk reaches every kind of change it is meant to exercise.
    for (api_key, what) in [
        (0, "registrations"),
        (2, "topics"),
        (3, "partitions"),
        (5, "partition changes"),
        (7, "fences"),
        (8, "unfences"),
        (9, "deletions"),
        (15, "producer id blocks"),
        (17, "controlled shutdowns"),
    ] {
        assert!(
            kinds.get(&api_key).is_some_and(|&n| n > 0),
            "no {what}: {kinds:?}"
        );
    }
    assert!(saw_elr, "some partition had an ELR");
}

#[test]
fn seeded_random_operations_with_each_bug_flag_do_not_crash() {
    for bug in 0..3 {
        let mut config = ControllerConfig::new(1, "c");
        match bug {
            0 => config.bugs.no_partition_epoch_check = true,
            1 => config.bugs.stale_broker_epoch = true,
            _ => config.bugs.last_replica_standing = true,
        }
        random_walks(100, &config);
    }
}
