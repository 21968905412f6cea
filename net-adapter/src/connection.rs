//! One client connection: a reader that frames and decodes requests and
//! hands them to the node thread, and a writer that sends what the node
//! thread queued for it.
//!
//! Any protocol violation closes the connection with a warning, as Kafka
//! does; nothing a peer sends can panic the broker or leave a task behind.

use crate::framing::{
    decode_request, encode_api_versions_unsupported, read_body, read_length, Decoded,
};
use crate::metrics::Metrics;
use crate::node_thread::NodeMessage;
use crate::response_frame::{write_frame, Frame};
use kafka_protocol::messages::ApiKey;
use seedlog_core::node::ConnectionId;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{debug, warn};

/// The per-connection limits, copied out of `ServerConfig`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub request_bytes_max: usize,
    /// Encoded responses queued for the writer; a client that lets more
    /// pile up is not reading and gets closed.
    pub responses_queued_max: usize,
    /// A connection that completes no request for this long is closed
    /// (Kafka's `connections.max.idle.ms`); also bounds a stalled frame.
    pub idle_timeout: Duration,
    /// How long queued responses may take to leave after the reader stops.
    pub drain_timeout: Duration,
}

/// Shared by all connections: one permit per byte of request frames read
/// and not yet handled by the node, so that many connections each sending
/// a large frame cannot exhaust memory. A reader waits for permits before
/// it reads a body; TCP then pushes back on the client.
pub type RequestMemory = Arc<Semaphore>;

/// Why the reader stopped; logged once.
enum Ending {
    ClientClosed,
    ClosedByBroker,
    NodeGone,
    Idle,
    Violation(String),
}

/// Serves one connection until either side closes it.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    connection: ConnectionId,
    node: mpsc::Sender<NodeMessage>,
    limits: ConnectionLimits,
    memory: RequestMemory,
    metrics: Metrics,
) {
    metrics.connection_opened();
    serve_counted(stream, peer, connection, node, limits, memory, &metrics).await;
    metrics.connection_closed();
}

async fn serve_counted(
    stream: TcpStream,
    peer: SocketAddr,
    connection: ConnectionId,
    node: mpsc::Sender<NodeMessage>,
    limits: ConnectionLimits,
    memory: RequestMemory,
    metrics: &Metrics,
) {
    assert!(
        limits.responses_queued_max > 0,
        "a connection must be able to queue a response"
    );
    let (reader, writer) = stream.into_split();
    let (responses_tx, responses_rx) = mpsc::channel(limits.responses_queued_max);
    let (close_tx, close_rx) = oneshot::channel();
    let open = NodeMessage::Open {
        connection,
        responses: responses_tx,
        close: close_tx,
    };
    if node.send(open).await.is_err() {
        return; // Shutting down.
    }
    debug!(connection, %peer, "connection opened");
    let writer = tokio::spawn(write_loop(writer, responses_rx, connection));

    let ending = read_loop(
        reader, connection, &node, limits, &memory, close_rx, metrics,
    )
    .await;
    match &ending {
        Ending::ClientClosed => debug!(connection, %peer, "client closed the connection"),
        Ending::ClosedByBroker => debug!(connection, %peer, "connection closed by the broker"),
        Ending::NodeGone => debug!(connection, %peer, "node stopped; connection closed"),
        Ending::Idle => debug!(connection, %peer, "idle connection closed"),
        Ending::Violation(reason) => warn!(connection, %peer, %reason, "closing connection"),
    }
    // The node drops the writer's queue when it handles `Closed`; the
    // writer then sends what is queued and ends, which closes the socket.
    let _ = node.send(NodeMessage::Closed { connection }).await;
    let abort = writer.abort_handle();
    if tokio::time::timeout(limits.drain_timeout, writer)
        .await
        .is_err()
    {
        debug!(connection, "responses did not drain in time; dropping them");
        abort.abort();
    }
}

async fn read_loop(
    mut reader: OwnedReadHalf,
    connection: ConnectionId,
    node: &mpsc::Sender<NodeMessage>,
    limits: ConnectionLimits,
    memory: &RequestMemory,
    mut close: oneshot::Receiver<()>,
    metrics: &Metrics,
) -> Ending {
    loop {
        let read = tokio::select! {
            biased;
            _ = &mut close => return Ending::ClosedByBroker,
            read = tokio::time::timeout(limits.idle_timeout, read_length(&mut reader, limits.request_bytes_max)) => read,
        };
        let length_bytes = match read {
            Err(_elapsed) => return Ending::Idle,
            Ok(Ok(Some(length_bytes))) => length_bytes,
            Ok(Ok(None)) => return Ending::ClientClosed,
            Ok(Err(e)) => return Ending::Violation(e.to_string()),
        };
        let permits = u32::try_from(length_bytes)
            .expect("request_bytes_max fits u32: checked by ServerConfig");
        let permit = tokio::select! {
            biased;
            _ = &mut close => return Ending::ClosedByBroker,
            permit = memory.clone().acquire_many_owned(permits) => match permit {
                Ok(permit) => permit,
                Err(_closed) => return Ending::NodeGone,
            },
        };
        let read = tokio::select! {
            biased;
            _ = &mut close => return Ending::ClosedByBroker,
            read = tokio::time::timeout(limits.idle_timeout, read_body(&mut reader, length_bytes)) => read,
        };
        let frame = match read {
            Err(_elapsed) => return Ending::Idle,
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => return Ending::Violation(e.to_string()),
        };
        let received = std::time::Instant::now();
        let frame_bytes = 4 + frame.len();
        let message = match decode_request(frame) {
            Ok(Decoded::Request { header, body }) => {
                if let Ok(api_key) = ApiKey::try_from(header.request_api_key) {
                    metrics.request_received(api_key, frame_bytes);
                }
                NodeMessage::Request {
                    connection,
                    header,
                    body,
                    memory: permit,
                    received,
                }
            }
            Ok(Decoded::ApiVersionsUnsupported { correlation_id }) => {
                metrics.request_received(ApiKey::ApiVersions, frame_bytes);
                NodeMessage::Frame {
                    connection,
                    frame: encode_api_versions_unsupported(correlation_id),
                }
            }
            Err(e) => return Ending::Violation(e.to_string()),
        };
        // Waits when the node thread is behind: back-pressure reaches the
        // client through TCP instead of growing a queue.
        tokio::select! {
            biased;
            _ = &mut close => return Ending::ClosedByBroker,
            sent = node.send(message) => if sent.is_err() { return Ending::NodeGone },
        }
    }
}

async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut responses: mpsc::Receiver<Frame>,
    connection: ConnectionId,
) {
    while let Some(frame) = responses.recv().await {
        if let Err(e) = write_frame(&mut writer, &frame).await {
            debug!(connection, error = %e, "write failed");
            return;
        }
    }
    let _ = writer.shutdown().await;
}
