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

/// An InitProducerId answer an idempotent producer took: one live
/// (producer id, epoch) from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProducerGrant {
    pub producer: u32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub at_ms: u64,
}

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
    /// The sends not forgotten (see `forget_below`), by id.
    sends: BTreeMap<SendId, SendOp>,
    /// The id the next send gets: every id below it was handed out.
    next_send: SendId,
    pub consumer_events: Vec<ConsumerEvent>,
    /// Acknowledged sends in the order the acks arrived (milliseconds are
    /// too coarse to order two acks of one millisecond).
    pub ack_order: Vec<SendId>,
    /// Per partition: what sits below this offset was deleted by
    /// retention from every replica, and the history forgot it (reads and
    /// acknowledged sends there); the end-of-run checks judge nothing
    /// below it. Absent: nothing forgotten.
    pub forgotten_below: BTreeMap<Tp, i64>,
    /// Sends and reads forgotten so far.
    pub forgotten_sends: u64,
    pub forgotten_reads: u64,
    /// Every producer id and epoch a producer took, in the order taken
    /// (one per InitProducerId; never forgotten, a few per producer).
    pub producer_grants: Vec<ProducerGrant>,
}

/// The send id a value names (`c<client>-s<id>-r<i>`), if it is one.
fn named_send(value: &[u8]) -> Option<SendId> {
    let text = std::str::from_utf8(value).ok()?;
    text.split('-').nth(1)?.strip_prefix('s')?.parse().ok()
}

impl History {
    pub fn send(&self, id: SendId) -> &SendOp {
        self.sends
            .get(&id)
            .unwrap_or_else(|| panic!("send {id} is unknown or forgotten"))
    }

    pub fn send_mut(&mut self, id: SendId) -> &mut SendOp {
        self.sends
            .get_mut(&id)
            .unwrap_or_else(|| panic!("send {id} is unknown or forgotten"))
    }

    /// The sends not forgotten, in id order.
    pub fn sends(&self) -> impl Iterator<Item = &SendOp> {
        self.sends.values()
    }

    pub fn next_send_id(&self) -> SendId {
        self.next_send
    }

    /// Records a new send; its id must be `next_send_id`, and its values
    /// name it (`c<client>-s<id>-r<i>`, see `new_send`): `owner_of` finds
    /// a value's send from the value itself. (A map from every value to
    /// its send cost a clone and a byte-keyed insert per record, 2% of a
    /// cluster run.)
    pub fn add_send(&mut self, op: SendOp) {
        assert_eq!(op.id, self.next_send, "sends are added in id order");
        debug_assert!(
            op.values.iter().all(|v| named_send(v) == Some(op.id)),
            "a send's values name it"
        );
        self.next_send += 1;
        self.sends.insert(op.id, op);
    }

    /// The send a value belongs to: the send the value names, if that send
    /// holds the value, or, for a send the history forgot, as long as that
    /// id was handed out and forgotten.
    pub fn owner_of(&self, value: &[u8]) -> Option<SendId> {
        let id = named_send(value)?;
        match self.sends.get(&id) {
            // Bounded by `records_per_send_max`.
            Some(op) => op.values.iter().any(|v| v == value).then_some(id),
            None => (id < self.next_send).then_some(id),
        }
    }

    /// The lowest offset of `tp` the end-of-run checks judge.
    pub fn judged_from(&self, tp: &Tp) -> i64 {
        self.forgotten_below.get(tp).copied().unwrap_or(0)
    }

    /// Retention deleted everything of `tp` below `floor` from every
    /// replica: forget the reads there and (unless `keep_sends`) the
    /// acknowledged sends wholly below it. The checkers that need them
    /// ran as they happened (`consistent_read`, `nonmonotonic_poll`,
    /// `poll_skip`, `nonmonotonic_send` without idempotence); the final
    /// log cannot judge them any more. Bounded by the history's size.
    pub fn forget_below(&mut self, tp: &Tp, floor: i64, keep_sends: bool) {
        if floor <= self.judged_from(tp) {
            return;
        }
        self.forgotten_below.insert(tp.clone(), floor);
        let before = self.consumer_events.len();
        self.consumer_events.retain(|e| match e {
            ConsumerEvent::Read { tp: t, offset, .. } => t != tp || *offset >= floor,
            // Seeks only matter to the per-event poll checks.
            ConsumerEvent::Seek { tp: t, .. } => t != tp,
        });
        self.forgotten_reads += (before - self.consumer_events.len()) as u64;
        if keep_sends {
            return;
        }
        let gone: Vec<SendId> = self
            .sends
            .values()
            .filter(|s| s.topic == tp.0 && s.partition == tp.1)
            .filter(|s| match s.outcome {
                SendOutcome::Acked { offset } => offset + (s.values.len() as i64) <= floor,
                _ => false,
            })
            .map(|s| s.id)
            .collect();
        if gone.is_empty() {
            return;
        }
        for id in &gone {
            self.sends.remove(id).expect("listed");
        }
        let gone: std::collections::BTreeSet<SendId> = gone.into_iter().collect();
        self.ack_order.retain(|id| !gone.contains(id));
        self.forgotten_sends += gone.len() as u64;
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
