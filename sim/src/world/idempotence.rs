//! Idempotent producers (`enable.idempotence=true`), as Kafka's Java
//! client does them: a producer id and epoch from InitProducerId, a
//! sequence per partition that a batch keeps across its retries, and a
//! fresh producer id when the sequences can no longer be trusted (a batch
//! given up on that may or may not have landed, or the broker saying
//! OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID).
//!
//! With idempotence on, INVARIANTS.md's `duplicate` must find nothing,
//! except for the values of a send re-sequenced under a new producer id
//! (Kafka cannot deduplicate across ids either; those are counted).

use super::*;
use crate::history::ProducerGrant;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

const INIT_PRODUCER_ID_API_VERSION: i16 = 4;
/// Between two InitProducerId attempts.
const INIT_BACKOFF_MS: u64 = 100;

const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;

/// Stamps a v2 batch with its producer id, epoch and base sequence and
/// recomputes its CRC.
pub(super) fn stamp_batch(batch: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    batch[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&epoch.to_be_bytes());
    batch[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&base_sequence.to_be_bytes());
    seedlog_core::batch::reseal_crc(batch);
}

/// A producer's idempotence state.
pub(super) struct Idempotence {
    /// (producer id, epoch), once InitProducerId answered.
    pub(super) id: Option<(i64, i16)>,
    /// (broker, correlation id, deadline) of the InitProducerId in flight.
    in_flight: Option<(BrokerId, i32, Instant)>,
    not_before: Instant,
    /// Per partition (index in `tps`): the next sequence.
    next_sequence: Vec<i32>,
    /// The (producer id, epoch, base sequence) each send got when it first
    /// went out under the current id; retries reuse it.
    assigned: BTreeMap<SendId, (i64, i16, i32)>,
    /// Producer ids taken so far (the first, then one per reset).
    pub(super) resets: u32,
}

impl Idempotence {
    pub(super) fn new(tps: usize, now: Instant) -> Idempotence {
        Idempotence {
            id: None,
            in_flight: None,
            not_before: now,
            next_sequence: vec![0; tps],
            assigned: BTreeMap::new(),
            resets: 0,
        }
    }

    /// The sequences can no longer be trusted: take a new producer id.
    fn reset(&mut self, now: Instant) {
        self.id = None;
        self.in_flight = None;
        self.not_before = now;
        self.next_sequence.iter_mut().for_each(|s| *s = 0);
        self.assigned.clear();
        self.resets += 1;
    }

    pub(super) fn next_wake(&self, open: bool, now: Instant) -> Option<Instant> {
        if self.id.is_some() {
            return None;
        }
        match self.in_flight {
            Some((_, _, deadline)) => Some(deadline),
            None => open.then_some(self.not_before.max(now)),
        }
    }

    pub(super) fn connection_lost(&mut self, broker: BrokerId) {
        if self.in_flight.is_some_and(|(b, _, _)| b == broker) {
            self.in_flight = None;
        }
    }
}

impl World {
    fn idempotence(&mut self, client: ClientId) -> Option<&mut Idempotence> {
        match &mut self.clients[client].kind {
            ClientKind::Producer(p) => p.idempotence.as_mut(),
            _ => None,
        }
    }

