//! A node as one member of a KRaft cluster: the controller quorum, the
//! active controller, broker registration, the metadata listener that turns
//! committed metadata into leader and follower replicas, and the replica
//! fetcher. Under construction: see the replication issue.

use super::io::PeerId;
use super::Node;
use crate::storage::Storage;

impl<S: Storage> Node<S> {
    pub(super) fn handle_peer_response(
        &mut self,
        from: PeerId,
        correlation_id: i32,
        body: kafka_protocol::messages::ResponseKind,
    ) {
        tracing::debug!(
            from,
            correlation_id,
            ?body,
            "peer response with no cluster wiring yet"
        );
    }

    pub(super) fn handle_peer_unreachable(&mut self, peer: PeerId) {
        tracing::debug!(peer, "peer unreachable");
    }
}
