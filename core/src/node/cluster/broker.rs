//! The broker's side of the cluster: registration and heartbeats with the
//! active controller, the committed metadata image, and the metadata
//! listener that turns the image into partition replicas here (open the
//! log, become leader or follower, forget deleted topics).
//!
//! The image is built from committed records only, so a broker never acts
//! on metadata a failed controller proposed and the quorum then dropped.

use super::super::partition_map::PartitionMap;
use super::super::topics::{partition_dir, Partition, Replica, Topic};
use super::super::Node;
use super::controller_host::{ControllerCall, ControllerReply};
use super::peers::{deadline, Purpose};
use super::read_committed_records;
use crate::controller::{MetadataImage, MetadataRecord, PartitionRegistration};
use crate::log::PartitionLog;
use crate::partition::{FollowerReplica, LeaderReplica, ReplicationConfig};
use crate::storage::Storage;
use crate::time::Instant;
use kafka_protocol::messages::broker_registration_request::Listener;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use uuid::Uuid;

/// Wait before asking the controller again after a refusal or a loss.
const CONTROLLER_RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Heartbeats without a controller before a controlled shutdown gives up.
const CONTROLLED_SHUTDOWN_TRIES_MAX: u32 = 5;
/// Kafka's ConfigResource type of a topic.
const TOPIC_RESOURCE: i8 = 2;

#[derive(Debug)]
pub struct BrokerLifecycle {
    /// This process's identity: a restarted broker registers anew.
    incarnation_id: Uuid,
    /// The broker epoch the clean-shutdown marker named at start, -1 when
    /// the last stop was not clean (`clean_shutdown`).
    previous_epoch: i64,
    /// The broker epoch once registered.
    epoch: Option<i64>,
    fenced: bool,
    in_flight: bool,
    next_action_at: Instant,
    /// Controlled shutdown asked for: heartbeats say `want_shut_down` until
    /// the controller has moved every leadership away.
    shutting_down: bool,
    /// The controller answered `should_shut_down`: safe to stop.
    shutdown_ready: bool,
    /// Heartbeats of a controlled shutdown that found no controller.
    shutdown_failures: u32,
    /// The image holds this broker's own registration: its metadata is
    /// current enough to act on (KRaft's RECOVERY -> RUNNING). Until then
    /// a restarted broker leads and follows nothing, whatever its stale
    /// local log says.
    caught_up: bool,
    /// Caught up and unfenced once since this process started (KRaft's
    /// RECOVERY -> RUNNING). Only then does it describe the cluster to
    /// clients: Kafka's broker opens its client listeners at this point,
    /// and before it a restarted node's image is a past state of the
    /// cluster still being replayed (missing brokers and topics, this
    /// broker itself fenced).
    running: bool,
}

impl BrokerLifecycle {
    pub fn new(incarnation_id: Uuid, previous_epoch: i64, now: Instant) -> BrokerLifecycle {
        assert!(previous_epoch >= -1, "an epoch or unknown");
        BrokerLifecycle {
            incarnation_id,
            previous_epoch,
            epoch: None,
            fenced: true,
            in_flight: false,
            next_action_at: now,
            shutting_down: false,
            shutdown_ready: false,
            shutdown_failures: 0,
            caught_up: false,
            running: false,
        }
    }

    pub fn shutdown_ready(&self) -> bool {
        self.shutdown_ready
    }

    /// A controlled shutdown that cannot reach a controller (the rest of
    /// the cluster is stopping too) gives up after a few tries, as Kafka's
    /// `controlled.shutdown.max.retries` does, rather than wait forever.
    fn note_shutdown_failure(&mut self) {
        if !self.shutting_down || self.shutdown_ready {
            return;
        }
        self.shutdown_failures += 1;
        if self.shutdown_failures >= CONTROLLED_SHUTDOWN_TRIES_MAX {
            tracing::warn!("controlled shutdown: no controller answers; stopping anyway");
            self.shutdown_ready = true;
        }
    }

    pub fn epoch(&self) -> Option<i64> {
        self.epoch
    }

    pub fn is_fenced(&self) -> bool {
        self.fenced
    }

    /// Whether the image has been read up to this broker's registration.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up
    }

    /// Whether it has been caught up and unfenced since it started.
    pub fn is_running(&self) -> bool {
        self.running
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        (!self.in_flight).then_some(self.next_action_at)
    }
}

