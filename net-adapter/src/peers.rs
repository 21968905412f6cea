//! Outbound connections to the other nodes of a cluster.
//!
//! The node asks for a request with `Output::PeerRequest`; the node thread
//! hands it to [`Peers::send`], which never waits. `Peers` keeps at most one
//! link per peer and [`PeerChannel`], each its own connection: a task on the
//! network runtime that connects, writes the requests in order, reads the
//! responses and decodes each with the api key and version of the request
//! whose correlation id it carries. Answers go back to the node thread as
//! [`PeerEvent`]s on the node's bounded channel, the one client connections
//! use.
//!
//! A link that breaks — refused, reset, closed, a response that does not
//! decode or does not come in time — ends with one `PeerEvent::Down`, which
//! drops the peer's other links too and becomes one
//! `Input::PeerUnreachable`: everything in flight to that peer is lost and
//! the node retries on its own timers. The next request reconnects, but not
//! before a backoff that doubles with each failure in a row, so a dead peer
//! is not hammered; requests during the backoff are refused at once.

use crate::framing::{
    decode_response, encode_request_with_header, response_correlation_id, take_frame,
    REQUEST_BYTES_MAX_DEFAULT,
};
use crate::node_thread::NodeMessage;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use seedlog_core::node::{Input, PeerAddress, PeerChannel, PeerId};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// Numbers the links of this process, so that news from a link that was
/// already given up is recognised as stale.
pub type LinkId = u64;

/// A frame's buffer grows by at most this much per read.
const READ_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct PeerLimits {
    /// Requests queued for one link and not yet written. A full queue means
    /// the peer has stopped reading or answering: the link is given up.
    pub requests_queued_max: usize,
    /// Requests written and not yet answered on one link (the size of its
    /// correlation map); the link writes no more until answers come.
    pub in_flight_max: usize,
    /// A larger response frame breaks the link.
    pub response_bytes_max: usize,
    pub connect_timeout: Duration,
    /// A link with requests in flight that receives no response for this
    /// long is broken (a peer that hangs without closing).
    pub response_timeout: Duration,
    /// The wait before reconnecting after the first failure; it doubles
    /// with each failure in a row up to `backoff_max` (Kafka's
    /// `reconnect.backoff.ms` and `reconnect.backoff.max.ms`).
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for PeerLimits {
    fn default() -> PeerLimits {
        PeerLimits {
            requests_queued_max: 1024,
            in_flight_max: 1024,
            response_bytes_max: REQUEST_BYTES_MAX_DEFAULT,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(30),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
        }
    }
}

impl PeerLimits {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.requests_queued_max > 0 && self.in_flight_max > 0,
            "peer request queue and in-flight limits must be positive"
        );
        anyhow::ensure!(
            self.response_bytes_max > 0,
            "peer response_bytes_max must be positive"
        );
        anyhow::ensure!(
            !self.connect_timeout.is_zero() && !self.response_timeout.is_zero(),
            "peer timeouts must be positive"
        );
        anyhow::ensure!(
            !self.backoff_min.is_zero() && self.backoff_min <= self.backoff_max,
            "peer backoff_min must be positive and at most backoff_max"
        );
        Ok(())
    }

    /// The wait after `failures` failed links in a row (at least one).
    fn backoff(&self, failures: u32) -> Duration {
        assert!(failures > 0, "a backoff follows a failure");
        let doublings = (failures - 1).min(16);
        self.backoff_min
            .saturating_mul(1 << doublings)
            .min(self.backoff_max)
    }
}

/// What a link tells the node thread.
#[derive(Debug)]
pub enum PeerEvent {
    Response {
        peer: PeerId,
        channel: PeerChannel,
        link: LinkId,
        correlation_id: i32,
        body: Box<ResponseKind>,
    },
    /// The link ended on its own; sent at most once per link.
    Down {
        peer: PeerId,
        channel: PeerChannel,
        link: LinkId,
    },
}

/// Why a request was not queued. Every one means the same to the node —
/// `PeerUnreachable` — and leaves the peer without links.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("reconnecting in {0:?}")]
    BackingOff(Duration),
    #[error("{0} requests queued: the peer is not keeping up")]
    QueueFull(usize),
    #[error("the link has just ended")]
    LinkEnded,
    #[error("the peer's {channel:?} address changed from {from} to {to}")]
    AddressChanged {
        channel: PeerChannel,
        from: String,
        to: String,
    },
    #[error("the request does not encode: {0:#}")]
    Encode(anyhow::Error),
    #[error("the node is stopping")]
    Stopping,
}

