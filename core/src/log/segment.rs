//! One segment: a file of whole batches `{dir}/{base_offset:020}.log`, and
//! what the log keeps in memory about it (size, offsets, timestamps, sparse
//! indexes). The file holds only batch bytes; see [`super::index`] for why
//! there are no index files.

use super::index::{OffsetIndex, TimeIndex};
use super::LogError;
use crate::batch::{validate_batch, BatchHeader, BATCH_HEADER_LEN};
use crate::storage::{join, Storage, StorageError};
use crate::time::Instant;

const SEGMENT_SUFFIX: &str = ".log";
/// Zero-padded so that names sort as offsets do.
const SEGMENT_NAME_DIGITS: usize = 20;
/// Bytes `find_batch` reads at a time: twice Kafka's default
/// `index.interval.bytes`, so one read usually covers the gap between
/// index entries.
const FIND_CHUNK_BYTES: u64 = 8192;

pub(crate) fn segment_file_name(base_offset: i64) -> String {
    assert!(base_offset >= 0, "segment base offsets are non-negative");
    format!("{base_offset:020}{SEGMENT_SUFFIX}")
}

/// The base offset a segment file name encodes; `None` for other files.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    pub(crate) path: String,
    pub(crate) size_bytes: u64,
    /// The offset after the last batch; `base_offset` when empty.
    pub(crate) next_offset: i64,
    /// Largest batch max timestamp; `None` when empty.
    pub(crate) max_timestamp: Option<i64>,
    /// When the first batch went in (or when the log was opened, for a
    /// segment found on disk): the clock `segment.ms` runs from.
    pub(crate) created_at: Option<Instant>,
    /// The earliest KIP-534 delete horizon among the batches (compaction
    /// sets one on a batch holding tombstones): from then on a compaction
    /// pass can remove some. `None` when no batch has one.
    pub(crate) delete_horizon_ms_min: Option<i64>,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index_entry: u64,
}

/// What a scan of a segment file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanOutcome {
    pub(crate) file_bytes: u64,
    /// Bytes of the valid prefix: whole, in-sequence (and, for a full scan,
    /// CRC-valid) batches.
    pub(crate) valid_bytes: u64,
    pub(crate) batches: u64,
}

impl Segment {
    pub(crate) fn new(dir: &str, base_offset: i64) -> Segment {
        Segment {
            base_offset,
            path: join(dir, &segment_file_name(base_offset)),
            size_bytes: 0,
            next_offset: base_offset,
            max_timestamp: None,
            created_at: None,
            delete_horizon_ms_min: None,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index_entry: 0,
        }
    }

    /// The segment is no longer the active one: appends and most reads
    /// have moved on.
    pub(crate) fn seal(&mut self) {
        self.offset_index.seal();
    }

    pub(crate) fn has_index_tail(&self) -> bool {
        self.offset_index.has_tail()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }

    fn relative_offset(&self, offset: i64) -> u32 {
        let relative = offset - self.base_offset;
        assert!(
            (0..=i64::from(u32::MAX)).contains(&relative),
            "offset {offset} outside segment {} (rolls keep relative offsets in u32)",
            self.base_offset
        );
        relative as u32
    }

    fn position_u32(position: u64) -> u32 {
        u32::try_from(position)
            .expect("segment positions stay below 4 GiB (segment.bytes is capped)")
    }

    /// Accounts for a batch just written at the segment end (the header
    /// as written, with its final base offset).
    pub(crate) fn on_append(&mut self, header: &BatchHeader, index_interval_bytes: u32) {
        assert_eq!(
            header.base_offset(),
            self.next_offset,
            "batches in a segment are contiguous"
        );
        let position = self.size_bytes;
        let relative = self.relative_offset(header.base_offset());
        if self.bytes_since_index_entry >= u64::from(index_interval_bytes) {
            self.offset_index
                .append(relative, Self::position_u32(position));
            let max_before = self.max_timestamp.expect("an indexed batch follows others");
            self.time_index.append(max_before, relative);
            self.bytes_since_index_entry = 0;
        } else if position > 0 {
            // The first batch needs no entry: a lookup below every entry
            // starts at the segment start.
            self.offset_index
                .note_unindexed(relative, Self::position_u32(position));
        }
        let total = header.total_size() as u64;
        self.bytes_since_index_entry += total;
        self.size_bytes += total;
        self.next_offset = header.next_offset();
        self.max_timestamp = Some(
            self.max_timestamp
                .map_or(header.max_timestamp(), |ts| ts.max(header.max_timestamp())),
        );
        if header.has_delete_horizon() {
            let horizon_ms = header.base_timestamp();
            self.delete_horizon_ms_min = Some(
                self.delete_horizon_ms_min
                    .map_or(horizon_ms, |min| min.min(horizon_ms)),
            );
        }
    }

