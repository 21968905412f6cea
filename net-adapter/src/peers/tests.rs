//! Peer links against tiny servers on real TCP on 127.0.0.1: each test's
//! server reads request frames and answers (or misbehaves) as its script
//! says.

use super::*;
use crate::framing::{decode_request, encode_response, read_frame, Decoded};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpListener;

/// Long enough that a test sees the backoff refuse a request, short enough
/// that waiting it out costs nothing.
const BACKOFF_MIN: Duration = Duration::from_millis(100);

fn limits() -> PeerLimits {
    PeerLimits {
        backoff_min: BACKOFF_MIN,
        backoff_max: BACKOFF_MIN * 4,
        ..PeerLimits::default()
    }
}

/// `Peers` with the node thread's channel, as the driver holds them.
struct Harness {
    peers: Peers,
    messages: mpsc::Receiver<NodeMessage>,
    /// Keeps the channel open: `Peers` holds only a weak sender.
    _node: mpsc::Sender<NodeMessage>,
}

impl Harness {
    fn new(limits: PeerLimits) -> Harness {
        let (node, messages) = mpsc::channel(16);
        let peers = Peers::new(Handle::current(), node.downgrade(), limits);
        Harness {
            peers,
            messages,
            _node: node,
        }
    }

    /// Sends on the Quorum channel.
    fn send(
        &mut self,
        now: Instant,
        address: &PeerAddress,
        request: Request,
    ) -> Result<(), SendError> {
        self.send_on(PeerChannel::Quorum, now, address, request)
    }

    fn send_on(
        &mut self,
        channel: PeerChannel,
        now: Instant,
        address: &PeerAddress,
        request: Request,
    ) -> Result<(), SendError> {
        let (header, body) = request;
        self.peers
            .send(now, PEER, channel, address.clone(), header, &body)
    }

    /// Queues `requests`, then expects the node to hear `answers`: these
    /// correlation ids, decoded as these api keys, in this order.
    async fn exchange(
        &mut self,
        now: Instant,
        address: &PeerAddress,
        requests: [Request; 2],
        answers: [(i32, ApiKey); 2],
    ) {
        for request in requests {
            self.send(now, address, request).expect("queued");
        }
        for (correlation_id, api_key) in answers {
            assert_response(self.next_input().await, correlation_id, api_key);
        }
    }

    /// The next thing the node hears from the links.
    async fn next_input(&mut self) -> Input {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.messages.recv())
                .await
                .expect("a link reported within 10 s")
                .expect("the channel is open");
            let NodeMessage::Peer(event) = message else {
                panic!("only links send here, got {message:?}");
            };
            if let Some(input) = self.peers.on_event(Instant::now(), event) {
                return input;
            }
        }
    }
}

const PEER: PeerId = 2;

type Request = (RequestHeader, RequestKind);

fn header(api_key: ApiKey, api_version: i16, correlation_id: i32) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(api_version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("node-1")))
}

fn api_versions(correlation_id: i32) -> Request {
    (
        header(ApiKey::ApiVersions, 3, correlation_id),
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    )
}

fn metadata(correlation_id: i32) -> Request {
    (
        header(ApiKey::Metadata, 12, correlation_id),
        RequestKind::Metadata(MetadataRequest::default()),
    )
}

/// The answer a test server gives: a response of the request's kind, so
/// that only the right api key and version decode it.
fn response_to(header: &RequestHeader) -> Bytes {
    let api_key = ApiKey::try_from(header.request_api_key).expect("known key");
    let body = match api_key {
        ApiKey::ApiVersions => ResponseKind::ApiVersions(ApiVersionsResponse::default()),
        ApiKey::Metadata => ResponseKind::Metadata(
            MetadataResponse::default().with_cluster_id(Some(StrBytes::from_static_str("c"))),
        ),
        other => panic!("the test server does not answer {other:?}"),
    };
    encode_response(
        header.correlation_id,
        api_key,
        header.request_api_version,
        &body,
    )
    .expect("encodes")
    .to_bytes()
}

async fn read_request(stream: &mut TcpStream) -> Option<RequestHeader> {
    let frame = read_frame(stream, 1 << 20).await.expect("a whole frame")?;
    match decode_request(frame).expect("a request the server knows") {
        Decoded::Request { header, .. } => Some(header),
        Decoded::ApiVersionsUnsupported { .. } => panic!("a supported ApiVersions"),
    }
}

async fn listener() -> (TcpListener, PeerAddress) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let port = listener.local_addr().expect("bound").port();
    let address = PeerAddress {
        host: "127.0.0.1".to_string(),
        port,
    };
    (listener, address)
}

fn assert_response(input: Input, correlation_id: i32, api_key: ApiKey) {
    match input {
        Input::PeerResponse {
            from,
            correlation_id: id,
            body,
        } => {
            assert_eq!((from, id), (PEER, correlation_id));
            let matches = match api_key {
                ApiKey::ApiVersions => matches!(body, ResponseKind::ApiVersions(_)),
                ApiKey::Metadata => matches!(body, ResponseKind::Metadata(_)),
                _ => false,
            };
            assert!(
                matches,
                "{correlation_id} decoded as {api_key:?}, got {body:?}"
            );
        }
        other => panic!("expected the response to {correlation_id}, got {other:?}"),
    }
}

