//! A node as one member of a KRaft cluster (combined broker and
//! controller): the controller quorum ([`raft`]), the controller on top of
//! it ([`controller_host`]), broker registration and the metadata listener
//! ([`broker`]), and partition replication ([`replication`]).
//!
//! Control flow: every input ends in [`Node::drive_cluster`], which routes
//! the quorum's outputs, applies newly committed metadata, moves the
//! controller between active and passive, and lets the broker, the replica
//! fetcher and the ISR logic send what is due. Each step is bounded and
//! idempotent, so running it after any input is always safe.

pub mod broker;
pub mod clean_shutdown;
pub mod controller_host;
pub mod follow_index;
pub mod groups;
pub mod metadata_view;
pub mod peers;
pub mod producer_id_blocks;
pub mod raft;
pub mod replication;

use super::config::ClusterConfig;
use super::io::{PeerAddress, PeerId};
use super::responder::Slot;
use super::{Node, NodeConfig, NodeError};
use crate::controller::{
    decode_batches, decode_batches_from, ControllerConfig, MetadataImage, MetadataRecord,
};
use crate::quorum::{QuorumConfig, QuorumNode, VoterEndpoint};
use crate::storage::Storage;
use crate::time::Instant;
use broker::BrokerLifecycle;
use controller_host::{ControllerHost, ControllerReply};
use kafka_protocol::messages::{RequestKind, ResponseKind};
use peers::{Peers, Purpose};
use producer_id_blocks::ProducerIdBlocks;
use raft::RaftBridge;
use replication::ReplicaFetcher;
use std::collections::BTreeMap;

/// Bytes of committed metadata read per replay step.
const METADATA_READ_BYTES_MAX: usize = 1024 * 1024;

pub struct Cluster {
    pub config: ClusterConfig,
    pub quorum: QuorumNode,
    pub peers: Peers,
    pub raft: RaftBridge,
    pub controller: ControllerHost,
    pub broker: BrokerLifecycle,
    /// The committed metadata as this broker acts on it.
    pub image: MetadataImage,
    pub fetcher: ReplicaFetcher,
    /// When the leaders next look for followers that fell out of sync.
    pub isr_check_at: Instant,
    /// A leader may have an ISR change to send (a follower fetched, an
    /// assignment or a refusal arrived): look before the next timer.
    pub isr_dirty: bool,
    /// Reused by `drive_isr`.
    pub isr_listed: Vec<i32>,
    /// Client admin requests forwarded to the controller: the answer to
    /// give if the controller is lost with them.
    pub forwards: BTreeMap<Slot, ResponseKind>,
    /// InitProducerId's ids, in blocks from the controller.
    pub producer_ids: ProducerIdBlocks,
}

/// What a cluster node knows of the cluster, for checkers and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    pub quorum_role: crate::quorum::Role,
    pub quorum_epoch: i32,
    pub quorum_leader: Option<i32>,
    pub quorum_high_watermark: Option<i64>,
    pub controller_active: bool,
    /// The metadata log offset the node's controller has replayed to:
    /// 0 on a broker-only node, which runs no controller.
    pub controller_replayed_to: i64,
    pub broker_epoch: Option<i64>,
    pub broker_fenced: bool,
    /// The broker has replayed the metadata log up to its registration.
    pub broker_caught_up: bool,
    /// Caught up and unfenced since it started: it describes the cluster
    /// to clients.
    pub broker_running: bool,
    /// The offset of the last metadata record the broker applied.
    pub metadata_offset: i64,
    pub registered_brokers: Vec<i32>,
    pub unfenced_brokers: Vec<i32>,
}

impl Cluster {
    pub fn status(&self) -> ClusterStatus {
        ClusterStatus {
            quorum_role: self.quorum.role(),
            quorum_epoch: self.quorum.epoch(),
            quorum_leader: self.quorum.leader_id(),
            quorum_high_watermark: self.quorum.high_watermark(),
            controller_active: self.controller.is_active(),
            controller_replayed_to: self.controller.replayed_to(),
            broker_epoch: self.broker.epoch(),
            broker_fenced: self.broker.is_fenced(),
            broker_caught_up: self.broker.is_caught_up(),
            broker_running: self.broker.is_running(),
            metadata_offset: self.image.last_applied_offset,
            registered_brokers: self.image.brokers.keys().copied().collect(),
            unfenced_brokers: self
                .image
                .brokers
                .values()
                .filter(|b| !b.fenced)
                .map(|b| b.id)
                .collect(),
        }
    }

