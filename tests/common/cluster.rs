//! Three `seedlog serve` processes as one cluster on 127.0.0.1, and what
//! tests ask of it: Metadata polled until a condition holds, replicated
//! topics led everywhere, the coordinator of a group.

use super::{create_replicated_topic, free_port_base, Broker};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const NODES: u16 = 3;
/// How long a cluster may take to form and lead a new topic.
pub const STARTUP_WAIT: Duration = Duration::from_secs(60);

/// The nodes by id, all voters, node N in rack az-N.
pub struct Cluster {
    nodes: BTreeMap<i32, Broker>,
    dir: PathBuf,
    /// Client ports from here (`start_restartable`), controller ports 100
    /// above.
    base: u16,
    voters: String,
    extra_args: Vec<String>,
    fixed_ports: bool,
}

impl Cluster {
    /// Starts the nodes; they may not have formed a cluster yet.
    pub fn start(dir: &Path) -> Cluster {
        Cluster::start_with(dir, &[])
    }

    /// `start`, each node with `extra_args` added to its command line.
    pub fn start_with(dir: &Path, extra_args: &[&str]) -> Cluster {
        Cluster::launch(dir, extra_args, false)
    }

    /// `start_ready`, with node N's client listener fixed at a port of its
    /// own, so that `restart` brings a killed node back at the same
    /// addresses with the same data dir.
    pub fn start_restartable(dir: &Path, extra_args: &[&str]) -> Cluster {
        let cluster = Cluster::launch(dir, extra_args, true);
        cluster.wait_for_every_node();
        cluster
    }

    fn launch(dir: &Path, extra_args: &[&str], fixed_ports: bool) -> Cluster {
        let base = free_port_base(NODES);
        let controller = |id: u16| format!("127.0.0.1:{}", base + 100 + id - 1);
        let voters: Vec<String> = (1..=NODES)
            .map(|id| format!("{id}@{}", controller(id)))
            .collect();
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            dir: dir.to_path_buf(),
            base,
            voters: voters.join(","),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            fixed_ports,
        };
        for id in 1..=NODES {
            let broker = cluster.spawn(i32::from(id));
            cluster.nodes.insert(i32::from(id), broker);
        }
        cluster
    }

    /// Starts node `id` as `launch` configured it.
    fn spawn(&self, id: i32) -> Broker {
        let number = u16::try_from(id).expect("a node id of ours");
        let node_id = id.to_string();
        let rack = format!("az-{id}");
        let controller = format!("127.0.0.1:{}", self.base + 100 + number - 1);
        let listen = if self.fixed_ports {
            format!("127.0.0.1:{}", self.base + number - 1)
        } else {
            "127.0.0.1:0".to_string()
        };
        let mut args = vec![
            "--node-id",
            node_id.as_str(),
            "--rack",
            rack.as_str(),
            "--controller-listen",
            controller.as_str(),
            "--voters",
            self.voters.as_str(),
        ];
        args.extend(self.extra_args.iter().map(String::as_str));
        Broker::start_listening(&self.dir.join(format!("node-{id}")), &listen, &args)
    }

    /// SIGKILLs node `id`; `restart` brings it back.
    pub fn kill(&mut self, id: i32) {
        self.take(id).kill();
    }

    /// Starts node `id` again after `kill` or `take`: same node id, data
    /// dir and ports. Needs `start_restartable`.
    pub fn restart(&mut self, id: i32) {
        assert!(self.fixed_ports, "restart needs start_restartable");
        assert!(!self.nodes.contains_key(&id), "node {id} is still running");
        let broker = self.spawn(id);
        self.nodes.insert(id, broker);
    }

    /// Every node's client listener, running or not (`start_restartable`).
    pub fn all_listeners(&self) -> String {
        assert!(self.fixed_ports, "fixed listeners need start_restartable");
        let listeners: Vec<String> = (1..=NODES)
            .map(|n| format!("127.0.0.1:{}", self.base + n - 1))
            .collect();
        listeners.join(",")
    }

    /// Waits until each node, asked on its own, lists every node: a node
    /// answers Metadata with no brokers until it has caught up with the
    /// metadata log and been unfenced, and an admin client that meets such
    /// a node first may not find the controller before its timeout.
    fn wait_for_every_node(&self) {
        for (id, listener) in self.listeners() {
            wait_for(
                &format!("node {id} to see a cluster of 3 brokers"),
                &listener,
                None,
                STARTUP_WAIT,
                |m| (m.brokers().len() == usize::from(NODES)).then_some(()),
            );
        }
    }

    /// `start_with`, then waits until Metadata lists every node.
    pub fn start_ready(dir: &Path, extra_args: &[&str]) -> Cluster {
        let cluster = Cluster::start_with(dir, extra_args);
        cluster.wait_for_every_node();
        cluster
    }

    /// Takes node `id` out of the cluster, to stop or kill it.
    pub fn take(&mut self, id: i32) -> Broker {
        self.nodes
            .remove(&id)
            .unwrap_or_else(|| panic!("node {id} is one of ours and still running"))
    }

    /// Node `id`, still running.
    pub fn node(&self, id: i32) -> &Broker {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("node {id} is one of ours and still running"))
    }

    /// SIGTERM to each node in turn, waiting for each to exit.
    pub fn stop(self) {
        for (_, node) in self.nodes {
            node.stop();
        }
    }

    /// Every running node's client listener.
    pub fn bootstrap(&self) -> String {
        let listeners: Vec<&str> = self.nodes.values().map(|b| b.bootstrap.as_str()).collect();
        listeners.join(",")
    }

    /// The client listener of each running node, by node id.
    pub fn listeners(&self) -> BTreeMap<i32, String> {
        self.nodes
            .iter()
            .map(|(id, broker)| (*id, broker.bootstrap.clone()))
            .collect()
    }
}

