//! OffsetForLeaderEpoch: where a leader epoch ends in this partition's log,
//! so a client (or, later, a follower) can detect and cut a diverged tail.

use super::super::Node;
use super::check_leader_epoch;
use crate::storage::Storage;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
const UNDEFINED_EPOCH: i32 = -1;
const UNDEFINED_EPOCH_OFFSET: i64 = -1;

impl<S: Storage> Node<S> {
    pub(crate) fn handle_offset_for_leader_epoch(
        &mut self,
        request: &OffsetForLeaderEpochRequest,
    ) -> OffsetForLeaderEpochResponse {
        let mut response = OffsetForLeaderEpochResponse::default();
        for topic in &request.topics {
            let mut result = OffsetForLeaderTopicResult::default().with_topic(topic.topic.clone());
            for p in &topic.partitions {
                let mut answer = EpochEndOffset::default()
                    .with_partition(p.partition)
                    .with_leader_epoch(UNDEFINED_EPOCH)
                    .with_end_offset(UNDEFINED_EPOCH_OFFSET);
                match self.epoch_end_offset(
                    topic.topic.0.as_str(),
                    p.partition,
                    p.current_leader_epoch,
                    p.leader_epoch,
                ) {
                    Ok(Some((epoch, end_offset))) => {
                        answer.leader_epoch = epoch;
                        answer.end_offset = end_offset;
                    }
                    Ok(None) => {}
                    Err(code) => answer.error_code = code,
                }
                result.partitions.push(answer);
            }
            response.topics.push(result);
        }
        response
    }

    /// `(epoch, end offset)` for `leader_epoch`, `None` when no epoch
    /// qualifies (UNDEFINED), or the partition's error code.
    fn epoch_end_offset(
        &mut self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
        leader_epoch: i32,
    ) -> Result<Option<(i32, i64)>, i16> {
        let p = crate::node::leader_partition_ref(
            &self.topics,
            self.cluster.as_ref(),
            topic,
            partition,
        )?;
        if let Some(code) = check_leader_epoch(current_leader_epoch, p.leader_epoch) {
            return Err(code);
        }
        Ok(p.log.end_offset_for_epoch(leader_epoch))
    }
}
