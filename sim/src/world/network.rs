//! The network: AZ links and latencies, connections (client to broker and
//! broker to broker), cuts (AZ partitions, isolated brokers, split
//! clusters), clogging, and byte accounting.
//!
//! Two kinds of connection share one id space and one `Conn` table: a
//! client's connection to a broker, and a broker's connection to a peer
//! (one per ordered pair, opened on the first `Output::PeerRequest`). The
//! serving broker sees both as `Input::Request` on a connection id. They
//! differ in how a cut treats them: a client connection holds its bytes
//! until the cut heals (TCP retransmits) and the client's request timeout
//! closes it; a peer connection breaks, as the broker's own timeouts would
//! break it, and the sender hears `Input::PeerUnreachable` once, after a
//! detection delay.

use super::*;
use seedlog_core::node::PeerChannel;

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    Client(ClientId),
    /// A broker's connection to a peer.
    Peer(BrokerId),
}

pub(super) struct Conn {
    pub(super) origin: Origin,
    /// The broker that accepted the connection and serves its requests.
    pub(super) broker: BrokerId,
    pub(super) established: bool,
    /// TCP keeps order: a message is never delivered before an earlier one.
    pub(super) last_to_node: Instant,
    pub(super) last_to_origin: Instant,
}

/// An end of a connection, for latency and cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    Client(ClientId),
    Broker(BrokerId),
}

