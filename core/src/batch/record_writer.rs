//! Writing an uncompressed v2 batch record by record: the metadata log's
//! batches (and the test and simulator clients' ones).
//!
//! Each record's value is written by the caller into a buffer the writer
//! reuses, then framed into the batch: no allocation per record.

use super::varint::put_varlong;
use super::{
    reseal_crc, validate_batch, BATCH_HEADER_LEN, BATCH_LENGTH_AT, LAST_OFFSET_DELTA_AT,
    LOG_OVERHEAD, MAGIC_V2, RECORDS_COUNT_AT,
};

/// A batch being written: base offset 0, leader epoch -1, no producer id
/// (-1/-1/-1), every record stamped the base timestamp (timestamp deltas 0,
/// so `maxTimestamp == baseTimestamp`). [`BatchWriter::finish`] seals it.
#[derive(Debug)]
pub struct BatchWriter {
    out: Vec<u8>,
    value: Vec<u8>,
    records: i32,
}

impl BatchWriter {
    /// `records_bytes`: a guess of the records' size, to allocate once.
    pub fn new(base_timestamp: i64, records_bytes: usize) -> BatchWriter {
        let mut out = Vec::with_capacity(BATCH_HEADER_LEN + records_bytes);
        out.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
        out.extend_from_slice(&0i32.to_be_bytes()); // batchLength, set by finish
        out.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&0u32.to_be_bytes()); // crc, set by finish
        out.extend_from_slice(&0i16.to_be_bytes()); // attributes
        out.extend_from_slice(&0i32.to_be_bytes()); // lastOffsetDelta, set by finish
        out.extend_from_slice(&base_timestamp.to_be_bytes());
        out.extend_from_slice(&base_timestamp.to_be_bytes()); // maxTimestamp
        out.extend_from_slice(&(-1i64).to_be_bytes()); // producerId
        out.extend_from_slice(&(-1i16).to_be_bytes()); // producerEpoch
        out.extend_from_slice(&(-1i32).to_be_bytes()); // baseSequence
        out.extend_from_slice(&0i32.to_be_bytes()); // recordsCount, set by finish
        assert_eq!(out.len(), BATCH_HEADER_LEN, "header layout");
        BatchWriter {
            out,
            value: Vec::new(),
            records: 0,
        }
    }

    /// Appends a record with a null key and the value `write` appends to
    /// the (empty) buffer it is given.
    pub fn push_value(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let mut value = std::mem::take(&mut self.value);
        value.clear();
        write(&mut value);
        self.push(None, Some(&value));
        self.value = value;
    }

    /// Appends a record (`None`: Kafka's null key or value).
    pub fn push(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        let offset_delta = i64::from(self.records);
        let body_length = 1 // attributes
            + varlong_len(0) // timestampDelta
            + varlong_len(offset_delta)
            + field_len(key)
            + field_len(value)
            + varlong_len(0); // headers count
        let out = &mut self.out;
        put_varlong(out, body_length as i64);
        let body_start = out.len();
        out.push(0); // attributes
        put_varlong(out, 0);
        put_varlong(out, offset_delta);
        put_field(out, key);
        put_field(out, value);
        put_varlong(out, 0);
        debug_assert_eq!(
            out.len() - body_start,
            body_length,
            "record length as framed"
        );
        self.records = self.records.checked_add(1).expect("record count fits i32");
    }

    /// The sealed batch: length, count and last offset delta set, CRC over
    /// it all.
    pub fn finish(mut self) -> Vec<u8> {
        assert!(self.records > 0, "a batch holds at least one record");
        let out = &mut self.out;
        let batch_length = i32::try_from(out.len() - LOG_OVERHEAD).expect("batch fits i32");
        out[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
        out[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
            .copy_from_slice(&(self.records - 1).to_be_bytes());
        out[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&self.records.to_be_bytes());
        reseal_crc(out);
        debug_assert!(
            validate_batch(out, u32::MAX).is_ok(),
            "a written batch is valid"
        );
        self.out
    }
}

/// Bytes of `value` as a zigzag varint.
fn varlong_len(value: i64) -> usize {
    let zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let bits = 64 - zigzag.leading_zeros() as usize;
    bits.max(1).div_ceil(7)
}

fn field_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => varlong_len(-1),
        Some(bytes) => varlong_len(bytes.len() as i64) + bytes.len(),
    }
}

fn put_field(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varlong(out, -1),
        Some(bytes) => {
            put_varlong(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varlong_len_is_what_put_varlong_writes() {
        for value in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            -65,
            8191,
            8192,
            i64::from(i32::MAX),
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            put_varlong(&mut out, value);
            assert_eq!(varlong_len(value), out.len(), "{value}");
        }
    }
}