impl<S: Storage> Node<S> {
    /// Sends this node's own request to the active controller: a local call
    /// when this node is it, a peer request otherwise. Returns false when no
    /// controller is known.
    pub(in crate::node) fn send_to_controller(
        &mut self,
        call: ControllerCall,
        request: RequestKind,
    ) -> bool {
        let Some(leader) = self.cluster().quorum.leader_id() else {
            return false;
        };
        if leader == self.config.node_id {
            self.handle_controller_request(ControllerReply::Local(call), request);
            return true;
        }
        let timeout_ms = self.cluster().config.request_timeout_ms;
        let at = deadline(self.now, timeout_ms);
        self.send_peer_request(leader, request, Purpose::Controller(call), at)
    }

    /// Registration and heartbeats, when due.
    pub(in crate::node) fn drive_broker(&mut self) {
        let now = self.now;
        let broker = &self.cluster().broker;
        if broker.in_flight || now < broker.next_action_at {
            return;
        }
        let request = match broker.epoch {
            None => (ControllerCall::Registration, self.registration_request()),
            Some(epoch) => (ControllerCall::Heartbeat, self.heartbeat_request(epoch)),
        };
        self.cluster_mut().broker.in_flight = true;
        if !self.send_to_controller(request.0, request.1) {
            let broker = &mut self.cluster_mut().broker;
            broker.in_flight = false;
            broker.next_action_at = now + CONTROLLER_RETRY_BACKOFF;
            broker.note_shutdown_failure();
        }
    }

    fn registration_request(&self) -> RequestKind {
        let cluster = self.cluster();
        let listener = Listener::default()
            .with_name(StrBytes::from_static_str("PLAINTEXT"))
            .with_host(StrBytes::from_string(self.config.advertised_host.clone()))
            .with_port(self.config.advertised_port as u16)
            .with_security_protocol(0);
        RequestKind::BrokerRegistration(
            BrokerRegistrationRequest::default()
                .with_broker_id(self.config.node_id.into())
                .with_cluster_id(StrBytes::from_string(self.config.cluster_id.clone()))
                .with_incarnation_id(cluster.broker.incarnation_id)
                .with_listeners(vec![listener])
                .with_rack(cluster.config.rack.clone().map(StrBytes::from_string))
                .with_previous_broker_epoch(cluster.broker.previous_epoch),
        )
    }

    /// Starts a controlled shutdown: the controller moves leadership off
    /// this broker first ([`BrokerLifecycle::shutdown_ready`] says when it
    /// is done).
    pub(in crate::node) fn begin_controlled_shutdown(&mut self) {
        let now = self.now;
        let broker = &mut self.cluster_mut().broker;
        if broker.shutting_down {
            return;
        }
        tracing::info!("controlled shutdown: asking the controller to move leadership away");
        broker.shutting_down = true;
        // Not registered: nothing leads here, nothing to move.
        broker.shutdown_ready = broker.epoch.is_none();
        broker.next_action_at = now;
    }

    fn heartbeat_request(&self, epoch: i64) -> RequestKind {
        RequestKind::BrokerHeartbeat(
            BrokerHeartbeatRequest::default()
                .with_broker_id(self.config.node_id.into())
                .with_broker_epoch(epoch)
                .with_want_shut_down(self.cluster().broker.shutting_down)
                .with_current_metadata_offset(self.cluster().image.last_applied_offset),
        )
    }

    /// The controller's answer to this node's own request; `None` when it
    /// was lost (peer unreachable, timed out).
    pub(in crate::node) fn handle_controller_answer(
        &mut self,
        call: ControllerCall,
        answer: Option<ResponseKind>,
    ) {
        match (call, answer) {
            (ControllerCall::Registration, answer) => self.handle_registration_answer(answer),
            (ControllerCall::Heartbeat, answer) => self.handle_heartbeat_answer(answer),
            (
                ControllerCall::AlterPartition {
                    topic,
                    partition,
                    leader_epoch,
                    partition_epoch,
                },
                answer,
            ) => self.handle_alter_partition_answer(
                &topic,
                partition,
                (leader_epoch, partition_epoch),
                answer,
            ),
            (ControllerCall::Forward { slot }, Some(answer)) => self.answer_forward(slot, answer),
            (ControllerCall::Forward { slot }, None) => {
                // The controller went away with the request: a timeout is
                // what Kafka answers, and clients retry it.
                self.answer_forward_lost(slot)
            }
            (ControllerCall::AutoCreate, _) => {}
            (ControllerCall::AllocateProducerIds, answer) => {
                self.handle_allocate_producer_ids_answer(answer)
            }
        }
    }

