//! Unit tests through the node's own boundary; the randomized cluster
//! simulation lives in `core/tests/quorum_simulation.rs`.

use super::*;
use crate::batch::build_batch;
use crate::storage::MemoryStorage;

fn drain(node: &mut QuorumNode) -> Vec<QuorumOutput> {
    std::iter::from_fn(|| node.poll_output()).collect()
}

fn flush_all(node: &mut QuorumNode, storage: &mut MemoryStorage, now: Instant) {
    // Bounded: each round flushes everything unsynced.
    for _ in 0..8 {
        let mut flushed = false;
        for output in drain(node) {
            if let QuorumOutput::Flush {
                paths,
                log_end_offset,
            } = output
            {
                for path in &paths {
                    storage.sync(path).unwrap();
                }
                node.handle_flushed(storage, now, log_end_offset).unwrap();
                flushed = true;
            }
        }
        if !flushed {
            return;
        }
    }
    panic!("flushes do not settle");
}

#[test]
fn a_single_voter_elects_itself_and_commits() {
    let mut storage = MemoryStorage::new();
    let config = QuorumConfig::new(1, &[1], "c");
    let mut node = QuorumNode::open(&mut storage, config.clone(), Instant::ZERO, 7).unwrap();
    assert_eq!(node.role(), Role::Unattached);
    let deadline = node.poll_timeout().unwrap();
    node.handle_timeout(&mut storage, deadline).unwrap();
    assert_eq!(node.role(), Role::Leader);
    assert_eq!(node.epoch(), 1);
    assert_eq!(node.high_watermark(), None, "nothing is durable yet");
    flush_all(&mut node, &mut storage, deadline);
    assert_eq!(
        node.high_watermark(),
        Some(1),
        "the LeaderChange record commits"
    );
    let batch = build_batch(&[(None, Some(b"v"))], 0);
    let offset = node.propose(&mut storage, deadline, &batch).unwrap();
    assert_eq!(offset, 1);
    flush_all(&mut node, &mut storage, deadline);
    assert_eq!(node.high_watermark(), Some(2));

    // A restart resumes as resigned in the same epoch, then wins epoch 2.
    storage.crash();
    let mut node = QuorumNode::open(&mut storage, config, deadline, 8).unwrap();
    assert_eq!(node.role(), Role::Resigned);
    assert_eq!(node.epoch(), 1);
    assert_eq!(node.log_end_offset(), 2);
    // The first timer resends EndQuorumEpoch (to nobody); the election
    // timer follows.
    for _ in 0..3 {
        let deadline = node.poll_timeout().unwrap();
        node.handle_timeout(&mut storage, deadline).unwrap();
    }
    assert_eq!((node.role(), node.epoch()), (Role::Leader, 2));
}

#[test]
fn a_follower_does_not_propose() {
    let mut storage = MemoryStorage::new();
    let mut node = QuorumNode::open(
        &mut storage,
        QuorumConfig::new(1, &[1, 2, 3], "c"),
        Instant::ZERO,
        1,
    )
    .unwrap();
    let batch = build_batch(&[(None, Some(b"v"))], 0);
    assert_eq!(
        node.propose(&mut storage, Instant::ZERO, &batch),
        Err(ProposeError::NotLeader {
            leader_id: None,
            epoch: 0
        })
    );
}

#[test]
fn pre_vote_changes_nothing_and_a_vote_is_persisted() {
    let mut storage = MemoryStorage::new();
    let mut node = QuorumNode::open(
        &mut storage,
        QuorumConfig::new(1, &[1, 2, 3], "c"),
        Instant::ZERO,
        1,
    )
    .unwrap();
    drain(&mut node);
    let request = |pre_vote| {
        RaftMessage::Vote(messages::vote_request(
            "c",
            1,
            messages::VoteRequestFields {
                candidate_id: 2,
                candidate_epoch: 5,
                last_offset_epoch: -1,
                last_offset: 0,
                pre_vote,
            },
        ))
    };
    let granted = |outputs: Vec<QuorumOutput>| match &outputs[..] {
        [QuorumOutput::Send {
            to: 2,
            message: RaftMessage::VoteResponse(response),
        }] => {
            messages::parse_vote_response(response)
                .unwrap()
                .vote_granted
        }
        other => panic!("one vote response expected, got {other:?}"),
    };
    node.handle_message(&mut storage, Instant::ZERO, 2, request(true))
        .unwrap();
    assert!(granted(drain(&mut node)));
    assert_eq!(node.epoch(), 0, "a pre-vote does not bump the epoch");
    node.handle_message(&mut storage, Instant::ZERO, 2, request(false))
        .unwrap();
    assert!(granted(drain(&mut node)));
    assert_eq!((node.epoch(), node.voted_id()), (5, Some(2)));
    storage.crash();
    let persisted = read_election_state(&mut storage).unwrap().unwrap();
    assert_eq!((persisted.epoch, persisted.voted_id), (5, Some(2)));
}
