//! Three replicas of one partition, each with its own in-memory disk, a
//! controller that commits ISR changes with the partition-epoch check, and
//! fetches moved by hand.

use super::*;
use crate::batch::build_batch;
use crate::log::{LogConfig, PartitionLog};
use crate::storage::MemoryStorage;
use crate::time::Instant;
use kafka_protocol::ResponseError;
use std::time::Duration;

struct Replica {
    id: i32,
    storage: MemoryStorage,
    log: PartitionLog,
}

impl Replica {
    fn new(id: i32) -> Replica {
        let mut storage = MemoryStorage::new();
        let (log, _) =
            PartitionLog::open(&mut storage, "t-0", LogConfig::default(), Instant::ZERO).unwrap();
        Replica { id, storage, log }
    }

    fn values(&mut self) -> Vec<Vec<u8>> {
        let end = self.log.log_end_offset();
        let mut out = Vec::new();
        let mut offset = self.log.log_start_offset();
        while offset < end {
            let read = self
                .log
                .read(&mut self.storage, offset, 1 << 20, end)
                .unwrap();
            for (_, header) in crate::batch::BatchIter::new(&read.records) {
                offset = header.next_offset();
            }
            for batch in split_batches(&read.records) {
                out.extend(
                    crate::batch::decode_records_for_test(batch)
                        .into_iter()
                        .map(|(_, v)| v.unwrap()),
                );
            }
        }
        out
    }
}

fn split_batches(mut records: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while records.len() >= 12 {
        let len = 12 + i32::from_be_bytes(records[8..12].try_into().unwrap()) as usize;
        out.push(&records[..len]);
        records = &records[len..];
    }
    out
}

struct Cluster {
    replicas: Vec<Replica>,
    assignment: PartitionAssignment,
    leader: LeaderReplica,
    followers: Vec<(usize, FollowerReplica)>,
    now: Instant,
    config: ReplicationConfig,
}

impl Cluster {
    fn new(config: ReplicationConfig) -> Cluster {
        let mut replicas: Vec<Replica> = (0..3).map(Replica::new).collect();
        let assignment = PartitionAssignment {
            replicas: vec![0, 1, 2],
            isr: [0, 1, 2].into(),
            leader: 0,
            leader_epoch: 0,
            partition_epoch: 0,
        };
        let now = Instant::from_millis(1_000);
        let r0 = &mut replicas[0];
        let leader = LeaderReplica::become_leader(
            0,
            config.clone(),
            &assignment,
            &mut r0.log,
            &mut r0.storage,
            0,
            now,
        )
        .unwrap();
        let followers = (1..3)
            .map(|i| {
                let r = &mut replicas[i];
                (
                    i,
                    FollowerReplica::become_follower(
                        r.id,
                        config.clone(),
                        &assignment,
                        &mut r.log,
                        &mut r.storage,
                        0,
                    )
                    .unwrap(),
                )
            })
            .collect();
        Cluster {
            replicas,
            assignment,
            leader,
            followers,
            now,
            config,
        }
    }

    fn leader_index(&self) -> usize {
        self.assignment.leader as usize
    }

    fn produce(&mut self, value: &[u8]) -> i64 {
        let i = self.leader_index();
        let epoch = self.leader.leader_epoch();
        let r = &mut self.replicas[i];
        let info = r
            .log
            .append_as_leader(
                &mut r.storage,
                &build_batch(&[(None, Some(value))], 0),
                epoch,
                self.now,
            )
            .unwrap();
        let leo = r.log.log_end_offset();
        self.leader.handle_leader_end_offset(leo);
        info.last_offset + 1
    }

