//! Requests this node sends to other nodes, and what each answer is for.
//!
//! Every outbound request gets a node-wide correlation id and a
//! [`Purpose`]; the answer (or the loss of the connection, or a timeout) is
//! routed back by it. The table is bounded: a node that cannot reach its
//! peers stops asking rather than queueing without end.

use super::super::io::{Output, PeerAddress, PeerChannel, PeerId};
use crate::time::Instant;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Requests in flight to all peers at once.
pub const PEER_REQUESTS_IN_FLIGHT_MAX: usize = 4096;

/// The api version this node speaks for each inter-node request. Fetch 17
/// names topics by id and carries the replica state (KIP-903); 18 adds the
/// high watermark the fetching replica knows (KIP-1166), which a KRaft
/// leader needs to answer a parked fetch as soon as a commit is news to it.
pub fn peer_api_version(key: ApiKey) -> i16 {
    match key {
        ApiKey::Fetch => 18,
        ApiKey::Vote => 2,
        ApiKey::BeginQuorumEpoch => 1,
        ApiKey::EndQuorumEpoch => 1,
        ApiKey::FetchSnapshot => 1,
        ApiKey::BrokerRegistration => 4,
        ApiKey::BrokerHeartbeat => 1,
        ApiKey::AlterPartition => 3,
        ApiKey::AllocateProducerIds => 0,
        ApiKey::CreateTopics => 7,
        ApiKey::DeleteTopics => 6,
        ApiKey::CreatePartitions => 3,
        ApiKey::ElectLeaders => 2,
        ApiKey::AlterPartitionReassignments => 0,
        ApiKey::ListPartitionReassignments => 0,
        ApiKey::AlterConfigs => 2,
        ApiKey::IncrementalAlterConfigs => 1,
        other => panic!("{other:?} is not an inter-node request"),
    }
}

/// The client id peers send; a request carrying it comes from a node, not
/// from a client (a forwarded CreateTopics is handled, never forwarded on).
pub const PEER_CLIENT_ID_PREFIX: &str = "seedlog-node-";

/// What an answer is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// A KRaft RPC; for Fetch, the correlation id the quorum gave it.
    Raft { quorum_correlation_id: Option<i32> },
    /// A request to the active controller; the answer goes to
    /// `ControllerCall`.
    Controller(super::controller_host::ControllerCall),
    /// A replica fetch to the leader `PeerId`.
    ReplicaFetch,
}

impl Purpose {
    pub fn channel(&self) -> PeerChannel {
        match self {
            Purpose::Raft { .. } => PeerChannel::Quorum,
            Purpose::Controller(_) => PeerChannel::Controller,
            Purpose::ReplicaFetch => PeerChannel::Replication,
        }
    }
}

#[derive(Debug)]
struct InFlight {
    to: PeerId,
    purpose: Purpose,
    deadline: Instant,
}

#[derive(Debug, Default)]
pub struct Peers {
    next_correlation_id: i32,
    in_flight: BTreeMap<i32, InFlight>,
    /// The client id of `self_id`'s requests, formatted once: a string per
    /// request was a percent of a cluster run. Keyed by the id it names.
    client_id: Option<(PeerId, StrBytes)>,
}

