//! KIP-630 through the quorum's boundary: three voters on a lossless,
//! instant network driven by hand, so each test can stop a node, let the
//! others snapshot and truncate, and watch it catch up. The same harness
//! holds a node's flushes to show when followers learn the high watermark.

use super::*;
use crate::batch::build_batch;
use crate::storage::MemoryStorage;

const CLUSTER: &str = "c";

struct Net {
    nodes: BTreeMap<i32, (Option<QuorumNode>, MemoryStorage)>,
    now: Instant,
    config: QuorumConfig,
    /// FetchSnapshot requests delivered, to show chunking happened.
    snapshot_requests: usize,
    /// A node whose log flushes wait in `held` until released.
    hold_flushes_of: Option<i32>,
    held: Vec<(i32, i64)>,
}

impl Net {
    fn new(chunk_bytes: u32) -> Net {
        let mut config = QuorumConfig::new(1, &[1, 2, 3], CLUSTER);
        config.fetch_snapshot_max_bytes = chunk_bytes;
        let mut net = Net {
            nodes: BTreeMap::new(),
            now: Instant::ZERO,
            config,
            snapshot_requests: 0,
            hold_flushes_of: None,
            held: Vec::new(),
        };
        for id in 1..=3 {
            net.nodes.insert(id, (None, MemoryStorage::new()));
            net.start(id);
        }
        net
    }

    fn start(&mut self, id: i32) {
        let mut config = self.config.clone();
        config.node_id = id;
        let now = self.now;
        let (node, storage) = self.nodes.get_mut(&id).unwrap();
        *node = Some(QuorumNode::open(storage, config, now, id as u64).unwrap());
    }

    fn stop(&mut self, id: i32) {
        let (node, storage) = self.nodes.get_mut(&id).unwrap();
        *node = None;
        storage.crash();
    }

    fn node(&self, id: i32) -> &QuorumNode {
        self.nodes[&id].0.as_ref().unwrap()
    }

    fn leader(&self) -> Option<i32> {
        self.nodes
            .iter()
            .find(|(_, (n, _))| n.as_ref().is_some_and(|n| n.is_leader()))
            .map(|(&id, _)| id)
    }

    /// Delivers every output until none is left (bounded).
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            let ids: Vec<i32> = self.nodes.keys().copied().collect();
            for id in ids {
                let Some(output) = self
                    .nodes
                    .get_mut(&id)
                    .and_then(|(n, _)| n.as_mut())
                    .and_then(|n| n.poll_output())
                else {
                    continue;
                };
                moved = true;
                let now = self.now;
                match output {
                    QuorumOutput::Send { to, message } => {
                        if matches!(message, RaftMessage::FetchSnapshot { .. }) {
                            self.snapshot_requests += 1;
                        }
                        let (node, storage) = self.nodes.get_mut(&to).unwrap();
                        if let Some(node) = node.as_mut() {
                            node.handle_message(storage, now, id, message).unwrap();
                        }
                    }
                    QuorumOutput::Flush {
                        paths,
                        log_end_offset,
                    } => {
                        let (node, storage) = self.nodes.get_mut(&id).unwrap();
                        for path in &paths {
                            storage.sync(path).unwrap();
                        }
                        if self.hold_flushes_of == Some(id) {
                            self.held.push((id, log_end_offset));
                            continue;
                        }
                        node.as_mut()
                            .unwrap()
                            .handle_flushed(storage, now, log_end_offset)
                            .unwrap();
                    }
                    QuorumOutput::FlushSnapshot { path, snapshot_id } => {
                        let (node, storage) = self.nodes.get_mut(&id).unwrap();
                        storage.sync(&path).unwrap();
                        node.as_mut()
                            .unwrap()
                            .handle_snapshot_flushed(storage, now, snapshot_id)
                            .unwrap();
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("outputs do not settle");
    }

    /// Advances time to the next timer and runs it, `steps` times.
    fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            self.settle();
            let next = self
                .nodes
                .values()
                .filter_map(|(n, _)| n.as_ref()?.poll_timeout())
                .min()
                .unwrap();
            self.now = self.now.max(next);
            let now = self.now;
            for (node, storage) in self.nodes.values_mut() {
                if let Some(node) = node.as_mut() {
                    if node.poll_timeout().is_some_and(|at| at <= now) {
                        node.handle_timeout(storage, now).unwrap();
                    }
                }
            }
        }
        self.settle();
    }

