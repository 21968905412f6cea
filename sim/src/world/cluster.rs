//! Cluster scenarios: broker configs, the setup phase (an admin client
//! waits for every broker to register, creates the topics, waits for every
//! partition to be led), what clients know of leaders (Metadata), and what
//! the world learns from watching them: leader changes, fail-over times,
//! per-partition unavailability.

use super::*;
use crate::scenario::Cluster;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId as NodeId,
    CreateTopicsResponse, MetadataRequest, MetadataResponse,
};
use seedlog_core::node::{ClusterConfig, PeerAddress};

/// Between two Metadata requests of one client (`retry.backoff.ms`).
const METADATA_BACKOFF_MS: u64 = 100;
/// Between two setup steps' polls.
const ADMIN_POLL_MS: u64 = 100;
const METADATA_API_VERSION: i16 = 12;
/// v1: KIP-860's allowReplicationFactorChange (left true).
const ALTER_PARTITION_REASSIGNMENTS_API_VERSION: i16 = 0;

/// The broker configs of a cluster scenario: node ids 1..=N, the brokers
/// at `voter_indexes` voters (the others broker-only: KRaft observers),
/// its rack the AZ.
pub(super) fn cluster_config(
    c: &Cluster,
    az_names: &[String],
    broker_azs: &[usize],
    voter_indexes: &[usize],
    index: usize,
    bugs: &[Bug],
) -> ClusterConfig {
    assert!(!voter_indexes.is_empty() && voter_indexes.len() <= broker_azs.len());
    let voters: BTreeMap<i32, PeerAddress> = voter_indexes
        .iter()
        .map(|&i| {
            let id = i as i32 + 1;
            (
                id,
                PeerAddress {
                    host: "127.0.0.1".to_string(),
                    port: 9092 + id as u16,
                },
            )
        })
        .collect();
    let mut config = ClusterConfig::new(voters);
    config.rack = Some(az_names[broker_azs[index]].clone());
    config.default_replication_factor = c.replication_factor;
    config.min_insync_replicas = c.min_insync_replicas as usize;
    config.replica_lag_time_max_ms = c.replica_lag_time_max_ms;
    config.broker_heartbeat_interval_ms = c.broker_heartbeat_interval_ms;
    config.broker_session_timeout_ms = c.broker_session_timeout_ms;
    config.election_timeout_ms = c.election_timeout_ms;
    config.quorum_fetch_timeout_ms = c.quorum_fetch_timeout_ms;
    config.request_timeout_ms = c.request_timeout_ms;
    config.unclean_leader_election_enable = c.unclean_leader_election;
    config.bugs = bugs::cluster_bugs(bugs);
    if let Some(records) = c.metadata_snapshot_records {
        config.metadata_max_records_between_snapshots = records;
    }
    if let Some(bytes) = c.replica_fetch_max_bytes {
        config.replica_fetch_max_bytes = bytes;
    }
    config
}

