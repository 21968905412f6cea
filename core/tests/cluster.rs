//! Three cluster nodes in one process, wired by a deterministic harness:
//! every peer request and answer goes through the Kafka codec at the
//! version its header names (so what the adapter sends is what the core
//! means), with 1 ms of latency, and flushes complete 1 ms after they are
//! asked for. Clients are plain requests on their own connections.

use bytes::BytesMut;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use seedlog_core::batch::{build_batch, decode_records_for_test};
use seedlog_core::controller::testing::{ongoing_reassignments, Ongoing};
use seedlog_core::node::{
    ClusterConfig, Input, Node, NodeConfig, Output, PeerAddress, STREAM_AHEAD_MAX,
    SYNCED_OFFSET_TAG,
};
use seedlog_core::storage::{MemoryStorage, Storage};
use seedlog_core::Instant;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const LATENCY: Duration = Duration::from_millis(1);
/// Peer connections are numbered `(from * 100 + to) * 10 + channel`;
/// clients from here up.
const CLIENT_CONNECTION_BASE: u64 = 1_000_000;
const EVENTS_PER_RUN_MAX: usize = 5_000_000;

enum Event {
    Input {
        node: i32,
        input: Input,
    },
    /// A client's answer arriving.
    ClientAnswer {
        correlation_id: i32,
        body: ResponseKind,
    },
}

struct ClusterHarness {
    now: Instant,
    nodes: BTreeMap<i32, Option<Node<MemoryStorage>>>,
    configs: BTreeMap<i32, NodeConfig>,
    /// Stopped nodes keep their disks here.
    disks: BTreeMap<i32, MemoryStorage>,
    queue: BTreeMap<(Instant, u64), Event>,
    seq: u64,
    /// Links that drop everything (a partition), as (from, to).
    cut: BTreeSet<(i32, i32)>,
    next_client_correlation: i32,
    client_answers: BTreeMap<i32, ResponseKind>,
    /// Peer requests in flight per peer connection: correlation -> (api key, version).
    peer_versions: BTreeMap<(i32, i32), BTreeMap<i32, (i16, i16)>>,
    /// Nodes whose flushes wait for `release_flushes` (a slow disk).
    flushes_held: BTreeSet<i32>,
    held_flushes: Vec<(i32, u64, Vec<String>)>,
    /// Every replica fetch sent, as the leader decodes it.
    replica_fetches: Vec<SentReplicaFetch>,
}

/// A replica fetch of one partition as it went over the wire.
#[derive(Debug, Clone, Copy)]
struct SentReplicaFetch {
    from: i32,
    to: i32,
    max_wait_ms: i32,
    fetch_offset: i64,
    /// The follower's synced end (seedlog's tagged field), if named.
    synced_offset: Option<i64>,
}

fn address(id: i32) -> PeerAddress {
    PeerAddress {
        host: "127.0.0.1".to_string(),
        port: 19_000 + id as u16,
    }
}

fn config(id: i32, voters: &[i32]) -> NodeConfig {
    let mut cluster = ClusterConfig::new(voters.iter().map(|v| (*v, address(*v))).collect());
    cluster.rack = Some(format!("az-{id}"));
    cluster.replica_lag_time_max_ms = 2_000;
    cluster.broker_session_timeout_ms = 3_000;
    cluster.broker_heartbeat_interval_ms = 500;
    NodeConfig {
        node_id: id,
        advertised_port: 9_092 + id,
        cluster: Some(cluster),
        ..NodeConfig::default()
    }
}

fn roundtrip_request(header: &RequestHeader, body: RequestKind) -> RequestKind {
    let version = header.request_api_version;
    let key = ApiKey::try_from(header.request_api_key).expect("known key");
    let mut buf = BytesMut::new();
    body.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("{key:?} v{version} does not encode: {e}"));
    RequestKind::decode(key, &mut buf.freeze(), version)
        .unwrap_or_else(|e| panic!("{key:?} v{version} does not decode: {e}"))
}

fn roundtrip_response(key: i16, version: i16, body: ResponseKind) -> ResponseKind {
    let key = ApiKey::try_from(key).expect("known key");
    let mut buf = BytesMut::new();
    body.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("{key:?} response v{version} does not encode: {e}"));
    ResponseKind::decode(key, &mut buf.freeze(), version)
        .unwrap_or_else(|e| panic!("{key:?} response v{version} does not decode: {e}"))
}

impl ClusterHarness {
    fn start(ids: &[i32]) -> ClusterHarness {
        ClusterHarness::start_with(ids, ids)
    }

    /// `nodes` run; those in `voters` form the controller quorum, the rest
    /// are broker-only (observers of the metadata log).
    fn start_with(voters: &[i32], nodes: &[i32]) -> ClusterHarness {
        ClusterHarness::start_tuned(voters, nodes, |_| {})
    }

    /// `start_with`, each node's config changed by `tune` first.
    fn start_tuned(
        voters: &[i32],
        nodes: &[i32],
        tune: impl Fn(&mut NodeConfig),
    ) -> ClusterHarness {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let now = Instant::from_millis(1_700_000_000_000);
        let mut h = ClusterHarness {
            now,
            nodes: BTreeMap::new(),
            configs: BTreeMap::new(),
            disks: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            cut: BTreeSet::new(),
            next_client_correlation: 1,
            client_answers: BTreeMap::new(),
            peer_versions: BTreeMap::new(),
            flushes_held: BTreeSet::new(),
            held_flushes: Vec::new(),
            replica_fetches: Vec::new(),
        };
        for &id in nodes {
            let mut config = config(id, voters);
            tune(&mut config);
            let node = Node::new(config.clone(), MemoryStorage::new(), id as u64, now)
                .expect("node opens");
            h.configs.insert(id, config);
            h.nodes.insert(id, Some(node));
        }
        for &id in nodes {
            h.drain(id);
        }
        h
    }

