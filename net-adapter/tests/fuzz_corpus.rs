//! Replays the fuzz corpus kept in `fuzz/corpus/` through the fuzz
//! targets' entry points (`seedlog_net::fuzzing`) on stable Rust, so every
//! CI run re-checks every input the fuzzer found interesting, and checks
//! that the hand-built seeds are what they claim to be: requests a broker
//! decodes and answers.
//!
//! `SEEDLOG_FUZZ_WRITE_SEEDS=1 cargo test -p seedlog-net --test fuzz_corpus`
//! (re)writes the seeds into the corpus directories before a fuzzing run.

use bytes::Bytes;
use kafka_protocol::messages::consumer_group_heartbeat_request::ConsumerGroupHeartbeatRequest;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use seedlog_core::batch::build_batch;
use seedlog_net::framing::{decode_request, encode_request, Decoded};
use seedlog_net::fuzzing;
use std::path::{Path, PathBuf};

/// The broker's allocator, as in the fuzz targets: without it the
/// decoder's reservation for a lying array count aborts the test binary.
#[global_allocator]
static ALLOCATOR: seedlog_net::alloc::NoReserveHugeAllocations =
    seedlog_net::alloc::NoReserveHugeAllocations;

const TOPIC: &str = "t";
const GROUP: &str = "g";

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn topic(name: &str) -> TopicName {
    TopicName(s(name))
}

fn group(name: &str) -> GroupId {
    GroupId(s(name))
}

/// A produce batch of three records, as a client sends it.
fn records() -> Bytes {
    let pairs: [(&[u8], &[u8]); 3] = [(b"k1", b"v1"), (b"k2", b"v2"), (b"k1", b"v3")];
    let records: Vec<_> = pairs.iter().map(|(k, v)| (Some(*k), Some(*v))).collect();
    Bytes::from(build_batch(&records, 1_700_000_000_000))
}

/// The requests a client session makes, in order: create, produce, read,
/// a classic group's life, a KIP-848 group, configs, deletion.
fn session() -> Vec<(ApiKey, i16, RequestKind)> {
    use RequestKind as R;
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(1_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic("c"))
            .with_num_partitions(3)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(s("cleanup.policy"))
                .with_value(Some(s("compact")))])]);
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic(TOPIC)))
        ]))
        .with_allow_auto_topic_creation(true);
    let produce = |name: &str| {
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records()))])])
    };
    let fetch = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let list_offsets = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic(TOPIC))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let find = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![s(GROUP)]);
    let join = JoinGroupRequest::default()
        .with_group_id(group(GROUP))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"\0\0\0\0\0\x01\0\x01t\0\0\0\0"))]);
    let member = s("m");
    let sync = SyncGroupRequest::default()
        .with_group_id(group(GROUP))
        .with_generation_id(1)
        .with_member_id(member.clone())
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(member.clone())
            .with_assignment(Bytes::from_static(
                b"\0\0\0\0\0\x01\0\x01t\0\0\0\x01\0\0\0\0",
            ))]);
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(group(GROUP))
        .with_generation_id(1)
        .with_member_id(member.clone());
    let commit = OffsetCommitRequest::default()
        .with_group_id(group(GROUP))
        .with_generation_id_or_member_epoch(1)
        .with_member_id(member.clone())
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic(TOPIC))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(2)
                .with_committed_metadata(Some(s("meta")))])]);
    let offset_fetch = OffsetFetchRequest::default()
        .with_group_id(group(GROUP))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic(TOPIC))
            .with_partition_indexes(vec![0])]));
    let leave = LeaveGroupRequest::default()
        .with_group_id(group(GROUP))
        .with_members(vec![MemberIdentity::default().with_member_id(member)]);
    let describe = DescribeGroupsRequest::default().with_groups(vec![group(GROUP)]);
    let kip848 = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group("g2"))
        .with_member_id(s("m2"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(10_000)
        .with_subscribed_topic_names(Some(vec![topic(TOPIC)]))
        .with_topic_partitions(Some(vec![]));
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(TOPIC))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(s("1000")))]),
    ]);
    let delete = DeleteTopicsRequest::default()
        .with_topic_names(vec![topic("c")])
        .with_timeout_ms(1_000);
    vec![
        (ApiKey::ApiVersions, 3, R::ApiVersions(Default::default())),
        (ApiKey::CreateTopics, 7, R::CreateTopics(create)),
        (ApiKey::Metadata, 12, R::Metadata(metadata)),
        (ApiKey::Produce, 9, R::Produce(produce(TOPIC))),
        (ApiKey::Produce, 9, R::Produce(produce("c"))),
        (ApiKey::Fetch, 12, R::Fetch(fetch)),
        (ApiKey::ListOffsets, 7, R::ListOffsets(list_offsets)),
        (ApiKey::FindCoordinator, 4, R::FindCoordinator(find)),
        (ApiKey::JoinGroup, 9, R::JoinGroup(join)),
        (ApiKey::SyncGroup, 5, R::SyncGroup(sync)),
        (ApiKey::Heartbeat, 4, R::Heartbeat(heartbeat)),
        (ApiKey::OffsetCommit, 8, R::OffsetCommit(commit)),
        (ApiKey::OffsetFetch, 7, R::OffsetFetch(offset_fetch)),
        (ApiKey::DescribeGroups, 5, R::DescribeGroups(describe)),
        (ApiKey::LeaveGroup, 5, R::LeaveGroup(leave)),
        (ApiKey::ListGroups, 5, R::ListGroups(Default::default())),
        (
            ApiKey::ConsumerGroupHeartbeat,
            0,
            R::ConsumerGroupHeartbeat(kip848),
        ),
        (
            ApiKey::IncrementalAlterConfigs,
            1,
            R::IncrementalAlterConfigs(alter),
        ),
        (
            ApiKey::InitProducerId,
            4,
            R::InitProducerId(Default::default()),
        ),
        (ApiKey::DeleteTopics, 6, R::DeleteTopics(delete)),
    ]
}