impl Peers {
    /// `seedlog-node-{self_id}`, shared (a `StrBytes` clone is a count).
    fn client_id(&mut self, self_id: PeerId) -> StrBytes {
        match &self.client_id {
            Some((id, text)) if *id == self_id => text.clone(),
            _ => {
                let text = StrBytes::from_string(format!("{PEER_CLIENT_ID_PREFIX}{self_id}"));
                self.client_id = Some((self_id, text.clone()));
                text
            }
        }
    }

    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }

    /// Queues a request; `None` when the in-flight bound is reached (the
    /// caller retries on its own timer).
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        outputs: &mut VecDeque<Output>,
        self_id: PeerId,
        to: PeerId,
        address: PeerAddress,
        body: RequestKind,
        purpose: Purpose,
        deadline: Instant,
    ) -> Option<i32> {
        assert_ne!(to, self_id, "a node does not send requests to itself");
        if self.in_flight.len() >= PEER_REQUESTS_IN_FLIGHT_MAX {
            tracing::warn!(to, "peer request table full; request dropped");
            return None;
        }
        let key = request_api_key(&body);
        let channel = purpose.channel();
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1).max(0);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(peer_api_version(key))
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id(self_id)));
        tracing::trace!(self_id, to, correlation_id, ?key, ?purpose, "peer request");
        let previous = self.in_flight.insert(
            correlation_id,
            InFlight {
                to,
                purpose,
                deadline,
            },
        );
        assert!(
            previous.is_none(),
            "correlation ids are not reused in flight"
        );
        outputs.push_back(Output::PeerRequest {
            to,
            channel,
            address,
            header,
            body,
        });
        Some(correlation_id)
    }

    /// The purpose of the answer `correlation_id` from `from`, if it is
    /// still awaited.
    pub fn take(&mut self, from: PeerId, correlation_id: i32) -> Option<Purpose> {
        match self.in_flight.get(&correlation_id) {
            Some(f) if f.to == from => self.in_flight.remove(&correlation_id).map(|f| f.purpose),
            _ => None,
        }
    }

    /// Forgets every request to `peer`; returns their purposes.
    pub fn drop_peer(&mut self, peer: PeerId) -> Vec<Purpose> {
        let ids: Vec<i32> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.to == peer)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.in_flight.remove(&id))
            .map(|f| f.purpose)
            .collect()
    }

    /// Forgets requests whose deadline passed; returns (peer, purpose).
    pub fn expire(&mut self, now: Instant) -> Vec<(PeerId, Purpose)> {
        // Nearly always nothing expired: no lists built (this runs after
        // every input).
        if self.in_flight.values().all(|f| f.deadline > now) {
            return Vec::new();
        }
        let ids: Vec<i32> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.in_flight.remove(&id))
            .map(|f| (f.to, f.purpose))
            .collect()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.in_flight.values().map(|f| f.deadline).min()
    }
}

pub fn deadline(now: Instant, timeout_ms: u64) -> Instant {
    now + Duration::from_millis(timeout_ms)
}

fn request_api_key(body: &RequestKind) -> ApiKey {
    match body {
        RequestKind::Fetch(_) => ApiKey::Fetch,
        RequestKind::Vote(_) => ApiKey::Vote,
        RequestKind::BeginQuorumEpoch(_) => ApiKey::BeginQuorumEpoch,
        RequestKind::EndQuorumEpoch(_) => ApiKey::EndQuorumEpoch,
        RequestKind::FetchSnapshot(_) => ApiKey::FetchSnapshot,
        RequestKind::BrokerRegistration(_) => ApiKey::BrokerRegistration,
        RequestKind::BrokerHeartbeat(_) => ApiKey::BrokerHeartbeat,
        RequestKind::AlterPartition(_) => ApiKey::AlterPartition,
        RequestKind::AllocateProducerIds(_) => ApiKey::AllocateProducerIds,
        RequestKind::CreateTopics(_) => ApiKey::CreateTopics,
        RequestKind::DeleteTopics(_) => ApiKey::DeleteTopics,
        RequestKind::CreatePartitions(_) => ApiKey::CreatePartitions,
        RequestKind::ElectLeaders(_) => ApiKey::ElectLeaders,
        RequestKind::AlterPartitionReassignments(_) => ApiKey::AlterPartitionReassignments,
        RequestKind::ListPartitionReassignments(_) => ApiKey::ListPartitionReassignments,
        RequestKind::AlterConfigs(_) => ApiKey::AlterConfigs,
        RequestKind::IncrementalAlterConfigs(_) => ApiKey::IncrementalAlterConfigs,
        other => panic!("not an inter-node request: {other:?}"),
    }
}
