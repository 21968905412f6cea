//! `seedlog bench produce-path`: a fixed, deterministic, single-threaded
//! workload over the broker's produce (and optionally fetch) path, for
//! counting instructions under callgrind (`bench/callgrind_guard.sh`).
//!
//! It runs what a `seedlog serve` does per request minus the sockets and
//! threads: decode the request frame (`seedlog_net::framing`), hand it to
//! the sans-IO core (`Node` on the in-memory disk), complete the flushes
//! it asks for, and encode every response frame. Nothing depends on the
//! clock, a random seed or the thread schedule, so two runs with the same
//! flags execute the same instructions; the difference between two sizes
//! cancels start-up and gives instructions per record.

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, FetchRequest, ProduceRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use seedlog_core::batch::{build_batch, BatchIter};
use seedlog_core::node::{Input, Node, NodeConfig, Output};
use seedlog_core::storage::{MemoryStorage, Storage};
use seedlog_core::Instant;
use seedlog_net::framing::{decode_request, encode_request, encode_response, Decoded};

const TOPIC: &str = "bench";
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
const PRODUCER_CONNECTION: u64 = 1;
const CONSUMER_CONNECTION: u64 = 2;

#[derive(Debug, Args)]
pub struct ProducePathArgs {
    /// Produce requests to send, one batch each.
    #[arg(long, default_value_t = 1000)]
    batches: u64,
    /// Records per batch.
    #[arg(long, default_value_t = 10)]
    records_per_batch: usize,
    /// Bytes per record value (no key).
    #[arg(long, default_value_t = 100)]
    record_bytes: usize,
    /// Partitions of the topic; batches go round-robin.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// acks of every produce request (0, 1 or -1).
    #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
    acks: i16,
    /// After producing, fetch every record back (1 MiB per fetch).
    #[arg(long)]
    fetch: bool,
}

/// Drives one node by hand: requests in as frames, responses out as frames.
struct Driver {
    node: Node<MemoryStorage>,
    now: Instant,
    next_correlation_id: i32,
    /// Bytes of every response frame encoded (printed: keeps the encoding
    /// from being optimised away and lets two runs be compared).
    response_bytes: u64,
    responses: u64,
    flushes: u64,
    /// The last fetch response, for the next fetch offset.
    last_fetch: Option<kafka_protocol::messages::FetchResponse>,
}

impl Driver {
    fn send(&mut self, connection: u64, key: ApiKey, version: i16, body: &RequestKind) {
        let frame = encode_request(key, version, self.next_correlation_id, "bench", body)
            .expect("request encodes");
        self.next_correlation_id += 1;
        self.send_frame(connection, frame);
    }

    /// Decodes a frame (with its length prefix) as the connection task
    /// does, hands it to the node and drains the node.
    fn send_frame(&mut self, connection: u64, frame: Bytes) {
        let decoded = decode_request(frame.slice(4..)).expect("request decodes");
        let Decoded::Request { header, body } = decoded else {
            panic!("unexpected ApiVersions fallback");
        };
        self.node.handle(
            self.now,
            Input::Request {
                connection,
                header,
                body: *body,
            },
        );
        self.drain();
    }

    /// Encodes every response; syncs each distinct path of the flushes
    /// asked for and completes them, as the node thread does after a batch.
    fn drain(&mut self) {
        loop {
            let mut flushes = Vec::new();
            while let Some(output) = self.node.poll_output() {
                match output {
                    Output::Response {
                        correlation_id,
                        api_key,
                        api_version,
                        body,
                        ..
                    } => {
                        let frame = encode_response(correlation_id, api_key, api_version, &body)
                            .expect("response encodes");
                        self.response_bytes += frame.len() as u64;
                        self.responses += 1;
                        if let ResponseKind::Fetch(fetch) = body {
                            self.last_fetch = Some(fetch);
                        }
                    }
                    Output::Flush { flush_id, paths } => flushes.push((flush_id, paths)),
                    Output::CloseConnection { reason, .. } => {
                        panic!("the node closed a connection: {reason}")
                    }
                    Output::PeerRequest { to, .. } => {
                        panic!("a standalone node sent a request to peer {to}")
                    }
                }
            }
            if flushes.is_empty() {
                return;
            }
            let mut paths: Vec<String> = flushes
                .iter()
                .flat_map(|(_, paths)| paths.iter().cloned())
                .collect();
            paths.sort();
            paths.dedup();
            for path in &paths {
                self.node.storage_mut().sync(path).expect("sync");
            }
            for (flush_id, _) in flushes {
                self.flushes += 1;
                self.node
                    .handle(self.now, Input::FlushCompleted { flush_id });
            }
        }
    }
}

