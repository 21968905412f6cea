//! A single broker node driven through its sans-IO boundary: requests in,
//! responses and flushes out, time advanced by hand.

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use seedlog_core::batch::{build_batch, decode_records_for_test};
use seedlog_core::node::{Input, NodeConfig};
use seedlog_core::storage::{MemoryStorage, Storage};
use std::time::Duration;

const CONN: u64 = 1;
const FETCH_CONN: u64 = 99;

mod compaction_support;
mod support;

use support::Harness;

impl Harness {
    fn new() -> Harness {
        Harness::start(NodeConfig::default(), MemoryStorage::new())
    }

    fn with_config(config: NodeConfig, storage: MemoryStorage) -> Harness {
        Harness::start(config, storage)
    }

    fn send(&mut self, key: ApiKey, version: i16, body: RequestKind) -> i32 {
        self.send_on(CONN, key, version, body)
    }

    fn request(&mut self, key: ApiKey, version: i16, body: RequestKind) -> ResponseKind {
        let id = self.send(key, version, body);
        self.take(id)
            .unwrap_or_else(|| panic!("no response to {key:?}"))
    }

    fn create_topic(&mut self, name: &str, partitions: i32, configs: &[(&str, &str)]) -> i16 {
        let topic = CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.into())))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            );
        match self.request(
            ApiKey::CreateTopics,
            7,
            RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![topic])),
        ) {
            ResponseKind::CreateTopics(r) => r.topics[0].error_code,
            other => panic!("{other:?}"),
        }
    }

    fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        acks: i16,
        values: &[&[u8]],
    ) -> Option<(i16, i64)> {
        let records: Vec<seedlog_core::batch::TestRecord> =
            values.iter().map(|v| (None, Some(*v))).collect();
        let batch = build_batch(&records, self.now.unix_millis());
        let id = self.send(
            ApiKey::Produce,
            9,
            RequestKind::Produce(produce_request(topic, partition, acks, batch)),
        );
        self.responses.remove(&id).map(|r| match r {
            ResponseKind::Produce(r) => {
                let p = &r.responses[0].partition_responses[0];
                (p.error_code, p.base_offset)
            }
            other => panic!("{other:?}"),
        })
    }

    fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
        FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_current_leader_epoch(-1)
                    .with_partition_max_bytes(1 << 20)])])
    }

    /// (error, high watermark, values read)
    /// Fetches on a connection of its own, so that no response queued on
    /// `CONN` (a produce waiting for its flush) holds this one back.
    fn fetch(&mut self, topic: &str, partition: i32, offset: i64) -> (i16, i64, Vec<Vec<u8>>) {
        let id = self.send_on(
            FETCH_CONN,
            ApiKey::Fetch,
            12,
            RequestKind::Fetch(Harness::fetch_request(topic, partition, offset, 0)),
        );
        match self.responses.remove(&id).expect("fetch answered") {
            ResponseKind::Fetch(r) => fetched(&r),
            other => panic!("{other:?}"),
        }
    }

    fn list_offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> (i16, i64) {
        let request = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp)
                    .with_current_leader_epoch(-1)])]);
        match self.request(ApiKey::ListOffsets, 7, RequestKind::ListOffsets(request)) {
            ResponseKind::ListOffsets(r) => (
                r.topics[0].partitions[0].error_code,
                r.topics[0].partitions[0].offset,
            ),
            other => panic!("{other:?}"),
        }
    }

    fn metadata(&mut self, topic: &str, allow_auto_create: bool) -> MetadataResponse {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(topic.into()))))]))
            .with_allow_auto_topic_creation(allow_auto_create);
        match self.request(ApiKey::Metadata, 12, RequestKind::Metadata(request)) {
            ResponseKind::Metadata(r) => r,
            other => panic!("{other:?}"),
        }
    }
}

fn produce_request(topic: &str, partition: i32, acks: i16, batch: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(batch)))])])
}

fn fetched(r: &FetchResponse) -> (i16, i64, Vec<Vec<u8>>) {
    let p = &r.responses[0].partitions[0];
    let mut values = Vec::new();
    let mut records = p.records.clone().unwrap_or_default();
    while records.len() >= 12 {
        let len = 12 + i32::from_be_bytes(records[8..12].try_into().unwrap()) as usize;
        let batch = records.split_to(len);
        values.extend(
            decode_records_for_test(&batch)
                .into_iter()
                .map(|(_, v)| v.unwrap()),
        );
    }
    (p.error_code, p.high_watermark, values)
}

#[test]
fn api_versions_advertises_produce_and_fetch() {
    let mut h = Harness::new();
    let ResponseKind::ApiVersions(r) = h.request(
        ApiKey::ApiVersions,
        3,
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    ) else {
        panic!()
    };
    assert_eq!(r.error_code, 0);
    let keys: Vec<i16> = r.api_keys.iter().map(|k| k.api_key).collect();
    assert!(keys.contains(&(ApiKey::Produce as i16)) && keys.contains(&(ApiKey::Fetch as i16)));
    assert!(keys.contains(&(ApiKey::JoinGroup as i16)));
    assert!(
        keys.contains(&(ApiKey::ConsumerGroupHeartbeat as i16)),
        "KIP-848"
    );
    assert!(
        !keys.contains(&(ApiKey::AddPartitionsToTxn as i16)),
        "transactions are not served, so not advertised"
    );
}

#[test]
fn metadata_auto_creates_topics_only_when_allowed() {
    let mut h = Harness::new();
    let r = h.metadata("denied", false);
    assert_eq!(
        r.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let r = h.metadata("orders", true);
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].partitions.len(), 1);
    assert_eq!(r.brokers[0].port, 9092);
    let r = h.metadata("bad/name", true);
    assert_eq!(
        r.topics[0].error_code,
        ResponseError::InvalidTopicException.code()
    );

    let mut config = NodeConfig {
        auto_create_topics: false,
        ..NodeConfig::default()
    };
    config.num_partitions = 3;
    let mut h = Harness::with_config(config, MemoryStorage::new());
    assert_eq!(
        h.metadata("orders", true).topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[test]
fn produce_then_fetch_round_trips_with_contiguous_offsets() {
    let mut h = Harness::new();
    assert_eq!(h.create_topic("t", 2, &[]), 0);
    assert_eq!(h.produce("t", 1, 1, &[b"a", b"b"]), Some((0, 0)));
    assert_eq!(h.produce("t", 1, -1, &[b"c"]), Some((0, 2)));
    let (error, hw, values) = h.fetch("t", 1, 0);
    assert_eq!((error, hw), (0, 3));
    assert_eq!(values, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    let (_, _, values) = h.fetch("t", 1, 2);
    assert_eq!(values, vec![b"c".to_vec()]);
    assert_eq!(h.fetch("t", 1, 4).0, ResponseError::OffsetOutOfRange.code());
    assert_eq!(h.fetch("t", 0, 0).2.len(), 0);
    assert_eq!(
        h.produce("t", 7, 1, &[b"x"]).unwrap().0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        h.produce("t", 0, 2, &[b"x"]).unwrap().0,
        ResponseError::InvalidRequiredAcks.code()
    );
}

#[test]
fn corrupt_batches_are_rejected_and_nothing_is_appended() {
    let mut h = Harness::new();
    h.create_topic("t", 1, &[]);
    let mut batch = build_batch(&[(None, Some(b"v"))], 0);
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    let id = h.send(
        ApiKey::Produce,
        9,
        RequestKind::Produce(produce_request("t", 0, 1, batch)),
    );
    let ResponseKind::Produce(r) = h.responses.remove(&id).unwrap() else {
        panic!()
    };
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        ResponseError::CorruptMessage.code()
    );
    assert_eq!(h.node.partition_offsets("t", 0), Some((0, 0, 0)));
}

#[test]
fn acks_zero_gets_no_response_but_is_appended() {
    let mut h = Harness::new();
    h.create_topic("t", 1, &[]);
    assert_eq!(h.produce("t", 0, 0, &[b"x"]), None);
    assert_eq!(h.fetch("t", 0, 0).2, vec![b"x".to_vec()]);
}

#[test]
fn acks_wait_for_the_flush_and_consumers_never_see_unflushed_records() {
    let mut h = Harness::new();
    h.create_topic("t", 1, &[]);
    h.auto_flush = false;
    assert_eq!(
        h.produce("t", 0, -1, &[b"x"]),
        None,
        "no ack before the flush"
    );
    let (_, hw, values) = h.fetch("t", 0, 0);
    assert_eq!((hw, values.len()), (0, 0), "unflushed data is invisible");
    h.complete_flushes();
    assert!(
        h.responses
            .values()
            .any(|r| matches!(r, ResponseKind::Produce(_))),
        "ack released by the flush"
    );
    assert_eq!(h.fetch("t", 0, 0).2, vec![b"x".to_vec()]);
}

#[test]
fn a_failed_flush_answers_with_storage_error() {
    let mut h = Harness::new();
    h.create_topic("t", 1, &[]);
    h.auto_flush = false;
    assert_eq!(h.produce("t", 0, 1, &[b"x"]), None);
    let (flush_id, _) = h.held_flushes.pop().unwrap();
    h.node.handle(
        h.now,
        Input::FlushFailed {
            flush_id,
            error: seedlog_core::storage::StorageError::NoSpace("t-0".into()),
        },
    );
    h.auto_flush = true;
    h.pump();
    let ResponseKind::Produce(r) = h.responses.values().next().unwrap().clone() else {
        panic!()
    };
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        ResponseError::KafkaStorageError.code()
    );
    // The retry after the backoff makes the data durable and visible.
    h.advance(200);
    assert_eq!(h.fetch("t", 0, 0).2.len(), 1);
}