    fn push(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    fn node(&self, id: i32) -> &Node<MemoryStorage> {
        self.nodes[&id].as_ref().expect("node is up")
    }

    fn drain(&mut self, id: i32) {
        let now = self.now;
        let mut outputs = Vec::new();
        if let Some(Some(node)) = self.nodes.get_mut(&id) {
            while let Some(output) = node.poll_output() {
                outputs.push(output);
            }
        }
        for output in outputs {
            match output {
                Output::PeerRequest {
                    to,
                    channel,
                    header,
                    body,
                    ..
                } => {
                    if self.cut.contains(&(id, to))
                        || self.nodes.get(&to).is_none_or(|n| n.is_none())
                    {
                        self.push(
                            now + LATENCY,
                            Event::Input {
                                node: id,
                                input: Input::PeerUnreachable { peer: to },
                            },
                        );
                        continue;
                    }
                    self.peer_versions.entry((id, to)).or_default().insert(
                        header.correlation_id,
                        (header.request_api_key, header.request_api_version),
                    );
                    let body = roundtrip_request(&header, body);
                    if let RequestKind::Fetch(fetch) = &body {
                        self.note_replica_fetch(id, to, fetch);
                    }
                    let connection = ((id as u64) * 100 + to as u64) * 10 + channel as u64;
                    self.push(
                        now + LATENCY,
                        Event::Input {
                            node: to,
                            input: Input::Request {
                                connection,
                                header,
                                body,
                            },
                        },
                    );
                }
                Output::Response {
                    connection,
                    correlation_id,
                    api_key,
                    api_version,
                    body,
                } if connection < CLIENT_CONNECTION_BASE => {
                    let from_node = (connection / 1000) as i32;
                    let Some(versions) = self.peer_versions.get_mut(&(from_node, id)) else {
                        continue;
                    };
                    let Some((key, version)) = versions.remove(&correlation_id) else {
                        continue;
                    };
                    assert_eq!((key, version), (api_key as i16, api_version));
                    if self.cut.contains(&(id, from_node)) {
                        continue;
                    }
                    let body = roundtrip_response(key, version, body);
                    self.push(
                        now + LATENCY,
                        Event::Input {
                            node: from_node,
                            input: Input::PeerResponse {
                                from: id,
                                correlation_id,
                                body,
                            },
                        },
                    );
                }
                Output::Response {
                    correlation_id,
                    api_key,
                    api_version,
                    body,
                    ..
                } => {
                    let body = roundtrip_response(api_key as i16, api_version, body);
                    self.push(
                        now + LATENCY,
                        Event::ClientAnswer {
                            correlation_id,
                            body,
                        },
                    );
                }
                Output::Flush { flush_id, paths } if self.flushes_held.contains(&id) => {
                    self.held_flushes.push((id, flush_id, paths));
                }
                Output::Flush { flush_id, paths } => {
                    let node = self.nodes.get_mut(&id).unwrap().as_mut().unwrap();
                    for path in &paths {
                        if node.storage_mut().exists(path) {
                            node.storage_mut().sync(path).expect("sync");
                        }
                    }
                    self.push(
                        now + LATENCY,
                        Event::Input {
                            node: id,
                            input: Input::FlushCompleted { flush_id },
                        },
                    );
                }
                Output::CloseConnection { connection, reason } => {
                    panic!("node {id} closed connection {connection}: {reason}")
                }
            }
        }
    }

    fn note_replica_fetch(&mut self, from: i32, to: i32, fetch: &FetchRequest) {
        for fp in fetch.topics.iter().flat_map(|t| &t.partitions) {
            let synced_offset = fp
                .unknown_tagged_fields
                .get(&SYNCED_OFFSET_TAG)
                .map(|v| i64::from_be_bytes(v.as_ref().try_into().expect("an Int64")));
            self.replica_fetches.push(SentReplicaFetch {
                from,
                to,
                max_wait_ms: fetch.max_wait_ms,
                fetch_offset: fp.fetch_offset,
                synced_offset,
            });
        }
    }

    /// Completes the flushes held so far (the node's disk syncs them now);
    /// later ones are held again while the node stays in `flushes_held`.
    fn release_flushes(&mut self) {
        for (id, flush_id, paths) in std::mem::take(&mut self.held_flushes) {
            let Some(Some(node)) = self.nodes.get_mut(&id) else {
                continue;
            };
            for path in &paths {
                if node.storage_mut().exists(path) {
                    node.storage_mut().sync(path).expect("sync");
                }
            }
            let at = self.now + LATENCY;
            self.push(
                at,
                Event::Input {
                    node: id,
                    input: Input::FlushCompleted { flush_id },
                },
            );
        }
    }

    /// Runs events and timers until `until`.
    fn run_until(&mut self, until: Instant) {
        for _ in 0..EVENTS_PER_RUN_MAX {
            let next_event = self.queue.keys().next().map(|(at, _)| *at);
            let next_timer = self
                .nodes
                .iter()
                .filter_map(|(id, n)| Some((n.as_ref()?.poll_timeout()?, *id)))
                .min();
            let event_first = match (next_event, next_timer) {
                (Some(e), Some((t, _))) => e <= t,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let at = if event_first {
                next_event.unwrap()
            } else {
                next_timer.unwrap().0
            };
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            if event_first {
                let key = *self.queue.keys().next().unwrap();
                match self.queue.remove(&key).unwrap() {
                    Event::Input { node, input } => {
                        if let Some(Some(n)) = self.nodes.get_mut(&node) {
                            n.handle(self.now, input);
                            n.check_invariants();
                        }
                        self.drain(node);
                    }
                    Event::ClientAnswer {
                        correlation_id,
                        body,
                    } => {
                        self.client_answers.insert(correlation_id, body);
                    }
                }
            } else {
                let id = next_timer.unwrap().1;
                let now = self.now;
                self.nodes
                    .get_mut(&id)
                    .unwrap()
                    .as_mut()
                    .unwrap()
                    .handle_timeout(now);
                self.drain(id);
            }
        }
        self.now = self.now.max(until);
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Sends a client request to `node`; returns its correlation id.
    fn send(&mut self, node: i32, key: ApiKey, version: i16, body: RequestKind) -> i32 {
        let correlation_id = self.next_client_correlation;
        self.next_client_correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("test-client")));
        let body = roundtrip_request(&header, body);
        let at = self.now + LATENCY;
        self.push(
            at,
            Event::Input {
                node,
                input: Input::Request {
                    connection: CLIENT_CONNECTION_BASE + node as u64,
                    header,
                    body,
                },
            },
        );
        correlation_id
    }

    /// Sends and runs until the answer arrives (or `wait` passes).
    fn call(
        &mut self,
        node: i32,
        key: ApiKey,
        version: i16,
        body: RequestKind,
        wait: Duration,
    ) -> Option<ResponseKind> {
        let id = self.send(node, key, version, body);
        self.wait_answer(id, wait)
    }

    /// Runs until client request `id` is answered (or `wait` passes).
    fn wait_answer(&mut self, id: i32, wait: Duration) -> Option<ResponseKind> {
        let deadline = self.now + wait;
        while self.now < deadline {
            self.run_for(Duration::from_millis(10));
            if let Some(answer) = self.client_answers.remove(&id) {
                return Some(answer);
            }
        }
        None
    }

    fn metadata(&mut self, node: i32, topic: &str) -> MetadataResponse {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]));
        match self.call(
            node,
            ApiKey::Metadata,
            12,
            RequestKind::Metadata(request),
            Duration::from_secs(5),
        ) {
            Some(ResponseKind::Metadata(m)) => m,
            other => panic!("metadata: {other:?}"),
        }
    }

    /// Polls Metadata until every partition of `topic` has a leader and
    /// `brokers` brokers are listed.
    fn wait_for_leaders(&mut self, via: i32, topic: &str, brokers: usize) -> MetadataResponse {
        for _ in 0..200 {
            let m = self.metadata(via, topic);
            let ready = m.brokers.len() == brokers
                && m.topics.len() == 1
                && m.topics[0].error_code == 0
                && !m.topics[0].partitions.is_empty()
                && m.topics[0].partitions.iter().all(|p| p.leader_id.0 >= 0);
            if ready {
                return m;
            }
            self.run_for(Duration::from_millis(100));
        }
        panic!(
            "no leaders for {topic} via {via}: {:?}",
            self.metadata(via, topic)
        );
    }

    fn create_topic(
        &mut self,
        via: i32,
        topic: &str,
        partitions: i32,
        rf: i16,
        min_isr: &str,
    ) -> CreateTopicsResponse {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_num_partitions(partitions)
                .with_replication_factor(rf)
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("min.insync.replicas"))
                    .with_value(Some(StrBytes::from_string(min_isr.to_string())))])]);
        match self.call(
            via,
            ApiKey::CreateTopics,
            7,
            RequestKind::CreateTopics(request),
            Duration::from_secs(10),
        ) {
            Some(ResponseKind::CreateTopics(r)) => r,
            other => panic!("create topics: {other:?}"),
        }
    }

    /// Sends an acks=all produce of `values` in one batch; returns its
    /// correlation id (the answer lands in `client_answers`).
    fn send_produce(
        &mut self,
        node: i32,
        topic: &str,
        partition: i32,
        values: &[&[u8]],
        timeout_ms: i32,
    ) -> i32 {
        let records: Vec<seedlog_core::batch::TestRecord<'_>> =
            values.iter().map(|v| (None, Some(*v))).collect();
        let batch = build_batch(&records, self.now.unix_millis());
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(timeout_ms)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch.into()))])]);
        self.send(node, ApiKey::Produce, 9, RequestKind::Produce(request))
    }

    fn produce(
        &mut self,
        node: i32,
        topic: &str,
        partition: i32,
        values: &[&[u8]],
    ) -> Option<(i16, i64)> {
        let id = self.send_produce(node, topic, partition, values, 5_000);
        match self.wait_answer(id, Duration::from_secs(10))? {
            ResponseKind::Produce(r) => {
                let p = &r.responses[0].partition_responses[0];
                Some((p.error_code, p.base_offset))
            }
            other => panic!("produce: {other:?}"),
        }
    }

    /// Every value a consumer reads from the leader, from offset 0.
    fn consume(&mut self, node: i32, topic_id: uuid::Uuid, partition: i32) -> (i16, Vec<Vec<u8>>) {
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(64 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(64 << 20)])]);
        match self.call(
            node,
            ApiKey::Fetch,
            17,
            RequestKind::Fetch(request),
            Duration::from_secs(5),
        ) {
            Some(ResponseKind::Fetch(r)) => {
                let pd = &r.responses[0].partitions[0];
                let values = pd
                    .records
                    .as_ref()
                    .map(|b| {
                        decode_records_for_test(b)
                            .into_iter()
                            .filter_map(|(_, v)| v)
                            .collect()
                    })
                    .unwrap_or_default();
                (pd.error_code, values)
            }
            other => panic!("fetch: {other:?}"),
        }
    }

    /// Stops a node: its unsynced writes are lost (a power cut).
    fn crash(&mut self, id: i32) {
        let node = self.nodes.get_mut(&id).unwrap().take().expect("running");
        let mut storage = node.into_storage();
        storage.crash();
        self.disks.insert(id, storage);
        // Connections to and from it break.
        for other in self.configs.keys().copied().collect::<Vec<_>>() {
            if other != id && self.nodes[&other].is_some() {
                let at = self.now + LATENCY;
                self.push(
                    at,
                    Event::Input {
                        node: other,
                        input: Input::PeerUnreachable { peer: id },
                    },
                );
                for channel in 0..3 {
                    self.push(
                        at,
                        Event::Input {
                            node: other,
                            input: Input::ConnectionClosed {
                                connection: ((id as u64) * 100 + other as u64) * 10 + channel,
                            },
                        },
                    );
                }
            }
        }
        self.queue
            .retain(|_, e| !matches!(e, Event::Input { node, .. } if *node == id));
    }

    /// Cuts every link to and from `id` (its clients still reach it).
    fn isolate(&mut self, id: i32) {
        for other in self.configs.keys().copied().collect::<Vec<_>>() {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn restart(&mut self, id: i32) {
        let storage = self.disks.remove(&id).expect("crashed before");
        let node = Node::new(
            self.configs[&id].clone(),
            storage,
            100 + id as u64,
            self.now,
        )
        .expect("node reopens");
        self.nodes.insert(id, Some(node));
        self.drain(id);
    }
}

fn leader_of(m: &MetadataResponse, partition: i32) -> i32 {
    m.topics[0]
        .partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .expect("partition listed")
        .leader_id
        .0
}

#[test]
fn three_nodes_elect_a_controller_register_and_replicate_acks_all_writes() {
    let mut h = ClusterHarness::start(&[1, 2, 3]);
    h.run_for(Duration::from_secs(5));
    for n in 1..=3 {
        let status = h.node(n).cluster_status().expect("cluster node");
        assert_eq!(
            status.unfenced_brokers,
            vec![1, 2, 3],
            "node {n}: {status:?}"
        );
        assert_eq!(status.controller_active, status.quorum_leader == Some(n));
    }
    let created = h.create_topic(2, "orders", 3, 3, "2");
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let m = h.wait_for_leaders(1, "orders", 3);
    let topic_id = m.topics[0].topic_id;
    for p in &m.topics[0].partitions {
        assert_eq!(p.replica_nodes.len(), 3, "RF 3: {p:?}");
        let racks: BTreeSet<i32> = p.replica_nodes.iter().map(|r| r.0).collect();
        assert_eq!(racks.len(), 3, "replicas on three brokers");
    }
    // Produce to each partition's leader, acks=all.
    for partition in 0..3 {
        let leader = leader_of(&m, partition);
        for i in 0..20 {
            let value = format!("p{partition}-{i}");
            let (code, _) = h
                .produce(leader, "orders", partition, &[value.as_bytes()])
                .expect("produce answered");
            assert_eq!(code, 0, "acks=all produce to leader {leader}");
        }
        // A non-leader refuses.
        let other = (1..=3).find(|n| *n != leader).unwrap();
        let (code, _) = h
            .produce(other, "orders", partition, &[b"x"])
            .expect("answered");
        assert_eq!(code, 6, "NOT_LEADER_OR_FOLLOWER from a follower");
    }
    h.run_for(Duration::from_secs(1));
    // Every replica holds the same 20 records.
    for partition in 0..3 {
        let ends: Vec<(i64, i64, i64)> = (1..=3)
            .map(|n| {
                h.node(n)
                    .partition_offsets("orders", partition)
                    .expect("hosted")
            })
            .collect();
        assert!(ends.iter().all(|(_, _, leo)| *leo == 20), "{ends:?}");
        let leader = leader_of(&m, partition);
        let (code, values) = h.consume(leader, topic_id, partition);
        assert_eq!(code, 0);
        let expected: Vec<Vec<u8>> = (0..20)
            .map(|i| format!("p{partition}-{i}").into_bytes())
            .collect();
        assert_eq!(values, expected);
    }
}

#[test]
fn a_crashed_leader_is_replaced_and_acknowledged_writes_survive() {
    let mut h = ClusterHarness::start(&[1, 2, 3]);
    h.run_for(Duration::from_secs(5));
    assert_eq!(
        h.create_topic(1, "events", 1, 3, "2").topics[0].error_code,
        0
    );
    let m = h.wait_for_leaders(1, "events", 3);
    let topic_id = m.topics[0].topic_id;
    let leader = leader_of(&m, 0);
    let mut acked = Vec::new();
    for i in 0..50 {
        let value = format!("v{i}");
        if let Some((0, _)) = h.produce(leader, "events", 0, &[value.as_bytes()]) {
            acked.push(value.into_bytes());
        }
    }
    assert_eq!(acked.len(), 50);
    h.crash(leader);
    let survivor = (1..=3).find(|n| *n != leader).unwrap();
    // The controller fences the dead broker and elects another leader.
    let mut new_leader = -1;
    for _ in 0..100 {
        h.run_for(Duration::from_millis(200));
        let m = h.metadata(survivor, "events");
        let l = leader_of(&m, 0);
        if l >= 0 && l != leader {
            new_leader = l;
            break;
        }
    }
    assert!(new_leader >= 0, "a new leader was elected");
    for i in 50..60 {
        let value = format!("v{i}");
        let (code, _) = h
            .produce(new_leader, "events", 0, &[value.as_bytes()])
            .expect("answered");
        assert_eq!(code, 0, "acks=all with two of three replicas");
        acked.push(value.into_bytes());
    }
    let (code, values) = h.consume(new_leader, topic_id, 0);
    assert_eq!(code, 0);
    assert_eq!(values, acked, "every acknowledged write, in order");
    // The old leader comes back as a follower and catches up.
    h.restart(leader);
    h.run_for(Duration::from_secs(8));
    let (_, _, leo) = h
        .node(leader)
        .partition_offsets("events", 0)
        .expect("hosted again");
    assert_eq!(leo, 60, "the restarted replica caught up");
}

/// A restarted node rebuilds its metadata image from the log. Until it has
/// read up to its own registration it must not describe the cluster from
/// the partial image: the soak saw librdkafka drop a topic ("partition
/// count changed from 3 to 0") after a restarted broker answered
/// UNKNOWN_TOPIC_OR_PARTITION for it, and an idempotent producer stall for
/// good (librdkafka decommissions every broker a Metadata answer leaves
/// out). Every answer is either the whole view or the startup answer (no
/// brokers and no topics, which clients retry), never anything between.
#[test]
fn a_restarted_broker_serves_no_partial_metadata_before_it_caught_up() {
    let mut h = ClusterHarness::start(&[1, 2, 3]);
    h.run_for(Duration::from_secs(5));
    for topic in ["a", "b", "events"] {
        assert_eq!(h.create_topic(1, topic, 3, 3, "2").topics[0].error_code, 0);
    }
    h.wait_for_leaders(1, "events", 3);
    h.crash(3);
    h.run_for(Duration::from_secs(1));
    h.restart(3);
    let lna = kafka_protocol::ResponseError::LeaderNotAvailable.code();
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_static_str("events"))))]));
    let (mut starting, mut whole) = (0, 0);
    for _ in 0..500 {
        let answer = h.call(
            3,
            ApiKey::Metadata,
            12,
            RequestKind::Metadata(request.clone()),
            Duration::from_secs(1),
        );
        let Some(ResponseKind::Metadata(m)) = answer else {
            panic!("metadata: {answer:?}");
        };
        if m.brokers.is_empty() {
            assert!(m.topics.is_empty(), "before the catch-up: {m:?}");
            assert_eq!(m.controller_id.0, -1, "{m:?}");
            // DescribeTopicPartitions has no such answer: a retriable
            // error rather than "no such topic".
            let request = DescribeTopicPartitionsRequest::default().with_topics(vec![
                describe_topic_partitions_request::TopicRequest::default()
                    .with_name(TopicName(StrBytes::from_static_str("events"))),
            ]);
            let answer = h.call(
                3,
                ApiKey::DescribeTopicPartitions,
                0,
                RequestKind::DescribeTopicPartitions(request),
                Duration::from_secs(1),
            );
            if let Some(ResponseKind::DescribeTopicPartitions(d)) = answer {
                let code = d.topics[0].error_code;
                assert!(code == lna || code == 0, "{d:?}");
            }
            starting += 1;
        } else {
            assert_eq!(m.topics.len(), 1, "{m:?}");
            let topic = &m.topics[0];
            assert_eq!(m.brokers.len(), 3, "a partial broker list: {m:?}");
            assert_eq!(topic.error_code, 0, "{m:?}");
            assert_eq!(topic.partitions.len(), 3, "a partial topic: {m:?}");
            whole += 1;
            if whole >= 3 {
                break;
            }
        }
        h.run_for(Duration::from_millis(2));
    }
    assert!(starting > 0, "the first answers come before the catch-up");
    assert!(
        whole >= 3,
        "the restarted node catches up ({starting} startup answers)"
    );
    let status = h.node(3).cluster_status().expect("a cluster node");
    assert!(
        status.broker_caught_up && status.broker_running,
        "{status:?}"
    );
}