    fn run_until_leader(&mut self) -> i32 {
        for _ in 0..1000 {
            if let Some(leader) = self.leader() {
                return leader;
            }
            self.run(1);
        }
        panic!("no leader elected");
    }

    fn propose(&mut self, count: usize) {
        for i in 0..count {
            let leader = self.run_until_leader();
            let now = self.now;
            let (node, storage) = self.nodes.get_mut(&leader).unwrap();
            let value = format!("record {i}");
            let batch = build_batch(&[(None, Some(value.as_bytes()))], 0);
            node.as_mut()
                .unwrap()
                .propose(storage, now, &batch)
                .unwrap();
            self.settle();
        }
        self.run(20);
    }

    /// Proposes one record with `value` on `leader` and delivers what
    /// follows, with no time passing.
    fn propose_on(&mut self, leader: i32, value: &[u8]) {
        let now = self.now;
        let (node, storage) = self.nodes.get_mut(&leader).unwrap();
        let batch = build_batch(&[(None, Some(value))], 0);
        node.as_mut()
            .unwrap()
            .propose(storage, now, &batch)
            .unwrap();
        self.settle();
    }

    /// The "state machine" of these tests: every committed record's bytes,
    /// from the snapshot at the log start on. A snapshot's payload is this
    /// state at its end offset.
    fn snapshot(&mut self, id: i32) -> SnapshotId {
        let (node, storage) = self.nodes.get_mut(&id).unwrap();
        let node = node.as_mut().unwrap();
        let end = node.high_watermark().unwrap();
        let payload = committed_state(node, storage, end);
        let snapshot = node
            .create_snapshot(storage, end, &payload)
            .unwrap()
            .unwrap();
        self.settle();
        snapshot
    }

    fn state(&mut self, id: i32) -> Vec<u8> {
        let (node, storage) = self.nodes.get_mut(&id).unwrap();
        let node = node.as_mut().unwrap();
        let end = node.high_watermark().unwrap();
        committed_state(node, storage, end)
    }
}

/// The snapshot at the log start (if any) followed by the log's committed
/// batches below `end`.
fn committed_state(node: &mut QuorumNode, storage: &mut MemoryStorage, end: i64) -> Vec<u8> {
    let mut state = Vec::new();
    if let Some(id) = node.latest_snapshot() {
        state.extend_from_slice(&node.read_snapshot(storage, id).unwrap());
    }
    let mut offset = node.log_start_offset();
    while offset < end {
        let read = node.read_committed(storage, offset, 1 << 20).unwrap();
        let mut next = offset;
        for (position, header) in crate::batch::BatchIter::new(&read.records) {
            if header.next_offset() > end {
                break;
            }
            if !header.is_control() {
                // Base offset and CRC aside, the records: same on every node.
                let batch = &read.records[position..position + header.total_size()];
                state.extend_from_slice(&batch[crate::batch::BATCH_HEADER_LEN..]);
            }
            next = header.next_offset();
        }
        assert!(next > offset, "committed records below {end}");
        offset = next;
    }
    state
}

#[test]
fn a_lagging_follower_catches_up_through_a_snapshot_in_chunks() {
    let mut net = Net::new(7);
    let leader = net.run_until_leader();
    let lagging = (1..=3).find(|&id| id != leader).unwrap();
    net.stop(lagging);
    net.propose(40);
    let leader = net.leader().unwrap();
    let id = net.snapshot(leader);
    assert_eq!(net.node(leader).log_start_offset(), id.end_offset);
    assert_eq!(net.node(leader).snapshots().len(), 1);
    net.propose(5);

    net.start(lagging);
    assert_eq!(net.node(lagging).log_start_offset(), 0);
    net.run(60);
    let follower = net.node(lagging);
    assert_eq!(
        follower.snapshot_installs(),
        1,
        "caught up through the snapshot"
    );
    assert_eq!(follower.latest_snapshot(), Some(id));
    assert_eq!(follower.log_start_offset(), id.end_offset);
    assert_eq!(follower.log_end_offset(), net.node(leader).log_end_offset());
    assert!(
        net.snapshot_requests > 1,
        "a 7-byte chunk bound splits the snapshot over several FetchSnapshot requests, saw {}",
        net.snapshot_requests
    );
    let leader_state = net.state(leader);
    assert_eq!(net.state(lagging), leader_state, "same committed state");
    net.node(lagging).check_invariants();
}

