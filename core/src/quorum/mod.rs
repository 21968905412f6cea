//! The KRaft controller quorum as a sans-IO state machine (KIP-595 Raft
//! with KIP-996 pre-vote), one [`QuorumNode`] per voter.
//!
//! # Shape
//!
//! Getters, `handle_*` inputs, `poll_*` outputs, as quinn-proto:
//! - [`QuorumNode::handle_message`] a KRaft RPC from a peer (Kafka's own
//!   types, see [`messages`]); [`QuorumNode::step`] dispatches it by role
//!   (`step_leader`, `step_follower`, `step_candidate`), as raft-rs does;
//! - [`QuorumNode::handle_timeout`] when [`QuorumNode::poll_timeout`] says;
//! - [`QuorumNode::handle_flushed`] when a [`QuorumOutput::Flush`] is done;
//! - [`QuorumNode::propose`] appends records on the leader;
//! - [`QuorumNode::poll_output`]: drain until `None` after every call.
//!
//! The node owns no storage: every call that touches the disk takes
//! `&mut dyn Storage`, so a broker node can share one storage between its
//! partitions and the metadata log (`__cluster_metadata-0/`).
//!
//! # What may leave only after persistence
//!
//! - Election state (epoch, vote, leader) is written with
//!   `Storage::write_atomic`, durable on return, before any message that
//!   depends on it is queued: a granted vote, a candidacy, a
//!   BeginQuorumEpoch.
//! - A follower's Fetch reports its log end as replicated: none leaves
//!   while the log holds unflushed records (the Fetch waits for
//!   [`QuorumNode::handle_flushed`]).
//! - The leader counts its own log end for the high watermark only up to
//!   what is flushed.
//!
//! # Bounds
//!
//! One flush in flight, one fetch in flight per follower, one parked fetch
//! per voter on the leader, [`OUTPUTS_MAX`] queued outputs, and at most
//! `uncommitted_offsets_max` offsets appended beyond the high watermark.
//!
//! # Snapshots (KIP-630)
//!
//! The node's host writes a snapshot of its applied state at a committed
//! offset with [`QuorumNode::create_snapshot`]; once the driver has synced
//! it ([`QuorumOutput::FlushSnapshot`]) the log start moves up to it and
//! the prefix is deleted. A fetch below the leader's log start is answered
//! with the snapshot's id; the follower copies it chunk by chunk with
//! FetchSnapshot, syncs it, and restarts its log after it. The host sees
//! the log start move past what it applied and reloads from
//! [`QuorumNode::latest_snapshot`]. Always: log start <= the earliest
//! snapshot, and a non-zero log start has a snapshot exactly there.
//!
//! Out of scope for this slice: voter changes (KIP-853).

mod election_store;
mod leader;
pub mod messages;
pub mod snapshot;
mod state;

pub use election_store::{read as read_election_state, ElectionState, QUORUM_STATE_PATH};
pub use messages::RaftMessage;
pub use snapshot::SnapshotId;
pub use state::Role;

use crate::batch::{build_batch, BatchIter};
use crate::log::{LogConfig, LogError, PartitionLog, ReadResult};
use crate::storage::{Storage, StorageError};
use crate::time::Instant;
use election_store::ElectionStore;
use kafka_protocol::messages::{leader_change_message, BrokerId, LeaderChangeMessage};
use kafka_protocol::protocol::Encodable;
use leader::{LeaderState, ParkedFetch};
use messages::{
    error_codes, FetchRequestFields, FetchResponseFields, FetchSnapshotRequestFields,
    FetchSnapshotResponseFields, VoteRequestFields,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use state::{ElectionRound, FollowerState, RoleState, SnapshotFetch};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// The metadata log's directory in the node's storage.
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

/// Outputs queued before the driver must drain them.
pub const OUTPUTS_MAX: usize = 4096;

/// How a voter is reached; carried for the adapter, unused by the core.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VoterEndpoint {
    pub host: String,
    pub port: u16,
}

