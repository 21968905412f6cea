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
use seedlog_core::node::{ClusterConfig, Input, Node, NodeConfig, Output, PeerAddress};
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
        };
        for &id in ids {
            let config = config(id, ids);
            let node = Node::new(config.clone(), MemoryStorage::new(), id as u64, now)
                .expect("node opens");
            h.configs.insert(id, config);
            h.nodes.insert(id, Some(node));
        }
        for &id in ids {
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

    fn produce(
        &mut self,
        node: i32,
        topic: &str,
        partition: i32,
        values: &[&[u8]],
    ) -> Option<(i16, i64)> {
        let records: Vec<seedlog_core::batch::TestRecord<'_>> =
            values.iter().map(|v| (None, Some(*v))).collect();
        let batch = build_batch(&records, self.now.unix_millis());
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch.into()))])]);
        match self.call(
            node,
            ApiKey::Produce,
            9,
            RequestKind::Produce(request),
            Duration::from_secs(10),
        )? {
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

/// Seeded rounds of: produce acks=all to whoever leads, crash one node
/// (power cut: unsynced writes lost), produce more, restart it. After the
/// last round every acknowledged value must be readable from the leader, in
/// the order acknowledged, and every replica must hold the same log.
#[test]
fn acknowledged_writes_survive_seeded_crashes_of_any_one_node() {
    use rand::{Rng, SeedableRng};
    for seed in 0..12u64 {
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
            h.crash(victim);
            h.run_for(Duration::from_millis(rng.gen_range(0..6_000)));
            let alive = (1..=3).find(|n| *n != victim).unwrap();
            m = h.metadata(alive, "t");
            for _ in 0..rng.gen_range(0..10) {
                let leader = leader_of(&m, 0);
                let value = format!("s{seed}-{next_value}");
                next_value += 1;
                if leader >= 0 && leader != victim {
                    if let Some((0, _)) = h.produce(leader, "t", 0, &[value.as_bytes()]) {
                        acked.push(value.into_bytes());
                    }
                }
            }
            h.restart(victim);
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