/// One request, framed on the node thread, on its way to a link.
#[derive(Debug)]
struct Outgoing {
    correlation_id: i32,
    api_key: ApiKey,
    api_version: i16,
    frame: Bytes,
}

struct Link {
    id: LinkId,
    address: PeerAddress,
    requests: mpsc::Sender<Outgoing>,
    /// Dropping it stops the task at once, even while its in-flight window
    /// is full and it takes nothing from `requests`; never sent on.
    _close: oneshot::Sender<()>,
}

/// One peer: a link per channel (each its own connection, so a parked
/// replica fetch does not hold up a Raft answer), and the backoff they
/// share. The node hears of a peer, not of a connection: when one link
/// breaks, all of them go, as `Input::PeerUnreachable` says.
#[derive(Default)]
struct PeerState {
    links: BTreeMap<PeerChannel, Link>,
    /// Failures in a row; a response resets it.
    failures: u32,
    /// No new link before then.
    backoff_until: Option<Instant>,
}

/// The node thread's side of every peer link. Times are passed in, as the
/// core does, so tests can reason about the backoff.
pub struct Peers {
    runtime: Handle,
    /// Weak: links hold strong senders only while they run, so the node's
    /// channel still closes once every connection and link is gone.
    node: mpsc::WeakSender<NodeMessage>,
    limits: PeerLimits,
    peers: BTreeMap<PeerId, PeerState>,
    next_link: LinkId,
}

impl Peers {
    /// Links run on `runtime` and report to `node`.
    pub fn new(runtime: Handle, node: mpsc::WeakSender<NodeMessage>, limits: PeerLimits) -> Peers {
        limits
            .validate()
            .expect("peer limits checked by ServerConfig");
        Peers {
            runtime,
            node,
            limits,
            peers: BTreeMap::new(),
            next_link: 0,
        }
    }

    /// Queues a request for `to` on `channel`'s link, connecting first if
    /// there is none. An error leaves the peer without links: the caller
    /// must report `PeerUnreachable`, because whatever was in flight to it
    /// is lost too.
    pub fn send(
        &mut self,
        now: Instant,
        to: PeerId,
        channel: PeerChannel,
        address: PeerAddress,
        header: RequestHeader,
        body: &RequestKind,
    ) -> Result<(), SendError> {
        let result = self.try_send(now, to, channel, address, header, body);
        if result.is_err() {
            self.fail(now, to);
        }
        result
    }

    /// News from a link, turned into what the node must hear, if anything:
    /// a link that was already given up is not news.
    pub fn on_event(&mut self, now: Instant, event: PeerEvent) -> Option<Input> {
        match event {
            PeerEvent::Response {
                peer,
                channel,
                link,
                correlation_id,
                body,
            } => {
                let state = self.current(peer, channel, link)?;
                if state.failures > 0 {
                    info!(peer, ?channel, "peer reachable again");
                    state.failures = 0;
                }
                Some(Input::PeerResponse {
                    from: peer,
                    correlation_id,
                    body: *body,
                })
            }
            PeerEvent::Down {
                peer,
                channel,
                link,
            } => {
                self.current(peer, channel, link)?;
                self.fail(now, peer);
                Some(Input::PeerUnreachable { peer })
            }
        }
    }

    /// Drops every link; their tasks end at their next step.
    pub fn close_all(&mut self) {
        self.peers.clear();
    }