/// The world's cluster-only state.
pub(super) struct ClusterState {
    pub(super) config: Cluster,
    /// The brokers (indexes, ascending) that are KRaft voters; the others
    /// are broker-only nodes.
    pub(super) voters: Vec<BrokerId>,
    pub(super) admin: ClientId,
    pub(super) setup_done_at: Option<Instant>,
    /// Reassignments the controller accepted: (partition index in `tps`,
    /// target broker ids). The liveness check wants each complete.
    pub(super) reassignments: Vec<(usize, Vec<i32>)>,
    /// Per partition (index in `tps`): the newest (leader, leader epoch)
    /// any client learned; the leader is `None` while the partition has
    /// none.
    pub(super) leaders: Vec<Option<(Option<BrokerId>, i32)>>,
    /// The controller id the newest Metadata named.
    pub(super) controller: Option<BrokerId>,
    /// Per partition: its replicas, as the newest Metadata listed them.
    pub(super) replica_sets: Vec<Vec<BrokerId>>,
    pub(super) stats: ClusterStats,
    /// Per partition: a leader taken out by a fault, not yet replaced by
    /// an acknowledged acks=all write.
    pub(super) losses: Vec<Option<Loss>>,
    pub(super) failovers: Vec<Failover>,
    /// Per partition: when acks=all writes were acknowledged.
    pub(super) acks_all_ms: Vec<Vec<u64>>,
    /// Per partition: the highest high watermark a consumer saw, with the
    /// broker and the leader epoch the consumer fetched in.
    pub(super) consumer_hw: Vec<(i64, BrokerId, i32)>,
    pub(super) replicas: replicas::ReplicaChecks,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Loss {
    pub(super) broker: BrokerId,
    pub(super) at: Instant,
    /// The fault that took the leader out ends here; from then on the
    /// same broker acknowledging again also counts as recovered.
    pub(super) until: Instant,
}

impl ClusterState {
    pub(super) fn new(
        config: Cluster,
        admin: ClientId,
        brokers: usize,
        voters: Vec<BrokerId>,
        tp_list: &[Tp],
    ) -> Self {
        let tps = tp_list.len();
        assert!(!voters.is_empty() && voters.iter().all(|&v| v < brokers));
        ClusterState {
            config,
            voters,
            admin,
            setup_done_at: None,
            reassignments: Vec::new(),
            leaders: vec![None; tps],
            controller: None,
            replica_sets: vec![Vec::new(); tps],
            stats: ClusterStats::default(),
            losses: vec![None; tps],
            failovers: Vec::new(),
            acks_all_ms: vec![Vec::new(); tps],
            consumer_hw: vec![(0, 0, -1); tps],
            replicas: replicas::ReplicaChecks::new(brokers, tp_list),
        }
    }
}

/// What one client knows of partition leaders, and its Metadata requests.
pub(super) struct MetadataView {
    /// Per partition: (leader, epoch), `None` until first learned.
    leaders: Vec<Option<(Option<BrokerId>, i32)>>,
    /// Bumped whenever a partition's leader (the broker, not its epoch)
    /// changes in `leaders`: what a consumer groups its positions by
    /// (`Positions`) is stale then.
    leaders_generation: u64,
    /// A refresh is wanted (an error, a lost connection, a leaderless
    /// partition).
    wanted: bool,
    /// (broker, correlation id, deadline)
    in_flight: Option<(BrokerId, i32, Instant)>,
    not_before: Instant,
    refreshed_at: Instant,
    /// The broker to ask next.
    ask: BrokerId,
}

impl MetadataView {
    pub(super) fn new(tps: usize, now: Instant) -> MetadataView {
        MetadataView {
            leaders: vec![None; tps],
            leaders_generation: 0,
            wanted: true,
            in_flight: None,
            not_before: now,
            refreshed_at: now,
            ask: 0,
        }
    }

    /// The bootstrap broker asked first.
    pub(super) fn first_ask(&mut self, broker: BrokerId) {
        self.ask = broker;
    }

    /// The client starts at `at`: no request before.
    pub(super) fn start_at(&mut self, at: Instant) {
        self.not_before = at;
        self.refreshed_at = at;
    }

    pub(super) fn leader(&self, tp: usize) -> Option<BrokerId> {
        self.leaders[tp].and_then(|(b, _)| b)
    }

    pub(super) fn leaders_generation(&self) -> u64 {
        self.leaders_generation
    }

    pub(super) fn leader_epoch(&self, tp: usize) -> i32 {
        self.leaders[tp].map_or(-1, |(_, e)| e)
    }

    fn due(&self, now: Instant, max_age: Duration) -> bool {
        self.wanted || now >= self.refreshed_at + max_age
    }

    pub(super) fn wants(&self, broker: BrokerId, now: Instant) -> bool {
        self.wanted && self.in_flight.is_none() && self.ask == broker && now >= self.not_before
    }

