//! DescribeProducers: the idempotent producers each partition remembers.

use super::super::Node;
use crate::storage::Storage;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse};
use kafka_protocol::ResponseError;

/// Not tracked here (no transactions, no timestamps in the state table).
const UNKNOWN: i64 = -1;

impl<S: Storage> Node<S> {
    pub(crate) fn handle_describe_producers(
        &mut self,
        request: &DescribeProducersRequest,
    ) -> DescribeProducersResponse {
        let mut response = DescribeProducersResponse::default();
        for topic in &request.topics {
            let known = self.topics.get(topic.name.0.as_str());
            let mut result = TopicResponse::default().with_name(topic.name.clone());
            for &index in &topic.partition_indexes {
                let mut answer = PartitionResponse::default().with_partition_index(index);
                let partition = known.and_then(|t| t.partitions().get(&index));
                match partition {
                    Some(p) => {
                        answer.active_producers = p
                            .producers
                            .iter()
                            .map(|s| {
                                ProducerState::default()
                                    .with_producer_id(s.producer_id.into())
                                    .with_producer_epoch(i32::from(s.epoch))
                                    .with_last_sequence(s.last_sequence)
                                    .with_last_timestamp(UNKNOWN)
                                    .with_coordinator_epoch(-1)
                                    .with_current_txn_start_offset(UNKNOWN)
                            })
                            .collect();
                    }
                    None => answer.error_code = ResponseError::UnknownTopicOrPartition.code(),
                }
                result.partitions.push(answer);
            }
            response.topics.push(result);
        }
        response
    }
}
