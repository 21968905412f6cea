//! What goes into a node and what comes out of it.

use crate::storage::StorageError;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};

/// A client connection, numbered by the driver. Responses on one connection
/// leave in the order its requests arrived, as Kafka guarantees.
pub type ConnectionId = u64;

/// Identifies one `Output::Flush` and its completion.
pub type FlushId = u64;

/// Another node of the cluster, by `node.id`.
pub type PeerId = i32;

/// Which of a peer's connections a request travels on. Each channel is its
/// own connection (as Kafka keeps separate network clients for the quorum,
/// the controller channel and each replica fetcher): answers come back in
/// order per connection, so a long-polled fetch must not hold up a
/// heartbeat behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerChannel {
    /// KRaft RPCs between voters.
    Quorum,
    /// Broker to active controller: registration, heartbeats,
    /// AlterPartition, forwarded admin requests.
    Controller,
    /// Replica fetches from partition leaders.
    Replication,
}

/// Where a peer listens, as `--voters` or its registration names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerAddress {
    pub host: String,
    pub port: u16,
}

// Requests and responses dwarf the other variants; boxing them would cost an
// allocation per request for no gain, since each value is moved once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Input {
    /// A decoded request from a client connection.
    Request {
        connection: ConnectionId,
        header: RequestHeader,
        body: RequestKind,
    },
    /// The connection is gone: forget its queued responses and waiters.
    ConnectionClosed { connection: ConnectionId },
    /// The driver synced every path of the flush with this id.
    FlushCompleted { flush_id: FlushId },
    /// The sync failed (a full or failing disk).
    FlushFailed {
        flush_id: FlushId,
        error: StorageError,
    },
    /// The answer to an `Output::PeerRequest` this node sent to `from`,
    /// decoded at the request's api key and version.
    PeerResponse {
        from: PeerId,
        correlation_id: i32,
        body: ResponseKind,
    },
    /// A connection to `peer` broke (or could not be made): every request
    /// sent to it and not yet answered is lost, on every channel (a driver
    /// closes the peer's other connections too). The node retries what it
    /// still needs; the driver reconnects on the next `PeerRequest`.
    PeerUnreachable { peer: PeerId },
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Output {
    /// A response to send on `connection`, encoded at `api_version` with the
    /// response header version that `api_key` prescribes.
    Response {
        connection: ConnectionId,
        correlation_id: i32,
        api_key: ApiKey,
        api_version: i16,
        body: ResponseKind,
    },
    /// Sync these paths of the node's storage, then report
    /// `Input::FlushCompleted { flush_id }`.
    Flush {
        flush_id: FlushId,
        paths: Vec<String>,
    },
    /// Close the connection (a protocol violation by the peer).
    CloseConnection {
        connection: ConnectionId,
        reason: String,
    },
    /// Send a Kafka request to another node of the cluster (a Raft RPC, a
    /// replica fetch, a request to the active controller). The driver keeps
    /// one connection per (peer, channel), sends requests on it in order,
    /// and hands
    /// each answer back as `Input::PeerResponse` with the header's
    /// correlation id (decode it with the header's api key and version), or
    /// reports `Input::PeerUnreachable` when the connection breaks.
    PeerRequest {
        to: PeerId,
        channel: PeerChannel,
        address: PeerAddress,
        header: RequestHeader,
        body: RequestKind,
    },
}
