//! The TCP server: accepts connections, starts the node thread, shuts down
//! gracefully.
//!
//! A node of a cluster has a second listener, the controller listener, where
//! the other nodes send Raft RPCs and controller requests. It speaks the
//! same protocol and its connections take the same path as clients' do: the
//! node tells requests apart by their api key, not by the socket.

use crate::connection::{self, ConnectionLimits};
use crate::file_storage::{fdatasync_path, FileStorage, OPEN_FILES_MAX_DEFAULT};
use crate::flusher::{Flusher, FLUSH_THREADS_MAX_LIMIT};
use crate::framing::REQUEST_BYTES_MAX_DEFAULT;
use crate::metrics::Metrics;
use crate::node_thread::{NodeDriver, NodeMessage};
use crate::peers::{PeerLimits, Peers};
use anyhow::Context;
use seedlog_core::node::{ConnectionId, NodeConfig};
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

/// Default threads a sync round uses: enough for a journal to commit many
/// partitions' `fdatasync`s together, few enough to stay cheap on a small
/// machine (they spend their time waiting for the disk).
pub const FLUSH_THREADS_MAX_DEFAULT: usize = 8;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// A second listener for the other nodes of a cluster; `None` for none.
    pub controller_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// The node's settings. Its advertised host and port are overwritten
    /// with the bound address, so that port 0 works.
    pub node: NodeConfig,
    /// Kafka's `socket.request.max.bytes`: a larger frame closes the
    /// connection.
    pub request_bytes_max: usize,
    /// Bytes of request frames read and not yet handled by the node, over
    /// all connections; readers wait for room. At least `request_bytes_max`.
    pub request_bytes_in_flight_max: usize,
    /// Open connections at once; more are accepted and closed at once.
    pub connections_max: usize,
    /// Encoded responses queued per connection before it is closed as not
    /// reading.
    pub responses_queued_per_connection_max: usize,
    /// Messages queued from all connections to the node thread.
    pub node_queue_max: usize,
    /// Messages the node thread handles before it hands their flushes to
    /// the flusher.
    pub node_batch_max: usize,
    /// Threads one sync round syncs its files on, at most.
    pub flush_threads_max: usize,
    /// Cached open file handles in the storage.
    pub open_files_max: usize,
    /// Each file keeps its last this many bytes in the page cache once
    /// synced; `None`: all of it ([`crate::page_cache`]).
    pub page_cache_window_bytes: Option<u64>,
    /// Kafka's `connections.max.idle.ms`.
    pub connection_idle_timeout: Duration,
    /// How long shutdown waits for connections to send queued responses.
    pub drain_timeout: Duration,
    /// How long a cluster node waits, on shutdown, for the controller to
    /// move its leaderships away before it stops anyway.
    pub controlled_shutdown_timeout: Duration,
    /// Seed of the node's RNG; from the clock when `None`.
    pub rng_seed: Option<u64>,
    /// Outbound connections to the other nodes of a cluster.
    pub peers: PeerLimits,
    /// Where to serve Prometheus metrics over HTTP (`GET /metrics`);
    /// `None` for nowhere.
    pub metrics_listen: Option<SocketAddr>,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            listen,
            controller_listen: None,
            data_dir: data_dir.into(),
            node: NodeConfig::default(),
            request_bytes_max: REQUEST_BYTES_MAX_DEFAULT,
            request_bytes_in_flight_max: 5 * REQUEST_BYTES_MAX_DEFAULT,
            connections_max: 10_000,
            responses_queued_per_connection_max: 1024,
            node_queue_max: 4096,
            node_batch_max: 256,
            flush_threads_max: FLUSH_THREADS_MAX_DEFAULT,
            open_files_max: OPEN_FILES_MAX_DEFAULT,
            page_cache_window_bytes: None,
            connection_idle_timeout: Duration::from_secs(600),
            drain_timeout: Duration::from_secs(5),
            controlled_shutdown_timeout: Duration::from_secs(10),
            rng_seed: None,
            peers: PeerLimits::default(),
            metrics_listen: None,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        let positive = [
            ("request_bytes_max", self.request_bytes_max),
            ("connections_max", self.connections_max),
            (
                "responses_queued_per_connection_max",
                self.responses_queued_per_connection_max,
            ),
            ("node_queue_max", self.node_queue_max),
            ("node_batch_max", self.node_batch_max),
            ("flush_threads_max", self.flush_threads_max),
            ("open_files_max", self.open_files_max),
        ];
        for (name, value) in positive {
            anyhow::ensure!(value > 0, "{name} must be positive");
        }
        anyhow::ensure!(
            self.flush_threads_max <= FLUSH_THREADS_MAX_LIMIT,
            "flush_threads_max is above {FLUSH_THREADS_MAX_LIMIT}"
        );
        anyhow::ensure!(
            i32::try_from(self.request_bytes_max).is_ok(),
            "request_bytes_max must fit a frame length (i32)"
        );
        anyhow::ensure!(
            self.request_bytes_in_flight_max >= self.request_bytes_max,
            "request_bytes_in_flight_max is below request_bytes_max: a largest frame could never be read"
        );
        anyhow::ensure!(
            u32::try_from(self.request_bytes_in_flight_max).is_ok(),
            "request_bytes_in_flight_max must fit u32"
        );
        anyhow::ensure!(
            self.responses_queued_per_connection_max >= self.node.in_flight_requests_per_connection_max.min(1024),
            "responses_queued_per_connection_max is below the in-flight request limit: pipelining clients would be closed"
        );
        self.peers.validate()?;
        Ok(())
    }
}