#[test]
fn a_wiped_follower_rebuilds_from_the_snapshot() {
    let mut net = Net::new(1 << 20);
    net.propose(30);
    let leader = net.leader().unwrap();
    let id = net.snapshot(leader);
    let wiped = (1..=3).find(|&w| w != leader).unwrap();
    net.nodes.get_mut(&wiped).unwrap().0 = None;
    net.nodes.get_mut(&wiped).unwrap().1 = MemoryStorage::new();
    net.start(wiped);
    net.run(60);
    let node = net.node(wiped);
    assert_eq!(node.snapshot_installs(), 1);
    assert_eq!(node.log_start_offset(), id.end_offset);
    let leader_state = net.state(leader);
    assert_eq!(net.state(wiped), leader_state);
}

#[test]
fn a_restart_loads_the_snapshot_and_the_log_tail() {
    let mut net = Net::new(1 << 20);
    net.propose(20);
    let leader = net.leader().unwrap();
    let id = net.snapshot(leader);
    net.propose(10);
    let before = net.state(leader);
    let log_end = net.node(leader).log_end_offset();
    net.stop(leader);
    net.start(leader);
    let node = net.node(leader);
    assert_eq!(node.latest_snapshot(), Some(id));
    assert_eq!(node.log_start_offset(), id.end_offset);
    assert_eq!(node.log_end_offset(), log_end);
    net.run(60);
    // Once the high watermark is known again the state is the same.
    let after = net.state(leader);
    assert_eq!(after, before);
}

#[test]
fn a_torn_snapshot_is_refused_at_open_and_the_log_kept() {
    let mut net = Net::new(1 << 20);
    net.propose(10);
    let leader = net.leader().unwrap();
    // A snapshot written but never synced: a crash tears it away; one
    // whose bytes survive but are cut is refused by its checksum.
    let (node, storage) = net.nodes.get_mut(&leader).unwrap();
    let node = node.as_mut().unwrap();
    let end = node.high_watermark().unwrap();
    let id = node
        .create_snapshot(storage, end, b"state")
        .unwrap()
        .unwrap();
    let path = id.path();
    let len = storage.len(&path).unwrap();
    storage.sync(&path).unwrap();
    storage.truncate(&path, len - 2).unwrap();
    storage.sync(&path).unwrap();
    net.stop(leader);
    net.start(leader);
    let node = net.node(leader);
    assert_eq!(node.latest_snapshot(), None, "the cut snapshot is refused");
    assert_eq!(node.log_start_offset(), 0, "the log is kept whole");
    let (_, storage) = net.nodes.get_mut(&leader).unwrap();
    assert!(!storage.exists(&path), "and the refused file deleted");
}