    /// Reads the header of the batch at `position`, which the log already
    /// knows to be whole (it was validated on append or on open).
    pub(crate) fn read_header(
        &self,
        storage: &mut dyn Storage,
        position: u64,
    ) -> Result<BatchHeader, LogError> {
        debug_assert!(position < self.size_bytes, "header read inside the segment");
        let bytes = storage.read_at(&self.path, position, BATCH_HEADER_LEN)?;
        BatchHeader::parse(&bytes).map_err(|_| self.short_read(position))
    }

    fn short_read(&self, position: u64) -> LogError {
        LogError::Storage(StorageError::Io {
            path: self.path.clone(),
            message: format!("short read of a batch header at {position}"),
        })
    }

    /// The position and header of the batch holding `offset`
    /// (`base_offset <= offset < next_offset`).
    pub(crate) fn find_batch(
        &self,
        storage: &mut dyn Storage,
        offset: i64,
    ) -> Result<(u64, BatchHeader), LogError> {
        assert!(
            self.base_offset <= offset && offset < self.next_offset,
            "offset {offset} not in segment [{}, {})",
            self.base_offset,
            self.next_offset
        );
        let mut position = u64::from(self.offset_index.lookup(self.relative_offset(offset)));
        if let Some(bytes) =
            storage.peek_at(&self.path, position, (self.size_bytes - position) as usize)
        {
            // In memory: the headers are scanned where they lie, uncopied
            // (the same steps and errors as the chunked reads below).
            let start = position;
            for _ in 0..=self.size_bytes / BATCH_HEADER_LEN as u64 {
                let at = (position - start) as usize;
                let header = bytes
                    .get(at..at + BATCH_HEADER_LEN)
                    .and_then(|h| BatchHeader::parse(h).ok())
                    .ok_or_else(|| self.short_read(position))?;
                if header.last_offset() >= offset {
                    return Ok((position, header));
                }
                position += header.total_size() as u64;
            }
            self.batch_missing(offset);
        }
        // Headers are read a chunk at a time, not one read each: the index
        // is sparse (one entry per `index.interval.bytes`), so the batch
        // sought is usually within the first chunk, and small batches would
        // otherwise cost a read (a syscall on files) per header.
        let mut chunk = bytes::Bytes::new();
        let mut chunk_start = position;
        // Every step moves past one whole batch, so the scan ends within the
        // segment; the bound is the segment size over the smallest batch.
        for _ in 0..=self.size_bytes / BATCH_HEADER_LEN as u64 {
            let at = (position - chunk_start) as usize;
            if at + BATCH_HEADER_LEN > chunk.len() {
                let len = (self.size_bytes - position).min(FIND_CHUNK_BYTES);
                chunk = storage.read_at(&self.path, position, len as usize)?;
                chunk_start = position;
                if chunk.len() < BATCH_HEADER_LEN {
                    return Err(self.short_read(position));
                }
                continue;
            }
            let header = BatchHeader::parse(&chunk[at..at + BATCH_HEADER_LEN])
                .map_err(|_| self.short_read(position))?;
            if header.last_offset() >= offset {
                return Ok((position, header));
            }
            position += header.total_size() as u64;
        }
        self.batch_missing(offset);
    }

    /// `find_batch` walked the whole segment without reaching `offset`,
    /// which its bounds say is there: the segment's own state is wrong.
    fn batch_missing(&self, offset: i64) -> ! {
        panic!(
            "offset {offset} not found in segment {} although in range",
            self.base_offset
        );
    }

