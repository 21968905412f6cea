//! The quorum's vocabulary: Kafka's own KRaft RPCs, as the `kafka-protocol`
//! crate's generated types, wrapped in [`RaftMessage`].
//!
//! Every message concerns the single metadata partition
//! `__cluster_metadata-0`; the builders here fill in the topic/partition
//! envelope and the extractors take it apart again, rejecting anything else
//! as a peer error (never a panic).
//!
//! Fetch carries the correlation id of Kafka's request header, echoed by the
//! response: a follower must tell a late answer to a fetch it gave up on
//! from the answer to the fetch it is waiting for (a stale diverging-epoch
//! answer would otherwise truncate a log that has moved on). Kafka's wire
//! header carries that id; here the envelope does.

use kafka_protocol::messages::{
    begin_quorum_epoch_request, begin_quorum_epoch_response, end_quorum_epoch_request,
    end_quorum_epoch_response, fetch_request, fetch_response, fetch_snapshot_request,
    fetch_snapshot_response, vote_request, vote_response, BeginQuorumEpochRequest,
    BeginQuorumEpochResponse, BrokerId, EndQuorumEpochRequest, EndQuorumEpochResponse,
    FetchRequest, FetchResponse, FetchSnapshotRequest, FetchSnapshotResponse, TopicName,
    VoteRequest, VoteResponse,
};
use kafka_protocol::protocol::StrBytes;

/// The metadata log's topic, as Kafka names it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// The metadata log's only partition.
pub const METADATA_PARTITION: i32 = 0;

/// Kafka error codes the quorum answers with.
pub mod error_codes {
    pub const NONE: i16 = 0;
    /// The request's epoch is older than the receiver's.
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    /// The request's epoch is newer than the receiver knows.
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    /// The receiver is not the leader of the epoch the request names.
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    /// The request names another cluster.
    pub const INCONSISTENT_CLUSTER_ID: i16 = 104;
    /// The request names a topic or partition other than the metadata log.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// The sender is not a voter of this quorum.
    pub const INCONSISTENT_VOTER_SET: i16 = 94;
    /// FetchSnapshot names a snapshot the leader does not hold (any more).
    pub const SNAPSHOT_NOT_FOUND: i16 = 98;
    /// FetchSnapshot's position is outside the snapshot.
    pub const POSITION_OUT_OF_RANGE: i16 = 99;
}

/// One KRaft RPC between two voters.
#[derive(Debug, Clone, PartialEq)]
pub enum RaftMessage {
    /// A (pre-)vote request from a prospective or a candidate.
    Vote(VoteRequest),
    VoteResponse(VoteResponse),
    /// A new leader announcing its epoch.
    BeginQuorumEpoch(BeginQuorumEpochRequest),
    BeginQuorumEpochResponse(BeginQuorumEpochResponse),
    /// A leader resigning its epoch.
    EndQuorumEpoch(EndQuorumEpochRequest),
    EndQuorumEpochResponse(EndQuorumEpochResponse),
    /// A follower replicating the metadata log.
    Fetch {
        correlation_id: i32,
        request: FetchRequest,
    },
    FetchResponse {
        correlation_id: i32,
        response: FetchResponse,
    },
    /// A follower below the leader's log start copying its snapshot
    /// (KIP-630), one chunk per request.
    FetchSnapshot {
        correlation_id: i32,
        request: FetchSnapshotRequest,
    },
    FetchSnapshotResponse {
        correlation_id: i32,
        response: FetchSnapshotResponse,
    },
}

impl RaftMessage {
    /// A short name for traces.
    pub fn name(&self) -> &'static str {
        match self {
            RaftMessage::Vote(_) => "Vote",
            RaftMessage::VoteResponse(_) => "VoteResponse",
            RaftMessage::BeginQuorumEpoch(_) => "BeginQuorumEpoch",
            RaftMessage::BeginQuorumEpochResponse(_) => "BeginQuorumEpochResponse",
            RaftMessage::EndQuorumEpoch(_) => "EndQuorumEpoch",
            RaftMessage::EndQuorumEpochResponse(_) => "EndQuorumEpochResponse",
            RaftMessage::Fetch { .. } => "Fetch",
            RaftMessage::FetchResponse { .. } => "FetchResponse",
            RaftMessage::FetchSnapshot { .. } => "FetchSnapshot",
            RaftMessage::FetchSnapshotResponse { .. } => "FetchSnapshotResponse",
        }
    }

    /// Whether this is a request (the receiver answers it).
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            RaftMessage::Vote(_)
                | RaftMessage::BeginQuorumEpoch(_)
                | RaftMessage::EndQuorumEpoch(_)
                | RaftMessage::Fetch { .. }
                | RaftMessage::FetchSnapshot { .. }
        )
    }
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(METADATA_TOPIC))
}

