//! Clients: producers and consumers (and, in cluster scenarios, the setup
//! admin), their connections, retries and deadlines.
//!
//! A client keeps one connection per broker it needs, as Kafka's clients
//! do. On a standalone broker that is one connection to broker 0, opened at
//! once and reopened after every loss (the behaviour, random draws and
//! trace of before clusters). In a cluster a client learns partition
//! leaders from Metadata (`cluster.rs`), opens a connection to a broker
//! only when it has something to send there, sends each partition's
//! Produce and Fetch to its leader, and refreshes Metadata on leadership
//! errors and lost connections.

use super::*;
use cluster::{Admin, MetadataView};
use fetch_session::{FetchSession, SessionFetch, Wanted};
use idempotence::Idempotence;
use kafka_protocol::messages::fetch_request::ForgottenTopic;

#[derive(Debug, Clone, Copy)]
pub(super) enum ClientConn {
    Down { reconnect_at: Instant },
    Connecting(ConnId),
    Open(ConnId),
}

/// A send on the wire, awaiting its answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct SendInFlight {
    pub(super) id: SendId,
    pub(super) deadline: Instant,
    pub(super) broker: BrokerId,
}

pub(super) struct Producer {
    pub(super) next_send_at: Instant,
    /// Sends waiting to go out (new or to retry), oldest first.
    pub(super) queue: VecDeque<SendId>,
    /// correlation id -> the send
    pub(super) in_flight: BTreeMap<i32, SendInFlight>,
    pub(super) retry_at: Instant,
    /// `workload.idempotent`.
    pub(super) idempotence: Option<Idempotence>,
    /// `partitioner = "round_robin"`: the index in `tps` of the next send.
    pub(super) next_tp: usize,
}

pub(super) struct Consumer {
    pub(super) positions: Positions,
    pub(super) next_fetch_at: Instant,
    /// broker -> the fetch in flight to it: one per broker at a time.
    pub(super) in_flight: BrokerMap<FetchInFlight>,
    /// broker -> the KIP-227 fetch session with it.
    pub(super) sessions: BrokerMap<FetchSession>,
}

pub(super) struct FetchInFlight {
    pub(super) correlation_id: i32,
    pub(super) deadline: Instant,
    /// Every partition the fetch session holds, at the position asked
    /// from, by index in the world's `tps`, ascending: an answer for a
    /// partition whose position has moved since (it was read from its new
    /// leader meanwhile) is stale and dropped, as Kafka's consumer drops
    /// it.
    pub(super) asked: Vec<Wanted>,
}

impl Consumer {
    /// The fetch to `broker` is lost (connection closed, timed out, or its
    /// answer not processed): its session's next fetch is full.
    pub(super) fn fetch_lost(&mut self, broker: BrokerId) {
        self.in_flight.remove(&broker);
        if let Some(session) = self.sessions.get_mut(&broker) {
            session.handle_error();
        }
    }
}

pub(super) enum ClientKind {
    Producer(Producer),
    Consumer(Consumer),
    /// Cluster scenarios: creates the topics once the cluster is up.
    Admin(Admin),
    /// A member of the scenario's consumer group (`groups.rs`).
    Member(Box<GroupMember>),
}

impl ClientKind {
    /// The fetch state of a consumer or a group member.
    pub(super) fn consumer(&self) -> Option<&Consumer> {
        match self {
            ClientKind::Consumer(c) => Some(c),
            ClientKind::Member(m) => Some(&m.consumer),
            _ => None,
        }
    }

    pub(super) fn consumer_mut(&mut self) -> Option<&mut Consumer> {
        match self {
            ClientKind::Consumer(c) => Some(c),
            ClientKind::Member(m) => Some(&mut m.consumer),
            _ => None,
        }
    }
}

pub(super) struct Client {
    pub(super) az: usize,
    /// Per broker; a broker absent here was never connected to.
    pub(super) conns: BrokerMap<ClientConn>,
    pub(super) next_correlation_id: i32,
    pub(super) wake_at: Option<Instant>,
    pub(super) kind: ClientKind,
    /// Cluster scenarios: what the client knows of partition leaders.
    pub(super) meta: Option<MetadataView>,
}

/// Kafka errors after which a client re-reads Metadata: the broker it
/// asked is not (or no longer) the partition's leader.
pub(super) fn leadership_error(code: i16) -> bool {
    [
        ResponseError::NotLeaderOrFollower,
        ResponseError::FencedLeaderEpoch,
        ResponseError::UnknownLeaderEpoch,
        ResponseError::LeaderNotAvailable,
        ResponseError::UnknownTopicOrPartition,
        ResponseError::NotEnoughReplicas,
        ResponseError::NotEnoughReplicasAfterAppend,
    ]
    .iter()
    .any(|e| e.code() == code)
}

/// The value of record `i` of send `id` by producer `client`:
/// `c{client}-s{id}-r{i}`, unique in a run, so a value read back names the
/// send it came from. Written with `itoa`: `format!` per record was 1.4% of
/// a 3-broker simulation's instructions.
fn record_value(client: ClientId, id: SendId, i: u32) -> Vec<u8> {
    let mut digits = itoa::Buffer::new();
    let mut value = Vec::with_capacity(32);
    value.push(b'c');
    value.extend_from_slice(digits.format(client).as_bytes());
    value.extend_from_slice(b"-s");
    value.extend_from_slice(digits.format(id).as_bytes());
    value.extend_from_slice(b"-r");
    value.extend_from_slice(digits.format(i).as_bytes());
    value
}