#[test]
fn a_full_disk_rejects_produce_and_keeps_serving_reads() {
    let mut h = Harness::new();
    h.create_topic("t", 1, &[]);
    h.produce("t", 0, 1, &[b"kept"]);
    let used = h.node.storage_mut().used_bytes();
    h.node.storage_mut().set_capacity_bytes(Some(used + 10));
    assert_eq!(
        h.produce("t", 0, 1, &[&[7u8; 100]]).unwrap().0,
        ResponseError::KafkaStorageError.code()
    );
    assert_eq!(h.fetch("t", 0, 0).2, vec![b"kept".to_vec()]);
}

#[test]
fn long_poll_parks_until_data_or_deadline() {
    let mut h = Harness::new();
    h.create_topic("t", 1, &[]);
    let id = h.send(
        ApiKey::Fetch,
        12,
        RequestKind::Fetch(Harness::fetch_request("t", 0, 0, 500)),
    );
    assert!(!h.responses.contains_key(&id), "parked");
    h.advance(100);
    assert!(
        !h.responses.contains_key(&id),
        "still parked before the deadline"
    );
    h.send_on(
        2,
        ApiKey::Produce,
        9,
        RequestKind::Produce(produce_request(
            "t",
            0,
            1,
            build_batch(&[(None, Some(b"late"))], 0),
        )),
    );
    let ResponseKind::Fetch(r) = h.responses.remove(&id).expect("woken by the produce") else {
        panic!()
    };
    assert_eq!(fetched(&r).2, vec![b"late".to_vec()]);

    let id = h.send(
        ApiKey::Fetch,
        12,
        RequestKind::Fetch(Harness::fetch_request("t", 0, 1, 500)),
    );
    assert_eq!(
        h.node.poll_timeout(),
        Some(h.now + Duration::from_millis(500))
    );
    h.advance(499);
    assert!(!h.responses.contains_key(&id));
    h.advance(1);
    let ResponseKind::Fetch(r) = h.responses.remove(&id).expect("answered at the deadline") else {
        panic!()
    };
    assert_eq!(fetched(&r).2.len(), 0);
}

/// `min_bytes` above one batch: a parked fetch of two partitions stays
/// parked while one partition has a batch (too little), and is answered,
/// with both, once the other partition brings the rest. The looks in
/// between read too little, which is no reason to answer (nor, in debug
/// builds, a broken promise of the look that kept it parked).
#[test]
fn a_parked_fetch_waits_for_min_bytes_across_its_partitions() {
    let mut h = Harness::new();
    h.create_topic("t", 3, &[]);
    let value = [7u8; 100];
    let one_batch_bytes = build_batch(&[(None, Some(&value[..]))], 0).len() as i32;
    let two_partitions = |mut request: FetchRequest| {
        let first = request.topics[0].partitions[0].clone();
        request.topics[0].partitions.push(first.with_partition(1));
        request.with_min_bytes(one_batch_bytes + 1)
    };
    let request = two_partitions(Harness::fetch_request("t", 0, 0, 10_000));
    let id = h.send_on(FETCH_CONN, ApiKey::Fetch, 12, RequestKind::Fetch(request));
    assert!(!h.responses.contains_key(&id), "parked");
    h.produce("t", 0, 1, &[&value]).expect("acked");
    // A partition the fetch does not name moves: a look, and nothing new.
    h.produce("t", 2, 1, &[&value]).expect("acked");
    assert!(
        !h.responses.contains_key(&id),
        "one batch is below min_bytes: still parked"
    );
    h.produce("t", 1, 1, &[&value]).expect("acked");
    let ResponseKind::Fetch(r) = h.responses.remove(&id).expect("answered with enough") else {
        panic!()
    };
    let read: Vec<usize> = r.responses[0]
        .partitions
        .iter()
        .map(|p| p.records.as_ref().map_or(0, |b| b.len()))
        .collect();
    assert_eq!(read, vec![one_batch_bytes as usize; 2], "both batches");
}

#[test]
fn responses_keep_request_order_behind_a_parked_fetch() {
    let mut h = Harness::new();
    h.create_topic("t", 1, &[]);
    let fetch_id = h.send(
        ApiKey::Fetch,
        12,
        RequestKind::Fetch(Harness::fetch_request("t", 0, 0, 1000)),
    );
    let meta_id = h.send(
        ApiKey::Metadata,
        12,
        RequestKind::Metadata(MetadataRequest::default()),
    );
    assert!(
        !h.responses.contains_key(&meta_id),
        "metadata waits behind the parked fetch"
    );
    h.advance(1000);
    let pos = |id| h.response_order.iter().position(|x| *x == id).unwrap();
    assert!(pos(fetch_id) < pos(meta_id));
}

#[test]
fn unsupported_versions_close_the_connection() {
    let mut h = Harness::new();
    h.send(
        ApiKey::Metadata,
        99,
        RequestKind::Metadata(MetadataRequest::default()),
    );
    assert_eq!(h.closed, vec![CONN]);
}

#[test]
fn create_topics_reports_kafka_errors() {
    let mut h = Harness::new();
    assert_eq!(h.create_topic("t", 1, &[]), 0);
    assert_eq!(
        h.create_topic("t", 1, &[]),
        ResponseError::TopicAlreadyExists.code()
    );
    assert_eq!(
        h.create_topic("bad name", 1, &[]),
        ResponseError::InvalidTopicException.code()
    );
    assert_eq!(
        h.create_topic("u", 0, &[]),
        ResponseError::InvalidPartitions.code()
    );
    assert_eq!(
        h.create_topic("u", 1, &[("retention.ms", "-7")]),
        ResponseError::InvalidConfig.code()
    );
    assert_eq!(
        h.create_topic("u", 1, &[("no.such", "1")]),
        ResponseError::InvalidConfig.code()
    );
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("rf3")))
        .with_num_partitions(1)
        .with_replication_factor(3);
    let ResponseKind::CreateTopics(r) = h.request(
        ApiKey::CreateTopics,
        7,
        RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![topic])),
    ) else {
        panic!()
    };
    assert_eq!(
        r.topics[0].error_code,
        ResponseError::InvalidReplicationFactor.code()
    );
    assert!(r.topics[0]
        .error_message
        .as_ref()
        .unwrap()
        .contains("replication factor"));
}

