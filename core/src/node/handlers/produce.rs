//! Produce: validate batches as bytes, append, and answer once the data is
//! as durable as the node promises (`flush_before_ack`).

use super::super::producer_state::SequenceCheck;
use super::super::responder::Slot;
use super::super::topics::{after_leader_append, Replica};
use super::super::Node;
use crate::batch::BatchHeader;
use crate::log::LogError;
use crate::storage::{Storage, StorageError};
use crate::time::Instant;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::ResponseError;
use std::time::Duration;

/// A produce answered only once what it wrote is as safe as `acks` asks.
pub struct PendingProduce {
    pub slot: Slot,
    pub acks: i16,
    /// One per appended partition, until it settles.
    pub waits: Vec<Wait>,
    pub response: ProduceResponse,
    /// Kafka's `timeout_ms`: partitions not settled by then get
    /// REQUEST_TIMED_OUT.
    pub deadline: Instant,
}

/// An appended batch waiting to be acknowledged.
pub struct Wait {
    pub topic: String,
    pub partition: i32,
    /// Durable (acks=1) or replicated (acks=all) once this offset is.
    pub end_offset: i64,
    /// Where its answer sits in the response: (topic, partition) indexes.
    at: (usize, usize),
}

/// Where one wait stands.
enum Settled {
    Waiting,
    Done,
    Failed(i16),
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
        for (topic_index, topic_data) in request.topic_data.iter().enumerate() {
            let name = topic_data.name.0.as_str();
            let mut topic_response =
                TopicProduceResponse::default().with_name(topic_data.name.clone());
            for (partition_index, data) in topic_data.partition_data.iter().enumerate() {
                let mut pr = PartitionProduceResponse::default()
                    .with_index(data.index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1);
                if !acks_valid {
                    pr.error_code = ResponseError::InvalidRequiredAcks.code();
                } else {
                    match self.append(name, data.index, request.acks, data.records.as_deref()) {
                        Ok(appended) => {
                            pr.base_offset = appended.base_offset;
                            pr.log_start_offset = appended.log_start_offset;
                            waits.push(Wait {
                                topic: name.to_string(),
                                partition: data.index,
                                end_offset: appended.end_offset,
                                at: (topic_index, partition_index),
                            });
                        }
                        Err(code) => pr.error_code = code,
                    }
                }
                topic_response.partition_responses.push(pr);
            }
            response.responses.push(topic_response);
        }
        let Some(slot) = slot else { return };
        let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
        let mut pending = PendingProduce {
            slot,
            acks: request.acks,
            waits,
            response,
            deadline: self.now + timeout,
        };
        if self.settle(&mut pending) {
            self.responder.complete(
                slot,
                ResponseKind::Produce(pending.response),
                &mut self.outputs,
            );
        } else {
            self.pending_produces.push(pending);
        }
    }

    /// Appends to one partition: `(base offset, log start offset)` or a
    /// Kafka error code.
    fn append(
        &mut self,
        topic: &str,
        partition: i32,
        acks: i16,
        records: Option<&[u8]>,
    ) -> Result<Appended, i16> {
        let now = self.now;
        let flush_before_ack = self.config.flush_before_ack;
        let p = crate::node::leader_partition(
            &mut self.topics,
            self.cluster.as_ref(),
            topic,
            partition,
        )?;
        if let Replica::Leader(leader) = &p.replica {
            if acks == -1 && !leader.enough_replicas() {
                return Err(ResponseError::NotEnoughReplicas.code());
            }
        }
        let records = records
            .filter(|r| !r.is_empty())
            .ok_or(ResponseError::InvalidRecord.code())?;
        let header = single_batch_header(records)?;
        let batch_count = p.log.validate_produced(records).map_err(|e| {
            tracing::debug!(topic, partition, error = %e, "produce rejected");
            log_error_code(&e)
        })?;
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
        match p.log.append_validated_as_leader(
            &mut self.storage,
            records,
            batch_count,
            p.leader_epoch,
            now,
        ) {
            Ok(info) => {
                p.producers
                    .record(&header.with_base_offset(info.first_offset));
                self.high_watermark_moved |= after_leader_append(p, flush_before_ack);
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

    /// Settles what can be settled; returns whether every wait is.
    fn settle(&self, pending: &mut PendingProduce) -> bool {
        let acks = pending.acks;
        let response = &mut pending.response;
        pending.waits.retain(|wait| {
            match self.wait_state(wait, acks) {
                Settled::Waiting => return true,
                Settled::Done => {}
                Settled::Failed(code) => {
                    let pr = &mut response.responses[wait.at.0].partition_responses[wait.at.1];
                    pr.error_code = code;
                    pr.base_offset = -1;
                }
            }
            false
        });
        pending.waits.is_empty()
    }

    fn wait_state(&self, wait: &Wait, acks: i16) -> Settled {
        let Some(p) = self
            .topics
            .get(&wait.topic)
            .and_then(|t| t.partitions().get(&wait.partition))
        else {
            // Deleted meanwhile: nothing left to wait for.
            return Settled::Done;
        };
        let synced = !self.config.flush_before_ack || p.log.synced_offset() >= wait.end_offset;
        match &p.replica {
            Replica::Standalone if synced => Settled::Done,
            Replica::Standalone => Settled::Waiting,
            Replica::Leader(_) if acks != -1 && synced => Settled::Done,
            Replica::Leader(leader) if acks == -1 => {
                match leader.acks_all_complete(wait.end_offset) {
                    None => Settled::Waiting,
                    Some(Ok(())) => Settled::Done,
                    Some(Err(code)) => Settled::Failed(code),
                }
            }
            Replica::Leader(_) => Settled::Waiting,
            Replica::Follower(_) | Replica::Offline => {
                Settled::Failed(ResponseError::NotLeaderOrFollower.code())
            }
        }
    }

    /// Answers produces whose `timeout_ms` passed; the partitions not yet
    /// settled get REQUEST_TIMED_OUT.
    pub(crate) fn expire_produces(&mut self) {
        let now = self.now;
        let pending = std::mem::take(&mut self.pending_produces);
        for mut p in pending {
            if p.deadline > now {
                self.pending_produces.push(p);
                continue;
            }
            for wait in std::mem::take(&mut p.waits) {
                let pr = &mut p.response.responses[wait.at.0].partition_responses[wait.at.1];
                pr.error_code = ResponseError::RequestTimedOut.code();
            }
            self.responder
                .complete(p.slot, ResponseKind::Produce(p.response), &mut self.outputs);
        }
    }

    pub(crate) fn produce_deadline(&self) -> Option<Instant> {
        self.pending_produces.iter().map(|p| p.deadline).min()
    }

    /// Answers every pending produce that is now durable. With `failed`
    /// (the marks of a failed flush), a produce waiting on one of them is
    /// answered with KAFKA_STORAGE_ERROR on its appended partitions instead.
    pub(crate) fn release_produces(&mut self, failed: Option<&[(String, i32, i64)]>) {
        if self.pending_produces.is_empty() {
            return;
        }
        // The lists trade places rather than being rebuilt (this runs after
        // every input of a cluster node); order is kept.
        std::mem::swap(&mut self.pending_produces, &mut self.pending_produces_spare);
        debug_assert!(self.pending_produces.is_empty(), "the spare list is empty");
        let mut pending = std::mem::take(&mut self.pending_produces_spare);
        for mut p in pending.drain(..) {
            let hit_by_failure = failed.is_some_and(|marks| {
                p.waits.iter().any(|w| {
                    marks.iter().any(|(mt, mi, leo)| {
                        *mt == w.topic && *mi == w.partition && w.end_offset <= *leo
                    })
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
            } else if !self.settle(&mut p) {
                self.pending_produces.push(p);
                continue;
            }
            self.responder
                .complete(p.slot, ResponseKind::Produce(p.response), &mut self.outputs);
        }
        self.pending_produces_spare = pending;
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