impl Client {
    pub(super) fn conn(&self, broker: BrokerId) -> Option<ConnId> {
        match self.conns.get(&broker) {
            Some(ClientConn::Open(c)) => Some(*c),
            _ => None,
        }
    }

    /// The broker whose connection is `conn`, if it is one of ours.
    pub(super) fn broker_of(&self, conn: ConnId) -> Option<BrokerId> {
        self.conns.iter().find_map(|(b, c)| match c {
            ClientConn::Open(x) | ClientConn::Connecting(x) if *x == conn => Some(*b),
            _ => None,
        })
    }
}

impl World {
    pub(super) fn new_client(&self, az: usize, kind: ClientKind) -> Client {
        let meta = self
            .cluster
            .is_some()
            .then(|| MetadataView::new(self.tps.len(), self.epoch));
        Client {
            az,
            conns: BrokerMap::new(),
            next_correlation_id: 1,
            wake_at: None,
            kind,
            meta,
        }
    }

    /// The broker a client sends `tp`'s requests to: broker 0 on a
    /// standalone broker, else the leader it last learned.
    pub(super) fn leader_for(&self, client: ClientId, tp: usize) -> Option<BrokerId> {
        match &self.clients[client].meta {
            None => Some(0),
            Some(m) => m.leader(tp),
        }
    }

    /// Whether a client needs a connection to `broker` now (so reconnects
    /// to it). Always on a standalone broker, as before clusters.
    ///
    /// `leaders` memoizes a consumer's [`World::consumer_leaders`] across
    /// the calls of one loop over the brokers: with thousands of
    /// partitions, a pass over its positions per broker dominated a run.
    pub(super) fn client_wants(
        &self,
        client: ClientId,
        broker: BrokerId,
        leaders: &mut Option<Vec<bool>>,
    ) -> bool {
        if self.cluster.is_none() {
            return true;
        }
        let c = &self.clients[client];
        if c.meta.as_ref().is_some_and(|m| m.wants(broker, self.now)) {
            return true;
        }
        match &c.kind {
            ClientKind::Producer(p) => p.queue.iter().any(|id| {
                let op = self.history.send(*id);
                let tp = self.tp_index_of(&op.topic, op.partition);
                self.leader_for(client, tp) == Some(broker)
            }),
            ClientKind::Consumer(consumer) => {
                let leaders =
                    leaders.get_or_insert_with(|| self.consumer_leaders(client, consumer));
                self.consumer_has_work(client, leaders, broker)
            }
            ClientKind::Admin(a) => a.wants(broker),
            ClientKind::Member(m) => {
                self.member_wants(client, broker) || {
                    let leaders =
                        leaders.get_or_insert_with(|| self.consumer_leaders(client, &m.consumer));
                    self.consumer_has_work(client, leaders, broker)
                }
            }
        }
    }

    /// Per broker: whether it leads (as the client last learned) one of
    /// the consumer's partitions. Its callers group the positions first
    /// (`group_positions`).
    fn consumer_leaders(&self, client: ClientId, consumer: &Consumer) -> Vec<bool> {
        let by_leader = consumer
            .positions
            .by_leader(self.leaders_generation(client))
            .expect("positions grouped by the caller");
        by_leader.iter().map(|led| !led.is_empty()).collect()
    }

    /// The generation of what `client` knows of leaders (see
    /// `MetadataView::leaders_generation`); on a standalone broker, which
    /// leads everything, it never changes.
    fn leaders_generation(&self, client: ClientId) -> u64 {
        self.clients[client]
            .meta
            .as_ref()
            .map_or(0, MetadataView::leaders_generation)
    }

    /// Brings the grouping of the consumer's positions by leader up to
    /// date (see `Positions`): a pass over them when a position came or
    /// went or a leader changed since the last.
    fn group_positions(&mut self, client: ClientId) {
        let generation = self.leaders_generation(client);
        let consumer = self.clients[client].kind.consumer().expect("a consumer");
        if consumer.positions.by_leader(generation).is_some() {
            return;
        }
        let grouped: Vec<(usize, Option<BrokerId>)> = consumer
            .positions
            .iter()
            .map(|(i, _)| (i, self.leader_for(client, i)))
            .collect();
        let brokers = self.brokers.len();
        let consumer = self.clients[client]
            .kind
            .consumer_mut()
            .expect("a consumer");
        consumer
            .positions
            .group(brokers, generation, grouped.into_iter());
    }

    /// Whether the consumer has partitions to fetch from `broker`, given
    /// its `consumer_leaders`.
    fn consumer_has_work(&self, client: ClientId, leaders: &[bool], broker: BrokerId) -> bool {
        if self.cluster.is_none() {
            return true;
        }
        if !self.client_may_fetch(client) || self.member_blocks_fetch(client, broker) {
            return false;
        }
        leaders[broker]
    }