#[test]
fn delete_topics_and_create_partitions() {
    let mut h = Harness::new();
    h.create_topic("t", 1, &[]);
    h.produce("t", 0, 1, &[b"x"]);
    let request = CreatePartitionsRequest::default().with_topics(vec![
        kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_count(3),
    ]);
    let ResponseKind::CreatePartitions(r) = h.request(
        ApiKey::CreatePartitions,
        3,
        RequestKind::CreatePartitions(request.clone()),
    ) else {
        panic!()
    };
    assert_eq!(r.results[0].error_code, 0);
    assert_eq!(h.metadata("t", false).topics[0].partitions.len(), 3);
    let ResponseKind::CreatePartitions(r) = h.request(
        ApiKey::CreatePartitions,
        3,
        RequestKind::CreatePartitions(request),
    ) else {
        panic!()
    };
    assert_eq!(
        r.results[0].error_code,
        ResponseError::InvalidPartitions.code(),
        "3 is not more than 3"
    );

    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_static_str("t"))]);
    let ResponseKind::DeleteTopics(r) = h.request(
        ApiKey::DeleteTopics,
        5,
        RequestKind::DeleteTopics(request.clone()),
    ) else {
        panic!()
    };
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(
        h.metadata("t", false).topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert!(
        h.node
            .storage_mut()
            .list("")
            .unwrap()
            .iter()
            .all(|d| !d.starts_with("t-")),
        "partition files removed"
    );
    let ResponseKind::DeleteTopics(r) =
        h.request(ApiKey::DeleteTopics, 5, RequestKind::DeleteTopics(request))
    else {
        panic!()
    };
    assert_eq!(
        r.responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[test]
fn list_offsets_and_delete_records() {
    let mut h = Harness::new();
    h.create_topic("t", 1, &[]);
    let t0 = h.now.unix_millis();
    h.produce("t", 0, 1, &[b"a", b"b"]);
    h.advance(1000);
    h.produce("t", 0, 1, &[b"c"]);
    assert_eq!(h.list_offset("t", 0, -2), (0, 0));
    assert_eq!(h.list_offset("t", 0, -1), (0, 3));
    assert_eq!(
        h.list_offset("t", 0, t0 + 500),
        (0, 2),
        "first record at or after the time"
    );
    assert_eq!(
        h.list_offset("t", 0, t0 + 10_000),
        (0, -1),
        "nothing that late"
    );
    assert_eq!(
        h.list_offset("t", 0, -3),
        (0, 2),
        "max timestamp: the later batch"
    );

    assert_eq!(delete_records(&mut h, "t", 0, 2), (0, 2));
    assert_eq!(h.list_offset("t", 0, -2), (0, 2));
    assert_eq!(h.fetch("t", 0, 0).0, ResponseError::OffsetOutOfRange.code());
    assert_eq!(h.fetch("t", 0, 2).2, vec![b"c".to_vec()]);
}

#[test]
fn describe_configs_includes_defaults_and_overrides() {
    let mut h = Harness::new();
    h.create_topic("t", 1, &[("retention.ms", "1234")]);
    let request = DescribeConfigsRequest::default().with_resources(vec![
        kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("t")),
    ]);
    let ResponseKind::DescribeConfigs(r) = h.request(
        ApiKey::DescribeConfigs,
        4,
        RequestKind::DescribeConfigs(request),
    ) else {
        panic!()
    };
    let configs = &r.results[0].configs;
    let get = |n: &str| configs.iter().find(|c| c.name.as_str() == n).unwrap();
    assert_eq!(get("retention.ms").value.as_ref().unwrap().as_str(), "1234");
    assert_eq!(get("retention.ms").config_source, 1);
    assert_eq!(get("segment.bytes").config_source, 5);
    assert_eq!(
        get("cleanup.policy").value.as_ref().unwrap().as_str(),
        "delete"
    );
}

impl Harness {
    fn topic_config(&mut self, topic: &str, name: &str) -> (String, i8) {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(topic.to_string())),
        ]);
        let ResponseKind::DescribeConfigs(r) = self.request(
            ApiKey::DescribeConfigs,
            4,
            RequestKind::DescribeConfigs(request),
        ) else {
            panic!()
        };
        let c = r.results[0]
            .configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .expect("described");
        (c.value.as_ref().unwrap().to_string(), c.config_source)
    }

    fn alter_config(
        &mut self,
        topic: &str,
        op: i8,
        name: &str,
        value: Option<&str>,
    ) -> (i16, String) {
        use kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(topic.to_string()))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_string(name.to_string()))
                    .with_config_operation(op)
                    .with_value(value.map(|v| StrBytes::from_string(v.to_string())))]),
        ]);
        let ResponseKind::IncrementalAlterConfigs(r) = self.request(
            ApiKey::IncrementalAlterConfigs,
            1,
            RequestKind::IncrementalAlterConfigs(request),
        ) else {
            panic!()
        };
        let result = &r.responses[0];
        (
            result.error_code,
            result
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default(),
        )
    }
}

#[test]
fn incremental_alter_configs_changes_a_topic_durably_and_refuses_bad_values() {
    let mut h = Harness::new();
    h.create_topic("t", 1, &[]);
    assert_eq!(h.alter_config("t", 0, "retention.ms", Some("60000")).0, 0);
    assert_eq!(
        h.topic_config("t", "retention.ms"),
        ("60000".to_string(), 1)
    );
    let (code, message) = h.alter_config("t", 0, "segment.bytes", Some("big"));
    assert_eq!(code, 40, "INVALID_CONFIG");
    assert!(message.contains("segment.bytes"), "{message}");
    assert_eq!(h.alter_config("missing", 0, "retention.ms", Some("1")).0, 3);
    // Survives a restart.
    let storage = h.node.into_storage();
    let mut h = Harness::with_config(NodeConfig::default(), storage);
    assert_eq!(
        h.topic_config("t", "retention.ms"),
        ("60000".to_string(), 1)
    );
    assert_eq!(h.alter_config("t", 1, "retention.ms", None).0, 0, "DELETE");
    assert_eq!(
        h.topic_config("t", "retention.ms").1,
        5,
        "back to the default"
    );
}

#[test]
fn a_crash_keeps_flushed_records_and_topics() {
    let mut h = Harness::new();
    h.create_topic("t", 2, &[]);
    h.produce("t", 0, 1, &[b"durable"]);
    h.auto_flush = false;
    h.produce("t", 0, 1, &[b"lost"]);
    let mut storage = h.node.into_storage();
    storage.crash();
    let mut h = Harness::with_config(NodeConfig::default(), storage);
    assert_eq!(h.metadata("t", false).topics[0].partitions.len(), 2);
    assert_eq!(h.fetch("t", 0, 0).2, vec![b"durable".to_vec()]);
    assert_eq!(
        h.produce("t", 0, 1, &[b"next"]),
        Some((0, 1)),
        "offsets continue after the recovered end"
    );
}

#[test]
fn same_inputs_same_outputs() {
    fn run() -> String {
        let mut h = Harness::new();
        h.create_topic("t", 3, &[]);
        for i in 0..20u8 {
            h.produce("t", (i % 3) as i32, 1, &[&[i; 10]]);
        }
        let meta = h.metadata("t", false);
        format!("{meta:?}{:?}", h.fetch("t", 1, 0))
    }
    assert_eq!(run(), run());
}

