//! The broker's Prometheus metrics and the `/metrics` endpoint that serves
//! them.
//!
//! Counters live here, in the adapter: connection readers count requests
//! and bytes in, the node thread counts bytes out and times each request
//! from the moment its frame was read to the moment its response was
//! queued. What only the core knows (partitions led, under-replicated,
//! offline, ISR sizes) the node thread samples once a second through the
//! node's read-only getters.
//!
//! `prometheus-client` (the Prometheus project's own Rust client) keeps the
//! metrics as atomics and writes the OpenMetrics text format. The HTTP side
//! is a few lines on tokio: one GET, one answer, close.

use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Api keys are below this (Kafka 4.0's highest is in the 80s).
const API_KEYS_MAX: usize = 128;
/// An HTTP request head larger than this is refused.
const HTTP_REQUEST_BYTES_MAX: usize = 8 * 1024;
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Request latency buckets: 100 µs to about 50 s, each 2.5 times the last.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.5, 15))
}

/// Every metric of one broker process; cheap to clone (shared atomics).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: HistogramFamily,
    /// Per api key, the family's metrics once first used, so that the hot
    /// path does not build labels.
    per_api: Vec<OnceLock<(Counter, Histogram)>>,
    bytes_in: Counter,
    bytes_out: Counter,
    connections: Gauge,
    connections_accepted: Counter,
    partitions: Gauge,
    leaders: Gauge,
    under_replicated: Gauge,
    offline: Gauge,
    fetch_sessions: Gauge,
    fetch_session_partitions: Gauge,
    fetch_session_partitions_unread: Counter,
    isr_shrinks: Counter,
    isr_expands: Counter,
    consumer_lag: Family<Labels, Gauge>,
    reads_direct: Counter,
    read_ahead_hits: Counter,
    reads_mapped: Counter,
}

