//! What clients did and saw: the record the end-of-run checkers judge.

use serde::Serialize;
use std::collections::BTreeMap;

pub type SendId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendOutcome {
    Pending,
    /// Acknowledged at this base offset (acks 1 or all).
    Acked {
        offset: i64,
    },
    /// acks=0: written to the socket, no answer expected.
    Unacked,
    /// Definitely rejected (non-retriable error, or never sent anywhere).
    Failed {
        error_code: i16,
    },
    /// Gave up without knowing whether the broker appended it.
    Indeterminate,
}

#[derive(Debug, Clone, Serialize)]
pub struct SendOp {
    pub id: SendId,
    pub producer: u32,
    pub topic: String,
    pub partition: i32,
    pub acks: i16,
    pub values: Vec<Vec<u8>>,
    pub invoke_ms: u64,
    pub complete_ms: Option<u64>,
    pub outcome: SendOutcome,
    /// Some attempt may have reached the broker (a broken connection or a
    /// storage error after the append), so the values may be in the log.
    pub maybe_appended: bool,
    pub attempts: u32,
    /// An idempotent producer took a new producer id while this send had a
    /// sequence under the old one: it may land twice.
    pub resequenced: bool,
}

/// (topic, partition)
pub type Tp = (String, i32);

#[derive(Debug, Clone, Serialize)]
pub enum ConsumerEvent {
    Read {
        consumer: u32,
        tp: Tp,
        offset: i64,
        value: Vec<u8>,
        at_ms: u64,
    },
    /// The consumer moved its position without reading (offset reset).
    Seek {
        consumer: u32,
        tp: Tp,
        offset: i64,
        at_ms: u64,
    },
}

#[derive(Debug, Default)]
pub struct History {
    pub sends: Vec<SendOp>,
    pub consumer_events: Vec<ConsumerEvent>,
    /// Every value, to its send.
    pub value_owner: BTreeMap<Vec<u8>, SendId>,
    /// Acknowledged sends in the order the acks arrived (milliseconds are
    /// too coarse to order two acks of one millisecond).
    pub ack_order: Vec<SendId>,
}

impl History {
    pub fn send(&self, id: SendId) -> &SendOp {
        &self.sends[id as usize]
    }

    pub fn send_mut(&mut self, id: SendId) -> &mut SendOp {
        &mut self.sends[id as usize]
    }

    pub fn complete(&mut self, id: SendId, outcome: SendOutcome, at_ms: u64) {
        let op = self.send_mut(id);
        assert_eq!(
            op.outcome,
            SendOutcome::Pending,
            "send {id} completed twice ({outcome:?})"
        );
        assert!(
            outcome != SendOutcome::Pending,
            "complete with a real outcome"
        );
        op.outcome = outcome;
        op.complete_ms = Some(at_ms);
        if matches!(outcome, SendOutcome::Acked { .. }) {
            self.ack_order.push(id);
        }
    }
}
