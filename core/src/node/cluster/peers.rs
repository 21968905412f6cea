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
use std::collections::{BTreeMap, BTreeSet, VecDeque};
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
    /// `in_flight` by deadline: a node of a large cluster has a fetch in
    /// flight to each of ~100 leaders, and the next deadline and the
    /// expired requests are asked for after every input (walking the table
    /// for both was ~2% of a 100-broker simulation).
    by_deadline: BTreeSet<(Instant, i32)>,
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
        self.by_deadline.insert((deadline, correlation_id));
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
            Some(f) if f.to == from => Some(self.remove(correlation_id).purpose),
            _ => None,
        }
    }

    fn remove(&mut self, correlation_id: i32) -> InFlight {
        let f = self
            .in_flight
            .remove(&correlation_id)
            .expect("a request in flight");
        let indexed = self.by_deadline.remove(&(f.deadline, correlation_id));
        assert!(indexed, "every request in flight is indexed by deadline");
        f
    }

    /// Forgets every request to `peer`; returns their purposes.
    pub fn drop_peer(&mut self, peer: PeerId) -> Vec<Purpose> {
        let ids: Vec<i32> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.to == peer)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter().map(|id| self.remove(id).purpose).collect()
    }

    /// Forgets requests whose deadline passed; returns (peer, purpose).
    pub fn expire(&mut self, now: Instant) -> Vec<(PeerId, Purpose)> {
        // Nearly always nothing expired: no lists built (this runs after
        // every input).
        if self.next_deadline().is_none_or(|first| first > now) {
            return Vec::new();
        }
        let mut ids: Vec<i32> = self
            .by_deadline
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, id)| *id)
            .collect();
        // Routed in correlation-id order, the table's, as before the index.
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| self.remove(id))
            .map(|f| (f.to, f.purpose))
            .collect()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(deadline, _)| *deadline)
    }

    pub fn check_invariants(&self) {
        assert!(self.in_flight.len() <= PEER_REQUESTS_IN_FLIGHT_MAX);
        assert_eq!(
            self.in_flight.len(),
            self.by_deadline.len(),
            "the deadline index holds the requests in flight"
        );
        debug_assert!(self.by_deadline.iter().all(|(deadline, id)| self
            .in_flight
            .get(id)
            .is_some_and(|f| f.deadline == *deadline)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::BrokerHeartbeatRequest;

    fn send(
        peers: &mut Peers,
        outputs: &mut VecDeque<Output>,
        to: PeerId,
        deadline_ms: u64,
    ) -> i32 {
        let address = PeerAddress {
            host: "127.0.0.1".into(),
            port: 9092,
        };
        let body = RequestKind::BrokerHeartbeat(BrokerHeartbeatRequest::default());
        let purpose = Purpose::Raft {
            quorum_correlation_id: None,
        };
        let at = Instant::from_millis(deadline_ms);
        peers
            .send(outputs, 1, to, address, body, purpose, at)
            .expect("room in the table")
    }

    #[test]
    fn requests_expire_by_deadline_in_the_order_sent_and_answers_leave_the_index() {
        let mut peers = Peers::default();
        let mut outputs = VecDeque::new();
        let late = send(&mut peers, &mut outputs, 2, 300);
        let middle = send(&mut peers, &mut outputs, 2, 200);
        let early = send(&mut peers, &mut outputs, 3, 100);
        let answered = send(&mut peers, &mut outputs, 3, 50);
        assert_eq!(peers.next_deadline(), Some(Instant::from_millis(50)));
        assert!(peers.take(3, answered).is_some());
        peers.check_invariants();
        assert_eq!(peers.next_deadline(), Some(Instant::from_millis(100)));
        assert!(peers.expire(Instant::from_millis(99)).is_empty());
        let expired = peers.expire(Instant::from_millis(250));
        assert_eq!(
            expired.iter().map(|(to, _)| *to).collect::<Vec<_>>(),
            vec![2, 3],
            "correlation ids {middle} then {early}, as sent, not by deadline"
        );
        assert!(middle < early);
        peers.check_invariants();
        assert_eq!(peers.next_deadline(), Some(Instant::from_millis(300)));
        assert_eq!(
            peers.drop_peer(2).len(),
            1,
            "request {late} goes with its peer"
        );
        assert_eq!(peers.next_deadline(), None);
        peers.check_invariants();
    }
}
