use super::records::*;
use super::testing::Harness;
use super::*;
use kafka_protocol::messages::{
    AllocateProducerIdsRequest, BrokerId, BrokerRegistrationRequest, CreatePartitionsRequest,
    DeleteTopicsRequest, ElectLeadersRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

fn config() -> ControllerConfig {
    ControllerConfig::new(1, "cluster")
}

/// Three brokers in racks a, b, c, unfenced.
fn three(config: ControllerConfig) -> Harness {
    let mut h = Harness::new(config);
    for (id, rack) in [(1, "a"), (2, "b"), (3, "c")] {
        h.start(id, rack);
    }
    h
}

fn every_record() -> Vec<MetadataRecord> {
    let topic_id = Uuid::from_u128(0xfeed);
    vec![
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: 7,
            incarnation_id: Uuid::from_u128(9),
            broker_epoch: 42,
            end_points: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: "h".into(),
                port: 9092,
                security_protocol: 0,
            }],
            rack: Some("az-1".into()),
            fenced: true,
            in_controlled_shutdown: false,
        }),
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: 8,
            incarnation_id: Uuid::nil(),
            broker_epoch: 0,
            end_points: vec![],
            rack: None,
            fenced: false,
            in_controlled_shutdown: true,
        }),
        MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id,
        }),
        MetadataRecord::Partition(PartitionRecord {
            partition_id: 3,
            topic_id,
            replicas: vec![1, 2, 3],
            isr: vec![1, 2],
            leader: 1,
            leader_epoch: 4,
            partition_epoch: 5,
            eligible_leader_replicas: vec![3],
            last_known_elr: vec![],
            adding_replicas: vec![],
            removing_replicas: vec![],
        }),
        MetadataRecord::Partition(PartitionRecord {
            partition_id: 4,
            topic_id,
            replicas: vec![4, 1, 2],
            isr: vec![1, 2],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            eligible_leader_replicas: vec![],
            last_known_elr: vec![],
            adding_replicas: vec![4],
            removing_replicas: vec![2],
        }),
        MetadataRecord::Config(ConfigRecord {
            resource_type: CONFIG_RESOURCE_TOPIC,
            resource_name: "t".into(),
            name: "min.insync.replicas".into(),
            value: Some("2".into()),
        }),
        MetadataRecord::Config(ConfigRecord {
            resource_type: CONFIG_RESOURCE_BROKER,
            resource_name: "".into(),
            name: "x".into(),
            value: None,
        }),
        MetadataRecord::PartitionChange(PartitionChangeRecord {
            partition_id: 0,
            topic_id,
            isr: Some(vec![]),
            leader: NO_LEADER_CHANGE,
            replicas: None,
            eligible_leader_replicas: Some(vec![2]),
            last_known_elr: None,
            adding_replicas: None,
            removing_replicas: None,
        }),
        MetadataRecord::PartitionChange(PartitionChangeRecord {
            adding_replicas: Some(vec![3]),
            removing_replicas: Some(vec![]),
            ..PartitionChangeRecord::unchanged(topic_id, 1)
        }),
        MetadataRecord::FenceBroker(FenceBrokerRecord { id: 1, epoch: 2 }),
        MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id: 1, epoch: 2 }),
        MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id }),
        MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: 2,
            producer_ids_end: 3000,
        }),
        MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
            broker_id: 1,
            broker_epoch: 2,
            fenced: -1,
            in_controlled_shutdown: 1,
        }),
    ]
}