/// A bound listener with a running node thread. `run` serves.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    controller: Option<TcpListener>,
    node_tx: mpsc::Sender<NodeMessage>,
    /// True once the client listener may accept (`NodeDriver::note_serving`).
    serving: watch::Receiver<bool>,
    node_stop: oneshot::Sender<()>,
    node_done: oneshot::Receiver<anyhow::Result<()>>,
    node_thread: std::thread::JoinHandle<()>,
    config: ServerConfig,
    metrics: Metrics,
    metrics_listener: Option<TcpListener>,
}

impl Server {
    /// Binds the listeners, opens the storage and starts the node (running
    /// log recovery), then prints `seedlog listening on ADDRESS` to stdout,
    /// and `seedlog controller listening on ADDRESS` if there is a
    /// controller listener. Must run inside the network runtime: peer links
    /// are spawned on it.
    pub async fn bind(mut config: ServerConfig) -> anyhow::Result<Server> {
        config.validate()?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let controller = match config.controller_listen {
            None => None,
            Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                format!("cannot listen on {address} (the controller listener)")
            })?),
        };
        let metrics_listener = match config.metrics_listen {
            None => None,
            Some(address) => Some(crate::metrics::bind(address).await?),
        };
        let metrics = Metrics::new();
        let local_addr = listener.local_addr()?;
        if !local_addr.ip().is_unspecified() {
            config.node.advertised_host = local_addr.ip().to_string();
        }
        config.node.advertised_port = i32::from(local_addr.port());

        let storage = FileStorage::with_open_files_max(&config.data_dir, config.open_files_max)
            .with_context(|| format!("cannot open data directory {}", config.data_dir.display()))?
            .with_cache_window(config.page_cache_window_bytes);
        let rng_seed = config
            .rng_seed
            .unwrap_or_else(|| crate::node_thread::now().as_nanos());
        let (node_tx, node_rx) = mpsc::channel(config.node_queue_max);
        let flusher = Flusher::spawn(
            node_tx.downgrade(),
            config.flush_threads_max,
            Arc::new(fdatasync_path),
        )
        .context("cannot spawn the flusher thread")?;
        let peers = Peers::new(
            tokio::runtime::Handle::current(),
            node_tx.downgrade(),
            config.peers,
        );
        let (serving_tx, serving) = watch::channel(false);
        let (node_stop, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (done_tx, node_done) = oneshot::channel();
        let node_config = config.node.clone();
        let batch_max = config.node_batch_max;
        let shutdown_timeout = config.controlled_shutdown_timeout;
        let node_metrics = metrics.clone();
        let node_thread = std::thread::Builder::new()
            .name("seedlog-node".to_string())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::Error::from(e).context("node runtime")));
                        return;
                    }
                };
                let driver = match NodeDriver::new(
                    node_config,
                    storage,
                    rng_seed,
                    batch_max,
                    peers,
                    node_metrics,
                    serving_tx,
                    flusher,
                ) {
                    Ok(driver) => driver,
                    Err(e) => {
                        let _ = ready_tx
                            .send(Err(anyhow::Error::from(e).context("cannot start the node")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let result = runtime.block_on(driver.run(node_rx, stop_rx, shutdown_timeout));
                let _ = done_tx.send(result.context("final flush"));
            })
            .context("cannot spawn the node thread")?;
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => anyhow::bail!("the node thread panicked while starting"),
        }

        info!(address = %local_addr, data_dir = %config.data_dir.display(), "listening");
        let mut stdout = std::io::stdout().lock();
        // Before the listening line, which tests and `seedlog cluster`
        // wait for: whoever reads up to it has seen this one too.
        if let Some(metrics) = &metrics_listener {
            let address = metrics.local_addr()?;
            info!(%address, "metrics listener");
            writeln!(
                stdout,
                "seedlog metrics listening on http://{address}/metrics"
            )?;
        }
        writeln!(stdout, "seedlog listening on {local_addr}")?;
        if let Some(controller) = &controller {
            let address = controller.local_addr()?;
            info!(%address, "controller listener");
            writeln!(stdout, "seedlog controller listening on {address}")?;
        }
        stdout.flush()?;
        Ok(Server {
            listener,
            local_addr,
            controller,
            node_tx,
            serving,
            node_stop,
            node_done,
            node_thread,
            config,
            metrics,
            metrics_listener,
        })
    }

    /// The broker's metrics, served on `metrics_listen` if set.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound address of the controller listener, if there is one.
    pub fn controller_addr(&self) -> Option<SocketAddr> {
        self.controller.as_ref().and_then(|c| c.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then has the node shut down (a
    /// cluster node first lets the controller move its leaderships away,
    /// serving meanwhile), stops accepting, closes every connection (queued
    /// responses still go out, within `drain_timeout`), completes pending
    /// flushes and syncs every file. Fails if the node thread dies.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Server {
            listener,
            local_addr,
            controller,
            node_tx,
            mut serving,
            node_stop,
            mut node_done,
            node_thread,
            config,
            metrics,
            metrics_listener,
        } = self;
        let metrics_http = metrics_listener
            .map(|listener| tokio::spawn(crate::metrics::serve_http(listener, metrics.clone())));
        // Taken when `shutdown` completes; serving goes on until the node
        // thread is done.
        let mut node_stop = Some(node_stop);
        let limits = ConnectionLimits {
            request_bytes_max: config.request_bytes_max,
            responses_queued_max: config.responses_queued_per_connection_max,
            idle_timeout: config.connection_idle_timeout,
            drain_timeout: config.drain_timeout,
        };
        let connection_permits = Arc::new(Semaphore::new(config.connections_max));
        let request_memory = Arc::new(Semaphore::new(config.request_bytes_in_flight_max));
        let mut connections = JoinSet::new();
        let mut next_connection: ConnectionId = 0;
        tokio::pin!(shutdown);

        let node_result = loop {
            // Reap finished connection tasks so the set stays bounded by
            // the open connections.
            while connections.try_join_next().is_some() {}
            let open = *serving.borrow();
            tokio::select! {
                biased;
                () = &mut shutdown, if node_stop.is_some() => {
                    info!(address = %local_addr, "shutting down");
                    if let Some(stop) = node_stop.take() {
                        let _ = stop.send(());
                    }
                }
                done = &mut node_done => break done,
                // Only to come round again with the client listener open.
                changed = serving.changed(), if !open => {
                    if changed.is_err() {
                        // The node thread is gone; `node_done` says why.
                        tokio::task::yield_now().await;
                    }
                }
                accepted = accept_either(&listener, open, controller.as_ref()) => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Out of file descriptors and the like: back off
                            // instead of spinning on the error.
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = connection_permits.clone().try_acquire_owned() else {
                        warn!(%peer, connections_max = config.connections_max, "connection limit reached; refusing");
                        continue; // Dropping the stream closes it.
                    };
                    if let Err(e) = stream.set_nodelay(true) {
                        debug!(%peer, error = %e, "set_nodelay failed");
                    }
                    let connection = next_connection;
                    next_connection += 1;
                    let node_tx = node_tx.clone();
                    let memory = request_memory.clone();
                    let metrics = metrics.clone();
                    connections.spawn(async move {
                        connection::serve(stream, peer, connection, node_tx, limits, memory, metrics).await;
                        drop(permit);
                    });
                }
            }
        };

        drop(listener);
        drop(controller);
        if let Some(http) = metrics_http {
            http.abort();
        }
        drop(node_tx);
        // Connections close as the node drops their queues; give their
        // writers the drain time, then cut whatever is left.
        let drained = tokio::time::timeout(config.drain_timeout, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                left = connections.len(),
                "connections did not drain in time"
            );
            connections.abort_all();
        }
        let joined = tokio::task::spawn_blocking(move || node_thread.join()).await?;
        match (node_result, joined) {
            (Ok(result), Ok(())) => {
                result?;
                info!("stopped");
                Ok(())
            }
            _ => {
                error!("the node thread panicked");
                anyhow::bail!("the node thread panicked")
            }
        }
    }
}

/// The next connection on either listener; both serve the same protocol.
/// The client listener only once `serving`: before, connections wait in
/// its backlog.
async fn accept_either(
    client: &TcpListener,
    serving: bool,
    controller: Option<&TcpListener>,
) -> std::io::Result<(TcpStream, SocketAddr)> {
    match controller {
        None if serving => client.accept().await,
        None => std::future::pending().await,
        // `accept` is cancel-safe: the listener that loses keeps its
        // pending connection for the next round.
        Some(controller) => tokio::select! {
            accepted = client.accept(), if serving => accepted,
            accepted = controller.accept() => accepted,
        },
    }
}

/// Binds and serves until `shutdown` completes.
pub async fn run(config: ServerConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    Server::bind(config).await?.run(shutdown).await
}
