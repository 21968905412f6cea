//! OffsetCommit, OffsetFetch and OffsetDelete: the node checks topics and
//! versions, the group coordinator decides, and commits are answered once
//! their record in `__consumer_offsets` is durable.

use super::super::responder::Slot;
use super::super::Node;
use super::group::GroupReplyTo;
use super::str_bytes;
use crate::group::{CommitPartition, CommitRequest, FetchedPartition, PartitionResult};
use crate::storage::Storage;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, TopicName,
};
use kafka_protocol::ResponseError;

/// OffsetCommit v6+ carries the leader epoch of the committed offset.
const OFFSET_COMMIT_LEADER_EPOCH_VERSION_MIN: i16 = 6;
/// OffsetFetch v5+ returns it.
const OFFSET_FETCH_LEADER_EPOCH_VERSION_MIN: i16 = 5;
/// OffsetFetch v2+ has a top-level error.
const OFFSET_FETCH_ERROR_VERSION_MIN: i16 = 2;
/// OffsetFetch v7+ may ask for stable offsets only.
const OFFSET_FETCH_REQUIRE_STABLE_VERSION_MIN: i16 = 7;
/// OffsetFetch v8+ batches groups.
const OFFSET_FETCH_BATCHED_VERSION_MIN: i16 = 8;

impl<S: Storage> Node<S> {
    fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.topics
            .get(topic)
            .is_some_and(|t| partition >= 0 && (partition as usize) < t.partitions().len())
    }

    pub(crate) fn handle_offset_commit(
        &mut self,
        slot: Slot,
        request: &OffsetCommitRequest,
        version: i16,
    ) {
        let mut partitions = Vec::new();
        for topic in &request.topics {
            for p in &topic.partitions {
                let exists = self.partition_exists(&topic.name, p.partition_index);
                partitions.push(CommitPartition {
                    topic: topic.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= OFFSET_COMMIT_LEADER_EPOCH_VERSION_MIN {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    error: if exists {
                        0
                    } else {
                        ResponseError::UnknownTopicOrPartition.code()
                    },
                });
            }
        }
        let mut commit = CommitRequest {
            group_id: request.group_id.to_string(),
            generation_id: request.generation_id_or_member_epoch,
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            partitions,
        };
        if self.is_consumer_protocol_group(&request.group_id) && self.groups.owns(&commit.group_id)
        {
            // KIP-848: the member epoch is checked here; the offsets then go
            // to the one offset store as a commit from outside any classic
            // generation.
            let checked = self.consumer_groups.check_member(
                &commit.group_id,
                &commit.member_id,
                commit.generation_id,
            );
            if let Err(code) = checked {
                for p in commit.partitions.iter_mut().filter(|p| p.error == 0) {
                    p.error = code;
                }
            }
            commit.generation_id = -1;
            commit.member_id.clear();
            commit.group_instance_id = None;
        }
        self.groups
            .handle_commit(self.now, GroupReplyTo { slot, version }, commit);
    }

    pub(crate) fn handle_offset_fetch(
        &mut self,
        request: &OffsetFetchRequest,
        version: i16,
    ) -> OffsetFetchResponse {
        let require_stable =
            version >= OFFSET_FETCH_REQUIRE_STABLE_VERSION_MIN && request.require_stable;
        let epoch = |e: i32| {
            if version >= OFFSET_FETCH_LEADER_EPOCH_VERSION_MIN {
                e
            } else {
                -1
            }
        };
        if version >= OFFSET_FETCH_BATCHED_VERSION_MIN {
            let groups = request
                .groups
                .iter()
                .map(|g| {
                    let topics: Option<Vec<(String, Vec<i32>)>> = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                            .collect()
                    });
                    let owned = self.groups.owns(&g.group_id);
                    let fetched = if owned {
                        self.groups
                            .fetch_offsets(&g.group_id, topics.as_deref(), require_stable)
                    } else {
                        Vec::new()
                    };
                    OffsetFetchResponseGroup::default()
                        .with_error_code(if owned {
                            0
                        } else {
                            ResponseError::NotCoordinator.code()
                        })
                        .with_group_id(g.group_id.clone())
                        .with_topics(
                            fetched
                                .into_iter()
                                .map(|(topic, parts)| {
                                    OffsetFetchResponseTopics::default()
                                        .with_name(TopicName(str_bytes(&topic)))
                                        .with_partitions(
                                            parts
                                                .into_iter()
                                                .map(|p: FetchedPartition| {
                                                    OffsetFetchResponsePartitions::default()
                                                        .with_partition_index(p.partition)
                                                        .with_committed_offset(p.offset)
                                                        .with_committed_leader_epoch(p.leader_epoch)
                                                        .with_metadata(
                                                            p.metadata.map(|m| str_bytes(&m)),
                                                        )
                                                        .with_error_code(p.error)
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect();
            return OffsetFetchResponse::default().with_groups(groups);
        }
        let topics: Option<Vec<(String, Vec<i32>)>> = request.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        let owned = self.groups.owns(&request.group_id);
        let fetched = if owned {
            self.groups
                .fetch_offsets(&request.group_id, topics.as_deref(), require_stable)
        } else {
            Vec::new()
        };
        let mut response = OffsetFetchResponse::default().with_topics(
            fetched
                .into_iter()
                .map(|(topic, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(str_bytes(&topic)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p.partition)
                                        .with_committed_offset(p.offset)
                                        .with_committed_leader_epoch(epoch(p.leader_epoch))
                                        .with_metadata(p.metadata.map(|m| str_bytes(&m)))
                                        .with_error_code(p.error)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
        if version >= OFFSET_FETCH_ERROR_VERSION_MIN {
            response.error_code = if owned {
                0
            } else {
                ResponseError::NotCoordinator.code()
            };
        }
        response
    }

    pub(crate) fn handle_offset_delete(
        &mut self,
        slot: Slot,
        request: &OffsetDeleteRequest,
        version: i16,
    ) {
        let mut partitions = Vec::new();
        for topic in &request.topics {
            for p in &topic.partitions {
                let error = if self.partition_exists(&topic.name, p.partition_index) {
                    0
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                };
                partitions.push((topic.name.to_string(), p.partition_index, error));
            }
        }
        self.groups.handle_offset_delete(
            self.now,
            GroupReplyTo { slot, version },
            &request.group_id,
            partitions,
        );
    }
}

/// Per-partition results grouped by topic, in request order.
fn by_topic(results: Vec<PartitionResult>) -> Vec<(String, Vec<(i32, i16)>)> {
    let mut out: Vec<(String, Vec<(i32, i16)>)> = Vec::new();
    for r in results {
        match out.last_mut() {
            Some((topic, parts)) if *topic == r.topic => parts.push((r.partition, r.error)),
            _ => out.push((r.topic, vec![(r.partition, r.error)])),
        }
    }
    out
}

pub(crate) fn commit_response(
    results: Vec<PartitionResult>,
) -> kafka_protocol::messages::OffsetCommitResponse {
    kafka_protocol::messages::OffsetCommitResponse::default().with_topics(
        by_topic(results)
            .into_iter()
            .map(|(topic, parts)| {
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(str_bytes(&topic)))
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(partition, error)| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(partition)
                                    .with_error_code(error)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

pub(crate) fn offset_delete_response(
    error: i16,
    results: Vec<PartitionResult>,
) -> OffsetDeleteResponse {
    OffsetDeleteResponse::default()
        .with_error_code(error)
        .with_topics(
            by_topic(results)
                .into_iter()
                .map(|(topic, parts)| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(TopicName(str_bytes(&topic)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|(partition, error)| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(partition)
                                        .with_error_code(error)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}