#[test]
fn every_record_round_trips() {
    for record in every_record() {
        let bytes = record.encode();
        assert_eq!(bytes[0], record.api_key());
        assert_eq!(MetadataRecord::decode(&bytes), Ok(record.clone()));
        // Every strict prefix is truncated, never a different record.
        for cut in 0..bytes.len() {
            assert!(
                MetadataRecord::decode(&bytes[..cut]).is_err(),
                "{record:?} cut at {cut}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            MetadataRecord::decode(&long),
            Err(RecordDecodeError::Trailing(1))
        );
    }
    assert_eq!(
        MetadataRecord::decode(&[99, 0]),
        Err(RecordDecodeError::UnknownApiKey(99))
    );
    assert!(matches!(
        MetadataRecord::decode(&[2, 1]),
        Err(RecordDecodeError::UnknownVersion { .. })
    ));
    // A lying array count is refused before any allocation.
    let mut bad = vec![3, 0];
    bad.extend_from_slice(&0i32.to_be_bytes());
    bad.extend_from_slice(&[0; 16]);
    bad.extend_from_slice(&i32::MAX.to_be_bytes());
    assert_eq!(
        MetadataRecord::decode(&bad),
        Err(RecordDecodeError::ArrayTooLong(i32::MAX))
    );
}

#[test]
fn batches_round_trip_with_offsets() {
    let records = every_record();
    let mut first = encode_batch(&records[..4], 7);
    crate::batch::set_base_offset(&mut first, 100);
    let mut second = encode_batch(&records[4..], 8);
    crate::batch::set_base_offset(&mut second, 104);
    let mut log = first;
    log.extend_from_slice(&second);
    let decoded = decode_batches(&log).unwrap();
    let expected: Vec<(i64, MetadataRecord)> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| (100 + i as i64, r))
        .collect();
    assert_eq!(decoded, expected);
}

#[test]
fn broker_epoch_is_the_offset_of_its_registration() {
    let mut h = Harness::new(config());
    h.apply(vec![MetadataRecord::ProducerIds(ProducerIdsRecord {
        broker_id: 0,
        broker_epoch: -1,
        producer_ids_end: 1000,
    })]);
    let epoch = h.register(5, "a", false).unwrap();
    assert_eq!(epoch, 1);
    assert!(h.controller.image().brokers[&5].fenced, "registered fenced");
    // Not caught up: the broker's metadata offset is below its epoch.
    let mut request = kafka_protocol::messages::BrokerHeartbeatRequest::default();
    request.broker_id = BrokerId(5);
    request.broker_epoch = 1;
    request.current_metadata_offset = 0;
    let result = h.controller.handle_broker_heartbeat(h.now, &request);
    assert!(result.records.is_empty() && result.response.is_fenced);
    assert!(!result.response.is_caught_up);
    // Caught up: unfenced.
    assert!(!h.heartbeat(5, false, false).is_fenced);
    assert!(!h.controller.image().brokers[&5].fenced);
    // A heartbeat on an old epoch is stale.
    request.broker_epoch = 0;
    let result = h.controller.handle_broker_heartbeat(h.now, &request);
    assert_eq!(
        result.response.error_code,
        ResponseError::StaleBrokerEpoch.code()
    );
}

#[test]
fn registration_errors() {
    let mut h = three(config());
    // A second incarnation while the first holds a live session.
    assert_eq!(
        h.register(1, "a", false),
        Err(ResponseError::DuplicateBrokerRegistration.code())
    );
    let mut request = BrokerRegistrationRequest::default();
    request.broker_id = BrokerId(9);
    request.cluster_id = StrBytes::from_static_str("other");
    let result = h
        .controller
        .handle_broker_registration(h.now, &request, h.next_offset());
    assert_eq!(
        result.response.error_code,
        ResponseError::InconsistentClusterId.code()
    );
    assert!(result.records.is_empty());
}

#[test]
fn session_timeout_fences_and_moves_leadership() {
    let mut h = three(config());
    h.create_topic("t", 3, 3, &[]).unwrap();
    let before: Vec<_> = (0..3).map(|p| h.partition("t", p)).collect();
    h.advance_ms(5_000);
    for id in [1, 2] {
        h.heartbeat(id, false, false);
    }
    assert_eq!(
        h.controller.poll_timeout(),
        Some(h.now + std::time::Duration::from_millis(4_000))
    );
    h.advance_ms(4_000);
    h.expire_sessions();
    assert!(h.controller.image().brokers[&3].fenced);
    assert!(!h.controller.image().brokers[&1].fenced);
    for (p, old) in before.iter().enumerate() {
        let new = h.partition("t", p as i32);
        assert!(!new.assignment.isr.contains(&3));
        assert!(new.assignment.partition_epoch > old.assignment.partition_epoch);
        if old.assignment.leader == 3 {
            assert_ne!(new.assignment.leader, 3);
            assert!(old.assignment.isr.contains(&new.assignment.leader));
            assert_eq!(new.assignment.leader_epoch, old.assignment.leader_epoch + 1);
        } else {
            assert_eq!(new.assignment.leader, old.assignment.leader);
            assert_eq!(new.assignment.leader_epoch, old.assignment.leader_epoch);
        }
    }
}

