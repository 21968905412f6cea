//! The controller: requests in, metadata records out (Kafka's
//! QuorumController with its ClusterControlManager, BrokerHeartbeatManager
//! and ReplicationControlManager folded into one value).
//!
//! Every `handle_*` reads the image and returns the records that would
//! carry out the request, plus the response to send once they commit. It
//! never changes the image: only [`Controller::replay`] does. The one piece
//! of state outside the image is the brokers' heartbeat sessions, soft
//! state of the active controller only (as Kafka's heartbeat manager), which
//! a newly active controller starts afresh.

use super::image::{MetadataImage, PartitionRegistration, TopicImage, PARTITIONS_PER_TOPIC_MAX};
use super::partition_change::{Election, PartitionChange, TargetReplicas};
use super::placement::{place, PlacementError, UsableBroker};
use super::records::{
    BrokerEndpoint, BrokerRegistrationChangeRecord, ConfigRecord, FenceBrokerRecord,
    MetadataRecord, PartitionChangeRecord, PartitionRecord, ProducerIdsRecord,
    RegisterBrokerRecord, RemoveTopicRecord, TopicRecord, UnfenceBrokerRecord,
    CONFIG_RESOURCE_TOPIC, NO_LEADER,
};
use super::{ControllerConfig, ControllerResult};
use crate::time::Instant;
use kafka_protocol::messages::{
    alter_partition_reassignments_response, alter_partition_response, create_partitions_response,
    create_topics_response, delete_topics_response, elect_leaders_response,
    list_partition_reassignments_response, AllocateProducerIdsRequest, AllocateProducerIdsResponse,
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, AlterPartitionRequest,
    AlterPartitionResponse, BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId,
    BrokerRegistrationRequest, BrokerRegistrationResponse, CreatePartitionsRequest,
    CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// `min.insync.replicas`.
pub const MIN_INSYNC_REPLICAS_CONFIG: &str = "min.insync.replicas";
/// `unclean.leader.election.enable`.
pub const UNCLEAN_LEADER_ELECTION_CONFIG: &str = "unclean.leader.election.enable";
/// Kafka's limit on topic name length.
pub const TOPIC_NAME_LEN_MAX: usize = 249;
/// Topics (or partitions) one request may name.
pub const REQUEST_ITEMS_MAX: usize = 10_000;

const NONE: i16 = 0;

/// A partition with its topic, as [`Controller::partitions`] yields it.
type PartitionAt<'a> = (&'a TopicImage, i32, &'a PartitionRegistration);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BrokerSession {
    last_contact: Instant,
}

pub struct Controller {
    config: ControllerConfig,
    image: MetadataImage,
    sessions: BTreeMap<i32, BrokerSession>,
    rng: ChaCha8Rng,
    /// Bumped by every change of the image (replay, snapshot load).
    image_generation: u64,
    /// The generation `check_invariants` last walked: the walk reads the
    /// image alone, so it runs again only once the image changed. Every
    /// node keeps an image, and the simulator checks nodes often; in a
    /// 100-broker cluster with 10,000 partitions the walks were 8% of a
    /// run while the image changed a few times a minute. Atomic rather
    /// than `Cell` so the controller stays `Sync`.
    image_generation_checked: AtomicU64,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("node_id", &self.config.node_id)
            .field("last_applied_offset", &self.image.last_applied_offset)
            .finish()
    }
}