fn assert_unreachable(input: Input) {
    assert!(
        matches!(input, Input::PeerUnreachable { peer: PEER }),
        "expected PeerUnreachable, got {input:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_matched_to_their_requests_by_correlation_id() {
    let (listener, address) = listener().await;
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accepts");
        let first = read_request(&mut stream).await.expect("first request");
        let second = read_request(&mut stream).await.expect("second request");
        // Backwards: only the correlation ids say which is which.
        stream
            .write_all(&response_to(&second))
            .await
            .expect("writes");
        stream
            .write_all(&response_to(&first))
            .await
            .expect("writes");
        assert!(
            read_request(&mut stream).await.is_none(),
            "the link stays quiet"
        );
    });
    let mut harness = Harness::new(limits());
    let now = Instant::now();
    let requests = [api_versions(7), metadata(8)];
    let answers = [(8, ApiKey::Metadata), (7, ApiKey::ApiVersions)];
    harness.exchange(now, &address, requests, answers).await;
    harness.peers.close_all();
    server.await.expect("the server saw the link close cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_unreachable_then_backs_off_then_reconnects() {
    // A port nobody listens on: bound, then let go.
    let (listener, address) = listener().await;
    drop(listener);
    let mut harness = Harness::new(limits());
    harness
        .send(Instant::now(), &address, api_versions(1))
        .expect("queued while connecting");
    assert_unreachable(harness.next_input().await);

    // During the backoff: refused at once, without a connection attempt.
    let failed_at = Instant::now();
    assert!(matches!(
        harness.send(failed_at, &address, api_versions(2)),
        Err(SendError::BackingOff(_))
    ));

    // The second failure in a row doubles the wait.
    harness
        .send(failed_at + BACKOFF_MIN, &address, api_versions(3))
        .expect("queued after the backoff");
    assert_unreachable(harness.next_input().await);
    let failed_again_at = Instant::now();
    assert!(matches!(
        harness.send(failed_again_at + BACKOFF_MIN, &address, api_versions(4)),
        Err(SendError::BackingOff(_))
    ));

    // The peer comes up on that port; after the backoff the link connects.
    let listener = TcpListener::bind(("127.0.0.1", address.port))
        .await
        .expect("the port is still free");
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accepts");
        let request = read_request(&mut stream).await.expect("a request");
        stream
            .write_all(&response_to(&request))
            .await
            .expect("writes");
        stream
    });
    harness
        .send(failed_again_at + BACKOFF_MIN * 2, &address, metadata(5))
        .expect("queued after the longer backoff");
    assert_response(harness.next_input().await, 5, ApiKey::Metadata);
    drop(server.await.expect("server"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_mid_stream_is_unreachable_once_and_the_next_request_reconnects() {
    let (listener, address) = listener().await;
    let server = tokio::spawn(async move {
        // First connection: one answer, then a request it never answers.
        let (mut stream, _) = listener.accept().await.expect("accepts");
        let request = read_request(&mut stream).await.expect("a request");
        stream
            .write_all(&response_to(&request))
            .await
            .expect("writes");
        read_request(&mut stream)
            .await
            .expect("the unanswered request");
        drop(stream);
        // Second connection: answers everything.
        let (mut stream, _) = listener.accept().await.expect("accepts again");
        while let Some(request) = read_request(&mut stream).await {
            stream
                .write_all(&response_to(&request))
                .await
                .expect("writes");
        }
    });
    let mut harness = Harness::new(limits());
    harness
        .send(Instant::now(), &address, api_versions(1))
        .expect("queued");
    assert_response(harness.next_input().await, 1, ApiKey::ApiVersions);
    harness
        .send(Instant::now(), &address, metadata(2))
        .expect("queued");
    assert_unreachable(harness.next_input().await);
    assert!(matches!(
        harness.send(Instant::now(), &address, metadata(3)),
        Err(SendError::BackingOff(_))
    ));

    // The link had answered, so this was the first failure: the shortest wait.
    let later = Instant::now() + BACKOFF_MIN;
    let requests = [metadata(4), api_versions(5)];
    let answers = [(4, ApiKey::Metadata), (5, ApiKey::ApiVersions)];
    harness.exchange(later, &address, requests, answers).await;
    harness.peers.close_all();
    server.await.expect("server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_that_does_not_decode_breaks_the_link() {
    let (listener, address) = listener().await;
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accepts");
        let request = read_request(&mut stream).await.expect("a request");
        // A Metadata answer to an ApiVersions request.
        let (wrong, _) = metadata(request.correlation_id);
        stream
            .write_all(&response_to(&wrong))
            .await
            .expect("writes");
        assert!(read_request(&mut stream).await.is_none(), "the link closes");
    });
    let mut harness = Harness::new(limits());
    harness
        .send(Instant::now(), &address, api_versions(1))
        .expect("queued");
    assert_unreachable(harness.next_input().await);
    server.await.expect("server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_times_out() {
    let (listener, address) = listener().await;
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accepts");
        read_request(&mut stream).await.expect("a request");
        assert!(
            read_request(&mut stream).await.is_none(),
            "the link gives up"
        );
    });
    let mut harness = Harness::new(PeerLimits {
        response_timeout: Duration::from_millis(200),
        ..limits()
    });
    harness
        .send(Instant::now(), &address, api_versions(1))
        .expect("queued");
    assert_unreachable(harness.next_input().await);
    server.await.expect("server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_fills_the_queue_and_is_given_up() {
    let (listener, address) = listener().await;
    let (in_flight_tx, in_flight) = oneshot::channel();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accepts");
        read_request(&mut stream).await.expect("a request");
        in_flight_tx.send(()).expect("the test waits");
        // Answers nothing; reads on until the link is dropped.
        while read_request(&mut stream).await.is_some() {}
    });
    let limits = PeerLimits {
        requests_queued_max: 2,
        in_flight_max: 1,
        ..limits()
    };
    let mut harness = Harness::new(limits);
    let now = Instant::now();
    harness
        .send(now, &address, api_versions(0))
        .expect("queued");
    in_flight
        .await
        .expect("the first request reached the server");
    // The window holds one: two more queue up, the next finds no room.
    harness
        .send(now, &address, api_versions(1))
        .expect("queued");
    harness
        .send(now, &address, api_versions(2))
        .expect("queued");
    let full = harness.send(now, &address, api_versions(3));
    assert!(matches!(full, Err(SendError::QueueFull(2))), "got {full:?}");
    assert!(matches!(
        harness.send(now, &address, api_versions(4)),
        Err(SendError::BackingOff(_))
    ));
    // The dropped link closes at once, without a word: the refusal was
    // the news.
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the link closed before its response timeout")
        .expect("server");
    assert!(harness.messages.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_address_on_a_channel_drops_the_peers_links() {
    let (_quorum_listener, quorum) = listener().await;
    let (_replication_listener, replication) = listener().await;
    let mut harness = Harness::new(limits());
    let now = Instant::now();
    // Channels of one peer may lead to different listeners.
    harness
        .send_on(PeerChannel::Quorum, now, &quorum, api_versions(1))
        .expect("queued");
    harness
        .send_on(PeerChannel::Replication, now, &replication, api_versions(2))
        .expect("queued");
    let changed = harness.send_on(PeerChannel::Quorum, now, &replication, api_versions(3));
    assert!(
        matches!(
            changed,
            Err(SendError::AddressChanged {
                channel: PeerChannel::Quorum,
                ..
            })
        ),
        "got {changed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_separate_connections_and_one_breaking_drops_them_all() {
    let (quorum_listener, quorum) = listener().await;
    let (replication_listener, replication) = listener().await;
    let (parked_tx, parked) = oneshot::channel();
    // A leader that parks replica fetches: reads, never answers.
    let replication_server = tokio::spawn(async move {
        let (mut stream, _) = replication_listener.accept().await.expect("accepts");
        read_request(&mut stream).await.expect("a fetch");
        parked_tx.send(()).expect("the test waits");
        assert!(
            read_request(&mut stream).await.is_none(),
            "dropped with the quorum link"
        );
    });
    let quorum_server = tokio::spawn(async move {
        let (mut stream, _) = quorum_listener.accept().await.expect("accepts");
        let request = read_request(&mut stream).await.expect("a request");
        stream
            .write_all(&response_to(&request))
            .await
            .expect("writes");
        read_request(&mut stream).await.expect("a request it drops");
    });
    let mut harness = Harness::new(limits());
    let now = Instant::now();
    harness
        .send_on(PeerChannel::Replication, now, &replication, metadata(1))
        .expect("queued");
    parked.await.expect("the fetch is parked");
    // Not stuck behind the parked request: another connection.
    harness
        .send_on(PeerChannel::Quorum, now, &quorum, api_versions(2))
        .expect("queued");
    assert_response(harness.next_input().await, 2, ApiKey::ApiVersions);

    harness
        .send_on(PeerChannel::Quorum, now, &quorum, api_versions(3))
        .expect("queued");
    assert_unreachable(harness.next_input().await);
    // The backoff is the peer's, whatever the channel.
    let refused = harness.send_on(
        PeerChannel::Replication,
        Instant::now(),
        &replication,
        metadata(4),
    );
    assert!(
        matches!(refused, Err(SendError::BackingOff(_))),
        "got {refused:?}"
    );
    tokio::time::timeout(Duration::from_secs(5), replication_server)
        .await
        .expect("the replication link closed with the quorum link")
        .expect("server");
    quorum_server.await.expect("server");
    // Once for the peer: the replication link went without a word.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(harness.messages.try_recv().is_err());
}