pub fn run_produce_path(args: ProducePathArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.batches > 0 && args.records_per_batch > 0 && args.partitions > 0,
        "sizes must be positive"
    );
    anyhow::ensure!((-1..=1).contains(&args.acks), "acks must be 0, 1 or -1");
    let now = Instant::from_millis(1_700_000_000_000);
    let node = Node::new(NodeConfig::default(), MemoryStorage::new(), 7, now)
        .context("opening the node")?;
    let mut driver = Driver {
        node,
        now,
        next_correlation_id: 1,
        response_bytes: 0,
        responses: 0,
        flushes: 0,
        last_fetch: None,
    };
    let create = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name())
            .with_num_partitions(args.partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(30_000);
    driver.send(
        PRODUCER_CONNECTION,
        ApiKey::CreateTopics,
        7,
        &RequestKind::CreateTopics(create),
    );

    // One request frame per partition, built once: the loop below costs
    // what the broker does per request, not what a client does.
    let value = vec![0x5au8; args.record_bytes];
    let records: Vec<_> = (0..args.records_per_batch)
        .map(|_| (None, Some(value.as_slice())))
        .collect();
    let batch = Bytes::from(build_batch(&records, now.unix_millis()));
    let frames: Vec<Bytes> = (0..args.partitions)
        .map(|partition| {
            let request = ProduceRequest::default()
                .with_acks(args.acks)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic_name())
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch.clone()))])]);
            encode_request(
                ApiKey::Produce,
                PRODUCE_VERSION,
                0,
                "bench",
                &RequestKind::Produce(request),
            )
        })
        .collect::<anyhow::Result<_>>()?;

    for i in 0..args.batches {
        let frame = frames[(i % args.partitions as u64) as usize].clone();
        driver.send_frame(PRODUCER_CONNECTION, frame);
    }
    let produced = args.batches * args.records_per_batch as u64;
    let mut stored = 0u64;
    for partition in 0..args.partitions {
        let (_, end, _) = driver
            .node
            .partition_offsets(TOPIC, partition)
            .context("partition exists")?;
        stored += end as u64;
    }
    anyhow::ensure!(
        stored == produced,
        "produced {produced} records, {stored} stored"
    );

    let mut fetched = 0u64;
    if args.fetch {
        for partition in 0..args.partitions {
            let (_, end, _) = driver
                .node
                .partition_offsets(TOPIC, partition)
                .context("partition exists")?;
            let mut offset = 0i64;
            while offset < end {
                driver.send(
                    CONSUMER_CONNECTION,
                    ApiKey::Fetch,
                    FETCH_VERSION,
                    &RequestKind::Fetch(fetch_request(partition, offset)),
                );
                let response = driver.last_fetch.take().context("fetch answered")?;
                let data = &response.responses[0].partitions[0];
                anyhow::ensure!(data.error_code == 0, "fetch error {}", data.error_code);
                let records = data.records.clone().unwrap_or_default();
                let mut next = offset;
                for (_, header) in BatchIter::new(&records) {
                    fetched += (header.next_offset() - next.max(header.base_offset())) as u64;
                    next = header.next_offset();
                }
                anyhow::ensure!(next > offset, "fetch at {offset} made no progress");
                offset = next;
            }
        }
        anyhow::ensure!(
            fetched == produced,
            "fetched {fetched} of {produced} records"
        );
    }
    println!(
        "produce-path: {} batches x {} records x {} B, {} partition(s), acks {}: \
         {produced} records stored, {fetched} fetched, {} responses ({} B), {} flushes",
        args.batches,
        args.records_per_batch,
        args.record_bytes,
        args.partitions,
        args.acks,
        driver.responses,
        driver.response_bytes,
        driver.flushes
    );
    Ok(())
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn fetch_request(partition: i32, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name())
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_partition_max_bytes(1 << 20)])])
}
