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
    /// Stopped and started again (any way) since the high watermark was
    /// last observed.
    pub(super) restarted_since_observed: bool,
    /// Cluster scenarios: the machine lost power and is still down, so it
    /// answers nothing (connects time out rather than being refused).
    pub(super) power_off: bool,
    /// Cut off from everyone until then (`isolate`).
    pub(super) isolated_until: Instant,
    /// The AlterPartition requests it sends arrive no earlier than this
    /// (`hold_alter_partition`).
    pub(super) alter_partition_held_until: Instant,
    /// When the last held AlterPartition arrives: held ones keep their
    /// order.
    pub(super) alter_partition_held_last: Instant,
    /// The BrokerHeartbeat requests it sends arrive no earlier than this
    /// (`hold_broker_heartbeat`), the last held one then.
    pub(super) heartbeat_held_until: Instant,
    pub(super) heartbeat_held_last: Instant,
    /// Its replica fetches take this much longer to arrive
    /// (`slow_replica_fetch`).
    pub(super) replica_fetch_extra_ms: u64,
    /// The answers to its replica fetches take this much longer to come
    /// back (`slow_replica_fetch_response`).
    pub(super) replica_fetch_response_extra_ms: u64,
    /// The answers to its KRaft requests (metadata-log fetches) arrive no
    /// earlier than this (`hold_metadata_fetch`).
    pub(super) metadata_fetch_held_until: Instant,
    /// Controlled shutdown under way (a cluster node asked the controller
    /// to move its leaderships away): it still takes every input, until
    /// `Node::shutdown_ready` or a deadline; then `stopping`.
    pub(super) controlled_stop: bool,
    /// Graceful shutdown's last part: no input but flush completions.
    pub(super) stopping: bool,
    /// When the current stage of a graceful shutdown runs out of time (an
    /// earlier stage's deadline event is then stale).
    pub(super) stop_deadline_at: Option<Instant>,
    /// `Output::Flush`es asked for and not yet completed, in this life.
    pub(super) flushes_in_flight: u32,
}

impl Broker {
    pub(super) fn new(
        az: usize,
        config: NodeConfig,
        node_seed: u64,
        drift_ppm: i64,
        epoch: Instant,
    ) -> Broker {
        Broker {
            az,
            config,
            node_seed,
            state: BrokerState::Down(MemoryStorage::new()),
            generation: 0,
            paused_until: epoch,
            skew_ms: 0,
            drift_ppm,
            disk_full: false,
            slow_flush_extra_ms: 0,
            timer_at: None,
            crashed_since_observed: false,
            restarted_since_observed: false,
            power_off: false,
            isolated_until: epoch,
            alter_partition_held_until: epoch,
            alter_partition_held_last: epoch,
            heartbeat_held_until: epoch,
            heartbeat_held_last: epoch,
            replica_fetch_extra_ms: 0,
            replica_fetch_response_extra_ms: 0,
            metadata_fetch_held_until: epoch,
            controlled_stop: false,
            stopping: false,
            stop_deadline_at: None,
            flushes_in_flight: 0,
        }
    }
}

