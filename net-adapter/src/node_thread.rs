//! The one thread that owns the [`Node`].
//!
//! The core is single-threaded by design: it runs here, on a dedicated OS
//! thread with its own single-threaded runtime (for timers and channel
//! receives), so the sockets never wait for it.
//!
//! The loop is "mutate, then drain": take one message (or a timer), then up
//! to `batch_max` more that are already waiting, feeding each to the node
//! and routing its responses at once. Flush requests are collected while
//! the batch runs; after it, they go to the [`Flusher`] as one round (each
//! distinct path synced once), and this thread goes on handling requests
//! while the disk syncs. The round's outcome comes back as a message like
//! any other and completes its flush ids. Flushes asked for while a round
//! is out wait here and form the next round: group commit without a timer.
//! The core keeps its own flushes few (one for the partitions, one for the
//! metadata log, one for a snapshot), so the rounds stay small.

use crate::file_storage::{FileStorage, SyncOutcome, SyncRound};
use crate::flusher::{Flusher, SyncDone};
use crate::framing::encode_response;
use crate::metrics::{Metrics, PartitionSampler};
use crate::peers::{PeerEvent, Peers, SendError};
use crate::response_frame::Frame;
use kafka_protocol::messages::{RequestHeader, RequestKind};
use seedlog_core::node::{
    ConnectionId, FlushId, Input, Node, NodeConfig, NodeError, Output, PeerId,
};
use seedlog_core::storage::StorageError;
use seedlog_core::Instant;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit};
use tracing::{debug, error, info, warn};

/// What connection tasks tell the node thread.
#[derive(Debug)]
pub enum NodeMessage {
    /// A new connection: where its responses go, and a handle whose drop
    /// tells the connection's reader to stop.
    Open {
        connection: ConnectionId,
        responses: mpsc::Sender<Frame>,
        close: oneshot::Sender<()>,
    },
    Request {
        connection: ConnectionId,
        header: RequestHeader,
        body: Box<RequestKind>,
        /// The frame's bytes, counted against the shared request memory
        /// until the node has handled the request.
        memory: OwnedSemaphorePermit,
        /// When its frame was read: request latency is measured from here.
        received: std::time::Instant,
    },
    /// An already encoded frame to queue behind the connection's earlier
    /// responses (the unsupported-ApiVersions answer).
    Frame {
        connection: ConnectionId,
        frame: Frame,
    },
    /// The reader has stopped; sent exactly once per opened connection.
    Closed { connection: ConnectionId },
    /// News from an outbound link to another node.
    Peer(PeerEvent),
    /// The flusher performed a sync round.
    Synced(Box<SyncDone>),
}

/// The node's clock: nanoseconds since the Unix epoch, so the core's
/// `Instant::unix_millis` is Kafka's wall-clock timestamp.
pub fn now() -> Instant {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Instant::from_nanos(u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX))
}

struct ConnectionHandle {
    responses: mpsc::Sender<Frame>,
    /// Dropping it stops the reader; never sent on.
    _close: oneshot::Sender<()>,
}

/// A sync round handed to the flusher and not yet back.
struct RoundOut {
    id: u64,
    /// The flushes it completes.
    flushes: Vec<(FlushId, Vec<String>)>,
}

pub struct NodeDriver {
    node: Node<FileStorage>,
    connections: BTreeMap<ConnectionId, ConnectionHandle>,
    /// Flushes asked for and not yet in a round.
    flushes_waiting: Vec<(FlushId, Vec<String>)>,
    round_out: Option<RoundOut>,
    next_round_id: u64,
    flusher: Flusher,
    /// Messages handled before waiting flushes go to the flusher.
    batch_max: usize,
    peers: Peers,
    /// Peers whose requests were refused while outputs drained. The node
    /// hears `PeerUnreachable` once per peer after the drain, not inside
    /// it, so a node that answers it with a new request cannot spin.
    peers_refused: BTreeSet<PeerId>,
    metrics: Metrics,
    /// When each request awaiting its response was read, for its latency.
    started: BTreeMap<(ConnectionId, i32), std::time::Instant>,
    sampler: PartitionSampler,
    next_sample: Instant,
    /// Whether the client listener accepts: at once on a standalone
    /// broker; on a cluster node once it caught up with the metadata and
    /// the controller unfenced it (see `note_serving`).
    serving: watch::Sender<bool>,
}

