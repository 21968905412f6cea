//! Encoding and decoding of whole batches, for tests and the simulator's
//! producers and consumers only. The broker itself never decodes records.

use super::{validate_batch, BatchIter, BatchWriter, RecordReader};

/// A key or value: `None` is Kafka's null (length -1).
pub type TestRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);
/// An owned (key, value) pair as [`decode_records_for_test`] returns it.
pub type DecodedRecord = (Option<Vec<u8>>, Option<Vec<u8>>);

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
        let one = &batch[start..start + header.total_size()];
        let records = RecordReader::new(one, &header)
            .unwrap_or_else(|e| panic!("only uncompressed whole batches decode: {e}"));
        for record in records {
            let record = record.unwrap_or_else(|e| panic!("a record does not decode: {e}"));
            out.push((
                record.key.map(<[u8]>::to_vec),
                record.value.map(<[u8]>::to_vec),
            ));
        }
    }
    assert!(
        iter.tail_error().is_none(),
        "no torn batch: {:?}",
        iter.tail_error()
    );
    out
}