fn is_metadata_topic(name: &TopicName) -> bool {
    name.0.as_str() == METADATA_TOPIC
}

fn cluster(cluster_id: &str) -> Option<StrBytes> {
    Some(StrBytes::from_string(cluster_id.to_string()))
}

/// A peer sent something the quorum cannot take: wrong cluster, wrong
/// partition, a malformed envelope. Answered or dropped, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message for cluster {got:?}, this is {expected:?}")]
    ClusterId { expected: String, got: String },
    #[error("message does not hold exactly the partition {METADATA_TOPIC}-{METADATA_PARTITION}")]
    NotMetadataPartition,
}

impl MessageError {
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            MessageError::ClusterId { .. } => error_codes::INCONSISTENT_CLUSTER_ID,
            MessageError::NotMetadataPartition => error_codes::UNKNOWN_TOPIC_OR_PARTITION,
        }
    }
}

/// Checks the cluster id of a request (`None` is accepted, as Kafka does
/// for old versions).
pub(crate) fn check_cluster_id(expected: &str, got: &Option<StrBytes>) -> Result<(), MessageError> {
    match got {
        Some(got) if got.as_str() != expected => Err(MessageError::ClusterId {
            expected: expected.to_string(),
            got: got.as_str().to_string(),
        }),
        _ => Ok(()),
    }
}

// ----- Vote -----

/// The fields of a vote request the quorum reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoteRequestFields {
    pub candidate_id: i32,
    /// The candidate's epoch (a prospective's current epoch for a pre-vote).
    pub candidate_epoch: i32,
    pub last_offset_epoch: i32,
    /// The candidate's log end offset.
    pub last_offset: i64,
    pub pre_vote: bool,
}

pub fn vote_request(cluster_id: &str, voter_id: i32, fields: VoteRequestFields) -> VoteRequest {
    let partition = vote_request::PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_replica_epoch(fields.candidate_epoch)
        .with_replica_id(BrokerId(fields.candidate_id))
        .with_last_offset_epoch(fields.last_offset_epoch)
        .with_last_offset(fields.last_offset)
        .with_pre_vote(fields.pre_vote);
    VoteRequest::default()
        .with_cluster_id(cluster(cluster_id))
        .with_voter_id(BrokerId(voter_id))
        .with_topics(vec![vote_request::TopicData::default()
            .with_topic_name(topic_name())
            .with_partitions(vec![partition])])
}

pub fn parse_vote_request(
    cluster_id: &str,
    request: &VoteRequest,
) -> Result<VoteRequestFields, MessageError> {
    check_cluster_id(cluster_id, &request.cluster_id)?;
    let [topic] = request.topics.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    let [partition] = topic.partitions.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    if !is_metadata_topic(&topic.topic_name) || partition.partition_index != METADATA_PARTITION {
        return Err(MessageError::NotMetadataPartition);
    }
    Ok(VoteRequestFields {
        candidate_id: partition.replica_id.0,
        candidate_epoch: partition.replica_epoch,
        last_offset_epoch: partition.last_offset_epoch,
        last_offset: partition.last_offset,
        pre_vote: partition.pre_vote,
    })
}

/// The fields of a vote response the quorum reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoteResponseFields {
    pub error_code: i16,
    /// The responder's leader in `leader_epoch`, if it knows one.
    pub leader_id: Option<i32>,
    /// The responder's epoch.
    pub leader_epoch: i32,
    pub vote_granted: bool,
}

pub fn vote_response(fields: VoteResponseFields) -> VoteResponse {
    let partition = vote_response::PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_error_code(fields.error_code)
        .with_leader_id(BrokerId(fields.leader_id.unwrap_or(-1)))
        .with_leader_epoch(fields.leader_epoch)
        .with_vote_granted(fields.vote_granted);
    VoteResponse::default().with_topics(vec![vote_response::TopicData::default()
        .with_topic_name(topic_name())
        .with_partitions(vec![partition])])
}

/// A top-level error (wrong cluster) carries no partition.
pub fn vote_error_response(error_code: i16) -> VoteResponse {
    VoteResponse::default().with_error_code(error_code)
}

