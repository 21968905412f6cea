//! Kafka's wire framing: every request and response is an `i32` big-endian
//! length followed by that many bytes. Decoding turns a request frame into
//! a header and a body, or into the reason the connection must close.
//!
//! Everything here treats the peer as hostile: lengths are checked before
//! any buffer grows, the buffer grows only as bytes arrive, and the
//! third-party decoder runs behind `catch_unwind`, so bad input closes one
//! connection and never the process.

use crate::response_frame::{Frame, PartsBuf, SHARED_BYTES_MIN};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, FetchResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable, StrBytes};
use seedlog_core::node::supports;
use std::io;
use std::panic::AssertUnwindSafe;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Kafka's `socket.request.max.bytes` default.
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 100 * 1024 * 1024;

/// A frame's buffer grows by at most this much per read, so a peer that
/// announces a large frame and sends little costs little memory.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// The fixed prefix every request header version starts with: api key (2),
/// api version (2), correlation id (4).
const HEADER_PREFIX_BYTES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    #[error("frame of {length_bytes} bytes exceeds the limit of {limit_bytes}")]
    TooLarge {
        length_bytes: usize,
        limit_bytes: usize,
    },
    #[error(
        "connection closed in the middle of a frame ({received_bytes} of {length_bytes} bytes)"
    )]
    Truncated {
        received_bytes: usize,
        length_bytes: usize,
    },
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    request_bytes_max: usize,
) -> Result<Option<Bytes>, FrameError> {
    match read_length(reader, request_bytes_max).await? {
        None => Ok(None),
        Some(length_bytes) => Ok(Some(read_body(reader, length_bytes).await?)),
    }
}

/// Reads and checks a frame's length prefix. `Ok(None)` is a clean end of
/// stream between frames.
pub async fn read_length<R: AsyncRead + Unpin>(
    reader: &mut R,
    request_bytes_max: usize,
) -> Result<Option<usize>, FrameError> {
    let mut length = [0u8; 4];
    let mut filled = 0;
    while filled < length.len() {
        let n = reader.read(&mut length[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated {
                received_bytes: filled,
                length_bytes: 4,
            });
        }
        filled += n;
    }
    Ok(Some(check_length(length, request_bytes_max)?))
}

/// A length prefix's value, if it is one this side accepts.
fn check_length(prefix: [u8; 4], limit_bytes: usize) -> Result<usize, FrameError> {
    let length = i32::from_be_bytes(prefix);
    let length_bytes = usize::try_from(length).map_err(|_| FrameError::NegativeLength(length))?;
    if length_bytes > limit_bytes {
        return Err(FrameError::TooLarge {
            length_bytes,
            limit_bytes,
        });
    }
    Ok(length_bytes)
}

/// Takes the first whole frame (without its length prefix) out of bytes
/// read ahead, for readers that cannot await inside a frame (one `select!`
/// branch among others). `Ok(None)`: not all of it has arrived yet.
pub fn take_frame(inbox: &mut BytesMut, limit_bytes: usize) -> Result<Option<Bytes>, FrameError> {
    let Some(prefix) = inbox.get(..4) else {
        return Ok(None);
    };
    let prefix: [u8; 4] = prefix.try_into().expect("four bytes");
    let length_bytes = check_length(prefix, limit_bytes)?;
    if inbox.len() - 4 < length_bytes {
        return Ok(None);
    }
    inbox.advance(4);
    Ok(Some(inbox.split_to(length_bytes).freeze()))
}

/// Reads the `length_bytes` of a frame whose prefix `read_length` took.
pub async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    length_bytes: usize,
) -> Result<Bytes, FrameError> {
    let mut frame = BytesMut::with_capacity(length_bytes.min(READ_CHUNK_BYTES));
    while frame.len() < length_bytes {
        let missing = length_bytes - frame.len();
        frame.reserve(missing.min(READ_CHUNK_BYTES));
        // `take` keeps the read inside this frame: the next frame's bytes
        // stay in the socket for the next call.
        let n = (&mut *reader)
            .take(missing as u64)
            .read_buf(&mut frame)
            .await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                received_bytes: frame.len(),
                length_bytes,
            });
        }
    }
    assert_eq!(frame.len(), length_bytes, "read past the frame");
    Ok(frame.freeze())
}

/// A request frame, understood.
#[derive(Debug)]
pub enum Decoded {
    Request {
        header: RequestHeader,
        /// Boxed: the largest request type is hundreds of bytes, and
        /// decoded requests travel through channels.
        body: Box<RequestKind>,
    },
    /// ApiVersions at a version the broker does not serve. Kafka answers
    /// with a v0 response carrying UNSUPPORTED_VERSION and its ranges, so
    /// that the client can retry at a version both sides know.
    ApiVersionsUnsupported { correlation_id: i32 },
}

