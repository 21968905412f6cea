//! Brokers: the core's nodes, their inputs and outputs, timers, restarts.

use super::*;

pub(super) enum BrokerState {
    Up(Box<Node<MemoryStorage>>),
    Down(MemoryStorage),
    /// Only while a transition is under way, or after recovery failed.
    Gone,
}

pub(super) struct Broker {
    pub(super) az: usize,
    pub(super) config: NodeConfig,
    pub(super) node_seed: u64,
    pub(super) state: BrokerState,
    /// Bumped on every crash: flushes and closes of an older life are void.
    pub(super) generation: u64,
    pub(super) paused_until: Instant,
    pub(super) skew_ms: i64,
    pub(super) drift_ppm: i64,
    pub(super) disk_full: bool,
    pub(super) slow_flush_extra_ms: u64,
    /// The world time of the one armed timer event (stale ones are skipped).
    pub(super) timer_at: Option<Instant>,
    /// Crashed since the high watermark was last observed.
    pub(super) crashed_since_observed: bool,
}

impl World {
    pub(super) fn setup(&mut self) {
        for b in 0..self.brokers.len() {
            self.start_broker(b);
        }
        // Topics are created once, directly on the broker, before any fault:
        // the run is about what happens to their data.
        let topics: Vec<CreatableTopic> = self
            .scenario
            .workload
            .topics
            .iter()
            .map(|t| {
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                    .with_num_partitions(t.partitions)
                    .with_replication_factor(1)
            })
            .collect();
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::CreateTopics as i16)
            .with_request_api_version(CREATE_TOPICS_API_VERSION)
            .with_correlation_id(0);
        let body = RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(topics));
        let setup_conn = 0;
        let responses = self.direct_request(0, setup_conn, header, body);
        match responses.as_slice() {
            [ResponseKind::CreateTopics(r)] => {
                for t in &r.topics {
                    assert_eq!(t.error_code, 0, "setup creates topic {:?}", t.name);
                }
            }
            other => panic!("CreateTopics answered {other:?}"),
        }
    }

    pub(super) fn start_broker(&mut self, b: BrokerId) {
        let state = std::mem::replace(&mut self.brokers[b].state, BrokerState::Gone);
        let BrokerState::Down(storage) = state else {
            panic!("start_broker on a broker that is not down");
        };
        let now = self.node_now(b);
        let broker = &self.brokers[b];
        let config = broker.config.clone();
        let seed = broker
            .node_seed
            .wrapping_add(broker.generation.wrapping_mul(0x9e37_79b9));
        let result = catch_unwind(AssertUnwindSafe(move || {
            Node::new(config, storage, seed, now)
        }));
        match result {
            Ok(Ok(node)) => {
                self.brokers[b].state = BrokerState::Up(Box::new(node));
                self.drain_outputs(b);
            }
            Ok(Err(e)) => {
                self.violation(
                    "node_invariants",
                    format!("broker {b}: recovery refused its own disk: {e}"),
                );
                self.stopped = true;
            }
            Err(panic) => self.core_panicked(b, "Node::new (recovery)", panic),
        }
    }

    pub(super) fn core_panicked(
        &mut self,
        b: BrokerId,
        during: &str,
        panic: Box<dyn std::any::Any + Send>,
    ) {
        let message = panic_message(&panic);
        self.violation(
            "node_invariants",
            format!("broker {b} panicked in {during}: {message}"),
        );
        self.brokers[b].state = BrokerState::Gone;
        self.stopped = true;
    }

    pub(super) fn node_input(&mut self, b: BrokerId, input: Input) {
        let now = self.node_now(b);
        let BrokerState::Up(node) = &mut self.brokers[b].state else {
            if let Input::Request { connection, .. } = input {
                self.emit(Ev::Drop {
                    conn: connection,
                    what: "request to a down broker",
                });
            }
            return;
        };
        let result = catch_unwind(AssertUnwindSafe(|| node.handle(now, input)));
        if let Err(panic) = result {
            self.core_panicked(b, "handle", panic);
            return;
        }
        self.drain_outputs(b);
    }

    pub(super) fn drain_outputs(&mut self, b: BrokerId) {
        for _ in 0..OUTPUTS_PER_INPUT_MAX {
            let BrokerState::Up(node) = &mut self.brokers[b].state else {
                return;
            };
            let Some(output) = node.poll_output() else {
                self.rearm_node_timer(b);
                return;
            };
            match output {
                Output::Response {
                    connection,
                    correlation_id,
                    api_key,
                    api_version,
                    body,
                } => self.send_to_client(connection, correlation_id, api_key, api_version, body),
                Output::Flush { flush_id, paths } => {
                    self.stats.flushes += 1;
                    self.emit(Ev::Flush {
                        broker: b,
                        id: flush_id,
                        files: paths.len(),
                    });
                    let latency_us = uniform(&mut self.rng_disk, self.swarm.flush_latency_us);
                    let at = self.now
                        + Duration::from_micros(latency_us)
                        + Duration::from_millis(self.brokers[b].slow_flush_extra_ms);
                    let generation = self.brokers[b].generation;
                    self.push(
                        at,
                        EventKind::FlushDone {
                            broker: b,
                            generation,
                            flush_id,
                            paths,
                        },
                    );
                }
                Output::PeerRequest { to, .. } => {
                    unreachable!("broker {b} is standalone yet asked to reach peer {to}")
                }
                Output::CloseConnection { connection, reason } => {
                    self.emit(Ev::Close {
                        conn: connection,
                        by: "broker",
                        why: &reason,
                    });
                    if let Some(conn) = self.conns.remove(&connection) {
                        let at = self.now
                            + self.latency(self.brokers[b].az, self.clients[conn.client].az);
                        self.push(
                            at,
                            EventKind::ClientSawClose {
                                client: conn.client,
                                conn: connection,
                            },
                        );
                    }
                }
            }
        }
        panic!("broker {b} produced over {OUTPUTS_PER_INPUT_MAX} outputs for one input");
    }

    pub(super) fn rearm_node_timer(&mut self, b: BrokerId) {
        let BrokerState::Up(node) = &self.brokers[b].state else {
            return;
        };
        let Some(deadline) = node.poll_timeout() else {
            return;
        };
        // Never sooner than a microsecond from now, so a timer the node
        // considers due under skew cannot spin the loop at one instant.
        let at = self
            .world_time_of(b, deadline)
            .max(self.now + Duration::from_micros(1));
        if self.brokers[b].timer_at.is_some_and(|t| t <= at) {
            return;
        }
        self.brokers[b].timer_at = Some(at);
        self.push(at, EventKind::NodeTimer { broker: b });
    }

    pub(super) fn restart(&mut self, b: BrokerId) {
        if !matches!(self.brokers[b].state, BrokerState::Down(_)) {
            return;
        }
        self.stats.restarts += 1;
        self.emit(Ev::Restart { broker: b });
        self.start_broker(b);
    }

    /// A request handled on the spot, outside the network (setup, audit).
    pub(super) fn direct_request(
        &mut self,
        b: BrokerId,
        conn: ConnId,
        header: RequestHeader,
        body: RequestKind,
    ) -> Vec<ResponseKind> {
        let now = self.node_now(b);
        let BrokerState::Up(node) = &mut self.brokers[b].state else {
            panic!("direct request to broker {b}, which is down");
        };
        node.handle(
            now,
            Input::Request {
                connection: conn,
                header,
                body,
            },
        );
        let mut responses = Vec::new();
        let mut flushes = Vec::new();
        for _ in 0..OUTPUTS_PER_INPUT_MAX {
            match node.poll_output() {
                None => break,
                Some(Output::Response {
                    connection, body, ..
                }) if connection == conn => responses.push(body),
                Some(Output::Flush { flush_id, paths }) => flushes.push((flush_id, paths)),
                Some(_) => {}
            }
        }
        // Setup happens before anything can fail: flush synchronously so the
        // topics' metadata is durable from the start.
        for (flush_id, paths) in flushes {
            for path in &paths {
                node.storage_mut().sync(path).expect("setup sync");
            }
            node.handle(now, Input::FlushCompleted { flush_id });
        }
        responses
    }
}