    pub(super) fn client_lost_connection(&mut self, client: ClientId, broker: BrokerId) {
        let backoff = uniform(&mut self.rng_client, self.swarm.reconnect_backoff_ms);
        let c = &mut self.clients[client];
        c.conns.insert(
            broker,
            ClientConn::Down {
                reconnect_at: self.now + Duration::from_millis(backoff),
            },
        );
        if let Some(m) = &mut c.meta {
            m.connection_lost(broker, self.brokers.len());
        }
        if let ClientKind::Producer(Producer {
            idempotence: Some(idem),
            ..
        }) = &mut c.kind
        {
            idem.connection_lost(broker);
        }
        match &mut c.kind {
            ClientKind::Producer(p) => {
                // Whatever was in flight may or may not have been appended;
                // it goes back to the front of the queue, in order.
                let lost_corrs: Vec<i32> = p
                    .in_flight
                    .iter()
                    .filter(|(_, f)| f.broker == broker)
                    .map(|(corr, _)| *corr)
                    .collect();
                let lost: Vec<SendId> = lost_corrs
                    .iter()
                    .map(|corr| p.in_flight.remove(corr).expect("listed").id)
                    .collect();
                for id in lost.iter().rev() {
                    p.queue.push_front(*id);
                }
                for id in lost {
                    self.history.send_mut(id).maybe_appended = true;
                }
            }
            ClientKind::Consumer(consumer) => consumer.fetch_lost(broker),
            ClientKind::Admin(a) => a.connection_lost(broker, self.brokers.len()),
            ClientKind::Member(_) => self.member_lost_connection(client, broker),
        }
        self.rearm_client(client);
    }

    pub(super) fn rearm_client(&mut self, client: ClientId) {
        if self.clients[client].kind.consumer().is_some() {
            // `consumer_leaders` reads the grouping.
            self.group_positions(client);
        }
        let c = &self.clients[client];
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let ClientKind::Member(m) = &c.kind {
            if m.life != groups::Life::Running {
                // A stalled or dead process wakes for nothing else.
                if let Some(at) = self.member_next_wake(client) {
                    consider(at);
                }
                return self.arm_client_at(client, next);
            }
        }
        let brokers: Vec<BrokerId> = self.client_brokers(client);
        let mut leaders = None;
        for b in &brokers {
            let reconnect_at = match c.conns.get(b) {
                Some(ClientConn::Down { reconnect_at }) => Some(*reconnect_at),
                // Never connected: free to connect now.
                None => Some(self.now),
                Some(_) => None,
            };
            if let Some(at) = reconnect_at {
                if self.client_wants(client, *b, &mut leaders) {
                    consider(at);
                }
            }
        }
        let delivery_timeout = Duration::from_millis(self.scenario.workload.delivery_timeout_ms);
        match &c.kind {
            ClientKind::Producer(p) => {
                if p.next_send_at < self.produce_stop_at {
                    consider(p.next_send_at);
                }
                if let Some(idem) = &p.idempotence {
                    let open = c.conns.values().any(|x| matches!(x, ClientConn::Open(_)));
                    if let Some(at) = idem.next_wake(open, self.now) {
                        consider(at);
                    }
                }
                if let Some(deadline) = p.in_flight.values().map(|f| f.deadline).min() {
                    consider(deadline);
                }
                if let Some(first) = p.queue.front() {
                    let invoke =
                        self.epoch + Duration::from_millis(self.history.send(*first).invoke_ms);
                    consider(invoke + delivery_timeout);
                    if self.producer_can_send_some(client, p) {
                        consider(p.retry_at.max(self.now));
                    }
                }
            }
            ClientKind::Consumer(_) | ClientKind::Member(_) => {
                let consumer = c.kind.consumer().expect("a consumer");
                let leaders =
                    leaders.get_or_insert_with(|| self.consumer_leaders(client, consumer));
                for b in &brokers {
                    if let Some(f) = consumer.in_flight.get(b) {
                        consider(f.deadline);
                    } else if c.conn(*b).is_some() && self.consumer_has_work(client, leaders, *b) {
                        consider(consumer.next_fetch_at.max(self.now));
                    }
                }
                if matches!(c.kind, ClientKind::Member(_)) {
                    if let Some(at) = self.member_next_wake(client) {
                        consider(at);
                    }
                }
            }
            ClientKind::Admin(a) => {
                if let Some(at) = a.next_wake(c, self.now) {
                    consider(at);
                }
            }
        }
        if let Some(m) = &c.meta {
            if let Some(at) = m.next_wake(c, self.now, self.metadata_max_age()) {
                consider(at);
            }
        }
        self.arm_client_at(client, next);
    }

    fn arm_client_at(&mut self, client: ClientId, next: Option<Instant>) {
        let Some(at) = next else { return };
        let at = at.max(self.now);
        if self.clients[client]
            .wake_at
            .is_some_and(|w| w <= at && w >= self.now)
        {
            return;
        }
        self.clients[client].wake_at = Some(at);
        self.push(at, EventKind::ClientWake { client });
    }

    /// The brokers a client may talk to: broker 0 alone when standalone.
    fn client_brokers(&self, client: ClientId) -> Vec<BrokerId> {
        if self.cluster.is_none() {
            let _ = client;
            return vec![0];
        }
        (0..self.brokers.len()).collect()
    }

    /// Whether some queued send has an open connection to its leader with
    /// room in that connection's window.
    fn producer_can_send_some(&self, client: ClientId, p: &Producer) -> bool {
        if p.idempotence.as_ref().is_some_and(|i| i.id.is_none()) {
            return false; // waits for its producer id (its own wake-up)
        }
        let c = &self.clients[client];
        p.queue.iter().any(|id| {
            let op = self.history.send(*id);
            let tp = self.tp_index_of(&op.topic, op.partition);
            self.leader_for(client, tp)
                .is_some_and(|b| c.conn(b).is_some() && self.window_room(p, b))
        })
    }