    fn try_send(
        &mut self,
        now: Instant,
        to: PeerId,
        channel: PeerChannel,
        address: PeerAddress,
        header: RequestHeader,
        body: &RequestKind,
    ) -> Result<(), SendError> {
        let frame = encode_request_with_header(&header, body).map_err(SendError::Encode)?;
        let api_key = ApiKey::try_from(header.request_api_key)
            .expect("encode_request_with_header accepted the api key");
        let outgoing = Outgoing {
            correlation_id: header.correlation_id,
            api_key,
            api_version: header.request_api_version,
            frame,
        };
        let state = self.peers.entry(to).or_default();
        if let Some(until) = state.backoff_until.filter(|until| now < *until) {
            return Err(SendError::BackingOff(until - now));
        }
        state.backoff_until = None;
        let failures = state.failures;
        match state.links.get(&channel) {
            Some(link) if link.address != address => Err(SendError::AddressChanged {
                channel,
                from: format!("{}:{}", link.address.host, link.address.port),
                to: format!("{}:{}", address.host, address.port),
            }),
            Some(link) => link.requests.try_send(outgoing).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    SendError::QueueFull(self.limits.requests_queued_max)
                }
                mpsc::error::TrySendError::Closed(_) => SendError::LinkEnded,
            }),
            None => {
                let link = self.open(to, channel, address, outgoing, failures)?;
                let state = self.peers.get_mut(&to).expect("entered above");
                state.links.insert(channel, link);
                Ok(())
            }
        }
    }

    /// Starts a link task with `first` already queued, so that a link that
    /// fails at once reports `Down` rather than refusing its first request;
    /// it connects while more requests queue up.
    fn open(
        &mut self,
        peer: PeerId,
        channel: PeerChannel,
        address: PeerAddress,
        first: Outgoing,
        failures: u32,
    ) -> Result<Link, SendError> {
        let node = self.node.upgrade().ok_or(SendError::Stopping)?;
        let (requests, requests_rx) = mpsc::channel(self.limits.requests_queued_max);
        requests
            .try_send(first)
            .expect("a new queue has room for one request");
        let (close, close_rx) = oneshot::channel();
        let id = self.next_link;
        self.next_link += 1;
        debug!(peer, ?channel, link = id, host = %address.host, port = address.port, "opening peer link");
        let task = LinkTask {
            peer,
            channel,
            link: id,
            address: address.clone(),
            limits: self.limits,
            retrying: failures > 0,
        };
        self.runtime.spawn(task.run(requests_rx, close_rx, node));
        Ok(Link {
            id,
            address,
            requests,
            _close: close,
        })
    }

    /// Gives up every link of the peer (their tasks see their queues
    /// close) and starts the backoff, unless one is running already.
    fn fail(&mut self, now: Instant, peer: PeerId) {
        let state = self.peers.entry(peer).or_default();
        state.links.clear();
        if state.backoff_until.is_some_and(|until| now < until) {
            return; // Refused during the backoff: it stands as it is.
        }
        state.failures += 1;
        state.backoff_until = Some(now + self.limits.backoff(state.failures));
    }

    /// The peer's state, if `link` is still its link on `channel`.
    fn current(
        &mut self,
        peer: PeerId,
        channel: PeerChannel,
        link: LinkId,
    ) -> Option<&mut PeerState> {
        let state = self.peers.get_mut(&peer)?;
        if state.links.get(&channel).map(|l| l.id) == Some(link) {
            return Some(state);
        }
        debug!(peer, ?channel, link, "news from a link already given up");
        None
    }
}

/// Why a link task stopped.
enum Ending {
    /// `Peers` dropped the link; it has already told the node.
    Dropped,
    /// The node thread is gone; nobody to tell.
    NodeGone,
    Broken(String),
}

/// Who a link task is, for its events and its logs.
struct LinkTask {
    peer: PeerId,
    channel: PeerChannel,
    link: LinkId,
    address: PeerAddress,
    limits: PeerLimits,
    /// The peer was already unreachable when this link opened: its failure
    /// is no news to the operator.
    retrying: bool,
}

impl LinkTask {
    async fn run(
        self,
        requests: mpsc::Receiver<Outgoing>,
        close: oneshot::Receiver<()>,
        node: mpsc::Sender<NodeMessage>,
    ) {
        let LinkTask {
            peer,
            channel,
            link,
            ..
        } = self;
        let ending = tokio::select! {
            biased;
            _ = close => Ending::Dropped,
            ending = self.drive(requests, &node) => ending,
        };
        match ending {
            Ending::Dropped => debug!(peer, ?channel, link, "peer link dropped"),
            Ending::NodeGone => debug!(peer, ?channel, link, "node stopped; peer link closed"),
            Ending::Broken(reason) => {
                let PeerAddress { host, port } = &self.address;
                if self.retrying {
                    debug!(peer, ?channel, link, %host, port, %reason, "peer still unreachable");
                } else {
                    warn!(peer, ?channel, link, %host, port, %reason, "peer unreachable");
                }
                let down = PeerEvent::Down {
                    peer,
                    channel,
                    link,
                };
                let _ = node.send(NodeMessage::Peer(down)).await;
            }
        }
    }

