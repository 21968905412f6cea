//! The roles a voter moves through (Kafka's `QuorumState` and its
//! `*State` classes, KIP-595 with KIP-996 pre-vote):
//!
//! ```text
//!   Unattached --(election timeout)--> Prospective --(majority pre-votes)--> Candidate
//!   Voted      --(election timeout)--> Prospective      (epoch + 1, votes for itself)
//!   Follower   --(fetch timeout)-----> Prospective
//!   Candidate  --(majority votes)----> Leader --(check-quorum fails)--> Resigned
//!   Candidate  --(election timeout)--> Prospective
//!   Resigned   --(election timeout)--> Prospective
//!   any        --(higher epoch seen)-> Unattached, or Follower when the leader is named
//! ```
//!
//! Epoch, vote and leader live in the durable [`ElectionState`]; the role
//! and its timers live here, in memory only.
//!
//! [`ElectionState`]: super::election_store::ElectionState

use super::leader::LeaderState;
use crate::time::Instant;
use std::collections::BTreeSet;

/// The role a node plays in its current epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Knows no leader and has not voted in this epoch.
    Unattached,
    /// Has voted for a candidate of this epoch.
    Voted,
    /// Asks for pre-votes before bumping the epoch (KIP-996).
    Prospective,
    /// Has bumped the epoch, voted for itself and asks for votes.
    Candidate,
    Leader,
    Follower,
    /// Was leader of this epoch and gave it up; waits for a successor.
    Resigned,
}

/// The votes (or pre-votes) of one election round.
#[derive(Debug, Clone)]
pub(crate) struct ElectionRound {
    pub(crate) granted: BTreeSet<i32>,
    pub(crate) rejected: BTreeSet<i32>,
    pub(crate) election_deadline: Instant,
}

impl ElectionRound {
    /// A round in which `self_id` already votes for itself.
    pub(crate) fn new(self_id: i32, election_deadline: Instant) -> ElectionRound {
        ElectionRound {
            granted: BTreeSet::from([self_id]),
            rejected: BTreeSet::new(),
            election_deadline,
        }
    }

    /// Records one answer; a voter's first answer in a round counts.
    pub(crate) fn record(&mut self, voter_id: i32, granted: bool) {
        if self.granted.contains(&voter_id) || self.rejected.contains(&voter_id) {
            return;
        }
        if granted {
            self.granted.insert(voter_id);
        } else {
            self.rejected.insert(voter_id);
        }
    }
}

/// A follower's view of its leader and of its own fetch.
#[derive(Debug, Clone)]
pub(crate) struct FollowerState {
    pub(crate) leader_id: i32,
    /// The leader counts as lost unless a fetch succeeds before this.
    pub(crate) fetch_deadline: Instant,
    /// The fetch waiting for an answer: `(correlation id, retry at)`; a
    /// fetch unanswered by then counts as lost and is sent again.
    pub(crate) fetch_in_flight: Option<(i32, Instant)>,
    /// No fetch leaves before this (backoff after an error).
    pub(crate) next_fetch_at: Instant,
    /// The leader sent EndQuorumEpoch: grant pre-votes, elect soon.
    pub(crate) leader_resigned: bool,
    /// A fetch succeeded since this node (re)turned to following: only
    /// then does it reject pre-votes for having a live leader (Kafka's
    /// `hasFetchedFromLeader`). A follower back from a failed pre-vote
    /// round has not, and must not block the others' rounds.
    pub(crate) has_fetched: bool,
    /// The leader's snapshot being copied (KIP-630): no Fetch leaves
    /// until it is whole, synced and installed.
    pub(crate) snapshot_fetch: Option<SnapshotFetch>,
}

impl FollowerState {
    /// Takes an answer to the request in flight (Fetch or FetchSnapshot):
    /// true only if it is the awaited one, from the leader followed, in
    /// `epoch`; the request then counts as answered. Anything else is a
    /// late answer to a request given up on, and changes nothing.
    pub(crate) fn take_awaited_answer(
        &mut self,
        from: i32,
        correlation_id: i32,
        leader_epoch: i32,
        epoch: i32,
    ) -> bool {
        let awaited = self.fetch_in_flight.map(|(id, _)| id) == Some(correlation_id);
        if !awaited || from != self.leader_id || leader_epoch != epoch {
            return false;
        }
        self.fetch_in_flight = None;
        true
    }
}

/// A snapshot copy in progress: the next byte to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotFetch {
    pub(crate) id: super::SnapshotId,
    pub(crate) position: i64,
}

/// The role with its timers and per-role bookkeeping.
#[derive(Debug)]
pub(crate) enum RoleState {
    Unattached {
        election_deadline: Instant,
    },
    Voted {
        election_deadline: Instant,
    },
    Prospective(ElectionRound),
    Candidate(ElectionRound),
    Leader(Box<LeaderState>),
    Follower(FollowerState),
    Resigned {
        election_deadline: Instant,
        /// Voters that acknowledged the EndQuorumEpoch.
        acknowledged: BTreeSet<i32>,
        end_quorum_resend_at: Instant,
    },
}

impl RoleState {
    pub(crate) fn role(&self) -> Role {
        match self {
            RoleState::Unattached { .. } => Role::Unattached,
            RoleState::Voted { .. } => Role::Voted,
            RoleState::Prospective(_) => Role::Prospective,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
            RoleState::Follower(_) => Role::Follower,
            RoleState::Resigned { .. } => Role::Resigned,
        }
    }

    /// The earliest instant at which this role has something to do.
    pub(crate) fn next_deadline(&self, log_synced: bool) -> Instant {
        match self {
            RoleState::Unattached { election_deadline }
            | RoleState::Voted { election_deadline } => *election_deadline,
            RoleState::Prospective(round) | RoleState::Candidate(round) => round.election_deadline,
            RoleState::Leader(leader) => leader.next_deadline(),
            RoleState::Follower(follower) => {
                let mut deadline = follower.fetch_deadline;
                match follower.fetch_in_flight {
                    Some((_, retry_at)) => deadline = deadline.min(retry_at),
                    // A follower reports its log end only once it is
                    // durable: no fetch leaves while a flush is pending.
                    None if log_synced => deadline = deadline.min(follower.next_fetch_at),
                    None => {}
                }
                deadline
            }
            RoleState::Resigned {
                election_deadline,
                end_quorum_resend_at,
                ..
            } => (*election_deadline).min(*end_quorum_resend_at),
        }
    }
}