/// Seeded rounds of: produce acks=all to whoever leads, crash one node
/// (power cut: unsynced writes lost), produce more, restart it. After the
/// last round every acknowledged value must be readable from the leader, in
/// the order acknowledged, and every replica must hold the same log.
#[test]
fn acknowledged_writes_survive_seeded_crashes_and_isolations_of_any_one_node() {
    use rand::{Rng, SeedableRng};
    for seed in 0..24u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut h = ClusterHarness::start(&[1, 2, 3]);
        h.run_for(Duration::from_secs(3));
        assert_eq!(
            h.create_topic(1 + (seed % 3) as i32, "t", 1, 3, "2").topics[0].error_code,
            0
        );
        let mut m = h.wait_for_leaders(1, "t", 3);
        let topic_id = m.topics[0].topic_id;
        let mut acked: Vec<Vec<u8>> = Vec::new();
        let mut next_value = 0u32;
        for _round in 0..3 {
            for _ in 0..rng.gen_range(1..15) {
                let leader = leader_of(&m, 0);
                let value = format!("s{seed}-{next_value}");
                next_value += 1;
                if leader >= 0 && h.nodes[&leader].is_some() {
                    if let Some((0, _)) = h.produce(leader, "t", 0, &[value.as_bytes()]) {
                        acked.push(value.into_bytes());
                    }
                }
            }
            let victim = rng.gen_range(1..=3);
            // A crash (power cut) or an isolation (the node keeps running,
            // its clients still reach it, its peers do not).
            let isolate = rng.gen_bool(0.5);
            if isolate {
                h.isolate(victim);
            } else {
                h.crash(victim);
            }
            h.run_for(Duration::from_millis(rng.gen_range(0..6_000)));
            let alive = (1..=3).find(|n| *n != victim).unwrap();
            m = h.metadata(alive, "t");
            for _ in 0..rng.gen_range(0..10) {
                // Clients write to whoever their metadata names, the
                // isolated node included: what it acknowledges must last.
                let leader = leader_of(&m, 0);
                let value = format!("s{seed}-{next_value}");
                next_value += 1;
                if leader >= 0 && h.nodes[&leader].is_some() {
                    if let Some((0, _)) = h.produce(leader, "t", 0, &[value.as_bytes()]) {
                        acked.push(value.into_bytes());
                    }
                }
                if isolate && h.nodes[&victim].is_some() {
                    let value = format!("s{seed}-{next_value}-stale");
                    next_value += 1;
                    if let Some((0, _)) = h.produce(victim, "t", 0, &[value.as_bytes()]) {
                        acked.push(value.into_bytes());
                    }
                }
            }
            if isolate {
                h.heal();
            } else {
                h.restart(victim);
            }
            h.run_for(Duration::from_secs(4));
            m = h.wait_for_leaders(1, "t", 3);
        }
        h.run_for(Duration::from_secs(5));
        let m = h.wait_for_leaders(1, "t", 3);
        let leader = leader_of(&m, 0);
        let (code, values) = h.consume(leader, topic_id, 0);
        assert_eq!(code, 0, "seed {seed}");
        let mut expected = acked.iter();
        let mut matched = 0;
        for v in &values {
            if expected.as_slice().first() == Some(v) {
                expected.next();
                matched += 1;
            }
        }
        assert_eq!(
            matched,
            acked.len(),
            "seed {seed}: every acked value, in order; read {values:?}, acked {acked:?}"
        );
        let ends: BTreeSet<i64> = (1..=3)
            .map(|n| h.node(n).partition_offsets("t", 0).expect("hosted").2)
            .collect();
        assert_eq!(
            ends.len(),
            1,
            "seed {seed}: replicas converge to one log end: {ends:?}"
        );
    }
}