/// Consumer lag series exported at most; past it the rest are left out
/// (`seedlog groups describe` shows every partition).
const CONSUMER_LAG_SERIES_MAX: usize = 10_000;

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("seedlog");
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "requests",
            "Requests received, by Kafka API",
            requests.clone(),
        );
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Time from a request's frame read to its response queued, by Kafka API",
            latency.clone(),
        );
        let bytes_in = Counter::default();
        registry.register(
            "bytes_in",
            "Request bytes received (frames, length prefix included)",
            bytes_in.clone(),
        );
        let bytes_out = Counter::default();
        registry.register(
            "bytes_out",
            "Response bytes queued for clients (frames, length prefix included)",
            bytes_out.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Open client and peer connections",
            connections.clone(),
        );
        let connections_accepted = Counter::default();
        registry.register(
            "connections_accepted",
            "Connections accepted",
            connections_accepted.clone(),
        );
        let partitions = Gauge::default();
        registry.register(
            "partitions",
            "Partitions with a replica on this node",
            partitions.clone(),
        );
        let leaders = Gauge::default();
        registry.register(
            "partition_leaders",
            "Partitions led by this node (Kafka's LeaderCount)",
            leaders.clone(),
        );
        let under_replicated = Gauge::default();
        registry.register(
            "partitions_under_replicated",
            "Partitions led here with fewer in-sync replicas than replicas",
            under_replicated.clone(),
        );
        let offline = Gauge::default();
        registry.register(
            "partitions_offline",
            "Partitions without a leader in the cluster metadata this node applied",
            offline.clone(),
        );
        let fetch_sessions = Gauge::default();
        registry.register(
            "fetch_sessions",
            "KIP-227 incremental fetch sessions cached (Kafka's NumIncrementalFetchSessions)",
            fetch_sessions.clone(),
        );
        let fetch_session_partitions = Gauge::default();
        registry.register(
            "fetch_session_partitions",
            "Partitions held by the fetch sessions (Kafka's NumIncrementalFetchPartitionsCached)",
            fetch_session_partitions.clone(),
        );
        let fetch_session_partitions_unread = Counter::default();
        registry.register(
            "fetch_session_partitions_unread",
            "Partitions of incremental fetches answered without a read: nothing about them changed since their session last listed them (sampled each second)",
            fetch_session_partitions_unread.clone(),
        );
        let isr_shrinks = Counter::default();
        registry.register(
            "isr_shrinks",
            "ISR shrinks of partitions led here (sampled each second)",
            isr_shrinks.clone(),
        );
        let isr_expands = Counter::default();
        registry.register(
            "isr_expands",
            "ISR expansions of partitions led here (sampled each second)",
            isr_expands.clone(),
        );
        let reads_direct = Counter::default();
        registry.register(
            "storage_reads_direct",
            "Reads served around the page cache (O_DIRECT), before a file's page_cache_window_bytes (sampled each second)",
            reads_direct.clone(),
        );
        let read_ahead_hits = Counter::default();
        registry.register(
            "storage_read_ahead_hits",
            "Of those, reads answered from what was read ahead (sampled each second)",
            read_ahead_hits.clone(),
        );
        let reads_mapped = Counter::default();
        registry.register(
            "storage_reads_mapped",
            "Consumer reads of 64 KiB or more answered with a mapping of the segment rather than a copy (sampled each second)",
            reads_mapped.clone(),
        );
        let consumer_lag = Family::<Labels, Gauge>::default();
        registry.register(
            "consumer_lag",
            "Records between a group's committed offset and the high watermark, for groups coordinated and partitions led here (sampled each second)",
            consumer_lag.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                per_api: (0..API_KEYS_MAX).map(|_| OnceLock::new()).collect(),
                bytes_in,
                bytes_out,
                connections,
                connections_accepted,
                partitions,
                leaders,
                under_replicated,
                offline,
                fetch_sessions,
                fetch_session_partitions,
                fetch_session_partitions_unread,
                isr_shrinks,
                isr_expands,
                consumer_lag,
                reads_direct,
                read_ahead_hits,
                reads_mapped,
            }),
        }
    }

    fn per_api(&self, api_key: ApiKey) -> Option<&(Counter, Histogram)> {
        let slot = self
            .inner
            .per_api
            .get(usize::try_from(api_key as i16).ok()?)?;
        Some(slot.get_or_init(|| {
            let labels = vec![("api".to_string(), format!("{api_key:?}"))];
            (
                self.inner.requests.get_or_create_owned(&labels),
                self.inner.latency.get_or_create_owned(&labels),
            )
        }))
    }

    /// A request frame of `frame_bytes` (length prefix included) was read.
    pub fn request_received(&self, api_key: ApiKey, frame_bytes: usize) {
        self.inner.bytes_in.inc_by(frame_bytes as u64);
        if let Some((requests, _)) = self.per_api(api_key) {
            requests.inc();
        }
    }

    /// A response frame of `frame_bytes` was queued; `elapsed` since its
    /// request was read, if known.
    pub fn response_sent(&self, api_key: ApiKey, frame_bytes: usize, elapsed: Option<Duration>) {
        self.inner.bytes_out.inc_by(frame_bytes as u64);
        if let (Some(elapsed), Some((_, latency))) = (elapsed, self.per_api(api_key)) {
            latency.observe(elapsed.as_secs_f64());
        }
    }

    pub fn connection_opened(&self) {
        self.inner.connections_accepted.inc();
        self.inner.connections.inc();
    }

    pub fn connection_closed(&self) {
        self.inner.connections.dec();
    }

    /// The whole registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.inner.registry).expect("writing to a String cannot fail");
        out
    }
}

/// The partition gauges, from the node's getters; ISR shrinks and expands
/// are the changes of each led partition's ISR size between two samples.
#[derive(Default)]
pub struct PartitionSampler {
    isr_sizes: BTreeMap<(String, i32), usize>,
}