    pub(super) fn next_wake(&self, c: &Client, now: Instant, max_age: Duration) -> Option<Instant> {
        if let Some((_, _, deadline)) = self.in_flight {
            return Some(deadline);
        }
        if !self.due(now, max_age) {
            return Some(self.refreshed_at + max_age);
        }
        if now < self.not_before {
            return Some(self.not_before);
        }
        let any_open = c.conns.values().any(|x| matches!(x, ClientConn::Open(_)));
        any_open.then_some(now)
    }

    pub(super) fn connection_lost(&mut self, broker: BrokerId, brokers: usize) {
        if self.in_flight.is_some_and(|(b, _, _)| b == broker) {
            self.in_flight = None;
        }
        if self.ask == broker {
            self.ask = (broker + 1) % brokers;
        }
        self.wanted = true;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AdminStep {
    /// Polling Metadata until every broker is listed.
    Brokers,
    /// CreateTopics sent (or to send).
    Create,
    /// Polling Metadata until every partition has a leader and a full ISR.
    Leaders,
    Done,
}

impl AdminStep {
    fn name(self) -> &'static str {
        match self {
            AdminStep::Brokers => "waiting for every broker to register",
            AdminStep::Create => "creating topics",
            AdminStep::Leaders => "waiting for every partition's leader and ISR",
            AdminStep::Done => "done",
        }
    }
}

/// A reassignment the admin client is to ask for (a `reassign` fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PendingReassignment {
    pub(super) fault: usize,
    pub(super) tp: usize,
    pub(super) replicas: Vec<i32>,
}

pub(super) struct Admin {
    pub(super) step: AdminStep,
    /// Asked for and not yet accepted: sent after setup, retried until
    /// the controller takes it.
    pub(super) reassignment: Option<PendingReassignment>,
    /// Sent and awaiting its answer (`in_flight` holds the request).
    reassignment_in_flight: bool,
    in_flight: Option<(BrokerId, i32, Instant)>,
    not_before: Instant,
    ask: BrokerId,
}

impl Admin {
    pub(super) fn new(now: Instant, ask: BrokerId) -> Admin {
        Admin {
            step: AdminStep::Brokers,
            reassignment: None,
            reassignment_in_flight: false,
            in_flight: None,
            not_before: now,
            ask,
        }
    }

    /// Whether it has something to ask: setup, or a reassignment once
    /// setup is done.
    fn busy(&self) -> bool {
        self.step != AdminStep::Done || self.reassignment.is_some()
    }

    pub(super) fn wants(&self, broker: BrokerId) -> bool {
        self.busy() && self.ask == broker
    }

    pub(super) fn next_wake(&self, c: &Client, now: Instant) -> Option<Instant> {
        if !self.busy() {
            return None;
        }
        if let Some((_, _, deadline)) = self.in_flight {
            return Some(deadline);
        }
        c.conn(self.ask).map(|_| self.not_before.max(now))
    }

    pub(super) fn connection_lost(&mut self, broker: BrokerId, brokers: usize) {
        if self.in_flight.is_some_and(|(b, _, _)| b == broker) {
            self.in_flight = None;
        }
        if self.ask == broker {
            self.ask = (broker + 1) % brokers;
        }
    }
}

impl World {
    pub(super) fn cluster_stats(&mut self) -> &mut ClusterStats {
        &mut self
            .cluster
            .as_mut()
            .expect("peer traffic happens in cluster scenarios only")
            .stats
    }

    pub(super) fn metadata_max_age(&self) -> Duration {
        Duration::from_millis(
            self.swarm
                .cluster
                .as_ref()
                .map_or(u64::MAX / 4, |c| c.metadata_max_age_ms),
        )
    }

