//! One member of a classic group, as the coordinator knows it.

use bytes::Bytes;

/// A member and the reply it is owed, if any. `R` identifies a parked
/// request (the node's response slot); the coordinator never looks inside.
#[derive(Debug)]
pub struct Member<R> {
    pub member_id: String,
    /// KIP-345 static membership: survives restarts of the client.
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// (protocol name, metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// What the leader assigned in the current generation (opaque bytes).
    pub assignment: Bytes,
    /// A JoinGroup waiting for the rebalance to complete.
    pub awaiting_join: Option<R>,
    /// A SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<R>,
    /// Joined during the current rebalance (not yet given a generation).
    pub is_new: bool,
}

impl<R> Member<R> {
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata)
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.metadata(protocol).is_some()
    }

    /// Whether a rejoin brings the same protocols (names, order and
    /// metadata): if so a Stable group need not rebalance for it.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// The member's vote: its most preferred protocol among `candidates`.
    pub fn vote<'a>(&self, candidates: &[&'a str]) -> Option<&'a str> {
        self.protocols
            .iter()
            .find_map(|(name, _)| candidates.iter().find(|c| **c == name).copied())
    }
}
