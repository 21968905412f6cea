//! The test driver shared by the node's integration tests: one node on an
//! in-memory disk, requests in, responses and flushes out, time advanced
//! by hand through the node's own timers. Each test file adds its own
//! request helpers in an `impl Harness` block.

#![allow(dead_code)]

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use seedlog_core::node::{Input, Node, NodeConfig, Output};
use seedlog_core::storage::{MemoryStorage, Storage};
use seedlog_core::Instant;
use std::collections::BTreeMap;
use std::time::Duration;

/// Rounds of "drain outputs, complete flushes" before `pump` gives up.
const PUMP_ROUNDS_MAX: usize = 1000;

pub struct Harness {
    pub node: Node<MemoryStorage>,
    pub config: NodeConfig,
    pub now: Instant,
    pub next_correlation_id: i32,
    /// When false, flushes are held back until `complete_flushes`.
    pub auto_flush: bool,
    pub held_flushes: Vec<(u64, Vec<String>)>,
    pub responses: BTreeMap<i32, ResponseKind>,
    /// Correlation ids in the order their responses left the node.
    pub response_order: Vec<i32>,
    /// Connections the node closed.
    pub closed: Vec<u64>,
}

impl Harness {
    pub fn start(config: NodeConfig, storage: MemoryStorage) -> Harness {
        let now = Instant::from_millis(1_700_000_000_000);
        let node = Node::new(config.clone(), storage, 7, now).expect("node opens");
        let mut h = Harness {
            node,
            config,
            now,
            next_correlation_id: 1,
            auto_flush: true,
            held_flushes: Vec::new(),
            responses: BTreeMap::new(),
            response_order: Vec::new(),
            closed: Vec::new(),
        };
        h.pump();
        h
    }

    /// Loses everything not synced, then opens a new node on what is left.
    pub fn crash_and_restart(&mut self) {
        let placeholder =
            Node::new(self.config.clone(), MemoryStorage::new(), 1, self.now).expect("empty node");
        let mut storage = std::mem::replace(&mut self.node, placeholder).into_storage();
        storage.crash();
        self.node = Node::new(self.config.clone(), storage, 8, self.now).expect("node reopens");
        self.held_flushes.clear();
        self.auto_flush = true;
        self.pump();
    }

    pub fn send_on(
        &mut self,
        connection: u64,
        key: ApiKey,
        version: i16,
        body: RequestKind,
    ) -> i32 {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("client")));
        self.node.handle(
            self.now,
            Input::Request {
                connection,
                header,
                body,
            },
        );
        self.pump();
        correlation_id
    }

    pub fn take(&mut self, id: i32) -> Option<ResponseKind> {
        self.responses.remove(&id)
    }

    /// Drains the node; completes its flushes unless `auto_flush` is off.
    /// Every response must encode at the version it answers.
    pub fn pump(&mut self) {
        for _ in 0..PUMP_ROUNDS_MAX {
            let mut flushes = Vec::new();
            while let Some(output) = self.node.poll_output() {
                match output {
                    Output::Response {
                        correlation_id,
                        body,
                        api_version,
                        ..
                    } => {
                        let mut buf = bytes::BytesMut::new();
                        body.encode(&mut buf, api_version).unwrap_or_else(|e| {
                            panic!("response does not encode at v{api_version}: {e}: {body:?}")
                        });
                        self.response_order.push(correlation_id);
                        self.responses.insert(correlation_id, body);
                    }
                    Output::Flush { flush_id, paths } => flushes.push((flush_id, paths)),
                    Output::CloseConnection { connection, .. } => self.closed.push(connection),
                    Output::PeerRequest { to, .. } => {
                        panic!("a standalone node sent a request to peer {to}")
                    }
                }
            }
            if flushes.is_empty() {
                return;
            }
            if !self.auto_flush {
                self.held_flushes.extend(flushes);
                return;
            }
            for (flush_id, paths) in flushes {
                self.sync_and_complete(flush_id, &paths);
            }
        }
        panic!("pump did not settle in {PUMP_ROUNDS_MAX} rounds");
    }

    pub fn complete_flushes(&mut self) {
        self.auto_flush = true;
        for (flush_id, paths) in std::mem::take(&mut self.held_flushes) {
            self.sync_and_complete(flush_id, &paths);
        }
        self.pump();
    }

    fn sync_and_complete(&mut self, flush_id: u64, paths: &[String]) {
        for path in paths {
            self.node.storage_mut().sync(path).expect("sync");
        }
        self.node
            .handle(self.now, Input::FlushCompleted { flush_id });
    }

    /// Moves time forward by `ms`, firing every node timer due on the way
    /// at its own instant.
    pub fn advance(&mut self, ms: u64) {
        let until = self.now + Duration::from_millis(ms);
        while let Some(at) = self.node.poll_timeout() {
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            self.node.handle_timeout(self.now);
            self.pump();
        }
        self.now = until;
    }
}