/// Requests timed at once, at most; past it latency goes unmeasured (a
/// client pipelining that much is measured by its throughput anyway).
const TIMED_REQUESTS_MAX: usize = 100_000;
/// How often the partition metrics are sampled from the node.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Flushes waiting for a round, at most. The core keeps at most one flush
/// in flight per kind (partitions, metadata log, snapshot); far more means
/// a completion was lost.
const FLUSHES_WAITING_MAX: usize = 64;
/// Rounds the node thread performs itself in a row (at start and at
/// shutdown) before it warns that completions keep asking for more.
const INLINE_ROUNDS_WARN: u32 = 64;

impl NodeDriver {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: NodeConfig,
        storage: FileStorage,
        rng_seed: u64,
        batch_max: usize,
        peers: Peers,
        metrics: Metrics,
        serving: watch::Sender<bool>,
        flusher: Flusher,
    ) -> Result<NodeDriver, NodeError> {
        assert!(batch_max > 0, "a batch holds at least one message");
        let node = Node::new(config, storage, rng_seed, now())?;
        let mut driver = NodeDriver {
            node,
            connections: BTreeMap::new(),
            flushes_waiting: Vec::new(),
            round_out: None,
            next_round_id: 0,
            flusher,
            batch_max,
            peers,
            peers_refused: BTreeSet::new(),
            metrics,
            started: BTreeMap::new(),
            sampler: PartitionSampler::default(),
            next_sample: now(),
            serving,
        };
        driver.note_serving();
        // Recovery may already want something flushed: done before the
        // first request, here.
        driver.drain_outputs();
        driver.perform_flushes_inline();
        Ok(driver)
    }

    /// Serves until `stop` fires (or is dropped) or every sender is gone,
    /// then closes every connection and makes every appended byte durable.
    /// After `stop` the node shuts down in a controlled way: it serves on
    /// (clients, peers, timers) while a cluster node's controller moves its
    /// leaderships away, for `shutdown_timeout` at most.
    pub async fn run(
        mut self,
        mut messages: mpsc::Receiver<NodeMessage>,
        mut stop: oneshot::Receiver<()>,
        shutdown_timeout: Duration,
    ) -> Result<(), StorageError> {
        let mut shutdown_deadline: Option<Instant> = None;
        loop {
            let wake = [
                self.node.poll_timeout(),
                shutdown_deadline,
                Some(self.next_sample),
            ]
            .into_iter()
            .flatten()
            .min();
            let timer = sleep_until(wake);
            tokio::select! {
                biased;
                _ = &mut stop, if shutdown_deadline.is_none() => {
                    shutdown_deadline = Some(self.begin_shutdown(shutdown_timeout));
                }
                message = messages.recv() => {
                    let Some(message) = message else { break };
                    self.on_message(message);
                    for _ in 1..self.batch_max {
                        match messages.try_recv() {
                            Ok(message) => self.on_message(message),
                            Err(_) => break,
                        }
                    }
                }
                () = timer => {
                    // The wake-up may be the metrics sample's alone; the
                    // node hears of time only when one of its own is due.
                    let now = now();
                    let node_due = self.node.poll_timeout().is_some_and(|t| t <= now);
                    let shutdown_due = shutdown_deadline.is_some_and(|d| d <= now);
                    if node_due || shutdown_due {
                        self.node.handle_timeout(now);
                        self.drain_outputs();
                    }
                }
                // Only to come round again: refusals are reported below.
                () = std::future::ready(()), if !self.peers_refused.is_empty() => {}
            }
            self.report_refused_peers();
            self.dispatch_flushes();
            self.note_serving();
            if now() >= self.next_sample {
                self.sampler.sample(&self.node, &self.metrics);
                let storage = self.node.storage();
                self.metrics.storage_sampled(
                    storage.reads_direct(),
                    storage.read_ahead_hits(),
                    storage.reads_mapped(),
                );
                self.next_sample = now() + SAMPLE_INTERVAL;
            }
            if shutdown_deadline.is_some_and(|deadline| self.shutdown_may_proceed(deadline)) {
                break;
            }
        }

        info!(
            connections = self.connections.len(),
            "node stopping: closing connections, final flush"
        );
        // Writers send what is already queued, then close; readers stop.
        self.connections.clear();
        self.peers.close_all();
        self.await_round_out(&mut messages).await;
        self.perform_flushes_inline();
        let undelivered = self.flusher.finish();
        assert!(undelivered.is_none(), "the flusher had no round left");
        let storage = self.node.storage_mut();
        let dirty_files = storage.dirty_paths().len();
        storage.sync_all()?;
        info!(dirty_files, "final flush done");
        self.node.finish_clean_shutdown()?;
        Ok(())
    }

    /// Opens the client listener once the node may serve clients. As a
    /// Kafka broker enables request processing only once it is unfenced, a
    /// cluster node takes no client connection before: until it has read
    /// the metadata log up to its registration it would describe a
    /// cluster with no brokers and no controller, and an admin client that
    /// met it first waits out its timeout. Peers are unaffected: the
    /// quorum and the broker heartbeats that unfence this node run over
    /// the controller listener.
    fn note_serving(&mut self) {
        if *self.serving.borrow() {
            return;
        }
        let running = self
            .node
            .cluster_status()
            .is_none_or(|status| status.broker_running);
        if running {
            if self.node.config().cluster.is_some() {
                info!("caught up with the metadata and unfenced: accepting client connections");
            }
            self.serving.send_replace(true);
        }
    }

    /// Starts the controlled shutdown; returns when it must end at the
    /// latest.
    fn begin_shutdown(&mut self, timeout: Duration) -> Instant {
        if self.node.config().cluster.is_some() {
            info!(
                ?timeout,
                "controlled shutdown: the controller moves this node's leaderships away"
            );
        }
        let now = now();
        self.node.begin_shutdown(now);
        self.drain_outputs();
        now + timeout
    }

    fn shutdown_may_proceed(&self, deadline: Instant) -> bool {
        if self.node.shutdown_ready() {
            return true;
        }
        if now() >= deadline {
            // The controller is unreachable or has no one to hand the
            // leaderships to (the last node of a cluster): stop anyway,
            // as Kafka does when its retries run out.
            warn!("controlled shutdown did not complete in time; stopping");
            return true;
        }
        false
    }

    fn on_message(&mut self, message: NodeMessage) {
        match message {
            NodeMessage::Open {
                connection,
                responses,
                close,
            } => {
                let previous = self.connections.insert(
                    connection,
                    ConnectionHandle {
                        responses,
                        _close: close,
                    },
                );
                assert!(previous.is_none(), "connection id {connection} reused");
            }
            NodeMessage::Request {
                connection,
                header,
                body,
                memory,
                received,
            } => {
                // A request queued before the node closed the connection:
                // the client will never see its answer.
                if !self.connections.contains_key(&connection) {
                    debug!(connection, "request for a closed connection dropped");
                    return;
                }
                let answered = !matches!(&*body, RequestKind::Produce(p) if p.acks == 0);
                if answered && self.started.len() < TIMED_REQUESTS_MAX {
                    self.started
                        .insert((connection, header.correlation_id), received);
                }
                self.node.handle(
                    now(),
                    Input::Request {
                        connection,
                        header,
                        body: *body,
                    },
                );
                drop(memory);
                self.drain_outputs();
            }
            NodeMessage::Frame { connection, frame } => self.send(connection, frame),
            NodeMessage::Closed { connection } => {
                self.connections.remove(&connection);
                let timed: Vec<_> = self
                    .started
                    .range((connection, i32::MIN)..=(connection, i32::MAX))
                    .map(|(key, _)| *key)
                    .collect();
                for key in timed {
                    self.started.remove(&key);
                }
                self.node
                    .handle(now(), Input::ConnectionClosed { connection });
                self.drain_outputs();
            }
            NodeMessage::Peer(event) => {
                if let Some(input) = self.peers.on_event(std::time::Instant::now(), event) {
                    self.node.handle(now(), input);
                    self.drain_outputs();
                }
            }
            NodeMessage::Synced(done) => self.on_synced(*done),
        }
    }

    fn drain_outputs(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Response {
                    connection,
                    correlation_id,
                    api_key,
                    api_version,
                    body,
                } => {
                    let started = self.started.remove(&(connection, correlation_id));
                    if !self.connections.contains_key(&connection) {
                        continue; // Closed meanwhile: nobody to answer.
                    }
                    match encode_response(correlation_id, api_key, api_version, &body) {
                        Ok(frame) => {
                            self.metrics.response_sent(
                                api_key,
                                frame.len(),
                                started.map(|s| s.elapsed()),
                            );
                            self.send(connection, frame)
                        }
                        Err(e) => {
                            // The core built a response its own version
                            // cannot carry: a bug, but the client's loss
                            // only, so close rather than crash the broker.
                            error!(connection, ?api_key, api_version, error = %e, "response does not encode; closing");
                            self.connections.remove(&connection);
                        }
                    }
                }
                Output::Flush { flush_id, paths } => {
                    assert!(
                        self.flushes_waiting.len() < FLUSHES_WAITING_MAX,
                        "flushes pile up: {} waiting",
                        self.flushes_waiting.len()
                    );
                    self.flushes_waiting.push((flush_id, paths));
                }
                Output::CloseConnection { connection, reason } => {
                    warn!(connection, %reason, "closing connection");
                    self.connections.remove(&connection);
                }
                Output::PeerRequest {
                    to,
                    channel,
                    address,
                    header,
                    body,
                } => {
                    let now = std::time::Instant::now();
                    let sent = self.peers.send(now, to, channel, address, header, &body);
                    match sent {
                        Ok(()) => {}
                        // Routine while a peer is down, or just went.
                        Err(e @ (SendError::BackingOff(_) | SendError::LinkEnded)) => {
                            debug!(peer = to, error = %e, "peer request refused");
                            self.peers_refused.insert(to);
                        }
                        Err(e) => {
                            warn!(peer = to, error = %e, "peer request refused");
                            self.peers_refused.insert(to);
                        }
                    }
                }
            }
        }
    }

    /// Tells the node of the peers refused in the last drain, once each.
    /// Refusals while it reacts wait for the next round of the loop.
    fn report_refused_peers(&mut self) {
        let refused = std::mem::take(&mut self.peers_refused);
        let now = now();
        for peer in refused {
            self.node.handle(now, Input::PeerUnreachable { peer });
            self.drain_outputs();
        }
    }

    /// Queues a frame for the connection's writer. Never waits: one client
    /// that does not read its responses must not stall every other one, so
    /// a full queue closes that connection.
    fn send(&mut self, connection: ConnectionId, frame: Frame) {
        let Some(handle) = self.connections.get(&connection) else {
            return;
        };
        match handle.responses.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!(connection, "client is not reading its responses; closing");
                self.connections.remove(&connection);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                // The writer hit a socket error; the reader will report
                // `Closed` shortly.
                self.connections.remove(&connection);
            }
        }
    }

    /// Hands the waiting flushes to the flusher as one round, unless a
    /// round is out: then they wait for it, and join the flushes asked for
    /// meanwhile in the next round.
    fn dispatch_flushes(&mut self) {
        if self.round_out.is_some() || self.flushes_waiting.is_empty() {
            return;
        }
        let flushes = std::mem::take(&mut self.flushes_waiting);
        let round = begin_round(self.node.storage_mut(), &flushes);
        let id = self.next_round_id;
        self.next_round_id += 1;
        self.flusher.submit(id, round);
        self.round_out = Some(RoundOut { id, flushes });
    }

    fn on_synced(&mut self, done: SyncDone) {
        let out = self
            .round_out
            .take()
            .expect("a sync round came back that was never out");
        assert_eq!(out.id, done.round_id, "sync rounds come back in order");
        self.complete_round(&out.flushes, done.round, done.outcome);
    }

    /// Waits for the round out, if any, to come back (at shutdown): the
    /// storage's sync state stays split until it does.
    async fn await_round_out(&mut self, messages: &mut mpsc::Receiver<NodeMessage>) {
        while self.round_out.is_some() {
            match messages.recv().await {
                Some(NodeMessage::Synced(done)) => self.on_synced(*done),
                // The connections are closed: nobody hears an answer.
                Some(_) => {}
                None => {
                    // Every sender is gone, so the flusher could not send
                    // it: it hands it over as it stops.
                    let done = self
                        .flusher
                        .finish()
                        .expect("the round out comes back from the flusher");
                    self.on_synced(done);
                }
            }
        }
    }

    /// Performs the waiting flushes on this thread, round after round,
    /// until none is left: at start, before any request, and at shutdown.
    /// Completions can unblock more work that asks for more flushes (the
    /// next batch of held produces); no new requests are taken meanwhile,
    /// so this ends.
    fn perform_flushes_inline(&mut self) {
        assert!(self.round_out.is_none(), "a round is out");
        let mut rounds = 0u32;
        while !self.flushes_waiting.is_empty() {
            rounds += 1;
            if rounds == INLINE_ROUNDS_WARN {
                warn!(rounds, "flush completions keep asking for more flushes");
            }
            let flushes = std::mem::take(&mut self.flushes_waiting);
            let round = begin_round(self.node.storage_mut(), &flushes);
            let outcome = round.perform(self.flusher.threads_max(), self.flusher.sync_file());
            self.complete_round(&flushes, round, outcome);
        }
    }

    /// Reports each flush of a performed round to the node.
    fn complete_round(
        &mut self,
        flushes: &[(FlushId, Vec<String>)],
        round: SyncRound,
        outcome: SyncOutcome,
    ) {
        let files = round.files();
        let missing = outcome.files_missing();
        let failures = self.node.storage_mut().end_sync(round, outcome);
        for (path, error) in &failures {
            error!(path, error = %error, "fsync failed");
        }
        debug!(
            flushes = flushes.len(),
            files,
            missing,
            failed = failures.len(),
            "flushed"
        );
        let now = now();
        for (flush_id, flush_paths) in flushes {
            let input = match flush_paths.iter().find_map(|p| failures.get(p.as_str())) {
                None => Input::FlushCompleted {
                    flush_id: *flush_id,
                },
                Some(error) => Input::FlushFailed {
                    flush_id: *flush_id,
                    error: error.clone(),
                },
            };
            self.node.handle(now, input);
            self.drain_outputs();
        }
    }
}

/// Takes the sync round that makes every path of `flushes` durable.
fn begin_round(storage: &mut FileStorage, flushes: &[(FlushId, Vec<String>)]) -> SyncRound {
    let paths: BTreeSet<&str> = flushes
        .iter()
        .flat_map(|(_, p)| p.iter().map(String::as_str))
        .collect();
    storage.begin_sync(paths)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep(deadline.saturating_duration_since(now())).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
