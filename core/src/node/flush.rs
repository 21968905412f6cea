//! Durability: when the node asks for a flush and what a completed flush
//! releases.
//!
//! At most one flush is in flight. Appends made while it is in flight wait
//! for the next one, so flushes batch naturally under load (group commit)
//! and the driver never sees an unbounded queue of sync requests.

use super::cluster::broker::{leader_end_offset, sync_high_watermark};
use super::io::{FlushId, Output};
use super::topics::{Replica, TouchReader};
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
    /// Reused by `maybe_start_flush`.
    touched_buf: Vec<i32>,
}

impl Flusher {
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// An id for a flush the node runs outside this flusher (the metadata
    /// log's), unique among all flushes.
    pub fn allocate_id(&mut self) -> FlushId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// A partition was cut back to `log_end_offset` while a flush may be in
    /// flight: the bytes beyond are not the ones that flush syncs, so its
    /// mark must not claim them once the log grows back.
    pub fn note_truncation(&mut self, topic: &str, partition: i32, log_end_offset: i64) {
        if let Some(in_flight) = &mut self.in_flight {
            for (t, p, mark) in &mut in_flight.marks {
                if t == topic && *p == partition && *mark > log_end_offset {
                    *mark = log_end_offset;
                }
            }
        }
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
        // Only partitions touched since the last flush began can hold
        // unsynced appends: an append touches, those of the last flush were
        // touched when it completed, and a failed one touches them again.
        // (A node of a large cluster hosts hundreds, and this runs after
        // every input.)
        let everything = self.topics.take_all_touched(TouchReader::Flusher);
        let mut listed = std::mem::take(&mut self.flusher.touched_buf);
        for topic in self.topics.iter_mut() {
            topic.take_touched_sorted(TouchReader::Flusher, everything, &mut listed);
            for &index in &listed {
                let Some(p) = topic.partition(index) else {
                    continue; // removed since
                };
                if p.log.synced_offset() < p.log.log_end_offset() {
                    marks.push((topic.name.clone(), index, p.log.log_end_offset()));
                    paths.extend(p.log.unsynced_paths());
                }
            }
        }
        listed.clear();
        self.flusher.touched_buf = listed;
        debug_assert!(
            self.topics
                .iter()
                .all(|t| t.partitions().iter().all(|(i, p)| {
                    p.log.synced_offset() >= p.log.log_end_offset()
                        || marks.iter().any(|(name, x, _)| *name == t.name && x == i)
                })),
            "an unsynced partition the flusher did not look at"
        );
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
        if self
            .cluster
            .as_ref()
            .is_some_and(|c| c.raft.owns_flush(flush_id))
        {
            self.handle_raft_flush_completed(flush_id);
            return;
        }
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
            let flush_before_ack = self.config.flush_before_ack;
            match &mut p.replica {
                Replica::Standalone => {
                    if flush_before_ack && p.high_watermark < p.log.synced_offset() {
                        p.high_watermark = p.log.synced_offset();
                        self.high_watermark_moved = true;
                    }
                }
                Replica::Leader(leader) => {
                    leader.handle_leader_end_offset(leader_end_offset(&p.log, flush_before_ack));
                    self.high_watermark_moved |= sync_high_watermark(p, flush_before_ack);
                }
                Replica::Follower(_) | Replica::Offline => {
                    sync_high_watermark(p, flush_before_ack);
                }
            }
        }
        if let Some(cluster) = self.cluster.as_mut() {
            // A follower fetches again once what it appended is synced
            // (its next fetch reports the sync), and streams afresh.
            cluster.fetcher.sync_done();
        }
        self.release_produces(None);
    }

    pub(super) fn handle_flush_failed(&mut self, flush_id: FlushId, error: StorageError) {
        if self
            .cluster
            .as_ref()
            .is_some_and(|c| c.raft.owns_flush(flush_id))
        {
            self.handle_raft_flush_failed(flush_id);
            return;
        }
        let Some(in_flight) = self.take_in_flight(flush_id) else {
            return;
        };
        tracing::error!(flush_id, %error, "flush failed; produces waiting on it get KAFKA_STORAGE_ERROR");
        // Still unsynced: the next flush must look at them again.
        for (topic, partition, _) in &in_flight.marks {
            self.topics.touch(topic, *partition);
        }
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