pub fn parse_vote_response(response: &VoteResponse) -> Result<VoteResponseFields, MessageError> {
    let [topic] = response.topics.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    let [partition] = topic.partitions.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    if !is_metadata_topic(&topic.topic_name) || partition.partition_index != METADATA_PARTITION {
        return Err(MessageError::NotMetadataPartition);
    }
    Ok(VoteResponseFields {
        error_code: partition.error_code,
        leader_id: (partition.leader_id.0 >= 0).then_some(partition.leader_id.0),
        leader_epoch: partition.leader_epoch,
        vote_granted: partition.vote_granted,
    })
}

// ----- BeginQuorumEpoch / EndQuorumEpoch -----

pub fn begin_quorum_epoch_request(
    cluster_id: &str,
    voter_id: i32,
    leader_id: i32,
    leader_epoch: i32,
) -> BeginQuorumEpochRequest {
    let partition = begin_quorum_epoch_request::PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_leader_id(BrokerId(leader_id))
        .with_leader_epoch(leader_epoch);
    BeginQuorumEpochRequest::default()
        .with_cluster_id(cluster(cluster_id))
        .with_voter_id(BrokerId(voter_id))
        .with_topics(vec![begin_quorum_epoch_request::TopicData::default()
            .with_topic_name(topic_name())
            .with_partitions(vec![partition])])
}

/// `(leader_id, leader_epoch)` of a BeginQuorumEpoch request.
pub fn parse_begin_quorum_epoch_request(
    cluster_id: &str,
    request: &BeginQuorumEpochRequest,
) -> Result<(i32, i32), MessageError> {
    check_cluster_id(cluster_id, &request.cluster_id)?;
    let [topic] = request.topics.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    let [partition] = topic.partitions.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    if !is_metadata_topic(&topic.topic_name) || partition.partition_index != METADATA_PARTITION {
        return Err(MessageError::NotMetadataPartition);
    }
    Ok((partition.leader_id.0, partition.leader_epoch))
}

pub fn begin_quorum_epoch_response(
    error_code: i16,
    leader_id: Option<i32>,
    leader_epoch: i32,
) -> BeginQuorumEpochResponse {
    let partition = begin_quorum_epoch_response::PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_error_code(error_code)
        .with_leader_id(BrokerId(leader_id.unwrap_or(-1)))
        .with_leader_epoch(leader_epoch);
    BeginQuorumEpochResponse::default().with_topics(vec![
        begin_quorum_epoch_response::TopicData::default()
            .with_topic_name(topic_name())
            .with_partitions(vec![partition]),
    ])
}

/// `(error_code, leader_id, leader_epoch)` of a BeginQuorumEpoch response.
pub fn parse_begin_quorum_epoch_response(
    response: &BeginQuorumEpochResponse,
) -> Result<(i16, Option<i32>, i32), MessageError> {
    let [topic] = response.topics.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    let [partition] = topic.partitions.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    Ok((
        partition.error_code,
        (partition.leader_id.0 >= 0).then_some(partition.leader_id.0),
        partition.leader_epoch,
    ))
}

pub fn end_quorum_epoch_request(
    cluster_id: &str,
    leader_id: i32,
    leader_epoch: i32,
    preferred_successors: Vec<i32>,
) -> EndQuorumEpochRequest {
    let partition = end_quorum_epoch_request::PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_leader_id(BrokerId(leader_id))
        .with_leader_epoch(leader_epoch)
        .with_preferred_successors(preferred_successors);
    EndQuorumEpochRequest::default()
        .with_cluster_id(cluster(cluster_id))
        .with_topics(vec![end_quorum_epoch_request::TopicData::default()
            .with_topic_name(topic_name())
            .with_partitions(vec![partition])])
}

/// `(leader_id, leader_epoch, preferred_successors)` of an EndQuorumEpoch request.
pub fn parse_end_quorum_epoch_request(
    cluster_id: &str,
    request: &EndQuorumEpochRequest,
) -> Result<(i32, i32, Vec<i32>), MessageError> {
    check_cluster_id(cluster_id, &request.cluster_id)?;
    let [topic] = request.topics.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    let [partition] = topic.partitions.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    if !is_metadata_topic(&topic.topic_name) || partition.partition_index != METADATA_PARTITION {
        return Err(MessageError::NotMetadataPartition);
    }
    Ok((
        partition.leader_id.0,
        partition.leader_epoch,
        partition.preferred_successors.clone(),
    ))
}