/// Every response must encode at every version the node advertises; the
/// codec refuses a field set on a version that lacks it.
#[test]
fn every_api_answers_at_every_advertised_version() {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    // No initial rebalance delay: a lone JoinGroup completes at once.
    let config = NodeConfig {
        group_initial_rebalance_delay_ms: 0,
        ..NodeConfig::default()
    };
    let mut h = Harness::with_config(config, MemoryStorage::new());
    h.create_topic("t", 1, &[]);
    h.produce("t", 0, 1, &[b"x", b"y"]);
    let topic_id = h.metadata("t", false).topics[0].topic_id;
    let name = || TopicName(StrBytes::from_static_str("t"));
    let ResponseKind::ApiVersions(versions) = h.request(
        ApiKey::ApiVersions,
        0,
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    ) else {
        panic!()
    };
    let mut checked = 0;
    for api in &versions.api_keys {
        let key = ApiKey::try_from(api.api_key).unwrap();
        for version in api.min_version..=api.max_version {
            let body = match key {
                ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
                ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name()))]))),
                ApiKey::Produce => RequestKind::Produce(produce_request("t", 0, 1, build_batch(&[(None, Some(b"v"))], 0))),
                ApiKey::Fetch => {
                    let mut request = Harness::fetch_request("t", 0, 0, 0);
                    request.topics[0].topic_id = topic_id;
                    RequestKind::Fetch(request)
                }
                ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
                    .with_name(name())
                    .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1).with_current_leader_epoch(-1)])])),
                ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
                    CreatableTopic::default().with_name(TopicName(StrBytes::from_string(format!("c{version}")))).with_num_partitions(1).with_replication_factor(1),
                    CreatableTopic::default().with_name(name()).with_num_partitions(1).with_replication_factor(1),
                ])),
                ApiKey::DeleteTopics => {
                    let victim = TopicName(StrBytes::from_string(format!("c{version}")));
                    h.create_topic(&victim.0, 1, &[]);
                    RequestKind::DeleteTopics(
                        DeleteTopicsRequest::default()
                            .with_topic_names(vec![victim.clone(), TopicName(StrBytes::from_static_str("missing"))])
                            .with_topics(vec![DeleteTopicState::default().with_name(Some(victim)), DeleteTopicState::default().with_topic_id(uuid::Uuid::from_u128(7))]),
                    )
                }
                ApiKey::CreatePartitions => RequestKind::CreatePartitions(CreatePartitionsRequest::default().with_topics(vec![
                    kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic::default().with_name(name()).with_count(0),
                ])),
                ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str("t")),
                    DescribeConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str("missing")),
                    DescribeConfigsResource::default().with_resource_type(4).with_resource_name(StrBytes::from_static_str("1")),
                ])),
                ApiKey::DeleteRecords => RequestKind::DeleteRecords(DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(name())
                    .with_partitions(vec![DeleteRecordsPartition::default().with_offset(0), DeleteRecordsPartition::default().with_partition_index(5)])])),
                ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default().with_producer_id((-1).into()).with_producer_epoch(-1)),
                ApiKey::FindCoordinator => RequestKind::FindCoordinator(if version >= 4 {
                    FindCoordinatorRequest::default().with_coordinator_keys(vec![StrBytes::from_static_str("g"), StrBytes::from_static_str("h")])
                } else {
                    FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"))
                }),
                ApiKey::JoinGroup => RequestKind::JoinGroup(group_join_request(&format!("g{version}"), "", version)),
                ApiKey::SyncGroup => RequestKind::SyncGroup(SyncGroupRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))).with_generation_id(1).with_member_id(StrBytes::from_static_str("nobody"))),
                ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))).with_member_id(StrBytes::from_static_str("nobody"))),
                ApiKey::LeaveGroup => {
                    let mut request = LeaveGroupRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g")));
                    if version >= 3 {
                        request.members = vec![kafka_protocol::messages::leave_group_request::MemberIdentity::default().with_member_id(StrBytes::from_static_str("nobody"))];
                    } else {
                        request.member_id = StrBytes::from_static_str("nobody");
                    }
                    RequestKind::LeaveGroup(request)
                }
                ApiKey::OffsetCommit => RequestKind::OffsetCommit(OffsetCommitRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("standalone")))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(name())
                        .with_partitions(vec![
                            kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition::default().with_committed_offset(1).with_committed_metadata(Some(StrBytes::from_static_str("m"))),
                            kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(9),
                        ])])),
                ApiKey::OffsetFetch => RequestKind::OffsetFetch(if version >= 8 {
                    OffsetFetchRequest::default().with_groups(vec![kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(StrBytes::from_static_str("standalone")))
                        .with_topics(Some(vec![kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopics::default().with_name(name()).with_partition_indexes(vec![0, 1])]))])
                } else {
                    OffsetFetchRequest::default()
                        .with_group_id(GroupId(StrBytes::from_static_str("standalone")))
                        .with_topics(Some(vec![kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default().with_name(name()).with_partition_indexes(vec![0, 1])]))
                }),
                ApiKey::DescribeGroups => RequestKind::DescribeGroups(DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_static_str("standalone")), GroupId(StrBytes::from_static_str("missing"))])),
                ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
                ApiKey::DeleteGroups => RequestKind::DeleteGroups(DeleteGroupsRequest::default().with_groups_names(vec![GroupId(StrBytes::from_static_str("missing"))])),
                ApiKey::OffsetDelete => RequestKind::OffsetDelete(OffsetDeleteRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("standalone")))
                    .with_topics(vec![kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(name())
                        .with_partitions(vec![kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(1)])])),
                ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(offset_for_leader_epoch_request("t", 0, -1, 0)),
                ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
                ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(None)),
                ApiKey::DescribeProducers => RequestKind::DescribeProducers(describe_producers_request("t", &[0, 5])),
                ApiKey::ElectLeaders => RequestKind::ElectLeaders(ElectLeadersRequest::default().with_topic_partitions(None)),
                ApiKey::DescribeTopicPartitions => RequestKind::DescribeTopicPartitions(DescribeTopicPartitionsRequest::default()
                    .with_response_partition_limit(1)
                    .with_topics(vec![kafka_protocol::messages::describe_topic_partitions_request::TopicRequest::default().with_name(name())])),
                ApiKey::GetTelemetrySubscriptions => RequestKind::GetTelemetrySubscriptions(GetTelemetrySubscriptionsRequest::default()),
                ApiKey::PushTelemetry => RequestKind::PushTelemetry(PushTelemetryRequest::default()),
                ApiKey::ConsumerGroupHeartbeat => RequestKind::ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("kip848")))
                    .with_member_id(StrBytes::from_string(format!("m-{version}")))
                    .with_rebalance_timeout_ms(30_000)
                    .with_subscribed_topic_names(Some(vec![name()]))),
                ApiKey::ConsumerGroupDescribe => RequestKind::ConsumerGroupDescribe(ConsumerGroupDescribeRequest::default()
                    .with_group_ids(vec![GroupId(StrBytes::from_static_str("kip848"))])),
                ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default().with_resources(vec![
                    kafka_protocol::messages::alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("t"))
                        .with_configs(vec![kafka_protocol::messages::alter_configs_request::AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_value(Some(StrBytes::from_static_str("86400000")))]),
                ])),
                ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default().with_resources(vec![
                    kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("missing")),
                ])),
                ApiKey::AlterPartitionReassignments => RequestKind::AlterPartitionReassignments(AlterPartitionReassignmentsRequest::default().with_topics(vec![
                    kafka_protocol::messages::alter_partition_reassignments_request::ReassignableTopic::default().with_name(name()).with_partitions(vec![
                        kafka_protocol::messages::alter_partition_reassignments_request::ReassignablePartition::default().with_replicas(Some(vec![BrokerId(1)])),
                        kafka_protocol::messages::alter_partition_reassignments_request::ReassignablePartition::default().with_partition_index(0).with_replicas(None),
                    ]),
                ])),
                ApiKey::ListPartitionReassignments => RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default().with_topics(None)),
                other => panic!("advertised but not covered here: {other:?}"),
            };
            let id = h.send_on(1000 + checked, key, version, body);
            assert!(
                h.responses.remove(&id).is_some(),
                "{key:?} v{version} answered"
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "covered {checked} api versions");
}