impl ClusterHarness {
    fn find_coordinator(&mut self, via: i32, group: &str) -> (i16, i32) {
        let request = FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![StrBytes::from_string(group.to_string())]);
        match self.call(
            via,
            ApiKey::FindCoordinator,
            4,
            RequestKind::FindCoordinator(request),
            Duration::from_secs(5),
        ) {
            Some(ResponseKind::FindCoordinator(r)) => {
                let c = &r.coordinators[0];
                (c.error_code, c.node_id.0)
            }
            other => panic!("find coordinator: {other:?}"),
        }
    }

    fn commit(&mut self, node: i32, group: &str, topic: &str, partition: i32, offset: i64) -> i16 {
        use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(offset)])]);
        match self.call(
            node,
            ApiKey::OffsetCommit,
            8,
            RequestKind::OffsetCommit(request),
            Duration::from_secs(5),
        ) {
            Some(ResponseKind::OffsetCommit(r)) => r.topics[0].partitions[0].error_code,
            other => panic!("commit: {other:?}"),
        }
    }

    fn committed(&mut self, node: i32, group: &str, topic: &str, partition: i32) -> (i16, i64) {
        use offset_fetch_request::OffsetFetchRequestTopic;
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_indexes(vec![partition])]));
        match self.call(
            node,
            ApiKey::OffsetFetch,
            7,
            RequestKind::OffsetFetch(request),
            Duration::from_secs(5),
        ) {
            Some(ResponseKind::OffsetFetch(r)) if r.error_code != 0 => (r.error_code, -1),
            Some(ResponseKind::OffsetFetch(r)) => (0, r.topics[0].partitions[0].committed_offset),
            other => panic!("offset fetch: {other:?}"),
        }
    }

    /// FindCoordinator until a coordinator is named.
    fn wait_for_coordinator(&mut self, via: i32, group: &str) -> i32 {
        for _ in 0..100 {
            let (code, node) = self.find_coordinator(via, group);
            if code == 0 {
                return node;
            }
            self.run_for(Duration::from_millis(200));
        }
        panic!("no coordinator for {group}");
    }
}