pub fn end_quorum_epoch_response(
    error_code: i16,
    leader_id: Option<i32>,
    leader_epoch: i32,
) -> EndQuorumEpochResponse {
    let partition = end_quorum_epoch_response::PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_error_code(error_code)
        .with_leader_id(BrokerId(leader_id.unwrap_or(-1)))
        .with_leader_epoch(leader_epoch);
    EndQuorumEpochResponse::default().with_topics(vec![
        end_quorum_epoch_response::TopicData::default()
            .with_topic_name(topic_name())
            .with_partitions(vec![partition]),
    ])
}

/// `(error_code, leader_id, leader_epoch)` of an EndQuorumEpoch response.
pub fn parse_end_quorum_epoch_response(
    response: &EndQuorumEpochResponse,
) -> Result<(i16, Option<i32>, i32), MessageError> {
    let [topic] = response.topics.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    let [partition] = topic.partitions.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    Ok((
        partition.error_code,
        (partition.leader_id.0 >= 0).then_some(partition.leader_id.0),
        partition.leader_epoch,
    ))
}

// ----- Fetch -----

/// The fields of a KRaft fetch the quorum reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRequestFields {
    pub replica_id: i32,
    /// The epoch the follower believes current.
    pub current_leader_epoch: i32,
    /// The follower's (flushed) log end offset: where it wants records from.
    pub fetch_offset: i64,
    /// The epoch of the follower's last record, -1 when its log is empty.
    pub last_fetched_epoch: i32,
    /// The follower's high watermark, -1 when unknown: the leader answers a
    /// parked fetch as soon as its own is higher (KIP-1166).
    pub high_watermark: i64,
    pub max_bytes: i32,
    pub max_wait_ms: i32,
}

pub fn fetch_request(cluster_id: &str, fields: FetchRequestFields) -> FetchRequest {
    let partition = fetch_request::FetchPartition::default()
        .with_partition(METADATA_PARTITION)
        .with_current_leader_epoch(fields.current_leader_epoch)
        .with_fetch_offset(fields.fetch_offset)
        .with_last_fetched_epoch(fields.last_fetched_epoch)
        .with_partition_max_bytes(fields.max_bytes)
        .with_high_watermark(fields.high_watermark);
    FetchRequest::default()
        .with_cluster_id(cluster(cluster_id))
        .with_replica_state(
            fetch_request::ReplicaState::default()
                .with_replica_id(BrokerId(fields.replica_id))
                .with_replica_epoch(-1),
        )
        .with_max_wait_ms(fields.max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(fields.max_bytes)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic_name())
            .with_partitions(vec![partition])])
}

pub fn parse_fetch_request(
    cluster_id: &str,
    request: &FetchRequest,
) -> Result<FetchRequestFields, MessageError> {
    check_cluster_id(cluster_id, &request.cluster_id)?;
    let [topic] = request.topics.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    let [partition] = topic.partitions.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    if !is_metadata_topic(&topic.topic) || partition.partition != METADATA_PARTITION {
        return Err(MessageError::NotMetadataPartition);
    }
    Ok(FetchRequestFields {
        replica_id: request.replica_state.replica_id.0,
        current_leader_epoch: partition.current_leader_epoch,
        fetch_offset: partition.fetch_offset,
        last_fetched_epoch: partition.last_fetched_epoch,
        high_watermark: partition.high_watermark,
        max_bytes: partition.partition_max_bytes,
        max_wait_ms: request.max_wait_ms,
    })
}

/// The fields of a KRaft fetch response the quorum reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponseFields {
    pub error_code: i16,
    /// The leader's high watermark, -1 while it has none in its epoch.
    pub high_watermark: i64,
    /// Set when the follower's log diverged: `(epoch, end_offset)` of the
    /// leader's log for the follower's last fetched epoch.
    pub diverging_epoch: Option<(i32, i64)>,
    pub leader_id: Option<i32>,
    pub leader_epoch: i32,
    pub records: bytes::Bytes,
    /// KIP-630: the follower's fetch offset is below the leader's log
    /// start; fetch this snapshot `(end_offset, epoch)` instead.
    pub snapshot_id: Option<(i64, i32)>,
}

