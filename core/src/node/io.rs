//! What goes into a node and what comes out of it.

use crate::storage::StorageError;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};

/// A client connection, numbered by the driver. Responses on one connection
/// leave in the order its requests arrived, as Kafka guarantees.
pub type ConnectionId = u64;

/// Identifies one `Output::Flush` and its completion.
pub type FlushId = u64;

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
}
