//! Record batches (magic 2) kept as bytes.
//!
//! The broker never decodes individual records on the produce or fetch path:
//! it validates the 61-byte v2 header and the CRC-32C, assigns offsets by
//! rewriting `baseOffset` and `partitionLeaderEpoch` in place (both lie
//! before the CRC'd range, so the CRC stays valid), and hands the same bytes
//! to consumers. The layout follows Kafka's `DefaultRecordBatch`:
//!
//! ```text
//! offset  field                 type
//!      0  baseOffset            i64
//!      8  batchLength           i32   bytes after this field (total = 12 + batchLength)
//!     12  partitionLeaderEpoch  i32
//!     16  magic                 i8    always 2 here
//!     17  crc                   u32   CRC-32C of bytes [21, end)
//!     21  attributes            i16
//!     23  lastOffsetDelta       i32
//!     27  baseTimestamp         i64
//!     35  maxTimestamp          i64
//!     43  producerId            i64
//!     51  producerEpoch         i16
//!     53  baseSequence          i32
//!     57  recordsCount          i32
//!     61  records ...
//! ```

mod record_reader;
mod record_writer;
mod testing;
pub(crate) mod varint;

pub use record_reader::{RecordReader, RecordRef};
pub use record_writer::BatchWriter;

#[doc(hidden)]
pub use testing::{build_batch, decode_records_for_test, DecodedRecord, TestRecord};

/// Bytes of a v2 batch header, up to and including `recordsCount`.
pub const BATCH_HEADER_LEN: usize = 61;
/// `baseOffset` + `batchLength`: the bytes not counted by `batchLength`.
pub const LOG_OVERHEAD: usize = 12;
/// The only record format this broker stores.
pub const MAGIC_V2: i8 = 2;

const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
/// The CRC covers everything from `attributes` to the end of the batch.
const CRC_COVERED_FROM: usize = 21;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

pub(crate) const ATTRIBUTE_COMPRESSION_MASK: i16 = 0x07;
const ATTRIBUTE_TIMESTAMP_TYPE: i16 = 0x08;
const ATTRIBUTE_TRANSACTIONAL: i16 = 0x10;
const ATTRIBUTE_CONTROL: i16 = 0x20;
/// KIP-534: set by compaction on a batch holding tombstones; the base
/// timestamp is then the time after which they may be removed.
pub(crate) const ATTRIBUTE_DELETE_HORIZON: i16 = 0x40;

/// Kafka error codes a bad batch maps to.
pub mod error_codes {
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    pub const INVALID_RECORD: i16 = 87;
}

/// Why a batch (or a buffer of batches) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Corruption found by a caller outside this module (free-form reason).
    #[error("corrupt batch: {0}")]
    Corrupt(String),
    /// Fewer bytes than the header or `batchLength` promise: a torn write or
    /// a short read.
    #[error("truncated batch: {needed_bytes} bytes needed, {available_bytes} available")]
    Truncated {
        needed_bytes: usize,
        available_bytes: usize,
    },
    /// `batchLength` too small to hold a header (or negative).
    #[error("invalid batch length {batch_length}")]
    InvalidLength { batch_length: i32 },
    /// A magic byte this broker cannot read as a v2 batch. Magic 0 and 1
    /// (legacy message sets) are unsupported, anything else is garbage.
    #[error("unsupported magic {magic}")]
    UnsupportedMagic { magic: i8 },
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("batch of {size_bytes} bytes exceeds max.message.bytes {max_bytes}")]
    TooLarge { size_bytes: usize, max_bytes: u32 },
    #[error("invalid record count {records_count} for last offset delta {last_offset_delta}")]
    InvalidRecordCount {
        records_count: i32,
        last_offset_delta: i32,
    },
    #[error("invalid compression codec {codec}")]
    InvalidCompression { codec: i16 },
    /// No batch at all where at least one is required.
    #[error("empty record set")]
    Empty,
    /// A record without a key for a compacted topic: compaction keeps the
    /// latest record per key, so a keyless record has no place there.
    #[error(
        "a compacted topic cannot accept a record without a key (offset delta {offset_delta})"
    )]
    NullKeyInCompactedTopic { offset_delta: i32 },
}

