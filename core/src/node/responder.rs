//! Keeps responses in request order on each connection.
//!
//! Kafka answers the requests of one connection in the order they arrived;
//! clients that pipeline (librdkafka sends up to five produce requests at
//! once) rely on it. Requests here may complete out of order (a parked fetch,
//! a produce waiting for a flush), so each request takes a slot and a
//! response leaves only when every earlier slot of its connection has.

use super::io::{ConnectionId, Output};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use std::collections::{BTreeMap, VecDeque};

/// A request that owes a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    pub connection: ConnectionId,
    seq: u64,
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    correlation_id: i32,
    api_key: ApiKey,
    api_version: i16,
    body: Option<ResponseKind>,
}

#[derive(Debug, Default)]
struct ConnectionQueue {
    next_seq: u64,
    pending: VecDeque<Pending>,
}

#[derive(Debug)]
pub struct Responder {
    connections: BTreeMap<ConnectionId, ConnectionQueue>,
    in_flight_per_connection_max: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub struct TooManyInFlight;

impl Responder {
    pub fn new(in_flight_per_connection_max: usize) -> Responder {
        assert!(in_flight_per_connection_max > 0);
        Responder {
            connections: BTreeMap::new(),
            in_flight_per_connection_max,
        }
    }

    pub fn open(
        &mut self,
        connection: ConnectionId,
        correlation_id: i32,
        api_key: ApiKey,
        api_version: i16,
    ) -> Result<Slot, TooManyInFlight> {
        let queue = self.connections.entry(connection).or_default();
        if queue.pending.len() >= self.in_flight_per_connection_max {
            return Err(TooManyInFlight);
        }
        let seq = queue.next_seq;
        queue.next_seq += 1;
        queue.pending.push_back(Pending {
            seq,
            correlation_id,
            api_key,
            api_version,
            body: None,
        });
        Ok(Slot { connection, seq })
    }

    /// Fills `slot` and releases every response that is now at the head of
    /// its connection's queue. A slot of a closed connection is dropped.
    pub fn complete(&mut self, slot: Slot, body: ResponseKind, outputs: &mut VecDeque<Output>) {
        let Some(queue) = self.connections.get_mut(&slot.connection) else {
            return;
        };
        let Some(pending) = queue.pending.iter_mut().find(|p| p.seq == slot.seq) else {
            return;
        };
        assert!(pending.body.is_none(), "a slot is completed once");
        pending.body = Some(body);
        while queue.pending.front().is_some_and(|p| p.body.is_some()) {
            let p = queue.pending.pop_front().expect("front exists");
            outputs.push_back(Output::Response {
                connection: slot.connection,
                correlation_id: p.correlation_id,
                api_key: p.api_key,
                api_version: p.api_version,
                body: p.body.expect("checked above"),
            });
        }
    }

    pub fn close(&mut self, connection: ConnectionId) {
        self.connections.remove(&connection);
    }

    pub fn check_invariants(&self) {
        for queue in self.connections.values() {
            assert!(queue.pending.len() <= self.in_flight_per_connection_max);
            assert!(
                queue.pending.front().is_none_or(|p| p.body.is_none()),
                "a ready head is always released"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{MetadataResponse, ResponseKind};

    fn body() -> ResponseKind {
        ResponseKind::Metadata(MetadataResponse::default())
    }

    #[test]
    fn responses_leave_in_request_order() {
        let mut r = Responder::new(8);
        let mut out = VecDeque::new();
        let a = r.open(1, 10, ApiKey::Metadata, 1).unwrap();
        let b = r.open(1, 11, ApiKey::Metadata, 1).unwrap();
        r.complete(b, body(), &mut out);
        assert!(out.is_empty(), "b waits for a");
        r.complete(a, body(), &mut out);
        let ids: Vec<i32> = out
            .iter()
            .map(|o| match o {
                Output::Response { correlation_id, .. } => *correlation_id,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(ids, vec![10, 11]);
        r.check_invariants();
    }

    #[test]
    fn in_flight_is_bounded_and_closed_connections_drop_responses() {
        let mut r = Responder::new(1);
        let mut out = VecDeque::new();
        let a = r.open(1, 1, ApiKey::Metadata, 1).unwrap();
        assert_eq!(r.open(1, 2, ApiKey::Metadata, 1), Err(TooManyInFlight));
        r.close(1);
        r.complete(a, body(), &mut out);
        assert!(out.is_empty());
    }
}