#[test]
fn committed_offsets_survive_the_loss_of_the_group_coordinator() {
    let mut h = ClusterHarness::start(&[1, 2, 3]);
    h.run_for(Duration::from_secs(3));
    assert_eq!(
        h.create_topic(1, "orders", 2, 3, "2").topics[0].error_code,
        0
    );
    h.wait_for_leaders(1, "orders", 3);
    let coordinator = h.wait_for_coordinator(2, "billing");
    let m = h.metadata(1, "__consumer_offsets");
    assert_eq!(
        m.topics[0].partitions.len(),
        50,
        "offsets topic created with 50 partitions"
    );
    assert!(
        m.topics[0]
            .partitions
            .iter()
            .all(|p| p.replica_nodes.len() == 3),
        "replicated 3 ways"
    );
    // Only the coordinator serves the group.
    let other = (1..=3).find(|n| *n != coordinator).unwrap();
    assert_eq!(
        h.commit(other, "billing", "orders", 0, 5),
        16,
        "NOT_COORDINATOR elsewhere"
    );
    assert_eq!(h.commit(coordinator, "billing", "orders", 0, 42), 0);
    assert_eq!(h.commit(coordinator, "billing", "orders", 1, 7), 0);
    assert_eq!(h.committed(coordinator, "billing", "orders", 0), (0, 42));
    h.crash(coordinator);
    let survivor = (1..=3).find(|n| *n != coordinator).unwrap();
    let mut new_coordinator = -1;
    for _ in 0..100 {
        h.run_for(Duration::from_millis(200));
        let (code, node) = h.find_coordinator(survivor, "billing");
        if code == 0 && node != coordinator {
            new_coordinator = node;
            break;
        }
    }
    assert!(new_coordinator > 0, "the group moved to another broker");
    // Its own metadata may trail the survivor's by a moment: retry
    // NOT_COORDINATOR as clients do.
    let mut first = h.committed(new_coordinator, "billing", "orders", 0);
    for _ in 0..20 {
        if first.0 != 16 {
            break;
        }
        h.run_for(Duration::from_millis(100));
        first = h.committed(new_coordinator, "billing", "orders", 0);
    }
    assert_eq!(first, (0, 42));
    assert_eq!(h.committed(new_coordinator, "billing", "orders", 1), (0, 7));
    assert_eq!(h.commit(new_coordinator, "billing", "orders", 0, 43), 0);
    assert_eq!(
        h.committed(new_coordinator, "billing", "orders", 0),
        (0, 43)
    );
}

#[test]
fn controlled_shutdown_moves_leadership_away_before_the_broker_stops() {
    let mut h = ClusterHarness::start(&[1, 2, 3]);
    h.run_for(Duration::from_secs(3));
    assert_eq!(h.create_topic(1, "t", 6, 3, "2").topics[0].error_code, 0);
    let m = h.wait_for_leaders(1, "t", 3);
    let leading: Vec<i32> = (1..=3)
        .filter(|n| (0..6).any(|p| leader_of(&m, p) == *n))
        .collect();
    let stopping = leading[0];
    let now = h.now;
    h.nodes
        .get_mut(&stopping)
        .unwrap()
        .as_mut()
        .unwrap()
        .begin_shutdown(now);
    h.drain(stopping);
    for _ in 0..100 {
        if h.node(stopping).shutdown_ready() {
            break;
        }
        h.run_for(Duration::from_millis(100));
    }
    assert!(
        h.node(stopping).shutdown_ready(),
        "the controller released the broker"
    );
    let other = (1..=3).find(|n| *n != stopping).unwrap();
    let m = h.metadata(other, "t");
    for p in 0..6 {
        assert_ne!(leader_of(&m, p), stopping, "partition {p} moved away");
        assert!(leader_of(&m, p) >= 0);
    }
    h.crash(stopping);
    // No session timeout to wait for: acks=all works at once on every
    // partition, with the two brokers left.
    for p in 0..6 {
        let leader = leader_of(&m, p);
        let (code, _) = h.produce(leader, "t", p, &[b"after"]).expect("answered");
        assert_eq!(code, 0, "partition {p} writable right after the stop");
    }
}

#[test]
fn preferred_leader_election_moves_leadership_back_after_a_restart() {
    let mut h = ClusterHarness::start(&[1, 2, 3]);
    h.run_for(Duration::from_secs(3));
    assert_eq!(h.create_topic(1, "p", 1, 3, "1").topics[0].error_code, 0);
    let m = h.wait_for_leaders(1, "p", 3);
    let preferred = m.topics[0].partitions[0].replica_nodes[0].0;
    assert_eq!(
        leader_of(&m, 0),
        preferred,
        "the first replica leads at creation"
    );
    h.crash(preferred);
    let other = (1..=3).find(|n| *n != preferred).unwrap();
    let mut moved = false;
    for _ in 0..100 {
        h.run_for(Duration::from_millis(200));
        let m = h.metadata(other, "p");
        // `other` may not have learned of the topic yet.
        if m.topics[0].partitions.is_empty() {
            continue;
        }
        let l = leader_of(&m, 0);
        if l >= 0 && l != preferred {
            moved = true;
            break;
        }
    }
    assert!(moved, "leadership moved off the crashed broker");
    h.restart(preferred);
    h.run_for(Duration::from_secs(6));
    let request = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(5_000)
        .with_topic_partitions(Some(vec![elect_leaders_request::TopicPartitions::default(
        )
        .with_topic(TopicName(StrBytes::from_static_str("p")))
        .with_partitions(vec![0])]));
    let answer = h.call(
        other,
        ApiKey::ElectLeaders,
        2,
        RequestKind::ElectLeaders(request),
        Duration::from_secs(5),
    );
    let Some(ResponseKind::ElectLeaders(r)) = answer else {
        panic!("elect leaders: {answer:?}");
    };
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(
        r.replica_election_results[0].partition_result[0].error_code, 0,
        "{r:?}"
    );
    h.run_for(Duration::from_secs(1));
    assert_eq!(
        leader_of(&h.metadata(other, "p"), 0),
        preferred,
        "the preferred replica leads again"
    );
}