impl BatchError {
    /// The Kafka error code a producer receives for this error.
    pub fn kafka_error_code(&self) -> i16 {
        use error_codes::*;
        match self {
            BatchError::Corrupt(_)
            | BatchError::Truncated { .. }
            | BatchError::InvalidLength { .. }
            | BatchError::CrcMismatch { .. } => CORRUPT_MESSAGE,
            // Kafka reads magic 0 and 1 as legacy formats it will not accept
            // on a v2-only log; other values mean the bytes are not a batch.
            BatchError::UnsupportedMagic { magic } if (0..MAGIC_V2).contains(magic) => {
                UNSUPPORTED_FOR_MESSAGE_FORMAT
            }
            BatchError::UnsupportedMagic { .. } => CORRUPT_MESSAGE,
            BatchError::TooLarge { .. } => MESSAGE_TOO_LARGE,
            BatchError::InvalidRecordCount { .. }
            | BatchError::InvalidCompression { .. }
            | BatchError::Empty
            | BatchError::NullKeyInCompactedTopic { .. } => INVALID_RECORD,
        }
    }
}

/// The compression codec in attribute bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn from_codec(codec: i16) -> Option<Compression> {
        match codec {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Attribute bit 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The first 61 bytes of a batch, copied out of the buffer (a header is
/// small, and an owned copy lets the log scan headers read from storage
/// without lifetimes). Getters decode on demand. Parsing checks only that
/// the bytes are there; [`validate_batch`] checks meaning.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    bytes: [u8; BATCH_HEADER_LEN],
}

impl std::fmt::Debug for BatchHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchHeader")
            .field("base_offset", &self.base_offset())
            .field("batch_length", &self.batch_length())
            .field("partition_leader_epoch", &self.partition_leader_epoch())
            .field("magic", &self.magic())
            .field("attributes", &self.attributes())
            .field("last_offset_delta", &self.last_offset_delta())
            .field("max_timestamp", &self.max_timestamp())
            .field("records_count", &self.records_count())
            .finish()
    }
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl BatchHeader {
    /// Copies the header out of the start of `bytes`; `Truncated` when fewer
    /// than [`BATCH_HEADER_LEN`] bytes are present.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated {
                needed_bytes: BATCH_HEADER_LEN,
                available_bytes: bytes.len(),
            });
        }
        let mut header = [0u8; BATCH_HEADER_LEN];
        header.copy_from_slice(&bytes[..BATCH_HEADER_LEN]);
        Ok(BatchHeader { bytes: header })
    }

    /// The same header with its base offset replaced (as written to the log).
    pub fn with_base_offset(mut self, base_offset: i64) -> BatchHeader {
        set_base_offset(&mut self.bytes, base_offset);
        self
    }

    /// The raw header bytes.
    pub fn as_bytes(&self) -> &[u8; BATCH_HEADER_LEN] {
        &self.bytes
    }

    pub fn base_offset(&self) -> i64 {
        be_i64(&self.bytes, BASE_OFFSET_AT)
    }
    /// The offset of the last record: `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }
    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    pub fn batch_length(&self) -> i32 {
        be_i32(&self.bytes, BATCH_LENGTH_AT)
    }
    /// Bytes of the whole batch, `LOG_OVERHEAD + batch_length`. Only
    /// meaningful once `batch_length` has been checked (see
    /// [`BatchHeader::check_length`]); a negative length gives 12.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + usize::try_from(self.batch_length().max(0)).expect("i32 fits usize")
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(&self.bytes, PARTITION_LEADER_EPOCH_AT)
    }
    pub fn magic(&self) -> i8 {
        self.bytes[MAGIC_AT] as i8
    }
    pub fn crc(&self) -> u32 {
        be_u32(&self.bytes, CRC_AT)
    }
    pub fn attributes(&self) -> i16 {
        be_i16(&self.bytes, ATTRIBUTES_AT)
    }
    /// The raw codec, bits 0-2 (`None` from [`Compression::from_codec`]
    /// for 5..=7).
    pub fn compression_codec(&self) -> i16 {
        self.attributes() & ATTRIBUTE_COMPRESSION_MASK
    }
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_codec(self.compression_codec())
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & ATTRIBUTE_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTRIBUTE_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTRIBUTE_CONTROL != 0
    }
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes() & ATTRIBUTE_DELETE_HORIZON != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(&self.bytes, LAST_OFFSET_DELTA_AT)
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(&self.bytes, BASE_TIMESTAMP_AT)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(&self.bytes, MAX_TIMESTAMP_AT)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(&self.bytes, PRODUCER_ID_AT)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(&self.bytes, PRODUCER_EPOCH_AT)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(&self.bytes, BASE_SEQUENCE_AT)
    }
    pub fn records_count(&self) -> i32 {
        be_i32(&self.bytes, RECORDS_COUNT_AT)
    }

    /// The checks that need only the header: length, magic, codec, counts.
    /// A log scanning headers on open uses this without the CRC.
    pub fn check_header(&self) -> Result<(), BatchError> {
        self.check_length()?;
        let magic = self.magic();
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic { magic });
        }
        let codec = self.compression_codec();
        Compression::from_codec(codec).ok_or(BatchError::InvalidCompression { codec })?;
        let records_count = self.records_count();
        let last_offset_delta = self.last_offset_delta();
        let bad_count = BatchError::InvalidRecordCount {
            records_count,
            last_offset_delta,
        };
        if last_offset_delta < 0 || records_count < 0 {
            return Err(bad_count);
        }
        // Compaction leaves batches with fewer records than offsets (it
        // keeps a batch's offset range) and empty batches (see
        // `log::compaction`), so a batch read back from a log or copied from
        // a leader may have gaps, never overlaps. Producers are held to
        // more by [`BatchHeader::check_produced`].
        if records_count > last_offset_delta.saturating_add(1) {
            return Err(bad_count);
        }
        Ok(())
    }

    /// What a batch from a producer must also satisfy, beyond
    /// [`BatchHeader::check_header`]: data batches hold records, and
    /// uncompressed ones are dense (one record per offset). Compressed
    /// ones may claim gaps, which cannot be checked without decompressing.
    pub fn check_produced(&self) -> Result<(), BatchError> {
        let records_count = self.records_count();
        let last_offset_delta = self.last_offset_delta();
        let bad_count = BatchError::InvalidRecordCount {
            records_count,
            last_offset_delta,
        };
        if records_count == 0 && !self.is_control() {
            return Err(bad_count);
        }
        if self.compression() == Some(Compression::None)
            && records_count > 0
            && last_offset_delta != records_count - 1
        {
            return Err(bad_count);
        }
        Ok(())
    }

    /// `batch_length` is at least what the header after it needs.
    pub fn check_length(&self) -> Result<(), BatchError> {
        let batch_length = self.batch_length();
        let min = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
        if batch_length < min {
            return Err(BatchError::InvalidLength { batch_length });
        }
        Ok(())
    }
}

