//! ListOffsets: earliest, latest, and by timestamp.

use super::super::Node;
use super::check_leader_epoch;
use super::produce::log_error_code;
use crate::storage::Storage;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

/// ListOffsets v4 added the leader epoch of the returned offset.
const LEADER_EPOCH_VERSION_MIN: i16 = 4;

const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
const LATEST_TIERED_TIMESTAMP: i64 = -5;

impl<S: Storage> Node<S> {
    pub(crate) fn handle_list_offsets(
        &mut self,
        request: &ListOffsetsRequest,
        version: i16,
    ) -> ListOffsetsResponse {
        let mut response = ListOffsetsResponse::default();
        for topic in &request.topics {
            let mut result = ListOffsetsTopicResponse::default().with_name(topic.name.clone());
            for lp in &topic.partitions {
                let mut pr = ListOffsetsPartitionResponse::default()
                    .with_partition_index(lp.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1)
                    .with_leader_epoch(-1);
                match self.list_offset(
                    topic.name.0.as_str(),
                    lp.partition_index,
                    lp.current_leader_epoch,
                    lp.timestamp,
                ) {
                    Ok((offset, timestamp, epoch)) => {
                        pr.offset = offset;
                        pr.timestamp = timestamp;
                        if version >= LEADER_EPOCH_VERSION_MIN {
                            pr.leader_epoch = epoch;
                        }
                    }
                    Err(code) => pr.error_code = code,
                }
                result.partitions.push(pr);
            }
            response.topics.push(result);
        }
        response
    }

    /// `(offset, timestamp, leader epoch)` for one partition.
    fn list_offset(
        &mut self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
        timestamp: i64,
    ) -> Result<(i64, i64, i32), i16> {
        let p = crate::node::leader_partition(
            &mut self.topics,
            self.cluster.as_ref(),
            topic,
            partition,
        )?;
        if let Some(code) = check_leader_epoch(current_leader_epoch, p.leader_epoch) {
            return Err(code);
        }
        let epoch = p.leader_epoch;
        if timestamp == LATEST_TIMESTAMP && !p.high_watermark_established() {
            // KIP-207: the latest offset is not known yet on a new leader.
            return Err(ResponseError::OffsetNotAvailable.code());
        }
        match timestamp {
            LATEST_TIMESTAMP => Ok((p.high_watermark, -1, epoch)),
            EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
                Ok((p.log.log_start_offset(), -1, epoch))
            }
            // No tiered storage: nothing is tiered.
            LATEST_TIERED_TIMESTAMP => Ok((-1, -1, -1)),
            MAX_TIMESTAMP => match p
                .log
                .max_timestamp_offset(&mut self.storage, p.high_watermark)
                .map_err(|e| log_error_code(&e))?
            {
                Some((offset, ts)) => Ok((offset, ts, epoch)),
                None => Ok((-1, -1, -1)),
            },
            ts if ts >= 0 => match p
                .log
                .offset_for_timestamp(&mut self.storage, ts)
                .map_err(|e| log_error_code(&e))?
            {
                Some((offset, found_ts)) if offset < p.high_watermark => {
                    Ok((offset, found_ts, epoch))
                }
                _ => Ok((-1, -1, -1)),
            },
            _ => Err(ResponseError::InvalidRequest.code()),
        }
    }
}