/// A JoinGroup of a consumer with one (range) protocol.
fn group_join_request(group: &str, member_id: &str, version: i16) -> JoinGroupRequest {
    let mut request = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_session_timeout_ms(10_000)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![
            kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"\0\0")),
        ]);
    if version >= 1 {
        request.rebalance_timeout_ms = 10_000;
    }
    request
}

/// An idempotent batch: `build_batch` with the producer fields set and the
/// CRC (which covers them) recomputed.
fn idempotent_batch(producer_id: i64, epoch: i16, sequence: i32, values: &[&[u8]]) -> Vec<u8> {
    let records: Vec<seedlog_core::batch::TestRecord> =
        values.iter().map(|v| (None, Some(*v))).collect();
    let mut batch = build_batch(&records, 0);
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&sequence.to_be_bytes());
    seedlog_core::batch::reseal_crc(&mut batch);
    batch
}

impl Harness {
    fn init_producer_id(&mut self) -> (i64, i16) {
        match self.request(
            ApiKey::InitProducerId,
            4,
            RequestKind::InitProducerId(
                InitProducerIdRequest::default()
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1),
            ),
        ) {
            ResponseKind::InitProducerId(r) => {
                assert_eq!(r.error_code, 0);
                (r.producer_id.0, r.producer_epoch)
            }
            other => panic!("{other:?}"),
        }
    }

    fn produce_batch(&mut self, topic: &str, partition: i32, batch: Vec<u8>) -> (i16, i64) {
        match self.request(
            ApiKey::Produce,
            9,
            RequestKind::Produce(produce_request(topic, partition, -1, batch)),
        ) {
            ResponseKind::Produce(r) => {
                let p = &r.responses[0].partition_responses[0];
                (p.error_code, p.base_offset)
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Found by the `node_requests` fuzz target: the producer-state check read
/// a header the batch validation had not yet checked, so a negative
/// `lastOffsetDelta` tripped an assertion, and a corrupt copy of a written
/// batch was acknowledged as its duplicate.
#[test]
fn idempotent_batches_are_validated_before_their_sequence_is_checked() {
    let mut h = Harness::new();
    h.create_topic("t", 1, &[]);
    let (pid, epoch) = h.init_producer_id();
    let mut negative_delta = idempotent_batch(pid, epoch, 0, &[b"a"]);
    negative_delta[23..27].copy_from_slice(&(-2i32).to_be_bytes());
    seedlog_core::batch::reseal_crc(&mut negative_delta);
    assert_eq!(
        h.produce_batch("t", 0, negative_delta).0,
        ResponseError::InvalidRecord.code()
    );
    let written = idempotent_batch(pid, epoch, 0, &[b"a", b"b"]);
    assert_eq!(h.produce_batch("t", 0, written.clone()), (0, 0));
    let mut corrupt_copy = written;
    let last = corrupt_copy.len() - 1;
    corrupt_copy[last] ^= 0xff;
    assert_eq!(
        h.produce_batch("t", 0, corrupt_copy).0,
        ResponseError::CorruptMessage.code(),
        "a corrupt batch is refused, not taken for the one it imitates"
    );
    assert_eq!(h.node.partition_offsets("t", 0), Some((0, 2, 2)));
}

#[test]
fn idempotent_retries_are_written_once_and_gaps_are_refused() {
    let mut h = Harness::new();
    h.create_topic("t", 1, &[]);
    let (pid, epoch) = h.init_producer_id();
    let (other_pid, _) = h.init_producer_id();
    assert_ne!(pid, other_pid, "every producer gets its own id");
    assert_eq!(
        h.produce_batch("t", 0, idempotent_batch(pid, epoch, 0, &[b"a", b"b"])),
        (0, 0)
    );
    assert_eq!(
        h.produce_batch("t", 0, idempotent_batch(pid, epoch, 0, &[b"a", b"b"])),
        (0, 0),
        "a retry is acked at its first offset"
    );
    assert_eq!(
        h.produce_batch("t", 0, idempotent_batch(pid, epoch, 5, &[b"x"]))
            .0,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    assert_eq!(
        h.produce_batch("t", 0, idempotent_batch(pid, epoch, 2, &[b"c"])),
        (0, 2)
    );
    assert_eq!(
        h.fetch("t", 0, 0).2,
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()],
        "no duplicate in the log"
    );

    // The producer state is rebuilt from the log after a crash.
    let mut storage = h.node.into_storage();
    storage.crash();
    let mut h = Harness::with_config(NodeConfig::default(), storage);
    assert_eq!(
        h.produce_batch("t", 0, idempotent_batch(pid, epoch, 2, &[b"c"])),
        (0, 2),
        "still a duplicate after restart"
    );
    assert_eq!(
        h.produce_batch("t", 0, idempotent_batch(pid, epoch + 1, 0, &[b"d"])),
        (0, 3),
        "a new epoch starts at 0"
    );
    assert_eq!(
        h.produce_batch("t", 0, idempotent_batch(pid, epoch, 3, &[b"e"]))
            .0,
        ResponseError::InvalidProducerEpoch.code()
    );
    let (next_pid, _) = h.init_producer_id();
    assert!(next_pid > other_pid, "ids are not reused after a restart");
}

#[test]
fn produce_carries_exactly_one_batch_per_partition() {
    let mut h = Harness::new();
    h.create_topic("t", 1, &[]);
    let mut two = build_batch(&[(None, Some(b"a"))], 0);
    two.extend(build_batch(&[(None, Some(b"b"))], 0));
    assert_eq!(
        h.produce_batch("t", 0, two).0,
        ResponseError::InvalidRecord.code()
    );
    let mut truncated = build_batch(&[(None, Some(b"a"))], 0);
    truncated.pop();
    assert_eq!(
        h.produce_batch("t", 0, truncated).0,
        ResponseError::CorruptMessage.code()
    );
    assert_eq!(h.node.partition_offsets("t", 0), Some((0, 0, 0)));
}

/// An OffsetForLeaderEpoch request for one partition.
fn offset_for_leader_epoch_request(
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> OffsetForLeaderEpochRequest {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    OffsetForLeaderEpochRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current_leader_epoch)
                .with_leader_epoch(leader_epoch)])])
}

