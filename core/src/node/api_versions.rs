//! Which APIs the node serves, at which versions.
//!
//! The ranges are those of Apache Kafka 4.0 for every API implemented here,
//! so clients that infer a broker version from ApiVersions (kafka-python)
//! see one consistent release. An API that is not implemented is not
//! advertised at all.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

/// (api, min version, max version), Kafka 4.0's ranges.
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
    // Kafka 4.0's range. v1 (KIP-860's allowReplicationFactorChange) came
    // with 4.1; the controller already honours the field, but advertising
    // it would mix releases (clients such as kafka-python infer the
    // broker's version from these ranges).
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::GetTelemetrySubscriptions, 0, 0),
    (ApiKey::PushTelemetry, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// Requests between the nodes of a cluster (KRaft, the controller's broker
/// APIs). Not advertised to clients, as Kafka's broker listener does not;
/// accepted only on a cluster node.
const PEER_SUPPORTED: &[(ApiKey, i16, i16)] = &[
    // Fetch v18 (Kafka 4.1, KIP-1166) only adds the fetching replica's
    // high watermark. Nodes speak it to each other; clients are offered
    // Kafka 4.0's 4..17 above, so the advertised ranges stay one release.
    (ApiKey::Fetch, 18, 18),
    (ApiKey::Vote, 2, 2),
    (ApiKey::BeginQuorumEpoch, 1, 1),
    (ApiKey::EndQuorumEpoch, 1, 1),
    // KIP-630: a follower below the leader's log start copies its snapshot.
    (ApiKey::FetchSnapshot, 0, 1),
    (ApiKey::BrokerRegistration, 4, 4),
    (ApiKey::BrokerHeartbeat, 1, 1),
    (ApiKey::AlterPartition, 3, 3),
    (ApiKey::AllocateProducerIds, 0, 0),
];

/// Whether a cluster node takes this inter-node request.
pub fn supports_peer(api_key: ApiKey, api_version: i16) -> bool {
    PEER_SUPPORTED
        .iter()
        .any(|(key, min, max)| *key == api_key && (*min..=*max).contains(&api_version))
}

fn range(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(key, _, _)| *key == api_key)
        .map(|(_, min, max)| (*min, *max))
}

/// Whether the node serves `api_key` at `api_version`.
pub fn supports(api_key: ApiKey, api_version: i16) -> bool {
    match range(api_key) {
        Some((min, max)) => {
            let codec = api_key.valid_versions();
            debug_assert!(
                codec.min <= min && max <= codec.max,
                "advertised beyond the codec: {api_key:?}"
            );
            (min..=max).contains(&api_version)
        }
        None => false,
    }
}

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

pub(crate) fn handle_api_versions(_request: &ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// The ApiVersions answer for a request whose version the node does not
/// support: sent at v0 with UNSUPPORTED_VERSION and the full list, as Kafka
/// does, so the client can retry with a version both sides know.
pub fn api_versions_unsupported_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_range_is_within_the_codec() {
        for (key, min, max) in SUPPORTED {
            let codec = key.valid_versions();
            assert!(codec.min <= *min && *max <= codec.max, "{key:?}");
            assert!(supports(*key, *min) && supports(*key, *max));
            assert!(!supports(*key, max + 1));
        }
        assert!(
            !supports(ApiKey::AddPartitionsToTxn, 0),
            "not implemented, so not advertised"
        );
    }

    /// A KRaft leader answers a follower's parked fetch when a commit is
    /// news to it, which it can only tell from the high watermark the
    /// follower names. Below Fetch v18 the field does not travel (it reads
    /// "not supported"), and a real cluster learned every commit one max
    /// wait late; nodes must speak a version that carries it, and take it.
    #[test]
    fn peer_fetches_carry_the_replicas_high_watermark() {
        use crate::node::cluster::peers::peer_api_version;
        use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
        use kafka_protocol::messages::FetchRequest;
        use kafka_protocol::protocol::{Decodable, Encodable};

        let version = peer_api_version(ApiKey::Fetch);
        assert!(supports_peer(ApiKey::Fetch, version));
        assert!(
            !supports(ApiKey::Fetch, version),
            "clients see Kafka 4.0's range"
        );
        let request = FetchRequest::default().with_topics(vec![FetchTopic::default()
            .with_partitions(vec![FetchPartition::default().with_high_watermark(42)])]);
        let mut buf = bytes::BytesMut::new();
        request.encode(&mut buf, version).expect("encodes");
        let decoded = FetchRequest::decode(&mut buf.freeze(), version).expect("decodes");
        assert_eq!(decoded.topics[0].partitions[0].high_watermark, 42);
    }
}