#[test]
fn topic_configs_altered_through_any_node_reach_every_broker() {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let mut h = ClusterHarness::start(&[1, 2, 3]);
    h.run_for(Duration::from_secs(3));
    assert_eq!(h.create_topic(1, "c", 1, 3, "2").topics[0].error_code, 0);
    h.wait_for_leaders(1, "c", 3);
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("c"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_static_str("3600000")))]),
    ]);
    let answer = h.call(
        3,
        ApiKey::IncrementalAlterConfigs,
        1,
        RequestKind::IncrementalAlterConfigs(request),
        Duration::from_secs(5),
    );
    let Some(ResponseKind::IncrementalAlterConfigs(r)) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(r.responses[0].error_code, 0, "{r:?}");
    h.run_for(Duration::from_secs(1));
    for node in 1..=3 {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("c")),
        ]);
        let answer = h.call(
            node,
            ApiKey::DescribeConfigs,
            4,
            RequestKind::DescribeConfigs(request),
            Duration::from_secs(5),
        );
        let Some(ResponseKind::DescribeConfigs(r)) = answer else {
            panic!("{answer:?}")
        };
        let retention = r.results[0]
            .configs
            .iter()
            .find(|c| c.name.as_str() == "retention.ms")
            .expect("listed");
        assert_eq!(
            retention.value.as_ref().map(|v| v.as_str()),
            Some("3600000"),
            "node {node}"
        );
        assert_eq!(
            retention.config_source, 1,
            "a topic override on node {node}"
        );
    }
}

#[test]
fn a_broker_only_node_observes_the_metadata_log_and_hosts_replicas() {
    let mut h = ClusterHarness::start_with(&[1, 2, 3], &[1, 2, 3, 4]);
    h.run_for(Duration::from_secs(4));
    let status = h.node(4).cluster_status().expect("cluster node");
    assert_eq!(
        status.quorum_role,
        seedlog_core::quorum::Role::Follower,
        "{status:?}"
    );
    assert_eq!(status.unfenced_brokers, vec![1, 2, 3, 4], "{status:?}");
    assert!(!status.controller_active);
    // It runs no controller: nothing of the log is replayed into one
    // (the broker's own image is what it acts on), while the voters
    // replay all of it.
    assert_eq!(status.controller_replayed_to, 0, "{status:?}");
    for voter in [1, 2, 3] {
        let voter_status = h.node(voter).cluster_status().expect("cluster node");
        assert!(
            voter_status.controller_replayed_to > 0,
            "voter {voter}: {voter_status:?}"
        );
    }
    // Four brokers, RF 4: every partition has a replica on the observer.
    assert_eq!(h.create_topic(4, "wide", 4, 4, "3").topics[0].error_code, 0);
    let m = h.wait_for_leaders(4, "wide", 4);
    let topic_id = m.topics[0].topic_id;
    for p in 0..4 {
        let leader = leader_of(&m, p);
        let (code, _) = h
            .produce(leader, "wide", p, &[b"x", b"y"])
            .expect("answered");
        assert_eq!(code, 0);
    }
    h.run_for(Duration::from_secs(1));
    for p in 0..4 {
        assert_eq!(h.node(4).partition_offsets("wide", p).expect("hosted").2, 2);
    }
    // Losing the quorum leader: the observer finds the new one.
    let leader = h
        .node(4)
        .cluster_status()
        .unwrap()
        .quorum_leader
        .expect("known");
    h.crash(leader);
    h.run_for(Duration::from_secs(10));
    let status = h.node(4).cluster_status().unwrap();
    assert!(
        status.quorum_leader.is_some_and(|l| l != leader),
        "{status:?}"
    );
    assert!(!status.unfenced_brokers.contains(&leader), "{status:?}");
    let m = h.wait_for_leaders(4, "wide", 3);
    let p0 = leader_of(&m, 0);
    let (code, values) = h.consume(p0, topic_id, 0);
    assert_eq!((code, values.len()), (0, 2));
}

#[test]
fn the_last_node_standing_stops_without_a_controller_to_release_it() {
    let mut h = ClusterHarness::start(&[1, 2, 3]);
    h.run_for(Duration::from_secs(3));
    h.crash(2);
    h.crash(3);
    h.run_for(Duration::from_secs(2));
    let now = h.now;
    h.nodes
        .get_mut(&1)
        .unwrap()
        .as_mut()
        .unwrap()
        .begin_shutdown(now);
    h.drain(1);
    h.run_for(Duration::from_secs(3));
    assert!(
        h.node(1).shutdown_ready(),
        "gives up after a few heartbeats find no controller"
    );
}

impl ClusterHarness {
    /// AlterPartitionReassignments of one partition through `via`.
    fn reassign(&mut self, via: i32, topic: &str, partition: i32, target: Option<&[i32]>) -> i16 {
        let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![
            alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    alter_partition_reassignments_request::ReassignablePartition::default()
                        .with_partition_index(partition)
                        .with_replicas(target.map(|t| t.iter().map(|&r| BrokerId(r)).collect())),
                ]),
        ]);
        match self.call(
            via,
            ApiKey::AlterPartitionReassignments,
            0,
            RequestKind::AlterPartitionReassignments(request),
            Duration::from_secs(5),
        ) {
            Some(ResponseKind::AlterPartitionReassignments(r)) => {
                assert_eq!(r.error_code, 0, "{r:?}");
                r.responses[0].partitions[0].error_code
            }
            other => panic!("alter partition reassignments: {other:?}"),
        }
    }

    /// The ongoing reassignments as (topic, partition, replicas, adding,
    /// removing).
    fn reassignments(&mut self, via: i32) -> Vec<Ongoing> {
        let answer = self.call(
            via,
            ApiKey::ListPartitionReassignments,
            0,
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default()),
            Duration::from_secs(5),
        );
        let Some(ResponseKind::ListPartitionReassignments(r)) = answer else {
            panic!("list partition reassignments: {answer:?}");
        };
        ongoing_reassignments(&r)
    }
}