    fn handle_registration_answer(&mut self, answer: Option<ResponseKind>) {
        let now = self.now;
        let broker = &mut self.cluster_mut().broker;
        broker.in_flight = false;
        match answer {
            Some(ResponseKind::BrokerRegistration(r)) if r.error_code == 0 => {
                tracing::info!(epoch = r.broker_epoch, "broker registered");
                broker.epoch = Some(r.broker_epoch);
                broker.next_action_at = now;
            }
            other => {
                tracing::debug!(?other, "registration failed; retrying");
                broker.next_action_at = now + CONTROLLER_RETRY_BACKOFF;
            }
        }
    }

    fn handle_heartbeat_answer(&mut self, answer: Option<ResponseKind>) {
        let now = self.now;
        let interval = Duration::from_millis(self.cluster().config.broker_heartbeat_interval_ms);
        let broker = &mut self.cluster_mut().broker;
        broker.in_flight = false;
        match answer {
            Some(ResponseKind::BrokerHeartbeat(r)) if r.error_code == 0 => {
                if broker.fenced != r.is_fenced {
                    tracing::info!(fenced = r.is_fenced, "broker fencing changed");
                }
                broker.fenced = r.is_fenced;
                if broker.shutting_down {
                    if r.should_shut_down && !broker.shutdown_ready {
                        tracing::info!("controlled shutdown: the controller released this broker");
                    }
                    broker.shutdown_ready |= r.should_shut_down;
                    // Ask again soon: leadership moves take a round or two.
                    broker.next_action_at = now + interval.min(CONTROLLER_RETRY_BACKOFF);
                } else {
                    broker.next_action_at = now + interval;
                }
            }
            Some(ResponseKind::BrokerHeartbeat(r))
                if r.error_code == ResponseError::StaleBrokerEpoch.code() =>
            {
                tracing::warn!("heartbeat refused: stale broker epoch; registering again");
                broker.epoch = None;
                broker.fenced = true;
                broker.next_action_at = now;
            }
            _ => {
                broker.next_action_at = now + CONTROLLER_RETRY_BACKOFF;
                broker.note_shutdown_failure();
            }
        }
    }

    // ----- the committed image and the metadata listener -----

    /// Applies newly committed records to the image, then reconciles the
    /// partitions hosted here with it.
    pub(in crate::node) fn apply_committed_metadata(&mut self) {
        let high_watermark = self.cluster().quorum.high_watermark().unwrap_or(0);
        let mut removed = BTreeSet::new();
        let mut reconfigured = BTreeSet::new();
        let mut changed = false;
        let log_start = self.cluster().quorum.log_start_offset();
        if self.cluster().image.last_applied_offset + 1 < log_start {
            // Below the log start only the snapshot holds the records: the
            // image is replaced, topics it no longer has are forgotten.
            let Node {
                cluster, storage, ..
            } = self;
            let cluster = cluster.as_mut().expect("cluster node");
            if let Some(image) = super::load_metadata_snapshot(&cluster.quorum, storage) {
                for topic in self.topics.iter() {
                    if !image.topics.contains_key(&topic.id) {
                        removed.insert(topic.id);
                    }
                    reconfigured.insert(topic.name.clone());
                }
                cluster.image = image;
                changed = true;
            }
        }
        // Bounded: each round reads at most one fetch-size of the log.
        for _ in 0..1024 {
            let from = self.cluster().image.last_applied_offset + 1;
            if from >= high_watermark {
                break;
            }
            let Node {
                cluster, storage, ..
            } = self;
            let cluster = cluster.as_mut().expect("cluster node");
            let (records, next) = read_committed_records(&mut cluster.quorum, storage, from);
            for (offset, record) in &records {
                match record {
                    MetadataRecord::RemoveTopic(r) => {
                        removed.insert(r.topic_id);
                    }
                    MetadataRecord::Config(r) if r.resource_type == TOPIC_RESOURCE => {
                        reconfigured.insert(r.resource_name.clone());
                    }
                    _ => {}
                }
                cluster.image.apply(*offset, record);
                changed = true;
            }
            // Control batches carry no records but still take offsets.
            cluster.image.last_applied_offset = cluster.image.last_applied_offset.max(next - 1);
            if next <= from {
                break;
            }
        }
        // Guarded: this runs after every input, nearly always with both
        // sets empty, and taking an empty set apart is not free.
        if !removed.is_empty() {
            for topic_id in removed {
                self.forget_deleted_topic(topic_id);
            }
        }
        // A broker acts on metadata only once it has read its own
        // registration back: records before it may name this broker leader
        // in an epoch a restart has since ended.
        let registered_at = self.cluster().broker.epoch;
        let caught_up =
            registered_at.is_some_and(|epoch| self.cluster().image.last_applied_offset >= epoch);
        let just_caught_up = caught_up && !self.cluster().broker.caught_up;
        if just_caught_up {
            tracing::info!(
                offset = self.cluster().image.last_applied_offset,
                "metadata caught up with this broker's registration"
            );
            self.cluster_mut().broker.caught_up = true;
        }
        self.note_running();
        if !reconfigured.is_empty() {
            for topic in reconfigured {
                if self.topics.contains(&topic) {
                    let overrides = topic_overrides(&self.cluster().image, &topic);
                    self.set_topic_overrides(&topic, overrides);
                    if let Err(e) = self.topics.persist(&mut self.storage) {
                        tracing::error!(error = %e, "persisting the topic registry failed");
                    }
                }
            }
        }
        if (changed && self.cluster().broker.caught_up) || just_caught_up {
            self.reconcile_replicas();
        }
        self.maybe_snapshot_metadata();
    }

