//! Client telemetry (KIP-714): seedlog asks for no client metrics. A client
//! that looks for a subscription gets an empty one (and pushes nothing);
//! a push that arrives anyway is accepted and dropped.

use super::super::Node;
use crate::storage::Storage;
use kafka_protocol::messages::{
    GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse, PushTelemetryResponse,
};

/// How often a client asks again for its (empty) subscription.
const PUSH_INTERVAL_MS: i32 = 300_000;
const TELEMETRY_BYTES_MAX: i32 = 1024 * 1024;

impl<S: Storage> Node<S> {
    pub(crate) fn handle_get_telemetry_subscriptions(
        &mut self,
        request: &GetTelemetrySubscriptionsRequest,
    ) -> GetTelemetrySubscriptionsResponse {
        // A client without an id gets one (KIP-714); ours come from the
        // node's seeded RNG, so runs stay reproducible.
        let client_instance_id = if request.client_instance_id.is_nil() {
            self.random_uuid()
        } else {
            request.client_instance_id
        };
        GetTelemetrySubscriptionsResponse::default()
            .with_client_instance_id(client_instance_id)
            .with_subscription_id(0)
            .with_accepted_compression_types(Vec::new())
            .with_push_interval_ms(PUSH_INTERVAL_MS)
            .with_telemetry_max_bytes(TELEMETRY_BYTES_MAX)
            .with_requested_metrics(Vec::new())
    }

    pub(crate) fn handle_push_telemetry(&mut self) -> PushTelemetryResponse {
        PushTelemetryResponse::default()
    }
}