    /// The first batch at or after `min_offset` (its last offset, that is)
    /// whose max timestamp is >= `timestamp`.
    pub(crate) fn find_by_timestamp(
        &self,
        storage: &mut dyn Storage,
        timestamp: i64,
        min_offset: i64,
    ) -> Result<Option<BatchHeader>, LogError> {
        if self.max_timestamp.is_none_or(|ts| ts < timestamp) || self.next_offset <= min_offset {
            return Ok(None);
        }
        let mut position = match self.time_index.lookup(timestamp) {
            None => 0,
            Some(relative) => u64::from(self.offset_index.lookup(relative)),
        };
        for _ in 0..=self.size_bytes / BATCH_HEADER_LEN as u64 {
            if position >= self.size_bytes {
                return Ok(None);
            }
            let header = self.read_header(storage, position)?;
            if header.last_offset() >= min_offset && header.max_timestamp() >= timestamp {
                return Ok(Some(header));
            }
            position += header.total_size() as u64;
        }
        unreachable!("a forward scan ends at the segment end");
    }

    /// Rebuilds a segment from its file: reads batches from the start while
    /// they are whole, in sequence from `base_offset`, have sane headers,
    /// and (when `verify_crc`) a valid CRC. Stops at the first that is not;
    /// the caller cuts the file there. Reads 61 bytes per batch unless
    /// `verify_crc` is set.
    pub(crate) fn scan(
        storage: &mut dyn Storage,
        dir: &str,
        base_offset: i64,
        index_interval_bytes: u32,
        verify_crc: bool,
    ) -> Result<(Segment, ScanOutcome), LogError> {
        let mut segment = Segment::new(dir, base_offset);
        let file_bytes = storage.len(&segment.path)?;
        let mut batches = 0u64;
        let mut position = 0u64;
        for _ in 0..=file_bytes / BATCH_HEADER_LEN as u64 {
            if position == file_bytes {
                break;
            }
            let head = storage.read_at(&segment.path, position, BATCH_HEADER_LEN)?;
            let Ok(header) = BatchHeader::parse(&head) else {
                break; // a torn header
            };
            let whole = header.check_header().is_ok()
                && position + header.total_size() as u64 <= file_bytes
                && header.base_offset() == segment.next_offset;
            if !whole {
                break;
            }
            if verify_crc {
                let bytes = storage.read_at(&segment.path, position, header.total_size())?;
                if validate_batch(&bytes, u32::MAX).is_err() {
                    break;
                }
            }
            if position > 0 && header.last_offset() - base_offset > i64::from(u32::MAX) {
                break; // cannot happen with rolls; refuse rather than overflow
            }
            segment.on_append(&header, index_interval_bytes);
            position += header.total_size() as u64;
            batches += 1;
        }
        assert_eq!(
            segment.size_bytes, position,
            "scan accounted every byte it accepted"
        );
        let outcome = ScanOutcome {
            file_bytes,
            valid_bytes: position,
            batches,
        };
        Ok((segment, outcome))
    }

    pub(crate) fn check_invariants(&self) {
        assert!(self.base_offset >= 0, "segment base offset is non-negative");
        assert!(
            self.next_offset >= self.base_offset,
            "segment next offset below its base"
        );
        assert_eq!(
            self.is_empty(),
            self.next_offset == self.base_offset,
            "a segment is empty exactly when it holds no offsets"
        );
        assert_eq!(
            self.is_empty(),
            self.max_timestamp.is_none(),
            "empty segments have no timestamp"
        );
        assert_eq!(
            self.offset_index.len(),
            self.time_index.len(),
            "both indexes gain entries at the same batches"
        );
        self.offset_index.check_invariants(self.size_bytes);
        self.time_index.check_invariants();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_sort_as_offsets() {
        assert_eq!(segment_file_name(42), "00000000000000000042.log");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.log"),
            Some(42)
        );
        assert_eq!(parse_segment_file_name("42.log"), None);
        assert_eq!(parse_segment_file_name("00000000000000000042.index"), None);
        assert_eq!(parse_segment_file_name("leader-epoch-checkpoint"), None);
        assert!(segment_file_name(9) < segment_file_name(10));
    }
}
