//! Produce: validate batches as bytes, append, and answer once the data is
//! as durable as the node promises (`flush_before_ack`).

use super::super::io::FlushId;
use super::super::responder::Slot;
use super::super::Node;
use crate::log::LogError;
use crate::storage::{Storage, StorageError};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::ResponseError;

/// A produce answered only after a flush completes.
pub struct PendingProduce {
    pub slot: Slot,
    pub flush_id: FlushId,
    pub response: ProduceResponse,
}

pub(crate) fn log_error_code(error: &LogError) -> i16 {
    match error {
        LogError::Batch(e) => e.kafka_error_code(),
        LogError::Storage(_) => ResponseError::KafkaStorageError.code(),
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
    }
}

impl<S: Storage> Node<S> {
    pub(crate) fn handle_produce(
        &mut self,
        slot: Option<Slot>,
        request: ProduceRequest,
        _version: i16,
    ) {
        let acks_valid = matches!(request.acks, -1..=1);
        let mut appended_any = false;
        let mut response = ProduceResponse::default();
        for topic_data in &request.topic_data {
            let name = topic_data.name.0.as_str();
            let mut topic_response =
                TopicProduceResponse::default().with_name(topic_data.name.clone());
            for data in &topic_data.partition_data {
                let mut pr = PartitionProduceResponse::default()
                    .with_index(data.index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1);
                if !acks_valid {
                    pr.error_code = ResponseError::InvalidRequiredAcks.code();
                } else {
                    match self.append(name, data.index, data.records.as_deref()) {
                        Ok((base_offset, log_start_offset)) => {
                            appended_any = true;
                            pr.base_offset = base_offset;
                            pr.log_start_offset = log_start_offset;
                        }
                        Err(code) => pr.error_code = code,
                    }
                }
                topic_response.partition_responses.push(pr);
            }
            response.responses.push(topic_response);
        }
        let Some(slot) = slot else { return };
        if appended_any && self.config.flush_before_ack {
            let flush_id = self.flusher.covering_id();
            self.pending_produces.push(PendingProduce {
                slot,
                flush_id,
                response,
            });
        } else {
            self.responder
                .complete(slot, ResponseKind::Produce(response), &mut self.outputs);
        }
    }

    /// Appends to one partition: `(base offset, log start offset)` or a
    /// Kafka error code.
    fn append(
        &mut self,
        topic: &str,
        partition: i32,
        records: Option<&[u8]>,
    ) -> Result<(i64, i64), i16> {
        let now = self.now;
        let flush_before_ack = self.config.flush_before_ack;
        let p = self
            .topics
            .partition_mut(topic, partition)
            .ok_or(ResponseError::UnknownTopicOrPartition.code())?;
        let records = records
            .filter(|r| !r.is_empty())
            .ok_or(ResponseError::InvalidRecord.code())?;
        match p
            .log
            .append_as_leader(&mut self.storage, records, p.leader_epoch, now)
        {
            Ok(info) => {
                if !flush_before_ack {
                    p.high_watermark = p.log.log_end_offset();
                    self.high_watermark_moved = true;
                }
                Ok((info.first_offset, p.log.log_start_offset()))
            }
            Err(e) => {
                if matches!(e, LogError::Storage(StorageError::NoSpace(_))) {
                    tracing::error!(
                        topic,
                        partition,
                        "disk full: produce rejected with KAFKA_STORAGE_ERROR"
                    );
                } else {
                    tracing::debug!(topic, partition, error = %e, "produce rejected");
                }
                Err(log_error_code(&e))
            }
        }
    }

    /// Answers every produce covered by `flush_id`; with `error`, its
    /// appended partitions report that error instead of success.
    pub(crate) fn release_produces(&mut self, flush_id: FlushId, error: Option<i16>) {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_produces)
            .into_iter()
            .partition(|p| p.flush_id <= flush_id);
        self.pending_produces = waiting;
        for mut pending in ready {
            if let Some(code) = error {
                for pr in pending
                    .response
                    .responses
                    .iter_mut()
                    .flat_map(|t| t.partition_responses.iter_mut())
                {
                    if pr.error_code == 0 {
                        pr.error_code = code;
                        pr.base_offset = -1;
                    }
                }
            }
            self.responder.complete(
                pending.slot,
                ResponseKind::Produce(pending.response),
                &mut self.outputs,
            );
        }
    }
}
