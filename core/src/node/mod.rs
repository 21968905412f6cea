//! The broker node: one state machine per process, driven through
//! `handle` / `poll_output` / `poll_timeout` / `handle_timeout`.
//!
//! Control flow lives here; each Kafka API has a module under `handlers/`
//! that turns a request into a response against the node's state.

mod api_versions;
mod cluster;
mod config;
pub(crate) mod config_change;
mod fetch_sessions;
mod flush;
mod handlers;
mod io;
mod partition_map;
mod producer_ids;
mod producer_state;
mod responder;
pub(crate) mod topic_config;
mod topics;

pub use api_versions::{api_versions_unsupported_response, supports, supports_peer};
pub use cluster::replication::{STREAM_AHEAD_MAX, SYNCED_OFFSET_TAG};
pub use cluster::ClusterStatus;
pub use config::{ClusterBugs, ClusterConfig, NodeConfig};
pub use io::{ConnectionId, FlushId, Input, Output, PeerAddress, PeerChannel, PeerId};
pub use topics::{Touched, PARTITIONS_PER_TOPIC_MAX};

/// KIP-227's session ids and epochs, for clients of the protocol.
pub mod fetch_session {
    pub use super::fetch_sessions::{next_epoch, FINAL_EPOCH, INITIAL_EPOCH, INVALID_SESSION_ID};
}

use crate::group::Coordinator;
use crate::log::compaction::COMPACTION_STEP_INTERVAL_MS;
use crate::storage::{Storage, StorageError};
use crate::time::Instant;
use flush::Flusher;
use handlers::delayed_fetch::DelayedFetch;
use handlers::group::{coordinator_config, GroupReplyTo, GroupWriteWait};
use handlers::produce::PendingProduce;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use producer_ids::ProducerIdAllocator;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use responder::{Responder, Slot};
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;
use topics::Topics;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("log: {0}")]
    Log(#[from] crate::log::LogError),
    #[error("invalid config: {0}")]
    Config(String),
    #[error("corrupt metadata: {0}")]
    Metadata(String),
}

/// Outputs queued and not yet drained; `handle` asserts the driver keeps up.
const OUTPUTS_QUEUED_MAX: usize = 1_000_000;
/// After a failed flush, wait this long before trying again.
const FLUSH_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// What [`Node::replica_view`] reports of one hosted partition.
/// What a node's group coordinator holds of one group (`Node::group_view`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupView {
    /// The classic generation, if the group is a classic one.
    pub generation: Option<i32>,
    /// KIP-848: member id -> member epoch.
    pub member_epochs: std::collections::BTreeMap<String, i32>,
}

#[derive(Debug, Clone, Copy)]
pub struct ReplicaView<'a> {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
    pub leader_epoch: i32,
    /// The ISR as this node holds it when it leads the partition; `None`
    /// when it does not lead.
    pub leader_isr: Option<&'a BTreeSet<i32>>,
}

/// One hosted topic of a node, as [`Node::topic_replicas`] found it.
#[derive(Clone, Copy)]
pub struct TopicReplicas<'a>(&'a topics::Topic);

impl<'a> TopicReplicas<'a> {
    /// The partition's offsets and role, if this node hosts it.
    pub fn view(self, partition: i32) -> Option<ReplicaView<'a>> {
        self.0.partitions().get(&partition).map(replica_view)
    }

    /// Every hosted partition of the topic with its view, by ascending
    /// partition index: a node of a large cluster hosts a few of a
    /// topic's partitions, and a lookup per partition costs more.
    pub fn views(self) -> impl Iterator<Item = (i32, ReplicaView<'a>)> {
        self.0
            .partitions()
            .iter()
            .map(|(p, x)| (*p, replica_view(x)))
    }
}

fn replica_view(p: &topics::Partition) -> ReplicaView<'_> {
    let isr = match &p.replica {
        topics::Replica::Leader(l) => Some(l.isr()),
        _ => None,
    };
    ReplicaView {
        log_start_offset: p.log.log_start_offset(),
        high_watermark: p.high_watermark,
        log_end_offset: p.log.log_end_offset(),
        leader_epoch: p.leader_epoch,
        leader_isr: isr,
    }
}

/// One partition this node leads, as [`Node::led_partitions`] reports it:
/// what the broker's metrics count (Kafka's LeaderCount,
/// UnderReplicatedPartitions, IsrShrinks/IsrExpands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedPartition<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub replicas: usize,
    pub isr: usize,
}