#[test]
fn a_reassignment_moves_a_partition_under_acks_all_writes_and_deletes_the_old_copy() {
    let mut h = ClusterHarness::start_with(&[1, 2, 3], &[1, 2, 3, 4]);
    h.run_for(Duration::from_secs(4));
    assert_eq!(h.create_topic(1, "r", 1, 3, "2").topics[0].error_code, 0);
    let m = h.wait_for_leaders(1, "r", 4);
    let topic_id = m.topics[0].topic_id;
    let before: Vec<i32> = m.topics[0].partitions[0]
        .replica_nodes
        .iter()
        .map(|b| b.0)
        .collect();
    let leader = leader_of(&m, 0);
    // Move off the leader and onto the broker that has no copy.
    let spare = (1..=4).find(|b| !before.contains(b)).unwrap();
    let mut target: Vec<i32> = before.iter().copied().filter(|&b| b != leader).collect();
    target.push(spare);
    let mut acked: Vec<Vec<u8>> = Vec::new();
    let mut produce = |h: &mut ClusterHarness, n: usize| {
        for i in 0..n {
            let value = format!("v{}", acked.len() + i).into_bytes();
            // Whoever leads now; a moved leader answers NOT_LEADER and the
            // write is retried by the next call.
            let m = h.metadata(1, "r");
            let l = leader_of(&m, 0);
            if l < 0 {
                h.run_for(Duration::from_millis(100));
                continue;
            }
            if let Some((0, _)) = h.produce(l, "r", 0, &[&value]) {
                acked.push(value);
            }
        }
    };
    produce(&mut h, 20);
    assert_eq!(h.reassign(2, "r", 0, Some(&target)), 0);
    let listed = h.reassignments(3);
    // Either still in progress (grown) or already complete.
    for (topic, partition, replicas, adding, removing) in &listed {
        assert_eq!((topic.as_str(), *partition), ("r", 0));
        assert_eq!(&replicas[..target.len()], &target[..]);
        assert_eq!(adding, &vec![spare]);
        assert_eq!(removing, &vec![leader]);
    }
    produce(&mut h, 20);
    let mut done = false;
    for _ in 0..100 {
        if h.reassignments(1).is_empty() {
            done = true;
            break;
        }
        h.run_for(Duration::from_millis(100));
    }
    assert!(done, "the reassignment completes");
    h.run_for(Duration::from_secs(1));
    let m = h.metadata(1, "r");
    let after: BTreeSet<i32> = m.topics[0].partitions[0]
        .replica_nodes
        .iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(after, target.iter().copied().collect::<BTreeSet<i32>>());
    let isr: BTreeSet<i32> = m.topics[0].partitions[0]
        .isr_nodes
        .iter()
        .map(|b| b.0)
        .collect();
    assert!(isr.len() >= 2 && isr.is_subset(&after), "{isr:?}");
    let new_leader = leader_of(&m, 0);
    assert!(target.contains(&new_leader), "a target replica leads");
    produce(&mut h, 10);
    h.run_for(Duration::from_secs(1));
    assert_eq!(
        h.node(leader).partition_offsets("r", 0),
        None,
        "the removed replica deleted its copy"
    );
    for &b in &target {
        let (_, hw, leo) = h.node(b).partition_offsets("r", 0).expect("hosted");
        assert_eq!(
            (hw, leo),
            (acked.len() as i64, acked.len() as i64),
            "broker {b}"
        );
    }
    let new_leader = leader_of(&h.metadata(1, "r"), 0);
    let (code, values) = h.consume(new_leader, topic_id, 0);
    assert_eq!(code, 0);
    assert_eq!(values, acked, "every acked record once, in order");
}

impl ClusterHarness {
    /// `count` InitProducerId requests to `node` at once; their answers as
    /// (error code, producer id, epoch), in request order.
    fn init_producer_ids(&mut self, node: i32, count: usize) -> Vec<(i16, i64, i16)> {
        let request = InitProducerIdRequest::default()
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let ids: Vec<i32> = (0..count)
            .map(|_| {
                let body = RequestKind::InitProducerId(request.clone());
                self.send(node, ApiKey::InitProducerId, 4, body)
            })
            .collect();
        for _ in 0..500 {
            if ids.iter().all(|id| self.client_answers.contains_key(id)) {
                break;
            }
            self.run_for(Duration::from_millis(10));
        }
        ids.iter()
            .map(|id| match self.client_answers.remove(id) {
                Some(ResponseKind::InitProducerId(r)) => {
                    (r.error_code, r.producer_id.0, r.producer_epoch)
                }
                other => panic!("init producer id: {other:?}"),
            })
            .collect()
    }

    /// `count` producer ids from `node`, retrying COORDINATOR_LOAD_IN_PROGRESS
    /// as clients do; also returns how many attempts were refused so.
    fn producer_ids(&mut self, node: i32, count: usize) -> (Vec<i64>, usize) {
        const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
        let mut ids = Vec::new();
        let mut refused = 0;
        for _ in 0..1_000 {
            if ids.len() == count {
                return (ids, refused);
            }
            let batch = (count - ids.len()).min(100);
            for (code, id, epoch) in self.init_producer_ids(node, batch) {
                match code {
                    0 => {
                        assert_eq!(epoch, 0, "a fresh id starts at epoch 0");
                        ids.push(id);
                    }
                    COORDINATOR_LOAD_IN_PROGRESS => refused += 1,
                    other => panic!("InitProducerId on {node}: error {other}"),
                }
            }
            self.run_for(Duration::from_millis(20));
        }
        panic!(
            "node {node} handed out {} of {count} producer ids",
            ids.len()
        );
    }

    fn quorum_leader(&self) -> Option<i32> {
        self.nodes
            .values()
            .flatten()
            .filter_map(|n| n.cluster_status())
            .find(|s| s.controller_active)
            .and_then(|s| s.quorum_leader)
    }
}

/// KIP-730: brokers serve InitProducerId from blocks of 1000 the active
/// controller allocates and commits. Until a broker's first block arrives
/// it answers COORDINATOR_LOAD_IN_PROGRESS; ids stay unique across brokers,
/// across a block boundary (the next block is fetched ahead at 90%), and
/// across a controller fail-over, where the new controller goes on after
/// the last committed block.
#[test]
fn producer_ids_come_from_controller_blocks_unique_across_brokers_and_failover() {
    let mut h = ClusterHarness::start(&[1, 2, 3]);
    h.run_for(Duration::from_secs(5));
    let mut seen: BTreeMap<i64, i32> = BTreeMap::new();
    fn note(seen: &mut BTreeMap<i64, i32>, ids: &[i64], node: i32) {
        for id in ids {
            let previous = seen.insert(*id, node);
            assert!(
                previous.is_none(),
                "id {id} handed out twice: {previous:?} and {node}"
            );
        }
    }
    for node in 1..=3 {
        let first = h.init_producer_ids(node, 1);
        assert_eq!(first[0].0, 14, "no block yet: COORDINATOR_LOAD_IN_PROGRESS");
        let (ids, _) = h.producer_ids(node, 10);
        note(&mut seen, &ids, node);
        // One block of 1000 per broker, each its own.
        let block = ids[0] / 1000;
        assert!(ids.iter().all(|id| id / 1000 == block), "{ids:?}");
    }
    let blocks: BTreeSet<i64> = seen.keys().map(|id| id / 1000).collect();
    assert_eq!(
        blocks,
        BTreeSet::from([0, 1, 2]),
        "three blocks, in grant order"
    );
    // Past the block boundary without a refusal: the prefetch arrived.
    let (ids, refused) = h.producer_ids(1, 1_000);
    assert_eq!(refused, 0, "the next block was fetched at 90%");
    note(&mut seen, &ids, 1);
    // The controller fails; its successor replays the committed blocks.
    let old = h.quorum_leader().expect("an active controller");
    h.crash(old);
    let survivors: Vec<i32> = (1..=3).filter(|n| *n != old).collect();
    for _ in 0..100 {
        h.run_for(Duration::from_millis(200));
        if h.quorum_leader().is_some_and(|l| l != old) {
            break;
        }
    }
    assert!(
        h.quorum_leader().is_some_and(|l| l != old),
        "a new controller"
    );
    for &node in &survivors {
        let (ids, _) = h.producer_ids(node, 1_200);
        note(&mut seen, &ids, node);
    }
    // The old controller comes back: a new process asks for a new block.
    h.restart(old);
    h.run_for(Duration::from_secs(5));
    let (ids, refused) = h.producer_ids(old, 10);
    assert!(refused >= 1, "a restarted broker starts without a block");
    let before = *seen.keys().last().unwrap();
    assert!(
        ids.iter().all(|id| *id > before),
        "blocks only move forward: {ids:?} after {before}"
    );
    note(&mut seen, &ids, old);
    let max = *seen.keys().last().unwrap();
    // Every broker's view of the next block start is past every id given
    // (once the last block's commit reached them all).
    h.run_for(Duration::from_secs(1));
    for n in 1..=3 {
        let next = h.node(n).next_producer_id_block().expect("cluster node");
        assert!(next > max, "node {n}: next block {next} after {max}");
    }
}

