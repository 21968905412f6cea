//! Partition reassignment (KIP-455) on the controller: grow, catch up,
//! shrink; the leader moving away; min.insync.replicas; cancel; errors;
//! fail-over in the middle.

use super::records::*;
use super::testing::Harness;
use super::*;
use kafka_protocol::ResponseError;
use std::collections::BTreeSet;

/// Brokers 1..=4 in racks a, b, c, a, unfenced.
fn four() -> Harness {
    let mut h = Harness::new(ControllerConfig::new(1, "cluster"));
    for (id, rack) in [(1, "a"), (2, "b"), (3, "c"), (4, "a")] {
        h.start(id, rack);
    }
    h
}

fn set(ids: &[i32]) -> BTreeSet<i32> {
    ids.iter().copied().collect()
}

/// The partition's leader proposes `isr` (at current epochs).
fn expand(h: &mut Harness, isr: &[i32]) -> i16 {
    let p = h.partition("t", 0);
    let members: Vec<(i32, i64)> = isr.iter().map(|&r| h.member(r)).collect();
    h.alter_partition(
        "t",
        0,
        &members,
        p.assignment.leader_epoch,
        p.assignment.partition_epoch,
    )
}

fn listed(h: &Harness) -> Vec<super::testing::Ongoing> {
    super::testing::ongoing_reassignments(&h.list_reassignments(None))
}

#[test]
fn grow_catch_up_shrink_and_the_leader_moves_away() {
    let mut h = four();
    h.create_assigned("t", &[1, 2, 3], 2);
    let before = h.partition("t", 0);
    assert_eq!(before.assignment.leader, 1);

    // Grow: target first, then the current replicas not in it.
    assert_eq!(h.reassign("t", 0, Some(&[2, 3, 4]), true), 0);
    let p = h.partition("t", 0);
    assert_eq!(p.assignment.replicas, vec![2, 3, 4, 1]);
    assert_eq!(p.adding, vec![4]);
    assert_eq!(p.removing, vec![1]);
    assert_eq!(p.assignment.isr, set(&[1, 2, 3]), "the ISR is untouched");
    assert_eq!(p.assignment.leader, 1, "the leader keeps leading meanwhile");
    assert_eq!(p.assignment.leader_epoch, before.assignment.leader_epoch);
    assert!(p.assignment.partition_epoch > before.assignment.partition_epoch);
    assert_eq!(
        listed(&h),
        vec![("t".to_string(), 0, vec![2, 3, 4, 1], vec![4], vec![1])]
    );
    // The named form finds it too; unknown names are skipped.
    let named = h.list_reassignments(Some(&[("t", &[0, 5]), ("nope", &[0])]));
    assert_eq!(named.topics.len(), 1);
    assert_eq!(named.topics[0].partitions.len(), 1);

    // Catch up and shrink: the AlterPartition that brings 4 into the ISR
    // completes the reassignment; 1 leaves, so 2 (first of the target)
    // leads in a new epoch.
    assert_eq!(expand(&mut h, &[1, 2, 3, 4]), 0);
    let after = h.partition("t", 0);
    assert_eq!(after.assignment.replicas, vec![2, 3, 4]);
    assert_eq!(after.assignment.isr, set(&[2, 3, 4]));
    assert_eq!(after.assignment.leader, 2);
    assert_eq!(after.assignment.leader_epoch, p.assignment.leader_epoch + 1);
    assert!(after.adding.is_empty() && after.removing.is_empty());
    assert!(listed(&h).is_empty(), "nothing in progress");
    // A follower controller replaying the log agrees.
    assert_eq!(
        h.replayed().image().describe(),
        h.controller.image().describe()
    );
}

#[test]
fn the_leader_stays_when_it_is_in_the_target() {
    let mut h = four();
    h.create_assigned("t", &[1, 2, 3], 2);
    assert_eq!(h.reassign("t", 0, Some(&[1, 2, 4]), true), 0);
    assert_eq!(h.partition("t", 0).assignment.replicas, vec![1, 2, 4, 3]);
    let epoch = h.partition("t", 0).assignment.leader_epoch;
    // 4 catching up completes it: 3 leaves; 1 keeps leading.
    assert_eq!(expand(&mut h, &[1, 2, 3, 4]), 0);
    let after = h.partition("t", 0);
    assert_eq!(after.assignment.replicas, vec![1, 2, 4]);
    assert_eq!(after.assignment.isr, set(&[1, 2, 4]));
    assert_eq!(after.assignment.leader, 1);
    assert_eq!(after.assignment.leader_epoch, epoch, "no election needed");
}