pub struct Node<S: Storage> {
    config: NodeConfig,
    storage: S,
    rng: ChaCha8Rng,
    now: Instant,
    topics: Topics,
    producer_ids: ProducerIdAllocator,
    responder: Responder,
    outputs: VecDeque<Output>,
    flusher: Flusher,
    pending_produces: Vec<PendingProduce>,
    /// Always empty between inputs (see `release_produces`).
    pending_produces_spare: Vec<PendingProduce>,
    delayed_fetches: Vec<DelayedFetch>,
    /// Always empty between inputs: `retry_delayed_fetches` parks the
    /// fetches still waiting here and swaps the lists, keeping both
    /// allocations.
    delayed_fetches_spare: Vec<DelayedFetch>,
    /// KIP-227 incremental fetch sessions.
    fetch_sessions: fetch_sessions::FetchSessions,
    /// Reused by `retry_delayed_fetches`.
    parked_touches_buf: handlers::delayed_fetch::ParkedTouches,
    /// Reused by `read_fetch`: what an incremental fetch's session last
    /// answered per partition.
    session_answered_buf: Vec<(i64, i64)>,
    /// Set when a high watermark moved; parked fetches are then re-checked.
    high_watermark_moved: bool,
    retention_check_at: Instant,
    /// The classic group coordinator; its state lives in `__consumer_offsets`.
    groups: Coordinator<GroupReplyTo>,
    /// Coordinator writes appended and not yet reported durable.
    group_writes: Vec<GroupWriteWait>,
    /// Set on a node of a multi-node cluster.
    cluster: Option<cluster::Cluster>,
    /// Groups of the KIP-848 consumer protocol.
    consumer_groups: crate::group::consumer_groups::ConsumerGroups,
}

impl<S: Storage> Node<S> {
    /// Opens every partition found in `storage`, running log recovery.
    pub fn new(
        config: NodeConfig,
        mut storage: S,
        rng_seed: u64,
        now: Instant,
    ) -> Result<Node<S>, NodeError> {
        validate_config(&config)?;
        let (topics, reports) = Topics::load(&mut storage, &config.log, now)?;
        let producer_ids = ProducerIdAllocator::load(&mut storage)?;
        for (dir, report) in reports.iter().filter(|(_, r)| r.truncated_bytes > 0) {
            tracing::warn!(%dir, truncated_bytes = report.truncated_bytes, "recovery cut a torn or corrupt tail");
        }
        let groups = Coordinator::new(coordinator_config(&config));
        let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
        let consumer_groups_config = crate::group::consumer_groups::ConsumerGroupsConfig {
            session_timeout_ms: config.consumer_group_session_timeout_ms,
            heartbeat_interval_ms: config.consumer_group_heartbeat_interval_ms,
            bugs: config.group_bugs,
            ..Default::default()
        };
        let cluster = match &config.cluster {
            Some(cluster_config) => {
                let incarnation_id = {
                    use rand::RngCore;
                    let mut bytes = [0u8; 16];
                    rng.fill_bytes(&mut bytes);
                    uuid::Builder::from_random_bytes(bytes).into_uuid()
                };
                Some(cluster::Cluster::open(
                    &config,
                    cluster_config,
                    &mut storage,
                    rng_seed,
                    incarnation_id,
                    now,
                )?)
            }
            None => None,
        };
        let config_fetch_sessions_max = config.fetch_sessions_max;
        let mut node = Node {
            responder: Responder::new(config.in_flight_requests_per_connection_max),
            retention_check_at: now + Duration::from_millis(config.retention_check_interval_ms),
            config,
            storage,
            rng,
            now,
            cluster,
            consumer_groups: crate::group::consumer_groups::ConsumerGroups::new(
                consumer_groups_config,
            ),
            topics,
            producer_ids,
            outputs: VecDeque::new(),
            flusher: Flusher::default(),
            pending_produces: Vec::new(),
            pending_produces_spare: Vec::new(),
            groups,
            group_writes: Vec::new(),
            delayed_fetches: Vec::new(),
            delayed_fetches_spare: Vec::new(),
            // Its own stream: drawing session ids from `rng` would move
            // everything drawn after.
            fetch_sessions: fetch_sessions::FetchSessions::new(
                config_fetch_sessions_max,
                rng_seed ^ 0x6665_7463_6873_6573,
            ),
            parked_touches_buf: Default::default(),
            session_answered_buf: Vec::new(),
            high_watermark_moved: false,
        };
        if node.cluster.is_some() {
            // A cluster node coordinates the groups of the offsets
            // partitions it leads, loaded as it becomes their leader.
            node.groups = Coordinator::new_partitioned(coordinator_config(&node.config));
        } else {
            node.load_groups()?;
        }
        node.after_input();
        Ok(node)
    }

    // --- getters -----------------------------------------------------------

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    pub fn into_storage(self) -> S {
        self.storage
    }

    /// (log start, high watermark, log end) of a partition, for tests and
    /// checkers.
    pub fn partition_offsets(&self, topic: &str, partition: i32) -> Option<(i64, i64, i64)> {
        let p = self.topics.get(topic)?.partitions().get(&partition)?;
        Some((
            p.log.log_start_offset(),
            p.high_watermark,
            p.log.log_end_offset(),
        ))
    }