/// Settings of one voter; Kafka's `controller.quorum.*` where they exist.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: i32,
    /// Every voter, this node included.
    pub voters: BTreeMap<i32, VoterEndpoint>,
    pub cluster_id: String,
    /// `controller.quorum.election.timeout.ms`: the base; each timeout adds
    /// a random jitter of up to `election_backoff_max_ms`.
    pub election_timeout_ms: u64,
    /// `controller.quorum.election.backoff.max.ms`.
    pub election_backoff_max_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`: a follower that has not heard
    /// its leader for this long elects; a leader not fetched from by a
    /// majority for 1.5 times this resigns (check-quorum).
    pub fetch_timeout_ms: u64,
    /// How long the leader parks a fetch with nothing to answer.
    pub fetch_max_wait_ms: u64,
    /// `controller.quorum.request.timeout.ms`: a request unanswered this
    /// long counts as lost.
    pub request_timeout_ms: u64,
    /// `controller.quorum.retry.backoff.ms`.
    pub retry_backoff_ms: u64,
    /// Bytes per fetch response (at least one whole batch goes).
    pub fetch_max_bytes: u32,
    /// Bytes of snapshot per FetchSnapshot response.
    pub fetch_snapshot_max_bytes: u32,
    /// The leader refuses proposals beyond this many uncommitted offsets.
    pub uncommitted_offsets_max: i64,
    pub log: LogConfig,
    /// Bug flag `commit-prior-epoch`: the leader advances the high
    /// watermark over earlier-epoch records without one of its own
    /// (Raft's figure 8). Off except in tests that prove it is caught.
    pub commit_prior_epoch: bool,
}

impl QuorumConfig {
    /// Kafka's defaults for a voter `node_id` among `voter_ids`.
    pub fn new(node_id: i32, voter_ids: &[i32], cluster_id: &str) -> QuorumConfig {
        QuorumConfig {
            node_id,
            voters: voter_ids
                .iter()
                .map(|&id| (id, VoterEndpoint::default()))
                .collect(),
            cluster_id: cluster_id.to_string(),
            election_timeout_ms: 1000,
            election_backoff_max_ms: 1000,
            fetch_timeout_ms: 2000,
            fetch_max_wait_ms: 500,
            request_timeout_ms: 2000,
            retry_backoff_ms: 20,
            fetch_max_bytes: 8 * 1024 * 1024,
            fetch_snapshot_max_bytes: 1024 * 1024,
            uncommitted_offsets_max: 64 * 1024,
            log: LogConfig::default(),
            commit_prior_epoch: false,
        }
    }

    fn check(&self) {
        assert!(!self.voters.is_empty(), "a quorum has voters");
        assert!(
            self.voters.keys().all(|&id| id >= 0),
            "voter ids are non-negative"
        );
        assert!(self.election_timeout_ms > 0, "election timeout is positive");
        assert!(self.fetch_timeout_ms > 0, "fetch timeout is positive");
        assert!(
            self.fetch_max_wait_ms < self.request_timeout_ms,
            "a parked fetch ({} ms) must be answered before the follower gives up on it ({} ms)",
            self.fetch_max_wait_ms,
            self.request_timeout_ms
        );
        assert!(self.fetch_max_bytes > 0, "fetch max bytes is positive");
        assert!(
            self.fetch_snapshot_max_bytes > 0,
            "snapshot chunks are non-empty"
        );
        assert!(
            self.uncommitted_offsets_max > 0,
            "the uncommitted backlog bound is positive"
        );
    }
}

/// What the node asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum QuorumOutput {
    /// Deliver `message` to voter `to`.
    Send { to: i32, message: RaftMessage },
    /// Sync `paths`, then call `handle_flushed(now, log_end_offset)`.
    Flush {
        paths: Vec<String>,
        log_end_offset: i64,
    },
    /// Sync the snapshot file `path`, then call
    /// `handle_snapshot_flushed(storage, now, snapshot_id)`.
    FlushSnapshot {
        path: String,
        snapshot_id: SnapshotId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("metadata snapshot: {0}")]
    Snapshot(String),
}

/// Why a proposal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("not the leader of epoch {epoch} (leader: {leader_id:?})")]
    NotLeader { leader_id: Option<i32>, epoch: i32 },
    #[error("{uncommitted} offsets await commit, the bound is {max}")]
    Backlog { uncommitted: i64, max: i64 },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Quorum(#[from] QuorumError),
}

/// A flush handed to the driver: the log end it covers, lowered by any
/// truncation while it was out (the bytes beyond are not the ones asked for).
#[derive(Debug, Clone, Copy)]
struct FlushInFlight {
    log_end_offset: i64,
    capped_at: i64,
}

/// A snapshot file written and not yet synced: one of this node's own, or
/// one copied from the leader (installed once synced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SnapshotFlush {
    Local(SnapshotId),
    Fetched(SnapshotId),
}

impl SnapshotFlush {
    fn id(self) -> SnapshotId {
        match self {
            SnapshotFlush::Local(id) | SnapshotFlush::Fetched(id) => id,
        }
    }
}

/// One voter of the controller quorum.
pub struct QuorumNode {
    config: QuorumConfig,
    rng: ChaCha8Rng,
    store: ElectionStore,
    /// Always equal to `store.persisted()` between calls.
    state: ElectionState,
    role: RoleState,
    log: PartitionLog,
    /// Leader: its own; follower: the leader's, capped at the log end.
    /// `None` until known in the current epoch and role.
    high_watermark: Option<i64>,
    outputs: VecDeque<QuorumOutput>,
    flush_in_flight: Option<FlushInFlight>,
    next_correlation_id: i32,
    truncation_count: u64,
    last_truncation_offset: i64,
    /// An observer's next voter to ask who leads (round robin).
    discovery_index: usize,
    /// Synced, valid snapshots, none below the log start.
    snapshots: BTreeSet<SnapshotId>,
    /// At most one snapshot file awaiting its sync.
    snapshot_flush: Option<SnapshotFlush>,
    /// Snapshots from the leader installed since open.
    snapshot_installs: u64,
}

impl std::fmt::Debug for QuorumNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumNode")
            .field("node_id", &self.config.node_id)
            .field("state", &self.state)
            .field("role", &self.role.role())
            .field("high_watermark", &self.high_watermark)
            .field("log", &self.log)
            .finish()
    }
}

impl QuorumNode {
    /// Opens the voter on `storage`: reads the election state and the
    /// metadata log, and resumes the role the state implies (a node that
    /// was leader resumes as resigned, one that followed resumes as a
    /// follower, one that voted keeps its vote).
    pub fn open(
        storage: &mut dyn Storage,
        config: QuorumConfig,
        now: Instant,
        rng_seed: u64,
    ) -> Result<QuorumNode, QuorumError> {
        config.check();
        let store = ElectionStore::open(storage)?;
        let (log, _report) =
            PartitionLog::open(storage, METADATA_LOG_DIR, config.log.clone(), now)?;
        let state = store.persisted();
        let mut node = QuorumNode {
            config,
            rng: ChaCha8Rng::seed_from_u64(rng_seed),
            store,
            state,
            role: RoleState::Unattached {
                election_deadline: now,
            },
            log,
            high_watermark: None,
            outputs: VecDeque::new(),
            flush_in_flight: None,
            next_correlation_id: 0,
            truncation_count: 0,
            last_truncation_offset: 0,
            discovery_index: 0,
            snapshots: BTreeSet::new(),
            snapshot_flush: None,
            snapshot_installs: 0,
        };
        node.load_snapshots(storage)?;
        let self_id = node.config.node_id;
        node.role = match (state.leader_id, state.voted_id) {
            (Some(leader_id), _) if leader_id == self_id => RoleState::Resigned {
                election_deadline: now + node.random_election_timeout(),
                acknowledged: BTreeSet::new(),
                end_quorum_resend_at: now,
            },
            (Some(leader_id), _) => RoleState::Follower(FollowerState {
                leader_id,
                fetch_deadline: now + node.fetch_timeout(),
                fetch_in_flight: None,
                next_fetch_at: now,
                leader_resigned: false,
                has_fetched: false,
                snapshot_fetch: None,
            }),
            (None, Some(_)) => RoleState::Voted {
                election_deadline: now + node.random_election_timeout(),
            },
            (None, None) => RoleState::Unattached {
                election_deadline: now + node.random_election_timeout(),
            },
        };
        if node.is_observer() {
            // An observer has no election to wait for: ask who leads at once.
            if let RoleState::Unattached { election_deadline } = &mut node.role {
                *election_deadline = now;
            }
        }
        node.request_flush();
        node.check_invariants();
        Ok(node)
    }

    // ----- getters -----

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }
    pub fn config(&self) -> &QuorumConfig {
        &self.config
    }
    pub fn epoch(&self) -> i32 {
        self.state.epoch
    }
    pub fn role(&self) -> Role {
        self.role.role()
    }
    /// A node outside the voter set: it replicates the metadata log from
    /// the leader but never votes, stands or counts toward a majority
    /// (KRaft's observer, a broker-only node).
    pub fn is_observer(&self) -> bool {
        !self.config.voters.contains_key(&self.config.node_id)
    }

    pub fn is_leader(&self) -> bool {
        self.role() == Role::Leader
    }
    /// The leader of the current epoch, once known.
    pub fn leader_id(&self) -> Option<i32> {
        self.state.leader_id
    }
    pub fn voted_id(&self) -> Option<i32> {
        self.state.voted_id
    }
    pub fn election_state(&self) -> ElectionState {
        self.state
    }
    /// The committed offset (exclusive) as this node knows it.
    pub fn high_watermark(&self) -> Option<i64> {
        self.high_watermark
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }
    /// Offsets below this are durable.
    pub fn synced_offset(&self) -> i64 {
        self.log.synced_offset()
    }
    /// The epoch of the last record, -1 for an empty log; a log that is
    /// empty after a snapshot ends in the snapshot's epoch.
    pub fn last_log_epoch(&self) -> i32 {
        self.log
            .latest_epoch()
            .or_else(|| self.snapshot_at_log_start().map(|id| id.epoch))
            .unwrap_or(-1)
    }
    /// The first offset the log holds; below it, only a snapshot.
    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }
    /// The newest synced snapshot.
    pub fn latest_snapshot(&self) -> Option<SnapshotId> {
        self.snapshots.last().copied()
    }
    /// Every synced snapshot this node holds (for checkers).
    pub fn snapshots(&self) -> &BTreeSet<SnapshotId> {
        &self.snapshots
    }
    /// How many snapshots from the leader this node installed since open.
    pub fn snapshot_installs(&self) -> u64 {
        self.snapshot_installs
    }
    /// The payload of the synced snapshot `id` (checked).
    pub fn read_snapshot(
        &self,
        storage: &mut dyn Storage,
        id: SnapshotId,
    ) -> Result<bytes::Bytes, QuorumError> {
        assert!(self.snapshots.contains(&id), "snapshot {id:?} is not held");
        snapshot::read(storage, id)?.map_err(|reason| {
            QuorumError::Snapshot(format!("{} turned unreadable: {reason}", id.path()))
        })
    }

    fn snapshot_at_log_start(&self) -> Option<SnapshotId> {
        let start = self.log.log_start_offset();
        self.snapshots
            .range(
                SnapshotId {
                    end_offset: start,
                    epoch: i32::MIN,
                }..,
            )
            .next()
            .filter(|id| id.end_offset == start)
            .copied()
    }
    pub fn log(&self) -> &PartitionLog {
        &self.log
    }
    /// How many times the log was truncated since open, and the offset of
    /// the last truncation (checkers re-verify from there).
    pub fn truncations(&self) -> (u64, i64) {
        (self.truncation_count, self.last_truncation_offset)
    }
    /// The leader's offset of its first record in its epoch.
    pub fn epoch_start_offset(&self) -> Option<i64> {
        match &self.role {
            RoleState::Leader(leader) => Some(leader.epoch_start_offset),
            _ => None,
        }
    }

    /// Whole batches from `offset`, committed or not (for checkers).
    pub fn read_log(
        &mut self,
        storage: &mut dyn Storage,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, LogError> {
        self.log.read(storage, offset, max_bytes, i64::MAX)
    }

    /// Whole committed batches from `offset` (below the high watermark).
    pub fn read_committed(
        &mut self,
        storage: &mut dyn Storage,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, LogError> {
        let high_watermark = self.high_watermark.unwrap_or(0);
        self.log.read(storage, offset, max_bytes, high_watermark)
    }

    // ----- outputs -----

    pub fn poll_output(&mut self) -> Option<QuorumOutput> {
        self.outputs.pop_front()
    }

    /// The next instant at which `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let log_synced = self.log_is_synced() && self.snapshot_flush.is_none();
        Some(self.role.next_deadline(log_synced))
    }

    // ----- inputs -----

    /// A KRaft RPC from voter `from`.
    pub fn handle_message(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        from: i32,
        message: RaftMessage,
    ) -> Result<(), QuorumError> {
        let observer_fetch = matches!(
            message,
            RaftMessage::Fetch { .. } | RaftMessage::FetchSnapshot { .. }
        );
        if from == self.config.node_id
            || !(self.config.voters.contains_key(&from) || observer_fetch)
        {
            tracing::debug!(
                node = self.config.node_id,
                from,
                "message from a non-voter dropped"
            );
            return Ok(());
        }
        let result = self.step(storage, now, from, message);
        #[cfg(debug_assertions)]
        self.check_invariants();
        result
    }

    /// The driver synced the paths of the `Flush` that named `log_end_offset`.
    /// On the leader the flush may commit; the fetches parked meanwhile
    /// are answered at once with the new high watermark (KAFKA-14145), or
    /// their followers would learn it only at their max wait.
    pub fn handle_flushed(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        log_end_offset: i64,
    ) -> Result<(), QuorumError> {
        let Some(in_flight) = self.flush_in_flight.take() else {
            tracing::debug!(
                node = self.config.node_id,
                "flush completion with none in flight"
            );
            return Ok(());
        };
        assert_eq!(
            in_flight.log_end_offset, log_end_offset,
            "a flush completion names the log end its Flush named"
        );
        self.log
            .mark_synced(log_end_offset.min(in_flight.capped_at));
        let self_id = self.config.node_id;
        let synced = self.log.synced_offset();
        if let RoleState::Leader(leader) = &mut self.role {
            leader.on_own_flush(self_id, synced);
        }
        let high_watermark_before = self.high_watermark;
        self.after_progress(now);
        if self.high_watermark != high_watermark_before {
            self.answer_fetches_behind_high_watermark(storage, now)?;
        }
        self.request_flush();
        self.maybe_send_fetch(now);
        #[cfg(debug_assertions)]
        self.check_invariants();
        Ok(())
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
    ) -> Result<(), QuorumError> {
        let result = self.on_timeout(storage, now);
        #[cfg(debug_assertions)]
        self.check_invariants();
        result
    }

    /// Appends `records` (v2 batches) as the leader; returns the first
    /// offset. They commit once a majority holds them durably.
    pub fn propose(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        records: &[u8],
    ) -> Result<i64, ProposeError> {
        let RoleState::Leader(leader) = &self.role else {
            return Err(ProposeError::NotLeader {
                leader_id: self.state.leader_id,
                epoch: self.state.epoch,
            });
        };
        let committed = leader.high_watermark.unwrap_or(leader.epoch_start_offset);
        let uncommitted = self.log.log_end_offset() - committed;
        if uncommitted >= self.config.uncommitted_offsets_max {
            return Err(ProposeError::Backlog {
                uncommitted,
                max: self.config.uncommitted_offsets_max,
            });
        }
        let info = self
            .log
            .append_as_leader(storage, records, self.state.epoch, now)?;
        self.request_flush();
        self.answer_parked_fetches(storage, now, |_, _| true)?;
        #[cfg(debug_assertions)]
        self.check_invariants();
        Ok(info.first_offset)
    }

    // ----- step: dispatch by message, then by role -----

    /// Applies one message: epoch rules common to every role first, then
    /// the role's own handling.
    pub fn step(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        from: i32,
        message: RaftMessage,
    ) -> Result<(), QuorumError> {
        match message {
            RaftMessage::Vote(request) => self.handle_vote_request(storage, now, from, &request),
            RaftMessage::VoteResponse(response) => {
                let Ok(fields) = messages::parse_vote_response(&response) else {
                    return Ok(());
                };
                self.observe_epoch(storage, now, fields.leader_epoch, fields.leader_id)?;
                if fields.error_code != error_codes::NONE {
                    return Ok(());
                }
                match self.role() {
                    Role::Prospective | Role::Candidate => {
                        self.step_candidate(storage, now, from, fields)
                    }
                    _ => Ok(()),
                }
            }
            RaftMessage::BeginQuorumEpoch(request) => {
                self.handle_begin_quorum_epoch(storage, now, from, &request)
            }
            RaftMessage::BeginQuorumEpochResponse(response) => {
                let Ok((error_code, leader_id, epoch)) =
                    messages::parse_begin_quorum_epoch_response(&response)
                else {
                    return Ok(());
                };
                self.observe_epoch(storage, now, epoch, leader_id)?;
                if let RoleState::Leader(leader) = &mut self.role {
                    if error_code == error_codes::NONE && epoch == leader.epoch {
                        if let Some(progress) = leader.replicas.get_mut(&from) {
                            progress.knows_leader = true;
                        }
                    }
                }
                Ok(())
            }
            RaftMessage::EndQuorumEpoch(request) => {
                self.handle_end_quorum_epoch(storage, now, from, &request)
            }
            RaftMessage::EndQuorumEpochResponse(response) => {
                let Ok((_, leader_id, epoch)) =
                    messages::parse_end_quorum_epoch_response(&response)
                else {
                    return Ok(());
                };
                self.observe_epoch(storage, now, epoch, leader_id)?;
                if let RoleState::Resigned { acknowledged, .. } = &mut self.role {
                    if epoch == self.state.epoch {
                        acknowledged.insert(from);
                    }
                }
                Ok(())
            }
            RaftMessage::Fetch {
                correlation_id,
                request,
            } => {
                let fields = match messages::parse_fetch_request(&self.config.cluster_id, &request)
                {
                    Ok(fields) if fields.replica_id == from => fields,
                    Ok(_) => {
                        self.send_fetch_error(
                            from,
                            correlation_id,
                            error_codes::INCONSISTENT_VOTER_SET,
                        );
                        return Ok(());
                    }
                    Err(error) => {
                        self.send_fetch_error(from, correlation_id, error.kafka_error_code());
                        return Ok(());
                    }
                };
                if self.role() == Role::Leader {
                    self.step_leader(storage, now, from, correlation_id, fields)
                } else {
                    // Not the leader: say who is, as far as this node knows.
                    let error_code = if fields.current_leader_epoch < self.state.epoch {
                        error_codes::FENCED_LEADER_EPOCH
                    } else if fields.current_leader_epoch > self.state.epoch {
                        error_codes::UNKNOWN_LEADER_EPOCH
                    } else {
                        error_codes::NOT_LEADER_OR_FOLLOWER
                    };
                    self.send_fetch_response(from, correlation_id, self.fetch_fields(error_code));
                    Ok(())
                }
            }
            RaftMessage::FetchResponse {
                correlation_id,
                response,
            } => {
                let Ok(fields) = messages::parse_fetch_response(&response) else {
                    return Ok(());
                };
                self.observe_epoch(storage, now, fields.leader_epoch, fields.leader_id)?;
                if self.role() == Role::Follower {
                    self.step_follower(storage, now, from, correlation_id, fields)
                } else {
                    Ok(())
                }
            }
            RaftMessage::FetchSnapshot {
                correlation_id,
                request,
            } => {
                let parsed =
                    messages::parse_fetch_snapshot_request(&self.config.cluster_id, &request);
                let fields = match parsed {
                    Ok(fields) if fields.replica_id == from => fields,
                    Ok(_) => {
                        self.send_fetch_snapshot_error(
                            from,
                            correlation_id,
                            error_codes::INCONSISTENT_VOTER_SET,
                        );
                        return Ok(());
                    }
                    Err(error) => {
                        self.send_fetch_snapshot_error(
                            from,
                            correlation_id,
                            error.kafka_error_code(),
                        );
                        return Ok(());
                    }
                };
                self.handle_fetch_snapshot(storage, now, from, correlation_id, fields)
            }
            RaftMessage::FetchSnapshotResponse {
                correlation_id,
                response,
            } => {
                let Ok(fields) = messages::parse_fetch_snapshot_response(&response) else {
                    return Ok(());
                };
                self.observe_epoch(storage, now, fields.leader_epoch, fields.leader_id)?;
                if self.role() == Role::Follower {
                    self.step_follower_snapshot(storage, now, from, correlation_id, fields)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The rule every role follows: a higher epoch ends this one. The
    /// sender's epoch replaces ours, and if it names a leader this node
    /// follows it. In our own epoch, a leader we did not know is followed.
    fn observe_epoch(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        epoch: i32,
        leader_id: Option<i32>,
    ) -> Result<(), QuorumError> {
        let self_id = self.config.node_id;
        let leader_id = leader_id.filter(|id| self.config.voters.contains_key(id));
        if epoch > self.state.epoch {
            match leader_id {
                Some(leader_id) if leader_id != self_id => {
                    self.become_follower(storage, now, epoch, leader_id)?
                }
                _ => self.become_unattached(storage, now, epoch)?,
            }
        } else if epoch == self.state.epoch {
            if let Some(leader_id) = leader_id {
                if let Some(known) = self.state.leader_id {
                    assert_eq!(
                        known, leader_id,
                        "node {self_id}: two leaders in epoch {epoch}"
                    );
                } else if leader_id != self_id {
                    self.become_follower(storage, now, epoch, leader_id)?;
                } else {
                    // A peer says this node leads the epoch while it has
                    // no record of it: only possible after losing the
                    // election state, which write_atomic rules out.
                    panic!("node {self_id}: told it leads epoch {epoch}, which it never won");
                }
            }
        }
        Ok(())
    }

    /// A prospective's pre-vote or a candidate's vote was answered.
    fn step_candidate(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        from: i32,
        fields: messages::VoteResponseFields,
    ) -> Result<(), QuorumError> {
        let majority = self.majority();
        let epoch = self.state.epoch;
        match &mut self.role {
            // Pre-votes are answered in the responder's epoch, never higher
            // than ours here (a higher one made us step down above).
            RoleState::Prospective(round) => {
                round.record(from, fields.vote_granted);
                if round.granted.len() >= majority {
                    self.become_candidate(storage, now)?;
                } else if round.rejected.len() >= majority {
                    // Lost: back to a leader this epoch still has at once;
                    // without one, the next round waits for the timeout
                    // (no pre-vote storm).
                    let known_leader = self.state.leader_id.filter(|&id| id != self.config.node_id);
                    if known_leader.is_some() {
                        self.prospective_lost(storage, now)?;
                    }
                }
            }
            RoleState::Candidate(round) if fields.leader_epoch == epoch => {
                round.record(from, fields.vote_granted);
                if round.granted.len() >= majority {
                    self.become_leader(storage, now)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The leader's side of a fetch.
    fn step_leader(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        from: i32,
        correlation_id: i32,
        fields: FetchRequestFields,
    ) -> Result<(), QuorumError> {
        let epoch = self.state.epoch;
        if fields.current_leader_epoch != epoch {
            let error_code = if fields.current_leader_epoch < epoch {
                error_codes::FENCED_LEADER_EPOCH
            } else {
                error_codes::UNKNOWN_LEADER_EPOCH
            };
            self.send_fetch_response(from, correlation_id, self.fetch_fields(error_code));
            return Ok(());
        }
        let RoleState::Leader(leader) = &mut self.role else {
            unreachable!("step_leader is called for leaders");
        };
        // Any fetch in our epoch shows the voter follows us: check-quorum.
        leader.on_fetch(from, now);
        match self.check_fetch_position(fields.fetch_offset, fields.last_fetched_epoch) {
            FetchPosition::Valid => {}
            FetchPosition::Diverging(diverging) => {
                let mut response = self.fetch_fields(error_codes::NONE);
                response.diverging_epoch = Some(diverging);
                self.send_fetch_response(from, correlation_id, response);
                return Ok(());
            }
            FetchPosition::Snapshot(id) => {
                let mut response = self.fetch_fields(error_codes::NONE);
                response.snapshot_id = Some((id.end_offset, id.epoch));
                self.send_fetch_response(from, correlation_id, response);
                return Ok(());
            }
        }
        let RoleState::Leader(leader) = &mut self.role else {
            unreachable!("still the leader");
        };
        leader.on_progress(from, fields.fetch_offset);
        leader.parked.remove(&from);
        let advanced = leader.maybe_advance_high_watermark(self.config.commit_prior_epoch);
        if advanced {
            self.high_watermark = leader.high_watermark;
        }
        let high_watermark = self.high_watermark.unwrap_or(-1);
        let may_park = match &self.role {
            RoleState::Leader(leader) => leader.may_park(from),
            _ => false,
        };
        if fields.fetch_offset < self.log.log_end_offset()
            || high_watermark > fields.high_watermark
            || !may_park
        {
            self.answer_fetch(storage, from, correlation_id, fields)?;
        } else {
            let wait_ms = u64::try_from(fields.max_wait_ms)
                .unwrap_or(0)
                .min(self.config.fetch_max_wait_ms);
            let RoleState::Leader(leader) = &mut self.role else {
                unreachable!("still the leader");
            };
            leader.parked.insert(
                from,
                ParkedFetch {
                    correlation_id,
                    fields,
                    deadline: now + Duration::from_millis(wait_ms),
                },
            );
        }
        if advanced {
            self.after_progress(now);
            self.answer_fetches_behind_high_watermark(storage, now)?;
        }
        Ok(())
    }

    /// Where a follower's log stands against the leader's, Kafka's
    /// `validateOffsetAndEpoch`: matching up to `fetch_offset`, diverging
    /// (the leader's `(epoch, end offset)` for the follower's last epoch,
    /// to truncate to), or behind the snapshot at our log start (fetch the
    /// latest snapshot).
    fn check_fetch_position(&self, fetch_offset: i64, last_fetched_epoch: i32) -> FetchPosition {
        let log_start = self.log.log_start_offset();
        if log_start == 0 && fetch_offset == 0 {
            return FetchPosition::Valid;
        }
        let earliest = (log_start > 0).then(|| {
            self.snapshot_at_log_start().unwrap_or_else(|| {
                panic!(
                    "node {}: log start {log_start} without a snapshot there",
                    self.config.node_id
                )
            })
        });
        let snapshot = || {
            FetchPosition::Snapshot(
                self.latest_snapshot()
                    .expect("the earliest snapshot is one"),
            )
        };
        if let Some(earliest) = earliest {
            // Kafka's three cases. The third matters once the epochs
            // below the log start are gone from the epoch cache: a
            // follower whose last epoch is older than the snapshot's
            // cannot be told where that epoch ended (the cache's first
            // entry was moved up to the log start), so "diverging at the
            // log start" would leave its stale tail up to there in place,
            // under our high watermark (found by the simulator: a
            // returning ex-controller applied its own uncommitted record).
            let behind = fetch_offset < log_start
                || (fetch_offset == log_start && last_fetched_epoch != earliest.epoch)
                || last_fetched_epoch < earliest.epoch;
            if behind {
                return snapshot();
            }
        }
        if fetch_offset < 0 || last_fetched_epoch < 0 {
            return FetchPosition::Diverging((-1, 0));
        }
        match self.end_offset_for_epoch(last_fetched_epoch, earliest) {
            Some((epoch, end_offset))
                if epoch == last_fetched_epoch && fetch_offset <= end_offset =>
            {
                FetchPosition::Valid
            }
            // Truncating there would go below what the log still holds:
            // the follower rebuilds from the snapshot instead.
            Some((_, end_offset)) if end_offset < log_start => snapshot(),
            None if log_start > 0 => snapshot(),
            Some(diverging) => FetchPosition::Diverging(diverging),
            None => FetchPosition::Diverging((-1, 0)),
        }
    }

    /// The epoch cache's `(epoch, end offset)` for `epoch`, Kafka's
    /// `KafkaMetadataLog.endOffsetForEpoch`: an epoch that ends right at
    /// the log start ended inside the snapshot there, which knows its
    /// real last epoch.
    fn end_offset_for_epoch(&self, epoch: i32, earliest: Option<SnapshotId>) -> Option<(i32, i64)> {
        let found = self.log.end_offset_for_epoch(epoch)?;
        match earliest {
            Some(snapshot) if found == (epoch, snapshot.end_offset) => {
                Some((snapshot.epoch, snapshot.end_offset))
            }
            _ => Some(found),
        }
    }

    /// The follower's side of a fetch.
    fn step_follower(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        from: i32,
        correlation_id: i32,
        fields: FetchResponseFields,
    ) -> Result<(), QuorumError> {
        let epoch = self.state.epoch;
        let fetch_timeout = self.fetch_timeout();
        let retry_backoff = Duration::from_millis(self.config.retry_backoff_ms);
        let RoleState::Follower(follower) = &mut self.role else {
            unreachable!("step_follower is called for followers");
        };
        if !follower.take_awaited_answer(from, correlation_id, fields.leader_epoch, epoch) {
            return Ok(());
        }
        if fields.error_code != error_codes::NONE {
            follower.next_fetch_at = now + retry_backoff;
            return Ok(());
        }
        follower.fetch_deadline = now + fetch_timeout;
        follower.next_fetch_at = now;
        follower.has_fetched = true;
        if let Some((end_offset, epoch)) = fields.snapshot_id {
            let id = SnapshotId { end_offset, epoch };
            let ahead = end_offset > self.log.log_start_offset() && !self.snapshots.contains(&id);
            if ahead {
                tracing::info!(
                    node = self.config.node_id,
                    ?id,
                    "below the leader's log start: fetching its snapshot"
                );
                // A partial copy of an earlier attempt is started afresh.
                storage.remove(&id.path())?;
            } else {
                tracing::warn!(
                    node = self.config.node_id,
                    ?id,
                    "snapshot offered at or below our log start; retrying"
                );
            }
            let RoleState::Follower(follower) = &mut self.role else {
                unreachable!("still a follower");
            };
            if ahead {
                follower.snapshot_fetch = Some(SnapshotFetch { id, position: 0 });
            } else {
                follower.next_fetch_at = now + retry_backoff;
            }
        } else if let Some((diverging_epoch, diverging_end_offset)) = fields.diverging_epoch {
            self.truncate_diverging(storage, diverging_epoch, diverging_end_offset)?;
        } else if !fields.records.is_empty() {
            let first = BatchIter::new(&fields.records)
                .next()
                .map(|(_, h)| h.base_offset());
            if first == Some(self.log.log_end_offset()) {
                self.log.append_as_follower(storage, &fields.records, now)?;
                self.request_flush();
            }
        }
        // A snapshot answer validated nothing of our log: its tail may be
        // an old epoch's uncommitted records, which the leader's high
        // watermark must not cover (found by the simulator: a returning
        // controller acted on its own never-committed partition change).
        if fields.high_watermark >= 0 && fields.snapshot_id.is_none() {
            let known = fields.high_watermark.min(self.log.log_end_offset());
            self.high_watermark = Some(self.high_watermark.map_or(known, |hw| hw.max(known)));
        }
        self.maybe_send_fetch(now);
        Ok(())
    }

    /// Cuts the log where the leader says it diverges (Kafka's
    /// `truncateToEndOffset`): at the leader's end of the diverging epoch,
    /// or our own end of it if that is lower.
    fn truncate_diverging(
        &mut self,
        storage: &mut dyn Storage,
        diverging_epoch: i32,
        diverging_end_offset: i64,
    ) -> Result<(), QuorumError> {
        let log_end_offset = self.log.log_end_offset();
        let local_end = self
            .log
            .end_offset_for_epoch(diverging_epoch)
            .map_or(log_end_offset, |(_, end)| end);
        let target = diverging_end_offset
            .min(local_end)
            .min(log_end_offset)
            .max(0);
        assert!(
            self.config.commit_prior_epoch || target >= self.log.log_start_offset(),
            "node {}: truncation to {target} below the log start {} (a snapshot holds it)",
            self.config.node_id,
            self.log.log_start_offset()
        );
        if let Some(high_watermark) = self.high_watermark {
            assert!(
                self.config.commit_prior_epoch || target >= high_watermark,
                "node {}: diverging epoch ({diverging_epoch}, {diverging_end_offset}) \
                 truncates committed data: to {target} below high watermark {high_watermark}",
                self.config.node_id
            );
            if target < high_watermark {
                self.high_watermark = Some(target);
            }
        }
        self.log.truncate_to(storage, target)?;
        let new_end = self.log.log_end_offset();
        self.truncation_count += 1;
        self.last_truncation_offset = new_end;
        if let Some(in_flight) = &mut self.flush_in_flight {
            in_flight.capped_at = in_flight.capped_at.min(new_end);
        }
        if let Some(high_watermark) = self.high_watermark {
            self.high_watermark = Some(high_watermark.min(new_end));
        }
        self.request_flush();
        Ok(())
    }

    fn handle_vote_request(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        from: i32,
        request: &kafka_protocol::messages::VoteRequest,
    ) -> Result<(), QuorumError> {
        let fields = match messages::parse_vote_request(&self.config.cluster_id, request) {
            Ok(fields) if fields.candidate_id == from => fields,
            Ok(_) => {
                self.send(
                    from,
                    RaftMessage::VoteResponse(messages::vote_error_response(
                        error_codes::INCONSISTENT_VOTER_SET,
                    )),
                );
                return Ok(());
            }
            Err(error) => {
                self.send(
                    from,
                    RaftMessage::VoteResponse(messages::vote_error_response(
                        error.kafka_error_code(),
                    )),
                );
                return Ok(());
            }
        };
        let log_ok = (fields.last_offset_epoch, fields.last_offset)
            >= (self.last_log_epoch(), self.log.log_end_offset());
        if fields.pre_vote {
            // A pre-vote changes nothing here, whatever its epoch (KIP-996):
            // granted to an up-to-date log when no leader is alive.
            let granted =
                fields.candidate_epoch >= self.state.epoch && log_ok && !self.has_live_leader(now);
            self.send_vote_response(from, granted);
            return Ok(());
        }
        self.observe_epoch(storage, now, fields.candidate_epoch, None)?;
        let granted = fields.candidate_epoch == self.state.epoch
            && self.state.leader_id.is_none()
            && self
                .state
                .voted_id
                .is_none_or(|voted| voted == fields.candidate_id)
            && log_ok;
        if granted && self.state.voted_id.is_none() {
            self.become_voted(storage, now, fields.candidate_id)?;
        }
        self.send_vote_response(from, granted);
        Ok(())
    }

    fn handle_begin_quorum_epoch(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        from: i32,
        request: &kafka_protocol::messages::BeginQuorumEpochRequest,
    ) -> Result<(), QuorumError> {
        let (leader_id, epoch) =
            match messages::parse_begin_quorum_epoch_request(&self.config.cluster_id, request) {
                Ok((leader_id, epoch)) if leader_id == from => (leader_id, epoch),
                Ok(_) => return Ok(()),
                Err(error) => {
                    let response = messages::begin_quorum_epoch_response(
                        error.kafka_error_code(),
                        self.state.leader_id,
                        self.state.epoch,
                    );
                    self.send(from, RaftMessage::BeginQuorumEpochResponse(response));
                    return Ok(());
                }
            };
        let error_code = if epoch < self.state.epoch {
            error_codes::FENCED_LEADER_EPOCH
        } else {
            self.observe_epoch(storage, now, epoch, Some(leader_id))?;
            // The leader itself is talking: follow it, even if we had given
            // up on it and were asking for pre-votes.
            let following =
                matches!(&self.role, RoleState::Follower(f) if f.leader_id == leader_id);
            if !following {
                self.become_follower(storage, now, epoch, leader_id)?;
            }
            error_codes::NONE
        };
        let response = messages::begin_quorum_epoch_response(
            error_code,
            self.state.leader_id,
            self.state.epoch,
        );
        self.send(from, RaftMessage::BeginQuorumEpochResponse(response));
        Ok(())
    }

    fn handle_end_quorum_epoch(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        from: i32,
        request: &kafka_protocol::messages::EndQuorumEpochRequest,
    ) -> Result<(), QuorumError> {
        let (leader_id, epoch, successors) =
            match messages::parse_end_quorum_epoch_request(&self.config.cluster_id, request) {
                Ok((leader_id, epoch, successors)) if leader_id == from => {
                    (leader_id, epoch, successors)
                }
                Ok(_) => return Ok(()),
                Err(error) => {
                    let response = messages::end_quorum_epoch_response(
                        error.kafka_error_code(),
                        self.state.leader_id,
                        self.state.epoch,
                    );
                    self.send(from, RaftMessage::EndQuorumEpochResponse(response));
                    return Ok(());
                }
            };
        let error_code = if epoch < self.state.epoch {
            error_codes::FENCED_LEADER_EPOCH
        } else {
            self.observe_epoch(storage, now, epoch, Some(leader_id))?;
            // The preferred successors elect first: a backoff that grows
            // with the position in the leader's list (Kafka's
            // endQuorumBackoff), plus jitter.
            let position = successors
                .iter()
                .position(|&id| id == self.config.node_id)
                .unwrap_or(successors.len());
            let jitter_ms = self.rng.gen_range(0..=self.config.retry_backoff_ms.max(1));
            let backoff = Duration::from_millis(
                position as u64 * self.config.retry_backoff_ms * 4 + jitter_ms,
            );
            if let RoleState::Follower(follower) = &mut self.role {
                if follower.leader_id == leader_id {
                    follower.leader_resigned = true;
                    follower.fetch_deadline = follower.fetch_deadline.min(now + backoff);
                }
            }
            error_codes::NONE
        };
        let response =
            messages::end_quorum_epoch_response(error_code, self.state.leader_id, self.state.epoch);
        self.send(from, RaftMessage::EndQuorumEpochResponse(response));
        Ok(())
    }

    fn on_timeout(&mut self, storage: &mut dyn Storage, now: Instant) -> Result<(), QuorumError> {
        let observer = self.is_observer();
        let fetch_timeout = self.fetch_timeout();
        match &mut self.role {
            RoleState::Unattached { election_deadline } if observer => {
                if now >= *election_deadline {
                    *election_deadline = now + fetch_timeout;
                    self.send_discovery_fetch();
                }
            }
            RoleState::Unattached { election_deadline }
            | RoleState::Voted { election_deadline } => {
                if now >= *election_deadline {
                    self.become_prospective(storage, now)?;
                }
            }
            RoleState::Prospective(round) => {
                if now >= round.election_deadline {
                    self.prospective_lost(storage, now)?;
                }
            }
            RoleState::Candidate(round) => {
                if now >= round.election_deadline {
                    self.become_prospective(storage, now)?;
                }
            }
            RoleState::Leader(leader) => {
                if now >= leader.check_quorum_deadline {
                    if leader.fetched_in_window.len() >= leader.majority() {
                        leader.fetched_in_window.clear();
                        leader.fetched_in_window.insert(self.config.node_id);
                        leader.check_quorum_deadline = now + leader.check_quorum_window;
                    } else {
                        tracing::info!(
                            node = self.config.node_id,
                            epoch = self.state.epoch,
                            "check-quorum: no majority fetched within the window, resigning"
                        );
                        self.become_resigned(now);
                        return Ok(());
                    }
                }
                if now >= leader.begin_quorum_resend_at {
                    leader.begin_quorum_resend_at =
                        now + Duration::from_millis(self.config.request_timeout_ms);
                    let unaware = leader.unaware_voters();
                    for voter in unaware {
                        let request = messages::begin_quorum_epoch_request(
                            &self.config.cluster_id,
                            voter,
                            self.config.node_id,
                            self.state.epoch,
                        );
                        self.send(voter, RaftMessage::BeginQuorumEpoch(request));
                    }
                }
                self.answer_parked_fetches(storage, now, |parked, _| parked.deadline <= now)?;
            }
            RoleState::Follower(follower) => {
                if now >= follower.fetch_deadline && !observer {
                    self.become_prospective(storage, now)?;
                    return Ok(());
                }
                if now >= follower.fetch_deadline {
                    // An observer never stands: it asks the voters in turn
                    // who leads now, and keeps trying its old leader.
                    follower.fetch_deadline = now + fetch_timeout;
                    self.send_discovery_fetch();
                    return Ok(());
                }
                if let Some((_, retry_at)) = follower.fetch_in_flight {
                    if now >= retry_at {
                        follower.fetch_in_flight = None;
                    }
                }
                self.maybe_send_fetch(now);
            }
            RoleState::Resigned {
                election_deadline,
                acknowledged,
                end_quorum_resend_at,
            } => {
                if now >= *election_deadline {
                    self.become_prospective(storage, now)?;
                    return Ok(());
                }
                if now >= *end_quorum_resend_at {
                    *end_quorum_resend_at =
                        now + Duration::from_millis(self.config.request_timeout_ms);
                    let acknowledged = acknowledged.clone();
                    self.send_end_quorum_epoch(&acknowledged);
                }
            }
        }
        Ok(())
    }

    // ----- snapshots (KIP-630) -----

    /// Writes a snapshot of the host's applied state: `payload` rebuilds
    /// everything below `end_offset`, which must be committed and above
    /// the latest snapshot. Returns its id, or `None` when one is already
    /// being synced (the host asks again later). Once the driver has synced
    /// it the log start moves up to it.
    pub fn create_snapshot(
        &mut self,
        storage: &mut dyn Storage,
        end_offset: i64,
        payload: &[u8],
    ) -> Result<Option<SnapshotId>, QuorumError> {
        if self.snapshot_flush.is_some() {
            return Ok(None);
        }
        let high_watermark = self.high_watermark.unwrap_or(0);
        assert!(
            end_offset <= high_watermark,
            "node {}: snapshot at {end_offset} beyond the high watermark {high_watermark}",
            self.config.node_id
        );
        assert!(
            end_offset > self.log.log_start_offset()
                && self
                    .latest_snapshot()
                    .is_none_or(|id| end_offset > id.end_offset),
            "node {}: snapshot at {end_offset} not above the log start {} and latest {:?}",
            self.config.node_id,
            self.log.log_start_offset(),
            self.latest_snapshot()
        );
        let epoch = self.epoch_at(end_offset - 1);
        let id = SnapshotId { end_offset, epoch };
        let path = id.path();
        storage.remove(&path)?;
        storage.append(&path, &snapshot::encode(id, payload))?;
        self.snapshot_flush = Some(SnapshotFlush::Local(id));
        assert!(self.outputs.len() < OUTPUTS_MAX, "outputs not drained");
        self.outputs.push_back(QuorumOutput::FlushSnapshot {
            path,
            snapshot_id: id,
        });
        tracing::debug!(node = self.config.node_id, ?id, "snapshot written");
        Ok(Some(id))
    }

    /// The epoch of the record at `offset` (held in the log).
    fn epoch_at(&self, offset: i64) -> i32 {
        assert!(
            (self.log.log_start_offset()..self.log.log_end_offset()).contains(&offset),
            "offset {offset} outside the log"
        );
        let entries = self.log.epoch_cache().entries();
        let holder = entries.partition_point(|&(_, start)| start <= offset);
        assert!(holder > 0, "every offset in the log has an epoch");
        entries[holder - 1].0
    }

    /// The driver synced the snapshot `id`: it counts from now on. Our own
    /// moves the log start up to it; one from the leader replaces the log.
    pub fn handle_snapshot_flushed(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        id: SnapshotId,
    ) -> Result<(), QuorumError> {
        let Some(flush) = self.snapshot_flush.take() else {
            tracing::debug!(
                node = self.config.node_id,
                "snapshot sync with none in flight"
            );
            return Ok(());
        };
        assert_eq!(flush.id(), id, "a snapshot sync names the snapshot written");
        match snapshot::read(storage, id)? {
            Ok(_) => {}
            Err(reason) => {
                // Cannot happen unless the disk lies: drop it, fetch again.
                tracing::error!(path = %id.path(), %reason, "refusing a corrupt metadata snapshot just synced");
                storage.remove(&id.path())?;
                self.maybe_send_fetch(now);
                return Ok(());
            }
        }
        self.snapshots.insert(id);
        if matches!(flush, SnapshotFlush::Fetched(_)) {
            self.snapshot_installs += 1;
            let known = self.high_watermark.unwrap_or(0).max(id.end_offset);
            self.high_watermark = Some(known);
            tracing::info!(
                node = self.config.node_id,
                ?id,
                "installed the leader's snapshot"
            );
        }
        self.adopt_snapshot_start(storage, id)?;
        self.maybe_send_fetch(now);
        #[cfg(debug_assertions)]
        self.check_invariants();
        Ok(())
    }

    /// Moves the log start up to the synced snapshot `id`: the prefix
    /// goes, and so do older snapshots. A log that does not hold the
    /// snapshot's last record in its epoch (a follower behind, or one whose
    /// tail diverged) is restarted empty at the snapshot's end.
    fn adopt_snapshot_start(
        &mut self,
        storage: &mut dyn Storage,
        id: SnapshotId,
    ) -> Result<(), QuorumError> {
        assert!(
            self.snapshots.contains(&id),
            "only a synced snapshot is adopted"
        );
        if id.end_offset <= self.log.log_start_offset() {
            return Ok(());
        }
        let holds_it = id.end_offset <= self.log.log_end_offset()
            && self.epoch_at(id.end_offset - 1) == id.epoch;
        if holds_it {
            self.log.delete_records_before(storage, id.end_offset)?;
        } else {
            self.log.restart_at(storage, id.end_offset)?;
            self.truncation_count += 1;
            self.last_truncation_offset = id.end_offset;
            if let Some(in_flight) = &mut self.flush_in_flight {
                in_flight.capped_at = in_flight.capped_at.min(id.end_offset);
            }
        }
        // Durable first (the log start checkpoint above), then the files
        // it makes redundant; a crash between leaves them for open to drop.
        let older: Vec<SnapshotId> = self.snapshots.range(..id).copied().collect();
        for old in older {
            storage.remove(&old.path())?;
            self.snapshots.remove(&old);
        }
        if let Some(high_watermark) = self.high_watermark {
            self.high_watermark = Some(high_watermark.max(id.end_offset));
        }
        self.request_flush();
        Ok(())
    }

    /// Open: keep the valid snapshots at or above the log start, refuse
    /// the rest (torn by a crash mid-write, or corrupt) with a log line,
    /// and adopt the latest if the log start is behind it.
    fn load_snapshots(&mut self, storage: &mut dyn Storage) -> Result<(), QuorumError> {
        let log_start = self.log.log_start_offset();
        for id in snapshot::list(storage)? {
            if id.end_offset < log_start {
                storage.remove(&id.path())?;
                continue;
            }
            match snapshot::read(storage, id)? {
                Ok(_) => {
                    self.snapshots.insert(id);
                }
                Err(reason) => {
                    tracing::warn!(
                        path = %id.path(),
                        %reason,
                        "refusing a corrupt metadata snapshot (deleted)"
                    );
                    storage.remove(&id.path())?;
                }
            }
        }
        if log_start > 0 && self.snapshot_at_log_start().is_none() {
            return Err(QuorumError::Snapshot(format!(
                "the metadata log starts at {log_start} but no valid snapshot ends there; \
                 the node cannot rebuild its state (restore the snapshot or wipe the node)"
            )));
        }
        if let Some(latest) = self.latest_snapshot() {
            self.adopt_snapshot_start(storage, latest)?;
        }
        Ok(())
    }

    /// The leader's side of FetchSnapshot: one chunk from `position`.
    fn handle_fetch_snapshot(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        from: i32,
        correlation_id: i32,
        fields: FetchSnapshotRequestFields,
    ) -> Result<(), QuorumError> {
        let epoch = self.state.epoch;
        let error_code = if fields.current_leader_epoch < epoch {
            Some(error_codes::FENCED_LEADER_EPOCH)
        } else if fields.current_leader_epoch > epoch {
            Some(error_codes::UNKNOWN_LEADER_EPOCH)
        } else if self.role() != Role::Leader {
            Some(error_codes::NOT_LEADER_OR_FOLLOWER)
        } else {
            None
        };
        let (end_offset, snapshot_epoch) = fields.snapshot_id;
        let id = SnapshotId {
            end_offset,
            epoch: snapshot_epoch,
        };
        let mut response = FetchSnapshotResponseFields {
            error_code: error_code.unwrap_or(error_codes::NONE),
            snapshot_id: fields.snapshot_id,
            leader_id: self.state.leader_id,
            leader_epoch: epoch,
            size: -1,
            position: fields.position,
            bytes: bytes::Bytes::new(),
        };
        if error_code.is_none() {
            if let RoleState::Leader(leader) = &mut self.role {
                // A follower copying a snapshot follows us: check-quorum.
                leader.on_fetch(from, now);
            }
            if !self.snapshots.contains(&id) {
                response.error_code = error_codes::SNAPSHOT_NOT_FOUND;
            } else {
                let size = storage.len(&id.path())?;
                let size_i64 = i64::try_from(size).expect("snapshot size fits i64");
                response.size = size_i64;
                if fields.position < 0 || fields.position >= size_i64 {
                    response.error_code = error_codes::POSITION_OUT_OF_RANGE;
                } else {
                    let max_bytes = u32::try_from(fields.max_bytes)
                        .unwrap_or(0)
                        .clamp(1, self.config.fetch_snapshot_max_bytes)
                        as usize;
                    response.bytes =
                        storage.read_at(&id.path(), fields.position as u64, max_bytes)?;
                    assert!(
                        !response.bytes.is_empty(),
                        "a chunk within the snapshot is non-empty"
                    );
                }
            }
        }
        let response = messages::fetch_snapshot_response(response);
        self.send(
            from,
            RaftMessage::FetchSnapshotResponse {
                correlation_id,
                response,
            },
        );
        Ok(())
    }

    /// The follower's side of FetchSnapshot: append the chunk; once whole,
    /// have it synced, then install it (`handle_snapshot_flushed`).
    fn step_follower_snapshot(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        from: i32,
        correlation_id: i32,
        fields: FetchSnapshotResponseFields,
    ) -> Result<(), QuorumError> {
        let epoch = self.state.epoch;
        let fetch_timeout = self.fetch_timeout();
        let retry_backoff = Duration::from_millis(self.config.retry_backoff_ms);
        let RoleState::Follower(follower) = &mut self.role else {
            unreachable!("step_follower_snapshot is called for followers");
        };
        if !follower.take_awaited_answer(from, correlation_id, fields.leader_epoch, epoch) {
            return Ok(());
        }
        let Some(fetch) = follower.snapshot_fetch else {
            return Ok(());
        };
        let expected = (fetch.id.end_offset, fetch.id.epoch);
        if fields.error_code != error_codes::NONE
            || fields.snapshot_id != expected
            || fields.position != fetch.position
        {
            // The leader moved on (a newer snapshot) or lost it: start over
            // with a Fetch, which names the current one.
            tracing::debug!(
                node = self.config.node_id,
                error_code = fields.error_code,
                "snapshot fetch refused; starting over"
            );
            follower.snapshot_fetch = None;
            follower.next_fetch_at = now + retry_backoff;
            return Ok(());
        }
        let size = fields.size;
        let chunk_end = fetch.position + fields.bytes.len() as i64;
        if fields.bytes.is_empty()
            || size <= 0
            || size as u64 > snapshot::SNAPSHOT_BYTES_MAX
            || chunk_end > size
        {
            tracing::warn!(
                node = self.config.node_id,
                size,
                chunk_end,
                "malformed snapshot chunk; starting over"
            );
            follower.snapshot_fetch = None;
            follower.next_fetch_at = now + retry_backoff;
            return Ok(());
        }
        follower.fetch_deadline = now + fetch_timeout;
        follower.next_fetch_at = now;
        follower.has_fetched = true;
        let id = fetch.id;
        if chunk_end == size {
            follower.snapshot_fetch = None;
        } else {
            follower.snapshot_fetch = Some(SnapshotFetch {
                id,
                position: chunk_end,
            });
        }
        let path = id.path();
        let written = if storage.exists(&path) {
            storage.len(&path)?
        } else {
            0
        };
        assert_eq!(
            written as i64, fetch.position,
            "node {}: the partial snapshot holds exactly the bytes asked for before",
            self.config.node_id
        );
        storage.append(&path, &fields.bytes)?;
        if chunk_end == size {
            assert!(self.snapshot_flush.is_none(), "one snapshot sync at a time");
            self.snapshot_flush = Some(SnapshotFlush::Fetched(id));
            assert!(self.outputs.len() < OUTPUTS_MAX, "outputs not drained");
            self.outputs.push_back(QuorumOutput::FlushSnapshot {
                path,
                snapshot_id: id,
            });
        }
        self.maybe_send_fetch(now);
        Ok(())
    }

    fn send_fetch_snapshot_error(&mut self, to: i32, correlation_id: i32, error_code: i16) {
        self.send(
            to,
            RaftMessage::FetchSnapshotResponse {
                correlation_id,
                response: messages::fetch_snapshot_error_response(error_code),
            },
        );
    }

    // ----- transitions -----

    fn persist(
        &mut self,
        storage: &mut dyn Storage,
        state: ElectionState,
    ) -> Result<(), QuorumError> {
        self.store.write(storage, state)?;
        self.state = state;
        Ok(())
    }

    fn become_unattached(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        epoch: i32,
    ) -> Result<(), QuorumError> {
        assert!(
            epoch > self.state.epoch,
            "unattached only in a new epoch: {} -> {epoch}",
            self.state.epoch
        );
        self.persist(
            storage,
            ElectionState {
                epoch,
                voted_id: None,
                leader_id: None,
            },
        )?;
        self.high_watermark = None;
        self.role = RoleState::Unattached {
            election_deadline: now + self.random_election_timeout(),
        };
        Ok(())
    }

    fn become_voted(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        candidate_id: i32,
    ) -> Result<(), QuorumError> {
        assert!(
            self.state.voted_id.is_none() && self.state.leader_id.is_none(),
            "a vote is cast once, before a leader is known: {:?}",
            self.state
        );
        let state = ElectionState {
            voted_id: Some(candidate_id),
            ..self.state
        };
        self.persist(storage, state)?;
        self.high_watermark = None;
        self.role = RoleState::Voted {
            election_deadline: now + self.random_election_timeout(),
        };
        Ok(())
    }

    fn become_follower(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
        epoch: i32,
        leader_id: i32,
    ) -> Result<(), QuorumError> {
        assert_ne!(
            leader_id, self.config.node_id,
            "a node does not follow itself"
        );
        assert!(epoch >= self.state.epoch, "following an older epoch");
        let same_epoch = epoch == self.state.epoch;
        if same_epoch {
            assert!(
                self.role() != Role::Leader,
                "the leader of epoch {epoch} cannot follow {leader_id} in it"
            );
        }
        let state = ElectionState {
            epoch,
            voted_id: if same_epoch {
                self.state.voted_id
            } else {
                None
            },
            leader_id: Some(leader_id),
        };
        self.persist(storage, state)?;
        if !same_epoch {
            self.high_watermark = None;
        }
        self.role = RoleState::Follower(FollowerState {
            leader_id,
            fetch_deadline: now + self.fetch_timeout(),
            fetch_in_flight: None,
            next_fetch_at: now,
            leader_resigned: false,
            has_fetched: false,
            snapshot_fetch: None,
        });
        self.maybe_send_fetch(now);
        Ok(())
    }

    /// Starts a pre-vote round in the current epoch (KIP-996): nothing is
    /// persisted; a majority of grants makes this node a candidate.
    fn become_prospective(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
    ) -> Result<(), QuorumError> {
        let deadline = now + self.random_election_timeout();
        self.role = RoleState::Prospective(ElectionRound::new(self.config.node_id, deadline));
        if !matches!(self.state.leader_id, Some(id) if id != self.config.node_id) {
            self.high_watermark = None;
        }
        if self.majority() == 1 {
            return self.become_candidate(storage, now);
        }
        self.send_vote_requests(true);
        Ok(())
    }

    /// The pre-vote round failed or timed out: back to a leader this epoch
    /// still has (another node may still hear it), else a new round.
    fn prospective_lost(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
    ) -> Result<(), QuorumError> {
        match self.state.leader_id {
            Some(leader_id) if leader_id != self.config.node_id => {
                self.become_follower(storage, now, self.state.epoch, leader_id)
            }
            _ => self.become_prospective(storage, now),
        }
    }

    fn become_candidate(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
    ) -> Result<(), QuorumError> {
        let epoch = self
            .state
            .epoch
            .checked_add(1)
            .expect("epoch overflow: 2^31 elections");
        self.persist(
            storage,
            ElectionState {
                epoch,
                voted_id: Some(self.config.node_id),
                leader_id: None,
            },
        )?;
        self.high_watermark = None;
        let deadline = now + self.random_election_timeout();
        self.role = RoleState::Candidate(ElectionRound::new(self.config.node_id, deadline));
        if self.majority() == 1 {
            return self.become_leader(storage, now);
        }
        self.send_vote_requests(false);
        Ok(())
    }

    fn become_leader(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
    ) -> Result<(), QuorumError> {
        let self_id = self.config.node_id;
        assert_eq!(
            self.role(),
            Role::Candidate,
            "only a candidate becomes leader"
        );
        assert!(
            self.log.latest_epoch().unwrap_or(-1) < self.state.epoch,
            "a new leader's log holds no record of its own epoch yet"
        );
        let epoch = self.state.epoch;
        self.persist(
            storage,
            ElectionState {
                leader_id: Some(self_id),
                ..self.state
            },
        )?;
        let RoleState::Candidate(round) = &self.role else {
            unreachable!("checked above");
        };
        let granting: Vec<i32> = round.granted.iter().copied().collect();
        let epoch_start_offset = self.log.log_end_offset();
        let batch = leader_change_batch(self_id, &self.config.voters, &granting, now);
        self.log.append_as_leader(storage, &batch, epoch, now)?;
        let mut leader = LeaderState::new(
            epoch,
            self_id,
            self.config.voters.keys().copied(),
            epoch_start_offset,
            now,
            self.check_quorum_window(),
        );
        leader.on_own_flush(self_id, self.log.synced_offset());
        self.high_watermark = None;
        self.role = RoleState::Leader(Box::new(leader));
        tracing::info!(node = self_id, epoch, epoch_start_offset, "elected leader");
        self.request_flush();
        // BeginQuorumEpoch goes out from the timer, which is due now.
        self.on_timeout(storage, now)?;
        Ok(())
    }

    fn become_resigned(&mut self, now: Instant) {
        assert_eq!(self.role(), Role::Leader, "only a leader resigns");
        self.high_watermark = None;
        self.role = RoleState::Resigned {
            election_deadline: now + self.random_election_timeout(),
            acknowledged: BTreeSet::new(),
            end_quorum_resend_at: now + Duration::from_millis(self.config.request_timeout_ms),
        };
        self.send_end_quorum_epoch(&BTreeSet::new());
    }

    // ----- sending -----

    fn send(&mut self, to: i32, message: RaftMessage) {
        assert!(
            self.outputs.len() < OUTPUTS_MAX,
            "node {}: {} outputs not drained",
            self.config.node_id,
            self.outputs.len()
        );
        self.outputs.push_back(QuorumOutput::Send { to, message });
    }

    fn other_voters(&self) -> Vec<i32> {
        self.config
            .voters
            .keys()
            .copied()
            .filter(|&id| id != self.config.node_id)
            .collect()
    }

    fn send_vote_requests(&mut self, pre_vote: bool) {
        let fields = VoteRequestFields {
            candidate_id: self.config.node_id,
            candidate_epoch: self.state.epoch,
            last_offset_epoch: self.last_log_epoch(),
            last_offset: self.log.log_end_offset(),
            pre_vote,
        };
        for voter in self.other_voters() {
            let request = messages::vote_request(&self.config.cluster_id, voter, fields);
            self.send(voter, RaftMessage::Vote(request));
        }
    }

    fn send_vote_response(&mut self, to: i32, granted: bool) {
        let response = messages::vote_response(messages::VoteResponseFields {
            error_code: error_codes::NONE,
            leader_id: self.state.leader_id,
            leader_epoch: self.state.epoch,
            vote_granted: granted,
        });
        self.send(to, RaftMessage::VoteResponse(response));
    }

    fn send_end_quorum_epoch(&mut self, acknowledged: &BTreeSet<i32>) {
        // Successors: every other voter, as Kafka orders them, most
        // caught up first (by last known log end; here the voter order).
        let successors = self.other_voters();
        for voter in successors.clone() {
            if acknowledged.contains(&voter) {
                continue;
            }
            let request = messages::end_quorum_epoch_request(
                &self.config.cluster_id,
                self.config.node_id,
                self.state.epoch,
                successors.clone(),
            );
            self.send(voter, RaftMessage::EndQuorumEpoch(request));
        }
    }

    fn fetch_fields(&self, error_code: i16) -> FetchResponseFields {
        FetchResponseFields {
            error_code,
            high_watermark: self.high_watermark.unwrap_or(-1),
            diverging_epoch: None,
            leader_id: self.state.leader_id,
            leader_epoch: self.state.epoch,
            records: bytes::Bytes::new(),
            snapshot_id: None,
        }
    }

    fn send_fetch_error(&mut self, to: i32, correlation_id: i32, error_code: i16) {
        self.send(
            to,
            RaftMessage::FetchResponse {
                correlation_id,
                response: messages::fetch_error_response(error_code),
            },
        );
    }

    fn send_fetch_response(&mut self, to: i32, correlation_id: i32, fields: FetchResponseFields) {
        self.send(
            to,
            RaftMessage::FetchResponse {
                correlation_id,
                response: messages::fetch_response(fields),
            },
        );
    }

    /// Answers a valid fetch with the records from its offset.
    fn answer_fetch(
        &mut self,
        storage: &mut dyn Storage,
        to: i32,
        correlation_id: i32,
        fields: FetchRequestFields,
    ) -> Result<(), QuorumError> {
        let max_bytes = u32::try_from(fields.max_bytes)
            .unwrap_or(0)
            .clamp(1, self.config.fetch_max_bytes) as usize;
        let records = if fields.fetch_offset < self.log.log_end_offset() {
            self.log
                .read(storage, fields.fetch_offset, max_bytes, i64::MAX)?
                .records
        } else {
            bytes::Bytes::new()
        };
        let mut response = self.fetch_fields(error_codes::NONE);
        response.records = records;
        self.send_fetch_response(to, correlation_id, response);
        Ok(())
    }

    /// The high watermark moved: answers the parked fetches whose
    /// followers know an older one (KAFKA-14145, KIP-1166).
    fn answer_fetches_behind_high_watermark(
        &mut self,
        storage: &mut dyn Storage,
        now: Instant,
    ) -> Result<(), QuorumError> {
        self.answer_parked_fetches(storage, now, |parked, hw| parked.fields.high_watermark < hw)
    }

    /// Answers the parked fetches `due` selects (given the high watermark).
    fn answer_parked_fetches(
        &mut self,
        storage: &mut dyn Storage,
        _now: Instant,
        due: impl Fn(&ParkedFetch, i64) -> bool,
    ) -> Result<(), QuorumError> {
        let high_watermark = self.high_watermark.unwrap_or(-1);
        let RoleState::Leader(leader) = &mut self.role else {
            return Ok(());
        };
        let due_ids: Vec<i32> = leader
            .parked
            .iter()
            .filter(|(_, parked)| due(parked, high_watermark))
            .map(|(&id, _)| id)
            .collect();
        let mut answers = Vec::with_capacity(due_ids.len());
        for id in due_ids {
            let parked = leader.parked.remove(&id).expect("listed above");
            answers.push((id, parked));
        }
        for (id, parked) in answers {
            self.answer_fetch(storage, id, parked.correlation_id, parked.fields)?;
        }
        Ok(())
    }

    /// Sends the follower's next fetch if none is out, the backoff is over
    /// and the log is durable (the fetch offset is the replicated offset).
    /// An observer's question "who leads?": a fetch to the next voter. A
    /// voter that is not the leader answers with the leader it knows; the
    /// leader answers with its epoch; either way `observe_epoch` follows it.
    fn send_discovery_fetch(&mut self) {
        debug_assert!(self.is_observer(), "voters find leaders by election");
        let voters: Vec<i32> = self.config.voters.keys().copied().collect();
        let target = voters[self.discovery_index % voters.len()];
        self.discovery_index = self.discovery_index.wrapping_add(1);
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let fields = FetchRequestFields {
            replica_id: self.config.node_id,
            current_leader_epoch: self.state.epoch,
            fetch_offset: self.log.log_end_offset(),
            last_fetched_epoch: self.last_log_epoch(),
            high_watermark: self.high_watermark.unwrap_or(-1),
            max_bytes: i32::try_from(self.config.fetch_max_bytes).unwrap_or(i32::MAX),
            max_wait_ms: 0,
        };
        let request = messages::fetch_request(&self.config.cluster_id, fields);
        self.send(
            target,
            RaftMessage::Fetch {
                correlation_id,
                request,
            },
        );
    }

    fn maybe_send_fetch(&mut self, now: Instant) {
        let log_synced = self.log_is_synced();
        let fetch_offset = self.log.log_end_offset();
        let last_fetched_epoch = self.last_log_epoch();
        let high_watermark = self.high_watermark.unwrap_or(-1);
        let retry_at = now + Duration::from_millis(self.config.request_timeout_ms);
        let correlation_id = self.next_correlation_id;
        let snapshot_flushing = self.snapshot_flush.is_some();
        let RoleState::Follower(follower) = &mut self.role else {
            return;
        };
        if follower.fetch_in_flight.is_some()
            || now < follower.next_fetch_at
            || !log_synced
            || snapshot_flushing
        {
            return;
        }
        follower.fetch_in_flight = Some((correlation_id, retry_at));
        let leader_id = follower.leader_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        if let Some(fetch) = follower.snapshot_fetch {
            let fields = FetchSnapshotRequestFields {
                replica_id: self.config.node_id,
                current_leader_epoch: self.state.epoch,
                snapshot_id: (fetch.id.end_offset, fetch.id.epoch),
                position: fetch.position,
                max_bytes: i32::try_from(self.config.fetch_snapshot_max_bytes).unwrap_or(i32::MAX),
            };
            let request = messages::fetch_snapshot_request(&self.config.cluster_id, fields);
            self.send(
                leader_id,
                RaftMessage::FetchSnapshot {
                    correlation_id,
                    request,
                },
            );
            return;
        }
        let fields = FetchRequestFields {
            replica_id: self.config.node_id,
            current_leader_epoch: self.state.epoch,
            fetch_offset,
            last_fetched_epoch,
            high_watermark,
            max_bytes: i32::try_from(self.config.fetch_max_bytes).unwrap_or(i32::MAX),
            max_wait_ms: i32::try_from(self.config.fetch_max_wait_ms).unwrap_or(i32::MAX),
        };
        let request = messages::fetch_request(&self.config.cluster_id, fields);
        self.send(
            leader_id,
            RaftMessage::Fetch {
                correlation_id,
                request,
            },
        );
    }

    // ----- durability -----

    fn log_is_synced(&self) -> bool {
        self.log.synced_offset() == self.log.log_end_offset()
    }

    /// Asks the driver to flush what is unsynced, one flush at a time.
    fn request_flush(&mut self) {
        if self.flush_in_flight.is_some() {
            return;
        }
        let paths = self.log.unsynced_paths();
        if paths.is_empty() && self.log_is_synced() {
            return;
        }
        let log_end_offset = self.log.log_end_offset();
        self.flush_in_flight = Some(FlushInFlight {
            log_end_offset,
            capped_at: log_end_offset,
        });
        assert!(self.outputs.len() < OUTPUTS_MAX, "outputs not drained");
        self.outputs.push_back(QuorumOutput::Flush {
            paths,
            log_end_offset,
        });
    }

    /// The leader's own durable end moved: maybe commit, wake fetches.
    fn after_progress(&mut self, _now: Instant) {
        if let RoleState::Leader(leader) = &mut self.role {
            if leader.maybe_advance_high_watermark(self.config.commit_prior_epoch)
                || leader.high_watermark != self.high_watermark
            {
                self.high_watermark = leader.high_watermark;
            }
        }
    }

    // ----- helpers -----

    fn majority(&self) -> usize {
        self.config.voters.len() / 2 + 1
    }

    fn fetch_timeout(&self) -> Duration {
        Duration::from_millis(self.config.fetch_timeout_ms)
    }

    fn check_quorum_window(&self) -> Duration {
        Duration::from_millis(self.config.fetch_timeout_ms * 3 / 2)
    }

    fn random_election_timeout(&mut self) -> Duration {
        let jitter_ms = self.rng.gen_range(0..=self.config.election_backoff_max_ms);
        Duration::from_millis(self.config.election_timeout_ms + jitter_ms)
    }

    /// A leader this node heard from within the fetch timeout, or itself.
    fn has_live_leader(&self, now: Instant) -> bool {
        match &self.role {
            RoleState::Leader(_) => true,
            RoleState::Follower(follower) => {
                follower.has_fetched && !follower.leader_resigned && now < follower.fetch_deadline
            }
            _ => false,
        }
    }

    /// Panics with a reason when the node's state is inconsistent.
    pub fn check_invariants(&self) {
        let self_id = self.config.node_id;
        self.state.check_invariants();
        assert_eq!(
            self.state,
            self.store.persisted(),
            "node {self_id}: election state in memory differs from the persisted one"
        );
        self.log.check_invariants();
        let log_end_offset = self.log.log_end_offset();
        if let Some(high_watermark) = self.high_watermark {
            assert!(
                (0..=log_end_offset).contains(&high_watermark),
                "node {self_id}: high watermark {high_watermark} outside [0, {log_end_offset}]"
            );
        }
        let last_log_epoch = self.last_log_epoch();
        assert!(
            last_log_epoch <= self.state.epoch,
            "node {self_id}: log holds epoch {last_log_epoch} beyond the current {}",
            self.state.epoch
        );
        if let Some(in_flight) = self.flush_in_flight {
            assert!(
                in_flight.capped_at <= in_flight.log_end_offset,
                "flush cap beyond its log end"
            );
        }
        assert!(self.outputs.len() <= OUTPUTS_MAX, "outputs bounded");
        // KIP-630: log start <= the earliest snapshot, and a non-zero log
        // start has a snapshot exactly there.
        let log_start = self.log.log_start_offset();
        if let Some(earliest) = self.snapshots.first() {
            assert!(
                log_start <= earliest.end_offset,
                "node {self_id}: snapshot {earliest:?} below the log start {log_start}"
            );
        }
        assert!(
            log_start == 0 || self.snapshot_at_log_start().is_some(),
            "node {self_id}: log start {log_start} without a snapshot there"
        );
        if let Some(latest) = self.latest_snapshot() {
            assert!(
                latest.end_offset <= log_end_offset,
                "node {self_id}: snapshot {latest:?} beyond the log end {log_end_offset}"
            );
        }
        if let RoleState::Follower(follower) = &self.role {
            if let Some(fetch) = follower.snapshot_fetch {
                assert!(
                    fetch.position >= 0 && fetch.id.end_offset > log_start,
                    "node {self_id}: snapshot fetch {fetch:?} not ahead of log start {log_start}"
                );
            }
        }
        let state = self.state;
        match &self.role {
            RoleState::Unattached { .. } => assert!(
                state.voted_id.is_none() && state.leader_id.is_none(),
                "node {self_id}: unattached with {state:?}"
            ),
            RoleState::Voted { .. } => assert!(
                state.voted_id.is_some() && state.leader_id.is_none(),
                "node {self_id}: voted with {state:?}"
            ),
            RoleState::Prospective(round) => {
                assert!(
                    round.granted.contains(&self_id),
                    "a prospective grants itself"
                );
            }
            RoleState::Candidate(round) => {
                assert!(
                    state.voted_id == Some(self_id) && state.leader_id.is_none(),
                    "node {self_id}: candidate with {state:?}"
                );
                assert!(
                    round.granted.contains(&self_id),
                    "a candidate votes for itself"
                );
                assert!(
                    round.granted.len() < self.majority(),
                    "a candidate with a majority is leader"
                );
            }
            RoleState::Leader(leader) => {
                assert!(
                    state.voted_id == Some(self_id) && state.leader_id == Some(self_id),
                    "node {self_id}: leader with {state:?}"
                );
                assert_eq!(
                    leader.epoch, state.epoch,
                    "leader state is of the current epoch"
                );
                assert_eq!(
                    self.log.latest_epoch(),
                    Some(state.epoch),
                    "a leader's log ends in its own epoch"
                );
                assert_eq!(
                    leader.high_watermark, self.high_watermark,
                    "node {self_id}: leader high watermark mirrors"
                );
                if let Some(high_watermark) = leader.high_watermark {
                    assert!(
                        self.config.commit_prior_epoch || high_watermark > leader.epoch_start_offset,
                        "node {self_id}: committed {high_watermark} without its epoch's first record at {}",
                        leader.epoch_start_offset
                    );
                }
                leader.check_invariants(self_id, log_end_offset);
            }
            RoleState::Follower(follower) => {
                assert_eq!(
                    state.leader_id,
                    Some(follower.leader_id),
                    "node {self_id}: follows the persisted leader"
                );
                assert_ne!(follower.leader_id, self_id, "a node never follows itself");
            }
            RoleState::Resigned { .. } => assert_eq!(
                state.leader_id,
                Some(self_id),
                "node {self_id}: resigned from an epoch it did not lead"
            ),
        }
    }
}

/// Where a follower's fetch stands against the leader's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FetchPosition {
    Valid,
    Diverging((i32, i64)),
    Snapshot(SnapshotId),
}

/// The leader's first record of its epoch: a LeaderChange control batch
/// (key: control record version 0, type 2), as Kafka writes it.
fn leader_change_batch(
    leader_id: i32,
    voters: &BTreeMap<i32, VoterEndpoint>,
    granting: &[i32],
    now: Instant,
) -> Vec<u8> {
    const CONTROL_KEY_LEADER_CHANGE: [u8; 4] = [0, 0, 0, 2];
    const ATTRIBUTES_AT: usize = 21;
    const CRC_AT: usize = 17;
    const CONTROL_ATTRIBUTE: i16 = 0x20;
    let voter = |id: &i32| leader_change_message::Voter::default().with_voter_id(*id);
    let message = LeaderChangeMessage::default()
        .with_version(0)
        .with_leader_id(BrokerId(leader_id))
        .with_voters(voters.keys().map(voter).collect())
        .with_granting_voters(granting.iter().map(voter).collect());
    let mut value = bytes::BytesMut::new();
    message
        .encode(&mut value, 0)
        .expect("LeaderChangeMessage v0 encodes");
    let mut batch = build_batch(
        &[(Some(&CONTROL_KEY_LEADER_CHANGE), Some(&value))],
        now.unix_millis(),
    );
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&CONTROL_ATTRIBUTE.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    debug_assert!(
        crate::batch::validate_batch(&batch, u32::MAX).is_ok_and(|h| h.is_control()),
        "a valid control batch"
    );
    batch
}

#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;