#[test]
fn offset_for_leader_epoch_answers_from_the_epoch_cache() {
    let mut h = Harness::new();
    h.create_topic("t", 2, &[]);
    h.produce("t", 0, 1, &[b"a", b"b", b"c"]);
    let mut ask = |topic: &str, partition: i32, current: i32, epoch: i32| {
        let request = offset_for_leader_epoch_request(topic, partition, current, epoch);
        match h.request(
            ApiKey::OffsetForLeaderEpoch,
            4,
            RequestKind::OffsetForLeaderEpoch(request),
        ) {
            ResponseKind::OffsetForLeaderEpoch(r) => {
                let p = &r.topics[0].partitions[0];
                assert_eq!(p.partition, partition, "answer names its partition");
                (p.error_code, p.leader_epoch, p.end_offset)
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        ask("t", 0, 0, 0),
        (0, 0, 3),
        "the current epoch ends at the log end"
    );
    assert_eq!(
        ask("t", 0, -1, 0),
        (0, 0, 3),
        "no current epoch: no fencing"
    );
    assert_eq!(
        ask("t", 0, 0, 5),
        (0, -1, -1),
        "an epoch above every known one is undefined"
    );
    assert_eq!(
        ask("t", 1, 0, 0),
        (0, -1, -1),
        "an empty log knows no epoch"
    );
    assert_eq!(
        ask("t", 0, 1, 0).0,
        ResponseError::UnknownLeaderEpoch.code(),
        "a client ahead of the leader's epoch"
    );
    assert_eq!(
        ask("t", 2, -1, 0),
        (ResponseError::UnknownTopicOrPartition.code(), -1, -1),
        "a partition past the topic's count"
    );
    assert_eq!(
        ask("missing", 0, -1, 0).0,
        ResponseError::UnknownTopicOrPartition.code(),
        "an unknown topic"
    );
}

#[test]
fn describe_cluster_names_this_broker_as_cluster_and_controller() {
    let mut h = Harness::new();
    for version in 0..=1 {
        let ResponseKind::DescribeCluster(r) = h.request(
            ApiKey::DescribeCluster,
            version,
            RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ) else {
            panic!("DescribeCluster answered with another kind")
        };
        assert_eq!(r.error_code, 0, "v{version} succeeds");
        assert_eq!(r.cluster_id.as_str(), h.config.cluster_id, "cluster id");
        assert_eq!(r.controller_id.0, h.config.node_id, "controller is us");
        assert_eq!(r.brokers.len(), 1, "a single broker");
        assert_eq!(r.brokers[0].broker_id.0, h.config.node_id);
        assert_eq!(r.brokers[0].host.as_str(), h.config.advertised_host);
        assert_eq!(r.brokers[0].port, h.config.advertised_port);
    }
    let ResponseKind::DescribeCluster(r) = h.request(
        ApiKey::DescribeCluster,
        1,
        RequestKind::DescribeCluster(DescribeClusterRequest::default().with_endpoint_type(2)),
    ) else {
        panic!("DescribeCluster answered with another kind")
    };
    assert_eq!(
        r.error_code,
        ResponseError::UnsupportedEndpointType.code(),
        "controller endpoints are not served by a broker"
    );
}

#[test]
fn describe_log_dirs_lists_partitions_with_their_sizes() {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    let mut h = Harness::new();
    h.create_topic("a", 2, &[]);
    h.create_topic("b", 1, &[]);
    h.produce("a", 1, 1, &[b"one", b"two"]);
    let mut describe = |topics: Option<Vec<DescribableLogDirTopic>>| match h.request(
        ApiKey::DescribeLogDirs,
        4,
        RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(topics)),
    ) {
        ResponseKind::DescribeLogDirs(r) => {
            assert_eq!(r.error_code, 0, "DescribeLogDirs succeeds");
            assert_eq!(r.results.len(), 1, "one log dir");
            let dir = &r.results[0];
            assert_eq!(dir.error_code, 0, "the log dir is healthy");
            assert_eq!((dir.total_bytes, dir.usable_bytes), (-1, -1), "unknown");
            dir.topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(move |p| {
                        assert_eq!(p.offset_lag, 0, "no replica lags");
                        assert!(!p.is_future_key, "no future replica");
                        (t.name.0.to_string(), p.partition_index, p.partition_size)
                    })
                })
                .collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    let all = describe(None);
    let names: Vec<(String, i32)> = all.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
    assert_eq!(
        names,
        vec![("a".into(), 0), ("a".into(), 1), ("b".into(), 0)],
        "every partition of every topic"
    );
    assert_eq!(all[0].2, 0, "an empty partition has no bytes");
    assert!(all[1].2 > 0, "a written partition has bytes: {all:?}");
    let some = describe(Some(vec![
        DescribableLogDirTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("a")))
            .with_partitions(vec![1, 7]),
        DescribableLogDirTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("missing")))
            .with_partitions(vec![0]),
    ]));
    assert_eq!(
        some,
        vec![all[1].clone()],
        "only the named partitions that exist"
    );
}

fn describe_producers_request(topic: &str, partitions: &[i32]) -> DescribeProducersRequest {
    DescribeProducersRequest::default().with_topics(vec![
        kafka_protocol::messages::describe_producers_request::TopicRequest::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_indexes(partitions.to_vec()),
    ])
}

#[test]
fn describe_producers_reports_idempotent_producers_per_partition() {
    let mut h = Harness::new();
    h.create_topic("t", 2, &[]);
    let (producer_id, epoch) = h.init_producer_id();
    for (sequence, values) in [(0, &[&b"a"[..], b"b"][..]), (2, &[&b"c"[..]][..])] {
        let batch = idempotent_batch(producer_id, epoch, sequence, values);
        match h.request(
            ApiKey::Produce,
            9,
            RequestKind::Produce(produce_request("t", 0, -1, batch)),
        ) {
            ResponseKind::Produce(r) => assert_eq!(
                r.responses[0].partition_responses[0].error_code, 0,
                "idempotent batch at sequence {sequence} written"
            ),
            other => panic!("{other:?}"),
        }
    }
    h.produce("t", 1, 1, &[b"plain"]);
    let ResponseKind::DescribeProducers(r) = h.request(
        ApiKey::DescribeProducers,
        0,
        RequestKind::DescribeProducers(describe_producers_request("t", &[0, 1, 2])),
    ) else {
        panic!("DescribeProducers answered with another kind")
    };
    let partitions = &r.topics[0].partitions;
    assert_eq!(partitions.len(), 3, "one answer per partition asked");
    assert_eq!(partitions[0].error_code, 0);
    let producers = &partitions[0].active_producers;
    assert_eq!(producers.len(), 1, "one producer wrote to partition 0");
    let p = &producers[0];
    assert_eq!(p.producer_id.0, producer_id);
    assert_eq!(p.producer_epoch, i32::from(epoch));
    assert_eq!(p.last_sequence, 2, "the last sequence written");
    assert_eq!(
        (
            p.last_timestamp,
            p.coordinator_epoch,
            p.current_txn_start_offset
        ),
        (-1, -1, -1),
        "not tracked"
    );
    assert_eq!(partitions[1].error_code, 0);
    assert!(
        partitions[1].active_producers.is_empty(),
        "a non-idempotent producer is not tracked"
    );
    assert_eq!(
        partitions[2].error_code,
        ResponseError::UnknownTopicOrPartition.code(),
        "a partition past the topic's count"
    );
}

#[test]
fn a_compacted_topic_is_compacted_from_the_retention_timer_in_steps() {
    use compaction_support::{batch, read_all, KeyValue, CODECS};
    use seedlog_core::log::{LogConfig, PartitionLog};
    let config = NodeConfig {
        retention_check_interval_ms: 60_000,
        ..NodeConfig::default()
    };
    let mut h = Harness::with_config(config, MemoryStorage::new());
    let topic_configs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "300"),
        ("min.cleanable.dirty.ratio", "0.1"),
    ];
    assert_eq!(h.create_topic("c", 1, &topic_configs), 0);
    let produce = |h: &mut Harness, records: &[KeyValue]| {
        let bytes = batch(records, h.now.unix_millis(), CODECS[3]);
        let id = h.send(
            ApiKey::Produce,
            9,
            RequestKind::Produce(produce_request("c", 0, -1, bytes)),
        );
        match h.take(id) {
            Some(ResponseKind::Produce(r)) => r.responses[0].partition_responses[0].error_code,
            other => panic!("{other:?}"),
        }
    };
    for i in 0..40 {
        let record = (Some(format!("k{}", i % 2).into_bytes()), Some(vec![i]));
        assert_eq!(produce(&mut h, &[record]), 0);
    }
    assert_eq!(
        produce(&mut h, &[(None, Some(b"x".to_vec()))]),
        ResponseError::InvalidRecord.code(),
        "a compacted topic refuses keyless records"
    );

    let read = |h: &mut Harness| {
        let mut storage = h.node.storage_mut().clone();
        let (mut log, _) =
            PartitionLog::open(&mut storage, "c-0", LogConfig::default(), h.now).unwrap();
        (read_all(&mut storage, &mut log), log.segment_count())
    };
    let (before, segments) = read(&mut h);
    assert_eq!(before.len(), 40);
    assert!(segments > 3);
    // The first check starts a pass; its steps follow 100 ms apart, one
    // segment each, long before the next regular check.
    h.advance(60_000 + 100 * 2 * segments as u64);
    let (after, _) = read(&mut h);
    assert!(
        after.len() < before.len(),
        "compacted: {} records left",
        after.len()
    );
    assert!(after.iter().all(|r| before.contains(r)));
    for key in [&b"k0"[..], b"k1"] {
        let latest = before.iter().rev().find(|r| r.key.as_deref() == Some(key));
        assert!(
            after.contains(latest.unwrap()),
            "the latest of each key stays"
        );
    }
    h.node.check_invariants();
}