/// Why a request frame cannot be served; each closes the connection, as
/// Kafka does.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("frame of {0} bytes is shorter than a request header")]
    TooShort(usize),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {api_version} of {api_key:?}")]
    UnsupportedVersion { api_key: ApiKey, api_version: i16 },
    #[error("malformed {api_key:?} v{api_version} request: {message}")]
    Malformed {
        api_key: ApiKey,
        api_version: i16,
        message: String,
    },
}

/// Decodes a request frame (without its length prefix).
pub fn decode_request(frame: Bytes) -> Result<Decoded, DecodeError> {
    if frame.len() < HEADER_PREFIX_BYTES {
        return Err(DecodeError::TooShort(frame.len()));
    }
    let mut prefix = &frame[..HEADER_PREFIX_BYTES];
    let api_key_raw = prefix.get_i16();
    let api_version = prefix.get_i16();
    let correlation_id = prefix.get_i32();
    let api_key =
        ApiKey::try_from(api_key_raw).map_err(|()| DecodeError::UnknownApiKey(api_key_raw))?;
    if api_key == ApiKey::ApiVersions && !supports(api_key, api_version) {
        return Ok(Decoded::ApiVersionsUnsupported { correlation_id });
    }
    // Only what the codec cannot read is refused here. Which APIs the node
    // serves is the core's call, and it depends on the node: a cluster node
    // also takes the inter-node APIs (Vote, BrokerRegistration, ...) that
    // clients are never offered. The core closes the connection for any
    // other request it does not serve.
    let codec = api_key.valid_versions();
    if !(codec.min..=codec.max).contains(&api_version) {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            api_version,
        });
    }

    let malformed = |message: String| DecodeError::Malformed {
        api_key,
        api_version,
        message,
    };
    // The decoder indexes and slices untrusted bytes; a bug in it must cost
    // one connection, not the broker.
    let decoded = std::panic::catch_unwind(AssertUnwindSafe(
        move || -> anyhow::Result<(RequestHeader, RequestKind)> {
            let mut buf = frame;
            let header = decode_request_header_from_buffer(&mut buf)?;
            let body = RequestKind::decode(api_key, &mut buf, api_version)?;
            Ok((header, body))
        },
    ));
    match decoded {
        Ok(Ok((header, body))) => {
            debug_assert_eq!(
                header.request_api_key, api_key_raw,
                "header re-read a different key"
            );
            Ok(Decoded::Request {
                header,
                body: Box::new(body),
            })
        }
        Ok(Err(e)) => Err(malformed(format!("{e:#}"))),
        Err(_) => Err(malformed("the decoder panicked".to_string())),
    }
}

/// Encodes a response frame: length, response header at the version the
/// api prescribes, body. A Fetch response's large records fields stay the
/// core's `Bytes`, parts of the frame of their own ([`crate::response_frame`]).
pub fn encode_response(
    correlation_id: i32,
    api_key: ApiKey,
    api_version: i16,
    body: &ResponseKind,
) -> anyhow::Result<Frame> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(api_version);
    if let ResponseKind::Fetch(fetch) = body {
        return encode_fetch_response(&header, header_version, fetch, api_version);
    }
    let mut frame = BytesMut::with_capacity(64);
    frame.put_i32(0); // Length, patched below.
    header.encode(&mut frame, header_version)?;
    body.encode(&mut frame, api_version)?;
    let length = i32::try_from(frame.len() - 4).map_err(|_| {
        anyhow::anyhow!(
            "{api_key:?} response of {} bytes does not fit a frame",
            frame.len()
        )
    })?;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    Ok(Frame::from(frame.freeze()))
}