    /// Connects, then writes requests and reads responses until something
    /// breaks. One task, no split halves: the socket reads, the socket
    /// writes, the queue and the response deadline are the branches of one
    /// `select!`, each of them cancel-safe (`read_buf`, `write_buf`, `recv`).
    async fn drive(
        &self,
        mut requests: mpsc::Receiver<Outgoing>,
        node: &mpsc::Sender<NodeMessage>,
    ) -> Ending {
        let limits = self.limits;
        let connect = TcpStream::connect((self.address.host.as_str(), self.address.port));
        let mut stream = match tokio::time::timeout(limits.connect_timeout, connect).await {
            Err(_elapsed) => return Ending::Broken("connect timed out".to_string()),
            Ok(Err(e)) => return Ending::Broken(format!("cannot connect: {e}")),
            Ok(Ok(stream)) => stream,
        };
        if let Err(e) = stream.set_nodelay(true) {
            debug!(peer = self.peer, link = self.link, error = %e, "set_nodelay failed");
        }
        let (mut reader, mut writer) = stream.split();
        let mut in_flight: BTreeMap<i32, (ApiKey, i16)> = BTreeMap::new();
        let mut inbox = BytesMut::new();
        let mut outgoing = Bytes::new();
        // Set while requests are in flight: when an answer is due at the
        // latest.
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            inbox.reserve(READ_CHUNK_BYTES);
            let window_open = outgoing.is_empty() && in_flight.len() < limits.in_flight_max;
            tokio::select! {
                request = requests.recv(), if window_open => {
                    let Some(request) = request else { return Ending::Dropped };
                    let entry = (request.api_key, request.api_version);
                    if in_flight.insert(request.correlation_id, entry).is_some() {
                        // The node reused a correlation id: answers could
                        // not be told apart.
                        return Ending::Broken(format!("correlation id {} is already in flight", request.correlation_id));
                    }
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + limits.response_timeout);
                    outgoing = request.frame;
                }
                written = writer.write_buf(&mut outgoing), if !outgoing.is_empty() => match written {
                    Ok(0) => return Ending::Broken("the socket accepts no more bytes".to_string()),
                    Ok(_) => {}
                    Err(e) => return Ending::Broken(format!("write failed: {e}")),
                },
                read = reader.read_buf(&mut inbox) => match read {
                    Ok(0) => return Ending::Broken("the peer closed the connection".to_string()),
                    Ok(_) => {}
                    Err(e) => return Ending::Broken(format!("read failed: {e}")),
                },
                () = sleep_until(deadline) => {
                    return Ending::Broken(format!("no response within {:?}", limits.response_timeout));
                }
            }
            // Every complete response in the inbox, in order.
            loop {
                let frame = match take_frame(&mut inbox, limits.response_bytes_max) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => return Ending::Broken(e.to_string()),
                };
                let event = match self.answer(frame, &mut in_flight) {
                    Ok(event) => event,
                    Err(reason) => return Ending::Broken(reason),
                };
                deadline = (!in_flight.is_empty())
                    .then(|| tokio::time::Instant::now() + limits.response_timeout);
                // Waits while the node thread is behind: the peer then
                // waits for us through TCP.
                if node.send(NodeMessage::Peer(event)).await.is_err() {
                    return Ending::NodeGone;
                }
            }
        }
    }

    /// Matches a response frame to its request and decodes it.
    fn answer(
        &self,
        frame: Bytes,
        in_flight: &mut BTreeMap<i32, (ApiKey, i16)>,
    ) -> Result<PeerEvent, String> {
        let correlation_id = response_correlation_id(&frame)
            .ok_or_else(|| format!("a response of {} bytes has no header", frame.len()))?;
        let (api_key, api_version) = in_flight.remove(&correlation_id).ok_or_else(|| {
            format!("a response to correlation id {correlation_id}, which is not in flight")
        })?;
        let body = decode_response(frame, api_key, api_version).map_err(|e| e.to_string())?;
        Ok(PeerEvent::Response {
            peer: self.peer,
            channel: self.channel,
            link: self.link,
            correlation_id,
            body: Box::new(body),
        })
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