#[test]
fn controlled_shutdown_moves_leadership_first() {
    let mut h = three(config());
    h.create_topic("t", 6, 3, &[]).unwrap();
    let response = h.heartbeat(2, false, true);
    assert!(
        !response.should_shut_down,
        "still leads until the move commits"
    );
    let image = h.controller.image();
    assert!(image.brokers[&2].in_controlled_shutdown);
    for p in 0..6 {
        let a = h.partition("t", p).assignment;
        assert_ne!(a.leader, 2);
        assert!(!a.isr.contains(&2));
    }
    let response = h.heartbeat(2, false, true);
    assert!(response.should_shut_down && response.is_fenced);
    assert!(h.controller.image().brokers[&2].fenced);
    // A broker in controlled shutdown cannot rejoin an ISR.
    let p = h.partition("t", 0);
    let members: Vec<_> = p.assignment.isr.iter().map(|&r| h.member(r)).collect();
    let mut with_two = members.clone();
    with_two.push(h.member(2));
    assert_eq!(
        h.alter_partition(
            "t",
            0,
            &with_two,
            p.assignment.leader_epoch,
            p.assignment.partition_epoch
        ),
        ResponseError::IneligibleReplica.code()
    );
}

#[test]
fn create_topics_errors() {
    let mut h = three(config());
    h.create_topic("t", 1, 3, &[]).unwrap();
    assert_eq!(
        h.create_topic("t", 1, 1, &[]),
        Err(ResponseError::TopicAlreadyExists.code())
    );
    assert_eq!(
        h.create_topic("a/b", 1, 1, &[]),
        Err(ResponseError::InvalidTopicException.code())
    );
    assert_eq!(
        h.create_topic("..", 1, 1, &[]),
        Err(ResponseError::InvalidTopicException.code())
    );
    assert_eq!(
        h.create_topic("u", 1, 4, &[]),
        Err(ResponseError::InvalidReplicationFactor.code())
    );
    assert_eq!(
        h.create_topic("u", 0, 1, &[]),
        Err(ResponseError::InvalidPartitions.code())
    );
    assert_eq!(
        h.create_topic("u", 1, 1, &[(MIN_INSYNC_REPLICAS_CONFIG, "zero")]),
        Err(ResponseError::InvalidConfig.code())
    );
    // Defaults: -1 takes num.partitions and default.replication.factor.
    h.create_topic("d", -1, -1, &[]).unwrap();
    assert_eq!(h.partition("d", 0).assignment.replicas.len(), 1);
    // Duplicates within one request are refused, validate_only writes nothing.
    let mut request = kafka_protocol::messages::CreateTopicsRequest::default();
    let mut topic = kafka_protocol::messages::create_topics_request::CreatableTopic::default();
    topic.name = TopicName(StrBytes::from_static_str("dup"));
    topic.num_partitions = 1;
    topic.replication_factor = 1;
    request.topics = vec![topic.clone(), topic.clone()];
    let result = h.controller.handle_create_topics(&request);
    assert!(result.records.is_empty());
    assert!(result
        .response
        .topics
        .iter()
        .all(|t| t.error_code == ResponseError::InvalidRequest.code()));
    request.topics = vec![topic];
    request.validate_only = true;
    let result = h.controller.handle_create_topics(&request);
    assert!(result.records.is_empty());
    assert_eq!(result.response.topics[0].error_code, 0);
}