    /// A hosted partition's offsets and role in one lookup, for checkers
    /// that look at every partition after every event.
    pub fn replica_view(&self, topic: &str, partition: i32) -> Option<ReplicaView<'_>> {
        self.topic_replicas(topic)?.view(partition)
    }

    /// A hosted topic, looked up once for the [`TopicReplicas::view`] of
    /// several of its partitions (checkers read every partition after
    /// every event).
    pub fn topic_replicas(&self, topic: &str) -> Option<TopicReplicas<'_>> {
        self.topics.get(topic).map(TopicReplicas)
    }

    /// The hosted partitions that may have changed (offsets, high
    /// watermark, leader epoch, role, ISR, hosted or not) since the last
    /// call, reported to `each` and forgotten: a checker that looks at a
    /// node's partitions after every input looks at these only, where a
    /// large cluster's node hosts hundreds and an input changes a few.
    /// Returns false when every partition counts as touched (the node just
    /// started, or a topic came or went); then `each` is not called.
    pub fn drain_touched(&mut self, each: impl FnMut(Touched<'_>)) -> bool {
        self.topics
            .drain_touched(topics::TouchReader::Observer, each)
    }

    /// Asks for a controlled shutdown (SIGTERM): a cluster node has the
    /// controller move its leaderships and ISR memberships away first.
    /// Keep driving the node until [`Node::shutdown_ready`]; a standalone
    /// node is ready at once.
    pub fn begin_shutdown(&mut self, now: Instant) {
        self.advance_time(now);
        if self.cluster.is_some() {
            self.begin_controlled_shutdown();
        }
        self.after_input();
    }

    /// The driver's last call before it exits, once every write is synced
    /// (Kafka writes its marker after flushing every log, whether or not
    /// the controlled shutdown completed): a registered cluster broker
    /// records its epoch in the clean-shutdown marker, so that it restarts
    /// as a replica that kept everything it acknowledged (KIP-966). A
    /// process that dies without this call restarts as unclean.
    pub fn finish_clean_shutdown(&mut self) -> Result<(), StorageError> {
        let Some(epoch) = self.cluster.as_ref().and_then(|c| c.broker.epoch()) else {
            return Ok(());
        };
        cluster::clean_shutdown::write(&mut self.storage, epoch)
    }

    /// Whether a shutdown asked for with [`Node::begin_shutdown`] may
    /// proceed (nothing is led here any more, as far as the controller
    /// knows).
    pub fn shutdown_ready(&self) -> bool {
        self.cluster
            .as_ref()
            .is_none_or(|c| c.broker.shutdown_ready())
    }

    /// The cluster as this node sees it; `None` on a standalone broker.
    pub fn cluster_status(&self) -> Option<cluster::ClusterStatus> {
        self.cluster.as_ref().map(|c| c.status())
    }

    /// The offset of the last committed metadata record this broker
    /// applied to its image (-1 before any; cluster nodes; for checkers,
    /// cheap enough to ask after every event).
    pub fn metadata_applied_offset(&self) -> Option<i64> {
        Some(self.cluster.as_ref()?.image.last_applied_offset)
    }

    /// A CRC32C of the broker's metadata image as a snapshot of it would
    /// hold it: two brokers that applied the same committed prefix have the
    /// same digest, and a snapshot ending right after that prefix has it as
    /// its payload's CRC (cluster nodes; for checkers: it encodes the whole
    /// image, so ask only when the applied offset moved).
    pub fn metadata_image_digest(&self) -> Option<u32> {
        let payload = cluster::encode_snapshot(&self.cluster.as_ref()?.image);
        Some(crc32c::crc32c(&payload))
    }

    /// The quorum epoch and this node's role in it: what `cluster_status`
    /// says of the quorum, without its allocations (checkers ask after
    /// every event).
    pub fn quorum_position(&self) -> Option<(i32, crate::quorum::Role)> {
        self.cluster
            .as_ref()
            .map(|c| (c.quorum.epoch(), c.quorum.role()))
    }

    /// The replicas the committed metadata gives a partition, and whether a
    /// reassignment of it is in progress (cluster nodes; for checkers).
    pub fn registered_replicas(&self, topic: &str, partition: i32) -> Option<(Vec<i32>, bool)> {
        let image = &self.cluster.as_ref()?.image;
        let p = image.topic_by_name(topic)?.partitions.get(&partition)?;
        Some((p.assignment.replicas.clone(), p.is_reassigning()))
    }

    /// The first producer id of the next block the controller will hand
    /// out, as this broker's committed metadata says (cluster nodes; for
    /// checkers: no id handed out may be at or past it).
    pub fn next_producer_id_block(&self) -> Option<i64> {
        Some(self.cluster.as_ref()?.image.next_producer_id)
    }

    /// (leader epoch, is leader here, ISR as the leader holds it) of a
    /// hosted partition, for checkers.
    pub fn replica_role(&self, topic: &str, partition: i32) -> Option<(i32, bool, Vec<i32>)> {
        let p = self.topics.get(topic)?.partitions().get(&partition)?;
        let isr = match &p.replica {
            topics::Replica::Leader(l) => l.isr().iter().copied().collect(),
            _ => Vec::new(),
        };
        Some((p.leader_epoch, p.replica.is_leader(), isr))
    }

    /// Every partition led here, with its replica and ISR sizes (a
    /// standalone broker leads each of its partitions alone). Read-only,
    /// for the adapter's metrics.
    pub fn led_partitions(&self) -> Vec<LedPartition<'_>> {
        let mut led = Vec::new();
        for topic in self.topics.iter() {
            for (&partition, p) in topic.partitions() {
                let (replicas, isr) = match &p.replica {
                    topics::Replica::Standalone => (1, 1),
                    topics::Replica::Leader(l) => (l.replicas().len(), l.isr().len()),
                    _ => continue,
                };
                led.push(LedPartition {
                    topic: &topic.name,
                    partition,
                    replicas,
                    isr,
                });
            }
        }
        led
    }

    /// Consumer lag of the groups coordinated here on the partitions led
    /// here: (group, topic, partition, high watermark minus the committed
    /// offset, at least 0). Read-only, for the adapter's metrics.
    pub fn consumer_lags(&self) -> Vec<(&str, &str, i32, i64)> {
        self.groups
            .committed_offsets()
            .filter_map(|(group, (topic, partition), offset)| {
                let p = self.topics.get(topic)?.partitions().get(partition)?;
                p.replica.is_leader().then(|| {
                    (
                        group,
                        topic.as_str(),
                        *partition,
                        (p.high_watermark - offset).max(0),
                    )
                })
            })
            .collect()
    }

    /// The node's storage, to read its own counters (the adapter's
    /// metrics).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Partitions with a replica on this node.
    pub fn hosted_partition_count(&self) -> usize {
        self.topics.iter().map(|t| t.partitions().len()).sum()
    }

    /// KIP-227 fetch sessions cached, and the partitions they hold.
    pub fn fetch_sessions_cached(&self) -> (usize, usize) {
        (
            self.fetch_sessions.len(),
            self.fetch_sessions.partitions_cached(),
        )
    }

    /// Partitions of incremental fetches answered without reading them:
    /// nothing about them had changed since the session last listed them.
    pub fn fetch_session_partitions_unread(&self) -> u64 {
        self.fetch_sessions.partitions_unread()
    }

    /// Partitions with no leader in the cluster metadata this node has
    /// applied (Kafka's OfflinePartitionsCount); 0 on a standalone broker.
    pub fn offline_partition_count(&self) -> usize {
        self.cluster.as_ref().map_or(0, |c| {
            c.image
                .topics
                .values()
                .flat_map(|t| t.partitions.values())
                .filter(|p| p.assignment.leader < 0)
                .count()
        })
    }

    /// For the simulator's group checkers: what this node's coordinator
    /// holds of `group_id`, if it coordinates the group now.
    pub fn group_view(&self, group_id: &str) -> Option<GroupView> {
        if !self.groups.owns(group_id) {
            return None;
        }
        let consumer = self.consumer_groups.group(group_id);
        Some(GroupView {
            generation: self.groups.generation(group_id),
            member_epochs: consumer
                .map(|g| {
                    g.members
                        .values()
                        .map(|m| (m.member_id.clone(), m.epoch))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// `no_double_ownership` as this node's KIP-848 coordinator sees it
    /// (see `ConsumerGroups::double_ownership`).
    pub fn consumer_group_double_ownership(&self) -> Option<String> {
        self.consumer_groups.double_ownership()
    }

    pub fn topic_names(&self) -> Vec<String> {
        self.topics.iter().map(|t| t.name.clone()).collect()
    }

    // --- inputs ------------------------------------------------------------

    pub fn handle(&mut self, now: Instant, input: Input) {
        self.advance_time(now);
        match input {
            Input::Request {
                connection,
                header,
                body,
            } => self.handle_request(connection, header, body),
            Input::ConnectionClosed { connection } => self.handle_connection_closed(connection),
            Input::FlushCompleted { flush_id } => self.handle_flush_completed(flush_id),
            Input::FlushFailed { flush_id, error } => self.handle_flush_failed(flush_id, error),
            Input::PeerResponse {
                from,
                correlation_id,
                body,
            } => self.handle_peer_response(from, correlation_id, body),
            Input::PeerUnreachable { peer } => self.handle_peer_unreachable(peer),
        }
        self.after_input();
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance_time(now);
        self.expire_delayed_fetches();
        self.expire_produces();
        self.groups.handle_timeout(now);
        self.consumer_groups.handle_timeout(now);
        if now >= self.retention_check_at {
            // A compaction pass goes a segment per check: come back soon.
            let mut interval_ms = self.config.retention_check_interval_ms;
            if self.enforce_retention() {
                interval_ms = interval_ms.min(COMPACTION_STEP_INTERVAL_MS);
            }
            self.retention_check_at = now + Duration::from_millis(interval_ms);
            self.groups.expire_offsets(now);
        }
        self.after_input();
    }

    // --- outputs -----------------------------------------------------------

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let fetch = self.delayed_fetches.iter().map(|f| f.deadline).min();
        let flush_retry = self.flusher.retry_at();
        let groups = self.groups.next_timeout();
        let produce = self.produce_deadline();
        let consumer_groups = self.consumer_groups.next_timeout();
        let cluster = self
            .cluster
            .as_ref()
            .and_then(|c| c.next_deadline())
            .into_iter()
            .chain(
                self.cluster
                    .as_ref()
                    .and_then(|_| self.controller_deadline()),
            );
        [
            Some(self.retention_check_at),
            fetch,
            flush_retry,
            groups,
            produce,
            consumer_groups,
        ]
        .into_iter()
        .flatten()
        .chain(cluster)
        .min()
    }

    /// Panics with a reason when an internal invariant is broken. The
    /// simulator calls it after every event; `handle` calls it in debug
    /// builds.
    pub fn check_invariants(&self) {
        self.topics.check_invariants();
        self.responder.check_invariants();
        self.fetch_sessions.check_invariants();
        self.groups.check_invariants();
        self.consumer_groups.check_invariants();
        assert_eq!(
            self.consumer_groups.unwritten(),
            0,
            "every KIP-848 change is handed to the log before an input ends"
        );
        if let Some(cluster) = &self.cluster {
            cluster.check_invariants();
        }
        assert!(
            self.delayed_fetches.len() <= self.config.delayed_fetches_max,
            "delayed fetches unbounded"
        );
        assert!(
            self.delayed_fetches_spare.is_empty(),
            "the spare delayed-fetch list holds nothing between inputs"
        );
        assert!(
            self.pending_produces_spare.is_empty(),
            "the spare pending-produce list holds nothing between inputs"
        );
        for topic in self.topics.iter() {
            for p in topic.partitions().values() {
                if self.config.flush_before_ack {
                    assert!(
                        p.high_watermark <= p.log.synced_offset().max(p.log.log_start_offset()),
                        "an unsynced record is visible to consumers"
                    );
                }
            }
        }
    }

    // --- control flow ------------------------------------------------------

    fn advance_time(&mut self, now: Instant) {
        // A driver's clock may step back (simulated drift); the node's own
        // notion of time never does, so timers stay ordered.
        self.now = self.now.max(now);
    }

    fn handle_request(
        &mut self,
        connection: ConnectionId,
        header: RequestHeader,
        body: RequestKind,
    ) {
        let Ok(api_key) = ApiKey::try_from(header.request_api_key) else {
            self.close(
                connection,
                format!("unknown api key {}", header.request_api_key),
            );
            return;
        };
        let peer_api = self.cluster.is_some()
            && api_versions::supports_peer(api_key, header.request_api_version);
        if !peer_api && !supports(api_key, header.request_api_version) {
            self.close(
                connection,
                format!(
                    "unsupported version {} of {api_key:?}",
                    header.request_api_version
                ),
            );
            return;
        }
        let acks_zero = matches!(&body, RequestKind::Produce(p) if p.acks == 0);
        let slot = if acks_zero {
            None
        } else {
            match self.responder.open(
                connection,
                header.correlation_id,
                api_key,
                header.request_api_version,
            ) {
                Ok(slot) => Some(slot),
                Err(_) => {
                    self.close(connection, "too many requests in flight".to_string());
                    return;
                }
            }
        };
        if self.cluster.is_some() {
            if let Some(body) = self.dispatch_cluster(slot, &header, body) {
                self.dispatch(slot, &header, body);
            }
        } else {
            self.dispatch(slot, &header, body);
        }
    }

    /// The requests a cluster node handles apart: KRaft RPCs, controller
    /// requests, admin requests for the controller. Returns the request
    /// when the ordinary dispatch should take it.
    fn dispatch_cluster(
        &mut self,
        slot: Option<Slot>,
        header: &RequestHeader,
        body: RequestKind,
    ) -> Option<RequestKind> {
        let from_peer = header.client_id.as_ref().is_some_and(|c| {
            c.as_str()
                .starts_with(cluster::peers::PEER_CLIENT_ID_PREFIX)
        });
        match body {
            RequestKind::Vote(_)
            | RequestKind::BeginQuorumEpoch(_)
            | RequestKind::EndQuorumEpoch(_)
            | RequestKind::FetchSnapshot(_) => {
                self.handle_raft_request(slot.expect("answered"), header.correlation_id, body);
                None
            }
            RequestKind::Fetch(f) if cluster::raft::is_metadata_fetch(&f) => {
                self.handle_raft_request(
                    slot.expect("answered"),
                    header.correlation_id,
                    RequestKind::Fetch(f),
                );
                None
            }
            RequestKind::BrokerRegistration(_)
            | RequestKind::BrokerHeartbeat(_)
            | RequestKind::AlterPartition(_)
            | RequestKind::AllocateProducerIds(_) => {
                self.handle_peer_controller_request(slot.expect("answered"), body);
                None
            }
            RequestKind::CreateTopics(_)
            | RequestKind::DeleteTopics(_)
            | RequestKind::CreatePartitions(_)
            | RequestKind::ElectLeaders(_)
            | RequestKind::AlterPartitionReassignments(_)
            | RequestKind::ListPartitionReassignments(_)
            | RequestKind::AlterConfigs(_)
            | RequestKind::IncrementalAlterConfigs(_) => {
                let slot = slot.expect("answered");
                if from_peer {
                    self.handle_peer_controller_request(slot, body);
                } else {
                    self.forward_to_controller(slot, body);
                }
                None
            }
            other => Some(other),
        }
    }

    fn dispatch(&mut self, slot: Option<Slot>, header: &RequestHeader, body: RequestKind) {
        let version = header.request_api_version;
        let reply = |node: &mut Self, body: ResponseKind| {
            let slot = slot.expect("only acks=0 produce has no slot");
            node.responder.complete(slot, body, &mut node.outputs);
        };
        match body {
            RequestKind::ApiVersions(r) => reply(
                self,
                ResponseKind::ApiVersions(api_versions::handle_api_versions(&r)),
            ),
            RequestKind::Metadata(r) => {
                let response = self.handle_metadata(&r, version);
                reply(self, ResponseKind::Metadata(response))
            }
            RequestKind::CreateTopics(r) => {
                let response = self.handle_create_topics(&r, version);
                reply(self, ResponseKind::CreateTopics(response))
            }
            RequestKind::DeleteTopics(r) => {
                let response = self.handle_delete_topics(&r, version);
                reply(self, ResponseKind::DeleteTopics(response))
            }
            RequestKind::CreatePartitions(r) => {
                let response = self.handle_create_partitions(&r);
                reply(self, ResponseKind::CreatePartitions(response))
            }
            RequestKind::DescribeConfigs(r) => {
                let response = self.handle_describe_configs(&r, version);
                reply(self, ResponseKind::DescribeConfigs(response))
            }
            RequestKind::DeleteRecords(r) => {
                let response = self.handle_delete_records(&r);
                reply(self, ResponseKind::DeleteRecords(response))
            }
            RequestKind::ListOffsets(r) => {
                let response = self.handle_list_offsets(&r, version);
                reply(self, ResponseKind::ListOffsets(response))
            }
            RequestKind::OffsetForLeaderEpoch(r) => {
                let response = self.handle_offset_for_leader_epoch(&r);
                reply(self, ResponseKind::OffsetForLeaderEpoch(response))
            }
            RequestKind::DescribeCluster(r) => {
                let response = self.handle_describe_cluster(&r);
                reply(self, ResponseKind::DescribeCluster(response))
            }
            RequestKind::DescribeLogDirs(r) => {
                let response = self.handle_describe_log_dirs(&r);
                reply(self, ResponseKind::DescribeLogDirs(response))
            }
            RequestKind::DescribeProducers(r) => {
                let response = self.handle_describe_producers(&r);
                reply(self, ResponseKind::DescribeProducers(response))
            }
            RequestKind::ElectLeaders(r) => {
                let response = self.handle_elect_leaders_standalone(&r);
                reply(self, ResponseKind::ElectLeaders(response))
            }
            RequestKind::AlterPartitionReassignments(r) => {
                let response = self.handle_alter_partition_reassignments_standalone(&r);
                reply(self, ResponseKind::AlterPartitionReassignments(response))
            }
            RequestKind::ListPartitionReassignments(_) => {
                // Nothing ever moves on a standalone broker.
                let response =
                    kafka_protocol::messages::ListPartitionReassignmentsResponse::default();
                reply(self, ResponseKind::ListPartitionReassignments(response))
            }
            RequestKind::ConsumerGroupHeartbeat(r) => {
                let client_id = header.client_id.as_ref().map(|c| c.to_string());
                let slot = slot.expect("answered");
                self.handle_consumer_group_heartbeat(slot, version, client_id.as_deref(), &r);
            }
            RequestKind::ConsumerGroupDescribe(r) => {
                let response = self.handle_consumer_group_describe(&r);
                reply(self, ResponseKind::ConsumerGroupDescribe(response))
            }
            RequestKind::DescribeTopicPartitions(r) => {
                let response = self.handle_describe_topic_partitions(&r);
                reply(self, ResponseKind::DescribeTopicPartitions(response))
            }
            RequestKind::GetTelemetrySubscriptions(r) => {
                let response = self.handle_get_telemetry_subscriptions(&r);
                reply(self, ResponseKind::GetTelemetrySubscriptions(response))
            }
            RequestKind::PushTelemetry(_) => {
                let response = self.handle_push_telemetry();
                reply(self, ResponseKind::PushTelemetry(response))
            }
            RequestKind::AlterConfigs(r) => {
                let response = self.handle_alter_configs(&r);
                reply(self, ResponseKind::AlterConfigs(response))
            }
            RequestKind::IncrementalAlterConfigs(r) => {
                let response = self.handle_incremental_alter_configs(&r);
                reply(self, ResponseKind::IncrementalAlterConfigs(response))
            }
            RequestKind::InitProducerId(r) => {
                let response = self.handle_init_producer_id(&r);
                reply(self, ResponseKind::InitProducerId(response))
            }
            RequestKind::FindCoordinator(r) => {
                let response = self.handle_find_coordinator(&r, version);
                reply(self, ResponseKind::FindCoordinator(response))
            }
            RequestKind::JoinGroup(r) => {
                let slot = slot.expect("JoinGroup always owes a response");
                let client_id = header.client_id.as_ref().map(|c| c.to_string());
                self.handle_join_group(slot, client_id.as_deref(), r, version)
            }
            RequestKind::SyncGroup(r) => {
                let slot = slot.expect("SyncGroup always owes a response");
                self.handle_sync_group(slot, r, version)
            }
            RequestKind::Heartbeat(r) => {
                let slot = slot.expect("Heartbeat always owes a response");
                self.handle_heartbeat(slot, version, &r)
            }
            RequestKind::LeaveGroup(r) => {
                let response = self.handle_leave_group(&r, version);
                reply(self, ResponseKind::LeaveGroup(response))
            }
            RequestKind::DescribeGroups(r) => {
                let response = self.handle_describe_groups(&r, version);
                reply(self, ResponseKind::DescribeGroups(response))
            }
            RequestKind::ListGroups(r) => {
                let response = self.handle_list_groups(&r, version);
                reply(self, ResponseKind::ListGroups(response))
            }
            RequestKind::DeleteGroups(r) => {
                let slot = slot.expect("DeleteGroups always owes a response");
                self.handle_delete_groups(slot, &r, version)
            }
            RequestKind::OffsetCommit(r) => {
                let slot = slot.expect("OffsetCommit always owes a response");
                self.handle_offset_commit(slot, &r, version)
            }
            RequestKind::OffsetFetch(r) => {
                let response = self.handle_offset_fetch(&r, version);
                reply(self, ResponseKind::OffsetFetch(response))
            }
            RequestKind::OffsetDelete(r) => {
                let slot = slot.expect("OffsetDelete always owes a response");
                self.handle_offset_delete(slot, &r, version)
            }
            RequestKind::Produce(r) => self.handle_produce(slot, r, version),
            RequestKind::Fetch(r) => {
                let slot = slot.expect("fetch always owes a response");
                self.handle_fetch(slot, r, version)
            }
            other => unreachable!("supports() admitted an unhandled request: {other:?}"),
        }
    }

    fn handle_connection_closed(&mut self, connection: ConnectionId) {
        self.responder.close(connection);
        self.delayed_fetches
            .retain(|f| f.slot.connection != connection);
        self.pending_produces
            .retain(|p| p.slot.connection != connection);
        if let Some(cluster) = &mut self.cluster {
            cluster.forget_connection(connection);
        }
    }

    fn close(&mut self, connection: ConnectionId, reason: String) {
        tracing::warn!(connection, %reason, "closing connection");
        self.handle_connection_closed(connection);
        self.outputs
            .push_back(Output::CloseConnection { connection, reason });
    }

    /// Work every input ends with: start a flush if data waits for one,
    /// re-check parked fetches if a high watermark moved.
    fn after_input(&mut self) {
        self.drive_cluster();
        // Before the flush: the coordinator's appends join this flush.
        self.drive_groups();
        self.maybe_start_flush();
        if self.high_watermark_moved {
            self.high_watermark_moved = false;
            self.retry_delayed_fetches();
        }
        assert!(
            self.outputs.len() <= OUTPUTS_QUEUED_MAX,
            "the driver must drain poll_output after every handle"
        );
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// Retention, then one compaction step, per partition. True while a
    /// compaction pass is under way somewhere.
    fn enforce_retention(&mut self) -> bool {
        let now = self.now;
        let mut compacting = false;
        for topic in self.topics.iter_mut() {
            // A periodic pass: every partition counts as touched after it.
            for (_, p) in topic.partitions_mut() {
                match p.log.enforce_retention(&mut self.storage, now) {
                    Ok(deleted) if deleted > 0 => {
                        tracing::info!(dir = p.log.dir(), deleted, "retention deleted segments");
                        p.high_watermark = p.high_watermark.max(p.log.log_start_offset());
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(dir = p.log.dir(), error = %e, "retention failed"),
                }
                if let Err(e) = p.log.compact_step(&mut self.storage, now, p.high_watermark) {
                    tracing::warn!(dir = p.log.dir(), error = %e, "compaction failed");
                }
                compacting |= p.log.compaction_in_progress();
            }
        }
        compacting
    }

    fn random_uuid(&mut self) -> uuid::Uuid {
        use rand::RngCore;
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

/// The partition if this node serves clients for it (its leader, or a
/// standalone broker), else Kafka's error: NOT_LEADER_OR_FOLLOWER for a
/// partition the cluster has, UNKNOWN_TOPIC_OR_PARTITION otherwise. A free
/// function so callers keep `storage` borrowable beside it. To change it
/// (noted as touched, see `Topic::touched`); reads use
/// `leader_partition_ref`.
pub(crate) fn leader_partition<'a>(
    topics: &'a mut Topics,
    cluster: Option<&cluster::Cluster>,
    topic: &str,
    partition: i32,
) -> Result<&'a mut topics::Partition, i16> {
    match topics.partition_mut(topic, partition) {
        Some(p) if p.replica.is_leader() => Ok(p),
        found => Err(not_led_error(found.is_some(), cluster, topic, partition)),
    }
}

/// `leader_partition` to read it.
pub(crate) fn leader_partition_ref<'a>(
    topics: &'a Topics,
    cluster: Option<&cluster::Cluster>,
    topic: &str,
    partition: i32,
) -> Result<&'a topics::Partition, i16> {
    match topics.partition(topic, partition) {
        Some(p) if p.replica.is_leader() => Ok(p),
        found => Err(not_led_error(found.is_some(), cluster, topic, partition)),
    }
}

fn not_led_error(
    hosted: bool,
    cluster: Option<&cluster::Cluster>,
    topic: &str,
    partition: i32,
) -> i16 {
    use kafka_protocol::ResponseError;
    // Looked up only when the node hosts no such partition: the hosted
    // case is every parked fetch's re-check, and the image lookup cost
    // more than the rest.
    let known_in_cluster = || {
        cluster.is_some_and(|c| {
            c.image
                .topic_by_name(topic)
                .is_some_and(|t| t.partitions.contains_key(&partition))
        })
    };
    if hosted || known_in_cluster() {
        ResponseError::NotLeaderOrFollower.code()
    } else {
        ResponseError::UnknownTopicOrPartition.code()
    }
}

fn validate_config(config: &NodeConfig) -> Result<(), NodeError> {
    let fail = |m: String| Err(NodeError::Config(m));
    if config.node_id < 0 {
        return fail(format!("node.id must be >= 0, got {}", config.node_id));
    }
    if !(1..=topics::PARTITIONS_PER_TOPIC_MAX).contains(&config.num_partitions) {
        return fail(format!(
            "num.partitions must be in [1, {}], got {}",
            topics::PARTITIONS_PER_TOPIC_MAX,
            config.num_partitions
        ));
    }
    if config.log.segment_bytes < 14 {
        return fail(format!(
            "log.segment.bytes must be >= 14, got {}",
            config.log.segment_bytes
        ));
    }
    if config.in_flight_requests_per_connection_max == 0 || config.delayed_fetches_max == 0 {
        return fail("in-flight and delayed-fetch limits must be positive".to_string());
    }
    if !(1..=topics::PARTITIONS_PER_TOPIC_MAX).contains(&config.offsets_topic_partitions) {
        return fail(format!(
            "offsets.topic.num.partitions must be in [1, {}], got {}",
            topics::PARTITIONS_PER_TOPIC_MAX,
            config.offsets_topic_partitions
        ));
    }
    if config.group_max_size == 0 {
        return fail("group.max.size must be positive".to_string());
    }
    if config.fetch_sessions_max > fetch_sessions::SLOTS_MAX {
        return fail(format!(
            "max.incremental.fetch.session.cache.slots must be at most {}, got {}",
            fetch_sessions::SLOTS_MAX,
            config.fetch_sessions_max
        ));
    }
    if config.group_min_session_timeout_ms > config.group_max_session_timeout_ms {
        return fail(format!(
            "group.min.session.timeout.ms ({}) exceeds group.max.session.timeout.ms ({})",
            config.group_min_session_timeout_ms, config.group_max_session_timeout_ms
        ));
    }
    if config.retention_check_interval_ms == 0 {
        return fail("log.retention.check.interval.ms must be positive".to_string());
    }
    Ok(())
}