    fn window_room(&self, p: &Producer, broker: BrokerId) -> bool {
        let used = p.in_flight.values().filter(|f| f.broker == broker).count();
        (used as u32) < self.swarm.in_flight_max
    }

    pub(super) fn client_tick(&mut self, client: ClientId) {
        if matches!(self.clients[client].kind, ClientKind::Member(_)) {
            // Wakes, churns and sends its group requests first; a stalled
            // or dead process does nothing else.
            self.member_tick(client);
            if self.member(client).life != groups::Life::Running {
                self.rearm_client(client);
                return;
            }
        }
        if self.clients[client].kind.consumer().is_some() {
            self.group_positions(client);
        }
        // `connect` changes no leader a consumer knows: the memo holds.
        let mut leaders = None;
        for b in self.client_brokers(client) {
            let due = match self.clients[client].conns.get(&b) {
                Some(ClientConn::Down { reconnect_at }) => *reconnect_at <= self.now,
                // Never connected: free to connect now.
                None => true,
                Some(_) => false,
            };
            if due && self.client_wants(client, b, &mut leaders) {
                self.connect(client, b);
            }
        }
        match self.clients[client].kind {
            ClientKind::Producer(_) => self.producer_tick(client),
            ClientKind::Consumer(_) | ClientKind::Member(_) => self.consumer_tick(client),
            ClientKind::Admin(_) => self.admin_tick(client),
        }
        if self.clients[client].meta.is_some() {
            self.metadata_tick(client);
        }
        self.rearm_client(client);
    }

    pub(super) fn next_correlation_id(&mut self, client: ClientId) -> i32 {
        let c = &mut self.clients[client];
        let id = c.next_correlation_id;
        c.next_correlation_id = c.next_correlation_id.wrapping_add(1).max(1);
        id
    }

