//! The records of one uncompressed batch, read in place.
//!
//! The produce and fetch paths never look inside a batch; the metadata log
//! is the one place the broker must (its records are the cluster's
//! metadata). Its batches are committed and CRC-checked, yet a record that
//! does not parse (a writer's bug under a resealed CRC, a snapshot from a
//! broken peer) is reported, never panicked on, and the reader allocates
//! nothing: keys and values are slices of the batch.

use super::varint::read_varlong;
use super::{BatchError, BatchHeader, BATCH_HEADER_LEN};

/// One record: where it sits in the batch and its key and value (`None`:
/// Kafka's null). Timestamps and headers are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Iterates the records of one whole uncompressed batch (header included,
/// as [`super::BatchIter`] delimits it). Yields at most `recordsCount`
/// records, then checks they filled the batch exactly; after the first
/// error it yields nothing more.
#[derive(Debug, Clone)]
pub struct RecordReader<'a> {
    batch: &'a [u8],
    base_offset: i64,
    position: usize,
    remaining: usize,
    last_offset_delta: i32,
    previous_delta: i64,
    failed: bool,
}

impl<'a> RecordReader<'a> {
    /// Refuses a compressed batch, an impossible length and a batch
    /// shorter than its header says.
    pub fn new(batch: &'a [u8], header: &BatchHeader) -> Result<RecordReader<'a>, BatchError> {
        header.check_length()?;
        if header.compression_codec() != 0 {
            return Err(BatchError::Corrupt(format!(
                "batch at offset {} is compressed (codec {}); only plain batches are read in place",
                header.base_offset(),
                header.compression_codec()
            )));
        }
        if batch.len() != header.total_size() {
            return Err(BatchError::Truncated {
                needed_bytes: header.total_size(),
                available_bytes: batch.len(),
            });
        }
        let remaining = usize::try_from(header.records_count()).map_err(|_| {
            BatchError::InvalidRecordCount {
                records_count: header.records_count(),
                last_offset_delta: header.last_offset_delta(),
            }
        })?;
        Ok(RecordReader {
            batch,
            base_offset: header.base_offset(),
            position: BATCH_HEADER_LEN,
            remaining,
            last_offset_delta: header.last_offset_delta(),
            previous_delta: -1,
            failed: false,
        })
    }

    fn corrupt(&mut self, what: &str) -> BatchError {
        self.failed = true;
        BatchError::Corrupt(format!(
            "batch at offset {}: {what} at byte {}",
            self.base_offset, self.position
        ))
    }

    fn varint(&mut self, end: usize) -> Result<i64, BatchError> {
        read_varlong(&self.batch[..end], &mut self.position)
            .ok_or_else(|| self.corrupt("bad varint"))
    }

    /// A key or value: a length (-1 for null) and that many bytes, within
    /// the record's `end`.
    fn bytes(&mut self, end: usize) -> Result<Option<&'a [u8]>, BatchError> {
        let length = self.varint(end)?;
        if length == -1 {
            return Ok(None);
        }
        let length = usize::try_from(length)
            .ok()
            .filter(|&n| n <= end - self.position)
            .ok_or_else(|| self.corrupt("length out of bounds"))?;
        let batch: &'a [u8] = self.batch;
        let slice = &batch[self.position..self.position + length];
        self.position += length;
        Ok(Some(slice))
    }

    fn read_record(&mut self) -> Result<RecordRef<'a>, BatchError> {
        let length = self.varint(self.batch.len())?;
        let end = usize::try_from(length)
            .ok()
            .filter(|&n| n > 0 && n <= self.batch.len() - self.position)
            .map(|n| self.position + n)
            .ok_or_else(|| self.corrupt("bad record length"))?;
        self.position += 1; // attributes
        let _timestamp_delta = self.varint(end)?;
        let offset_delta = self.varint(end)?;
        if offset_delta <= self.previous_delta || offset_delta > i64::from(self.last_offset_delta) {
            return Err(self.corrupt("record offset deltas out of order"));
        }
        self.previous_delta = offset_delta;
        let key = self.bytes(end)?;
        let value = self.bytes(end)?;
        let headers = self.varint(end)?;
        if headers < 0 {
            return Err(self.corrupt("negative header count"));
        }
        for _ in 0..headers {
            // Each header: a key (never null) and a value; bounded by the
            // record's bytes, since each takes at least two.
            if self.bytes(end)?.is_none() {
                return Err(self.corrupt("null header key"));
            }
            self.bytes(end)?;
        }
        if self.position != end {
            return Err(self.corrupt("record length does not match its fields"));
        }
        let offset_delta = i32::try_from(offset_delta).expect("at most the last offset delta");
        Ok(RecordRef {
            offset_delta,
            key,
            value,
        })
    }
}

impl<'a> Iterator for RecordReader<'a> {
    type Item = Result<RecordRef<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if self.position == self.batch.len() {
                return None;
            }
            return Some(Err(self.corrupt("bytes after the last record")));
        }
        self.remaining -= 1;
        Some(self.read_record())
    }
}