pub fn fetch_response(fields: FetchResponseFields) -> FetchResponse {
    let mut partition = fetch_response::PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_error_code(fields.error_code)
        .with_high_watermark(fields.high_watermark)
        .with_current_leader(
            fetch_response::LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(fields.leader_id.unwrap_or(-1)))
                .with_leader_epoch(fields.leader_epoch),
        )
        .with_records(Some(fields.records));
    if let Some((end_offset, epoch)) = fields.snapshot_id {
        partition = partition.with_snapshot_id(
            fetch_response::SnapshotId::default()
                .with_end_offset(end_offset)
                .with_epoch(epoch),
        );
    }
    if let Some((epoch, end_offset)) = fields.diverging_epoch {
        partition = partition.with_diverging_epoch(
            fetch_response::EpochEndOffset::default()
                .with_epoch(epoch)
                .with_end_offset(end_offset),
        );
    }
    FetchResponse::default().with_responses(vec![fetch_response::FetchableTopicResponse::default()
        .with_topic(topic_name())
        .with_partitions(vec![partition])])
}

/// A top-level error (wrong cluster) carries no partition.
pub fn fetch_error_response(error_code: i16) -> FetchResponse {
    FetchResponse::default().with_error_code(error_code)
}

pub fn parse_fetch_response(response: &FetchResponse) -> Result<FetchResponseFields, MessageError> {
    let [topic] = response.responses.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    let [partition] = topic.partitions.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    if !is_metadata_topic(&topic.topic) || partition.partition_index != METADATA_PARTITION {
        return Err(MessageError::NotMetadataPartition);
    }
    let diverging = &partition.diverging_epoch;
    Ok(FetchResponseFields {
        error_code: partition.error_code,
        high_watermark: partition.high_watermark,
        diverging_epoch: (diverging.epoch >= 0 || diverging.end_offset >= 0)
            .then_some((diverging.epoch, diverging.end_offset)),
        leader_id: (partition.current_leader.leader_id.0 >= 0)
            .then_some(partition.current_leader.leader_id.0),
        leader_epoch: partition.current_leader.leader_epoch,
        records: partition.records.clone().unwrap_or_default(),
        snapshot_id: (partition.snapshot_id.end_offset >= 0 && partition.snapshot_id.epoch >= 0)
            .then_some((
                partition.snapshot_id.end_offset,
                partition.snapshot_id.epoch,
            )),
    })
}

// ----- FetchSnapshot (KIP-630) -----

/// The fields of a FetchSnapshot request the quorum reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchSnapshotRequestFields {
    pub replica_id: i32,
    pub current_leader_epoch: i32,
    /// `(end_offset, epoch)` of the snapshot.
    pub snapshot_id: (i64, i32),
    /// Byte position in the snapshot to send from.
    pub position: i64,
    pub max_bytes: i32,
}

pub fn fetch_snapshot_request(
    cluster_id: &str,
    fields: FetchSnapshotRequestFields,
) -> FetchSnapshotRequest {
    let partition = fetch_snapshot_request::PartitionSnapshot::default()
        .with_partition(METADATA_PARTITION)
        .with_current_leader_epoch(fields.current_leader_epoch)
        .with_snapshot_id(
            fetch_snapshot_request::SnapshotId::default()
                .with_end_offset(fields.snapshot_id.0)
                .with_epoch(fields.snapshot_id.1),
        )
        .with_position(fields.position);
    FetchSnapshotRequest::default()
        .with_cluster_id(cluster(cluster_id))
        .with_replica_id(BrokerId(fields.replica_id))
        .with_max_bytes(fields.max_bytes)
        .with_topics(vec![fetch_snapshot_request::TopicSnapshot::default()
            .with_name(topic_name())
            .with_partitions(vec![partition])])
}

pub fn parse_fetch_snapshot_request(
    cluster_id: &str,
    request: &FetchSnapshotRequest,
) -> Result<FetchSnapshotRequestFields, MessageError> {
    check_cluster_id(cluster_id, &request.cluster_id)?;
    let [topic] = request.topics.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    let [partition] = topic.partitions.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    if !is_metadata_topic(&topic.name) || partition.partition != METADATA_PARTITION {
        return Err(MessageError::NotMetadataPartition);
    }
    Ok(FetchSnapshotRequestFields {
        replica_id: request.replica_id.0,
        current_leader_epoch: partition.current_leader_epoch,
        snapshot_id: (
            partition.snapshot_id.end_offset,
            partition.snapshot_id.epoch,
        ),
        position: partition.position,
        max_bytes: request.max_bytes,
    })
}

/// The fields of a FetchSnapshot response the quorum reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSnapshotResponseFields {
    pub error_code: i16,
    pub snapshot_id: (i64, i32),
    pub leader_id: Option<i32>,
    pub leader_epoch: i32,
    /// The whole snapshot's size in bytes.
    pub size: i64,
    /// Where `bytes` start in the snapshot.
    pub position: i64,
    pub bytes: bytes::Bytes,
}

