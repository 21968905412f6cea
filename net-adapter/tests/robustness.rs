//! A real server on 127.0.0.1:0 fed malformed input. After every abuse the
//! connection must be closed (or answered, where Kafka answers), and the
//! server must still serve a well-formed ApiVersions request on a fresh
//! connection.

/// The allocator `seedlog serve` runs with: the array-count bomb below
/// must not abort the process.
#[global_allocator]
static ALLOCATOR: seedlog_net::alloc::NoReserveHugeAllocations =
    seedlog_net::alloc::NoReserveHugeAllocations;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, RequestKind, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use seedlog_net::{Server, ServerConfig};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(10);
/// The test servers' frame limit; small so the over-limit case is cheap.
const REQUEST_BYTES_MAX: usize = 1024 * 1024;

struct TestServer {
    addr: SocketAddr,
    /// The controller listener, when the test asked for one.
    controller_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _data_dir: tempfile::TempDir,
}

impl TestServer {
    async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config =
            ServerConfig::new("127.0.0.1:0".parse().unwrap(), data_dir.path().join("data"));
        config.request_bytes_max = REQUEST_BYTES_MAX;
        config.rng_seed = Some(7);
        adjust(&mut config);
        let server = Server::bind(config).await.expect("server binds");
        let addr = server.local_addr();
        assert!(addr.ip().is_loopback(), "tests listen on loopback only");
        let controller_addr = server.controller_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            controller_addr,
            stop: Some(stop),
            task: Some(task),
            _data_dir: data_dir,
        }
    }

    /// Graceful shutdown must finish, and finish without error.
    async fn stop(mut self) {
        let _ = self.stop.take().expect("stopped once").send(());
        let task = self.task.take().expect("stopped once");
        let result = tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("server stops within the timeout")
            .expect("server task did not panic");
        result.expect("server stops cleanly");
    }
}

fn frame(api_key: ApiKey, api_version: i16, correlation_id: i32, body: &RequestKind) -> Vec<u8> {
    seedlog_net::framing::encode_request(api_key, api_version, correlation_id, "robustness", body)
        .unwrap()
        .to_vec()
}

fn api_versions_request(api_version: i16, correlation_id: i32) -> Vec<u8> {
    let body = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("seedlog-robustness"))
        .with_client_software_version(StrBytes::from_static_str("0.1.0"));
    frame(
        ApiKey::ApiVersions,
        api_version,
        correlation_id,
        &RequestKind::ApiVersions(body),
    )
}

/// A length-prefixed frame: the prefix, then `body` verbatim.
fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

async fn read_response(stream: &mut TcpStream) -> Bytes {
    let length = tokio::time::timeout(TIMEOUT, stream.read_i32())
        .await
        .expect("response within the timeout")
        .expect("a response, not a closed connection");
    assert!(length >= 0, "negative response length {length}");
    let mut body = vec![0; length as usize];
    tokio::time::timeout(TIMEOUT, stream.read_exact(&mut body))
        .await
        .expect("response body within the timeout")
        .expect("whole response body");
    Bytes::from(body)
}

/// Sends ApiVersions at `api_version` and returns the decoded answer,
/// checking the correlation id. ApiVersions responses always carry a v0
/// header, so that clients can read them before knowing anything else.
async fn api_versions(
    stream: &mut TcpStream,
    api_version: i16,
    correlation_id: i32,
) -> ApiVersionsResponse {
    stream
        .write_all(&api_versions_request(api_version, correlation_id))
        .await
        .unwrap();
    let mut response = read_response(stream).await;
    let header = ResponseHeader::decode(&mut response, 0).unwrap();
    assert_eq!(header.correlation_id, correlation_id);
    ApiVersionsResponse::decode(&mut response, api_version).unwrap()
}

/// The server still works: a fresh connection gets a good ApiVersions v3.
async fn assert_still_serving(addr: SocketAddr) {
    let mut stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
        .await
        .expect("connect within the timeout")
        .expect("server still accepts");
    let response = api_versions(&mut stream, 3, 1234).await;
    assert_eq!(response.error_code, 0);
    assert!(
        response
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Metadata as i16),
        "Metadata is advertised"
    );
}

/// The server closes the connection without answering. A reset counts as
/// closed: the server may drop the socket with our bytes unread.
async fn assert_closed_without_answer(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(TIMEOUT, stream.read(&mut buf))
        .await
        .expect("the server closes the connection within the timeout");
    match read {
        Ok(0) => {}
        Ok(n) => panic!("expected a close, got {n} bytes: {:?}", &buf[..n]),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "unexpected error {e}"
        ),
    }
}