/// A Fetch response, its records fields of [`SHARED_BYTES_MIN`] or more
/// by reference. The length goes first, so it is computed up front (the
/// part holding it is closed at the first records field).
fn encode_fetch_response(
    header: &ResponseHeader,
    header_version: i16,
    fetch: &FetchResponse,
    api_version: i16,
) -> anyhow::Result<Frame> {
    let header_len = header.compute_size(header_version)?;
    let body_len = fetch.compute_size(api_version)?;
    let length = i32::try_from(header_len + body_len).map_err(|_| {
        anyhow::anyhow!(
            "Fetch response of {} bytes does not fit a frame",
            header_len + body_len
        )
    })?;
    let shared: Vec<&Bytes> = fetch
        .responses
        .iter()
        .flat_map(|topic| &topic.partitions)
        .filter_map(|partition| partition.records.as_ref())
        .filter(|records| records.len() >= SHARED_BYTES_MIN)
        .collect();
    let shared_len: usize = shared.iter().map(|records| records.len()).sum();
    let mut buf = PartsBuf::new(&shared, 4 + header_len + body_len - shared_len);
    buf.put_i32(length);
    header.encode(&mut buf, header_version)?;
    fetch.encode(&mut buf, api_version)?;
    let frame = buf.finish();
    anyhow::ensure!(
        frame.len() == 4 + header_len + body_len,
        "Fetch response encoded to {} bytes, computed {}",
        frame.len(),
        4 + header_len + body_len
    );
    Ok(frame)
}

/// Frames a request as a client sends it: length, header at the version
/// `api_key` prescribes for `api_version`, body. Used by tests.
pub fn encode_request(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &RequestKind,
) -> anyhow::Result<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(api_version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    encode_request_with_header(&header, body)
}

/// Frames a request under the header the caller built (a node's
/// `Output::PeerRequest`): length, header at the version its api key
/// prescribes, body at the header's version.
pub fn encode_request_with_header(
    header: &RequestHeader,
    body: &RequestKind,
) -> anyhow::Result<Bytes> {
    let api_key = ApiKey::try_from(header.request_api_key)
        .map_err(|()| anyhow::anyhow!("unknown api key {}", header.request_api_key))?;
    let api_version = header.request_api_version;
    let mut frame = BytesMut::with_capacity(64);
    frame.put_i32(0); // Length, patched below.
    header.encode(&mut frame, api_key.request_header_version(api_version))?;
    body.encode(&mut frame, api_version)?;
    let length = i32::try_from(frame.len() - 4).map_err(|_| {
        anyhow::anyhow!(
            "{api_key:?} request of {} bytes does not fit a frame",
            frame.len()
        )
    })?;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    Ok(frame.freeze())
}

/// The correlation id a response frame (without its length prefix) starts
/// with, whatever its header version: the caller needs it to know which
/// request, and so which api key and version, the rest decodes with.
pub fn response_correlation_id(frame: &[u8]) -> Option<i32> {
    let prefix: [u8; 4] = frame.get(..4)?.try_into().ok()?;
    Some(i32::from_be_bytes(prefix))
}

/// Decodes a response frame (without its length prefix) to the request
/// sent as `api_key` at `api_version`. The peer is another broker, but its
/// bytes are still untrusted: the decoder runs behind `catch_unwind`.
pub fn decode_response(
    frame: Bytes,
    api_key: ApiKey,
    api_version: i16,
) -> Result<ResponseKind, DecodeError> {
    let malformed = |message: String| DecodeError::Malformed {
        api_key,
        api_version,
        message,
    };
    let decoded =
        std::panic::catch_unwind(AssertUnwindSafe(move || -> anyhow::Result<ResponseKind> {
            let mut buf = frame;
            ResponseHeader::decode(&mut buf, api_key.response_header_version(api_version))?;
            let body = ResponseKind::decode(api_key, &mut buf, api_version)?;
            anyhow::ensure!(
                !buf.has_remaining(),
                "{} bytes left after the body",
                buf.remaining()
            );
            Ok(body)
        }));
    match decoded {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(malformed(format!("{e:#}"))),
        Err(_) => Err(malformed("the decoder panicked".to_string())),
    }
}

