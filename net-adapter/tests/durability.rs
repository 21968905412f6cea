//! Produce through the real server and its `FileStorage`, many pipelined
//! acks=all requests at once (so the node thread batches their flushes),
//! stop gracefully, start a new server on the same directory and fetch
//! every record back.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestKind, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use seedlog_net::{Server, ServerConfig};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const TIMEOUT: Duration = Duration::from_secs(20);
const TOPIC: &str = "durable";
const CONNECTIONS: i32 = 8;
const BATCHES_PER_CONNECTION: i32 = 25;
const RECORDS_PER_BATCH: i32 = 4;

async fn start(
    data_dir: &Path,
    flush_before_ack: bool,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), data_dir);
    config.node.flush_before_ack = flush_before_ack;
    config.rng_seed = Some(11);
    let server = Server::bind(config).await.expect("server binds");
    let addr = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

async fn stop(stop: oneshot::Sender<()>, task: tokio::task::JoinHandle<anyhow::Result<()>>) {
    let _ = stop.send(());
    tokio::time::timeout(TIMEOUT, task)
        .await
        .expect("stops in time")
        .expect("no panic")
        .expect("clean stop");
}

fn request(api_key: ApiKey, api_version: i16, correlation_id: i32, body: &RequestKind) -> Vec<u8> {
    seedlog_net::framing::encode_request(api_key, api_version, correlation_id, "durability", body)
        .unwrap()
        .to_vec()
}

/// Reads one response, checks its correlation id, returns the body.
async fn response(
    stream: &mut TcpStream,
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
) -> Bytes {
    let length = tokio::time::timeout(TIMEOUT, stream.read_i32())
        .await
        .expect("answer in time")
        .expect("answer");
    let mut body = vec![0; length as usize];
    stream.read_exact(&mut body).await.unwrap();
    let mut body = Bytes::from(body);
    let header =
        ResponseHeader::decode(&mut body, api_key.response_header_version(api_version)).unwrap();
    assert_eq!(
        header.correlation_id, correlation_id,
        "answers come in request order"
    );
    body
}

fn batch(connection: i32, batch: i32) -> Bytes {
    let records: Vec<Record> = (0..RECORDS_PER_BATCH)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            // kafka-protocol's encoder starts a new batch whenever
            // `offset - sequence` changes; keeping it constant yields one
            // batch (base sequence -1, as a non-idempotent producer sends),
            // and Produce v3+ carries exactly one batch per partition.
            sequence: i - 1,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from(format!("c{connection}"))),
            value: Some(Bytes::from(format!("c{connection}-b{batch}-r{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

async fn create_topic(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))]))
        .with_allow_auto_topic_creation(true);
    stream
        .write_all(&request(
            ApiKey::Metadata,
            12,
            1,
            &RequestKind::Metadata(metadata),
        ))
        .await
        .unwrap();
    let mut body = response(&mut stream, ApiKey::Metadata, 12, 1).await;
    let answer = MetadataResponse::decode(&mut body, 12).unwrap();
    assert_eq!(answer.topics.len(), 1);
    assert_eq!(answer.topics[0].error_code, 0, "topic auto-created");
}

/// One connection pipelines all its produce requests, then reads the acks.
async fn produce(addr: SocketAddr, connection: i32) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut pipeline = Vec::new();
    for b in 0..BATCHES_PER_CONNECTION {
        let produce = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(connection, b)))])]);
        pipeline.extend(request(
            ApiKey::Produce,
            9,
            b,
            &RequestKind::Produce(produce),
        ));
    }
    stream.write_all(&pipeline).await.unwrap();
    for b in 0..BATCHES_PER_CONNECTION {
        let mut body = response(&mut stream, ApiKey::Produce, 9, b).await;
        let answer = ProduceResponse::decode(&mut body, 9).unwrap();
        let partition = &answer.responses[0].partition_responses[0];
        assert_eq!(
            partition.error_code, 0,
            "batch {b} of connection {connection} acked"
        );
        assert!(partition.base_offset >= 0);
    }
}

/// Fetches the whole partition and returns its record values.
async fn fetch_all(addr: SocketAddr) -> (i64, Vec<String>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let fetch = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_isolation_level(0)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(64 << 20)])]);
    stream
        .write_all(&request(ApiKey::Fetch, 12, 1, &RequestKind::Fetch(fetch)))
        .await
        .unwrap();
    let mut body = response(&mut stream, ApiKey::Fetch, 12, 1).await;
    let answer = FetchResponse::decode(&mut body, 12).unwrap();
    assert_eq!(answer.error_code, 0);
    let partition = &answer.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let mut records = partition.records.clone().unwrap_or_default();
    let mut values = Vec::new();
    while records.has_remaining() {
        let set = RecordBatchDecoder::decode(&mut records).unwrap();
        for record in set.records {
            values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    (partition.high_watermark, values)
}

async fn produce_restart_fetch(flush_before_ack: bool) {
    let data_dir = tempfile::tempdir().unwrap();
    let (addr, stop_tx, task) = start(data_dir.path(), flush_before_ack).await;
    create_topic(addr).await;
    let producers: Vec<_> = (0..CONNECTIONS)
        .map(|c| tokio::spawn(produce(addr, c)))
        .collect();
    for producer in producers {
        producer.await.unwrap();
    }
    let total = i64::from(CONNECTIONS * BATCHES_PER_CONNECTION * RECORDS_PER_BATCH);
    let (high_watermark, values) = fetch_all(addr).await;
    assert_eq!(high_watermark, total);
    assert_eq!(values.len() as i64, total);
    stop(stop_tx, task).await;

    let (addr, stop_tx, task) = start(data_dir.path(), flush_before_ack).await;
    let (high_watermark_after, values_after) = fetch_all(addr).await;
    assert_eq!(
        high_watermark_after, total,
        "every acked record survives a restart"
    );
    assert_eq!(values_after, values, "the same records in the same order");
    // Within one connection, batches keep their order.
    for c in 0..CONNECTIONS {
        let mine: Vec<&String> = values_after
            .iter()
            .filter(|v| v.starts_with(&format!("c{c}-")))
            .collect();
        let expected: Vec<String> = (0..BATCHES_PER_CONNECTION)
            .flat_map(|b| (0..RECORDS_PER_BATCH).map(move |r| format!("c{c}-b{b}-r{r}")))
            .collect();
        assert_eq!(mine.len(), expected.len());
        assert!(
            mine.iter().zip(&expected).all(|(a, b)| *a == b),
            "connection {c} out of order"
        );
    }
    stop(stop_tx, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_records_survive_a_restart_with_flush_before_ack() {
    produce_restart_fetch(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_records_survive_a_graceful_restart_without_flush_before_ack() {
    produce_restart_fetch(false).await;
}
