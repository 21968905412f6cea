//! InitProducerId for idempotent producers (no transactions yet): a
//! standalone broker hands out ids from its own durable counter, a
//! cluster broker from blocks the controller allocates.

use super::super::Node;
use crate::storage::Storage;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use kafka_protocol::ResponseError;

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
        if let Some(cluster) = self.cluster.as_mut() {
            // A cluster's ids come in blocks from the controller (KIP-730);
            // without one the client retries, and the next block is on
            // its way (`drive_producer_ids`).
            match cluster.producer_ids.claim() {
                Some(id) => {
                    response.producer_id = id.into();
                    response.producer_epoch = 0;
                }
                None => {
                    response.error_code =
                        super::super::cluster::producer_id_blocks::NO_BLOCK_ERROR.code()
                }
            }
            return response;
        }
        match self.producer_ids.allocate(&mut self.storage) {
            Ok(id) => {
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