impl PartitionSampler {
    pub fn sample<S: seedlog_core::storage::Storage>(
        &mut self,
        node: &seedlog_core::node::Node<S>,
        metrics: &Metrics,
    ) {
        let led = node.led_partitions();
        let mut isr_sizes = BTreeMap::new();
        let mut under_replicated = 0i64;
        for p in &led {
            if p.isr < p.replicas {
                under_replicated += 1;
            }
            let key = (p.topic.to_string(), p.partition);
            if let Some(&before) = self.isr_sizes.get(&key) {
                if p.isr < before {
                    metrics.inner.isr_shrinks.inc_by((before - p.isr) as u64);
                } else if p.isr > before {
                    metrics.inner.isr_expands.inc_by((p.isr - before) as u64);
                }
            }
            isr_sizes.insert(key, p.isr);
        }
        self.isr_sizes = isr_sizes;
        let inner = &metrics.inner;
        inner.leaders.set(led.len() as i64);
        inner.under_replicated.set(under_replicated);
        inner.partitions.set(node.hosted_partition_count() as i64);
        inner.offline.set(node.offline_partition_count() as i64);
        let (sessions, session_partitions) = node.fetch_sessions_cached();
        inner.fetch_sessions.set(sessions as i64);
        inner
            .fetch_session_partitions
            .set(session_partitions as i64);
        count_to(
            &inner.fetch_session_partitions_unread,
            node.fetch_session_partitions_unread(),
        );
        // Groups and partitions come and go: the lag series are rebuilt.
        inner.consumer_lag.clear();
        for (group, topic, partition, lag) in node
            .consumer_lags()
            .into_iter()
            .take(CONSUMER_LAG_SERIES_MAX)
        {
            let labels = vec![
                ("group".to_string(), group.to_string()),
                ("topic".to_string(), topic.to_string()),
                ("partition".to_string(), partition.to_string()),
            ];
            inner.consumer_lag.get_or_create(&labels).set(lag);
        }
    }
}

impl Metrics {
    /// The storage's counters, sampled: totals since the broker started.
    pub fn storage_sampled(&self, reads_direct: u64, read_ahead_hits: u64, reads_mapped: u64) {
        let inner = &self.inner;
        count_to(&inner.reads_mapped, reads_mapped);
        count_to(&inner.reads_direct, reads_direct);
        count_to(&inner.read_ahead_hits, read_ahead_hits);
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve_http(listener: TcpListener, metrics: Metrics) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = tokio::time::timeout(HTTP_TIMEOUT, answer(stream, &metrics)).await {
                debug!(%peer, error = %e, "metrics request timed out");
            }
        });
    }
}

/// Reads one request head and answers it, then closes.
async fn answer(mut stream: TcpStream, metrics: &Metrics) {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        if head.len() > HTTP_REQUEST_BYTES_MAX {
            let _ = respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await;
            return;
        }
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let _ = match (method, path) {
        ("GET", "/metrics") => {
            respond(
                &mut stream,
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                &metrics.encode(),
            )
            .await
        }
        ("GET", _) => respond(&mut stream, "404 Not Found", "text/plain", "try /metrics\n").await,
        _ => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                "GET only\n",
            )
            .await
        }
    };
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Binds the metrics listener.
pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (the metrics listener)"))
}

/// Brings `counter` up to `total`, a count the node or its storage keeps
/// since it started (a counter only goes up, so it takes the difference).
fn count_to(counter: &Counter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_in_the_text_format() {
        let metrics = Metrics::new();
        metrics.request_received(ApiKey::Produce, 100);
        metrics.request_received(ApiKey::Produce, 50);
        metrics.response_sent(ApiKey::Produce, 30, Some(Duration::from_millis(2)));
        metrics.connection_opened();
        let text = metrics.encode();
        assert!(
            text.contains("seedlog_requests_total{api=\"Produce\"} 2"),
            "{text}"
        );
        assert!(text.contains("seedlog_bytes_in_total 150"), "{text}");
        assert!(text.contains("seedlog_bytes_out_total 30"), "{text}");
        assert!(text.contains("seedlog_connections 1"), "{text}");
        assert!(
            text.contains("seedlog_request_duration_seconds_count{api=\"Produce\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
