//! DescribeCluster: the registered, unfenced brokers and the active
//! controller (a standalone broker is the whole cluster and its controller).

use super::super::Node;
use super::str_bytes;
use crate::storage::Storage;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::ResponseError;

/// DescribeCluster's `endpoint_type` for brokers (2 is controllers).
const ENDPOINT_TYPE_BROKERS: i8 = 1;
/// Kafka's "authorized operations were not requested".
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

impl<S: Storage> Node<S> {
    pub(crate) fn handle_describe_cluster(
        &mut self,
        request: &DescribeClusterRequest,
    ) -> DescribeClusterResponse {
        let response = DescribeClusterResponse::default()
            .with_endpoint_type(ENDPOINT_TYPE_BROKERS)
            .with_cluster_id(str_bytes(&self.config.cluster_id))
            .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
        // Before v1 the request has no endpoint type and means brokers.
        if request.endpoint_type != ENDPOINT_TYPE_BROKERS {
            let error = ResponseError::UnsupportedEndpointType;
            return response
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(&error.to_string())))
                .with_controller_id((-1).into());
        }
        if self.cluster.is_some() {
            let brokers = self
                .cluster_brokers()
                .into_iter()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(b.node_id)
                        .with_host(b.host)
                        .with_port(b.port)
                        .with_rack(b.rack)
                })
                .collect();
            return response
                .with_controller_id(self.cluster_controller_id().into())
                .with_brokers(brokers);
        }
        let broker = DescribeClusterBroker::default()
            .with_broker_id(self.config.node_id.into())
            .with_host(str_bytes(&self.config.advertised_host))
            .with_port(self.config.advertised_port);
        response
            .with_controller_id(self.config.node_id.into())
            .with_brokers(vec![broker])
    }
}
