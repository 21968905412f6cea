//! The network: AZ links and latencies, connections, partitions (cuts),
//! clogging, and byte accounting.

use super::*;

pub(super) struct Conn {
    pub(super) client: ClientId,
    pub(super) broker: BrokerId,
    pub(super) established: bool,
    /// TCP keeps order: a message is never delivered before an earlier one.
    pub(super) last_to_node: Instant,
    pub(super) last_to_client: Instant,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Cut {
    pub(super) from: usize,
    pub(super) to: usize,
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

    /// The time until which traffic `from -> to` is cut, if it is.
    pub(super) fn cut_until(&self, from_az: usize, to_az: usize) -> Option<Instant> {
        self.cuts
            .iter()
            .filter(|c| c.from == from_az && c.to == to_az && c.until > self.now)
            .map(|c| c.until)
            .max()
    }

    /// When a message sent now arrives: after its latency, after any cut on
    /// its path heals (TCP retransmits), and never before an earlier message.
    pub(super) fn delivery_time(&mut self, from_az: usize, to_az: usize, last: Instant) -> Instant {
        let latency = self.latency(from_az, to_az);
        let mut at = self.now + latency;
        if let Some(until) = self.cut_until(from_az, to_az) {
            at = at.max(until + latency);
        }
        at.max(last)
    }

    pub(super) fn count_bytes(&mut self, from_az: usize, to_az: usize, bytes: u64) {
        *self.bytes.entry((from_az, to_az)).or_default() += bytes;
        self.stats.messages += 1;
    }

    pub(super) fn roundtrip_due(&mut self) -> bool {
        self.rng_net.gen_range(0..100u32) < self.swarm.codec_roundtrip_percent
    }

    pub(super) fn send_to_node(
        &mut self,
        conn_id: ConnId,
        header: RequestHeader,
        body: RequestKind,
    ) {
        let Some(conn) = self.conns.get(&conn_id) else {
            // The connection died (a crash, a reset) and the client has not
            // heard yet: the bytes go nowhere; the client retries once it
            // learns.
            self.emit(Ev::Drop {
                conn: conn_id,
                what: "request on a dead connection",
            });
            return;
        };
        let (client_az, broker_az, last) = (
            self.clients[conn.client].az,
            self.brokers[conn.broker].az,
            conn.last_to_node,
        );
        let api_key = ApiKey::try_from(header.request_api_key).expect("a known API");
        let version = header.request_api_version;
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .expect("request header encodes");
        let header_len = buf.len();
        body.encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("the simulator built a request that does not encode: {e}"));
        let bytes = 4 + buf.len() as u64;
        if self.roundtrip_due() {
            self.stats.codec_roundtrips += 1;
            let mut body_bytes = buf.freeze().slice(header_len..);
            match RequestKind::decode(api_key, &mut body_bytes, version) {
                Ok(decoded) if decoded == body && body_bytes.is_empty() => {}
                Ok(_) => self.violation(
                    "codec_roundtrip",
                    format!("{api_key:?} v{version} request decodes to a different value"),
                ),
                Err(e) => self.violation(
                    "codec_roundtrip",
                    format!("{api_key:?} v{version} request does not decode: {e}"),
                ),
            }
        }
        self.count_bytes(client_az, broker_az, bytes);
        self.emit(Ev::Request {
            conn: conn_id,
            api: header.request_api_key,
            corr: header.correlation_id,
            bytes,
        });
        let at = self.delivery_time(client_az, broker_az, last);
        self.conns.get_mut(&conn_id).expect("live").last_to_node = at;
        self.push(
            at,
            EventKind::ToNode {
                conn: conn_id,
                header,
                body,
            },
        );
    }