/// Request frames without their length prefix, as `decode_request` takes
/// them.
fn session_frames() -> Vec<Bytes> {
    session()
        .iter()
        .enumerate()
        .map(|(i, (key, version, body))| {
            let framed = encode_request(*key, *version, i as i32, "fuzz-seed", body)
                .unwrap_or_else(|e| panic!("{key:?} v{version} encodes: {e:#}"));
            framed.slice(4..)
        })
        .collect()
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Every file of a target's committed corpus.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("a corpus file");
            (path, bytes)
        })
        .collect()
}

fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed written");
}

#[test]
fn seeds_are_requests_a_broker_decodes() {
    let frames = session_frames();
    for (frame, (key, version, _)) in frames.iter().zip(session()) {
        match decode_request(frame.clone()) {
            Ok(Decoded::Request { header, .. }) => {
                assert_eq!(header.request_api_key, key as i16);
                assert_eq!(header.request_api_version, version);
            }
            other => panic!("{key:?} v{version} seed does not decode: {other:?}"),
        }
        fuzzing::request_frame(frame);
    }
    let sealed_batches = [&[1u8][..], &records()].concat();
    fuzzing::record_batches(&sealed_batches);
    fuzzing::node_requests(&fuzzing::join_frames(&frames));
    if std::env::var_os("SEEDLOG_FUZZ_WRITE_SEEDS").is_some() {
        for (i, frame) in frames.iter().enumerate() {
            write_seed("request_frame", &format!("{i:02}"), frame);
        }
        write_seed("record_batches", "produce", &sealed_batches);
        write_seed("node_requests", "session", &fuzzing::join_frames(&frames));
    }
}

/// Runs one target over its corpus; the corpus must not be empty (it is
/// committed, and an empty one would make this test pass vacuously).
fn replay(target: &str, run: fn(&[u8])) {
    let files = corpus(target);
    assert!(!files.is_empty(), "fuzz/corpus/{target} holds inputs");
    for (path, bytes) in files {
        let outcome = std::panic::catch_unwind(|| run(&bytes));
        assert!(outcome.is_ok(), "{} panics {target}", path.display());
    }
}

#[test]
fn request_frame_corpus_replays() {
    replay("request_frame", fuzzing::request_frame);
}

#[test]
fn record_batches_corpus_replays() {
    replay("record_batches", fuzzing::record_batches);
}

#[test]
fn node_requests_corpus_replays() {
    replay("node_requests", fuzzing::node_requests);
}
