//! A cluster broker's producer ids (KIP-730, Kafka's `RPCProducerIdManager`):
//! InitProducerId is served from a block the active controller handed out
//! with AllocateProducerIds, after it committed the ProducerIdsRecord that
//! moves the cluster-wide next block start past it. The next block is
//! fetched once 90% of the current one is claimed; while there is none,
//! InitProducerId answers COORDINATOR_LOAD_IN_PROGRESS, which clients
//! retry (Kafka picked it over REQUEST_TIMED_OUT because old clients treat
//! that one as fatal).
//!
//! Blocks live in memory only: a restarted broker asks for a new block and
//! the ids left in its old one are never used, which is what keeps them
//! unique without a local durable mark.

use super::super::Node;
use super::controller_host::ControllerCall;
use crate::storage::Storage;
use crate::time::Instant;
use kafka_protocol::messages::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, RequestKind, ResponseKind,
};
use kafka_protocol::ResponseError;
use std::time::Duration;

/// Kafka's `PID_PREFETCH_THRESHOLD`: claiming the id at this share of the
/// current block asks for the next one.
const PREFETCH_THRESHOLD_PERCENT: i64 = 90;
/// Kafka's `RETRY_BACKOFF_MS` after a refused or lost request.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Producer ids `first .. first + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    first: i64,
    len: i64,
}

impl Block {
    fn end(&self) -> i64 {
        self.first + self.len
    }

    /// The id whose claim asks for the next block.
    fn prefetch_at(&self) -> i64 {
        self.first + self.len * PREFETCH_THRESHOLD_PERCENT / 100
    }
}

#[derive(Debug)]
pub struct ProducerIdBlocks {
    /// The block ids are claimed from; `None` before the first arrives.
    current: Option<Block>,
    /// The next id of `current` to claim.
    next_id: i64,
    /// The block fetched ahead, taken when `current` runs out.
    next_block: Option<Block>,
    /// An AllocateProducerIds is out.
    in_flight: bool,
    /// A next block is needed: the prefetch point was passed or a claim
    /// found no id.
    wanted: bool,
    /// No request before this (backoff after a failure).
    not_before: Instant,
    /// Blocks received, for tests.
    blocks_received: u64,
}

/// Whether a claim found an id; the error Kafka answers when it did not.
pub const NO_BLOCK_ERROR: ResponseError = ResponseError::CoordinatorLoadInProgress;

impl ProducerIdBlocks {
    pub fn new(now: Instant) -> ProducerIdBlocks {
        ProducerIdBlocks {
            current: None,
            next_id: 0,
            next_block: None,
            in_flight: false,
            wanted: false,
            not_before: now,
            blocks_received: 0,
        }
    }

    /// The next producer id, or `None` while no block holds one (a next
    /// block is then asked for).
    pub fn claim(&mut self) -> Option<i64> {
        // Bounded: a fresh block always holds an id (len > 0 is checked
        // when it arrives), so the second round claims or returns.
        for _ in 0..2 {
            if let Some(block) = self.current.filter(|b| self.next_id < b.end()) {
                let id = self.next_id;
                self.next_id += 1;
                if id == block.prefetch_at() {
                    self.wanted = true;
                }
                return Some(id);
            }
            let block = match self.next_block.take() {
                Some(block) => block,
                None => {
                    self.wanted = true;
                    return None;
                }
            };
            self.current = Some(block);
            self.next_id = block.first;
        }
        unreachable!("a fresh block holds an id")
    }

    /// Whether to send AllocateProducerIds now; marks it in flight if so.
    pub fn take_request_due(&mut self, now: Instant) -> bool {
        if !self.request_wanted() || now < self.not_before {
            return false;
        }
        self.in_flight = true;
        true
    }

    fn request_wanted(&self) -> bool {
        self.wanted && !self.in_flight && self.next_block.is_none()
    }