    /// KIP-630: snapshots the committed image once enough offsets were
    /// applied since the last snapshot (or the log start).
    fn maybe_snapshot_metadata(&mut self) {
        let threshold = self.cluster().config.metadata_max_records_between_snapshots;
        let quorum = &self.cluster().quorum;
        let end_offset = self.cluster().image.last_applied_offset + 1;
        let since = quorum
            .latest_snapshot()
            .map_or(0, |id| id.end_offset)
            .max(quorum.log_start_offset());
        let committed = quorum.high_watermark().unwrap_or(0);
        if end_offset - since < threshold || end_offset > committed {
            return;
        }
        let payload = super::encode_snapshot(&self.cluster().image);
        let Node {
            cluster, storage, ..
        } = self;
        let cluster = cluster.as_mut().expect("cluster node");
        match cluster
            .quorum
            .create_snapshot(storage, end_offset, &payload)
        {
            Ok(Some(id)) => tracing::info!(?id, bytes = payload.len(), "metadata snapshot written"),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "writing a metadata snapshot failed"),
        }
        self.drain_quorum(None);
    }

    /// RECOVERY -> RUNNING once the image shows this broker, at its
    /// current epoch, unfenced (which the controller does only once the
    /// heartbeats say it caught up).
    fn note_running(&mut self) {
        let self_id = self.config.node_id;
        let cluster = self.cluster();
        let broker = &cluster.broker;
        if broker.running || !broker.caught_up {
            return;
        }
        let unfenced = cluster
            .image
            .brokers
            .get(&self_id)
            .is_some_and(|b| Some(b.epoch) == broker.epoch && !b.fenced);
        if unfenced {
            tracing::info!(
                epoch = broker.epoch,
                "caught up and unfenced: serving clients metadata"
            );
            self.cluster_mut().broker.running = true;
        }
    }

    fn forget_deleted_topic(&mut self, topic_id: Uuid) {
        let Some(name) = self.topics.name_of(&topic_id).map(str::to_string) else {
            return;
        };
        let topic = self.topics.remove(&name).expect("named above");
        if let Err(e) = self.topics.persist(&mut self.storage) {
            tracing::error!(error = %e, "persisting the topic registry failed");
        }
        for p in topic.into_partitions().into_values() {
            if let Err(e) = p.log.delete(&mut self.storage) {
                tracing::warn!(topic = %name, error = %e, "deleting a partition failed");
            }
        }
        self.high_watermark_moved = true;
        tracing::info!(topic = %name, "deleted topic");
    }

    /// Makes every partition this node is a replica of exist here with the
    /// role the image gives it.
    fn reconcile_replicas(&mut self) {
        let self_id = self.config.node_id;
        let mut wanted: Vec<(String, Uuid, i32, PartitionRegistration)> = Vec::new();
        let image = &self.cluster().image;
        for topic in image.topics.values() {
            for (index, registration) in &topic.partitions {
                if registration.assignment.replicas.contains(&self_id) {
                    wanted.push((
                        topic.name.clone(),
                        topic.topic_id,
                        *index,
                        registration.clone(),
                    ));
                }
            }
        }
        let mut registry_changed = self.forget_removed_replicas();
        for (name, id, index, registration) in wanted {
            registry_changed |= self.ensure_local_partition(&name, id, index);
            self.apply_assignment(&name, index, &registration);
        }
        if registry_changed {
            if let Err(e) = self.topics.persist(&mut self.storage) {
                tracing::error!(error = %e, "persisting the topic registry failed");
            }
        }
    }

    /// Deletes the local copy of every partition whose topic still exists
    /// but whose replicas no longer include this broker (a completed or
    /// cancelled reassignment moved it away): Kafka's metadata-driven
    /// StopReplica with delete. The replica stops fetching as its state
    /// goes; waiting produces settle as NOT_LEADER_OR_FOLLOWER. Returns
    /// whether the registry changed.
    fn forget_removed_replicas(&mut self) -> bool {
        let self_id = self.config.node_id;
        let image = &self.cluster().image;
        let mut removed: Vec<(String, i32)> = Vec::new();
        for topic in self.topics.iter() {
            // Topics the image does not know (deleted, or from before a
            // restart) are handled by deletion and re-creation paths.
            let Some(registered) = image.topic_by_name(&topic.name) else {
                continue;
            };
            if registered.topic_id != topic.id {
                continue;
            }
            for index in topic.partitions().keys() {
                let hosted_here = registered
                    .partitions
                    .get(index)
                    .is_some_and(|p| p.assignment.replicas.contains(&self_id));
                if !hosted_here {
                    removed.push((topic.name.clone(), *index));
                }
            }
        }
        if removed.is_empty() {
            return false;
        }
        // Produces waiting on a copy that goes settle first, while it is
        // still here, as NOT_LEADER_OR_FOLLOWER: a write this broker led
        // but the new replicas may not all hold must never be acknowledged
        // (a partition that is simply gone counts as settled).
        for (name, index) in &removed {
            let p = self
                .topics
                .partition_mut(name, *index)
                .expect("listed above");
            p.replica = Replica::Offline;
        }
        self.release_produces(None);
        for (name, index) in &removed {
            let topic = self.topics.get_mut(name).expect("listed above");
            let partition = topic.remove_partition(*index).expect("listed above");
            if let Err(e) = partition.log.delete(&mut self.storage) {
                tracing::warn!(topic = %name, partition = index, error = %e, "deleting a removed replica failed");
            }
            tracing::info!(topic = %name, partition = index, "replica moved away: deleted");
            if name == crate::group::OFFSETS_TOPIC {
                self.offsets_leadership_changed(*index, false);
            }
        }
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.fetcher.wake();
            cluster.isr_dirty = true;
        }
        self.high_watermark_moved = true;
        true
    }

    /// Opens the partition's log if it is not hosted yet. Returns whether
    /// the registry changed.
    fn ensure_local_partition(&mut self, name: &str, id: Uuid, index: i32) -> bool {
        if self
            .topics
            .get(name)
            .is_some_and(|t| t.partitions().contains_key(&index))
        {
            return false;
        }
        let overrides = topic_overrides(&self.cluster().image, name);
        if self.topics.get(name).is_some_and(|t| t.id != id) {
            // A topic of this name was deleted and created again while we
            // were away: the old copy is stale.
            let old = self.topics.get(name).expect("checked").id;
            self.forget_deleted_topic(old);
        }
        if !self.topics.contains(name) {
            self.topics.insert(Topic::new(
                name.to_string(),
                id,
                PartitionMap::default(),
                overrides.clone(),
                true,
            ));
        }
        let config = super::super::topic_config::log_config(&overrides, &self.config.log);
        let dir = partition_dir(name, index);
        match PartitionLog::open(&mut self.storage, &dir, config, self.now) {
            Ok((log, _)) => {
                let mut partition = Partition::new(log, -1);
                partition.replica = Replica::Offline;
                partition.high_watermark = partition.log.log_start_offset();
                let topic = self.topics.get_mut(name).expect("inserted above");
                topic.insert_partition(index, partition);
                true
            }
            Err(e) => {
                tracing::error!(%dir, error = %e, "cannot open a partition log");
                false
            }
        }
    }

    /// Becomes leader or follower, or takes an ISR change, as `registration`
    /// says.
    fn apply_assignment(&mut self, name: &str, index: i32, registration: &PartitionRegistration) {
        let self_id = self.config.node_id;
        let flush_before_ack = self.config.flush_before_ack;
        let replication = self.replication_config(name);
        let now = self.now;
        let a = &registration.assignment;
        let Some(p) = self.topics.partition_mut(name, index) else {
            return;
        };
        let leader_end = leader_end_offset(&p.log, flush_before_ack);
        let result = match &mut p.replica {
            Replica::Leader(l) if a.leader == self_id && l.leader_epoch() == a.leader_epoch => {
                if a.partition_epoch > l.partition_epoch() {
                    l.handle_assignment(a, leader_end, now);
                }
                Ok(false)
            }
            _ if a.leader == self_id => LeaderReplica::become_leader(
                self_id,
                replication,
                a,
                &mut p.log,
                &mut self.storage,
                p.high_watermark,
                now,
            )
            .map(|leader| {
                tracing::info!(
                    topic = name,
                    partition = index,
                    epoch = a.leader_epoch,
                    "became leader"
                );
                p.replica = Replica::Leader(leader);
                true
            }),
            Replica::Follower(f)
                if f.leader_epoch() == a.leader_epoch && f.leader_id() == a.leader =>
            {
                Ok(false)
            }
            _ if a.leader >= 0 => FollowerReplica::become_follower(
                self_id,
                replication,
                a,
                &mut p.log,
                &mut self.storage,
                p.high_watermark,
            )
            .map(|follower| {
                tracing::debug!(
                    topic = name,
                    partition = index,
                    leader = a.leader,
                    epoch = a.leader_epoch,
                    "became follower"
                );
                p.replica = Replica::Follower(follower);
                true
            }),
            _ => {
                p.replica = Replica::Offline;
                Ok(true)
            }
        };
        match result {
            Ok(changed_role) => {
                if let Some(cluster) = self.cluster.as_mut() {
                    cluster.fetcher.wake();
                    cluster.isr_dirty = true;
                }
                p.leader_epoch = a.leader_epoch;
                sync_high_watermark(p, flush_before_ack);
                let leads = p.replica.is_leader();
                if changed_role {
                    self.high_watermark_moved = true;
                    // Produces waiting on this partition settle now: as
                    // NOT_LEADER_OR_FOLLOWER if it no longer leads here.
                    self.release_produces(None);
                }
                if name == crate::group::OFFSETS_TOPIC {
                    self.offsets_leadership_changed(index, leads);
                }
            }
            Err(e) => {
                tracing::error!(topic = name, partition = index, error = %e, "role change failed");
                p.replica = Replica::Offline;
                if name == crate::group::OFFSETS_TOPIC {
                    self.offsets_leadership_changed(index, false);
                }
            }
        }
    }

    /// The replication settings of a topic: its overrides over the cluster
    /// defaults.
    pub(in crate::node) fn replication_config(&self, topic: &str) -> ReplicationConfig {
        let cluster = self.cluster();
        let min_insync_replicas = cluster
            .image
            .topic_config(topic, crate::controller::MIN_INSYNC_REPLICAS_CONFIG)
            .and_then(|v| v.parse().ok())
            .unwrap_or(cluster.config.min_insync_replicas);
        ReplicationConfig {
            replica_lag_time_max_ms: cluster.config.replica_lag_time_max_ms,
            min_insync_replicas,
            bugs: cluster.config.bugs.replication,
        }
    }
}

fn topic_overrides(image: &MetadataImage, name: &str) -> BTreeMap<String, String> {
    image
        .configs
        .get(&(TOPIC_RESOURCE, name.to_string()))
        .cloned()
        .unwrap_or_default()
}

/// How far the leader's own log counts for the high watermark: its synced
/// end when acks wait for fsync.
pub fn leader_end_offset(log: &PartitionLog, flush_before_ack: bool) -> i64 {
    if flush_before_ack {
        log.synced_offset().max(log.log_start_offset())
    } else {
        log.log_end_offset()
    }
}

/// The node-level high watermark follows the replica's; a follower never
/// claims more than it has synced.
pub fn sync_high_watermark(p: &mut Partition, flush_before_ack: bool) -> bool {
    let limit = leader_end_offset(&p.log, flush_before_ack);
    let next = match &p.replica {
        Replica::Leader(l) => l.high_watermark(),
        Replica::Follower(f) => f.high_watermark().min(limit),
        Replica::Offline => p.high_watermark.min(limit),
        Replica::Standalone => return false,
    };
    let next = next
        .max(p.log.log_start_offset().min(p.log.log_end_offset()))
        .min(p.log.log_end_offset());
    let moved = next != p.high_watermark;
    p.high_watermark = next;
    moved
}