/// Three nodes whose replica fetches ask for 256 bytes (every answer with
/// a record batch is full) and whose followers' disks do not finish a
/// sync until told: a follower that got a full answer fetches again at
/// once, while it syncs, with no wait at the leader, naming its synced
/// end; the leader does not acknowledge an acks=all write until the
/// followers synced it, though they hold it. With `hw_counts_unsynced`
/// (the leader counting fetch offsets) the same write is acknowledged
/// before any follower synced it: the test tells the two apart.
fn streaming_followers(hw_counts_unsynced: bool) {
    let mut h = ClusterHarness::start_tuned(&[1, 2, 3], &[1, 2, 3], |config| {
        let cluster = config.cluster.as_mut().expect("a cluster node");
        cluster.replica_fetch_max_bytes = 256;
        cluster.bugs.replication.hw_counts_unsynced = hw_counts_unsynced;
    });
    h.run_for(Duration::from_secs(5));
    let created = h.create_topic(1, "streamed", 1, 3, "2");
    assert_eq!(created.topics[0].error_code, 0);
    let m = h.wait_for_leaders(1, "streamed", 3);
    let leader = leader_of(&m, 0);
    let followers: Vec<i32> = [1, 2, 3].into_iter().filter(|&id| id != leader).collect();
    assert_eq!(
        h.produce(leader, "streamed", 0, &[b"warm-up"]),
        Some((0, 0))
    );
    h.flushes_held.extend(&followers);
    h.replica_fetches.clear();
    let value = [7u8; 300];
    let values = [&value[..]; 3];
    assert!(
        value.len() * values.len() > 256,
        "one batch fills an answer"
    );
    let id = h.send_produce(leader, "streamed", 0, &values, 30_000);
    h.run_for(Duration::from_millis(300));
    let (_, _, leader_end) = h.node(leader).partition_offsets("streamed", 0).unwrap();
    assert_eq!(leader_end, 4);
    for &f in &followers {
        let (_, _, end) = h.node(f).partition_offsets("streamed", 0).unwrap();
        assert_eq!(end, leader_end, "follower {f} holds the batch, unsynced");
        let streamed = h.replica_fetches.iter().any(|r| {
            r.from == f
                && r.to == leader
                && r.max_wait_ms == 0
                && r.fetch_offset == leader_end
                && r.synced_offset.is_some_and(|s| s < r.fetch_offset)
        });
        assert!(
            streamed,
            "follower {f} fetched again while syncing: {:?}",
            h.replica_fetches
        );
    }
    let acked_early = h.client_answers.remove(&id);
    if hw_counts_unsynced {
        assert!(
            acked_early.is_some(),
            "the bug acknowledges what no follower synced"
        );
        return;
    }
    assert!(
        acked_early.is_none(),
        "acknowledged before any follower synced: {acked_early:?}"
    );
    let (_, hw, _) = h.node(leader).partition_offsets("streamed", 0).unwrap();
    assert_eq!(hw, 1, "the high watermark waits for the followers' syncs");
    h.flushes_held.clear();
    h.release_flushes();
    h.run_for(Duration::from_millis(50));
    match h.client_answers.remove(&id) {
        Some(ResponseKind::Produce(r)) => {
            let p = &r.responses[0].partition_responses[0];
            assert_eq!((p.error_code, p.base_offset), (0, 1));
        }
        other => panic!("no acknowledgement once synced: {other:?}"),
    }
    let (_, hw, _) = h.node(leader).partition_offsets("streamed", 0).unwrap();
    assert_eq!(hw, leader_end);
    // Synced, a follower names no synced offset: the fetch offset counts.
    h.replica_fetches.clear();
    h.run_for(Duration::from_millis(1_000));
    for &f in &followers {
        assert!(
            h.replica_fetches.iter().any(|r| r.from == f),
            "follower {f} fetched again"
        );
    }
    assert!(
        h.replica_fetches.iter().all(|r| r.synced_offset.is_none()),
        "synced followers' fetches carry no tag: {:?}",
        h.replica_fetches
    );
}

#[test]
fn streaming_followers_fetch_while_they_sync_and_acks_wait_for_the_sync() {
    streaming_followers(false);
}

#[test]
fn bug_hw_counts_unsynced_acknowledges_before_the_followers_synced() {
    streaming_followers(true);
}

/// A follower whose disk does not finish its syncs streams a few answers
/// ahead (`STREAM_AHEAD_MAX`), then waits: it stops fetching, so it falls
/// behind and can leave the ISR, rather than stay in it caught up by its
/// fetch offset with the high watermark stuck at its synced end.
#[test]
fn a_follower_whose_sync_stalls_streams_only_a_few_answers_ahead() {
    let mut h = ClusterHarness::start_tuned(&[1, 2, 3], &[1, 2, 3], |config| {
        config
            .cluster
            .as_mut()
            .expect("a cluster node")
            .replica_fetch_max_bytes = 256;
    });
    h.run_for(Duration::from_secs(5));
    assert_eq!(
        h.create_topic(1, "stalled", 1, 3, "2").topics[0].error_code,
        0
    );
    let leader = leader_of(&h.wait_for_leaders(1, "stalled", 3), 0);
    let followers: Vec<i32> = [1, 2, 3].into_iter().filter(|&id| id != leader).collect();
    assert_eq!(h.produce(leader, "stalled", 0, &[b"warm-up"]), Some((0, 0)));
    h.flushes_held.extend(&followers);
    h.replica_fetches.clear();
    let value = [9u8; 300];
    for _ in 0..10 {
        h.send_produce(leader, "stalled", 0, &[&value[..]; 3], 30_000);
    }
    h.run_for(Duration::from_millis(500));
    let (_, hw, leader_end) = h.node(leader).partition_offsets("stalled", 0).unwrap();
    assert_eq!(
        (hw, leader_end),
        (1, 31),
        "nothing acknowledged, all appended"
    );
    for &f in &followers {
        let syncing = h
            .replica_fetches
            .iter()
            .filter(|r| r.from == f && r.to == leader && r.max_wait_ms == 0)
            .count();
        assert!(
            syncing >= 1 && syncing < STREAM_AHEAD_MAX as usize,
            "follower {f} fetched {syncing} times while syncing"
        );
        let (_, _, end) = h.node(f).partition_offsets("stalled", 0).unwrap();
        assert_eq!(
            end,
            1 + 3 * i64::from(STREAM_AHEAD_MAX),
            "follower {f} appended {STREAM_AHEAD_MAX} answers ahead of its sync, then waited"
        );
    }
    h.flushes_held.clear();
    h.release_flushes();
    h.run_for(Duration::from_millis(500));
    let (_, hw, _) = h.node(leader).partition_offsets("stalled", 0).unwrap();
    assert_eq!(
        hw, 31,
        "synced: the followers catch up and everything is acknowledged"
    );
}