    /// The controller's answer; `None` when the request was lost or could
    /// not be sent.
    pub fn handle_answer(&mut self, now: Instant, answer: Option<&AllocateProducerIdsResponse>) {
        self.in_flight = false;
        match answer {
            Some(r) if r.error_code == 0 => {
                let block = Block {
                    first: r.producer_id_start.0,
                    len: i64::from(r.producer_id_len),
                };
                // Kafka's sanity checks: a block is never below the one in
                // use and its ids fit i64.
                let below_current = self.current.is_some_and(|c| block.first < c.end());
                let invalid = block.first < 0
                    || block.len <= 0
                    || block.first.checked_add(block.len).is_none();
                if below_current || invalid {
                    tracing::error!(
                        first = block.first,
                        len = block.len,
                        current = ?self.current,
                        "producer id block refused: not after the current one, or invalid"
                    );
                    self.not_before = now + RETRY_BACKOFF;
                    return;
                }
                tracing::debug!(
                    first = block.first,
                    len = block.len,
                    "producer id block received"
                );
                self.next_block = Some(block);
                self.wanted = false;
                self.blocks_received += 1;
            }
            other => {
                let code = other.map(|r| r.error_code);
                tracing::debug!(?code, "no producer id block; retrying after a backoff");
                self.not_before = now + RETRY_BACKOFF;
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.request_wanted().then_some(self.not_before)
    }

    #[cfg(test)]
    pub fn blocks_received(&self) -> u64 {
        self.blocks_received
    }

    pub fn check_invariants(&self) {
        if let Some(current) = self.current {
            assert!(
                self.next_id >= current.first && self.next_id <= current.end(),
                "the next id {} lies in the current block {current:?}",
                self.next_id
            );
            assert!(
                self.next_block
                    .is_none_or(|next| next.first >= current.end()),
                "the next block {:?} follows the current one {current:?}",
                self.next_block
            );
        }
        assert!(
            !(self.in_flight && self.next_block.is_some()),
            "no request while a block waits"
        );
    }
}

impl<S: Storage> Node<S> {
    /// Sends AllocateProducerIds when a block is wanted, the broker is
    /// registered (the request names its epoch) and no backoff runs.
    pub(in crate::node) fn drive_producer_ids(&mut self) {
        let now = self.now;
        let Some(epoch) = self.cluster().broker.epoch() else {
            return;
        };
        if !self.cluster_mut().producer_ids.take_request_due(now) {
            return;
        }
        let request = AllocateProducerIdsRequest::default()
            .with_broker_id(self.config.node_id.into())
            .with_broker_epoch(epoch);
        let call = ControllerCall::AllocateProducerIds;
        if !self.send_to_controller(call, RequestKind::AllocateProducerIds(request)) {
            self.cluster_mut().producer_ids.handle_answer(now, None);
        }
    }

    pub(in crate::node) fn handle_allocate_producer_ids_answer(
        &mut self,
        answer: Option<ResponseKind>,
    ) {
        let now = self.now;
        let response = match answer {
            Some(ResponseKind::AllocateProducerIds(r)) => Some(r),
            Some(other) => panic!("AllocateProducerIds answered with {other:?}"),
            None => None,
        };
        self.cluster_mut()
            .producer_ids
            .handle_answer(now, response.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ProducerId;

    fn granted(first: i64, len: i32) -> AllocateProducerIdsResponse {
        AllocateProducerIdsResponse::default()
            .with_producer_id_start(ProducerId(first))
            .with_producer_id_len(len)
    }

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn no_id_before_the_first_block_and_one_request_for_it() {
        let mut blocks = ProducerIdBlocks::new(at(0));
        assert!(!blocks.take_request_due(at(0)), "nothing wanted yet");
        assert_eq!(blocks.claim(), None);
        assert_eq!(blocks.claim(), None);
        assert!(blocks.take_request_due(at(0)));
        assert!(!blocks.take_request_due(at(0)), "one request in flight");
        assert_eq!(blocks.claim(), None, "still waiting");
        blocks.handle_answer(at(5), Some(&granted(3000, 1000)));
        assert_eq!(blocks.claim(), Some(3000));
        assert_eq!(blocks.claim(), Some(3001));
        assert!(!blocks.take_request_due(at(5)), "the block is fresh");
        blocks.check_invariants();
    }

    #[test]
    fn the_next_block_is_fetched_at_ninety_percent_and_taken_without_a_gap() {
        let mut blocks = ProducerIdBlocks::new(at(0));
        assert_eq!(blocks.claim(), None);
        assert!(blocks.take_request_due(at(0)));
        blocks.handle_answer(at(1), Some(&granted(0, 10)));
        for id in 0..10 {
            assert_eq!(blocks.claim(), Some(id));
            // Id 9 is the 90% mark of a block of 10.
            let due = blocks.take_request_due(at(1));
            assert_eq!(due, id == 9, "prefetch exactly at the 90% id ({id})");
        }
        blocks.handle_answer(at(2), Some(&granted(10, 10)));
        assert_eq!(blocks.claim(), Some(10), "the prefetched block follows");
        assert_eq!(blocks.blocks_received(), 2);
        blocks.check_invariants();
    }

    #[test]
    fn claims_fail_when_the_block_runs_out_before_the_next_arrives() {
        let mut blocks = ProducerIdBlocks::new(at(0));
        blocks.claim();
        assert!(blocks.take_request_due(at(0)));
        blocks.handle_answer(at(0), Some(&granted(0, 10)));
        for id in 0..10 {
            assert_eq!(blocks.claim(), Some(id));
        }
        assert!(blocks.take_request_due(at(0)), "the prefetch went out");
        assert_eq!(blocks.claim(), None, "exhausted, the prefetch not back");
        blocks.handle_answer(at(1), Some(&granted(20, 10)));
        assert_eq!(blocks.claim(), Some(20));
    }

    #[test]
    fn refusals_and_losses_back_off_then_ask_again() {
        let mut blocks = ProducerIdBlocks::new(at(0));
        blocks.claim();
        assert!(blocks.take_request_due(at(0)));
        let stale = AllocateProducerIdsResponse::default()
            .with_error_code(ResponseError::StaleBrokerEpoch.code());
        blocks.handle_answer(at(10), Some(&stale));
        assert_eq!(blocks.next_deadline(), Some(at(60)));
        assert!(!blocks.take_request_due(at(59)), "backing off");
        assert!(blocks.take_request_due(at(60)));
        blocks.handle_answer(at(70), None);
        assert!(blocks.take_request_due(at(120)));
        blocks.handle_answer(at(121), Some(&granted(0, 1000)));
        assert_eq!(blocks.next_deadline(), None);
        assert_eq!(blocks.claim(), Some(0));
    }

    #[test]
    fn a_block_below_the_current_one_is_refused() {
        let mut blocks = ProducerIdBlocks::new(at(0));
        blocks.claim();
        blocks.take_request_due(at(0));
        blocks.handle_answer(at(0), Some(&granted(1000, 10)));
        for _ in 0..10 {
            blocks.claim();
        }
        assert!(blocks.take_request_due(at(0)));
        blocks.handle_answer(at(1), Some(&granted(1005, 10)));
        assert_eq!(blocks.claim(), None, "an overlapping block is not used");
        assert!(
            blocks.take_request_due(at(51)),
            "asked again after the backoff"
        );
        blocks.handle_answer(at(51), Some(&granted(-1, 10)));
        assert_eq!(blocks.claim(), None, "nor an invalid one");
        assert!(blocks.take_request_due(at(101)));
        blocks.handle_answer(at(101), Some(&granted(2000, 10)));
        assert_eq!(blocks.claim(), Some(2000));
        blocks.check_invariants();
    }
}