#[test]
fn completion_waits_for_every_adding_replica() {
    let mut h = four();
    h.create_assigned("t", &[1, 2], 1);
    assert_eq!(h.reassign("t", 0, Some(&[3, 4]), true), 0);
    let p = h.partition("t", 0);
    assert_eq!(p.assignment.replicas, vec![3, 4, 1, 2]);
    assert_eq!(p.adding, vec![3, 4]);
    assert_eq!(expand(&mut h, &[1, 2, 3]), 0);
    let p = h.partition("t", 0);
    assert!(p.is_reassigning(), "4 has not caught up yet");
    assert_eq!(p.assignment.isr, set(&[1, 2, 3]));
    assert_eq!(expand(&mut h, &[1, 2, 3, 4]), 0);
    let p = h.partition("t", 0);
    assert!(!p.is_reassigning());
    assert_eq!(p.assignment.replicas, vec![3, 4]);
    assert_eq!(p.assignment.isr, set(&[3, 4]));
    assert_eq!(p.assignment.leader, 3);
}

#[test]
fn completion_never_takes_the_isr_below_min_insync_replicas() {
    let mut h = four();
    h.create_assigned("t", &[1, 2, 3], 3);
    assert_eq!(h.reassign("t", 0, Some(&[2, 3, 4]), true), 0);
    // 3 is fenced: the ISR shrinks to {1, 2} (below min ISR, so 3 goes to
    // the ELR).
    h.heartbeat(3, true, false);
    assert_eq!(h.partition("t", 0).assignment.isr, set(&[1, 2]));
    // 4 catches up. Completing now would leave {2, 4}, below min ISR 3
    // while the ISR {1, 2, 4} meets it: wait.
    assert_eq!(expand(&mut h, &[1, 2, 4]), 0);
    let p = h.partition("t", 0);
    assert!(p.is_reassigning());
    assert_eq!(p.assignment.isr, set(&[1, 2, 4]));
    assert_eq!(p.assignment.leader, 1);
    // 3 comes back and catches up: now the target ISR {2, 3, 4} is enough.
    h.register(3, "c", true).unwrap();
    assert!(!h.heartbeat(3, false, false).is_fenced);
    assert_eq!(expand(&mut h, &[1, 2, 3, 4]), 0);
    let p = h.partition("t", 0);
    assert!(!p.is_reassigning());
    assert_eq!(p.assignment.replicas, vec![2, 3, 4]);
    assert_eq!(p.assignment.isr, set(&[2, 3, 4]));
    assert_eq!(p.assignment.leader, 2);
}

#[test]
fn a_pure_shrink_completes_at_once() {
    let mut h = four();
    h.create_assigned("t", &[1, 2, 3], 1);
    assert_eq!(h.reassign("t", 0, Some(&[2, 3]), true), 0);
    let p = h.partition("t", 0);
    assert!(!p.is_reassigning());
    assert_eq!(p.assignment.replicas, vec![2, 3]);
    assert_eq!(p.assignment.isr, set(&[2, 3]));
    assert_eq!(p.assignment.leader, 2);
    // Reordering only changes the preferred leader, nobody moves.
    assert_eq!(h.reassign("t", 0, Some(&[3, 2]), true), 0);
    let q = h.partition("t", 0);
    assert_eq!(q.assignment.replicas, vec![3, 2]);
    assert_eq!(q.assignment.leader, 2);
    assert!(listed(&h).is_empty());
}

#[test]
fn cancel_reverts_to_the_original_replicas() {
    let mut h = four();
    h.create_assigned("t", &[1, 2, 3], 2);
    assert_eq!(
        h.reassign("t", 0, None, true),
        ResponseError::NoReassignmentInProgress.code()
    );
    assert_eq!(h.reassign("t", 0, Some(&[4, 3, 2]), true), 0);
    assert_eq!(h.partition("t", 0).assignment.replicas, vec![4, 3, 2, 1]);
    assert_eq!(h.reassign("t", 0, None, true), 0);
    let p = h.partition("t", 0);
    assert!(!p.is_reassigning());
    // The original replica set, in the order the reassignment left
    // (Kafka's PartitionReassignmentRevert: the replicas minus adding; the
    // original order is not kept anywhere). The leader never moved.
    assert_eq!(p.assignment.replicas, vec![3, 2, 1]);
    assert_eq!(p.assignment.isr, set(&[1, 2, 3]));
    assert_eq!(p.assignment.leader, 1);
    assert!(listed(&h).is_empty());
    assert_eq!(
        h.reassign("t", 0, None, true),
        ResponseError::NoReassignmentInProgress.code()
    );
}