    pub fn open(
        node: &NodeConfig,
        config: &ClusterConfig,
        storage: &mut dyn Storage,
        rng_seed: u64,
        incarnation_id: uuid::Uuid,
        now: Instant,
    ) -> Result<Cluster, NodeError> {
        let voter_ids: Vec<i32> = config.voters.keys().copied().collect();
        let mut quorum_config = QuorumConfig::new(node.node_id, &voter_ids, &node.cluster_id);
        for (id, address) in &config.voters {
            quorum_config.voters.insert(
                *id,
                VoterEndpoint {
                    host: address.host.clone(),
                    port: address.port,
                },
            );
        }
        quorum_config.election_timeout_ms = config.election_timeout_ms;
        quorum_config.fetch_timeout_ms = config.quorum_fetch_timeout_ms;
        quorum_config.commit_prior_epoch = config.bugs.commit_prior_epoch;
        let quorum = QuorumNode::open(storage, quorum_config, now, rng_seed ^ 0x5155_4f52)
            .map_err(|e| NodeError::Metadata(format!("metadata log: {e}")))?;
        let mut controller_config = ControllerConfig::new(node.node_id, &node.cluster_id);
        controller_config.broker_session_timeout_ms = config.broker_session_timeout_ms;
        controller_config.default_num_partitions = node.num_partitions;
        controller_config.default_replication_factor = config.default_replication_factor;
        controller_config.default_min_insync_replicas = config.min_insync_replicas;
        controller_config.default_unclean_leader_election_enable =
            config.unclean_leader_election_enable;
        controller_config.rng_seed = rng_seed ^ 0x4354_524c;
        controller_config.bugs = config.bugs.controller;
        let previous_broker_epoch = clean_shutdown::take(storage)?;
        Ok(Cluster {
            config: config.clone(),
            quorum,
            peers: Peers::default(),
            raft: RaftBridge::default(),
            controller: ControllerHost::new(controller_config),
            broker: BrokerLifecycle::new(incarnation_id, previous_broker_epoch, now),
            image: MetadataImage::new(),
            fetcher: ReplicaFetcher::default(),
            isr_check_at: now,
            isr_dirty: true,
            isr_listed: Vec::new(),
            forwards: BTreeMap::new(),
            producer_ids: ProducerIdBlocks::new(now),
        })
    }