async fn send_and_expect_close(addr: SocketAddr, bytes: &[u8]) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may close before reading everything; a failed write is
    // part of the expected outcome.
    let _ = stream.write_all(bytes).await;
    assert_closed_without_answer(&mut stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_formed_api_versions_is_answered_and_shutdown_is_clean() {
    let server = TestServer::start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    for (version, correlation_id) in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)] {
        let response = api_versions(&mut stream, version, correlation_id).await;
        assert_eq!(response.error_code, 0, "ApiVersions v{version}");
    }
    drop(stream);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_listener_serves_the_same_protocol() {
    let server = TestServer::start_with(|config| {
        config.controller_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let controller = server.controller_addr.expect("a controller listener");
    assert_ne!(controller, server.addr);
    assert!(controller.ip().is_loopback());
    assert_still_serving(controller).await;
    send_and_expect_close(controller, &raw_frame(&[0xff; 3])).await;
    assert_still_serving(controller).await;
    assert_still_serving(server.addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_frames_close_the_connection() {
    let server = TestServer::start().await;
    // Pure garbage: api key -1 is unknown.
    send_and_expect_close(server.addr, &raw_frame(&[0xff; 64])).await;
    assert_still_serving(server.addr).await;
    // A valid Metadata v12 prefix, then garbage where the header and body go.
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::Metadata as i16);
    body.put_i16(12);
    body.put_i32(99);
    body.extend_from_slice(&[0xff; 40]);
    send_and_expect_close(server.addr, &raw_frame(&body)).await;
    assert_still_serving(server.addr).await;
    // A real Metadata request cut short inside its body.
    let metadata = frame(
        ApiKey::Metadata,
        12,
        5,
        &RequestKind::Metadata(MetadataRequest::default()),
    );
    let cut = &metadata[4..metadata.len() - 3];
    send_and_expect_close(server.addr, &raw_frame(cut)).await;
    assert_still_serving(server.addr).await;
    // Shorter than a request header.
    send_and_expect_close(server.addr, &raw_frame(&[0, 18, 0])).await;
    assert_still_serving(server.addr).await;
    // An empty frame.
    send_and_expect_close(server.addr, &raw_frame(&[])).await;
    assert_still_serving(server.addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_then_close_is_survived() {
    let server = TestServer::start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let mut bytes = 100i32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&api_versions_request(3, 1)[4..14]);
    stream.write_all(&bytes).await.unwrap();
    stream.shutdown().await.unwrap();
    assert_closed_without_answer(&mut stream).await;
    drop(stream);
    assert_still_serving(server.addr).await;

    // The same, but the client vanishes without a FIN being read first.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    drop(stream);
    assert_still_serving(server.addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_negative_lengths_close_the_connection() {
    let server = TestServer::start().await;
    let over = (REQUEST_BYTES_MAX as i32 + 1).to_be_bytes();
    send_and_expect_close(server.addr, &over).await;
    assert_still_serving(server.addr).await;
    // The length alone decides: no body needs to follow.
    send_and_expect_close(server.addr, &i32::MAX.to_be_bytes()).await;
    assert_still_serving(server.addr).await;
    send_and_expect_close(server.addr, &(-1i32).to_be_bytes()).await;
    assert_still_serving(server.addr).await;
    send_and_expect_close(server.addr, &i32::MIN.to_be_bytes()).await;
    assert_still_serving(server.addr).await;
    // Exactly at the limit is allowed: the server waits for the body (and
    // then rejects the garbage), it does not close on the length.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(&(REQUEST_BYTES_MAX as i32).to_be_bytes())
        .await
        .unwrap();
    let mut one = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut one)).await;
    assert!(
        early.is_err(),
        "a frame at the limit is read, not refused: {early:?}"
    );
    stream
        .write_all(&vec![0xffu8; REQUEST_BYTES_MAX])
        .await
        .unwrap();
    assert_closed_without_answer(&mut stream).await;
    assert_still_serving(server.addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_api_key_closes_the_connection() {
    let server = TestServer::start().await;
    for api_key in [999i16, -2, 10_000, i16::MAX] {
        let mut body = BytesMut::new();
        body.put_i16(api_key);
        body.put_i16(0);
        body.put_i32(1);
        body.put_i16(-1); // null client id
        send_and_expect_close(server.addr, &raw_frame(&body)).await;
        assert_still_serving(server.addr).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_api_versions_version_gets_a_v0_answer() {
    let server = TestServer::start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    for (version, correlation_id) in [(127, 77), (5, 78), (-1, 79)] {
        let mut body = BytesMut::new();
        body.put_i16(ApiKey::ApiVersions as i16);
        body.put_i16(version);
        body.put_i32(correlation_id);
        body.extend_from_slice(b"\x00\x05hello and a body the broker cannot know");
        stream.write_all(&raw_frame(&body)).await.unwrap();
        let mut response = read_response(&mut stream).await;
        let header = ResponseHeader::decode(&mut response, 0).unwrap();
        assert_eq!(header.correlation_id, correlation_id);
        let answer = ApiVersionsResponse::decode(&mut response, 0).unwrap();
        assert_eq!(answer.error_code, 35, "UNSUPPORTED_VERSION for v{version}");
        let own = answer
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions as i16)
            .expect("the answer lists ApiVersions itself");
        assert!(own.min_version == 0 && own.max_version >= 3, "{own:?}");
        assert!(!response.has_remaining(), "v0 body consumed exactly");
    }
    // As in Kafka, the connection stays open for the retry.
    let response = api_versions(&mut stream, 0, 80).await;
    assert_eq!(response.error_code, 0);
    drop(stream);
    assert_still_serving(server.addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inter_node_request_to_a_standalone_broker_closes_the_connection() {
    let server = TestServer::start().await;
    let vote = RequestKind::Vote(kafka_protocol::messages::VoteRequest::default());
    send_and_expect_close(server.addr, &frame(ApiKey::Vote, 2, 1, &vote)).await;
    assert_still_serving(server.addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_metadata_version_closes_the_connection() {
    let server = TestServer::start().await;
    for version in [99i16, -1, 13] {
        let mut request = frame(
            ApiKey::Metadata,
            12,
            1,
            &RequestKind::Metadata(MetadataRequest::default()),
        );
        request[6..8].copy_from_slice(&version.to_be_bytes());
        send_and_expect_close(server.addr, &request).await;
        assert_still_serving(server.addr).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_requests_before_garbage_are_answered_in_order() {
    let server = TestServer::start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let mut pipeline = Vec::new();
    for correlation_id in 0..20 {
        pipeline.extend(api_versions_request(3, correlation_id));
    }
    pipeline.extend(raw_frame(&[0xff; 16]));
    stream.write_all(&pipeline).await.unwrap();
    // Every answer that the server sends comes in order; the garbage then
    // closes the connection. (Answers queued behind the close may be cut.)
    let mut expected = 0;
    loop {
        let mut length = [0u8; 4];
        match tokio::time::timeout(TIMEOUT, stream.read_exact(&mut length))
            .await
            .expect("no hang")
        {
            Ok(_) => {}
            Err(_) => break,
        }
        let mut body = vec![0; i32::from_be_bytes(length) as usize];
        stream.read_exact(&mut body).await.unwrap();
        let mut body = Bytes::from(body);
        assert_eq!(
            ResponseHeader::decode(&mut body, 0).unwrap().correlation_id,
            expected
        );
        expected += 1;
    }
    assert!(expected <= 20);
    assert_still_serving(server.addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_abusive_connections_at_once() {
    let server = TestServer::start().await;
    let mut tasks = Vec::new();
    for i in 0..50u8 {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let junk: Vec<u8> = (0..200u16)
                .map(|j| (j as u8).wrapping_mul(31).wrapping_add(i))
                .collect();
            let _ = stream.write_all(&raw_frame(&junk)).await;
            assert_closed_without_answer(&mut stream).await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_still_serving(server.addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_stalled_connections_are_closed() {
    let server =
        TestServer::start_with(|c| c.connection_idle_timeout = Duration::from_millis(300)).await;
    // Silent after connecting.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    // Stalled in the middle of a frame (a slow-loris holding a slot).
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(&api_versions_request(3, 1)[..6])
        .await
        .unwrap();
    assert_closed_without_answer(&mut idle).await;
    assert_closed_without_answer(&mut stalled).await;
    assert_still_serving(server.addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused_and_slots_come_back() {
    let server = TestServer::start_with(|c| c.connections_max = 2).await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    // Both hold a slot once they have been answered.
    assert_eq!(api_versions(&mut first, 3, 1).await.error_code, 0);
    assert_eq!(api_versions(&mut second, 3, 1).await.error_code, 0);
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let _ = third.write_all(&api_versions_request(3, 1)).await;
    assert_closed_without_answer(&mut third).await;
    drop(first);
    // The slot frees once the server has seen the close; retry briefly.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let _ = stream.write_all(&api_versions_request(3, 9)).await;
        let mut length = [0u8; 4];
        if let Ok(Ok(_)) = tokio::time::timeout(TIMEOUT, stream.read_exact(&mut length)).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a freed slot is reused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(second);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_not_buffered() {
    let server = TestServer::start_with(|c| {
        c.responses_queued_per_connection_max = 4;
        c.node.in_flight_requests_per_connection_max = 4;
        c.drain_timeout = Duration::from_millis(200);
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let requests = 50_000;
    let mut pipeline = Vec::new();
    for correlation_id in 0..requests {
        pipeline.extend(api_versions_request(3, correlation_id));
    }
    // Tens of megabytes of answers the client does not read: the server
    // must give up on the connection rather than queue them all. The write
    // itself may fail once the server has closed.
    let _ = tokio::time::timeout(TIMEOUT, stream.write_all(&pipeline)).await;
    let mut received = Vec::new();
    loop {
        let mut chunk = [0u8; 64 * 1024];
        match tokio::time::timeout(TIMEOUT, stream.read(&mut chunk))
            .await
            .expect("no hang")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
    let mut answered = 0usize;
    let mut buf = &received[..];
    while buf.len() >= 4 {
        let length = i32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        if buf.len() < 4 + length {
            break;
        }
        buf = &buf[4 + length..];
        answered += 1;
    }
    assert!(
        answered < requests as usize,
        "all {answered} answers were queued for a client that did not read"
    );
    assert_still_serving(server.addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_memory_is_shared_and_bounded() {
    let server =
        TestServer::start_with(|c| c.request_bytes_in_flight_max = REQUEST_BYTES_MAX).await;
    // One connection announces a frame as large as all request memory and
    // sends only part of it: it holds every permit while it trickles.
    let mut hog = TcpStream::connect(server.addr).await.unwrap();
    hog.write_all(&(REQUEST_BYTES_MAX as i32).to_be_bytes())
        .await
        .unwrap();
    hog.write_all(&[0u8; 1000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Another client's request waits for memory instead of being read.
    let mut waiting = TcpStream::connect(server.addr).await.unwrap();
    waiting
        .write_all(&api_versions_request(3, 5))
        .await
        .unwrap();
    let mut length = [0u8; 4];
    let early =
        tokio::time::timeout(Duration::from_millis(300), waiting.read_exact(&mut length)).await;
    assert!(
        early.is_err(),
        "answered while all request memory was taken: {early:?}"
    );
    // The hog leaves; its permits return and the waiting request is served.
    drop(hog);
    let length = tokio::time::timeout(TIMEOUT, waiting.read_i32())
        .await
        .expect("served once memory is free")
        .unwrap();
    let mut body = vec![0; length as usize];
    waiting.read_exact(&mut body).await.unwrap();
    let mut body = Bytes::from(body);
    assert_eq!(
        ResponseHeader::decode(&mut body, 0).unwrap().correlation_id,
        5
    );
    assert_still_serving(server.addr).await;
    server.stop().await;
}

/// The environment variable that turns `child_server` into a server.
const CHILD_ENV: &str = "SEEDLOG_ROBUSTNESS_CHILD";

/// Not a test on its own: when `CHILD_ENV` is set, it runs a server in this
/// process until stdin closes, for tests that may kill the process.
#[test]
fn child_server() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let server = TestServer::start().await;
        // Bind printed "seedlog listening on ..."; serve until the parent
        // closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        })
        .await
        .unwrap();
        server.stop().await;
    });
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// kafka-protocol 0.18 pre-allocates `Vec::with_capacity(count)` from an
/// array count read off the wire, before checking that the bytes exist. A
/// Metadata v0 request of 10 bytes announcing i32::MAX topics asks for
/// ~100+ GiB; the allocation fails and the process aborts (not a panic, so
/// `catch_unwind` cannot help). Upstream: kafka-protocol-rs PRs #152, #161,
/// #200 (open). Runs in a child process so the abort cannot take the test
/// binary down with it.
#[test]
fn array_count_bomb_does_not_kill_the_server() {
    let mut child = Child(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["child_server", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("child printed its address").unwrap();
        // The harness prints "test child_server ... " on the same line.
        if let Some((_, address)) = line.split_once("seedlog listening on ") {
            break address.trim().parse().unwrap();
        }
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        assert_still_serving(addr).await;
        let mut body = BytesMut::new();
        body.put_i16(ApiKey::Metadata as i16);
        body.put_i16(0);
        body.put_i32(1);
        body.put_i16(-1); // null client id
        body.put_i32(i32::MAX); // topics: "2^31 - 1 of them follow"
        send_and_expect_close(addr, &raw_frame(&body)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the server process died on a 14-byte request"
    );
    runtime.block_on(assert_still_serving(addr));
}