#[test]
fn a_new_target_replaces_one_in_progress() {
    let mut h = four();
    h.create_assigned("t", &[1, 2], 1);
    assert_eq!(h.reassign("t", 0, Some(&[3, 4]), true), 0);
    // Measured from the original {1, 2}, not from {3, 4, 1, 2}.
    assert_eq!(h.reassign("t", 0, Some(&[1, 4]), true), 0);
    let p = h.partition("t", 0);
    assert_eq!(p.assignment.replicas, vec![1, 4, 2]);
    assert_eq!(p.adding, vec![4]);
    assert_eq!(p.removing, vec![2]);
}

#[test]
fn invalid_reassignments_are_refused_without_records() {
    let mut h = four();
    h.create_assigned("t", &[1, 2, 3], 2);
    let log_len = h.log.len();
    let invalid = ResponseError::InvalidReplicaAssignment.code();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(h.reassign("nope", 0, Some(&[1]), true), unknown);
    assert_eq!(h.reassign("t", 1, Some(&[1]), true), unknown);
    assert_eq!(h.reassign("t", 0, Some(&[]), true), invalid, "empty");
    assert_eq!(h.reassign("t", 0, Some(&[1, 1, 2]), true), invalid, "twice");
    assert_eq!(h.reassign("t", 0, Some(&[1, 2, 9]), true), invalid, "no 9");
    assert_eq!(
        h.reassign("t", 0, Some(&[1, 2]), false),
        ResponseError::InvalidReplicationFactor.code(),
        "v1 may forbid a replication factor change"
    );
    assert_eq!(h.log.len(), log_len, "nothing written");
    assert!(listed(&h).is_empty());
    // The same partition twice in one request: the second is refused.
    let mut request = kafka_protocol::messages::AlterPartitionReassignmentsRequest::default();
    let mut topic =
        kafka_protocol::messages::alter_partition_reassignments_request::ReassignableTopic::default(
        );
    topic.name = kafka_protocol::messages::TopicName("t".into());
    for target in [[2, 3, 4], [1, 2, 4]] {
        let mut p = kafka_protocol::messages::alter_partition_reassignments_request::ReassignablePartition::default();
        p.replicas = Some(
            target
                .iter()
                .map(|&r| kafka_protocol::messages::BrokerId(r))
                .collect(),
        );
        topic.partitions.push(p);
    }
    request.topics.push(topic);
    let response = h.run(|c| c.handle_alter_partition_reassignments(&request));
    let codes: Vec<i16> = response.responses[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, vec![0, ResponseError::InvalidRequest.code()]);
    assert_eq!(h.partition("t", 0).assignment.replicas, vec![2, 3, 4, 1]);
}

#[test]
fn a_new_controller_continues_the_reassignment() {
    let mut h = four();
    h.create_assigned("t", &[1, 2, 3], 2);
    assert_eq!(h.reassign("t", 0, Some(&[2, 3, 4]), true), 0);
    // Fail-over: the next controller knows only the log.
    h.controller = h.replayed();
    let p = h.partition("t", 0);
    assert_eq!(p.adding, vec![4]);
    assert_eq!(p.removing, vec![1]);
    assert_eq!(listed(&h).len(), 1);
    assert_eq!(expand(&mut h, &[1, 2, 3, 4]), 0);
    let p = h.partition("t", 0);
    assert!(!p.is_reassigning());
    assert_eq!(p.assignment.replicas, vec![2, 3, 4]);
    // The encoded log carries the fields: decode it back and replay.
    let batch = encode_batch(&h.log.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(), 0);
    let decoded = decode_batches(&batch).unwrap();
    let mut fresh = Controller::new(h.controller.config().clone());
    for (offset, record) in &decoded {
        fresh.replay(*offset, record);
    }
    assert_eq!(fresh.image().describe(), h.controller.image().describe());
}

#[test]
fn records_without_reassignment_keep_version_0() {
    let mut h = four();
    h.create_topic("plain", 3, 3, &[]).unwrap();
    h.heartbeat(2, true, false);
    for (_, record) in &h.log {
        assert_eq!(record.encode()[1], 0, "{record:?}");
    }
    h.create_assigned("t", &[1, 3], 1);
    assert_eq!(h.reassign("t", 0, Some(&[3, 4]), true), 0);
    let (_, last) = h.log.last().unwrap();
    assert_eq!(last.encode()[1], 1, "a reassignment record is version 1");
}