    /// Where `(topic, partition)` is in `tps`, if it is a workload
    /// partition.
    /// Where `topic`/`partition` is in `tps`, if the workload has it: a
    /// lookup by topic (`tps` lists each topic's partitions 0.. together),
    /// not a scan: a large cluster has thousands of partitions and clients
    /// look them up per send and per fetched partition.
    pub(super) fn find_tp(&self, topic: &str, partition: i32) -> Option<usize> {
        let i = tp_index(&self.tp_base, topic, partition)?;
        debug_assert!(self.tps[i].0 == topic && self.tps[i].1 == partition);
        Some(i)
    }

    pub(super) fn tp_index_of(&self, topic: &str, partition: i32) -> usize {
        self.find_tp(topic, partition)
            .expect("a partition of the workload")
    }

    pub(super) fn want_metadata(&mut self, client: ClientId) {
        if let Some(m) = &mut self.clients[client].meta {
            m.wanted = true;
        }
    }

    /// Metadata for the workload's topics (or none: brokers only), never
    /// creating them.
    pub(super) fn metadata_request(&self, with_topics: bool) -> RequestKind {
        let topics = if with_topics {
            self.scenario
                .workload
                .topics
                .iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
                })
                .collect()
        } else {
            Vec::new()
        };
        RequestKind::Metadata(
            MetadataRequest::default()
                .with_topics(Some(topics))
                .with_allow_auto_topic_creation(false),
        )
    }

    /// A client's next request header (its own correlation id).
    pub(super) fn header(
        &mut self,
        client: ClientId,
        api: ApiKey,
        version: i16,
    ) -> (i32, RequestHeader) {
        let corr = self.next_correlation_id(client);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str("seedlog-sim")));
        (corr, header)
    }

    pub(super) fn metadata_tick(&mut self, client: ClientId) {
        let now = self.now;
        let max_age = self.metadata_max_age();
        let Some(m) = &self.clients[client].meta else {
            return;
        };
        if let Some((b, _, deadline)) = m.in_flight {
            if deadline <= now {
                self.client_close(client, b, "metadata timeout");
            }
        }
        let c = &self.clients[client];
        let m = c.meta.as_ref().expect("checked");
        if !m.due(now, max_age) || m.in_flight.is_some() || m.not_before > now {
            return;
        }
        // Any open connection will do (the least loaded node, as Kafka's
        // clients pick); else the one it means to ask, connecting.
        let ask = if c.conn(m.ask).is_some() {
            m.ask
        } else {
            match c
                .conns
                .iter()
                .find(|(_, x)| matches!(x, ClientConn::Open(_)))
            {
                Some((b, _)) => *b,
                None => return,
            }
        };
        let conn = c.conn(ask).expect("open");
        let (corr, header) = self.header(client, ApiKey::Metadata, METADATA_API_VERSION);
        let body = self.metadata_request(true);
        let deadline = now + Duration::from_millis(self.swarm.request_timeout_ms);
        let m = self.clients[client].meta.as_mut().expect("checked");
        m.ask = ask;
        m.in_flight = Some((ask, corr, deadline));
        m.not_before = now + Duration::from_millis(METADATA_BACKOFF_MS);
        self.send_to_node(conn, header, body);
    }

    pub(super) fn metadata_answered(
        &mut self,
        client: ClientId,
        broker: BrokerId,
        correlation_id: i32,
        r: MetadataResponse,
    ) {
        self.learn_topic_ids(&r);
        if matches!(self.clients[client].kind, ClientKind::Admin(_)) {
            self.admin_metadata(client, correlation_id, r);
            return;
        }
        let brokers = self.brokers.len();
        let learned = self.leaders_in(&r);
        let now = self.now;
        let Some(m) = self.clients[client].meta.as_mut() else {
            panic!("a Metadata response reached a standalone client");
        };
        if m.in_flight
            .is_none_or(|(_, corr, _)| corr != correlation_id)
        {
            return;
        }
        m.in_flight = None;
        m.refreshed_at = now;
        for (tp, leader, epoch) in &learned {
            // KIP-320: never go back to an older leader epoch, whoever
            // answered (a broker cut off from the controller answers from a
            // stale image).
            let known = m.leaders[*tp];
            if known.is_none_or(|(_, known)| *epoch >= known) {
                if known.is_none_or(|(known, _)| known != *leader) {
                    m.leaders_generation += 1;
                }
                m.leaders[*tp] = Some((*leader, *epoch));
            }
        }
        m.wanted = m.leaders.iter().any(|l| l.is_none_or(|(b, _)| b.is_none()));
        if m.wanted {
            // Ask someone else next time: this broker may be the stale one.
            m.ask = (broker + 1) % brokers;
        }
        self.observe_metadata(&r, &learned);
    }

    /// (partition index, leader, leader epoch) of every workload partition
    /// the response describes without error.
    fn leaders_in(&self, r: &MetadataResponse) -> Vec<(usize, Option<BrokerId>, i32)> {
        let mut out = Vec::new();
        for topic in &r.topics {
            let Some(name) = &topic.name else { continue };
            if topic.error_code != 0 {
                continue;
            }
            for p in &topic.partitions {
                let Some(tp) = self.find_tp(name.0.as_str(), p.partition_index) else {
                    continue;
                };
                let ok =
                    p.error_code == 0 || p.error_code == ResponseError::LeaderNotAvailable.code();
                if !ok {
                    continue;
                }
                let leader = (p.leader_id.0 >= 1 && (p.leader_id.0 as usize) <= self.brokers.len())
                    .then(|| p.leader_id.0 as usize - 1);
                out.push((tp, leader, p.leader_epoch));
            }
        }
        out
    }

    /// The world's view of leaders: the newest epoch any client learned.
    fn observe_metadata(
        &mut self,
        r: &MetadataResponse,
        learned: &[(usize, Option<BrokerId>, i32)],
    ) {
        let n = self.brokers.len();
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if r.controller_id.0 >= 1 && (r.controller_id.0 as usize) <= n {
            cluster.controller = Some(r.controller_id.0 as usize - 1);
        }
        let mut changed = Vec::new();
        for (tp, leader, epoch) in learned {
            let known = cluster.leaders[*tp];
            if known.is_some_and(|(_, e)| *epoch <= e) {
                continue;
            }
            if let (Some((Some(old), _)), Some(new)) = (known, leader) {
                if old != *new {
                    cluster.stats.leader_changes += 1;
                }
            }
            if known.is_some() {
                cluster.stats.leader_epoch_bumps += 1;
            }
            cluster.leaders[*tp] = Some((*leader, *epoch));
            changed.push((*tp, *leader, *epoch));
        }
        // The replica sets of the partitions whose leader changed. A
        // response describes every partition (ten thousand in a large
        // cluster): one lookup per topic, and a sorted list to test.
        let mut changed_tps: Vec<usize> = changed.iter().map(|c| c.0).collect();
        changed_tps.sort_unstable();
        for topic in r.topics.iter().filter(|_| !changed_tps.is_empty()) {
            let Some(name) = &topic.name else { continue };
            let Some(&(base, count)) = self.tp_base.get(name.0.as_str()) else {
                continue;
            };
            for p in &topic.partitions {
                if !(0..count).contains(&p.partition_index) {
                    continue;
                }
                let tp = base + p.partition_index as usize;
                if changed_tps.binary_search(&tp).is_err() {
                    continue;
                }
                let replicas: Vec<BrokerId> = p
                    .replica_nodes
                    .iter()
                    .filter(|id| id.0 >= 1 && (id.0 as usize) <= n)
                    .map(|id| id.0 as usize - 1)
                    .collect();
                if !replicas.is_empty() {
                    cluster.replica_sets[tp] = replicas;
                }
            }
        }
        for (tp, broker, epoch) in changed {
            let tp = self.tps[tp].clone();
            self.emit(Ev::Leader {
                tp: &tp,
                broker,
                epoch,
            });
        }
    }

    /// An acknowledged write `id` from `broker`: acks=all ones mark the
    /// partition available (and end a fail-over).
    pub(super) fn observe_ack(&mut self, id: SendId, broker: BrokerId) {
        let op = self.history.send(id);
        if op.acks != -1 {
            return;
        }
        let tp = self.tp_index_of(&op.topic, op.partition);
        self.outage_ack(tp, broker);
        if self.cluster.is_none() {
            return;
        }
        let (now, ms) = (self.now, self.ms());
        let cluster = self.cluster.as_mut().expect("checked");
        cluster.acks_all_ms[tp].push(ms);
        if let Some(loss) = cluster.losses[tp] {
            if loss.broker != broker || now >= loss.until {
                let start = self.epoch;
                let at_ms = |t: Instant| (t - start).as_millis() as u64;
                cluster.failovers.push(Failover {
                    tp: format!("{}-{}", self.tps[tp].0, self.tps[tp].1),
                    leader: loss.broker,
                    lost_at_ms: at_ms(loss.at),
                    recovered_at_ms: Some(ms),
                });
                cluster.losses[tp] = None;
            }
        }
    }

    /// A fault takes `broker` out until `until`: every partition it leads
    /// (as clients last learned) starts a fail-over.
    pub(super) fn leader_lost(&mut self, broker: BrokerId, until: Instant) {
        let now = self.now;
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        for tp in 0..cluster.leaders.len() {
            let leads = cluster.leaders[tp].is_some_and(|(b, _)| b == Some(broker));
            if leads && cluster.losses[tp].is_none() {
                cluster.stats.leader_losses += 1;
                cluster.losses[tp] = Some(Loss {
                    broker,
                    at: now,
                    until,
                });
            }
        }
    }

    // --- setup ------------------------------------------------------------------

    /// Cluster setup: start every broker and the admin client; `begin_run`
    /// follows when the admin is done, or the run fails `setup` at the
    /// deadline.
    pub(super) fn cluster_setup(&mut self) {
        for b in 0..self.brokers.len() {
            self.start_broker(b);
        }
        let cluster = self.cluster.as_ref().expect("cluster scenario");
        let (admin, deadline) = (
            cluster.admin,
            self.now + Duration::from_millis(cluster.config.setup_ms_max),
        );
        self.emit(Ev::Setup {
            step: AdminStep::Brokers.name(),
        });
        self.push(deadline, EventKind::SetupDeadline);
        self.rearm_client(admin);
        self.push(self.now, EventKind::ClientWake { client: admin });
        self.clients[admin].wake_at = Some(self.now);
    }

    pub(super) fn setup_deadline(&mut self) {
        let cluster = self.cluster.as_ref().expect("cluster scenario");
        if cluster.setup_done_at.is_some() {
            return;
        }
        let ClientKind::Admin(a) = &self.clients[cluster.admin].kind else {
            unreachable!("the admin client")
        };
        let message = format!(
            "the cluster was not ready {} ms after start: the admin was {}",
            cluster.config.setup_ms_max,
            a.step.name()
        );
        self.violation("setup", message);
        self.stopped = true;
    }

    pub(super) fn admin_tick(&mut self, client: ClientId) {
        let now = self.now;
        let ClientKind::Admin(a) = &self.clients[client].kind else {
            unreachable!()
        };
        if let Some((b, _, deadline)) = a.in_flight {
            if deadline <= now {
                self.client_close(client, b, "admin request timeout");
            }
        }
        let ClientKind::Admin(a) = &self.clients[client].kind else {
            unreachable!()
        };
        if !a.busy() || a.in_flight.is_some() || a.not_before > now {
            return;
        }
        let (step, ask) = (a.step, a.ask);
        let Some(conn) = self.clients[client].conn(ask) else {
            return;
        };
        let reassignment = a.reassignment.clone().filter(|_| step == AdminStep::Done);
        let (corr, header, body) = match step {
            AdminStep::Done => {
                let r = reassignment.expect("busy after setup only to reassign");
                let (corr, header) = self.header(
                    client,
                    ApiKey::AlterPartitionReassignments,
                    ALTER_PARTITION_REASSIGNMENTS_API_VERSION,
                );
                (corr, header, self.reassignment_request(&r))
            }
            AdminStep::Brokers | AdminStep::Leaders => {
                let (corr, header) = self.header(client, ApiKey::Metadata, METADATA_API_VERSION);
                (
                    corr,
                    header,
                    self.metadata_request(step == AdminStep::Leaders),
                )
            }
            AdminStep::Create => {
                let (corr, header) =
                    self.header(client, ApiKey::CreateTopics, CREATE_TOPICS_API_VERSION);
                (corr, header, self.create_topics_request())
            }
        };
        let deadline = now + Duration::from_millis(self.swarm.request_timeout_ms);
        let ClientKind::Admin(a) = &mut self.clients[client].kind else {
            unreachable!()
        };
        a.in_flight = Some((ask, corr, deadline));
        a.reassignment_in_flight = step == AdminStep::Done;
        self.send_to_node(conn, header, body);
    }

    /// A `reassign` fault starts: the admin client asks once setup is
    /// done (a newer request replaces one not yet accepted).
    pub(super) fn request_reassignment(&mut self, fault: usize, tp: usize, replicas: Vec<i32>) {
        let admin = self.cluster.as_ref().expect("cluster scenario").admin;
        let ClientKind::Admin(a) = &mut self.clients[admin].kind else {
            unreachable!("the admin client")
        };
        a.reassignment = Some(PendingReassignment {
            fault,
            tp,
            replicas,
        });
        self.rearm_client(admin);
    }

    fn reassignment_request(&self, r: &PendingReassignment) -> RequestKind {
        let (topic, partition) = &self.tps[r.tp];
        RequestKind::AlterPartitionReassignments(
            AlterPartitionReassignmentsRequest::default()
                .with_timeout_ms(5_000)
                .with_topics(vec![ReassignableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![ReassignablePartition::default()
                        .with_partition_index(*partition)
                        .with_replicas(Some(
                            r.replicas.iter().map(|&b| NodeId(b)).collect(),
                        ))])]),
        )
    }

    /// The controller's answer to a reassignment: accepted (done),
    /// NOT_CONTROLLER or another retriable error (asked again), or refused
    /// (a violation: the scenario asked for a valid move).
    pub(super) fn reassignment_answered(
        &mut self,
        client: ClientId,
        correlation_id: i32,
        r: AlterPartitionReassignmentsResponse,
    ) {
        let ClientKind::Admin(a) = &self.clients[client].kind else {
            unreachable!()
        };
        if !a.reassignment_in_flight
            || a.in_flight
                .is_none_or(|(_, corr, _)| corr != correlation_id)
        {
            return;
        }
        self.admin_answered(client, correlation_id);
        let ClientKind::Admin(a) = &mut self.clients[client].kind else {
            unreachable!()
        };
        a.reassignment_in_flight = false;
        let code = r
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| p.error_code)
            .find(|c| *c != 0)
            .unwrap_or(r.error_code);
        let retriable = code == ResponseError::NotController.code()
            || ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable());
        if code == 0 {
            let done = a.reassignment.take().expect("in flight");
            self.emit(Ev::Setup {
                step: "reassignment accepted",
            });
            let cluster = self.cluster.as_mut().expect("cluster scenario");
            cluster.reassignments.push((done.tp, done.replicas));
        } else if !retriable {
            let message = format!("AlterPartitionReassignments refused: error {code}");
            self.violation("reassign", message);
            a_reassignment_dropped(&mut self.clients[client].kind);
        }
    }

    fn create_topics_request(&self) -> RequestKind {
        let c = &self.cluster.as_ref().expect("cluster scenario").config;
        let mut configs = vec![CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("min.insync.replicas"))
            .with_value(Some(StrBytes::from_string(
                c.min_insync_replicas.to_string(),
            )))];
        if let Some(bytes) = self.scenario.disk.retention_bytes {
            configs.push(
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("retention.bytes"))
                    .with_value(Some(StrBytes::from_string(bytes.to_string()))),
            );
        }
        if c.unclean_leader_election {
            configs.push(
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("unclean.leader.election.enable"))
                    .with_value(Some(StrBytes::from_static_str("true"))),
            );
        }
        let topics = self.creatable_topics(c.replication_factor, &configs);
        RequestKind::CreateTopics(
            CreateTopicsRequest::default()
                .with_topics(topics)
                .with_timeout_ms(5_000),
        )
    }

    fn admin_answered(&mut self, client: ClientId, correlation_id: i32) -> Option<AdminStep> {
        let now = self.now;
        let ClientKind::Admin(a) = &mut self.clients[client].kind else {
            unreachable!()
        };
        if a.in_flight
            .is_none_or(|(_, corr, _)| corr != correlation_id)
        {
            return None;
        }
        a.in_flight = None;
        a.not_before = now + Duration::from_millis(ADMIN_POLL_MS);
        Some(a.step)
    }

    fn admin_metadata(&mut self, client: ClientId, correlation_id: i32, r: MetadataResponse) {
        let Some(step) = self.admin_answered(client, correlation_id) else {
            return;
        };
        let next = match step {
            AdminStep::Brokers => {
                let registered = r.brokers.len() == self.brokers.len();
                registered.then_some(AdminStep::Create)
            }
            AdminStep::Leaders => {
                let learned = self.leaders_in(&r);
                self.observe_metadata(&r, &learned);
                let rf = self
                    .cluster
                    .as_ref()
                    .expect("cluster scenario")
                    .config
                    .replication_factor as usize;
                let full_isr = r.topics.iter().all(|t| {
                    t.error_code == 0 && t.partitions.iter().all(|p| p.isr_nodes.len() == rf)
                });
                let led = learned.len() == self.tps.len() && learned.iter().all(|l| l.1.is_some());
                (led && full_isr).then_some(AdminStep::Done)
            }
            AdminStep::Create | AdminStep::Done => None,
        };
        if let Some(next) = next {
            self.admin_step(client, next);
        }
    }

    pub(super) fn create_topics_answered(
        &mut self,
        client: ClientId,
        _broker: BrokerId,
        correlation_id: i32,
        r: CreateTopicsResponse,
    ) {
        if self.admin_answered(client, correlation_id) != Some(AdminStep::Create) {
            return;
        }
        let mut retry = false;
        for t in &r.topics {
            let code = t.error_code;
            if code == 0 || code == ResponseError::TopicAlreadyExists.code() {
                continue;
            }
            let retriable = ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
                || code == ResponseError::NotController.code();
            if retriable {
                retry = true;
            } else {
                let message = format!(
                    "CreateTopics {}: error {code} ({:?})",
                    t.name.0,
                    t.error_message.as_ref().map(|m| m.to_string())
                );
                self.violation("setup", message);
                self.stopped = true;
                return;
            }
        }
        if !retry {
            self.admin_step(client, AdminStep::Leaders);
        }
    }

    fn admin_step(&mut self, client: ClientId, step: AdminStep) {
        let ClientKind::Admin(a) = &mut self.clients[client].kind else {
            unreachable!()
        };
        a.step = step;
        a.not_before = self.now;
        self.emit(Ev::Setup { step: step.name() });
        if step == AdminStep::Done {
            let cluster = self.cluster.as_mut().expect("cluster scenario");
            cluster.setup_done_at = Some(self.now);
            self.begin_run();
        }
    }
}

fn a_reassignment_dropped(kind: &mut ClientKind) {
    if let ClientKind::Admin(a) = kind {
        a.reassignment = None;
    }
}