    pub(super) fn producer_tick(&mut self, client: ClientId) {
        let now = self.now;
        let ms = self.ms();
        // Time out a request that went unanswered: close the connection, as
        // the Java client does, so the broker and client start afresh.
        let timed_out: BTreeSet<BrokerId> = match &self.clients[client].kind {
            ClientKind::Producer(p) => p
                .in_flight
                .values()
                .filter(|f| f.deadline <= now)
                .map(|f| f.broker)
                .collect(),
            _ => unreachable!(),
        };
        for b in timed_out {
            self.client_close(client, b, "request timeout");
        }
        // New sends.
        loop {
            let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                unreachable!()
            };
            if p.next_send_at > now || p.next_send_at >= self.produce_stop_at {
                break;
            }
            if p.queue.len() >= PRODUCER_QUEUE_MAX {
                // buffer.memory is full: the application's send blocks, so
                // the send is not invoked yet (not a failure).
                p.next_send_at =
                    now + Duration::from_millis(self.swarm.produce_interval_ms[1].max(1));
                break;
            }
            let id = self.new_send(client);
            let gap = uniform(&mut self.rng_client, self.swarm.produce_interval_ms).max(1);
            let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                unreachable!()
            };
            p.queue.push_back(id);
            p.next_send_at = p.next_send_at + Duration::from_millis(gap);
        }
        // Give up on sends past the delivery timeout that are not in flight.
        let delivery_timeout_ms = self.scenario.workload.delivery_timeout_ms;
        loop {
            let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                unreachable!()
            };
            let Some(first) = p.queue.front().copied() else {
                break;
            };
            let op = self.history.send(first);
            if op.invoke_ms + delivery_timeout_ms > ms {
                break;
            }
            p.queue.pop_front();
            let maybe_appended = op.maybe_appended;
            let outcome = if maybe_appended {
                SendOutcome::Indeterminate
            } else {
                SendOutcome::Failed {
                    error_code: ResponseError::RequestTimedOut.code(),
                }
            };
            self.complete_send(first, outcome);
            self.idempotent_send_done(client, first, maybe_appended);
        }
        // Send what the windows allow, in queue order; a partition whose
        // earliest queued send cannot go holds back its later ones, so one
        // producer's sends to one partition leave in order.
        if !self.idempotence_tick(client) {
            return;
        }
        let ClientKind::Producer(p) = &self.clients[client].kind else {
            unreachable!()
        };
        if p.retry_at > now {
            return;
        }
        let mut held: BTreeSet<usize> = BTreeSet::new();
        let mut i = 0;
        // Bounded: each round sends one send (shortening the queue) or
        // steps past one.
        while i < PRODUCER_QUEUE_MAX * 4 {
            let ClientKind::Producer(p) = &self.clients[client].kind else {
                unreachable!()
            };
            let Some(id) = p.queue.get(i).copied() else {
                break;
            };
            let op = self.history.send(id);
            let tp = self.tp_index_of(&op.topic, op.partition);
            let target = self.leader_for(client, tp).and_then(|b| {
                let conn = self.clients[client].conn(b)?;
                self.window_room(p, b).then_some((b, conn))
            });
            let Some((broker, conn)) = target.filter(|_| !held.contains(&tp)) else {
                if self.leader_for(client, tp).is_none() {
                    self.want_metadata(client);
                }
                held.insert(tp);
                i += 1;
                continue;
            };
            let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                unreachable!()
            };
            p.queue.remove(i);
            self.send_produce(client, id, broker, conn);
        }
    }

    fn send_produce(&mut self, client: ClientId, id: SendId, broker: BrokerId, conn: ConnId) {
        let now = self.now;
        let corr = self.next_correlation_id(client);
        let op = self.history.send_mut(id);
        op.attempts += 1;
        let acks = op.acks;
        let records: Vec<TestRecord<'_>> = op
            .values
            .iter()
            .map(|v| (None, Some(v.as_slice())))
            .collect();
        let mut batch = build_batch(&records, (now.as_nanos() / 1_000_000) as i64);
        let (topic, partition) = (op.topic.clone(), op.partition);
        let tp = self.tp_index_of(&topic, partition);
        self.stamp_send(client, id, tp, &mut batch);
        let op = self.history.send(id);
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(op.topic.clone())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(op.partition)
                    .with_records(Some(Bytes::from(batch)))])]);
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(PRODUCE_API_VERSION)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str("seedlog-sim")));
        if acks == 0 {
            // Fire and forget: done once on the wire.
            self.history.send_mut(id).maybe_appended = true;
            self.complete_send(id, SendOutcome::Unacked);
        } else {
            let deadline = now + Duration::from_millis(self.swarm.request_timeout_ms);
            let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                unreachable!()
            };
            p.in_flight.insert(
                corr,
                SendInFlight {
                    id,
                    deadline,
                    broker,
                },
            );
        }
        self.send_to_node(conn, header, RequestKind::Produce(request));
    }

    pub(super) fn new_send(&mut self, client: ClientId) -> SendId {
        let i = match self.scenario.workload.partitioner {
            Partitioner::Random => self.rng_client.gen_range(0..self.tps.len()),
            Partitioner::RoundRobin => {
                let producers = self.scenario.topology.producers.len();
                let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                    unreachable!("only producers send");
                };
                let i = p.next_tp;
                p.next_tp = if i + producers < self.tps.len() {
                    i + producers
                } else {
                    // Producer `client` (clients list producers first)
                    // starts again at its first partition.
                    client % self.tps.len()
                };
                i
            }
        };
        assert!(i < self.tps.len());
        let tp = self.tps[i].clone();
        let total: u32 = self.swarm.acks_weights.iter().map(|(_, w)| *w).sum();
        let mut pick = self.rng_client.gen_range(0..total);
        let mut acks = self.swarm.acks_weights[0].0;
        for (a, w) in &self.swarm.acks_weights {
            if pick < *w {
                acks = *a;
                break;
            }
            pick -= *w;
        }
        let count = self
            .rng_client
            .gen_range(1..=self.swarm.records_per_send_max);
        let id = self.history.next_send_id();
        let values: Vec<Vec<u8>> = (0..count).map(|i| record_value(client, id, i)).collect();
        self.emit(Ev::Invoke {
            send: id,
            producer: client,
            tp: &tp,
            acks,
            records: values.len(),
        });
        self.history.add_send(SendOp {
            id,
            producer: client as u32,
            topic: tp.0,
            partition: tp.1,
            acks,
            values,
            invoke_ms: self.ms(),
            complete_ms: None,
            outcome: SendOutcome::Pending,
            maybe_appended: false,
            attempts: 0,
            resequenced: false,
        });
        self.stats.sends += 1;
        id
    }

    pub(super) fn complete_send(&mut self, id: SendId, outcome: SendOutcome) {
        let ms = self.ms();
        self.history.complete(id, outcome, ms);
        match outcome {
            SendOutcome::Acked { .. } => {
                self.stats.acked += 1;
                let producer = self.history.send(id).producer;
                self.ack_times_ms.entry(producer).or_default().push(ms);
                if !self.scenario.workload.idempotent {
                    // nonmonotonic_send, in acknowledgement order: as the
                    // acks arrive (the history may forget the sends).
                    let rules = self.history_rules();
                    let judged = self.send_order.acked(self.history.send(id), rules);
                    if let Some(message) = judged {
                        self.violation("nonmonotonic_send", message);
                    }
                }
                if self.healed {
                    self.stats.acked_after_heal += 1;
                }
            }
            SendOutcome::Unacked => self.stats.unacked_acks0 += 1,
            SendOutcome::Failed { .. } => self.stats.failed += 1,
            SendOutcome::Indeterminate => self.stats.indeterminate += 1,
            SendOutcome::Pending => unreachable!("complete with a real outcome"),
        }
        self.emit(Ev::Complete { send: id, outcome });
    }

    pub(super) fn client_response(
        &mut self,
        client: ClientId,
        conn: ConnId,
        correlation_id: i32,
        body: ResponseKind,
    ) {
        let Some(broker) = self.conns.get(&conn).map(|c| c.broker) else {
            return;
        };
        if self.clients[client].conn(broker) != Some(conn) {
            return;
        }
        let body = if let ClientKind::Member(m) = &self.clients[client].kind {
            if let groups::Life::Paused { until } = m.life {
                // A stalled process reads its socket when it wakes.
                let kind = EventKind::ToOrigin {
                    conn,
                    correlation_id,
                    body: Box::new(body),
                };
                self.push(until, kind);
                return;
            }
            match self.member_response(client, correlation_id, body) {
                Some(body) => body,
                None => {
                    self.client_tick(client);
                    return;
                }
            }
        } else {
            body
        };
        match body {
            ResponseKind::Produce(r) => self.produce_answered(client, broker, correlation_id, r),
            ResponseKind::Fetch(r) => self.consumer_fetched(client, broker, correlation_id, r),
            ResponseKind::Metadata(r) => self.metadata_answered(client, broker, correlation_id, r),
            ResponseKind::CreateTopics(r) => {
                self.create_topics_answered(client, broker, correlation_id, r)
            }
            ResponseKind::AlterPartitionReassignments(r) => {
                self.reassignment_answered(client, correlation_id, r)
            }
            ResponseKind::InitProducerId(r) => {
                self.init_producer_id_answered(client, correlation_id, r)
            }
            other => panic!("unexpected response {other:?}"),
        }
        self.client_tick(client);
    }

    fn produce_answered(
        &mut self,
        client: ClientId,
        broker: BrokerId,
        correlation_id: i32,
        r: ProduceResponse,
    ) {
        let ClientKind::Producer(p) = &mut self.clients[client].kind else {
            panic!("a produce response reached a client that does not produce");
        };
        let Some(SendInFlight { id, .. }) = p.in_flight.remove(&correlation_id) else {
            panic!("produce response to unknown correlation id {correlation_id}");
        };
        let part = r
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .expect("one partition per produce");
        let code = part.error_code;
        let idempotent = p.idempotence.is_some();
        let producer_lost = [
            ResponseError::OutOfOrderSequenceNumber,
            ResponseError::UnknownProducerId,
            ResponseError::InvalidProducerEpoch,
        ]
        .iter()
        .any(|e| e.code() == code);
        if code == 0 {
            self.complete_send(
                id,
                SendOutcome::Acked {
                    offset: part.base_offset,
                },
            );
            self.observe_ack(id, broker);
            self.idempotent_send_done(client, id, false);
        } else if idempotent && code == ResponseError::DuplicateSequenceNumber.code() {
            // In the log already, at an offset the broker no longer
            // remembers: the Java client reports success without one.
            self.complete_send(id, SendOutcome::Indeterminate);
            self.idempotent_send_done(client, id, false);
        } else if idempotent && producer_lost {
            // The broker no longer matches our sequences: a new producer
            // id, and this send goes again under it.
            self.history.send_mut(id).maybe_appended = true;
            self.reset_producer_id(client, self.now);
            self.requeue_send(client, id);
        } else if ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable()) {
            // A storage error may come after the append (a failed
            // flush): the records can still become visible.
            self.history.send_mut(id).maybe_appended = true;
            let backoff = uniform(&mut self.rng_client, [50, 200]);
            // Retries go first, in send order.
            self.requeue_send(client, id);
            let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                unreachable!()
            };
            p.retry_at = self.now + Duration::from_millis(backoff);
            if leadership_error(code) {
                self.want_metadata(client);
            }
        } else {
            self.complete_send(id, SendOutcome::Failed { error_code: code });
            self.idempotent_send_done(client, id, false);
        }
    }

    /// Puts a send back in the queue for another attempt, before every
    /// later send.
    fn requeue_send(&mut self, client: ClientId, id: SendId) {
        let ClientKind::Producer(p) = &mut self.clients[client].kind else {
            unreachable!()
        };
        let position = p
            .queue
            .iter()
            .position(|q| *q > id)
            .unwrap_or(p.queue.len());
        p.queue.insert(position, id);
    }

    pub(super) fn consumer_tick(&mut self, client: ClientId) {
        let now = self.now;
        let brokers = self.client_brokers(client);
        for b in &brokers {
            let Some(consumer) = self.clients[client].kind.consumer() else {
                unreachable!()
            };
            if consumer.in_flight.get(b).is_some_and(|f| f.deadline <= now) {
                self.client_close(client, *b, "fetch timeout");
            }
        }
        let Some(consumer) = self.clients[client].kind.consumer() else {
            unreachable!()
        };
        if consumer.next_fetch_at > now
            || consumer.positions.is_empty()
            || !self.client_may_fetch(client)
        {
            return;
        }
        // The brokers a fetch may go to now, then the positions each leads
        // (a pass over every position per answer was most of a consumer's
        // time in a large cluster, where an answer frees one broker of a
        // hundred).
        self.group_positions(client);
        let Some(consumer) = self.clients[client].kind.consumer() else {
            unreachable!()
        };
        let free: Vec<(BrokerId, ConnId)> = brokers
            .into_iter()
            .filter_map(|b| Some((b, self.clients[client].conn(b)?)))
            .filter(|(b, _)| {
                !consumer.in_flight.contains_key(b) && !self.member_blocks_fetch(client, *b)
            })
            .collect();
        if free.is_empty() {
            return;
        }
        let by_leader = consumer
            .positions
            .by_leader(self.leaders_generation(client))
            .expect("grouped above");
        let meta = self.clients[client].meta.as_ref();
        let wanted: Vec<Vec<Wanted>> = free
            .iter()
            .map(|(b, _)| {
                by_leader[*b]
                    .iter()
                    .map(|&tp| {
                        let offset = consumer
                            .positions
                            .get_at(tp)
                            .expect("grouped positions are held");
                        (tp, offset, meta.map_or(-1, |m| m.leader_epoch(tp)))
                    })
                    .collect()
            })
            .collect();
        for ((b, conn), wanted) in free.into_iter().zip(wanted) {
            if wanted.is_empty() {
                continue;
            }
            let Some(consumer) = self.clients[client].kind.consumer_mut() else {
                unreachable!()
            };
            let fetch = consumer.sessions.get_or_default(b).build(&wanted);
            let request = self.session_fetch_request(&fetch);
            let asked = wanted;
            let corr = self.next_correlation_id(client);
            let header = RequestHeader::default()
                .with_request_api_key(ApiKey::Fetch as i16)
                .with_request_api_version(FETCH_API_VERSION)
                .with_correlation_id(corr)
                .with_client_id(Some(StrBytes::from_static_str("seedlog-sim")));
            let deadline = now
                + Duration::from_millis(
                    self.swarm.fetch_max_wait_ms + self.swarm.request_timeout_ms,
                );
            let Some(consumer) = self.clients[client].kind.consumer_mut() else {
                unreachable!()
            };
            consumer.in_flight.insert(
                b,
                FetchInFlight {
                    correlation_id: corr,
                    deadline,
                    asked,
                },
            );
            self.send_to_node(conn, header, RequestKind::Fetch(request));
        }
    }

    /// A consumer's fetch of what its session names: partitions grouped by
    /// topic, each asked for up to 64 KiB.
    fn session_fetch_request(&self, fetch: &SessionFetch) -> FetchRequest {
        let topics = self.by_topic(fetch.send.iter().map(|&(tp, offset, epoch)| {
            let fp = FetchPartition::default()
                .with_partition(self.tps[tp].1)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(epoch)
                .with_partition_max_bytes(64 * 1024);
            (tp, fp)
        }));
        let forgotten = self.by_topic(fetch.forget.iter().map(|&tp| (tp, self.tps[tp].1)));
        let name = |t: &str| TopicName(StrBytes::from_string(t.to_string()));
        FetchRequest::default()
            .with_max_wait_ms(self.swarm.fetch_max_wait_ms as i32)
            .with_min_bytes(1)
            .with_max_bytes(256 * 1024)
            .with_session_id(fetch.id)
            .with_session_epoch(fetch.epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, partitions)| {
                        FetchTopic::default()
                            .with_topic(name(t))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
            .with_forgotten_topics_data(
                forgotten
                    .into_iter()
                    .map(|(t, partitions)| {
                        ForgottenTopic::default()
                            .with_topic(name(t))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
    }

    /// `items` (each of a partition, by index in `tps`) grouped by topic
    /// name.
    fn by_topic<T>(&self, items: impl Iterator<Item = (usize, T)>) -> BTreeMap<&str, Vec<T>> {
        let mut topics: BTreeMap<&str, Vec<T>> = BTreeMap::new();
        for (tp, item) in items {
            topics
                .entry(self.tps[tp].0.as_str())
                .or_default()
                .push(item);
        }
        topics
    }

    pub(super) fn consumer_fetched(
        &mut self,
        client: ClientId,
        broker: BrokerId,
        correlation_id: i32,
        r: FetchResponse,
    ) {
        let ms = self.ms();
        let may_fetch = self.client_may_fetch(client);
        let Some(consumer) = self.clients[client].kind.consumer_mut() else {
            panic!("a fetch response reached a client that does not consume");
        };
        if !consumer.in_flight.contains_key(&broker) {
            return; // a group member that gave everything up meanwhile
        }
        if !may_fetch {
            // A group member past its lease: it does not process.
            consumer.fetch_lost(broker);
            return;
        }
        let fetch = consumer.in_flight.remove(&broker).expect("looked up above");
        assert_eq!(
            fetch.correlation_id, correlation_id,
            "fetch responses come in order, one in flight per broker"
        );
        let listed = match self.session_answered(client, broker, &r) {
            Ok(listed) => listed,
            Err(message) => {
                self.violation("fetch_session", format!("broker {broker}: {message}"));
                return;
            }
        };
        let mut listed = listed.into_iter();
        let Some(consumer) = self.clients[client].kind.consumer_mut() else {
            unreachable!()
        };
        // (index in `tps`, partition, offset, value) per record read.
        let mut reads: Vec<(usize, Tp, i64, Vec<u8>)> = Vec::new();
        let mut polls = Vec::new();
        let mut seeks = Vec::new();
        let mut any_error = false;
        let mut leadership = false;
        for topic in &r.responses {
            for part in &topic.partitions {
                let i = listed.next().expect("one per partition answered");
                let tp: Tp = (topic.topic.0.to_string(), part.partition_index);
                debug_assert!(
                    i == usize::MAX || self.tps[i] == tp,
                    "the session lists the partition answered"
                );
                let Some(position) = consumer.positions.get_mut_at(i) else {
                    continue;
                };
                let asked = asked_of(&fetch.asked, i);
                if asked.map(|(_, offset, _)| offset) != Some(*position) {
                    continue; // stale: the partition was read elsewhere since
                }
                let from = *position;
                let mut count = 0;
                if part.error_code == ResponseError::OffsetOutOfRange.code() {
                    // auto.offset.reset=earliest: start over; a seek, so
                    // going back is not a nonmonotonic poll.
                    *position = 0;
                    seeks.push(tp.clone());
                    any_error = true;
                } else if part.error_code != 0 {
                    any_error = true;
                    leadership |= leadership_error(part.error_code);
                } else if let Some(records) = &part.records {
                    for (start, header) in BatchIter::new(records) {
                        let batch = &records[start..start + header.total_size()];
                        for (k, (_, value)) in
                            decode_records_for_test(batch).into_iter().enumerate()
                        {
                            let offset = header.base_offset() + k as i64;
                            if offset < *position {
                                continue; // the batch began before our position
                            }
                            assert!(
                                offset < part.high_watermark,
                                "fetch returns records below the high watermark only"
                            );
                            reads.push((i, tp.clone(), offset, value.unwrap_or_default()));
                            *position = offset + 1;
                            count += 1;
                        }
                    }
                }
                let epoch = asked.map_or(-1, |(_, _, epoch)| epoch);
                polls.push((tp, from, count, part.high_watermark, part.error_code, epoch));
            }
        }
        consumer.next_fetch_at = if any_error {
            self.now + Duration::from_millis(100)
        } else {
            self.now
        };
        if leadership {
            self.want_metadata(client);
        }
        for (tp, from, records, hw, error, epoch) in &polls {
            self.emit(Ev::Poll {
                consumer: client,
                tp,
                from: *from,
                records: *records,
                hw: *hw,
                error: *error,
            });
            // The consumer-seen high watermark is judged on the plain
            // consumers' reads, in the order they arrive; a group member's
            // answer may cross another reader's from a farther AZ.
            if *error == 0 && !matches!(self.clients[client].kind, ClientKind::Member(_)) {
                self.check_consumer_hw(broker, *epoch, tp, *hw);
            }
        }
        for tp in seeks {
            self.member_reset(client, &tp);
            self.emit(Ev::Seek {
                consumer: client,
                tp: &tp,
                offset: 0,
            });
            self.consumer_event(ConsumerEvent::Seek {
                consumer: client as u32,
                tp,
                offset: 0,
                at_ms: ms,
            });
        }
        for (i, tp, offset, value) in reads {
            self.stats.records_read += 1;
            // consistent_read, per event: an offset reads the same value for
            // everyone, forever.
            match self.read_values[i].get(&offset) {
                Some(first) if *first != value => {
                    let message = format!(
                        "{}-{} offset {offset}: read as {:?}, earlier as {:?}",
                        tp.0,
                        tp.1,
                        String::from_utf8_lossy(&value),
                        String::from_utf8_lossy(first)
                    );
                    self.violation("consistent_read", message);
                }
                Some(_) => {}
                None => {
                    self.read_values[i].insert(offset, value.clone());
                }
            }
            let max = self.read_offset_max[i].get_or_insert(offset);
            *max = (*max).max(offset);
            self.consumer_event(ConsumerEvent::Read {
                consumer: client as u32,
                tp,
                offset,
                value,
                at_ms: ms,
            });
        }
    }
}

impl World {
    /// Hands a fetch answer's session fields to the consumer's session
    /// with `broker`; the partitions it lists, as indexes in `tps`
    /// (`usize::MAX` for one not of the workload), in its order.
    fn session_answered(
        &mut self,
        client: ClientId,
        broker: BrokerId,
        r: &FetchResponse,
    ) -> Result<Vec<usize>, String> {
        let listed: Vec<usize> = r
            .responses
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    self.find_tp(t.topic.0.as_str(), p.partition_index)
                        .unwrap_or(usize::MAX)
                })
            })
            .collect();
        let Some(consumer) = self.clients[client].kind.consumer_mut() else {
            unreachable!()
        };
        consumer.sessions.get_or_default(broker).handle_answer(
            r.error_code,
            r.session_id,
            &listed,
        )?;
        Ok(listed)
    }

    /// What the end-of-run history checks promise clients (see
    /// `checker::HistoryRules`).
    pub(super) fn history_rules(&self) -> checker::HistoryRules {
        checker::HistoryRules {
            leader_acks_may_be_lost: self.cluster.is_some(),
            idempotent: self.scenario.workload.idempotent,
        }
    }

    /// Records a consumer's read or seek, judging `nonmonotonic_poll` and
    /// `poll_skip` on the spot (the history may forget it later).
    pub(super) fn consumer_event(&mut self, event: ConsumerEvent) {
        if let Some((checker, message)) = self.poll_order.event(&event) {
            self.violation(checker, message);
        }
        self.history.consumer_events.push(event);
    }
}

/// What a fetch asked of partition `tp` (an index in `tps`): `asked` is
/// ascending (a search per answered partition was quadratic in a fetch's
/// partitions, ~100 per broker in a large cluster).
fn asked_of(asked: &[Wanted], tp: usize) -> Option<Wanted> {
    asked
        .binary_search_by_key(&tp, |w| w.0)
        .ok()
        .map(|k| asked[k])
}

#[cfg(test)]
mod tests {
    use super::record_value;

    #[test]
    fn record_values_read_as_their_send() {
        for (client, id, i) in [(0, 0, 0), (7, 12_345, 2), (usize::MAX, u64::MAX, u32::MAX)] {
            assert_eq!(
                record_value(client, id, i),
                format!("c{client}-s{id}-r{i}").into_bytes()
            );
        }
        assert_ne!(record_value(1, 23, 4), record_value(12, 3, 4));
    }
}
