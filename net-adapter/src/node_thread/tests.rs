//! The node thread with a real `FileStorage` in a temporary directory, fed
//! messages as the connection tasks send them, with a sync that the test
//! can hold back: it checks that a produce is acknowledged only once its
//! segment was synced, and that the node answers other requests while a
//! sync is held.

use super::*;
use crate::file_storage::{fdatasync_path, SyncFile};
use crate::framing::{decode_request, encode_request, response_correlation_id, Decoded};
use crate::peers::PeerLimits;
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, MetadataRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use seedlog_core::batch::build_batch;
use seedlog_core::storage::Storage;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use tokio::sync::Semaphore;

/// The producer's connection.
const CONNECTION: ConnectionId = 1;
/// Another client's: responses on one connection leave in the order of its
/// requests, so an answer behind a held produce would wait for it anyway.
const OTHER: ConnectionId = 2;
const WAIT: Duration = Duration::from_secs(20);
const SEGMENT: &str = "t-0/00000000000000000000.log";

/// A sync that waits while the gate is held, and records what it synced
/// (after the real `fdatasync`).
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    held: bool,
    /// Syncs waiting at the gate right now.
    waiting: usize,
    synced: Vec<PathBuf>,
}

impl Gate {
    fn sync_file(self: &Arc<Gate>) -> SyncFile {
        let gate = self.clone();
        Arc::new(move |full: &Path| {
            let mut state = gate.state.lock().unwrap();
            state.waiting += 1;
            gate.changed.notify_all();
            let (mut state, timeout) = gate
                .changed
                .wait_timeout_while(state, WAIT, |s| s.held)
                .unwrap();
            assert!(!timeout.timed_out(), "the test never released the gate");
            state.waiting -= 1;
            drop(state);
            fdatasync_path(full)?;
            gate.state.lock().unwrap().synced.push(full.to_path_buf());
            Ok(())
        })
    }

    fn hold(&self, held: bool) {
        self.state.lock().unwrap().held = held;
        self.changed.notify_all();
    }

    /// Waits until a sync waits at the gate.
    fn await_waiting(&self) {
        let state = self.state.lock().unwrap();
        let (_state, timeout) = self
            .changed
            .wait_timeout_while(state, WAIT, |s| s.waiting == 0)
            .unwrap();
        assert!(!timeout.timed_out(), "no sync reached the gate");
    }

    fn synced(&self, path: &Path) -> bool {
        self.state.lock().unwrap().synced.iter().any(|p| p == path)
    }
}

/// A node thread on a temporary directory, with one open connection.
struct Harness {
    _dir: tempfile::TempDir,
    data: PathBuf,
    gate: Arc<Gate>,
    node: Option<mpsc::Sender<NodeMessage>>,
    responses: BTreeMap<ConnectionId, mpsc::Receiver<Frame>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), StorageError>>>,
    memory: Arc<Semaphore>,
    /// For the peer links (a standalone node makes none).
    _runtime: tokio::runtime::Runtime,
}