#[test]
fn describe_topic_partitions_pages_with_a_cursor() {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let mut h = Harness::new();
    h.create_topic("a", 3, &[]);
    h.create_topic("b", 1, &[]);
    let request = |cursor: Option<Cursor>| {
        RequestKind::DescribeTopicPartitions(
            DescribeTopicPartitionsRequest::default()
                .with_response_partition_limit(2)
                .with_cursor(cursor)
                .with_topics(
                    ["b", "a", "missing"]
                        .iter()
                        .map(|n| {
                            TopicRequest::default()
                                .with_name(TopicName(StrBytes::from_static_str(n)))
                        })
                        .collect(),
                ),
        )
    };
    let ResponseKind::DescribeTopicPartitions(first) =
        h.request(ApiKey::DescribeTopicPartitions, 0, request(None))
    else {
        panic!()
    };
    assert_eq!(
        first.topics.len(),
        1,
        "sorted by name, 'a' first: {first:?}"
    );
    assert_eq!(first.topics[0].partitions.len(), 2);
    assert_eq!(first.topics[0].partitions[0].isr_nodes, vec![BrokerId(1)]);
    let next = first.next_cursor.expect("more to come");
    assert_eq!((next.topic_name.0.as_str(), next.partition_index), ("a", 2));
    let cursor = Cursor::default()
        .with_topic_name(next.topic_name)
        .with_partition_index(2);
    let ResponseKind::DescribeTopicPartitions(second) =
        h.request(ApiKey::DescribeTopicPartitions, 0, request(Some(cursor)))
    else {
        panic!()
    };
    let names: Vec<&str> = second
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().0.as_str())
        .collect();
    assert_eq!(names, vec!["a", "b", "missing"]);
    assert_eq!(second.topics[0].partitions.len(), 1, "the rest of 'a'");
    assert_eq!(second.topics[2].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert!(second.next_cursor.is_none());
}

/// A standalone broker serves the reassignment APIs: the only target it
/// can take is itself (where every partition is), nothing is ever in
/// progress.
#[test]
fn standalone_reassignments_accept_only_this_broker() {
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    let mut h = Harness::with_config(NodeConfig::default(), MemoryStorage::new());
    let self_id = NodeConfig::default().node_id;
    h.create_topic("t", 1, &[]);
    let partition = |index: i32, replicas: Option<Vec<i32>>| {
        ReassignablePartition::default()
            .with_partition_index(index)
            .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))
    };
    let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        ReassignableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![
                partition(0, Some(vec![self_id])),
                partition(0, None),
                partition(0, Some(vec![self_id, self_id + 1])),
                partition(3, Some(vec![self_id])),
            ]),
    ]);
    // Kafka 4.0 serves v0 only (v1 is 4.1's KIP-860).
    for version in 0..=0 {
        let ResponseKind::AlterPartitionReassignments(response) = h.request(
            ApiKey::AlterPartitionReassignments,
            version,
            RequestKind::AlterPartitionReassignments(request.clone()),
        ) else {
            panic!("an AlterPartitionReassignments answer")
        };
        let codes: Vec<i16> = response.responses[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect();
        assert_eq!(
            codes,
            vec![
                0,
                ResponseError::NoReassignmentInProgress.code(),
                ResponseError::InvalidReplicaAssignment.code(),
                ResponseError::UnknownTopicOrPartition.code(),
            ]
        );
    }
    let ResponseKind::ListPartitionReassignments(list) = h.request(
        ApiKey::ListPartitionReassignments,
        0,
        RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default()),
    ) else {
        panic!("a ListPartitionReassignments answer")
    };
    assert_eq!(list.error_code, 0);
    assert!(list.topics.is_empty());
}

/// What `Node::drain_touched` lists, as (topic, partition) with `None` for
/// a whole topic; `None` overall when everything counts as touched.
fn drain_touched(h: &mut Harness) -> Option<Vec<(String, Option<i32>)>> {
    let mut listed = Vec::new();
    let partial = h.node.drain_touched(|t| match t {
        seedlog_core::node::Touched::Partition(topic, p) => {
            listed.push((topic.to_string(), Some(p)))
        }
        seedlog_core::node::Touched::Topic(topic) => listed.push((topic.to_string(), None)),
    });
    partial.then_some(listed)
}

#[test]
fn drain_touched_lists_the_partitions_an_input_changed_and_no_others() {
    let mut h = Harness::new();
    // A new node: everything counts as touched, once.
    assert_eq!(drain_touched(&mut h), None);
    assert_eq!(drain_touched(&mut h), Some(vec![]));
    assert_eq!(h.create_topic("t", 3, &[]), 0);
    assert_eq!(drain_touched(&mut h), None, "a topic came");
    assert_eq!(h.produce("t", 1, 1, &[b"a"]), Some((0, 0)));
    h.complete_flushes();
    assert_eq!(
        drain_touched(&mut h),
        Some(vec![("t".to_string(), Some(1))])
    );
    // A read may list what it read (the log's read position moves), never
    // another partition.
    assert_eq!(h.fetch("t", 1, 0).1, 1);
    let listed = drain_touched(&mut h).expect("no topic came or went");
    assert!(
        listed.iter().all(|t| *t == ("t".to_string(), Some(1))),
        "{listed:?}"
    );
    assert_eq!(drain_touched(&mut h), Some(vec![]), "drained");
    assert_eq!(h.produce("t", 2, 1, &[b"b"]), Some((0, 0)));
    assert_eq!(h.produce("t", 0, 1, &[b"c"]), Some((0, 0)));
    assert_eq!(h.produce("t", 2, 1, &[b"d"]), Some((0, 1)));
    h.complete_flushes();
    let mut listed = drain_touched(&mut h).expect("no topic came or went");
    listed.sort();
    assert_eq!(
        listed,
        vec![("t".to_string(), Some(0)), ("t".to_string(), Some(2))],
        "each touched partition once"
    );
    // A restarted node starts over: everything counts as touched.
    h.crash_and_restart();
    assert_eq!(drain_touched(&mut h), None);
}

/// A fetch of `offsets` (partition, offset) of topic "s" in session `id`
/// at `epoch` (KIP-227), waiting up to `max_wait_ms`.
fn session_fetch(id: i32, epoch: i32, offsets: &[(i32, i64)], max_wait_ms: i32) -> RequestKind {
    let mut request = Harness::fetch_request("s", 0, 0, max_wait_ms)
        .with_session_id(id)
        .with_session_epoch(epoch);
    request.topics[0].partitions = offsets
        .iter()
        .map(|(p, offset)| {
            FetchPartition::default()
                .with_partition(*p)
                .with_fetch_offset(*offset)
                .with_current_leader_epoch(-1)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    RequestKind::Fetch(request)
}

/// (top-level error, session id, partitions listed with their record bytes)
fn session_answer(r: ResponseKind) -> (i16, i32, Vec<(i32, usize)>) {
    let ResponseKind::Fetch(r) = r else {
        panic!("{r:?}")
    };
    let listed = r
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.records.as_ref().map_or(0, |b| b.len())))
        .collect();
    (r.error_code, r.session_id, listed)
}