/// The answer to [`Decoded::ApiVersionsUnsupported`]: v0 body, v0 header.
pub fn encode_api_versions_unsupported(correlation_id: i32) -> Frame {
    let body = ResponseKind::ApiVersions(seedlog_core::node::api_versions_unsupported_response());
    encode_response(correlation_id, ApiKey::ApiVersions, 0, &body)
        .expect("the broker's own ApiVersions list encodes at v0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::{Decodable, StrBytes};

    fn request_frame(
        api_key: ApiKey,
        api_version: i16,
        correlation_id: i32,
        body: &RequestKind,
    ) -> Bytes {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(api_version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("test")))
            .encode(&mut buf, api_key.request_header_version(api_version))
            .unwrap();
        body.encode(&mut buf, api_version).unwrap();
        buf.freeze()
    }

    fn with_length(frame: &[u8]) -> Vec<u8> {
        let mut out = (frame.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(frame);
        out
    }

    #[tokio::test]
    async fn reads_consecutive_frames_and_a_clean_end() {
        let mut input = with_length(b"first");
        input.extend(with_length(b""));
        input.extend(with_length(b"third"));
        let mut reader = &input[..];
        assert_eq!(
            &read_frame(&mut reader, 100).await.unwrap().unwrap()[..],
            b"first"
        );
        assert_eq!(
            &read_frame(&mut reader, 100).await.unwrap().unwrap()[..],
            b""
        );
        assert_eq!(
            &read_frame(&mut reader, 100).await.unwrap().unwrap()[..],
            b"third"
        );
        assert!(read_frame(&mut reader, 100).await.unwrap().is_none());
    }

    #[test]
    fn takes_whole_frames_out_of_bytes_read_ahead() {
        let mut inbox = BytesMut::new();
        assert!(take_frame(&mut inbox, 100).unwrap().is_none());
        let mut bytes = with_length(b"first");
        bytes.extend(with_length(b"second"));
        inbox.extend_from_slice(&bytes[..3]);
        assert!(take_frame(&mut inbox, 100).unwrap().is_none());
        inbox.extend_from_slice(&bytes[3..12]);
        assert_eq!(&take_frame(&mut inbox, 100).unwrap().unwrap()[..], b"first");
        assert!(take_frame(&mut inbox, 100).unwrap().is_none());
        inbox.extend_from_slice(&bytes[12..]);
        assert_eq!(
            &take_frame(&mut inbox, 100).unwrap().unwrap()[..],
            b"second"
        );
        assert!(inbox.is_empty());

        inbox.extend_from_slice(&101i32.to_be_bytes());
        assert!(matches!(
            take_frame(&mut inbox, 100),
            Err(FrameError::TooLarge {
                length_bytes: 101,
                ..
            })
        ));
        let mut negative = BytesMut::from(&(-5i32).to_be_bytes()[..]);
        assert!(matches!(
            take_frame(&mut negative, 100),
            Err(FrameError::NegativeLength(-5))
        ));
    }

    #[tokio::test]
    async fn rejects_bad_lengths_and_truncation() {
        let negative = (-1i32).to_be_bytes();
        assert!(matches!(
            read_frame(&mut &negative[..], 100).await,
            Err(FrameError::NegativeLength(-1))
        ));
        let large = 101i32.to_be_bytes();
        assert!(matches!(
            read_frame(&mut &large[..], 100).await,
            Err(FrameError::TooLarge {
                length_bytes: 101,
                ..
            })
        ));
        let mut truncated = 100i32.to_be_bytes().to_vec();
        truncated.extend_from_slice(&[0; 10]);
        assert!(matches!(
            read_frame(&mut &truncated[..], 1000).await,
            Err(FrameError::Truncated {
                received_bytes: 10,
                length_bytes: 100
            })
        ));
        assert!(matches!(
            read_frame(&mut &[0u8, 0][..], 1000).await,
            Err(FrameError::Truncated {
                received_bytes: 2,
                ..
            })
        ));
    }

    #[test]
    fn decodes_a_supported_request() {
        let body = RequestKind::ApiVersions(ApiVersionsRequest::default());
        let frame = request_frame(ApiKey::ApiVersions, 3, 7, &body);
        match decode_request(frame).unwrap() {
            Decoded::Request { header, body } => {
                assert_eq!(header.correlation_id, 7);
                assert!(matches!(*body, RequestKind::ApiVersions(_)));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn inter_node_requests_are_decoded_for_the_core_to_judge() {
        let vote = RequestKind::Vote(kafka_protocol::messages::VoteRequest::default());
        let frame = request_frame(ApiKey::Vote, 2, 9, &vote);
        match decode_request(frame).unwrap() {
            Decoded::Request { header, body } => {
                assert_eq!(header.correlation_id, 9);
                assert!(matches!(*body, RequestKind::Vote(_)));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn classifies_bad_requests() {
        assert_eq!(
            decode_request(Bytes::from_static(&[0, 18, 0])).unwrap_err(),
            DecodeError::TooShort(3)
        );
        let unknown = Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(
            decode_request(unknown).unwrap_err(),
            DecodeError::UnknownApiKey(0x7f00)
        );

        let metadata = RequestKind::Metadata(MetadataRequest::default());
        let frame = request_frame(ApiKey::Metadata, 12, 1, &metadata);
        let mut too_new = BytesMut::from(&frame[..]);
        too_new[2..4].copy_from_slice(&99i16.to_be_bytes());
        assert!(matches!(
            decode_request(too_new.freeze()).unwrap_err(),
            DecodeError::UnsupportedVersion {
                api_version: 99,
                ..
            }
        ));

        let mut garbage = BytesMut::from(&frame[..8]);
        garbage.extend_from_slice(&[0xff; 5]);
        assert!(matches!(
            decode_request(garbage.freeze()).unwrap_err(),
            DecodeError::Malformed { .. }
        ));
    }

    #[test]
    fn a_fetch_response_keeps_its_large_records_as_parts_and_decodes_the_same() {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        let records = |len: usize, seed: u8| -> Bytes {
            (0..len)
                .map(|i| (i as u8) ^ seed)
                .collect::<Vec<u8>>()
                .into()
        };
        let big = [
            records(SHARED_BYTES_MIN, 1),
            records(3 * SHARED_BYTES_MIN + 5, 2),
        ];
        let small = records(10, 3);
        let partition = |index: i32, records: &Bytes| {
            PartitionData::default()
                .with_partition_index(index)
                .with_high_watermark(1000 + i64::from(index))
                .with_records(Some(records.clone()))
        };
        let body = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(StrBytes::from_static_str("t").into())
            .with_partitions(vec![
                partition(0, &big[0]),
                partition(1, &small),
                partition(2, &big[1]),
            ])]);
        // Before and after flexible versions (12), and the newest.
        for version in [4, 11, 12, 13, 16] {
            let frame = encode_response(
                9,
                ApiKey::Fetch,
                version,
                &ResponseKind::Fetch(body.clone()),
            )
            .unwrap();
            let shared: Vec<_> = frame.parts().iter().map(|p| p.as_ptr()).collect();
            assert!(
                big.iter().all(|b| shared.contains(&b.as_ptr())),
                "v{version}: both large records fields are parts of their own"
            );
            assert!(
                !shared.contains(&small.as_ptr()),
                "v{version}: the small one is copied"
            );
            let mut bytes = frame.to_bytes();
            assert_eq!(
                bytes.get_i32() as usize,
                bytes.len(),
                "v{version}: the length"
            );
            assert_eq!(response_correlation_id(&bytes), Some(9));
            let decoded = decode_response(bytes, ApiKey::Fetch, version).unwrap();
            let ResponseKind::Fetch(decoded) = decoded else {
                panic!("v{version}: not a Fetch response");
            };
            let got: Vec<_> = decoded.responses[0]
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.high_watermark, p.records.clone()))
                .collect();
            let want: Vec<_> = [(0, &big[0]), (1, &small), (2, &big[1])]
                .into_iter()
                .map(|(i, r)| (i, 1000 + i64::from(i), Some(r.clone())))
                .collect();
            assert_eq!(got, want, "v{version}");
        }
    }

    #[test]
    fn decodes_a_response_at_the_version_of_its_request() {
        let body =
            ResponseKind::ApiVersions(seedlog_core::node::api_versions_unsupported_response());
        let mut frame = encode_response(42, ApiKey::ApiVersions, 3, &body)
            .unwrap()
            .to_bytes();
        frame.advance(4);
        assert_eq!(response_correlation_id(&frame), Some(42));
        match decode_response(frame.clone(), ApiKey::ApiVersions, 3).unwrap() {
            ResponseKind::ApiVersions(r) => assert_eq!(r.error_code, 35),
            other => panic!("unexpected {other:?}"),
        }
        // Read as the answer to another request, the bytes do not fit.
        assert!(matches!(
            decode_response(frame, ApiKey::Metadata, 12),
            Err(DecodeError::Malformed { .. })
        ));
        assert_eq!(response_correlation_id(&[0, 0, 1]), None);
    }

    #[test]
    fn unsupported_api_versions_version_gets_the_v0_answer() {
        let mut frame = BytesMut::new();
        frame.put_i16(ApiKey::ApiVersions as i16);
        frame.put_i16(i16::MAX);
        frame.put_i32(42);
        frame.extend_from_slice(b"whatever follows is not parsed");
        assert!(matches!(
            decode_request(frame.freeze()).unwrap(),
            Decoded::ApiVersionsUnsupported { correlation_id: 42 }
        ));

        let mut response = encode_api_versions_unsupported(42).to_bytes();
        let length = response.get_i32();
        assert_eq!(length as usize, response.len());
        let header = ResponseHeader::decode(&mut response, 0).unwrap();
        assert_eq!(header.correlation_id, 42);
        let body = kafka_protocol::messages::ApiVersionsResponse::decode(&mut response, 0).unwrap();
        assert_eq!(body.error_code, 35, "UNSUPPORTED_VERSION");
        assert!(body
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::ApiVersions as i16));
    }
}