impl Harness {
    fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let storage = FileStorage::open(&data).unwrap();
        let gate = Arc::new(Gate::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (node, messages) = mpsc::channel(64);
        let peers = Peers::new(
            runtime.handle().clone(),
            node.downgrade(),
            PeerLimits::default(),
        );
        let flusher = Flusher::spawn(node.downgrade(), 4, gate.sync_file()).unwrap();
        let (serving, _) = watch::channel(false);
        let (stop, stop_rx) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let driver = NodeDriver::new(
                NodeConfig::default(),
                storage,
                7,
                256,
                peers,
                Metrics::new(),
                serving,
                flusher,
            )
            .expect("node starts");
            runtime.block_on(driver.run(messages, stop_rx, Duration::from_secs(1)))
        });
        let mut responses = BTreeMap::new();
        for connection in [CONNECTION, OTHER] {
            let (responses_tx, responses_rx) = mpsc::channel(64);
            let (close, _close_rx) = oneshot::channel();
            node.blocking_send(NodeMessage::Open {
                connection,
                responses: responses_tx,
                close,
            })
            .unwrap();
            responses.insert(connection, responses_rx);
        }
        Harness {
            _dir: dir,
            data,
            gate,
            node: Some(node),
            responses,
            stop: Some(stop),
            thread: Some(thread),
            memory: Arc::new(Semaphore::new(1 << 20)),
            _runtime: runtime,
        }
    }

    fn send(
        &self,
        connection: ConnectionId,
        key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: RequestKind,
    ) {
        let frame = encode_request(key, version, correlation_id, "test", &body).unwrap();
        let Decoded::Request { header, body } = decode_request(frame.slice(4..)).unwrap() else {
            panic!("not a plain request");
        };
        let memory = self.memory.clone().try_acquire_owned().unwrap();
        let message = NodeMessage::Request {
            connection,
            header,
            body,
            memory,
            received: std::time::Instant::now(),
        };
        self.node.as_ref().unwrap().blocking_send(message).unwrap();
    }

    /// The correlation id of the connection's next response within
    /// `timeout`, if any.
    fn next_response(&mut self, connection: ConnectionId, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        let responses = self.responses.get_mut(&connection).unwrap();
        loop {
            match responses.try_recv() {
                Ok(frame) => return Some(response_correlation_id(&frame.to_bytes()[4..]).unwrap()),
                Err(mpsc::error::TryRecvError::Empty) => {
                    if std::time::Instant::now() >= deadline {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
            }
        }
    }

    fn create_topic(&mut self, correlation_id: i32) {
        let create = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic())
                .with_num_partitions(1)
                .with_replication_factor(1)])
            .with_timeout_ms(30_000);
        self.send(
            CONNECTION,
            ApiKey::CreateTopics,
            7,
            correlation_id,
            RequestKind::CreateTopics(create),
        );
        assert_eq!(self.next_response(CONNECTION, WAIT), Some(correlation_id));
    }

    fn produce(&self, correlation_id: i32) {
        let value = vec![0x5au8; 100];
        let batch = Bytes::from(build_batch(
            &[(None, Some(value.as_slice()))],
            now().unix_millis(),
        ));
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic())
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch))])]);
        self.send(
            CONNECTION,
            ApiKey::Produce,
            9,
            correlation_id,
            RequestKind::Produce(request),
        );
    }

    fn metadata(&self, correlation_id: i32) {
        self.send(
            OTHER,
            ApiKey::Metadata,
            12,
            correlation_id,
            RequestKind::Metadata(MetadataRequest::default()),
        );
    }

    fn segment(&self) -> PathBuf {
        self.data.join(SEGMENT)
    }

    /// Stops the node (dropping the test's sender too, so the node thread
    /// also sees every sender gone) and waits for it.
    fn stop(&mut self) -> Result<(), StorageError> {
        let _ = self.stop.take().unwrap().send(());
        self.node = None;
        self.thread.take().unwrap().join().expect("node thread")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.gate.hold(false);
    }
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("t"))
}

#[test]
fn produce_is_acknowledged_only_after_its_segment_is_synced_and_other_requests_go_on() {
    let mut h = Harness::start();
    h.create_topic(1);
    h.gate.hold(true);
    h.produce(2);
    // The round reached the flusher and its sync is held there.
    h.gate.await_waiting();
    assert!(!h.gate.synced(&h.segment()));
    // The node thread does not wait for the sync: it answers a metadata
    // request, and the produce waits for its fsync (flush before ack).
    h.metadata(3);
    assert_eq!(
        h.next_response(OTHER, WAIT),
        Some(3),
        "no answer while a sync is held"
    );
    assert_eq!(
        h.next_response(CONNECTION, Duration::from_millis(300)),
        None,
        "the produce was acknowledged before its segment was synced"
    );
    // A second produce meanwhile waits for the next round.
    h.produce(4);
    assert_eq!(
        h.next_response(CONNECTION, Duration::from_millis(100)),
        None
    );
    h.metadata(5);
    assert_eq!(h.next_response(OTHER, WAIT), Some(5));
    h.gate.hold(false);
    assert_eq!(h.next_response(CONNECTION, WAIT), Some(2));
    assert!(
        h.gate.synced(&h.segment()),
        "acknowledged before the sync of {SEGMENT} returned"
    );
    assert_eq!(h.next_response(CONNECTION, WAIT), Some(4));
    h.stop().expect("clean shutdown");
}

#[test]
fn shutdown_waits_for_the_round_out_even_with_every_sender_gone() {
    let mut h = Harness::start();
    h.create_topic(1);
    h.gate.hold(true);
    h.produce(2);
    h.gate.await_waiting();
    let gate = h.gate.clone();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        gate.hold(false);
    });
    // The node stops with the round still out and no sender left for the
    // flusher to answer on: it collects the round from the flusher.
    h.stop().expect("clean shutdown");
    releaser.join().unwrap();
    assert!(h.gate.synced(&h.segment()));
    let mut storage = FileStorage::open(&h.data).unwrap();
    assert!(storage.len(SEGMENT).unwrap() > 0);
}