pub fn fetch_snapshot_response(fields: FetchSnapshotResponseFields) -> FetchSnapshotResponse {
    let partition = fetch_snapshot_response::PartitionSnapshot::default()
        .with_index(METADATA_PARTITION)
        .with_error_code(fields.error_code)
        .with_snapshot_id(
            fetch_snapshot_response::SnapshotId::default()
                .with_end_offset(fields.snapshot_id.0)
                .with_epoch(fields.snapshot_id.1),
        )
        .with_current_leader(
            fetch_snapshot_response::LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(fields.leader_id.unwrap_or(-1)))
                .with_leader_epoch(fields.leader_epoch),
        )
        .with_size(fields.size)
        .with_position(fields.position)
        .with_unaligned_records(fields.bytes);
    FetchSnapshotResponse::default().with_topics(vec![
        fetch_snapshot_response::TopicSnapshot::default()
            .with_name(topic_name())
            .with_partitions(vec![partition]),
    ])
}

/// A top-level error (wrong cluster) carries no partition.
pub fn fetch_snapshot_error_response(error_code: i16) -> FetchSnapshotResponse {
    FetchSnapshotResponse::default().with_error_code(error_code)
}

pub fn parse_fetch_snapshot_response(
    response: &FetchSnapshotResponse,
) -> Result<FetchSnapshotResponseFields, MessageError> {
    let [topic] = response.topics.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    let [partition] = topic.partitions.as_slice() else {
        return Err(MessageError::NotMetadataPartition);
    };
    if !is_metadata_topic(&topic.name) || partition.index != METADATA_PARTITION {
        return Err(MessageError::NotMetadataPartition);
    }
    Ok(FetchSnapshotResponseFields {
        error_code: partition.error_code,
        snapshot_id: (
            partition.snapshot_id.end_offset,
            partition.snapshot_id.epoch,
        ),
        leader_id: (partition.current_leader.leader_id.0 >= 0)
            .then_some(partition.current_leader.leader_id.0),
        leader_epoch: partition.current_leader.leader_epoch,
        size: partition.size,
        position: partition.position,
        bytes: partition.unaligned_records.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_and_parsers_round_trip() {
        let fields = VoteRequestFields {
            candidate_id: 2,
            candidate_epoch: 7,
            last_offset_epoch: 5,
            last_offset: 42,
            pre_vote: true,
        };
        let request = vote_request("c", 1, fields);
        assert_eq!(parse_vote_request("c", &request), Ok(fields));
        assert!(matches!(
            parse_vote_request("other", &request),
            Err(MessageError::ClusterId { .. })
        ));
        let fetch = FetchRequestFields {
            replica_id: 3,
            current_leader_epoch: 4,
            fetch_offset: 10,
            last_fetched_epoch: 2,
            high_watermark: -1,
            max_bytes: 1024,
            max_wait_ms: 500,
        };
        assert_eq!(
            parse_fetch_request("c", &fetch_request("c", fetch)),
            Ok(fetch)
        );
        let response = FetchResponseFields {
            error_code: 0,
            high_watermark: 9,
            diverging_epoch: Some((2, 8)),
            leader_id: Some(1),
            leader_epoch: 4,
            records: bytes::Bytes::new(),
            snapshot_id: Some((100, 3)),
        };
        assert_eq!(
            parse_fetch_response(&fetch_response(response.clone())),
            Ok(response)
        );
        assert!(parse_fetch_response(&fetch_error_response(104)).is_err());
        let snapshot_request = FetchSnapshotRequestFields {
            replica_id: 2,
            current_leader_epoch: 4,
            snapshot_id: (100, 3),
            position: 4096,
            max_bytes: 1024,
        };
        assert_eq!(
            parse_fetch_snapshot_request("c", &fetch_snapshot_request("c", snapshot_request)),
            Ok(snapshot_request)
        );
        let snapshot_response = FetchSnapshotResponseFields {
            error_code: 0,
            snapshot_id: (100, 3),
            leader_id: Some(1),
            leader_epoch: 4,
            size: 5000,
            position: 4096,
            bytes: bytes::Bytes::from_static(b"chunk"),
        };
        assert_eq!(
            parse_fetch_snapshot_response(&fetch_snapshot_response(snapshot_response.clone())),
            Ok(snapshot_response)
        );
        assert!(parse_fetch_snapshot_response(&fetch_snapshot_error_response(104)).is_err());
    }
}