impl World {
    pub(super) fn setup(&mut self) {
        if self.cluster.is_some() {
            self.cluster_setup();
            return;
        }
        for b in 0..self.brokers.len() {
            self.start_broker(b);
        }
        // Topics are created once, directly on the broker, before any fault:
        // the run is about what happens to their data.
        let topics = self.creatable_topics(1, &[]);
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
        self.begin_run();
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
                if let Some(cluster) = self.cluster.as_mut() {
                    // Recovery may have cut the log: read it afresh.
                    cluster.replicas.broker_restarted(b);
                }
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
        let t_us = (self.now - self.epoch).as_micros();
        let _span = self
            .core_logs
            .then(|| tracing::info_span!("broker", b, t_us).entered());
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
                } => {
                    if api_key == ApiKey::Produce && self.cluster.is_some() {
                        self.note_produce_acks(b, connection, &body);
                    }
                    if self.groups.is_some()
                        && matches!(api_key, ApiKey::OffsetCommit | ApiKey::OffsetFetch)
                    {
                        self.note_group_response(b, connection, correlation_id, &body);
                    }
                    self.send_to_origin(connection, correlation_id, api_key, api_version, body)
                }
                Output::Flush { flush_id, paths } => {
                    self.stats.flushes += 1;
                    self.brokers[b].flushes_in_flight += 1;
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
                Output::PeerRequest {
                    to,
                    channel,
                    header,
                    body,
                    ..
                } => {
                    assert!(
                        self.cluster.is_some(),
                        "broker {b} is standalone yet asked to reach peer {to}"
                    );
                    let Some(peer) = self.brokers.iter().position(|x| x.config.node_id == to)
                    else {
                        panic!("broker {b} asked to reach node {to}, which is not a voter");
                    };
                    assert_ne!(peer, b, "broker {b} sent a peer request to itself");
                    if self.brokers[b].stopping {
                        self.emit(Ev::Drop {
                            conn: 0,
                            what: "peer request from a stopping broker",
                        });
                    } else {
                        self.peer_request(b, peer, channel, header, body);
                    }
                }
                Output::CloseConnection { connection, reason } => {
                    self.emit(Ev::Close {
                        conn: connection,
                        by: "broker",
                        why: &reason,
                    });
                    let origin = self.conns.get(&connection).map(|c| c.origin);
                    match origin {
                        Some(Origin::Client(client)) => {
                            self.conns.remove(&connection);
                            let at = self.now
                                + self.latency(self.brokers[b].az, self.clients[client].az);
                            self.push(
                                at,
                                EventKind::ClientSawClose {
                                    client,
                                    conn: connection,
                                },
                            );
                        }
                        Some(Origin::Peer(a)) => {
                            // The peer that sent a bad request hears the
                            // FIN after one trip.
                            let after = self.one_way(b, a);
                            self.break_peer_link(a, b, after, Duration::ZERO, "closed by peer");
                        }
                        None => {}
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
        if self.brokers[b].controlled_stop || self.brokers[b].stopping {
            // A graceful shutdown still under way: it runs out of time and
            // exits now (the page cache survives).
            if self.brokers[b].controlled_stop {
                self.drain_and_stop(b);
            }
            if self.brokers[b].stopping {
                self.finish_stop(b, false);
            }
        }
        if !matches!(self.brokers[b].state, BrokerState::Down(_)) {
            return;
        }
        self.stats.restarts += 1;
        self.brokers[b].power_off = false;
        self.emit(Ev::Restart { broker: b });
        self.start_broker(b);
    }

    /// Graceful shutdown, as SIGTERM does it: a cluster node first asks for
    /// a controlled shutdown (`Node::begin_shutdown`: the controller moves
    /// its leaderships and ISR memberships away) and keeps running until
    /// `Node::shutdown_ready` or `CONTROLLED_SHUTDOWN_WAIT_MS`; then it
    /// stops taking input (its connections close), lets the flushes it
    /// asked for finish, and exits without losing its page cache. Returns
    /// false if it was not running.
    pub(super) fn begin_stop(&mut self, b: BrokerId) -> bool {
        let broker = &self.brokers[b];
        if !matches!(broker.state, BrokerState::Up(_)) || broker.stopping || broker.controlled_stop
        {
            return false;
        }
        self.emit(Ev::Stopping { broker: b });
        if self.cluster.is_none() {
            self.drain_and_stop(b);
            return true;
        }
        let now = self.node_now(b);
        let BrokerState::Up(node) = &mut self.brokers[b].state else {
            unreachable!("checked");
        };
        let result = catch_unwind(AssertUnwindSafe(|| node.begin_shutdown(now)));
        if let Err(panic) = result {
            self.core_panicked(b, "begin_shutdown", panic);
            return true;
        }
        self.brokers[b].controlled_stop = true;
        self.stop_deadline(b, CONTROLLED_SHUTDOWN_WAIT_MS);
        self.drain_outputs(b);
        self.maybe_controlled_stop_done(b);
        true
    }

    /// After an event touched `b`: a controlled shutdown the controller has
    /// completed goes on to its last part.
    pub(super) fn maybe_controlled_stop_done(&mut self, b: BrokerId) {
        let broker = &self.brokers[b];
        if !broker.controlled_stop {
            return;
        }
        let ready = matches!(&broker.state, BrokerState::Up(node) if node.shutdown_ready());
        if ready {
            self.drain_and_stop(b);
        }
    }

    /// The last part of a graceful shutdown: no more input, flushes finish,
    /// exit (or exit at once if none is in flight).
    pub(super) fn drain_and_stop(&mut self, b: BrokerId) {
        let broker = &mut self.brokers[b];
        broker.controlled_stop = false;
        broker.stopping = true;
        self.close_connections_of(b, false);
        if self.brokers[b].flushes_in_flight == 0 {
            self.finish_stop(b, true);
        } else {
            self.stop_deadline(b, STOP_FLUSH_WAIT_MS);
        }
    }

    /// The current stage of `b`'s graceful shutdown ends in `ms` at the
    /// latest.
    fn stop_deadline(&mut self, b: BrokerId, ms: u64) {
        let generation = self.brokers[b].generation;
        let at = self.now + Duration::from_millis(ms);
        self.brokers[b].stop_deadline_at = Some(at);
        self.push(
            at,
            EventKind::StopDeadline {
                broker: b,
                generation,
            },
        );
    }

    /// The stopping broker exits: `clean` when its flushes finished.
    pub(super) fn finish_stop(&mut self, b: BrokerId, clean: bool) {
        let state = std::mem::replace(&mut self.brokers[b].state, BrokerState::Gone);
        let BrokerState::Up(node) = state else {
            self.brokers[b].state = state;
            return;
        };
        self.emit(Ev::Stopped { broker: b, clean });
        let mut node = node;
        if clean {
            // As Kafka's LogManager.shutdown: every log synced, then the
            // clean-shutdown marker (KIP-966).
            let storage = node.storage_mut();
            for path in storage.paths() {
                storage.sync(&path).expect("a listed file syncs");
            }
            node.finish_clean_shutdown().expect("the marker is written");
        }
        let broker = &mut self.brokers[b];
        broker.state = BrokerState::Down(node.into_storage());
        broker.stopping = false;
        broker.controlled_stop = false;
        broker.generation += 1;
        broker.flushes_in_flight = 0;
        broker.timer_at = None;
        broker.restarted_since_observed = true;
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.stats.graceful_stops += u64::from(clean);
            cluster.stats.unclean_stops += u64::from(!clean);
            cluster.replicas.broker_restarted(b);
        }
    }

    /// Every connection of broker `b` dies with its process: clients see
    /// the RST after a trip; peers notice at once (FIN) or, when the
    /// machine went `silent` (power loss), after their timeout.
    pub(super) fn close_connections_of(&mut self, b: BrokerId, silent: bool) {
        for (id, _, client) in self.take_client_conns(|_, c| c.broker == b) {
            let at = self.now + self.latency(self.brokers[b].az, self.clients[client].az);
            self.push(at, EventKind::ClientSawClose { client, conn: id });
        }
        if self.cluster.is_some() {
            self.drop_links_of(b, silent);
        }
    }

    /// Remembers the partitions a successful Produce response from `b`
    /// acknowledges, for the replica checks after this event.
    fn note_produce_acks(&mut self, b: BrokerId, connection: ConnId, body: &ResponseKind) {
        let to_client = self
            .conns
            .get(&connection)
            .is_some_and(|c| matches!(c.origin, Origin::Client(_)));
        let ResponseKind::Produce(r) = body else {
            return;
        };
        if !to_client {
            return;
        }
        for topic in &r.responses {
            for part in &topic.partition_responses {
                if part.error_code != 0 {
                    continue;
                }
                if let Some(i) = self.find_tp(topic.name.0.as_str(), part.index) {
                    let cluster = self.cluster.as_mut().expect("checked by the caller");
                    cluster.replicas.produce_acked(b, i, part.base_offset);
                }
            }
        }
    }

    /// The workload's topics as CreateTopics wants them.
    pub(super) fn creatable_topics(
        &self,
        replication_factor: i16,
        configs: &[CreatableTopicConfig],
    ) -> Vec<CreatableTopic> {
        self.scenario
            .workload
            .topics
            .iter()
            .map(|t| {
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                    .with_num_partitions(t.partitions)
                    .with_replication_factor(replication_factor)
                    .with_configs(configs.to_vec())
            })
            .collect()
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