/// Validates one whole batch, `bytes` being exactly the batch (or starting
/// with it: anything after `total_size` is ignored). Checks, in order:
/// enough bytes, header sanity (length, magic, codec, counts), the size
/// limit, and the CRC-32C.
pub fn validate_batch(bytes: &[u8], max_message_bytes: u32) -> Result<BatchHeader, BatchError> {
    // The magic byte sits at offset 16 in every message format, so a legacy
    // batch is recognised before its (different) header is misread.
    if bytes.len() > MAGIC_AT && (bytes[MAGIC_AT] as i8) != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic {
            magic: bytes[MAGIC_AT] as i8,
        });
    }
    let header = BatchHeader::parse(bytes)?;
    header.check_header()?;
    let total_size = header.total_size();
    if total_size > max_message_bytes as usize {
        return Err(BatchError::TooLarge {
            size_bytes: total_size,
            max_bytes: max_message_bytes,
        });
    }
    if bytes.len() < total_size {
        return Err(BatchError::Truncated {
            needed_bytes: total_size,
            available_bytes: bytes.len(),
        });
    }
    let computed = crc32c::crc32c(&bytes[CRC_COVERED_FROM..total_size]);
    let stored = header.crc();
    if computed != stored {
        return Err(BatchError::CrcMismatch { stored, computed });
    }
    Ok(header)
}

/// Validates a buffer of concatenated batches, all or nothing, and returns
/// how many there are. An empty buffer or trailing bytes that do not form a
/// whole batch are errors.
pub fn validate_batches(bytes: &[u8], max_message_bytes: u32) -> Result<usize, BatchError> {
    if bytes.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut iter = BatchIter::new(bytes);
    let mut count = 0usize;
    for (position, _header) in iter.by_ref() {
        validate_batch(&bytes[position..], max_message_bytes)?;
        count += 1;
    }
    if let Some(error) = iter.tail_error() {
        return Err(error);
    }
    assert!(
        count > 0,
        "a non-empty buffer without a tail error holds a batch"
    );
    Ok(count)
}

/// Rewrites `baseOffset` in place. The field lies outside the CRC'd range,
/// so the CRC stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    assert!(
        batch.len() >= LOG_OVERHEAD,
        "a batch starts with a 12-byte log overhead"
    );
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// The header fields a batch rebuilt by compaction may change; its base
/// offset, leader epoch and magic come from the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RebuiltFields {
    pub(crate) attributes: i16,
    pub(crate) last_offset_delta: i32,
    pub(crate) base_timestamp: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) base_sequence: i32,
    pub(crate) records_count: i32,
}