/// An ex-leader comes back with a tail of its own epoch that never
/// committed, reaching past the new leader's snapshot (whose epoch cache no
/// longer says where the old epoch ended). Kafka's third case sends it the
/// snapshot; answering "diverging at the log start" instead left the stale
/// records below the log start in place and under the high watermark
/// (found by the simulator: metadata-snapshots seed 227).
#[test]
fn an_ex_leaders_stale_tail_past_the_snapshot_is_replaced_by_it() {
    let mut net = Net::new(1 << 20);
    net.propose(5);
    let old = net.leader().unwrap();
    let old_epoch = net.node(old).epoch();
    // Three batches only the old leader writes and syncs: its followers
    // never see them.
    let stale_from = net.node(old).log_end_offset();
    let now = net.now;
    let (node, storage) = net.nodes.get_mut(&old).unwrap();
    let node = node.as_mut().unwrap();
    for i in 0..3 {
        let batch = build_batch(&[(None, Some(format!("stale {i}").as_bytes()))], 0);
        node.propose(storage, now, &batch).unwrap();
    }
    for _ in 0..100 {
        match node.poll_output() {
            Some(QuorumOutput::Flush {
                paths,
                log_end_offset,
            }) => {
                for path in &paths {
                    storage.sync(path).unwrap();
                }
                node.handle_flushed(storage, now, log_end_offset).unwrap();
            }
            Some(_) => {}
            None => break,
        }
    }
    let stale_end = node.log_end_offset();
    assert_eq!(stale_end, stale_from + 3);
    net.stop(old);

    // The others elect a leader and commit its epoch's first batch and
    // one record: the snapshot ends inside the old leader's stale tail.
    net.propose(1);
    let leader = net.leader().unwrap();
    assert_ne!(leader, old);
    let id = net.snapshot(leader);
    assert!(id.epoch > old_epoch);
    assert!(
        id.end_offset > stale_from && id.end_offset < stale_end,
        "the snapshot {id:?} ends inside the stale tail {stale_from}..{stale_end}"
    );

    net.start(old);
    net.run(80);
    assert_eq!(net.leader(), Some(leader));
    let leader_state = net.state(leader);
    assert_eq!(net.state(old), leader_state, "same committed state");
    let node = net.node(old);
    assert_eq!(
        node.snapshot_installs(),
        1,
        "the snapshot replaces the tail"
    );
    assert_eq!(node.log_start_offset(), id.end_offset);
    net.node(old).check_invariants();
}

/// KAFKA-14145: a follower learns that the high watermark moved at once,
/// not when its parked fetch times out. One follower is down, so the
/// leader's own flush is what commits: the other follower's fetch was
/// parked before it, and the flush must answer it. (Missed, every broker of
/// `seedlog cluster` but the controller learned of a new topic ~500 ms
/// late, the parked fetch's max wait.)
#[test]
fn the_leaders_own_flush_that_commits_answers_the_parked_fetches() {
    let mut net = Net::new(1 << 20);
    net.propose(1);
    let leader = net.run_until_leader();
    let (up, down) = match leader {
        1 => (2, 3),
        2 => (3, 1),
        _ => (1, 2),
    };
    net.stop(down);
    net.hold_flushes_of = Some(leader);
    net.propose_on(leader, b"late");
    let end = net.node(leader).log_end_offset();
    assert_eq!(
        net.node(up).log_end_offset(),
        end,
        "the follower has the record"
    );
    assert!(
        net.node(leader).high_watermark() < Some(end),
        "not committed before the leader's flush"
    );
    let held = std::mem::take(&mut net.held);
    net.hold_flushes_of = None;
    let now = net.now;
    for (id, log_end_offset) in held {
        let (node, storage) = net.nodes.get_mut(&id).unwrap();
        node.as_mut()
            .unwrap()
            .handle_flushed(storage, now, log_end_offset)
            .unwrap();
    }
    net.settle();
    assert_eq!(net.node(leader).high_watermark(), Some(end), "committed");
    assert_eq!(
        net.node(up).high_watermark(),
        Some(end),
        "the follower learned it at once, with no time passing"
    );
}

/// KIP-1166: each follower names the high watermark it knows, and the
/// leader answers a parked fetch once the high watermark moves past it.
/// The leader's flushes are held, so each commit is made by the second
/// follower's fetch while the first one's waits parked: that fetch must be
/// answered then (KAFKA-14145), not at its max wait. Three voters, no time
/// passing. (Peers on Fetch v17, where the field does not travel, learned
/// each commit a max wait late; nodes speak v18, see
/// `peer_fetches_carry_the_replicas_high_watermark`.)
#[test]
fn a_commit_by_one_followers_fetch_answers_the_others_parked_fetch() {
    let mut net = Net::new(1 << 20);
    net.propose(1);
    let leader = net.run_until_leader();
    net.hold_flushes_of = Some(leader);
    for i in 0..3 {
        net.propose_on(leader, format!("r{i}").as_bytes());
        let end = net.node(leader).log_end_offset();
        assert_eq!(net.node(leader).high_watermark(), Some(end), "committed");
        for id in [1, 2, 3] {
            assert_eq!(
                net.node(id).high_watermark(),
                Some(end),
                "node {id} learned commit {i} with no time passing"
            );
        }
    }
}