/// One Metadata answer through librdkafka, of `topic` or of every topic.
pub fn metadata(bootstrap: &str, topic: Option<&str>) -> Option<Metadata> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("metadata client");
    consumer.fetch_metadata(topic, Duration::from_secs(5)).ok()
}

/// Polls Metadata until `ready` returns something, or panics after
/// `within` with the last answer.
pub fn wait_for<T>(
    what: &str,
    bootstrap: &str,
    topic: Option<&str>,
    within: Duration,
    ready: impl Fn(&Metadata) -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let answer = metadata(bootstrap, topic);
        if let Some(found) = answer.as_ref().and_then(&ready) {
            return found;
        }
        if Instant::now() > deadline {
            let brokers = answer.as_ref().map(|m| m.brokers().len());
            panic!("no {what} within {within:?}; last Metadata had {brokers:?} brokers");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The leader of every partition of `topic`, once each of its
/// `partitions` has one.
pub fn leaders(metadata: &Metadata, topic: &str, partitions: i32) -> Option<Vec<i32>> {
    let topic = metadata.topics().iter().find(|t| t.name() == topic)?;
    if topic.error().is_some() || topic.partitions().len() != partitions as usize {
        return None;
    }
    let mut partitions: Vec<_> = topic.partitions().iter().collect();
    partitions.sort_by_key(|p| p.id());
    partitions
        .iter()
        .map(|p| (p.error().is_none() && p.leader() >= 0).then_some(p.leader()))
        .collect()
}

/// Creates `topic` with `replication` replicas per partition and waits
/// until every partition has a leader; returns the leaders.
pub fn create_led_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Vec<i32> {
    create_replicated_topic(bootstrap, topic, partitions, replication);
    wait_for(
        "leader for every partition",
        bootstrap,
        Some(topic),
        STARTUP_WAIT,
        |m| leaders(m, topic, partitions),
    )
}

/// Writes one request frame (correlation id 1) to `stream`.
pub fn send_request(
    stream: &mut std::net::TcpStream,
    key: kafka_protocol::messages::ApiKey,
    version: i16,
    request: &kafka_protocol::messages::RequestKind,
) -> Result<(), String> {
    use std::io::Write;
    let frame = seedlog_net::framing::encode_request(key, version, 1, "seedlog-interop", request)
        .map_err(|e| format!("encoding: {e}"))?;
    stream.write_all(&frame).map_err(|e| format!("{e}"))
}

/// Reads one response frame from `stream` (within its read timeout) and
/// decodes it as `key`'s response at `version`, all of it.
pub fn read_response<R: kafka_protocol::protocol::Decodable>(
    stream: &mut std::net::TcpStream,
    key: kafka_protocol::messages::ApiKey,
    version: i16,
) -> Result<R, String> {
    use bytes::{Buf, Bytes};
    use kafka_protocol::messages::ResponseHeader;
    use kafka_protocol::protocol::Decodable;
    use std::io::Read;
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).map_err(|e| format!("{e}"))?;
    let mut body = vec![0u8; i32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body).map_err(|e| format!("{e}"))?;
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
        .map_err(|e| format!("{e}"))?;
    assert_eq!(header.correlation_id, 1, "the answer to our request");
    let response = R::decode(&mut body, version).map_err(|e| format!("{e}"))?;
    assert!(!body.has_remaining(), "{key:?} response fully read");
    Ok(response)
}

/// FindCoordinator (v3, key type group) for `group`, sent to the broker
/// at `address` over a plain TCP connection: the coordinator's node id and
/// `host:port`, or the error code it answered with (or why there was no
/// answer).
pub fn find_coordinator(address: &str, group: &str) -> Result<(i32, String), String> {
    use kafka_protocol::messages::{
        ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, RequestKind,
    };
    use kafka_protocol::protocol::StrBytes;
    const VERSION: i16 = 3;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    let mut stream = std::net::TcpStream::connect(address).map_err(|e| format!("{e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| format!("{e}"))?;
    send_request(
        &mut stream,
        ApiKey::FindCoordinator,
        VERSION,
        &RequestKind::FindCoordinator(request),
    )?;
    let response: FindCoordinatorResponse =
        read_response(&mut stream, ApiKey::FindCoordinator, VERSION)?;
    if response.error_code != 0 {
        return Err(format!("error code {}", response.error_code));
    }
    Ok((
        response.node_id.0,
        format!("{}:{}", response.host.as_str(), response.port),
    ))
}

/// Asks every running node for `group`'s coordinator until all name the
/// same node, within `within`; returns its id.
pub fn agreed_coordinator(cluster: &Cluster, group: &str, within: Duration) -> i32 {
    let deadline = Instant::now() + within;
    loop {
        let answers: BTreeMap<i32, Result<(i32, String), String>> = cluster
            .listeners()
            .iter()
            .map(|(id, address)| (*id, find_coordinator(address, group)))
            .collect();
        let listeners = cluster.listeners();
        let named: Vec<&(i32, String)> = answers.values().filter_map(|a| a.as_ref().ok()).collect();
        // Agreed: every node names the same running node, at its client
        // listener. Until a dead coordinator's session expires the others
        // may still name it.
        let agreed = named.len() == answers.len()
            && named.iter().all(|n| *n == named[0])
            && listeners.get(&named[0].0) == Some(&named[0].1);
        if agreed {
            return named[0].0;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes did not agree on a coordinator for {group} within {within:?}: {answers:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