    /// A connection closed: nothing owed on it is answered any more.
    pub fn forget_connection(&mut self, connection: super::io::ConnectionId) {
        self.forwards
            .retain(|slot, _| slot.connection != connection);
        self.raft.forget_connection(connection);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.quorum.poll_timeout(),
            self.peers.next_deadline(),
            self.raft.next_deadline(),
            self.broker.next_deadline(),
            self.fetcher.next_deadline(),
            self.producer_ids.next_deadline(),
            Some(self.isr_check_at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn check_invariants(&self) {
        self.quorum.check_invariants();
        self.controller.check_invariants();
        self.raft.check_invariants();
        self.producer_ids.check_invariants();
        self.peers.check_invariants();
        // Committed records are never truncated, so they stay in the log.
        assert!(
            self.image.last_applied_offset < self.quorum.log_end_offset().max(0),
            "the broker image holds records of the metadata log only"
        );
    }
}

/// Records per batch in a metadata snapshot's payload.
const SNAPSHOT_BATCH_RECORDS_MAX: usize = 10_000;

/// A metadata snapshot's payload: the records that rebuild `image`, as v2
/// batches (see `MetadataImage::snapshot_records`).
pub fn encode_snapshot(image: &MetadataImage) -> Vec<u8> {
    // Each record encoded as it is made, into batches of at most
    // SNAPSHOT_BATCH_RECORDS_MAX, byte for byte what `encode_batch` makes
    // of the same chunks of `snapshot_records`.
    // ~64 bytes a record (a partition record with three replicas).
    let mut left = image.snapshot_records_max();
    let mut payload = Vec::with_capacity(left * 64);
    let mut batch: Option<(crate::batch::BatchWriter, usize)> = None;
    image.for_each_snapshot_record(|record| {
        let (writer, records) = batch.get_or_insert_with(|| {
            let these = left.min(SNAPSHOT_BATCH_RECORDS_MAX);
            left -= these;
            (crate::batch::BatchWriter::new(0, these * 64), 0)
        });
        writer.push_value(|out| record.encode_into(out));
        *records += 1;
        if *records == SNAPSHOT_BATCH_RECORDS_MAX {
            let (writer, _) = batch.take().expect("a batch being written");
            payload.extend_from_slice(&writer.finish());
        }
    });
    if let Some((writer, _)) = batch {
        payload.extend_from_slice(&writer.finish());
    }
    payload
}

/// The image a snapshot payload ending at `end_offset` rebuilds.
pub fn decode_snapshot(end_offset: i64, payload: &[u8]) -> Result<MetadataImage, String> {
    let records = decode_batches(payload).map_err(|e| e.to_string())?;
    let records: Vec<MetadataRecord> = records.into_iter().map(|(_, r)| r).collect();
    Ok(MetadataImage::from_snapshot(end_offset, &records))
}

/// The image of the snapshot at the log start, which the log continues.
pub fn load_metadata_snapshot(
    quorum: &QuorumNode,
    storage: &mut dyn Storage,
) -> Option<MetadataImage> {
    let id = quorum.latest_snapshot()?;
    assert_eq!(
        id.end_offset,
        quorum.log_start_offset(),
        "the latest snapshot is the one at the log start"
    );
    let payload = match quorum.read_snapshot(storage, id) {
        Ok(payload) => payload,
        Err(e) => {
            tracing::error!(error = %e, "reading the metadata snapshot failed");
            return None;
        }
    };
    let image = decode_snapshot(id.end_offset, &payload).unwrap_or_else(|e| {
        panic!("metadata snapshot {id:?} passed its checksum but does not decode: {e}")
    });
    tracing::info!(?id, "metadata image loaded from a snapshot");
    Some(image)
}

/// Committed metadata records from `from` (at most one read's worth) and
/// the offset after the last batch read.
pub fn read_committed_records(
    quorum: &mut QuorumNode,
    storage: &mut dyn Storage,
    from: i64,
) -> (Vec<(i64, MetadataRecord)>, i64) {
    let read = match quorum.read_committed(storage, from, METADATA_READ_BYTES_MAX) {
        Ok(read) => read,
        Err(e) => {
            tracing::error!(from, error = %e, "reading committed metadata failed");
            return (Vec::new(), from);
        }
    };
    let mut next = from;
    for (_, header) in crate::batch::BatchIter::new(&read.records) {
        next = next.max(header.next_offset());
    }
    let records = decode_batches_from(&read.records, from)
        .unwrap_or_else(|e| panic!("committed metadata at {from} does not decode: {e}"));
    (records, next)
}

impl<S: Storage> Node<S> {
    pub(super) fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().expect("a cluster node")
    }

    pub(super) fn cluster_mut(&mut self) -> &mut Cluster {
        self.cluster.as_mut().expect("a cluster node")
    }

    pub(super) fn peer_address(&self, peer: PeerId) -> Option<PeerAddress> {
        let cluster = self.cluster();
        if let Some(address) = cluster.config.voters.get(&peer) {
            return Some(address.clone());
        }
        let broker = cluster.image.brokers.get(&peer)?;
        let endpoint = broker.end_points.first()?;
        Some(PeerAddress {
            host: endpoint.host.clone(),
            port: endpoint.port,
        })
    }

    /// Sends a request to a peer. Returns false when it could not be queued
    /// (unknown address, table full); the caller's timers retry.
    pub(super) fn send_peer_request(
        &mut self,
        to: PeerId,
        body: RequestKind,
        purpose: Purpose,
        deadline: Instant,
    ) -> bool {
        let Some(address) = self.peer_address(to) else {
            tracing::debug!(to, "no address for peer");
            return false;
        };
        let self_id = self.config.node_id;
        let Node {
            cluster, outputs, ..
        } = self;
        let cluster = cluster.as_mut().expect("a cluster node");
        cluster
            .peers
            .send(outputs, self_id, to, address, body, purpose, deadline)
            .is_some()
    }

    pub(super) fn handle_peer_response(
        &mut self,
        from: PeerId,
        correlation_id: i32,
        body: ResponseKind,
    ) {
        if self.cluster.is_none() {
            tracing::warn!(from, "peer response to a standalone node; ignored");
            return;
        }
        let Some(purpose) = self.cluster_mut().peers.take(from, correlation_id) else {
            tracing::debug!(from, correlation_id, "late or unknown peer response");
            return;
        };
        self.route_answer(from, purpose, Some(body));
    }

    pub(super) fn handle_peer_unreachable(&mut self, peer: PeerId) {
        if self.cluster.is_none() {
            return;
        }
        for purpose in self.cluster_mut().peers.drop_peer(peer) {
            self.route_answer(peer, purpose, None);
        }
    }

    fn route_answer(&mut self, from: PeerId, purpose: Purpose, body: Option<ResponseKind>) {
        match (purpose, body) {
            (Purpose::Raft { .. }, None) => {} // the quorum's timers retry
            (
                Purpose::Raft {
                    quorum_correlation_id,
                },
                Some(body),
            ) => self.handle_raft_response(from, quorum_correlation_id, body),
            (Purpose::Controller(call), body) => self.handle_controller_answer(call, body),
            (Purpose::ReplicaFetch, Some(body)) => self.handle_replica_fetch_response(from, body),
            (Purpose::ReplicaFetch, None) => {
                let now = self.now;
                self.cluster_mut().fetcher.fetch_lost(from, now);
            }
        }
    }

    /// A request only a controller answers, from a peer.
    pub(super) fn handle_peer_controller_request(
        &mut self,
        slot: super::responder::Slot,
        body: RequestKind,
    ) {
        self.handle_controller_request(ControllerReply::Remote(slot), body);
    }

    /// A client's CreateTopics, DeleteTopics or CreatePartitions: the
    /// controller decides; its answer goes back to the client.
    pub(super) fn forward_to_controller(&mut self, slot: Slot, body: RequestKind) {
        let fallback = controller_host::not_controller_answer(&body);
        self.cluster_mut().forwards.insert(slot, fallback);
        if !self.send_to_controller(controller_host::ControllerCall::Forward { slot }, body) {
            self.answer_forward_lost(slot);
        }
    }

    pub(super) fn answer_forward_lost(&mut self, slot: Slot) {
        if let Some(answer) = self.cluster_mut().forwards.remove(&slot) {
            self.responder.complete(slot, answer, &mut self.outputs);
        }
    }

    pub(super) fn answer_forward(&mut self, slot: Slot, answer: ResponseKind) {
        if self.cluster_mut().forwards.remove(&slot).is_some() {
            self.responder.complete(slot, answer, &mut self.outputs);
        }
    }

    /// Everything due after an input or a timer, in dependency order.
    pub(super) fn drive_cluster(&mut self) {
        if self.cluster.is_none() {
            return;
        }
        let now = self.now;
        for (peer, purpose) in self.cluster_mut().peers.expire(now) {
            self.route_answer(peer, purpose, None);
        }
        self.raft_timeouts();
        self.drive_controller();
        self.controller_timeouts();
        self.apply_committed_metadata();
        self.drive_broker();
        self.drive_producer_ids();
        self.drive_isr();
        self.drive_fetcher();
        self.release_produces(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::records::{PartitionRecord, TopicRecord};

    /// The payload is what `encode_batch` makes of `snapshot_records` in
    /// chunks of SNAPSHOT_BATCH_RECORDS_MAX (here three batches, the last
    /// short), and it decodes back to the same image.
    #[test]
    fn a_snapshot_payload_is_the_image_records_batched() {
        let topic_id = uuid::Uuid::from_u128(9);
        let mut records = vec![MetadataRecord::Topic(TopicRecord {
            name: "wide".into(),
            topic_id,
        })];
        for partition_id in 0..(2 * SNAPSHOT_BATCH_RECORDS_MAX as i32 + 10) {
            records.push(MetadataRecord::Partition(PartitionRecord {
                partition_id,
                topic_id,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2],
                leader: 1 + partition_id % 2,
                leader_epoch: 0,
                partition_epoch: 0,
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
                adding_replicas: vec![],
                removing_replicas: vec![],
            }));
        }
        let image = MetadataImage::from_snapshot(100, &records);
        let payload = encode_snapshot(&image);
        let expected: Vec<u8> = image
            .snapshot_records()
            .chunks(SNAPSHOT_BATCH_RECORDS_MAX)
            .flat_map(|chunk| crate::controller::encode_batch(chunk, 0))
            .collect();
        assert_eq!(crate::batch::BatchIter::new(&payload).count(), 3);
        assert!(
            payload == expected,
            "the payload differs from the batched records"
        );
        assert_eq!(decode_snapshot(100, &payload).expect("decodes"), image);
    }
}