fn error(e: ResponseError) -> i16 {
    e.code()
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Controller {
    pub fn new(config: ControllerConfig) -> Controller {
        config.check();
        Controller {
            rng: ChaCha8Rng::seed_from_u64(config.rng_seed),
            config,
            image: MetadataImage::new(),
            sessions: BTreeMap::new(),
            image_generation: 0,
            image_generation_checked: AtomicU64::new(u64::MAX),
        }
    }

    // ----- getters -----

    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// KIP-966 on, unless the `last-replica-standing` bug is switched on.
    pub fn elr_enabled(&self) -> bool {
        !self.config.bugs.last_replica_standing
    }

    /// The topic's `min.insync.replicas`, or the cluster default.
    pub fn min_insync_replicas(&self, topic_name: &str) -> usize {
        self.image
            .topic_config(topic_name, MIN_INSYNC_REPLICAS_CONFIG)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(self.config.default_min_insync_replicas)
    }

    /// The topic's `unclean.leader.election.enable`, or the cluster default.
    pub fn unclean_leader_election(&self, topic_name: &str) -> bool {
        self.image
            .topic_config(topic_name, UNCLEAN_LEADER_ELECTION_CONFIG)
            .map(|v| v == "true")
            .unwrap_or(self.config.default_unclean_leader_election_enable)
    }

    /// When [`Controller::handle_timeout`] next has a session to expire.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timeout = Duration::from_millis(self.config.broker_session_timeout_ms);
        // Both maps ascend by broker id: one merged pass, not a session
        // search per broker (this runs after every input of a controller,
        // and a large cluster registers a hundred brokers).
        let mut sessions = self.sessions.iter().peekable();
        let mut earliest: Option<Instant> = None;
        for (id, broker) in &self.image.brokers {
            while sessions.next_if(|(s, _)| *s < id).is_some() {}
            let Some((_, session)) = sessions.next_if(|(s, _)| *s == id) else {
                continue;
            };
            if !broker.fenced {
                let at = session.last_contact + timeout;
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        }
        debug_assert_eq!(
            earliest,
            self.image
                .brokers
                .iter()
                .filter(|(_, b)| !b.fenced)
                .filter_map(|(id, _)| self.sessions.get(id))
                .map(|s| s.last_contact + timeout)
                .min(),
            "the merged pass finds what a search per broker finds"
        );
        earliest
    }

    // ----- replay: the only mutation of the image -----

    /// Applies a committed (or, on the active controller, just proposed)
    /// record at `offset`.
    pub fn replay(&mut self, offset: i64, record: &MetadataRecord) {
        self.image.apply(offset, record);
        self.image_generation += 1;
        if let MetadataRecord::FenceBroker(r) = record {
            // A fenced broker has no session; its next heartbeat opens one.
            self.sessions.remove(&r.id);
        }
        #[cfg(debug_assertions)]
        self.check_invariants();
    }

    /// Replaces the state with a snapshot's image (KIP-630). Sessions are
    /// in memory only: every broker's next heartbeat opens one.
    pub fn load_snapshot(&mut self, image: MetadataImage) {
        self.image = image;
        self.image_generation += 1;
        self.sessions.clear();
        #[cfg(debug_assertions)]
        self.check_invariants();
    }

    /// Replays records that were proposed together, the first at
    /// `first_offset`.
    pub fn replay_all(&mut self, first_offset: i64, records: &[MetadataRecord]) {
        for (index, record) in records.iter().enumerate() {
            self.replay(first_offset + index as i64, record);
        }
    }

    // ----- brokers -----

    /// BrokerRegistration. The broker's new epoch is the offset of its
    /// RegisterBrokerRecord, so the caller passes `next_offset`, the offset
    /// the first returned record will get; the RegisterBrokerRecord comes
    /// last (after any partition changes that take a restarted broker out of
    /// ISRs, so that no fenced broker is in an ISR after any record).
    pub fn handle_broker_registration(
        &mut self,
        now: Instant,
        request: &BrokerRegistrationRequest,
        next_offset: i64,
    ) -> ControllerResult<BrokerRegistrationResponse> {
        assert!(
            next_offset > self.image.last_applied_offset,
            "next offset is past the image"
        );
        let broker_id = request.broker_id.0;
        let mut response = BrokerRegistrationResponse::default();
        response.broker_epoch = -1;
        let fail = |mut response: BrokerRegistrationResponse, code: ResponseError| {
            response.error_code = code.code();
            ControllerResult {
                records: Vec::new(),
                response,
            }
        };
        if broker_id < 0 {
            return fail(response, ResponseError::InvalidRequest);
        }
        if !self.config.cluster_id.is_empty()
            && request.cluster_id.as_str() != self.config.cluster_id
        {
            return fail(response, ResponseError::InconsistentClusterId);
        }
        let existing = self.image.brokers.get(&broker_id);
        if let Some(existing) = existing {
            let session_alive = self.sessions.get(&broker_id).is_some_and(|s| {
                now.saturating_duration_since(s.last_contact)
                    < Duration::from_millis(self.config.broker_session_timeout_ms)
            });
            if !existing.fenced
                && session_alive
                && existing.incarnation_id != request.incarnation_id
            {
                return fail(response, ResponseError::DuplicateBrokerRegistration);
            }
        } else if self.image.brokers.len() >= super::image::BROKERS_MAX {
            return fail(response, ResponseError::InvalidRequest);
        }
        let mut records = Vec::new();
        if let Some(existing) = existing {
            // KIP-966: a broker that comes back must not stay in an ISR (it is
            // fenced until it catches up); one that did not shut down
            // cleanly may have lost unflushed records, so it leaves the ELR
            // too. Without KIP-966 (the `last-replica-standing` bug) Kafka
            // did neither.
            let clean = request.previous_broker_epoch == existing.epoch;
            if self.elr_enabled() {
                let unclean: BTreeSet<i32> = if clean {
                    BTreeSet::new()
                } else {
                    BTreeSet::from([broker_id])
                };
                self.removal_changes(broker_id, &unclean, &mut records);
            }
        }
        let epoch = next_offset + records.len() as i64;
        records.push(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id,
            incarnation_id: request.incarnation_id,
            broker_epoch: epoch,
            end_points: request
                .listeners
                .iter()
                .take(super::records::ARRAY_LEN_MAX)
                .map(|l| BrokerEndpoint {
                    name: l.name.as_str().to_string(),
                    host: l.host.as_str().to_string(),
                    port: l.port,
                    security_protocol: l.security_protocol,
                })
                .collect(),
            rack: request.rack.as_ref().map(|r| r.as_str().to_string()),
            fenced: true,
            in_controlled_shutdown: false,
        }));
        self.sessions
            .insert(broker_id, BrokerSession { last_contact: now });
        response.broker_epoch = epoch;
        ControllerResult { records, response }
    }

    /// BrokerHeartbeat: keeps the session alive, unfences a broker that has
    /// caught up with the metadata log up to its registration, fences one
    /// that asks, and walks a controlled shutdown.
    pub fn handle_broker_heartbeat(
        &mut self,
        now: Instant,
        request: &BrokerHeartbeatRequest,
    ) -> ControllerResult<BrokerHeartbeatResponse> {
        let broker_id = request.broker_id.0;
        let mut response = BrokerHeartbeatResponse::default();
        response.is_fenced = true;
        let Some(broker) = self.image.brokers.get(&broker_id) else {
            response.error_code = error(ResponseError::StaleBrokerEpoch);
            return ControllerResult {
                records: Vec::new(),
                response,
            };
        };
        if broker.epoch != request.broker_epoch {
            response.error_code = error(ResponseError::StaleBrokerEpoch);
            return ControllerResult {
                records: Vec::new(),
                response,
            };
        }
        self.sessions
            .insert(broker_id, BrokerSession { last_contact: now });
        let caught_up = request.current_metadata_offset >= broker.epoch;
        response.is_caught_up = caught_up;
        let mut records = Vec::new();
        if broker.fenced {
            if request.want_shut_down {
                response.should_shut_down = true;
            } else if !request.want_fence && caught_up {
                records.push(MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
                    id: broker_id,
                    epoch: broker.epoch,
                }));
                self.unfence_elections(broker_id, &mut records);
                response.is_fenced = false;
            }
        } else if broker.in_controlled_shutdown {
            response.is_fenced = false;
            let leads_any = self
                .partitions()
                .any(|(_, _, p)| p.assignment.leader == broker_id);
            if leads_any {
                // Partitions that could not move yet (no other live ISR
                // member then) get another try.
                self.removal_changes(broker_id, &BTreeSet::new(), &mut records);
            } else {
                self.fence_records(broker_id, &mut records);
                response.is_fenced = true;
                response.should_shut_down = true;
            }
        } else if request.want_fence {
            self.fence_records(broker_id, &mut records);
        } else if request.want_shut_down {
            // Controlled shutdown: move leadership and ISR membership away
            // first; the broker stops once it leads nothing.
            records.push(MetadataRecord::BrokerRegistrationChange(
                BrokerRegistrationChangeRecord {
                    broker_id,
                    broker_epoch: broker.epoch,
                    fenced: 0,
                    in_controlled_shutdown: 1,
                },
            ));
            self.removal_changes(broker_id, &BTreeSet::new(), &mut records);
            response.is_fenced = false;
        } else {
            response.is_fenced = false;
        }
        ControllerResult { records, response }
    }

    /// Expires the session of at most one unfenced broker (the lowest id
    /// whose `broker.session.timeout.ms` has passed since its last
    /// heartbeat) and returns the records that fence it. Call again after
    /// replaying them while [`Controller::poll_timeout`] is at or before
    /// `now`. A broker this controller has never heard from (it just became
    /// active) gets a full session from `now`, as Kafka does.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<MetadataRecord> {
        let timeout = Duration::from_millis(self.config.broker_session_timeout_ms);
        let mut expired = None;
        for broker in self.image.brokers.values().filter(|b| !b.fenced) {
            let session = *self
                .sessions
                .entry(broker.id)
                .or_insert(BrokerSession { last_contact: now });
            if expired.is_none() && now.saturating_duration_since(session.last_contact) >= timeout {
                expired = Some(broker.id);
            }
        }
        let mut records = Vec::new();
        if let Some(broker_id) = expired {
            self.fence_records(broker_id, &mut records);
        }
        records
    }

    /// The partitions of the image, in (topic id, partition id) order.
    fn partitions(&self) -> impl Iterator<Item = (&TopicImage, i32, &PartitionRegistration)> {
        self.image
            .topics
            .values()
            .flat_map(|t| t.partitions.iter().map(move |(id, p)| (t, *id, p)))
    }

    fn election_for(&self, topic: &TopicImage) -> Election {
        if self.unclean_leader_election(&topic.name) {
            Election::Unclean
        } else {
            Election::Online
        }
    }

    fn change(
        &self,
        (topic, partition_id, partition): PartitionAt<'_>,
        target_isr: BTreeSet<i32>,
        election: Election,
        is_acceptable_leader: &dyn Fn(i32) -> bool,
        unclean_shutdown_replicas: &BTreeSet<i32>,
    ) -> Option<PartitionChangeRecord> {
        PartitionChange {
            topic_id: topic.topic_id,
            partition_id,
            partition,
            target_isr,
            election,
            is_acceptable_leader,
            unclean_shutdown_replicas: unclean_shutdown_replicas.clone(),
            elr_enabled: self.elr_enabled(),
            min_insync_replicas: self.min_insync_replicas(&topic.name),
            target_replicas: None,
        }
        .build()
    }

    /// Takes `broker_id` out of every ISR and leadership (and out of ELRs
    /// when it is in `unclean_shutdown`), electing new leaders from what
    /// remains. Kafka's generateLeaderAndIsrUpdates.
    fn removal_changes(
        &self,
        broker_id: i32,
        unclean_shutdown: &BTreeSet<i32>,
        records: &mut Vec<MetadataRecord>,
    ) {
        let acceptable = |r: i32| r != broker_id && self.image.is_active(r);
        for (topic, partition_id, partition) in self.partitions() {
            let a = &partition.assignment;
            let touches = a.isr.contains(&broker_id)
                || a.leader == broker_id
                || (unclean_shutdown.contains(&broker_id) && partition.elr.contains(&broker_id));
            if !touches {
                continue;
            }
            let mut target_isr = a.isr.clone();
            target_isr.remove(&broker_id);
            let election = self.election_for(topic);
            if let Some(change) = self.change(
                (topic, partition_id, partition),
                target_isr,
                election,
                &acceptable,
                unclean_shutdown,
            ) {
                records.push(MetadataRecord::PartitionChange(change));
            }
        }
    }

    /// Kafka's handleBrokerFenced: partition changes first, then the fence.
    fn fence_records(&self, broker_id: i32, records: &mut Vec<MetadataRecord>) {
        let broker = &self.image.brokers[&broker_id];
        self.removal_changes(broker_id, &BTreeSet::new(), records);
        records.push(MetadataRecord::FenceBroker(FenceBrokerRecord {
            id: broker_id,
            epoch: broker.epoch,
        }));
    }

    /// Kafka's handleBrokerUnfenced: leaderless partitions may now elect the
    /// broker (from the ISR, from the ELR when the ISR is empty, or
    /// uncleanly where the topic allows it).
    fn unfence_elections(&self, broker_id: i32, records: &mut Vec<MetadataRecord>) {
        let acceptable = |r: i32| r == broker_id || self.image.is_active(r);
        for (topic, partition_id, partition) in self.partitions() {
            if partition.assignment.leader != NO_LEADER {
                continue;
            }
            let target_isr = partition.assignment.isr.clone();
            if let Some(change) = self.change(
                (topic, partition_id, partition),
                target_isr,
                self.election_for(topic),
                &acceptable,
                &BTreeSet::new(),
            ) {
                records.push(MetadataRecord::PartitionChange(change));
            }
        }
    }

    // ----- topics -----

    fn usable_brokers(&self) -> Vec<UsableBroker> {
        self.image
            .brokers
            .values()
            .filter(|b| b.is_active())
            .map(|b| UsableBroker {
                id: b.id,
                rack: b.rack.clone(),
            })
            .collect()
    }

    /// Checks a manual assignment: every list non-empty, distinct, of
    /// registered brokers, all of one length.
    fn valid_assignment(&self, lists: &[Vec<i32>], replication_factor: Option<usize>) -> bool {
        let mut rf = replication_factor;
        for replicas in lists {
            let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
            if replicas.is_empty()
                || distinct.len() != replicas.len()
                || replicas.len() > super::records::ARRAY_LEN_MAX
                || !replicas.iter().all(|r| self.image.brokers.contains_key(r))
            {
                return false;
            }
            match rf {
                None => rf = Some(replicas.len()),
                Some(rf) if rf != replicas.len() => return false,
                Some(_) => {}
            }
        }
        true
    }

    fn new_partition(
        &self,
        topic_id: Uuid,
        partition_id: i32,
        replicas: Vec<i32>,
    ) -> Option<PartitionRecord> {
        let isr: Vec<i32> = replicas
            .iter()
            .copied()
            .filter(|&r| self.image.is_active(r))
            .collect();
        let leader = *isr.first()?;
        Some(PartitionRecord {
            partition_id,
            topic_id,
            replicas,
            isr,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            eligible_leader_replicas: Vec::new(),
            last_known_elr: Vec::new(),
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        })
    }

    fn new_topic_id(&mut self) -> Uuid {
        // Bounded: a collision of 122 random bits is not expected even once.
        for _ in 0..16 {
            let id = uuid::Builder::from_random_bytes(self.rng.gen()).into_uuid();
            if !self.image.topics.contains_key(&id) {
                return id;
            }
        }
        panic!("16 colliding random topic ids: the RNG is broken");
    }

    pub fn handle_create_topics(
        &mut self,
        request: &CreateTopicsRequest,
    ) -> ControllerResult<CreateTopicsResponse> {
        let mut response = CreateTopicsResponse::default();
        let mut records = Vec::new();
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for topic in &request.topics {
            *names.entry(topic.name.0.as_str()).or_default() += 1;
        }
        for topic in request.topics.iter().take(REQUEST_ITEMS_MAX) {
            let name = topic.name.0.as_str();
            let mut result = create_topics_response::CreatableTopicResult::default();
            result.name = topic.name.clone();
            result.num_partitions = -1;
            result.replication_factor = -1;
            let outcome = if names[name] > 1 {
                Err((
                    ResponseError::InvalidRequest,
                    "duplicate topic name in the request".to_string(),
                ))
            } else {
                self.create_topic(topic, request.validate_only)
            };
            match outcome {
                Ok((topic_id, partitions, rf, topic_records)) => {
                    result.topic_id = topic_id;
                    result.num_partitions = partitions;
                    result.replication_factor = rf;
                    records.extend(topic_records);
                }
                Err((code, message)) => {
                    result.error_code = code.code();
                    result.error_message = Some(str_bytes(&message));
                }
            }
            response.topics.push(result);
        }
        ControllerResult { records, response }
    }

    #[allow(clippy::type_complexity)]
    fn create_topic(
        &mut self,
        topic: &kafka_protocol::messages::create_topics_request::CreatableTopic,
        validate_only: bool,
    ) -> Result<(Uuid, i32, i16, Vec<MetadataRecord>), (ResponseError, String)> {
        let name = topic.name.0.as_str();
        let valid_name = !name.is_empty()
            && name.len() <= TOPIC_NAME_LEN_MAX
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
        if !valid_name {
            return Err((
                ResponseError::InvalidTopicException,
                format!("invalid topic name {name:?}"),
            ));
        }
        if self.image.topics_by_name.contains_key(name) {
            return Err((
                ResponseError::TopicAlreadyExists,
                format!("topic {name} exists"),
            ));
        }
        if self.image.topics.len() >= super::image::TOPICS_MAX {
            return Err((
                ResponseError::PolicyViolation,
                "too many topics".to_string(),
            ));
        }
        let mut configs = Vec::new();
        for config in &topic.configs {
            let key = config.name.as_str();
            let value = config.value.as_ref().map(|v| v.as_str().to_string());
            let valid = match (key, value.as_deref()) {
                (MIN_INSYNC_REPLICAS_CONFIG, Some(v)) => v.parse::<usize>().is_ok_and(|n| n >= 1),
                (UNCLEAN_LEADER_ELECTION_CONFIG, Some(v)) => v == "true" || v == "false",
                (_, None) => true,
                _ => true,
            };
            if !valid {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("invalid value for {key}"),
                ));
            }
            if let Some(value) = value {
                configs.push((key.to_string(), value));
            }
        }
        let replica_lists: Vec<Vec<i32>> = if !topic.assignments.is_empty() {
            if topic.num_partitions != -1 || topic.replication_factor != -1 {
                return Err((
                    ResponseError::InvalidRequest,
                    "an assignment excludes partition count and replication factor".to_string(),
                ));
            }
            let mut by_index: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
            for assignment in &topic.assignments {
                let replicas = assignment.broker_ids.iter().map(|b| b.0).collect();
                if by_index
                    .insert(assignment.partition_index, replicas)
                    .is_some()
                {
                    return Err((
                        ResponseError::InvalidReplicaAssignment,
                        "duplicate partition index".to_string(),
                    ));
                }
            }
            let contiguous = by_index.keys().copied().eq(0..by_index.len() as i32);
            let lists: Vec<Vec<i32>> = by_index.into_values().collect();
            if !contiguous
                || lists.len() > PARTITIONS_PER_TOPIC_MAX
                || !self.valid_assignment(&lists, None)
            {
                return Err((
                    ResponseError::InvalidReplicaAssignment,
                    "invalid replica assignment".to_string(),
                ));
            }
            lists
        } else {
            let partitions = if topic.num_partitions == -1 {
                self.config.default_num_partitions
            } else {
                topic.num_partitions
            };
            let rf = if topic.replication_factor == -1 {
                self.config.default_replication_factor
            } else {
                topic.replication_factor
            };
            if partitions <= 0 || partitions as usize > PARTITIONS_PER_TOPIC_MAX {
                return Err((
                    ResponseError::InvalidPartitions,
                    format!("{partitions} partitions"),
                ));
            }
            let start = self.rng.gen_range(0..1024usize);
            match place(&self.usable_brokers(), 0, partitions, i32::from(rf), start) {
                Ok(lists) => lists,
                Err(e @ PlacementError::NonPositiveReplicationFactor(_))
                | Err(e @ PlacementError::NotEnoughBrokers { .. }) => {
                    return Err((ResponseError::InvalidReplicationFactor, e.to_string()));
                }
            }
        };
        let topic_id = self.new_topic_id();
        let mut records = vec![MetadataRecord::Topic(TopicRecord {
            name: name.to_string(),
            topic_id,
        })];
        for (key, value) in configs {
            records.push(MetadataRecord::Config(ConfigRecord {
                resource_type: CONFIG_RESOURCE_TOPIC,
                resource_name: name.to_string(),
                name: key,
                value: Some(value),
            }));
        }
        for (index, replicas) in replica_lists.iter().enumerate() {
            let Some(partition) = self.new_partition(topic_id, index as i32, replicas.clone())
            else {
                return Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!("every replica of partition {index} is fenced or shutting down"),
                ));
            };
            records.push(MetadataRecord::Partition(partition));
        }
        let rf = replica_lists[0].len() as i16;
        if validate_only {
            records.clear();
        }
        Ok((topic_id, replica_lists.len() as i32, rf, records))
    }

    pub fn handle_delete_topics(
        &mut self,
        request: &DeleteTopicsRequest,
    ) -> ControllerResult<DeleteTopicsResponse> {
        let mut response = DeleteTopicsResponse::default();
        let mut records = Vec::new();
        let mut deleted = BTreeSet::new();
        let mut wanted: Vec<(Option<TopicName>, Uuid)> = request
            .topic_names
            .iter()
            .map(|n| (Some(n.clone()), Uuid::nil()))
            .collect();
        wanted.extend(request.topics.iter().map(|t| (t.name.clone(), t.topic_id)));
        for (name, id) in wanted.into_iter().take(REQUEST_ITEMS_MAX) {
            let mut result = delete_topics_response::DeletableTopicResult::default();
            let found = match &name {
                Some(name) if id.is_nil() => self.image.topic_by_name(name.0.as_str()),
                _ => self.image.topics.get(&id),
            };
            match found {
                Some(topic) => {
                    result.name = Some(TopicName(str_bytes(&topic.name)));
                    result.topic_id = topic.topic_id;
                    if deleted.insert(topic.topic_id) {
                        records.push(MetadataRecord::RemoveTopic(RemoveTopicRecord {
                            topic_id: topic.topic_id,
                        }));
                    }
                }
                None => {
                    result.name = name.clone();
                    result.topic_id = id;
                    result.error_code = if id.is_nil() {
                        error(ResponseError::UnknownTopicOrPartition)
                    } else {
                        error(ResponseError::UnknownTopicId)
                    };
                }
            }
            response.responses.push(result);
        }
        ControllerResult { records, response }
    }

    pub fn handle_create_partitions(
        &mut self,
        request: &CreatePartitionsRequest,
    ) -> ControllerResult<CreatePartitionsResponse> {
        let mut response = CreatePartitionsResponse::default();
        let mut records = Vec::new();
        for topic in request.topics.iter().take(REQUEST_ITEMS_MAX) {
            let mut result = create_partitions_response::CreatePartitionsTopicResult::default();
            result.name = topic.name.clone();
            match self.create_partitions(topic) {
                Ok(topic_records) => {
                    if !request.validate_only {
                        records.extend(topic_records);
                    }
                }
                Err((code, message)) => {
                    result.error_code = code.code();
                    result.error_message = Some(str_bytes(&message));
                }
            }
            response.results.push(result);
        }
        ControllerResult { records, response }
    }

    fn create_partitions(
        &mut self,
        request: &kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic,
    ) -> Result<Vec<MetadataRecord>, (ResponseError, String)> {
        let Some(topic) = self.image.topic_by_name(request.name.0.as_str()) else {
            return Err((
                ResponseError::UnknownTopicOrPartition,
                "no such topic".to_string(),
            ));
        };
        let existing = topic.partitions.len() as i32;
        let topic_id = topic.topic_id;
        let rf = topic
            .partitions
            .values()
            .next()
            .map_or(1, |p| p.assignment.replicas.len());
        if request.count <= existing || request.count as usize > PARTITIONS_PER_TOPIC_MAX {
            return Err((
                ResponseError::InvalidPartitions,
                format!("{} partitions requested, {existing} exist", request.count),
            ));
        }
        let adding = request.count - existing;
        // Null or empty: the controller places them.
        let lists = match request.assignments.as_ref().filter(|a| !a.is_empty()) {
            Some(assignments) => {
                let lists: Vec<Vec<i32>> = assignments
                    .iter()
                    .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                    .collect();
                if lists.len() != adding as usize || !self.valid_assignment(&lists, Some(rf)) {
                    return Err((
                        ResponseError::InvalidReplicaAssignment,
                        "invalid replica assignment".to_string(),
                    ));
                }
                lists
            }
            None => {
                let start = self.rng.gen_range(0..1024usize);
                place(&self.usable_brokers(), existing, adding, rf as i32, start)
                    .map_err(|e| (ResponseError::InvalidReplicationFactor, e.to_string()))?
            }
        };
        let mut records = Vec::new();
        for (index, replicas) in lists.into_iter().enumerate() {
            let partition_id = existing + index as i32;
            let Some(partition) = self.new_partition(topic_id, partition_id, replicas) else {
                return Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!("every replica of partition {partition_id} is fenced or shutting down"),
                ));
            };
            records.push(MetadataRecord::Partition(partition));
        }
        Ok(records)
    }

    // ----- replication -----

    /// AlterPartition from a partition leader (KIP-497, KIP-903).
    pub fn handle_alter_partition(
        &mut self,
        request: &AlterPartitionRequest,
    ) -> ControllerResult<AlterPartitionResponse> {
        let mut response = AlterPartitionResponse::default();
        let broker_id = request.broker_id.0;
        let registered = self.image.brokers.get(&broker_id);
        if registered.is_none_or(|b| request.broker_epoch != -1 && b.epoch != request.broker_epoch)
        {
            response.error_code = error(ResponseError::StaleBrokerEpoch);
            return ControllerResult {
                records: Vec::new(),
                response,
            };
        }
        let mut records = Vec::new();
        for topic_data in request.topics.iter().take(REQUEST_ITEMS_MAX) {
            let mut topic_result = alter_partition_response::TopicData::default();
            topic_result.topic_id = topic_data.topic_id;
            let mut seen = BTreeSet::new();
            for data in topic_data.partitions.iter().take(REQUEST_ITEMS_MAX) {
                let mut result = alter_partition_response::PartitionData::default();
                result.partition_index = data.partition_index;
                let duplicate = !seen.insert(data.partition_index);
                match self.alter_partition(broker_id, topic_data.topic_id, data, duplicate) {
                    Ok((after, change)) => {
                        let a = &after.assignment;
                        result.leader_id = BrokerId(a.leader);
                        result.leader_epoch = a.leader_epoch;
                        result.isr = a.isr.iter().map(|&r| BrokerId(r)).collect();
                        result.partition_epoch = a.partition_epoch;
                        if let Some(change) = change {
                            records.push(MetadataRecord::PartitionChange(change));
                        }
                    }
                    Err(code) => result.error_code = code.code(),
                }
                topic_result.partitions.push(result);
            }
            response.topics.push(topic_result);
        }
        ControllerResult { records, response }
    }

    fn alter_partition(
        &self,
        broker_id: i32,
        topic_id: Uuid,
        data: &kafka_protocol::messages::alter_partition_request::PartitionData,
        duplicate: bool,
    ) -> Result<(PartitionRegistration, Option<PartitionChangeRecord>), ResponseError> {
        let topic = self
            .image
            .topics
            .get(&topic_id)
            .ok_or(ResponseError::UnknownTopicId)?;
        let partition = topic
            .partitions
            .get(&data.partition_index)
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        if duplicate {
            return Err(ResponseError::InvalidRequest);
        }
        let a = &partition.assignment;
        if a.leader != broker_id {
            return Err(ResponseError::InvalidRequest);
        }
        if data.leader_epoch != a.leader_epoch {
            return Err(ResponseError::FencedLeaderEpoch);
        }
        if data.partition_epoch != a.partition_epoch && !self.config.bugs.no_partition_epoch_check {
            return Err(ResponseError::InvalidUpdateVersion);
        }
        // v3+ carries each member's broker epoch (KIP-903); older versions
        // only ids, whose epochs cannot be checked.
        let members: Vec<(i32, i64)> = if data.new_isr_with_epochs.is_empty() {
            data.new_isr.iter().map(|b| (b.0, -1)).collect()
        } else {
            data.new_isr_with_epochs
                .iter()
                .map(|s| (s.broker_id.0, s.broker_epoch))
                .collect()
        };
        let new_isr: BTreeSet<i32> = members.iter().map(|m| m.0).collect();
        if new_isr.len() != members.len()
            || !new_isr.contains(&broker_id)
            || !new_isr.iter().all(|r| a.replicas.contains(r))
        {
            return Err(ResponseError::InvalidRequest);
        }
        for &(member, epoch) in &members {
            let Some(registration) = self.image.brokers.get(&member) else {
                return Err(ResponseError::IneligibleReplica);
            };
            let stale_epoch = epoch != -1 && epoch != registration.epoch;
            if registration.fenced
                || registration.in_controlled_shutdown
                || (stale_epoch && !self.config.bugs.stale_broker_epoch)
            {
                return Err(ResponseError::IneligibleReplica);
            }
        }
        let acceptable = |r: i32| self.image.is_active(r);
        let change = self.change(
            (topic, data.partition_index, partition),
            new_isr,
            Election::Online,
            &acceptable,
            &BTreeSet::new(),
        );
        let after = match &change {
            Some(change) => partition.merge(change),
            None => partition.clone(),
        };
        // An accepted ISR change keeps its leader, unless it completed a
        // reassignment that removes the leader: a target replica leads.
        let completed = partition.is_reassigning() && !after.is_reassigning();
        assert!(
            after.assignment.leader == broker_id
                || (completed && !after.assignment.replicas.contains(&broker_id)),
            "an accepted ISR change keeps its leader"
        );
        Ok((after, change))
    }

    /// ElectLeaders: preferred (type 0) or unclean (type 1).
    pub fn handle_elect_leaders(
        &mut self,
        request: &ElectLeadersRequest,
    ) -> ControllerResult<ElectLeadersResponse> {
        let mut response = ElectLeadersResponse::default();
        let election = match request.election_type {
            0 => Election::Preferred,
            1 => Election::Unclean,
            _ => {
                response.error_code = error(ResponseError::InvalidRequest);
                return ControllerResult {
                    records: Vec::new(),
                    response,
                };
            }
        };
        let wanted: Vec<(String, Vec<i32>)> = match &request.topic_partitions {
            Some(list) => list
                .iter()
                .map(|t| (t.topic.0.as_str().to_string(), t.partitions.clone()))
                .collect(),
            None => self.every_partition(),
        };
        let mut records = Vec::new();
        let acceptable = |r: i32| self.image.is_active(r);
        for (name, partitions) in wanted.into_iter().take(REQUEST_ITEMS_MAX) {
            let mut topic_result = elect_leaders_response::ReplicaElectionResult::default();
            topic_result.topic = TopicName(str_bytes(&name));
            for partition_id in partitions.into_iter().take(REQUEST_ITEMS_MAX) {
                let mut result = elect_leaders_response::PartitionResult::default();
                result.partition_id = partition_id;
                let found = self
                    .image
                    .topic_by_name(&name)
                    .and_then(|t| Some((t, t.partitions.get(&partition_id)?)));
                let code = match found {
                    None => ResponseError::UnknownTopicOrPartition.code(),
                    Some((topic, partition)) => {
                        let a = &partition.assignment;
                        let not_needed = match election {
                            Election::Preferred => a.leader == a.replicas[0],
                            _ => a.leader != NO_LEADER,
                        };
                        if not_needed {
                            ResponseError::ElectionNotNeeded.code()
                        } else {
                            let change = self.change(
                                (topic, partition_id, partition),
                                a.isr.clone(),
                                election,
                                &acceptable,
                                &BTreeSet::new(),
                            );
                            let elected = change.as_ref().map(|c| partition.merge(c));
                            let ok = match (&elected, election) {
                                (Some(after), Election::Preferred) => {
                                    after.assignment.leader == a.replicas[0]
                                }
                                (Some(after), _) => after.assignment.leader != NO_LEADER,
                                (None, _) => false,
                            };
                            if ok {
                                records.push(MetadataRecord::PartitionChange(
                                    change.expect("an election that succeeded has a record"),
                                ));
                                NONE
                            } else if election == Election::Preferred {
                                ResponseError::PreferredLeaderNotAvailable.code()
                            } else {
                                ResponseError::EligibleLeadersNotAvailable.code()
                            }
                        }
                    }
                };
                result.error_code = code;
                topic_result.partition_result.push(result);
            }
            response.replica_election_results.push(topic_result);
        }
        ControllerResult { records, response }
    }

    /// Every partition by topic name, for requests that name none.
    fn every_partition(&self) -> Vec<(String, Vec<i32>)> {
        self.image
            .topics
            .values()
            .map(|t| (t.name.clone(), t.partitions.keys().copied().collect()))
            .collect()
    }

    // ----- reassignment (KIP-455) -----

    /// AlterPartitionReassignments: start, replace or cancel (null
    /// replicas) reassignments. Kafka's
    /// ReplicationControlManager.alterPartitionReassignments. The records
    /// grow the replicas to target + the current ones not in it and note
    /// adding/removing; the reassignment completes in a later change (an
    /// AlterPartition that brings the last adding replica into the ISR), or
    /// at once when nothing is added.
    pub fn handle_alter_partition_reassignments(
        &mut self,
        request: &AlterPartitionReassignmentsRequest,
    ) -> ControllerResult<AlterPartitionReassignmentsResponse> {
        let mut response = AlterPartitionReassignmentsResponse::default();
        // v1 (KIP-860) can forbid changing the replication factor; v0
        // decodes it as true (its default).
        let allow_rf_change = request.allow_replication_factor_change;
        response.allow_replication_factor_change = allow_rf_change;
        let mut records = Vec::new();
        let mut seen: BTreeSet<(String, i32)> = BTreeSet::new();
        for topic in request.topics.iter().take(REQUEST_ITEMS_MAX) {
            let name = topic.name.0.as_str();
            let mut topic_result =
                alter_partition_reassignments_response::ReassignableTopicResponse::default();
            topic_result.name = topic.name.clone();
            for partition in topic.partitions.iter().take(REQUEST_ITEMS_MAX) {
                let mut result =
                    alter_partition_reassignments_response::ReassignablePartitionResponse::default(
                    );
                result.partition_index = partition.partition_index;
                let target: Option<Vec<i32>> = partition
                    .replicas
                    .as_ref()
                    .map(|r| r.iter().map(|b| b.0).collect());
                let outcome = if !seen.insert((name.to_string(), partition.partition_index)) {
                    Err((
                        ResponseError::InvalidRequest,
                        "the partition is named twice in the request".to_string(),
                    ))
                } else {
                    self.reassign(name, partition.partition_index, target, allow_rf_change)
                };
                match outcome {
                    Ok(change) => records.extend(change.map(MetadataRecord::PartitionChange)),
                    Err((code, message)) => {
                        result.error_code = code.code();
                        result.error_message = Some(str_bytes(&message));
                    }
                }
                topic_result.partitions.push(result);
            }
            response.responses.push(topic_result);
        }
        ControllerResult { records, response }
    }

    /// One partition's reassignment (`target` Some) or cancellation
    /// (`None`): the change to write, if any.
    fn reassign(
        &self,
        topic_name: &str,
        partition_id: i32,
        target: Option<Vec<i32>>,
        allow_rf_change: bool,
    ) -> Result<Option<PartitionChangeRecord>, (ResponseError, String)> {
        let unknown = || {
            (
                ResponseError::UnknownTopicOrPartition,
                format!("no partition {topic_name}-{partition_id}"),
            )
        };
        let topic = self.image.topic_by_name(topic_name).ok_or_else(unknown)?;
        let partition = topic.partitions.get(&partition_id).ok_or_else(unknown)?;
        let a = &partition.assignment;
        // Kafka's PartitionReassignmentRevert: the partition as it was
        // before any reassignment in progress (new ones start from it too).
        let original: Vec<i32> = super::excluding(&a.replicas, &partition.adding);
        let original_isr: BTreeSet<i32> = super::excluding(&a.isr, &partition.adding);
        if original_isr.is_empty() {
            // Only adding replicas are in sync: undoing them would need an
            // unclean election, which Kafka does and seedlog refuses.
            return Err((
                ResponseError::InvalidReplicaAssignment,
                "only adding replicas are in the ISR; retry once an original replica is back"
                    .to_string(),
            ));
        }
        let targets = match target {
            None => {
                if !partition.is_reassigning() {
                    return Err((
                        ResponseError::NoReassignmentInProgress,
                        format!("no reassignment of {topic_name}-{partition_id} in progress"),
                    ));
                }
                TargetReplicas {
                    replicas: original,
                    adding: Vec::new(),
                    removing: Vec::new(),
                }
            }
            Some(target) => {
                self.check_reassignment_target(&target)?;
                if !allow_rf_change && target.len() != original.len() {
                    return Err((
                        ResponseError::InvalidReplicationFactor,
                        format!(
                            "the reassignment changes the replication factor from {} to {}",
                            original.len(),
                            target.len()
                        ),
                    ));
                }
                // Kafka's PartitionReassignmentReplicas.
                let removing: Vec<i32> = super::excluding(&original, &target);
                let adding: Vec<i32> = super::excluding(&target, &original);
                let mut replicas = target.clone();
                replicas.extend(removing.iter().copied());
                TargetReplicas {
                    replicas,
                    adding,
                    removing,
                }
            }
        };
        let acceptable = |r: i32| self.image.is_active(r);
        let change = PartitionChange {
            topic_id: topic.topic_id,
            partition_id,
            partition,
            target_isr: original_isr,
            election: self.election_for(topic),
            is_acceptable_leader: &acceptable,
            unclean_shutdown_replicas: BTreeSet::new(),
            elr_enabled: self.elr_enabled(),
            min_insync_replicas: self.min_insync_replicas(&topic.name),
            target_replicas: Some(targets),
        }
        .build();
        Ok(change)
    }

    /// Kafka's validateManualPartitionAssignment: not empty, no duplicate,
    /// every broker registered.
    fn check_reassignment_target(&self, target: &[i32]) -> Result<(), (ResponseError, String)> {
        let invalid = |message: String| Err((ResponseError::InvalidReplicaAssignment, message));
        if target.is_empty() {
            return invalid("the target replica list is empty".to_string());
        }
        if target.len() > super::records::ARRAY_LEN_MAX {
            return invalid(format!("{} replicas exceed the bound", target.len()));
        }
        let distinct: BTreeSet<i32> = target.iter().copied().collect();
        if distinct.len() != target.len() {
            return invalid(format!("the target {target:?} names a broker twice"));
        }
        if let Some(unknown) = target.iter().find(|r| !self.image.brokers.contains_key(r)) {
            return invalid(format!("broker {unknown} is not registered"));
        }
        Ok(())
    }

    /// ListPartitionReassignments: the ongoing reassignments of the named
    /// partitions (unknown ones are skipped, as Kafka does), or of all.
    pub fn handle_list_partition_reassignments(
        &self,
        request: &ListPartitionReassignmentsRequest,
    ) -> ListPartitionReassignmentsResponse {
        let mut response = ListPartitionReassignmentsResponse::default();
        let wanted: Vec<(String, Vec<i32>)> = match &request.topics {
            Some(list) => list
                .iter()
                .take(REQUEST_ITEMS_MAX)
                .map(|t| (t.name.0.as_str().to_string(), t.partition_indexes.clone()))
                .collect(),
            None => self.every_partition(),
        };
        // Sorted by name so the answer does not depend on topic ids.
        let mut by_name: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        for (name, partitions) in wanted {
            let entry = by_name.entry(name).or_default();
            entry.extend(partitions.into_iter().take(REQUEST_ITEMS_MAX));
        }
        let ids = |v: &[i32]| v.iter().map(|&r| BrokerId(r)).collect::<Vec<_>>();
        for (name, partitions) in by_name {
            let Some(topic) = self.image.topic_by_name(&name) else {
                continue;
            };
            let mut ongoing =
                list_partition_reassignments_response::OngoingTopicReassignment::default();
            ongoing.name = TopicName(str_bytes(&name));
            for id in partitions {
                let Some(p) = topic.partitions.get(&id).filter(|p| p.is_reassigning()) else {
                    continue;
                };
                let mut entry =
                    list_partition_reassignments_response::OngoingPartitionReassignment::default();
                entry.partition_index = id;
                entry.replicas = ids(&p.assignment.replicas);
                entry.adding_replicas = ids(&p.adding);
                entry.removing_replicas = ids(&p.removing);
                ongoing.partitions.push(entry);
            }
            if !ongoing.partitions.is_empty() {
                response.topics.push(ongoing);
            }
        }
        response
    }

    // ----- producer ids -----

    /// AllocateProducerIds (KIP-730): the next block of
    /// `producer_id_block_size` ids for a broker's InitProducerId. The
    /// answer leaves only once the ProducerIdsRecord is committed, and the
    /// image keeps the next block's start, so no controller (a new one, or
    /// this one replaying the log after a restart) hands out an id twice.
    /// As Kafka's ProducerIdControlManager: only the broker epoch is
    /// checked (a fenced broker may still ask), an unknown broker is a
    /// stale epoch too.
    pub fn handle_allocate_producer_ids(
        &mut self,
        request: &AllocateProducerIdsRequest,
    ) -> ControllerResult<AllocateProducerIdsResponse> {
        let mut response = AllocateProducerIdsResponse::default();
        response.producer_id_start = ProducerId(-1);
        let broker = self.image.brokers.get(&request.broker_id.0);
        if broker.is_none_or(|b| b.epoch != request.broker_epoch) {
            response.error_code = error(ResponseError::StaleBrokerEpoch);
            return ControllerResult {
                records: Vec::new(),
                response,
            };
        }
        let start = self.image.next_producer_id;
        let len = self.config.producer_id_block_size;
        let Some(end) = start.checked_add(i64::from(len)) else {
            // Kafka's answer once i64 runs out (it never will in practice).
            response.error_code = error(ResponseError::UnknownServerError);
            return ControllerResult {
                records: Vec::new(),
                response,
            };
        };
        response.producer_id_start = ProducerId(start);
        response.producer_id_len = len;
        let records = vec![MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: request.broker_id.0,
            broker_epoch: request.broker_epoch,
            producer_ids_end: end,
        })];
        ControllerResult { records, response }
    }

    // ----- invariants -----

    /// The INVARIANTS.md partition rules on the image: `leader_in_isr`,
    /// `isr_subset_of_replicas`, ISR and ELR disjoint, ELR empty when the
    /// ISR is at least min.insync.replicas, no fenced broker in the ISR
    /// (these last three with KIP-966 on). Epoch monotonicity is asserted
    /// as each record applies ([`MetadataImage::apply`]).
    pub fn check_invariants(&self) {
        let generation = self.image_generation;
        if self.image_generation_checked.load(Ordering::Relaxed) == generation {
            return;
        }
        self.check_image();
        self.image_generation_checked
            .store(generation, Ordering::Relaxed);
    }

    fn check_image(&self) {
        let image = &self.image;
        assert_eq!(
            image.topics.len(),
            image.topics_by_name.len(),
            "every topic has one name"
        );
        for (name, id) in &image.topics_by_name {
            assert_eq!(&image.topics[id].name, name, "name index matches");
        }
        // Looked up once per topic (a config lookup per partition was a
        // fifth of this check on a large cluster's controller).
        let mut min_isr_of: Option<(&str, usize)> = None;
        // The registered and the unfenced brokers as sorted lists: every
        // partition asks about its leader and each ISR member, and binary
        // searches of these beat the map's node-by-node scans.
        let registered: Vec<i32> = image.brokers.keys().copied().collect();
        let unfenced: Vec<i32> = image
            .brokers
            .iter()
            .filter(|(_, b)| !b.fenced)
            .map(|(id, _)| *id)
            .collect();
        for (topic, partition_id, partition) in self.partitions() {
            let a = &partition.assignment;
            a.check_invariants();
            partition.check_reassignment();
            let at = || format!("{}-{partition_id}", topic.name);
            assert!(
                partition.elr.iter().all(|r| a.replicas.contains(r)),
                "ELR {:?} within replicas {:?} at {}",
                partition.elr,
                a.replicas,
                at()
            );
            assert!(
                a.leader == NO_LEADER || registered.binary_search(&a.leader).is_ok(),
                "leader {} of {} is registered",
                a.leader,
                at()
            );
            if !self.elr_enabled() {
                assert!(
                    partition.elr.is_empty(),
                    "no ELR without KIP-966 at {}",
                    at()
                );
                continue;
            }
            assert!(
                a.isr.is_disjoint(&partition.elr),
                "ISR {:?} and ELR {:?} disjoint at {}",
                a.isr,
                partition.elr,
                at()
            );
            let min_isr = match min_isr_of {
                Some((name, min_isr)) if name == topic.name => min_isr,
                _ => {
                    let min_isr = self.min_insync_replicas(&topic.name);
                    min_isr_of = Some((&topic.name, min_isr));
                    min_isr
                }
            };
            assert!(
                a.isr.len() < min_isr || partition.elr.is_empty(),
                "ELR {:?} empty when ISR {:?} >= min ISR {min_isr} at {}",
                partition.elr,
                a.isr,
                at()
            );
            for member in &a.isr {
                assert!(
                    unfenced.binary_search(member).is_ok(),
                    "no fenced broker in the ISR: {member} in {:?} at {}",
                    a.isr,
                    at()
                );
            }
        }
    }
}