    /// One fetch by follower `index` (an index into `replicas`), answered.
    fn fetch(&mut self, index: usize) -> FollowerOutcome {
        let position = self
            .followers
            .iter()
            .position(|(i, _)| *i == index)
            .expect("a follower");
        let leader_index = self.leader_index();
        let request = self.followers[position]
            .1
            .fetch_request(&self.replicas[index].log);
        let leader_leo = self.replicas[leader_index].log.log_end_offset();
        let decision = self.leader.handle_fetch(
            &self.replicas[leader_index].log,
            leader_leo,
            self.now,
            &request,
        );
        let (records, response) = match decision {
            FetchDecision::Read {
                fetch_offset,
                high_watermark,
            } => {
                let leader = &mut self.replicas[leader_index];
                let read = leader
                    .log
                    .read(&mut leader.storage, fetch_offset, 1 << 20, leader_leo)
                    .unwrap();
                (read.records, (0, high_watermark, None))
            }
            FetchDecision::Diverging { epoch, end_offset } => {
                (Default::default(), (0, -1, Some((epoch, end_offset))))
            }
            FetchDecision::Error(code) => (Default::default(), (code, -1, None)),
        };
        let fields = FetchResponseFields {
            error_code: response.0,
            high_watermark: response.1,
            diverging: response.2,
            records: &records,
        };
        let r = &mut self.replicas[index];
        let outcome = self.followers[position]
            .1
            .handle_fetch_response(&mut r.log, &mut r.storage, self.now, &fields)
            .unwrap();
        // The node syncs what a follower appended before its next fetch
        // counts it (`a_follower_counts_only_as_far_as_it_synced` leaves it
        // unsynced).
        r.log.mark_synced(r.log.log_end_offset());
        self.controller_step();
        outcome
    }

    fn fetch_all(&mut self, rounds: usize) {
        for _ in 0..rounds {
            let indexes: Vec<usize> = self.followers.iter().map(|(i, _)| *i).collect();
            for i in indexes {
                self.fetch(i);
            }
        }
    }