/// KIP-227 through the node: a full fetch at epoch 0 makes a session; an
/// incremental fetch naming nothing new parks on every partition of the
/// session, and is answered with only the partition a produce moved; the
/// session's epoch guards against a repeated request, and a restart
/// forgets the session.
#[test]
fn a_fetch_session_parks_on_all_its_partitions_and_answers_only_news() {
    let mut h = Harness::new();
    h.create_topic("s", 3, &[]);
    for p in 0..3 {
        assert_eq!(h.produce("s", p, 1, &[b"first"]), Some((0, 0)));
    }
    let full = h.send_on(
        FETCH_CONN,
        ApiKey::Fetch,
        12,
        session_fetch(0, 0, &[(0, 0), (1, 0), (2, 0)], 0),
    );
    let (error, id, listed) = session_answer(h.take(full).expect("answered"));
    assert_eq!(error, 0);
    assert!(id > 0, "a session was made");
    assert_eq!(
        listed.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(listed.iter().all(|(_, bytes)| *bytes > 0));

    // Every position moved: named, and nothing to read yet, so it parks.
    let parked = h.send_on(
        FETCH_CONN,
        ApiKey::Fetch,
        12,
        session_fetch(id, 1, &[(0, 1), (1, 1), (2, 1)], 500),
    );
    assert!(h.take(parked).is_none(), "parked");
    assert_eq!(h.produce("s", 2, 1, &[b"second"]), Some((0, 1)));
    let (error, same, listed) = session_answer(h.take(parked).expect("woken by the produce"));
    assert_eq!((error, same), (0, id));
    assert_eq!(listed.len(), 1, "only the partition with news: {listed:?}");
    assert_eq!(listed[0].0, 2);

    // Partition 2 moves on; nothing new anywhere: an empty answer at the
    // deadline, still in the session.
    let quiet = h.send_on(
        FETCH_CONN,
        ApiKey::Fetch,
        12,
        session_fetch(id, 2, &[(2, 2)], 100),
    );
    h.advance(100);
    assert_eq!(
        session_answer(h.take(quiet).expect("at the deadline")),
        (0, id, vec![])
    );

    // The same epoch again (a retried request) is refused.
    let again = h.send_on(FETCH_CONN, ApiKey::Fetch, 12, session_fetch(id, 2, &[], 0));
    assert_eq!(
        session_answer(h.take(again).expect("answered")),
        (ResponseError::InvalidFetchSessionEpoch.code(), 0, vec![])
    );
    h.crash_and_restart();
    let forgotten = h.send_on(FETCH_CONN, ApiKey::Fetch, 12, session_fetch(id, 3, &[], 0));
    assert_eq!(
        session_answer(h.take(forgotten).expect("answered")),
        (ResponseError::FetchSessionIdNotFound.code(), 0, vec![])
    );
}

/// `DeleteRecords` of `topic`-`partition` below `offset`: (error code,
/// low watermark).
fn delete_records(h: &mut Harness, topic: &str, partition: i32, offset: i64) -> (i16, i64) {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    let request = DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.into())))
        .with_partitions(vec![DeleteRecordsPartition::default()
            .with_partition_index(partition)
            .with_offset(offset)])]);
    match h.request(
        ApiKey::DeleteRecords,
        2,
        RequestKind::DeleteRecords(request),
    ) {
        ResponseKind::DeleteRecords(r) => {
            let p = &r.topics[0].partitions[0];
            (p.error_code, p.low_watermark)
        }
        other => panic!("{other:?}"),
    }
}

/// An incremental fetch does not read the session partitions whose answer
/// would be dropped (caught up, same high watermark and log start, no
/// error), and still answers each kind of change: records, a consumer
/// seeking back, a log start moved by DeleteRecords, a produce that wakes
/// a parked fetch on a partition it did not read when it parked.
#[test]
fn an_incremental_fetch_leaves_unchanged_partitions_unread_and_answers_every_change() {
    let mut h = Harness::new();
    h.create_topic("s", 3, &[]);
    for p in 0..3 {
        assert_eq!(h.produce("s", p, 1, &[b"first"]), Some((0, 0)));
    }
    let mut epoch = 0;
    let mut fetch = |h: &mut Harness, id: i32, offsets: &[(i32, i64)], max_wait_ms: i32| {
        let slot = h.send_on(
            FETCH_CONN,
            ApiKey::Fetch,
            12,
            session_fetch(id, epoch, offsets, max_wait_ms),
        );
        epoch += 1;
        slot
    };
    let full = fetch(&mut h, 0, &[(0, 0), (1, 0), (2, 0)], 0);
    let (error, id, listed) = session_answer(h.take(full).expect("answered"));
    assert_eq!((error, listed.len()), (0, 3));
    assert_eq!(
        h.node.fetch_session_partitions_unread(),
        0,
        "a full fetch reads all"
    );

    // Caught up everywhere: nothing read, nothing listed.
    let quiet = fetch(&mut h, id, &[(0, 1), (1, 1), (2, 1)], 0);
    assert_eq!(
        session_answer(h.take(quiet).expect("answered")),
        (0, id, vec![])
    );
    assert_eq!(h.node.fetch_session_partitions_unread(), 3);

    // Records in 1: read and listed; 0 and 2 are not read.
    assert_eq!(h.produce("s", 1, 1, &[b"second"]), Some((0, 1)));
    let news = fetch(&mut h, id, &[], 0);
    let (error, _, listed) = session_answer(h.take(news).expect("answered"));
    assert_eq!(error, 0);
    assert_eq!(listed.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![1]);
    assert!(listed[0].1 > 0, "with its records");
    assert_eq!(h.node.fetch_session_partitions_unread(), 5);

    // A consumer that seeks partition 0 back is answered its records again.
    let back = fetch(&mut h, id, &[(0, 0), (1, 2)], 0);
    let (_, _, listed) = session_answer(h.take(back).expect("answered"));
    assert_eq!(listed.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![0]);
    assert!(listed[0].1 > 0);
    assert_eq!(h.node.fetch_session_partitions_unread(), 7);

    // DeleteRecords moves partition 2's log start, with no records to
    // read: still listed, for its new log start.
    assert_eq!(h.produce("s", 2, 1, &[b"second"]), Some((0, 1)));
    let caught_up = fetch(&mut h, id, &[(0, 1), (2, 2)], 0);
    let (_, _, listed) = session_answer(h.take(caught_up).expect("answered"));
    assert_eq!(listed.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![2]);
    assert_eq!(delete_records(&mut h, "s", 2, 1), (0, 1));
    let moved = fetch(&mut h, id, &[], 0);
    let (_, _, listed) = session_answer(h.take(moved).expect("answered"));
    assert_eq!(listed, vec![(2, 0)], "the log start moved, no records");

    // A consumer ahead of the high watermark (the record past it is not
    // yet flushed) has nothing to read either before or after the flush,
    // but the flush moves the high watermark: listed, with no records.
    h.auto_flush = false;
    assert_eq!(h.produce("s", 1, 1, &[b"unflushed"]), None);
    let ahead = fetch(&mut h, id, &[(1, 3)], 0);
    assert_eq!(
        session_answer(h.take(ahead).expect("answered")),
        (0, id, vec![])
    );
    h.complete_flushes();
    h.auto_flush = true;
    let flushed = fetch(&mut h, id, &[], 0);
    let ResponseKind::Fetch(r) = h.take(flushed).expect("answered") else {
        panic!()
    };
    let listed: Vec<(i32, i64, bool)> = r
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            let records = p.records.as_ref().is_some_and(|b| !b.is_empty());
            (p.partition_index, p.high_watermark, records)
        })
        .collect();
    assert_eq!(listed, vec![(1, 3, false)], "the high watermark moved");

    // A fetch parked with every partition unread wakes on a produce to one
    // of them, and lists only that one.
    let parked = fetch(&mut h, id, &[], 500);
    assert!(h.take(parked).is_none(), "parked");
    let unread_before = h.node.fetch_session_partitions_unread();
    assert_eq!(h.produce("s", 0, 1, &[b"third"]), Some((0, 1)));
    let (error, _, listed) = session_answer(h.take(parked).expect("woken by the produce"));
    assert_eq!(error, 0);
    assert_eq!(listed.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![0]);
    assert_eq!(
        h.node.fetch_session_partitions_unread(),
        unread_before + 2,
        "1 and 2 unread when it completed"
    );
}