impl RebuiltFields {
    /// The fields of `header` as they are.
    pub(crate) fn of(header: &BatchHeader) -> RebuiltFields {
        RebuiltFields {
            attributes: header.attributes(),
            last_offset_delta: header.last_offset_delta(),
            base_timestamp: header.base_timestamp(),
            max_timestamp: header.max_timestamp(),
            producer_id: header.producer_id(),
            producer_epoch: header.producer_epoch(),
            base_sequence: header.base_sequence(),
            records_count: header.records_count(),
        }
    }
}

/// A whole batch: `original`'s base offset, leader epoch and magic, then
/// `fields`, then `records` (the records section as stored: compressed
/// when the attributes say so), with its length and CRC computed.
pub(crate) fn assemble_batch(
    original: &BatchHeader,
    fields: &RebuiltFields,
    records: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + records.len());
    out.extend_from_slice(&original.as_bytes()[..CRC_AT]);
    out.extend_from_slice(&0u32.to_be_bytes()); // the CRC, computed below
    out.extend_from_slice(&fields.attributes.to_be_bytes());
    out.extend_from_slice(&fields.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&fields.base_timestamp.to_be_bytes());
    out.extend_from_slice(&fields.max_timestamp.to_be_bytes());
    out.extend_from_slice(&fields.producer_id.to_be_bytes());
    out.extend_from_slice(&fields.producer_epoch.to_be_bytes());
    out.extend_from_slice(&fields.base_sequence.to_be_bytes());
    out.extend_from_slice(&fields.records_count.to_be_bytes());
    assert_eq!(out.len(), BATCH_HEADER_LEN, "the v2 header layout");
    out.extend_from_slice(records);
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
        .expect("a rebuilt batch is no larger than a segment");
    out[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    reseal_crc(&mut out);
    out
}

/// Recomputes the CRC-32C of one whole batch (`batch` is exactly the
/// batch) after a CRC'd field was rewritten in place.
pub fn reseal_crc(batch: &mut [u8]) {
    assert!(batch.len() >= BATCH_HEADER_LEN, "a whole batch header");
    let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Rewrites `maxTimestamp` in place and recomputes the CRC: the batch
/// stays valid with different content. The simulator's test-only
/// `corrupt_replica` fault uses it to make one replica silently differ.
pub fn set_max_timestamp(batch: &mut [u8], max_timestamp: i64) {
    assert!(batch.len() >= BATCH_HEADER_LEN, "a whole batch header");
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    reseal_crc(batch);
}

/// Rewrites `partitionLeaderEpoch` in place, outside the CRC'd range too.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    assert!(
        batch.len() >= MAGIC_AT,
        "the leader epoch lies at bytes 12..16"
    );
    batch[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Walks concatenated batches in a buffer, yielding `(position, header)`
/// for each batch whose bytes are all present, without copying the batch
/// (only its header). It checks the length field only: no CRC, no magic.
///
/// It stops at the first batch that is incomplete or whose length field is
/// impossible; [`BatchIter::tail_error`] then says why and
/// [`BatchIter::position`] where.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    tail_error: Option<BatchError>,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> BatchIter<'a> {
        BatchIter {
            buf,
            position: 0,
            tail_error: None,
        }
    }

    /// The position after the last batch yielded so far; after the iterator
    /// is exhausted, the length of the valid whole-batch prefix.
    pub fn position(&self) -> usize {
        self.position
    }

    /// After exhaustion: why bytes were left over (a torn or partial
    /// trailing batch, or a bad length). `None` when the buffer ended
    /// exactly on a batch boundary.
    pub fn tail_error(&self) -> Option<BatchError> {
        self.tail_error.clone()
    }
}

impl Iterator for BatchIter<'_> {
    type Item = (usize, BatchHeader);

    fn next(&mut self) -> Option<(usize, BatchHeader)> {
        if self.tail_error.is_some() || self.position == self.buf.len() {
            return None;
        }
        debug_assert!(
            self.position < self.buf.len(),
            "position stays within the buffer"
        );
        let rest = &self.buf[self.position..];
        let header = match BatchHeader::parse(rest) {
            Ok(header) => header,
            Err(error) => {
                self.tail_error = Some(error);
                return None;
            }
        };
        if let Err(error) = header.check_length() {
            self.tail_error = Some(error);
            return None;
        }
        let total_size = header.total_size();
        if rest.len() < total_size {
            self.tail_error = Some(BatchError::Truncated {
                needed_bytes: total_size,
                available_bytes: rest.len(),
            });
            return None;
        }
        let position = self.position;
        self.position += total_size;
        Some((position, header))
    }
}

#[cfg(test)]
mod tests;
