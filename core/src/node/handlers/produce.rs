//! Produce: validate batches as bytes, append, and answer once the data is
//! as durable as the node promises (`flush_before_ack`).

use super::super::producer_state::SequenceCheck;
use super::super::responder::Slot;
use super::super::Node;
use crate::batch::BatchHeader;
use crate::log::LogError;
use crate::storage::{Storage, StorageError};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::ResponseError;

/// A produce answered only once what it wrote is durable.
pub struct PendingProduce {
    pub slot: Slot,
    /// `(topic, partition, end offset)`: acknowledged when every partition's
    /// synced offset reaches its end offset.
    pub waits: Vec<(String, i32, i64)>,
    pub response: ProduceResponse,
}

/// Where an accepted batch landed.
struct Appended {
    base_offset: i64,
    log_start_offset: i64,
    /// The offset after the batch: durable once the log is synced to here.
    end_offset: i64,
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
        let mut waits = Vec::new();
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
                        Ok(appended) => {
                            pr.base_offset = appended.base_offset;
                            pr.log_start_offset = appended.log_start_offset;
                            waits.push((name.to_string(), data.index, appended.end_offset));
                        }
                        Err(code) => pr.error_code = code,
                    }
                }
                topic_response.partition_responses.push(pr);
            }
            response.responses.push(topic_response);
        }
        let Some(slot) = slot else { return };
        let pending = PendingProduce {
            slot,
            waits,
            response,
        };
        if self.config.flush_before_ack && !self.is_durable(&pending) {
            self.pending_produces.push(pending);
        } else {
            let response = pending.response;
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
    ) -> Result<Appended, i16> {
        let now = self.now;
        let flush_before_ack = self.config.flush_before_ack;
        let p = self
            .topics
            .partition_mut(topic, partition)
            .ok_or(ResponseError::UnknownTopicOrPartition.code())?;
        let records = records
            .filter(|r| !r.is_empty())
            .ok_or(ResponseError::InvalidRecord.code())?;
        let header = single_batch_header(records)?;
        if let SequenceCheck::Duplicate {
            first_offset,
            last_offset,
        } = p.producers.check(&header)?
        {
            tracing::debug!(
                topic,
                partition,
                first_offset,
                "duplicate idempotent batch acknowledged again"
            );
            return Ok(Appended {
                base_offset: first_offset,
                log_start_offset: p.log.log_start_offset(),
                end_offset: last_offset + 1,
            });
        }
        match p
            .log
            .append_as_leader(&mut self.storage, records, p.leader_epoch, now)
        {
            Ok(info) => {
                p.producers
                    .record(&header.with_base_offset(info.first_offset));
                if !flush_before_ack {
                    p.high_watermark = p.log.log_end_offset();
                    self.high_watermark_moved = true;
                }
                Ok(Appended {
                    base_offset: info.first_offset,
                    log_start_offset: p.log.log_start_offset(),
                    end_offset: info.last_offset + 1,
                })
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

    /// Whether everything `pending` wrote is synced. A partition deleted
    /// meanwhile holds nothing to wait for.
    fn is_durable(&self, pending: &PendingProduce) -> bool {
        pending.waits.iter().all(|(topic, partition, end_offset)| {
            self.topics
                .get(topic)
                .and_then(|t| t.partitions.get(*partition as usize))
                .is_none_or(|p| p.log.synced_offset() >= *end_offset)
        })
    }

    /// Answers every pending produce that is now durable. With `failed`
    /// (the marks of a failed flush), a produce waiting on one of them is
    /// answered with KAFKA_STORAGE_ERROR on its appended partitions instead.
    pub(crate) fn release_produces(&mut self, failed: Option<&[(String, i32, i64)]>) {
        let pending = std::mem::take(&mut self.pending_produces);
        for mut p in pending {
            let hit_by_failure = failed.is_some_and(|marks| {
                p.waits.iter().any(|(t, i, end)| {
                    marks
                        .iter()
                        .any(|(mt, mi, leo)| mt == t && mi == i && end <= leo)
                })
            });
            if hit_by_failure {
                for pr in p
                    .response
                    .responses
                    .iter_mut()
                    .flat_map(|t| t.partition_responses.iter_mut())
                {
                    if pr.error_code == 0 {
                        pr.error_code = ResponseError::KafkaStorageError.code();
                        pr.base_offset = -1;
                    }
                }
            } else if !self.is_durable(&p) {
                self.pending_produces.push(p);
                continue;
            }
            self.responder
                .complete(p.slot, ResponseKind::Produce(p.response), &mut self.outputs);
        }
    }
}

/// Produce v3 and later carry exactly one batch per partition (Kafka's
/// `ProduceRequest.validateRecords`); idempotence relies on it.
fn single_batch_header(records: &[u8]) -> Result<BatchHeader, i16> {
    let header = BatchHeader::parse(records).map_err(|e| e.kafka_error_code())?;
    if header.batch_length() < 0 || header.total_size() > records.len() {
        return Err(ResponseError::CorruptMessage.code());
    }
    if header.total_size() < records.len() {
        return Err(ResponseError::InvalidRecord.code());
    }
    if header.is_transactional() {
        // No transaction coordinator yet: such batches could never commit.
        return Err(ResponseError::InvalidRecord.code());
    }
    Ok(header)
}
