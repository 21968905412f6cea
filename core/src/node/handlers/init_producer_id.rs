//! InitProducerId for idempotent producers (no transactions yet).

use super::super::Node;
use crate::storage::Storage;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use kafka_protocol::ResponseError;

/// A node's own producer ids fit below this bit; its node id sits above.
const CLUSTER_PRODUCER_ID_SHIFT: u32 = 40;

impl<S: Storage> Node<S> {
    pub(crate) fn handle_init_producer_id(
        &mut self,
        request: &InitProducerIdRequest,
    ) -> InitProducerIdResponse {
        let mut response = InitProducerIdResponse::default()
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
        if request
            .transactional_id
            .as_ref()
            .is_some_and(|id| !id.0.is_empty())
        {
            // Transactions need a transaction coordinator, which does not
            // exist yet; refuse plainly rather than half-work.
            response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            tracing::warn!("InitProducerId with a transactional id refused: transactions are not supported yet");
            return response;
        }
        // As Kafka does for idempotent producers: always a fresh id at epoch
        // 0, also when the client asks to bump (KIP-360).
        match self.producer_ids.allocate(&mut self.storage) {
            Ok(id) => {
                // In a cluster every broker hands out ids: the node id in the
                // high bits keeps them unique cluster-wide without a round
                // trip to the controller (Kafka's AllocateProducerIds blocks
                // are not wired yet).
                let id = match self.config.cluster {
                    Some(_) => (i64::from(self.config.node_id) << CLUSTER_PRODUCER_ID_SHIFT) | id,
                    None => id,
                };
                response.producer_id = id.into();
                response.producer_epoch = 0;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot persist the producer id block");
                response.error_code = ResponseError::KafkaStorageError.code();
            }
        }
        response
    }
}