impl Origin {
    pub(super) fn place(self) -> Place {
        match self {
            Origin::Client(c) => Place::Client(c),
            Origin::Peer(b) => Place::Broker(b),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Cut {
    pub(super) from: usize,
    pub(super) to: usize,
    pub(super) until: Instant,
}

/// Brokers on one side (`side[b]`) cannot reach brokers on the other side.
#[derive(Debug, Clone)]
pub(super) struct Split {
    pub(super) side: Vec<bool>,
    pub(super) until: Instant,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Clog {
    pub(super) a: usize,
    pub(super) b: usize,
    pub(super) extra: Duration,
    pub(super) until: Instant,
}

/// Per-link one-way latency range, in microseconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Link {
    pub(super) latency_us: [u64; 2],
}

/// Broker `a`'s connections to broker `b`, one per channel (the core keeps
/// the quorum, the controller channel and replica fetches apart, as Kafka
/// does, so a long-polled fetch never holds up a heartbeat).
#[derive(Debug, Default)]
pub(super) struct PeerPair {
    pub(super) links: BTreeMap<PeerChannel, PeerLink>,
    /// The pair broke (incident id): `a` has not noticed yet, so what it
    /// sends to `b` on any channel is lost until `Input::PeerUnreachable`
    /// reaches it; the next request after that reconnects.
    pub(super) broken: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct PeerLink {
    pub(super) conn: ConnId,
    /// SYN sent, handshake not done: requests queue behind it.
    pub(super) connecting: bool,
}

/// A request or response body, as `judge_codec` encodes and decodes it.
pub(super) trait WireBody: PartialEq + std::fmt::Debug + Sized {
    fn put(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()>;
    fn get(api_key: ApiKey, buf: &mut Bytes, version: i16) -> anyhow::Result<Self>;
    /// The encoded size of the body, without encoding it when the codec
    /// can tell (`compute_size`); `buf` is scratch for the others.
    fn size(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<usize>;
}

/// The size of a body by encoding it into `buf` (cleared before and after).
fn size_by_encoding<T: WireBody>(
    body: &T,
    buf: &mut BytesMut,
    version: i16,
) -> anyhow::Result<usize> {
    buf.clear();
    let encoded = body.put(buf, version);
    let len = buf.len();
    buf.clear();
    encoded.map(|()| len)
}

impl WireBody for RequestKind {
    fn put(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()> {
        self.encode(buf, version)
    }
    fn size(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<usize> {
        // Produce carries the record batches: measured, not copied.
        match self {
            RequestKind::Produce(x) => x.compute_size(version),
            RequestKind::Fetch(x) => x.compute_size(version),
            _ => size_by_encoding(self, buf, version),
        }
    }
    fn get(api_key: ApiKey, buf: &mut Bytes, version: i16) -> anyhow::Result<Self> {
        RequestKind::decode(api_key, buf, version)
    }
}

impl WireBody for ResponseKind {
    fn put(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()> {
        self.encode(buf, version)
    }
    fn size(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<usize> {
        // Fetch carries the record batches (and Metadata is large and
        // frequent): measured, not copied.
        match self {
            ResponseKind::Fetch(x) => x.compute_size(version),
            ResponseKind::Produce(x) => x.compute_size(version),
            ResponseKind::Metadata(x) => x.compute_size(version),
            _ => size_by_encoding(self, buf, version),
        }
    }
    fn get(api_key: ApiKey, buf: &mut Bytes, version: i16) -> anyhow::Result<Self> {
        ResponseKind::decode(api_key, buf, version)
    }
}

/// Where two renderings of a value part, with some context: enough to see
/// which field a codec round trip changed.
fn first_difference(a: &str, b: &str) -> String {
    let at = a
        .chars()
        .zip(b.chars())
        .position(|(x, y)| x != y)
        .unwrap_or(a.chars().count().min(b.chars().count()));
    let from = at.saturating_sub(80);
    let show = |s: &str| s.chars().skip(from).take(160).collect::<String>();
    format!("sent ...{} / received ...{}", show(a), show(b))
}

fn channel_name(channel: PeerChannel) -> &'static str {
    match channel {
        PeerChannel::Quorum => "quorum",
        PeerChannel::Controller => "controller",
        PeerChannel::Replication => "replication",
    }
}

impl World {
    pub(super) fn link(&self, a: usize, b: usize) -> Link {
        let edge = self
            .graph
            .find_edge(self.az_nodes[a], self.az_nodes[b])
            .expect("every AZ pair is linked");
        self.graph[edge]
    }

    pub(super) fn latency(&mut self, from_az: usize, to_az: usize) -> Duration {
        let link = self.link(from_az, to_az);
        let mut latency = Duration::from_micros(uniform(&mut self.rng_net, link.latency_us));
        for clog in &self.clogs {
            let hit =
                (clog.a == from_az && clog.b == to_az) || (clog.a == to_az && clog.b == from_az);
            if hit && clog.until > self.now {
                latency += clog.extra;
            }
        }
        latency
    }

    pub(super) fn place_az(&self, place: Place) -> usize {
        match place {
            Place::Client(c) => self.clients[c].az,
            Place::Broker(b) => self.brokers[b].az,
        }
    }

    pub(super) fn latency_between(&mut self, from: Place, to: Place) -> Duration {
        let (a, b) = (self.place_az(from), self.place_az(to));
        self.latency(a, b)
    }

    /// The time until which traffic `from -> to` is cut, if it is: an AZ
    /// partition, an isolated broker at either end, or a split between two
    /// brokers.
    pub(super) fn blocked_until(&self, from: Place, to: Place) -> Option<Instant> {
        let now = self.now;
        let (from_az, to_az) = (self.place_az(from), self.place_az(to));
        let mut until = self
            .cuts
            .iter()
            .filter(|c| c.from == from_az && c.to == to_az && c.until > now)
            .map(|c| c.until)
            .max();
        let mut consider = |t: Instant| {
            if t > now {
                until = Some(until.map_or(t, |u| u.max(t)));
            }
        };
        for place in [from, to] {
            if let Place::Broker(b) = place {
                consider(self.brokers[b].isolated_until);
            }
        }
        if let (Place::Broker(a), Place::Broker(b)) = (from, to) {
            for split in &self.splits {
                if split.side[a] != split.side[b] {
                    consider(split.until);
                }
            }
        }
        until
    }

    /// When a message sent now arrives: after its latency, after any cut on
    /// its path heals (TCP retransmits), and never before an earlier message.
    pub(super) fn delivery_time(&mut self, from: Place, to: Place, last: Instant) -> Instant {
        self.link_time(from, to).max(last)
    }

    /// When a message sent now would arrive over the link alone, before
    /// the connection's order (the messages ahead of it) is applied.
    fn link_time(&mut self, from: Place, to: Place) -> Instant {
        let latency = self.latency_between(from, to);
        let mut at = self.now + latency;
        if let Some(until) = self.blocked_until(from, to) {
            at = at.max(until + latency);
        }
        at
    }

    pub(super) fn count_bytes(&mut self, from_az: usize, to_az: usize, bytes: u64) {
        *self.bytes.entry((from_az, to_az)).or_default() += bytes;
        self.stats.messages += 1;
    }

    pub(super) fn roundtrip_due(&mut self) -> bool {
        self.rng_net.gen_range(0..100u32) < self.swarm.codec_roundtrip_percent
    }

    /// Encodes a request as it would go on the wire (its size is what the
    /// byte counts see) and, for a share of them, decodes it back and checks
    /// the round trip. Returns the size and, when it went through the
    /// codec, the decoded value: what the receiver gets is what the wire
    /// carried.
    fn encode_request(
        &mut self,
        header: &RequestHeader,
        body: &RequestKind,
    ) -> (u64, Option<RequestKind>) {
        let api_key = ApiKey::try_from(header.request_api_key).expect("a known API");
        let version = header.request_api_version;
        let mut buf = self.wire_buf();
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .expect("request header encodes");
        self.judge_codec("request", api_key, version, buf, body)
    }

    /// As `encode_request`, for a response.
    fn encode_response(
        &mut self,
        correlation_id: i32,
        api_key: ApiKey,
        version: i16,
        body: &ResponseKind,
    ) -> (u64, Option<ResponseKind>) {
        let mut buf = self.wire_buf();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, api_key.response_header_version(version))
            .expect("response header encodes");
        self.judge_codec("response", api_key, version, buf, body)
    }

    /// An empty buffer to encode a message into, reused between messages
    /// (growing a fresh one was a tenth of a cluster run's allocations).
    fn wire_buf(&mut self) -> BytesMut {
        let mut buf = std::mem::take(&mut self.wire_buf);
        buf.clear();
        buf
    }

    /// The wire size of a message (with its length prefix; `buf` holds its
    /// header), after checking that its body encodes and, for a share of
    /// messages, that it decodes with no bytes left over to a value that
    /// encodes to the same bytes; then also the decoded value.
    ///
    /// Bytes, not values, are compared: like Kafka's own messages, a value
    /// may set a field its version does not carry (an ignorable field, such
    /// as a Fetch v13+ topic name beside the topic id); the wire drops it,
    /// the receiver gets the decoded value, and that is not a codec fault
    /// (counted as `codec_fields_dropped`).
    fn judge_codec<T: WireBody>(
        &mut self,
        what: &str,
        api_key: ApiKey,
        version: i16,
        mut buf: BytesMut,
        original: &T,
    ) -> (u64, Option<T>) {
        let header_len = buf.len();
        if !self.roundtrip_due() {
            // Most messages are only measured, without encoding the body
            // where the codec can size it; the buffer (and its capacity)
            // serves the next one.
            let mut scratch = buf.split_off(header_len);
            let size = original.size(&mut scratch, version);
            buf.unsplit(scratch);
            buf.clear();
            self.wire_buf = buf;
            return match size {
                Ok(n) => (4 + (header_len + n) as u64, None),
                Err(e) => {
                    self.violation(
                        "codec_roundtrip",
                        format!("{api_key:?} v{version} {what} does not encode: {e}"),
                    );
                    (4 + header_len as u64, None)
                }
            };
        }
        let encoded = original.put(&mut buf, version);
        if let Err(e) = encoded {
            self.violation(
                "codec_roundtrip",
                format!("{api_key:?} v{version} {what} does not encode: {e}"),
            );
        }
        let bytes = 4 + buf.len() as u64;
        self.stats.codec_roundtrips += 1;
        let sent = buf.freeze().slice(header_len..);
        let mut body_bytes = sent.clone();
        match T::get(api_key, &mut body_bytes, version) {
            Ok(decoded) if decoded == *original && body_bytes.is_empty() => (bytes, Some(decoded)),
            Ok(decoded) => {
                let mut again = BytesMut::new();
                let same_bytes = body_bytes.is_empty()
                    && decoded.put(&mut again, version).is_ok()
                    && again == sent;
                if same_bytes {
                    if let Some(c) = self.cluster.as_mut() {
                        c.stats.codec_fields_dropped += 1;
                    }
                } else {
                    let message = format!(
                        "{api_key:?} v{version} {what} decodes to a different value: {}",
                        first_difference(&format!("{original:?}"), &format!("{decoded:?}"))
                    );
                    self.violation("codec_roundtrip", message);
                }
                (bytes, Some(decoded))
            }
            Err(e) => {
                self.violation(
                    "codec_roundtrip",
                    format!("{api_key:?} v{version} {what} does not decode: {e}"),
                );
                (bytes, None)
            }
        }
    }

    pub(super) fn send_to_node(
        &mut self,
        conn_id: ConnId,
        header: RequestHeader,
        body: RequestKind,
    ) {
        let Some(conn) = self.conns.get(&conn_id) else {
            // The connection died (a crash, a reset) and the sender has not
            // heard yet: the bytes go nowhere; it retries once it learns.
            self.emit(Ev::Drop {
                conn: conn_id,
                what: "request on a dead connection",
            });
            return;
        };
        let (from, to, last) = (
            conn.origin.place(),
            Place::Broker(conn.broker),
            conn.last_to_node,
        );
        let (bytes, decoded) = self.encode_request(&header, &body);
        let body = decoded.unwrap_or(body);
        let (from_az, to_az) = (self.place_az(from), self.place_az(to));
        self.count_bytes(from_az, to_az, bytes);
        self.emit(Ev::Request {
            conn: conn_id,
            api: header.request_api_key,
            corr: header.correlation_id,
            bytes,
        });
        let mut at = self.delivery_time(from, to, last);
        at = at + self.replica_fetch_extra(conn_id, false);
        let held = self.request_held(from, &header);
        if let (Some((until, heartbeat)), Place::Broker(b)) = (held, from) {
            // Held on a channel of its own: what follows on this
            // connection does not wait behind it, but held requests of one
            // kind keep their order.
            let broker = &mut self.brokers[b];
            let last = if heartbeat {
                &mut broker.heartbeat_held_last
            } else {
                &mut broker.alter_partition_held_last
            };
            at = at.max(until + (at - self.now)).max(*last);
            *last = at;
        } else {
            self.conns.get_mut(&conn_id).expect("live").last_to_node = at;
        }
        self.push(
            at,
            EventKind::ToNode {
                conn: conn_id,
                header,
                body: Box::new(body),
            },
        );
    }

    /// Until when a request from `from` is held in flight, if it is an
    /// AlterPartition (`hold_alter_partition`) or a BrokerHeartbeat
    /// (`hold_broker_heartbeat`) and such a hold is on; true for a
    /// heartbeat.
    fn request_held(&self, from: Place, header: &RequestHeader) -> Option<(Instant, bool)> {
        let Place::Broker(b) = from else {
            return None;
        };
        let broker = &self.brokers[b];
        let until = match header.request_api_key {
            k if k == ApiKey::AlterPartition as i16 => broker.alter_partition_held_until,
            k if k == ApiKey::BrokerHeartbeat as i16 => broker.heartbeat_held_until,
            _ => return None,
        };
        let heartbeat = header.request_api_key == ApiKey::BrokerHeartbeat as i16;
        (until > self.now).then_some((until, heartbeat))
    }

    /// The extra delay of a request on `conn_id` (or of its answer, with
    /// `response`) when it is its sender's replica fetch connection and the
    /// sender's fetches (`slow_replica_fetch`) or their answers
    /// (`slow_replica_fetch_response`) are slowed.
    fn replica_fetch_extra(&self, conn_id: ConnId, response: bool) -> Duration {
        let Some(conn) = self.conns.get(&conn_id) else {
            return Duration::ZERO;
        };
        let Origin::Peer(a) = conn.origin else {
            return Duration::ZERO;
        };
        let extra_ms = if response {
            self.brokers[a].replica_fetch_response_extra_ms
        } else {
            self.brokers[a].replica_fetch_extra_ms
        };
        if extra_ms == 0 {
            return Duration::ZERO;
        }
        let replication = self
            .peer_links
            .get(&(a, conn.broker))
            .and_then(|p| p.links.get(&PeerChannel::Replication))
            .is_some_and(|l| l.conn == conn_id);
        if replication {
            Duration::from_millis(extra_ms)
        } else {
            Duration::ZERO
        }
    }

    /// Until when answers on `conn_id` are held, when it is its sender's
    /// KRaft connection and the sender's metadata fetches are held
    /// (`hold_metadata_fetch`).
    fn metadata_fetch_held(&self, conn_id: ConnId) -> Option<Instant> {
        let conn = self.conns.get(&conn_id)?;
        let Origin::Peer(a) = conn.origin else {
            return None;
        };
        let until = self.brokers[a].metadata_fetch_held_until;
        if until <= self.now {
            return None;
        }
        self.peer_links
            .get(&(a, conn.broker))
            .and_then(|p| p.links.get(&PeerChannel::Quorum))
            .is_some_and(|l| l.conn == conn_id)
            .then_some(until)
    }

    /// A broker's response on `conn_id`, to a client or to the peer that
    /// asked.
    pub(super) fn send_to_origin(
        &mut self,
        conn_id: ConnId,
        correlation_id: i32,
        api_key: ApiKey,
        version: i16,
        body: ResponseKind,
    ) {
        let Some(conn) = self.conns.get(&conn_id) else {
            if conn_id != 0 {
                self.emit(Ev::Drop {
                    conn: conn_id,
                    what: "response on a closed connection",
                });
            }
            return;
        };
        let (from, to, last) = (
            Place::Broker(conn.broker),
            conn.origin.place(),
            conn.last_to_origin,
        );
        let (bytes, decoded) = self.encode_response(correlation_id, api_key, version, &body);
        let body = decoded.unwrap_or(body);
        let (from_az, to_az) = (self.place_az(from), self.place_az(to));
        self.count_bytes(from_az, to_az, bytes);
        self.emit(Ev::Response {
            conn: conn_id,
            api: api_key as i16,
            corr: correlation_id,
            bytes,
        });
        // Answers keep their order on the connection, slowed or held or not.
        let link_at = self.link_time(from, to);
        let extra = self.replica_fetch_extra(conn_id, true);
        let mut at = link_at.max(last) + extra;
        if let Some(until) = self.metadata_fetch_held(conn_id) {
            // Released when the hold ends, one link delay later. Not the
            // wait behind the answers ahead of it on top: those are held
            // to the same moment, and adding their wait again pushed each
            // held answer one hold further than the last (seed 1289 of
            // stale-follower: the follower's metadata stalled 25 s past
            // the fault's end).
            at = at.max(until + (link_at + extra - self.now));
        }
        self.conns.get_mut(&conn_id).expect("live").last_to_origin = at;
        self.push(
            at,
            EventKind::ToOrigin {
                conn: conn_id,
                correlation_id,
                body: Box::new(body),
            },
        );
    }

    /// A client opens a connection to `broker`.
    pub(super) fn connect(&mut self, client: ClientId, broker: BrokerId) {
        let conn = self.next_conn;
        self.next_conn += 1;
        let shown_broker = self.cluster.is_some().then_some(broker);
        self.emit(Ev::Connect {
            client,
            conn,
            broker: shown_broker,
        });
        self.conns.insert(
            conn,
            Conn {
                origin: Origin::Client(client),
                broker,
                established: false,
                last_to_node: self.now,
                last_to_origin: self.now,
            },
        );
        self.clients[client]
            .conns
            .insert(broker, ClientConn::Connecting(conn));
        let (c, b) = (Place::Client(client), Place::Broker(broker));
        let cut = self.blocked_until(c, b).is_some() || self.blocked_until(b, c).is_some();
        let rtt = self.latency_between(c, b) + self.latency_between(b, c);
        // A powered-off machine answers nothing (cluster scenarios model
        // it; a standalone broker's connects were always refused at once).
        if cut || self.brokers[broker].power_off {
            // SYNs vanish: the connect times out.
            let at = self.now + Duration::from_millis(self.swarm.request_timeout_ms);
            self.push(at, EventKind::ConnectFailed { client, conn });
        } else if !self.accepting(broker) {
            self.push(self.now + rtt, EventKind::ConnectFailed { client, conn });
        } else {
            self.push(self.now + rtt, EventKind::Connected { conn });
        }
    }

    /// Whether `b`'s process accepts connections (up, not shutting down).
    pub(super) fn accepting(&self, b: BrokerId) -> bool {
        matches!(self.brokers[b].state, BrokerState::Up(_)) && !self.brokers[b].stopping
    }

    pub(super) fn on_connected(&mut self, conn_id: ConnId) {
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        let (origin, broker) = (conn.origin, conn.broker);
        if let Origin::Peer(a) = origin {
            self.on_peer_connected(a, broker, conn_id);
            return;
        }
        let Origin::Client(client) = origin else {
            unreachable!()
        };
        if !self.accepting(broker) {
            self.conns.remove(&conn_id);
            self.emit(Ev::ConnectFailed {
                client,
                conn: conn_id,
            });
            self.client_lost_connection(client, broker);
            return;
        }
        self.conns.get_mut(&conn_id).expect("checked").established = true;
        self.stats.connections_opened += 1;
        self.emit(Ev::Connected { conn: conn_id });
        self.clients[client]
            .conns
            .insert(broker, ClientConn::Open(conn_id));
        self.client_tick(client);
    }

    /// The client closes its connection to `broker` (a request timed out):
    /// in-flight messages are gone; the broker hears of it when the FIN/RST
    /// arrives.
    pub(super) fn client_close(&mut self, client: ClientId, broker: BrokerId, why: &str) {
        let conn_id = match self.clients[client].conns.get(&broker) {
            Some(ClientConn::Open(c) | ClientConn::Connecting(c)) => *c,
            Some(ClientConn::Down { .. }) | None => return,
        };
        self.emit(Ev::Close {
            conn: conn_id,
            by: "client",
            why,
        });
        if let Some(conn) = self.conns.remove(&conn_id) {
            self.stats.connections_broken += 1;
            self.notify_node_of_close(conn_id, &conn);
        }
        self.client_lost_connection(client, broker);
    }

    pub(super) fn notify_node_of_close(&mut self, conn_id: ConnId, conn: &Conn) {
        if !conn.established {
            return;
        }
        let at = self.delivery_time(
            conn.origin.place(),
            Place::Broker(conn.broker),
            conn.last_to_node,
        );
        self.notify_node_of_close_at(conn_id, conn.broker, at);
    }

    pub(super) fn notify_node_of_close_at(
        &mut self,
        conn_id: ConnId,
        broker: BrokerId,
        at: Instant,
    ) {
        let generation = self.brokers[broker].generation;
        self.push(
            at,
            EventKind::NodeSawClose {
                broker,
                generation,
                conn: conn_id,
            },
        );
    }

    /// RST on every connection of `client` (every client and every peer
    /// connection when `None`).
    pub(super) fn reset_connections(&mut self, client: Option<u32>) {
        let taken = self.take_client_conns(|c, _| client.is_none_or(|want| want as usize == c));
        for (id, conn, c) in taken {
            self.emit(Ev::Close {
                conn: id,
                by: "network",
                why: "reset",
            });
            self.notify_node_of_close(id, &conn);
            self.push(
                self.now,
                EventKind::ClientSawClose {
                    client: c,
                    conn: id,
                },
            );
        }
        if client.is_none() {
            let pairs: Vec<(BrokerId, BrokerId)> = self
                .peer_links
                .iter()
                .filter(|(_, p)| p.broken.is_none() && !p.links.is_empty())
                .map(|(k, _)| *k)
                .collect();
            for (a, b) in pairs {
                let (to_a, to_b) = (self.one_way(b, a), self.one_way(a, b));
                self.break_peer_link(a, b, to_a, to_b, "reset");
            }
        }
    }

    /// Removes the client connections `select` picks (by client and
    /// connection), in id order, counting them broken.
    pub(super) fn take_client_conns(
        &mut self,
        select: impl Fn(ClientId, &Conn) -> bool,
    ) -> Vec<(ConnId, Conn, ClientId)> {
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.origin, Origin::Client(x) if select(x, c)))
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .map(|id| {
                let conn = self.conns.remove(&id).expect("listed");
                let Origin::Client(client) = conn.origin else {
                    unreachable!("selected client connections only")
                };
                self.stats.connections_broken += 1;
                (id, conn, client)
            })
            .collect()
    }

    /// One message's latency from broker `a` to broker `b`.
    pub(super) fn one_way(&mut self, a: BrokerId, b: BrokerId) -> Duration {
        self.latency_between(Place::Broker(a), Place::Broker(b))
    }

    /// How long a broker takes to notice a connection that died silently.
    pub(super) fn peer_timeout(&self) -> Duration {
        let ms = self
            .swarm
            .cluster
            .as_ref()
            .map_or(self.swarm.request_timeout_ms, |c| c.peer_timeout_ms);
        Duration::from_millis(ms)
    }

    // --- peer connections ----------------------------------------------------------

    /// `Output::PeerRequest` from broker `a` to broker `b`: sent on their
    /// connection for `channel`, opened now if there is none.
    pub(super) fn peer_request(
        &mut self,
        a: BrokerId,
        b: BrokerId,
        channel: PeerChannel,
        header: RequestHeader,
        body: RequestKind,
    ) {
        self.cluster_stats().peer_requests += 1;
        let pair = self.peer_links.entry((a, b)).or_default();
        if pair.broken.is_some() {
            // The sender has not noticed the break: the bytes go nowhere.
            self.emit(Ev::Drop {
                conn: 0,
                what: "request to a peer whose connection broke unnoticed",
            });
            return;
        }
        let conn = match pair.links.get(&channel) {
            Some(link) => link.conn,
            None => self.open_peer_link(a, b, channel),
        };
        if self.conns.contains_key(&conn) {
            self.send_to_node(conn, header, body);
        } else {
            self.emit(Ev::Drop {
                conn,
                what: "request on a peer connection that failed to open",
            });
        }
    }

    fn open_peer_link(&mut self, a: BrokerId, b: BrokerId, channel: PeerChannel) -> ConnId {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.emit(Ev::PeerConnect {
            broker: a,
            peer: b,
            channel: channel_name(channel),
            conn,
        });
        let (pa, pb) = (Place::Broker(a), Place::Broker(b));
        let rtt = self.latency_between(pa, pb) + self.latency_between(pb, pa);
        let cut = self.blocked_until(pa, pb).is_some() || self.blocked_until(pb, pa).is_some();
        self.conns.insert(
            conn,
            Conn {
                origin: Origin::Peer(a),
                broker: b,
                established: false,
                // Requests sent before the handshake completes wait for it.
                last_to_node: self.now + rtt,
                last_to_origin: self.now,
            },
        );
        let link = PeerLink {
            conn,
            connecting: true,
        };
        self.peer_links
            .entry((a, b))
            .or_default()
            .links
            .insert(channel, link);
        if cut || self.brokers[b].power_off {
            // SYNs vanish: the connect times out.
            let timeout = self.peer_timeout();
            self.break_peer_link(a, b, timeout, timeout, "connect timed out");
        } else if !self.accepting(b) {
            // Refused: the peer's machine answers with RST.
            self.break_peer_link(a, b, rtt, Duration::ZERO, "connect refused");
        } else {
            self.push(self.now + rtt, EventKind::Connected { conn });
        }
        conn
    }

    fn on_peer_connected(&mut self, a: BrokerId, b: BrokerId, conn_id: ConnId) {
        let link = self.peer_links.get(&(a, b)).and_then(|p| {
            p.links
                .iter()
                .find(|(_, l)| l.conn == conn_id && l.connecting)
                .map(|(c, _)| *c)
        });
        let Some(channel) = link else {
            return;
        };
        if !self.accepting(b) {
            // The peer went down during the handshake.
            let after = self.one_way(b, a);
            self.break_peer_link(a, b, after, Duration::ZERO, "peer down");
            return;
        }
        self.conns.get_mut(&conn_id).expect("live").established = true;
        let pair = self.peer_links.get_mut(&(a, b)).expect("current");
        pair.links.get_mut(&channel).expect("found").connecting = false;
        self.cluster_stats().peer_connections_opened += 1;
        self.emit(Ev::Connected { conn: conn_id });
    }

    /// Every connection `a -> b` dies: what is in flight is lost; `a` hears
    /// `PeerUnreachable` once, after `a_after`; `b` hears `ConnectionClosed`
    /// for each side it accepted, after `b_after`.
    pub(super) fn break_peer_link(
        &mut self,
        a: BrokerId,
        b: BrokerId,
        a_after: Duration,
        b_after: Duration,
        why: &str,
    ) {
        let pair = self.peer_links.entry((a, b)).or_default();
        if pair.broken.is_some() {
            return;
        }
        let links = std::mem::take(&mut pair.links);
        self.peer_incidents += 1;
        let incident = self.peer_incidents;
        self.peer_links.get_mut(&(a, b)).expect("entry").broken = Some(incident);
        for link in links.values() {
            self.emit(Ev::Close {
                conn: link.conn,
                by: "network",
                why,
            });
            self.cluster_stats().peer_connections_broken += 1;
            if let Some(conn) = self.conns.remove(&link.conn) {
                if conn.established {
                    self.notify_node_of_close_at(link.conn, b, self.now + b_after);
                }
            }
        }
        let generation = self.brokers[a].generation;
        self.push(
            self.now + a_after,
            EventKind::PeerDown {
                broker: a,
                generation,
                peer: b,
                incident,
            },
        );
    }

    /// Broker `b`'s process is gone (crash, kill, shutdown). Its own
    /// connections vanish with it (the next process starts with none);
    /// peers connected to it notice after their timeout when the machine
    /// went `silent` (power loss), else at once (the kernel sends FIN/RST).
    pub(super) fn drop_links_of(&mut self, b: BrokerId, silent: bool) {
        let keys: Vec<(BrokerId, BrokerId)> = self
            .peer_links
            .keys()
            .filter(|(x, y)| *x == b || *y == b)
            .copied()
            .collect();
        for (x, y) in keys {
            let peer = if x == b { y } else { x };
            let after = if silent {
                self.peer_timeout()
            } else {
                self.one_way(b, peer)
            };
            if x == b {
                let pair = self.peer_links.remove(&(x, y)).expect("listed");
                for link in pair.links.values() {
                    if let Some(conn) = self.conns.remove(&link.conn) {
                        if conn.established {
                            self.notify_node_of_close_at(link.conn, y, self.now + after);
                        }
                        self.cluster_stats().peer_connections_broken += 1;
                    }
                }
            } else {
                self.break_peer_link(x, y, after, Duration::ZERO, "peer down");
            }
        }
    }

    /// Breaks every peer pair that a cut now blocks in either direction:
    /// each side notices after its timeout.
    pub(super) fn break_blocked_links(&mut self) {
        let keys: Vec<(BrokerId, BrokerId)> = self
            .peer_links
            .iter()
            .filter(|(_, p)| p.broken.is_none() && !p.links.is_empty())
            .map(|(k, _)| *k)
            .collect();
        let timeout = self.peer_timeout();
        for (a, b) in keys {
            let (pa, pb) = (Place::Broker(a), Place::Broker(b));
            if self.blocked_until(pa, pb).is_some() || self.blocked_until(pb, pa).is_some() {
                self.break_peer_link(a, b, timeout, timeout, "cut");
            }
        }
    }

    /// `PeerDown` fired: `a` learns that `b` is unreachable, once per
    /// incident; its next request reconnects.
    pub(super) fn on_peer_down(&mut self, a: BrokerId, b: BrokerId, incident: u64) -> bool {
        let current = self
            .peer_links
            .get(&(a, b))
            .is_some_and(|p| p.broken == Some(incident));
        if !current {
            return false;
        }
        self.peer_links.remove(&(a, b));
        self.cluster_stats().peer_unreachable += 1;
        self.emit(Ev::PeerUnreachable { broker: a, peer: b });
        let peer = self.brokers[b].config.node_id;
        self.node_input(a, Input::PeerUnreachable { peer });
        true
    }
}
