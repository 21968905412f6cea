//! Encoding and decoding of whole batches, for tests and the simulator's
//! producers and consumers only. The broker itself never decodes records.

use super::varint::read_varlong;
use super::{validate_batch, BatchIter, BatchWriter, BATCH_HEADER_LEN};

/// A key or value: `None` is Kafka's null (length -1).
pub type TestRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);
/// An owned (key, value) pair as [`decode_records_for_test`] returns it.
pub type DecodedRecord = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Reads a varint of a batch the test encoder or a broker wrote.
fn get_varlong(bytes: &[u8], position: &mut usize) -> i64 {
    read_varlong(bytes, position).unwrap_or_else(|| panic!("bad varint at {position}"))
}

fn get_bytes(bytes: &[u8], position: &mut usize) -> Option<Vec<u8>> {
    let len = get_varlong(bytes, position);
    if len < 0 {
        assert_eq!(len, -1, "a null key or value has length -1");
        return None;
    }
    let len = len as usize;
    let out = bytes[*position..*position + len].to_vec();
    *position += len;
    Some(out)
}

/// Encodes a valid uncompressed v2 batch: base offset 0, leader epoch -1,
/// no producer id (-1/-1/-1), every record stamped `base_timestamp`
/// (timestamp deltas 0, so `maxTimestamp == baseTimestamp`), correct CRC.
#[doc(hidden)]
pub fn build_batch(records: &[TestRecord<'_>], base_timestamp: i64) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let mut batch = BatchWriter::new(base_timestamp, records.len() * 16);
    for (key, value) in records {
        batch.push(*key, *value);
    }
    let out = batch.finish();
    validate_batch(&out, u32::MAX).expect("build_batch makes valid batches");
    out
}

/// Decodes the records of every uncompressed batch in `batch` (one or more
/// concatenated batches) into (key, value) pairs. Panics on anything it
/// cannot read: it is for tests.
#[doc(hidden)]
pub fn decode_records_for_test(batch: &[u8]) -> Vec<DecodedRecord> {
    let mut out = Vec::new();
    let mut iter = BatchIter::new(batch);
    for (start, header) in iter.by_ref() {
        assert_eq!(
            header.compression_codec(),
            0,
            "only uncompressed batches decode"
        );
        let end = start + header.total_size();
        let mut position = start + BATCH_HEADER_LEN;
        for _ in 0..header.records_count() {
            let len = get_varlong(batch, &mut position);
            assert!(len > 0, "a record has a body");
            let record_end = position + len as usize;
            position += 1; // record attributes
            let _timestamp_delta = get_varlong(batch, &mut position);
            let _offset_delta = get_varlong(batch, &mut position);
            let key = get_bytes(batch, &mut position);
            let value = get_bytes(batch, &mut position);
            let headers_count = get_varlong(batch, &mut position);
            for _ in 0..headers_count {
                let header_key_len = get_varlong(batch, &mut position);
                position += header_key_len as usize;
                let _ = get_bytes(batch, &mut position);
            }
            assert_eq!(position, record_end, "record length matches its fields");
            out.push((key, value));
        }
        assert_eq!(position, end, "records fill the batch");
    }
    assert!(
        iter.tail_error().is_none(),
        "no torn batch: {:?}",
        iter.tail_error()
    );
    out
}