    pub(super) fn send_to_client(
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
        let (client_az, broker_az, last) = (
            self.clients[conn.client].az,
            self.brokers[conn.broker].az,
            conn.last_to_client,
        );
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, api_key.response_header_version(version))
            .expect("response header encodes");
        let header_len = buf.len();
        if let Err(e) = body.encode(&mut buf, version) {
            self.violation(
                "codec_roundtrip",
                format!("{api_key:?} v{version} response does not encode: {e}"),
            );
        }
        let bytes = 4 + buf.len() as u64;
        if self.roundtrip_due() {
            self.stats.codec_roundtrips += 1;
            let mut body_bytes = buf.freeze().slice(header_len..);
            match ResponseKind::decode(api_key, &mut body_bytes, version) {
                Ok(decoded) if decoded == body && body_bytes.is_empty() => {}
                Ok(_) => self.violation(
                    "codec_roundtrip",
                    format!("{api_key:?} v{version} response decodes to a different value"),
                ),
                Err(e) => self.violation(
                    "codec_roundtrip",
                    format!("{api_key:?} v{version} response does not decode: {e}"),
                ),
            }
        }
        self.count_bytes(broker_az, client_az, bytes);
        self.emit(Ev::Response {
            conn: conn_id,
            api: api_key as i16,
            corr: correlation_id,
            bytes,
        });
        let at = self.delivery_time(broker_az, client_az, last);
        self.conns.get_mut(&conn_id).expect("live").last_to_client = at;
        self.push(
            at,
            EventKind::ToClient {
                conn: conn_id,
                correlation_id,
                body,
            },
        );
    }

    pub(super) fn connect(&mut self, client: ClientId) {
        // Single broker today: every partition's leader is broker 0. With
        // replication, clients will pick the leader from Metadata.
        let broker = 0;
        let conn = self.next_conn;
        self.next_conn += 1;
        self.emit(Ev::Connect { client, conn });
        let (client_az, broker_az) = (self.clients[client].az, self.brokers[broker].az);
        self.conns.insert(
            conn,
            Conn {
                client,
                broker,
                established: false,
                last_to_node: self.now,
                last_to_client: self.now,
            },
        );
        self.clients[client].conn = ClientConn::Connecting(conn);
        let cut = self.cut_until(client_az, broker_az).is_some()
            || self.cut_until(broker_az, client_az).is_some();
        let rtt = self.latency(client_az, broker_az) + self.latency(broker_az, client_az);
        if cut {
            // SYNs vanish: the connect times out.
            let at = self.now + Duration::from_millis(self.swarm.request_timeout_ms);
            self.push(at, EventKind::ConnectFailed { client, conn });
        } else if !matches!(self.brokers[broker].state, BrokerState::Up(_)) {
            self.push(self.now + rtt, EventKind::ConnectFailed { client, conn });
        } else {
            self.push(self.now + rtt, EventKind::Connected { conn });
        }
    }

    pub(super) fn on_connected(&mut self, conn_id: ConnId) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let (client, broker) = (conn.client, conn.broker);
        if !matches!(self.brokers[broker].state, BrokerState::Up(_)) {
            self.conns.remove(&conn_id);
            self.emit(Ev::ConnectFailed {
                client,
                conn: conn_id,
            });
            self.client_lost_connection(client);
            return;
        }
        conn.established = true;
        self.stats.connections_opened += 1;
        self.emit(Ev::Connected { conn: conn_id });
        self.clients[client].conn = ClientConn::Open(conn_id);
        self.client_tick(client);
    }

    /// The client closes its connection (a request timed out): in-flight
    /// messages are gone; the broker hears of it when the FIN/RST arrives.
    pub(super) fn client_close(&mut self, client: ClientId, why: &str) {
        let conn_id = match self.clients[client].conn {
            ClientConn::Open(c) | ClientConn::Connecting(c) => c,
            ClientConn::Down { .. } => return,
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
        self.client_lost_connection(client);
    }

    pub(super) fn notify_node_of_close(&mut self, conn_id: ConnId, conn: &Conn) {
        if !conn.established {
            return;
        }
        let (client_az, broker_az) = (self.clients[conn.client].az, self.brokers[conn.broker].az);
        let at = self.delivery_time(client_az, broker_az, conn.last_to_node);
        let generation = self.brokers[conn.broker].generation;
        self.push(
            at,
            EventKind::NodeSawClose {
                broker: conn.broker,
                generation,
                conn: conn_id,
            },
        );
    }

    pub(super) fn reset_connections(&mut self, client: Option<u32>) {
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| client.is_none_or(|x| x as usize == c.client))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let conn = self.conns.remove(&id).expect("listed");
            self.stats.connections_broken += 1;
            self.emit(Ev::Close {
                conn: id,
                by: "network",
                why: "reset",
            });
            self.notify_node_of_close(id, &conn);
            self.push(
                self.now,
                EventKind::ClientSawClose {
                    client: conn.client,
                    conn: id,
                },
            );
        }
    }
}