    /// The controller commits a proposed ISR change if it names the current
    /// partition epoch (the check whose absence is `no-partition-epoch-check`).
    fn controller_step(&mut self) {
        let Some(change) = self.leader.poll_isr_change() else {
            return;
        };
        if change.partition_epoch == self.assignment.partition_epoch
            && change.leader_epoch == self.assignment.leader_epoch
        {
            self.assignment.isr = change.new_isr;
            self.assignment.partition_epoch += 1;
            let leo = self.replicas[self.leader_index()].log.log_end_offset();
            self.leader
                .handle_assignment(&self.assignment, leo, self.now);
        } else {
            self.leader.handle_isr_change_answer(
                change.leader_epoch,
                change.partition_epoch,
                IsrAnswer::NotApplied,
            );
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now + Duration::from_millis(ms);
        self.leader.maybe_shrink_isr(self.now);
        self.controller_step();
    }

    /// Elects `new_leader` at the next epoch; everyone else follows it.
    fn elect(&mut self, new_leader: usize, isr: &[i32]) {
        let old_hw = self.leader.high_watermark();
        self.assignment.leader = new_leader as i32;
        self.assignment.leader_epoch += 1;
        self.assignment.partition_epoch += 1;
        self.assignment.isr = isr.iter().copied().collect();
        let r = &mut self.replicas[new_leader];
        self.leader = LeaderReplica::become_leader(
            new_leader as i32,
            self.config.clone(),
            &self.assignment,
            &mut r.log,
            &mut r.storage,
            old_hw,
            self.now,
        )
        .unwrap();
        self.followers = (0..3)
            .filter(|i| *i != new_leader)
            .map(|i| {
                let r = &mut self.replicas[i];
                (
                    i,
                    FollowerReplica::become_follower(
                        r.id,
                        self.config.clone(),
                        &self.assignment,
                        &mut r.log,
                        &mut r.storage,
                        old_hw,
                    )
                    .unwrap(),
                )
            })
            .collect();
    }

    fn check(&self) {
        self.assignment.check_invariants();
        self.leader
            .check_invariants(self.replicas[self.leader_index()].log.log_end_offset());
        for (i, f) in &self.followers {
            f.check_invariants(self.replicas[*i].log.log_end_offset());
        }
    }
}

#[test]
fn high_watermark_waits_for_every_isr_member() {
    let mut c = Cluster::new(ReplicationConfig::default());
    let end = c.produce(b"a");
    assert_eq!(c.leader.high_watermark(), 0, "no follower has it yet");
    c.fetch(1);
    assert_eq!(
        c.leader.high_watermark(),
        0,
        "follower 1's fetch offset still says 0"
    );
    c.fetch(1);
    c.fetch(2);
    assert_eq!(
        c.leader.high_watermark(),
        0,
        "follower 2 has not reported it"
    );
    c.fetch(2);
    assert_eq!(c.leader.high_watermark(), end);
    assert_eq!(c.leader.acks_all_complete(end), Some(Ok(())));
    c.fetch_all(1);
    for (_, f) in &c.followers {
        assert_eq!(
            f.high_watermark(),
            end,
            "followers learn the high watermark"
        );
    }
    c.check();
}

/// With acks waiting for fsync a follower may fetch again before its sync
/// ends (the node streams from a leader that has more): its fetch offset
/// says what it holds, its synced offset what survives a power cut, and
/// the high watermark waits for the latter.
#[test]
fn a_follower_counts_only_as_far_as_it_synced() {
    let mut c = Cluster::new(ReplicationConfig::default());
    let end = c.produce(b"a");
    c.fetch_all(1);
    assert_eq!(c.replicas[1].log.log_end_offset(), end);
    let leo = c.replicas[0].log.log_end_offset();
    let unsynced = ReplicaFetch {
        synced_offset: 0,
        ..c.followers[0].1.fetch_request(&c.replicas[1].log)
    };
    assert_eq!(unsynced.fetch_offset, end);
    let synced_2 = c.followers[1].1.fetch_request(&c.replicas[2].log);
    assert_eq!(synced_2.synced_offset, end, "the harness syncs follower 2");
    leader_serves(&mut c, leo, &unsynced);
    leader_serves(&mut c, leo, &synced_2);
    assert_eq!(
        c.leader.high_watermark(),
        0,
        "follower 1 holds the record but has not synced it"
    );
    assert_eq!(c.leader.follower(1).unwrap().log_end_offset, end);
    assert_eq!(c.leader.follower(1).unwrap().synced_offset, 0);
    assert!(
        c.leader.follower(1).unwrap().last_caught_up_at == c.now,
        "holding everything counts as caught up: lag is about fetching"
    );
    let synced_1 = c.followers[0].1.fetch_request(&c.replicas[1].log);
    assert_eq!(synced_1.synced_offset, end);
    leader_serves(&mut c, leo, &synced_1);
    assert_eq!(c.leader.high_watermark(), end);
    c.check();
}

/// A follower that holds the records up to the high watermark but has
/// not synced them does not join the ISR: back from a power cut without
/// them, it could be elected from the ISR it joined.
#[test]
fn a_follower_joins_the_isr_only_once_it_synced_up_to_the_high_watermark() {
    let mut c = Cluster::new(ReplicationConfig::default());
    let end = c.produce(b"a");
    c.fetch_all(2);
    assert_eq!(c.leader.high_watermark(), end);
    c.assignment.isr = [0, 2].into();
    let leo = c.replicas[0].log.log_end_offset();
    c.leader.handle_assignment(&c.assignment, leo, c.now);
    let unsynced = ReplicaFetch {
        synced_offset: 0,
        ..c.followers[0].1.fetch_request(&c.replicas[1].log)
    };
    assert_eq!(unsynced.fetch_offset, end);
    leader_serves(&mut c, leo, &unsynced);
    assert_eq!(c.leader.poll_isr_change(), None, "not synced yet");
    let synced = c.followers[0].1.fetch_request(&c.replicas[1].log);
    leader_serves(&mut c, leo, &synced);
    let change = c.leader.poll_isr_change().expect("synced: it joins");
    assert_eq!(change.new_isr, [0, 1, 2].into());
}

#[test]
fn a_lagging_follower_leaves_the_isr_and_rejoins_when_caught_up() {
    let config = ReplicationConfig {
        replica_lag_time_max_ms: 1_000,
        min_insync_replicas: 2,
        ..Default::default()
    };
    let mut c = Cluster::new(config);
    c.produce(b"a");
    c.fetch_all(2);
    let end = c.produce(b"b");
    c.fetch(1);
    c.fetch(1);
    // Follower 2 stops fetching; follower 1 keeps up.
    c.advance(600);
    c.fetch(1);
    c.advance(500);
    assert_eq!(c.assignment.isr, [0, 1].into(), "follower 2 was shrunk out");
    assert_eq!(
        c.leader.high_watermark(),
        end,
        "the high watermark no longer waits for 2"
    );
    c.fetch(2);
    c.fetch(2);
    assert_eq!(c.assignment.isr, [0, 1, 2].into(), "caught up, it rejoins");
    c.check();
}

#[test]
fn acks_all_fails_after_append_when_the_isr_shrank_below_min_isr() {
    let config = ReplicationConfig {
        replica_lag_time_max_ms: 1_000,
        min_insync_replicas: 3,
        ..Default::default()
    };
    let mut c = Cluster::new(config);
    assert!(c.leader.enough_replicas());
    let end = c.produce(b"a");
    c.advance(1_001);
    assert!(!c.leader.enough_replicas(), "both followers are out");
    assert_eq!(
        c.leader.acks_all_complete(end),
        Some(Err(ResponseError::NotEnoughReplicasAfterAppend.code()))
    );
}

#[test]
fn a_stale_leader_epoch_is_fenced() {
    let mut c = Cluster::new(ReplicationConfig::default());
    let leo = c.replicas[0].log.log_end_offset();
    let stale = ReplicaFetch {
        replica_id: 1,
        current_leader_epoch: 0,
        fetch_offset: 0,
        synced_offset: 0,
        last_fetched_epoch: -1,
        replica_epoch: -1,
    };
    c.elect(0, &[0, 1, 2]);
    assert_eq!(
        c.leader
            .handle_fetch(&c.replicas[0].log, leo, c.now, &stale),
        FetchDecision::Error(ResponseError::FencedLeaderEpoch.code())
    );
    let future = ReplicaFetch {
        current_leader_epoch: 5,
        ..stale
    };
    assert_eq!(
        c.leader
            .handle_fetch(&c.replicas[0].log, leo, c.now, &future),
        FetchDecision::Error(ResponseError::UnknownLeaderEpoch.code())
    );
    let unknown = ReplicaFetch {
        replica_id: 9,
        current_leader_epoch: 1,
        ..stale
    };
    assert_eq!(
        c.leader
            .handle_fetch(&c.replicas[0].log, leo, c.now, &unknown),
        FetchDecision::Error(ResponseError::NotLeaderOrFollower.code())
    );
}

/// KIP-903: the leader keeps the broker epoch each follower's fetch
/// carried, for the AlterPartition that fetch may lead to.
#[test]
fn the_leader_remembers_the_broker_epoch_a_fetch_carried() {
    let mut c = Cluster::new(ReplicationConfig::default());
    c.elect(0, &[0, 1, 2]);
    let leo = c.replicas[0].log.log_end_offset();
    assert_eq!(c.leader.follower(1).unwrap().broker_epoch, -1);
    let fetch = ReplicaFetch {
        replica_id: 1,
        current_leader_epoch: c.leader.leader_epoch(),
        fetch_offset: 0,
        synced_offset: 0,
        last_fetched_epoch: -1,
        replica_epoch: 7,
    };
    leader_serves(&mut c, leo, &fetch);
    assert_eq!(c.leader.follower(1).unwrap().broker_epoch, 7);
}

/// Replica 0, the leader, serves `fetch` with records (none refused it),
/// counting its own log up to `leader_end_offset`.
fn leader_serves(c: &mut Cluster, leader_end_offset: i64, fetch: &ReplicaFetch) {
    let decision = c
        .leader
        .handle_fetch(&c.replicas[0].log, leader_end_offset, c.now, fetch);
    assert!(
        matches!(decision, FetchDecision::Read { .. }),
        "{decision:?}"
    );
}

/// Replica 0 leads epoch 0 and writes two records nobody else gets; replica
/// 1 takes over at epoch 1 and writes one of its own. When 0 follows, the
/// leader finds the divergence and 0 truncates its unreplicated tail.
fn diverge(config: ReplicationConfig) -> Cluster {
    let mut c = Cluster::new(config);
    c.produce(b"a");
    c.produce(b"b");
    c.fetch_all(2);
    c.produce(b"lost-1");
    c.produce(b"lost-2");
    c.elect(1, &[1, 2]);
    c.produce(b"c");
    c
}

#[test]
fn a_deposed_leader_truncates_its_divergent_tail() {
    let mut c = diverge(ReplicationConfig::default());
    assert_eq!(c.fetch(0), FollowerOutcome::Truncated { log_end_offset: 2 });
    c.fetch_all(3);
    let expected = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
    for i in 0..3 {
        assert_eq!(
            c.replicas[i].values(),
            expected,
            "replica {i} matches the leader"
        );
    }
    c.check();
}

/// KIP-279: replica 0 leads epoch 0 and writes a, b (replicated) then x, y
/// (not replicated). Replica 1 leads epoch 1 and writes one record only it
/// has, at offset 2. Replica 0 leads again at epoch 2. Asked about epoch 1,
/// the leader answers "epoch 0 ends at 4"; replica 1's own epoch 0 ends at
/// 2, so it must cut at min(4, 2) = 2. Cutting at 4 (the bug) keeps its
/// epoch-1 record at offset 2, where the leader holds x.
fn kip_279(bug: bool) -> Cluster {
    let config = ReplicationConfig {
        bugs: ReplicationBugs {
            epoch_lookup_divergence: bug,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut c = Cluster::new(config);
    c.produce(b"a");
    c.produce(b"b");
    c.fetch_all(2);
    c.produce(b"x");
    c.produce(b"y");
    c.elect(1, &[1, 2]);
    c.produce(b"only-on-1");
    c.elect(0, &[0, 2]);
    c
}

#[test]
fn the_follower_cuts_at_its_own_end_of_the_epoch_not_just_the_leaders() {
    let mut c = kip_279(false);
    assert_eq!(c.fetch(1), FollowerOutcome::Truncated { log_end_offset: 2 });
    c.fetch_all(3);
    assert_eq!(
        c.replicas[1].values(),
        c.replicas[0].values(),
        "logs match after the cut"
    );
}

#[test]
fn bug_epoch_lookup_divergence_leaves_the_logs_diverged() {
    let mut c = kip_279(true);
    c.fetch(1);
    let follower = c.replicas[1].values();
    assert_eq!(
        follower[2],
        b"only-on-1".to_vec(),
        "the bug cut at 4, past the divergent record"
    );
    assert_ne!(follower, c.replicas[0].values());
}

/// KAFKA-7128: replica 0 writes "a", replica 1 copies it but nobody has
/// reported it, so the high watermark is 0. Replica 1 becomes leader with
/// ISR {1}: its leader epoch start offset is 1, its high watermark 0.
/// Replica 2, at offset 0, is "caught up to the high watermark" yet below
/// the epoch start, where it could hold another epoch's records.
fn kafka_7128(bug: bool) -> Cluster {
    let config = ReplicationConfig {
        bugs: ReplicationBugs {
            isr_expand_before_leso: bug,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut c = Cluster::new(config);
    c.produce(b"a");
    c.fetch(1);
    c.elect(1, &[1]);
    assert_eq!(
        (
            c.leader.high_watermark(),
            c.leader.leader_epoch_start_offset()
        ),
        (0, 1)
    );
    c
}

#[test]
fn expansion_waits_for_the_leader_epoch_start_offset() {
    let mut c = kafka_7128(false);
    c.fetch(2);
    assert_eq!(
        c.assignment.isr,
        [1].into(),
        "offset 0 is below the leader epoch start offset"
    );
    c.fetch(2);
    assert_eq!(c.assignment.isr, [1, 2].into(), "at offset 1 it may join");
    c.check();
}

#[test]
fn bug_isr_expand_before_leso_admits_a_follower_below_it() {
    let mut c = kafka_7128(true);
    c.fetch(2);
    assert_eq!(
        c.assignment.isr,
        [1, 2].into(),
        "the bug admits it at offset 0"
    );
}

/// A leader alone in its committed ISR decides to add follower 1 back on
/// its fetch at offset 0 (the change is not taken yet).
fn expansion_decided(c: &mut Cluster) {
    c.assignment.isr = [0].into();
    let leo = c.replicas[0].log.log_end_offset();
    c.leader.handle_assignment(&c.assignment, leo, c.now);
    follower_1_fetches(c);
}

fn follower_1_fetches(c: &mut Cluster) {
    let leo = c.replicas[0].log.log_end_offset();
    let request = c.followers[0].1.fetch_request(&c.replicas[1].log);
    c.leader
        .handle_fetch(&c.replicas[0].log, leo, c.now, &request);
}

/// As `expansion_decided`, and the change is sent: the controller has not
/// answered yet.
fn expansion_in_flight(c: &mut Cluster) -> IsrChange {
    expansion_decided(c);
    let change = c.leader.poll_isr_change().expect("expansion proposed");
    assert_eq!(change.new_isr, [0, 1].into());
    change
}

#[test]
fn the_high_watermark_respects_an_expansion_in_flight_unless_the_bug_is_on() {
    for bug in [false, true] {
        let config = ReplicationConfig {
            bugs: ReplicationBugs {
                hw_on_old_isr: bug,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut c = Cluster::new(config);
        expansion_in_flight(&mut c);
        // The leader appends; with only itself in the committed ISR the old
        // rule would count the record as committed at once.
        let end = c.produce(b"a");
        let expected = if bug { end } else { 0 };
        assert_eq!(c.leader.high_watermark(), expected, "bug={bug}");
    }
}

/// An expansion whose answer is lost may have been applied: the leader
/// keeps it pending (the high watermark still waits for the new member)
/// and sends the same change again; only an answer saying it was not
/// applied forgets it. Dropping it on a lost answer let a leader count its
/// high watermark past a member the committed ISR named (found as
/// `valid_high_watermark` by fast-failover seed 4097).
#[test]
fn an_expansion_whose_answer_was_lost_stays_pending_and_is_sent_again() {
    let mut c = Cluster::new(ReplicationConfig::default());
    let change = expansion_in_flight(&mut c);

    c.leader.handle_isr_change_answer(
        change.leader_epoch,
        change.partition_epoch,
        IsrAnswer::Unknown,
    );
    c.produce(b"a");
    assert_eq!(
        c.leader.high_watermark(),
        0,
        "the lost expansion still counts"
    );
    let again = c.leader.poll_isr_change().expect("sent again");
    assert_eq!(again, change, "the same change, at the same epochs");
    assert_eq!(c.leader.poll_isr_change(), None, "sent once per loss");

    c.leader.handle_isr_change_answer(
        change.leader_epoch,
        change.partition_epoch,
        IsrAnswer::AwaitMetadata,
    );
    c.produce(b"b");
    assert_eq!(
        c.leader.high_watermark(),
        0,
        "a stale view's refusal settles nothing"
    );

    c.leader.handle_isr_change_answer(
        change.leader_epoch,
        change.partition_epoch,
        IsrAnswer::NotApplied,
    );
    let end = c.produce(b"c");
    assert_eq!(
        c.leader.high_watermark(),
        end,
        "not applied: the committed ISR alone"
    );
    c.check();
}

/// The controller commits a change of its own (here an ELR-only one, as
/// when a restarted broker's registration clears it) that keeps the
/// leader and its ISR but bumps the partition epoch.
fn commit_elr_only_change(c: &mut Cluster) {
    c.assignment.partition_epoch += 1;
    let leo = c.replicas[0].log.log_end_offset();
    c.leader.handle_assignment(&c.assignment, leo, c.now);
}

/// An expansion decided on one partition epoch and not yet sent when the
/// metadata brings the next one is dropped, and decided again on the new
/// state. Sent with the old epoch, the controller refused it
/// (INVALID_UPDATE_VERSION), the leader waited for metadata that had
/// already come, and the ISR never grew again: acks=all stalled for good
/// (liveness_partition, fast-failover seed 6260).
#[test]
fn a_change_decided_before_newer_metadata_is_decided_again_on_it() {
    let mut c = Cluster::new(ReplicationConfig::default());
    expansion_decided(&mut c);

    commit_elr_only_change(&mut c);
    assert_eq!(
        c.leader.poll_isr_change(),
        None,
        "nothing decided on the old epoch goes out"
    );
    follower_1_fetches(&mut c);
    let change = c.leader.poll_isr_change().expect("decided again");
    assert_eq!(change.new_isr, [0, 1].into());
    assert_eq!(change.partition_epoch, c.assignment.partition_epoch);
    c.check();
}

/// The answer to a request sent in an earlier partition epoch is not the
/// answer for the change pending now: a late "not applied" for the old
/// request must not drop the new expansion (the controller may apply it,
/// and the high watermark must wait for its member meanwhile).
#[test]
fn an_answer_to_a_request_of_an_earlier_partition_epoch_is_ignored() {
    let mut c = Cluster::new(ReplicationConfig::default());
    let old = expansion_in_flight(&mut c);
    commit_elr_only_change(&mut c);
    follower_1_fetches(&mut c);
    let new = c
        .leader
        .poll_isr_change()
        .expect("expansion proposed again");
    assert_eq!(new.partition_epoch, old.partition_epoch + 1);

    c.leader
        .handle_isr_change_answer(old.leader_epoch, old.partition_epoch, IsrAnswer::NotApplied);
    c.produce(b"a");
    assert_eq!(
        c.leader.high_watermark(),
        0,
        "the pending expansion still counts"
    );
    c.leader
        .handle_isr_change_answer(new.leader_epoch, new.partition_epoch, IsrAnswer::NotApplied);
    let end = c.produce(b"b");
    assert_eq!(c.leader.high_watermark(), end, "its own answer settles it");
    c.check();
}

#[test]
fn bug_hw_truncation_cuts_a_new_follower_to_its_high_watermark() {
    for bug in [false, true] {
        let config = ReplicationConfig {
            bugs: ReplicationBugs {
                hw_truncation: bug,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut c = Cluster::new(config);
        c.produce(b"a");
        c.fetch_all(1); // followers have the record, but HW 0 (they have not reported it)
        assert_eq!(c.replicas[1].log.log_end_offset(), 1);
        c.elect(0, &[0, 1, 2]); // followers become followers again, knowing HW 0
        let expected = if bug { 0 } else { 1 };
        assert_eq!(c.replicas[1].log.log_end_offset(), expected, "bug={bug}");
    }
}

#[test]
fn bugs_unfenced_truncation_and_no_epoch_on_become_leader_change_what_is_sent_and_stored() {
    for bug in [false, true] {
        let bugs = ReplicationBugs {
            unfenced_truncation: bug,
            no_epoch_on_become_leader: bug,
            ..Default::default()
        };
        let mut c = Cluster::new(ReplicationConfig {
            bugs,
            ..Default::default()
        });
        c.produce(b"a");
        c.fetch_all(2);
        c.elect(1, &[0, 1, 2]);
        let request = c.followers[0].1.fetch_request(&c.replicas[0].log);
        assert_eq!(
            request.current_leader_epoch,
            if bug { -1 } else { 1 },
            "bug={bug}"
        );
        let latest = c.replicas[1].log.latest_epoch();
        assert_eq!(
            latest,
            Some(if bug { 0 } else { 1 }),
            "the new leader's epoch is cached unless the bug is on"
        );
    }
}

/// Follower 1, caught up, fetches at the leader's log end: the fetch the
/// node parks, as its answer would be empty.
fn caught_up_fetch_parked(c: &mut Cluster) -> ReplicaFetch {
    c.fetch_all(2);
    let request = c.followers[0].1.fetch_request(&c.replicas[1].log);
    let leo = c.replicas[0].log.log_end_offset();
    assert_eq!(request.fetch_offset, leo, "follower 1 is caught up");
    leader_serves(c, leo, &request);
    request
}

#[test]
fn a_parked_follower_fetch_may_complete_once_the_log_grows_past_it() {
    let mut c = Cluster::new(ReplicationConfig::default());
    c.produce(b"a");
    let fetch = caught_up_fetch_parked(&mut c);
    assert!(!c
        .leader
        .parked_fetch_may_complete(&c.replicas[0].log, &fetch));
    c.produce(b"b");
    assert!(c
        .leader
        .parked_fetch_may_complete(&c.replicas[0].log, &fetch));
}

#[test]
fn a_parked_follower_fetch_may_complete_once_it_would_be_refused() {
    let mut c = Cluster::new(ReplicationConfig::default());
    c.produce(b"a");
    let fetch = caught_up_fetch_parked(&mut c);
    let other_epoch = ReplicaFetch {
        current_leader_epoch: c.leader.leader_epoch() + 1,
        ..fetch
    };
    let not_a_replica = ReplicaFetch {
        replica_id: 9,
        ..fetch
    };
    for refused in [other_epoch, not_a_replica] {
        assert!(c
            .leader
            .parked_fetch_may_complete(&c.replicas[0].log, &refused));
        assert!(matches!(
            c.leader.complete_parked_fetch(&c.replicas[0].log, &refused),
            FetchDecision::Error(_)
        ));
    }
}

#[test]
fn completing_a_parked_follower_fetch_records_no_progress_again() {
    let mut c = Cluster::new(ReplicationConfig::default());
    c.produce(b"a");
    let fetch = caught_up_fetch_parked(&mut c);
    let progress_at_arrival = *c.leader.follower(1).unwrap();
    c.now = c.now + Duration::from_millis(400);
    c.produce(b"b");
    let decision = c.leader.complete_parked_fetch(&c.replicas[0].log, &fetch);
    assert_eq!(
        decision,
        FetchDecision::Read {
            fetch_offset: fetch.fetch_offset,
            high_watermark: c.leader.high_watermark(),
        }
    );
    assert_eq!(*c.leader.follower(1).unwrap(), progress_at_arrival);
    // The same fetch read as an arrival would have counted the follower
    // caught up as of its previous fetch (not now: the log grew since).
    let leo = c.replicas[0].log.log_end_offset();
    c.leader
        .handle_fetch(&c.replicas[0].log, leo, c.now, &fetch);
    assert_ne!(*c.leader.follower(1).unwrap(), progress_at_arrival);
}

/// `PartitionAssignment::check_invariants` accepts a sound assignment and
/// rejects each rule broken alone (it compares pairwise, without sets).
#[test]
fn assignment_checks_reject_each_broken_rule() {
    let sound = || PartitionAssignment {
        replicas: vec![3, 1, 2],
        isr: [1, 3].into_iter().collect(),
        leader: 3,
        leader_epoch: 4,
        partition_epoch: 9,
    };
    sound().check_invariants();
    let no_leader = PartitionAssignment {
        leader: -1,
        isr: BTreeSet::new(),
        ..sound()
    };
    no_leader.check_invariants();
    let broken: [(&str, PartitionAssignment); 5] = [
        (
            "no replicas",
            PartitionAssignment {
                replicas: vec![],
                isr: BTreeSet::new(),
                leader: -1,
                ..sound()
            },
        ),
        (
            "duplicate replica",
            PartitionAssignment {
                replicas: vec![3, 1, 3],
                ..sound()
            },
        ),
        (
            "duplicate at the end",
            PartitionAssignment {
                replicas: vec![1, 3, 2, 2],
                ..sound()
            },
        ),
        (
            "isr outside replicas",
            PartitionAssignment {
                isr: [1, 3, 7].into_iter().collect(),
                ..sound()
            },
        ),
        (
            "leader outside isr",
            PartitionAssignment {
                leader: 2,
                ..sound()
            },
        ),
    ];
    for (what, a) in broken {
        let caught = std::panic::catch_unwind(|| a.check_invariants());
        assert!(caught.is_err(), "{what} passed the check");
    }
}