    /// Asks for a producer id when the producer has none; returns whether
    /// it may produce now.
    pub(super) fn idempotence_tick(&mut self, client: ClientId) -> bool {
        let now = self.now;
        let timeout = Duration::from_millis(self.swarm.request_timeout_ms);
        let Some(idem) = self.idempotence(client) else {
            return true;
        };
        if idem.id.is_some() {
            return true;
        }
        if let Some((broker, _, deadline)) = idem.in_flight {
            if deadline <= now {
                self.client_close(client, broker, "init producer id timeout");
            }
            return false;
        }
        if idem.not_before > now {
            return false;
        }
        // Any open connection will do (Kafka asks the least loaded node).
        let open = self.clients[client]
            .conns
            .iter()
            .find_map(|(b, c)| matches!(c, ClientConn::Open(_)).then_some(*b));
        let Some(broker) = open else {
            self.want_metadata(client);
            return false;
        };
        let conn = self.clients[client].conn(broker).expect("open");
        let corr = self.next_correlation_id(client);
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::InitProducerId as i16)
            .with_request_api_version(INIT_PRODUCER_ID_API_VERSION)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str("seedlog-sim")));
        let body = InitProducerIdRequest::default()
            .with_transaction_timeout_ms(60_000)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
        let idem = self.idempotence(client).expect("checked");
        idem.in_flight = Some((broker, corr, now + timeout));
        self.send_to_node(conn, header, RequestKind::InitProducerId(body));
        false
    }

    pub(super) fn init_producer_id_answered(
        &mut self,
        client: ClientId,
        correlation_id: i32,
        r: InitProducerIdResponse,
    ) {
        let now = self.now;
        let Some(idem) = self.idempotence(client) else {
            panic!("an InitProducerId answer reached a client that did not ask");
        };
        if idem
            .in_flight
            .is_none_or(|(_, corr, _)| corr != correlation_id)
        {
            return;
        }
        idem.in_flight = None;
        if r.error_code == 0 {
            idem.id = Some((r.producer_id.0, r.producer_epoch));
            let at_ms = self.ms();
            self.history.producer_grants.push(ProducerGrant {
                producer: client as u32,
                producer_id: r.producer_id.0,
                producer_epoch: r.producer_epoch,
                at_ms,
            });
        } else {
            // Retriable (COORDINATOR_LOAD_IN_PROGRESS, NOT_CONTROLLER, ...)
            // or not, the producer cannot send without an id: try again.
            idem.not_before = now + Duration::from_millis(INIT_BACKOFF_MS);
        }
    }

    /// Stamps send `id`'s batch for an idempotent producer: its sequence
    /// is fixed the first time it goes out under the current producer id.
    pub(super) fn stamp_send(&mut self, client: ClientId, id: SendId, tp: usize, batch: &mut [u8]) {
        let records = self.history.send(id).values.len() as i32;
        let Some(idem) = self.idempotence(client) else {
            return;
        };
        let (pid, epoch) = idem.id.expect("an idempotent producer sends with an id");
        let (pid, epoch, sequence) = *idem.assigned.entry(id).or_insert_with(|| {
            let sequence = idem.next_sequence[tp];
            idem.next_sequence[tp] = sequence.wrapping_add(records);
            (pid, epoch, sequence)
        });
        stamp_batch(batch, pid, epoch, sequence);
    }

    /// A send is done (acknowledged, failed or given up): forget its
    /// sequence. Given up while it may have landed, the producer's
    /// sequences are no longer known to match the broker's: new id.
    pub(super) fn idempotent_send_done(&mut self, client: ClientId, id: SendId, unknown: bool) {
        let now = self.now;
        let Some(idem) = self.idempotence(client) else {
            return;
        };
        let was_assigned = idem.assigned.remove(&id).is_some();
        if unknown && was_assigned {
            self.reset_producer_id(client, now);
        }
    }

    /// The broker refused the sequence or the id: new id, and every send
    /// that had a sequence under the old one gets a new one (it may land
    /// twice: Kafka cannot deduplicate across producer ids).
    pub(super) fn reset_producer_id(&mut self, client: ClientId, now: Instant) {
        let Some(idem) = self.idempotence(client) else {
            return;
        };
        let resequenced: Vec<SendId> = idem.assigned.keys().copied().collect();
        idem.reset(now);
        for id in resequenced {
            self.history.send_mut(id).resequenced = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seedlog_core::batch::validate_batch;

    #[test]
    fn a_stamped_batch_is_valid_and_carries_its_producer() {
        let mut batch = build_batch(&[(None, Some(b"a")), (None, Some(b"b"))], 0);
        stamp_batch(&mut batch, 7, 2, 40);
        let header = validate_batch(&batch, u32::MAX).expect("valid after stamping");
        assert_eq!(
            (
                header.producer_id(),
                header.producer_epoch(),
                header.base_sequence()
            ),
            (7, 2, 40)
        );
    }
}