#[test]
fn delete_topics_and_create_partitions() {
    let mut h = three(config());
    let id = h
        .create_topic("t", 2, 2, &[(MIN_INSYNC_REPLICAS_CONFIG, "2")])
        .unwrap();
    let mut request = CreatePartitionsRequest::default();
    let mut topic =
        kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic::default();
    topic.name = TopicName(StrBytes::from_static_str("t"));
    topic.count = 5;
    request.topics.push(topic.clone());
    let response = h.run(|c| c.handle_create_partitions(&request));
    assert_eq!(response.results[0].error_code, 0);
    assert_eq!(h.controller.image().topics[&id].partitions.len(), 5);
    assert_eq!(h.partition("t", 4).assignment.replicas.len(), 2);
    topic.count = 5;
    request.topics = vec![topic];
    let response = h.run(|c| c.handle_create_partitions(&request));
    assert_eq!(
        response.results[0].error_code,
        ResponseError::InvalidPartitions.code()
    );

    let mut request = DeleteTopicsRequest::default();
    request.topic_names = vec![
        TopicName(StrBytes::from_static_str("t")),
        TopicName(StrBytes::from_static_str("nope")),
    ];
    let response = h.run(|c| c.handle_delete_topics(&request));
    assert_eq!(response.responses[0].error_code, 0);
    assert_eq!(response.responses[0].topic_id, id);
    assert_eq!(
        response.responses[1].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert!(h.controller.image().topics.is_empty());
    assert!(
        h.controller.image().configs.is_empty(),
        "topic configs go with the topic"
    );
}

/// Shrinks partition 0 of `t` to its leader alone, then returns it.
fn shrink_to_leader(h: &mut Harness) -> PartitionRegistration {
    let p = h.partition("t", 0);
    let leader = p.assignment.leader;
    let code = h.alter_partition(
        "t",
        0,
        &[h.member(leader)],
        p.assignment.leader_epoch,
        p.assignment.partition_epoch,
    );
    assert_eq!(code, 0);
    h.partition("t", 0)
}

#[test]
fn alter_partition_checks_epochs_and_eligibility() {
    let mut h = three(config());
    h.create_topic("t", 1, 3, &[]).unwrap();
    let p = shrink_to_leader(&mut h);
    let a = p.assignment.clone();
    assert_eq!(a.isr.len(), 1);
    assert_eq!(
        a.partition_epoch, 1,
        "the ISR change bumped the partition epoch"
    );
    assert_eq!(a.leader_epoch, 0, "an ISR change keeps the leader epoch");
    let follower = a.replicas.iter().copied().find(|&r| r != a.leader).unwrap();
    let grow = [h.member(a.leader), h.member(follower)];
    // Stale partition epoch.
    assert_eq!(
        h.alter_partition("t", 0, &grow, a.leader_epoch, a.partition_epoch - 1),
        ResponseError::InvalidUpdateVersion.code()
    );
    // Stale leader epoch.
    assert_eq!(
        h.alter_partition("t", 0, &grow, a.leader_epoch - 1, a.partition_epoch),
        ResponseError::FencedLeaderEpoch.code()
    );
    // A stale broker epoch for the follower.
    let stale = [h.member(a.leader), (follower, h.member(follower).1 - 1)];
    assert_eq!(
        h.alter_partition("t", 0, &stale, a.leader_epoch, a.partition_epoch),
        ResponseError::IneligibleReplica.code()
    );
    // A fenced follower.
    h.heartbeat(follower, true, false);
    assert!(h.controller.image().brokers[&follower].fenced);
    assert_eq!(
        h.alter_partition("t", 0, &grow, a.leader_epoch, a.partition_epoch),
        ResponseError::IneligibleReplica.code()
    );
    // Back and caught up: admitted.
    h.heartbeat(follower, false, false);
    assert_eq!(
        h.alter_partition("t", 0, &grow, a.leader_epoch, a.partition_epoch),
        0
    );
    assert_eq!(h.partition("t", 0).assignment.isr.len(), 2);
    // Nothing changed in the image on any rejection.
    assert_eq!(
        h.partition("t", 0).assignment.partition_epoch,
        a.partition_epoch + 1
    );
}

#[test]
fn bug_no_partition_epoch_check_accepts_a_stale_isr() {
    for bug in [false, true] {
        let mut c = config();
        c.bugs.no_partition_epoch_check = bug;
        let mut h = three(c);
        h.create_topic("t", 1, 3, &[]).unwrap();
        let p = h.partition("t", 0).assignment;
        // The ISR shrank, then the leader sends a change built on the old
        // partition epoch.
        shrink_to_leader(&mut h);
        let all: Vec<_> = p.isr.iter().map(|&r| h.member(r)).collect();
        let code = h.alter_partition("t", 0, &all, p.leader_epoch, p.partition_epoch);
        if bug {
            assert_eq!(code, 0, "the bug lets the stale view through");
            assert_eq!(h.partition("t", 0).assignment.isr.len(), 3);
        } else {
            assert_eq!(code, ResponseError::InvalidUpdateVersion.code());
        }
    }
}

#[test]
fn bug_stale_broker_epoch_admits_an_old_incarnation() {
    for bug in [false, true] {
        let mut c = config();
        c.bugs.stale_broker_epoch = bug;
        let mut h = three(c);
        h.create_topic("t", 1, 3, &[]).unwrap();
        let p = shrink_to_leader(&mut h);
        let follower = p
            .assignment
            .replicas
            .iter()
            .copied()
            .find(|&r| r != p.assignment.leader)
            .unwrap();
        let old = h.member(follower);
        // The follower crashes, its session expires, it comes back as a new
        // incarnation and catches up.
        h.heartbeat(follower, true, false);
        h.register(follower, "x", false).unwrap();
        h.heartbeat(follower, false, false);
        assert_ne!(h.member(follower).1, old.1);
        // The leader's fetch state still names the old incarnation.
        let code = h.alter_partition(
            "t",
            0,
            &[h.member(p.assignment.leader), old],
            p.assignment.leader_epoch,
            p.assignment.partition_epoch,
        );
        if bug {
            assert_eq!(code, 0);
            assert!(h.partition("t", 0).assignment.isr.contains(&follower));
        } else {
            assert_eq!(code, ResponseError::IneligibleReplica.code());
        }
    }
}

/// The bug's ground: the ISR shrank to its leader while another replica
/// left cleanly (so it holds every committed record and sits in the ELR);
/// then the leader loses power and comes back first. KIP-966 waits for the
/// ELR member; without KIP-966 the unclean restart leads again and the
/// replica with the committed records truncates to it.
#[test]
fn bug_last_replica_standing_reelects_an_unclean_restart() {
    for bug in [false, true] {
        let mut c = config();
        c.bugs.last_replica_standing = bug;
        let mut h = three(c);
        h.create_topic("t", 1, 3, &[(MIN_INSYNC_REPLICAS_CONFIG, "2")])
            .unwrap();
        let r = h.partition("t", 0).assignment.replicas.clone();
        h.heartbeat(r[2], true, false);
        h.heartbeat(r[1], true, false);
        h.heartbeat(r[0], true, false);
        assert_eq!(h.partition("t", 0).assignment.leader, NO_LEADER);
        h.register(r[0], "x", false).unwrap();
        h.heartbeat(r[0], false, false);
        let after = h.partition("t", 0);
        if bug {
            assert_eq!(after.assignment.leader, r[0], "the bug re-elects it");
        } else {
            assert_eq!(after.assignment.leader, NO_LEADER, "KIP-966 waits");
            assert_eq!(after.elr, [r[1]].into(), "for the clean ELR member");
            h.heartbeat(r[1], false, false);
            assert_eq!(h.partition("t", 0).assignment.leader, r[1]);
        }
    }
}

/// KIP-966 Balanced recovery: the sole ISR member restarts uncleanly and
/// no other replica is eligible. Kafka remembers it as the last known
/// leader and elects it, uncleanly, once it is back
/// (`useLastKnownLeaderInBalancedRecovery`); without that the partition
/// stayed offline for good (scenarios/found/offline-after-unclean-last-isr).
#[test]
fn unclean_restart_of_the_last_leader_is_elected_by_balanced_recovery() {
    let mut h = three(config());
    h.create_topic("t", 1, 3, &[]).unwrap();
    let p = shrink_to_leader(&mut h);
    let last = p.assignment.leader;
    h.heartbeat(last, true, false);
    let offline = h.partition("t", 0);
    assert_eq!(offline.assignment.leader, NO_LEADER);
    assert_eq!(offline.last_known_elr, [last].into(), "remembered");
    h.register(last, "x", false).unwrap();
    let fenced = h.partition("t", 0);
    assert!(fenced.assignment.isr.is_empty() && fenced.elr.is_empty());
    assert_eq!(fenced.assignment.leader, NO_LEADER, "not while fenced");
    h.heartbeat(last, false, false);
    let after = h.partition("t", 0);
    assert_eq!(after.assignment.leader, last);
    assert_eq!(after.assignment.isr, [last].into());
    assert!(after.last_known_elr.is_empty(), "forgotten once led");
}

#[test]
fn clean_restart_of_the_last_replica_is_elected_from_the_elr() {
    let mut h = three(config());
    h.create_topic("t", 1, 3, &[]).unwrap();
    let p = shrink_to_leader(&mut h);
    let last = p.assignment.leader;
    h.heartbeat(last, true, false);
    let offline = h.partition("t", 0);
    assert!(offline.assignment.isr.is_empty());
    assert_eq!(offline.elr, [last].into(), "the last member stays eligible");
    h.register(last, "x", true).unwrap();
    h.heartbeat(last, false, false);
    let after = h.partition("t", 0).assignment;
    assert_eq!(after.leader, last);
    assert_eq!(after.isr, [last].into());
}

#[test]
fn elr_tracks_members_below_min_isr() {
    let mut h = three(config());
    h.create_topic("t", 1, 3, &[(MIN_INSYNC_REPLICAS_CONFIG, "2")])
        .unwrap();
    let replicas = h.partition("t", 0).assignment.replicas.clone();
    // Fence two followers one after the other, then the leader.
    h.heartbeat(replicas[2], true, false);
    assert!(h.partition("t", 0).elr.is_empty(), "ISR 2 >= min ISR 2");
    h.heartbeat(replicas[1], true, false);
    assert_eq!(h.partition("t", 0).elr, [replicas[1]].into());
    h.heartbeat(replicas[0], true, false);
    let p = h.partition("t", 0);
    assert_eq!(p.assignment.leader, NO_LEADER);
    assert_eq!(p.elr, [replicas[0], replicas[1]].into());
    // The replica that left first is not eligible: no leader.
    h.heartbeat(replicas[2], false, false);
    assert_eq!(h.partition("t", 0).assignment.leader, NO_LEADER);
    // An ELR member that comes back (same incarnation) leads.
    h.heartbeat(replicas[1], false, false);
    let p = h.partition("t", 0);
    assert_eq!(p.assignment.leader, replicas[1]);
    assert_eq!(p.elr, [replicas[0]].into());
}

#[test]
fn unclean_election_config_elects_outside_the_isr() {
    for unclean in [false, true] {
        let mut h = three(config());
        let value = if unclean { "true" } else { "false" };
        h.create_topic("t", 1, 3, &[(UNCLEAN_LEADER_ELECTION_CONFIG, value)])
            .unwrap();
        let p = shrink_to_leader(&mut h);
        let leader = p.assignment.leader;
        h.heartbeat(leader, true, false);
        let a = h.partition("t", 0).assignment;
        if unclean {
            assert_ne!(a.leader, NO_LEADER, "a non-ISR replica leads");
            assert_ne!(a.leader, leader);
            assert_eq!(a.isr, [a.leader].into());
        } else {
            assert_eq!(a.leader, NO_LEADER);
        }
    }
}

#[test]
fn preferred_leader_election() {
    let mut h = three(config());
    h.create_topic("t", 1, 3, &[]).unwrap();
    let preferred = h.partition("t", 0).assignment.replicas[0];
    h.heartbeat(preferred, true, false);
    assert_ne!(h.partition("t", 0).assignment.leader, preferred);
    let mut request = ElectLeadersRequest::default();
    request.election_type = 0;
    request.topic_partitions = None;
    let result = h.controller.handle_elect_leaders(&request);
    assert_eq!(
        result.response.replica_election_results[0].partition_result[0].error_code,
        ResponseError::PreferredLeaderNotAvailable.code()
    );
    // Back, caught up by its leader, then elected.
    h.heartbeat(preferred, false, false);
    let a = h.partition("t", 0).assignment;
    let mut members: Vec<_> = a.isr.iter().map(|&r| h.member(r)).collect();
    members.push(h.member(preferred));
    assert_eq!(
        h.alter_partition("t", 0, &members, a.leader_epoch, a.partition_epoch),
        0
    );
    let response = h.run(|c| c.handle_elect_leaders(&request));
    assert_eq!(
        response.replica_election_results[0].partition_result[0].error_code,
        0
    );
    let after = h.partition("t", 0).assignment;
    assert_eq!(after.leader, preferred);
    assert_eq!(after.leader_epoch, a.leader_epoch + 1);
    let response = h.run(|c| c.handle_elect_leaders(&request));
    assert_eq!(
        response.replica_election_results[0].partition_result[0].error_code,
        ResponseError::ElectionNotNeeded.code()
    );
}

#[test]
fn producer_id_blocks_advance() {
    let mut h = three(config());
    let mut request = AllocateProducerIdsRequest::default();
    request.broker_id = BrokerId(2);
    request.broker_epoch = h.member(2).1;
    let first = h.run(|c| c.handle_allocate_producer_ids(&request));
    let second = h.run(|c| c.handle_allocate_producer_ids(&request));
    assert_eq!(
        (first.producer_id_start.0, first.producer_id_len),
        (0, 1000)
    );
    assert_eq!(second.producer_id_start.0, 1000);
    request.broker_epoch -= 1;
    let stale = h.run(|c| c.handle_allocate_producer_ids(&request));
    assert_eq!(stale.error_code, ResponseError::StaleBrokerEpoch.code());
    assert_eq!(stale.producer_id_start.0, -1);
    request.broker_id = BrokerId(9);
    let unknown = h.run(|c| c.handle_allocate_producer_ids(&request));
    assert_eq!(unknown.error_code, ResponseError::StaleBrokerEpoch.code());
    assert_eq!(h.controller.image().next_producer_id, 2000);
    // A new controller replaying the log goes on after the last block.
    let mut successor = h.replayed();
    request.broker_id = BrokerId(3);
    request.broker_epoch = h.member(3).1;
    let third = successor.handle_allocate_producer_ids(&request);
    assert_eq!(third.response.error_code, 0);
    assert_eq!(third.response.producer_id_start.0, 2000);
    assert_eq!(third.records.len(), 1, "one ProducerIdsRecord");
}

#[test]
fn a_fenced_broker_still_gets_producer_ids_as_in_kafka() {
    let mut h = three(config());
    h.heartbeat(2, true, false);
    assert!(h.controller.image().brokers[&2].fenced);
    let mut request = AllocateProducerIdsRequest::default();
    request.broker_id = BrokerId(2);
    request.broker_epoch = h.member(2).1;
    let block = h.run(|c| c.handle_allocate_producer_ids(&request));
    assert_eq!((block.error_code, block.producer_id_start.0), (0, 0));
}

#[test]
fn replay_rebuilds_the_same_image() {
    let mut h = three(config());
    h.create_topic("t", 4, 2, &[]).unwrap();
    h.heartbeat(1, true, false);
    h.heartbeat(1, false, false);
    assert_eq!(h.replayed().image(), h.controller.image());
    assert_eq!(
        h.replayed().image().describe(),
        h.controller.image().describe()
    );
}

/// The image walk is skipped while the image is unchanged; a record
/// replayed after a passing walk must be walked again. Here the record
/// fences an ISR member without the ISR shrink the controller would have
/// written with it: the walk that follows must see it (in debug builds
/// replay's own check does; in release, the next `check_invariants`).
#[test]
#[should_panic(expected = "no fenced broker in the ISR")]
fn a_record_replayed_after_a_passing_check_is_checked_again() {
    let mut h = three(config());
    h.create_topic("t", 1, 3, &[]).expect("created");
    h.controller.check_invariants();
    h.controller.check_invariants();
    let assignment = h.partition("t", 0).assignment;
    let follower = *assignment
        .isr
        .iter()
        .find(|&&r| r != assignment.leader)
        .expect("a follower in the ISR");
    let (id, epoch) = h.member(follower);
    let offset = h.next_offset();
    h.controller.replay(
        offset,
        &MetadataRecord::FenceBroker(FenceBrokerRecord { id, epoch }),
    );
    h.controller.check_invariants();
}

/// A batch whose record count its bytes cannot back (a writer's bug: the
/// CRC is resealed over it) fails its decode with an error that names the
/// damage; the records list is not first sized by that count (i32::MAX
/// large records would abort the process on allocation instead).
#[test]
fn a_record_count_the_batch_cannot_back_is_not_allocated_for() {
    let record = MetadataRecord::Topic(TopicRecord {
        name: "t".into(),
        topic_id: Uuid::from_u128(7),
    });
    let mut batch = encode_batch(&[record], 0);
    assert_eq!(decode_batches(&batch).expect("sound").len(), 1);
    batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    crate::batch::reseal_crc(&mut batch);
    let error = decode_batches(&batch).expect_err("a count of i32::MAX over one record's bytes");
    assert!(matches!(error, RecordDecodeError::Batch(_)), "{error}");
}

/// A metadata record whose framing is damaged (a varint that never ends,
/// under a resealed CRC) is a decode error, not a panic: a snapshot read
/// from disk or a peer goes through the same decode.
#[test]
fn a_damaged_metadata_record_is_an_error_not_a_panic() {
    let record = MetadataRecord::Topic(TopicRecord {
        name: "t".into(),
        topic_id: Uuid::from_u128(7),
    });
    let mut batch = encode_batch(&[record.clone(), record], 0);
    let records_at = crate::batch::BATCH_HEADER_LEN;
    batch[records_at + 2..records_at + 14].fill(0xff);
    crate::batch::reseal_crc(&mut batch);
    let decoded = std::panic::catch_unwind(|| decode_batches(&batch));
    let error = decoded
        .expect("no panic")
        .expect_err("a damaged record does not decode");
    assert!(error.to_string().contains("bad varint"), "{error}");
}

/// A read from the middle of the log: records before `from` are skipped
/// (a whole batch before it, and the head of the batch it falls in), the
/// rest come with their offsets.
#[test]
fn decoding_from_an_offset_skips_what_lies_before_it() {
    let topic = |n: u128| {
        MetadataRecord::Topic(TopicRecord {
            name: format!("t{n}"),
            topic_id: Uuid::from_u128(n),
        })
    };
    let mut first = encode_batch(&[topic(1), topic(2)], 0);
    let mut second = encode_batch(&[topic(3), topic(4), topic(5)], 0);
    crate::batch::set_base_offset(&mut first, 10);
    crate::batch::set_base_offset(&mut second, 12);
    let log = [first, second].concat();
    let offsets = |from: i64| -> Vec<i64> {
        decode_batches_from(&log, from)
            .expect("sound")
            .iter()
            .map(|(offset, _)| *offset)
            .collect()
    };
    assert_eq!(offsets(i64::MIN), vec![10, 11, 12, 13, 14]);
    assert_eq!(offsets(11), vec![11, 12, 13, 14]);
    assert_eq!(offsets(12), vec![12, 13, 14]);
    assert_eq!(offsets(13), vec![13, 14]);
    assert_eq!(offsets(15), Vec::<i64>::new());
    let decoded = decode_batches_from(&log, 13).expect("sound");
    assert_eq!(decoded[0].1, topic(4));
}
