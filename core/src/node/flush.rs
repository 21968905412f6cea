//! Durability: when the node asks for a flush and what a completed flush
//! releases.
//!
//! At most one flush is in flight. Appends made while it is in flight wait
//! for the next one, so flushes batch naturally under load (group commit)
//! and the driver never sees an unbounded queue of sync requests.

use super::io::{FlushId, Output};
use super::{Node, FLUSH_RETRY_BACKOFF};
use crate::storage::{Storage, StorageError};
use crate::time::Instant;

#[derive(Debug)]
struct InFlight {
    id: FlushId,
    /// (topic, partition, log end when the flush was asked for).
    marks: Vec<(String, i32, i64)>,
}

#[derive(Debug, Default)]
pub struct Flusher {
    next_id: FlushId,
    in_flight: Option<InFlight>,
    retry_at: Option<Instant>,
}

impl Flusher {
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }
}

impl<S: Storage> Node<S> {
    pub(super) fn maybe_start_flush(&mut self) {
        if self.flusher.in_flight.is_some() || self.flusher.retry_at.is_some_and(|at| self.now < at)
        {
            return;
        }
        self.flusher.retry_at = None;
        let mut marks = Vec::new();
        let mut paths = Vec::new();
        for topic in self.topics.iter() {
            for (index, p) in topic.partitions.iter().enumerate() {
                if p.log.synced_offset() < p.log.log_end_offset() {
                    marks.push((topic.name.clone(), index as i32, p.log.log_end_offset()));
                    paths.extend(p.log.unsynced_paths());
                }
            }
        }
        if marks.is_empty() {
            return;
        }
        let id = self.flusher.next_id;
        self.flusher.next_id += 1;
        self.flusher.in_flight = Some(InFlight { id, marks });
        self.outputs.push_back(Output::Flush {
            flush_id: id,
            paths,
        });
    }

    pub(super) fn handle_flush_completed(&mut self, flush_id: FlushId) {
        let Some(in_flight) = self.take_in_flight(flush_id) else {
            return;
        };
        for (topic, partition, log_end_offset) in in_flight.marks {
            // The topic may have been deleted while the flush was in flight.
            let Some(p) = self.topics.partition_mut(&topic, partition) else {
                continue;
            };
            if log_end_offset > p.log.log_end_offset() {
                continue; // truncated meanwhile; nothing to mark
            }
            p.log.mark_synced(log_end_offset);
            if self.config.flush_before_ack && p.high_watermark < p.log.synced_offset() {
                p.high_watermark = p.log.synced_offset();
                self.high_watermark_moved = true;
            }
        }
        self.release_produces(None);
    }

    pub(super) fn handle_flush_failed(&mut self, flush_id: FlushId, error: StorageError) {
        let Some(in_flight) = self.take_in_flight(flush_id) else {
            return;
        };
        tracing::error!(flush_id, %error, "flush failed; produces waiting on it get KAFKA_STORAGE_ERROR");
        self.flusher.retry_at = Some(self.now + FLUSH_RETRY_BACKOFF);
        self.release_produces(Some(&in_flight.marks));
    }

    fn take_in_flight(&mut self, flush_id: FlushId) -> Option<InFlight> {
        match &self.flusher.in_flight {
            Some(f) if f.id == flush_id => self.flusher.in_flight.take(),
            _ => {
                tracing::warn!(
                    flush_id,
                    "completion of a flush that is not in flight; ignored"
                );
                None
            }
        }
    }
}
