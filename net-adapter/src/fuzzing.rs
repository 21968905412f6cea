//! What the fuzz targets in `fuzz/` run, kept here so that the stable test
//! `tests/fuzz_corpus.rs` replays the committed corpus through the very
//! same code on every CI run (cargo-fuzz itself needs libFuzzer and
//! sanitizer flags that CI does not build).
//!
//! Each entry point takes untrusted bytes and must neither panic nor hang:
//! a panic here is a broker that one bad frame can take down (the
//! connection task catches decoder panics, but a panic in the node thread
//! stops the broker). The fuzzer's panic hook aborts, so even a panic that
//! `decode_request` would catch is reported.

use crate::framing::{decode_request, Decoded};
use bytes::Bytes;
use seedlog_core::batch::{
    reseal_crc, validate_batches, BatchHeader, BatchIter, BATCH_HEADER_LEN, LOG_OVERHEAD,
};
use seedlog_core::group::records::{
    decode_batch_records, decode_group_value, decode_key, decode_offset_value,
};
use seedlog_core::node::{Input, Node, NodeConfig, Output};
use seedlog_core::storage::MemoryStorage;
use seedlog_core::storage::Storage;
use seedlog_core::Instant;

/// `message.max.bytes` for the batch target: the broker's default.
const MAX_MESSAGE_BYTES: u32 = 1024 * 1024;
/// Batches one `record_batches` input may re-seal.
const BATCHES_MAX: usize = 1_000;
/// Frames one `node_requests` input may carry: bounds a run's time.
pub const NODE_FRAMES_MAX: usize = 64;
/// Outputs drained after one input before the run is declared a livelock.
const OUTPUTS_PER_INPUT_MAX: usize = 100_000;
/// Virtual time between two requests: long enough for group timers
/// (initial rebalance delay, session timeouts) to fire within a run.
const STEP_MS: u64 = 1_000;

/// Decodes one request frame (without its length prefix) as a connection
/// task does. The answer is an error or a request whose header agrees with
/// the frame's prefix.
pub fn request_frame(data: &[u8]) {
    let decoded = decode_request(Bytes::copy_from_slice(data));
    if let Ok(Decoded::Request { header, .. }) = decoded {
        let api_key = i16::from_be_bytes([data[0], data[1]]);
        let api_version = i16::from_be_bytes([data[2], data[3]]);
        assert_eq!(header.request_api_key, api_key);
        assert_eq!(header.request_api_version, api_version);
    }
}

/// Validates record batches as Produce does, then reads what the broker
/// itself decodes from a valid batch: the group coordinator's records,
/// which it replays from `__consumer_offsets` (a client may produce there).
///
/// Input: a mode byte, then the batches. Mode bit 0 re-seals the CRC of
/// every whole batch first: a mutation almost always breaks the CRC, and
/// without this the fuzzer would never get past the check to the decoders.
pub fn record_batches(data: &[u8]) {
    let Some((&mode, batches)) = data.split_first() else {
        return;
    };
    let mut batches = batches.to_vec();
    if mode & 1 == 1 {
        reseal_each(&mut batches);
    }
    check_batches(&batches);
}

fn check_batches(data: &[u8]) {
    let Ok(count) = validate_batches(data, MAX_MESSAGE_BYTES) else {
        return;
    };
    let mut iter = BatchIter::new(data);
    let mut seen = 0usize;
    for (position, header) in iter.by_ref() {
        assert!(position + header.total_size() <= data.len());
        assert!(header.last_offset() >= header.base_offset());
        seen += 1;
        let batch = &data[position..position + header.total_size()];
        let Ok(records) = decode_batch_records(batch) else {
            continue;
        };
        for (key, value) in &records {
            let Some(key) = key else {
                continue;
            };
            if decode_key(key).is_ok() {
                if let Some(value) = value.as_deref() {
                    let _ = decode_offset_value(value);
                    let _ = decode_group_value(value);
                }
            }
        }
    }
    assert!(
        iter.tail_error().is_none(),
        "validated batches have no bad tail"
    );
    assert_eq!(seen, count, "validation and iteration agree on the count");
}

/// Recomputes the CRC of each whole batch, front to back, stopping at the
/// first header that does not describe a whole batch.
fn reseal_each(bytes: &mut [u8]) {
    let mut position = 0usize;
    for _ in 0..BATCHES_MAX {
        let Ok(header) = BatchHeader::parse(&bytes[position..]) else {
            return;
        };
        let Ok(length) = usize::try_from(header.batch_length()) else {
            return;
        };
        let end = position + LOG_OVERHEAD + length;
        if length + LOG_OVERHEAD < BATCH_HEADER_LEN || end > bytes.len() {
            return;
        }
        reseal_crc(&mut bytes[position..end]);
        position = end;
    }
}

/// Feeds a sequence of request frames to a standalone broker on three
/// connections, completing every flush and moving virtual time between
/// requests, and checks the node's invariants after each step.
///
/// Input: frames, each prefixed by a big-endian u16 length (at most
/// [`NODE_FRAMES_MAX`]); a frame that does not decode is skipped, as its
/// connection would be closed.
pub fn node_requests(data: &[u8]) {
    let config = NodeConfig {
        group_initial_rebalance_delay_ms: 0,
        ..NodeConfig::default()
    };
    let mut now = Instant::ZERO;
    let mut node = Node::new(config, MemoryStorage::new(), 0, now).expect("an empty node opens");
    for (index, frame) in split_frames(data).enumerate() {
        let connection = (index % 3) as u64;
        if let Ok(Decoded::Request { header, body }) = decode_request(Bytes::copy_from_slice(frame))
        {
            let input = Input::Request {
                connection,
                header,
                body: *body,
            };
            node.handle(now, input);
            drain(&mut node, now);
        }
        now = now + std::time::Duration::from_millis(STEP_MS);
        node.handle_timeout(now);
        drain(&mut node, now);
        node.check_invariants();
    }
}

/// The frames of a `node_requests` input.
fn split_frames(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let prefix: [u8; 2] = data.get(..2)?.try_into().ok()?;
        let length = u16::from_be_bytes(prefix) as usize;
        let frame = data.get(2..2 + length)?;
        data = &data[2 + length..];
        Some(frame)
    })
    .take(NODE_FRAMES_MAX)
}

/// Takes every output, completing flushes as a healthy disk would.
fn drain(node: &mut Node<MemoryStorage>, now: Instant) {
    for _ in 0..OUTPUTS_PER_INPUT_MAX {
        let Some(output) = node.poll_output() else {
            return;
        };
        match output {
            Output::Flush { flush_id, paths } => {
                for path in &paths {
                    node.storage_mut().sync(path).expect("memory storage syncs");
                }
                node.handle(now, Input::FlushCompleted { flush_id });
            }
            Output::Response { .. } | Output::CloseConnection { .. } => {}
            Output::PeerRequest { .. } => panic!("a standalone broker has no peers"),
        }
    }
    panic!("more than {OUTPUTS_PER_INPUT_MAX} outputs after one input: a livelock");
}

/// Frames `frames` as [`node_requests`] reads them.
pub fn join_frames(frames: &[Bytes]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames.iter().take(NODE_FRAMES_MAX) {
        let length = u16::try_from(frame.len()).expect("a seed frame under 64 KiB");
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(frame);
    }
    out
}
