use super::*;

const MAX: u32 = 1024 * 1024;

fn sample() -> Vec<u8> {
    build_batch(
        &[
            (Some(b"k0"), Some(b"v0")),
            (None, Some(b"value-1")),
            (Some(b"k2"), None),
        ],
        1_700_000_000_000,
    )
}

/// Re-stamps the CRC after a test edits a CRC'd field, so that the check
/// under test (not the CRC) is what rejects the batch.
fn fix_crc(batch: &mut [u8]) {
    reseal_crc(batch);
}

#[test]
fn header_getters_read_the_layout() {
    let batch = sample();
    let header = validate_batch(&batch, MAX).unwrap();
    assert_eq!(header.base_offset(), 0);
    assert_eq!(header.last_offset(), 2);
    assert_eq!(header.next_offset(), 3);
    assert_eq!(header.total_size(), batch.len());
    assert_eq!(header.batch_length() as usize, batch.len() - LOG_OVERHEAD);
    assert_eq!(header.partition_leader_epoch(), -1);
    assert_eq!(header.magic(), 2);
    assert_eq!(header.compression(), Some(Compression::None));
    assert_eq!(header.timestamp_type(), TimestampType::CreateTime);
    assert!(!header.is_transactional());
    assert!(!header.is_control());
    assert_eq!(header.last_offset_delta(), 2);
    assert_eq!(header.base_timestamp(), 1_700_000_000_000);
    assert_eq!(header.max_timestamp(), 1_700_000_000_000);
    assert_eq!(header.producer_id(), -1);
    assert_eq!(header.producer_epoch(), -1);
    assert_eq!(header.base_sequence(), -1);
    assert_eq!(header.records_count(), 3);
}

#[test]
fn build_and_decode_round_trip() {
    let batch = sample();
    assert_eq!(
        decode_records_for_test(&batch),
        vec![
            (Some(b"k0".to_vec()), Some(b"v0".to_vec())),
            (None, Some(b"value-1".to_vec())),
            (Some(b"k2".to_vec()), None),
        ]
    );
}

#[test]
fn every_single_bit_flip_in_the_crc_range_is_detected() {
    let batch = sample();
    for position in CRC_COVERED_FROM..batch.len() {
        for bit in 0..8 {
            let mut bad = batch.clone();
            bad[position] ^= 1 << bit;
            assert!(
                validate_batch(&bad, MAX).is_err(),
                "flip at byte {position} bit {bit} went unnoticed"
            );
        }
    }
    // A flip in the record payload specifically is a CRC mismatch.
    let mut bad = batch.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x10;
    let error = validate_batch(&bad, MAX).unwrap_err();
    assert!(matches!(error, BatchError::CrcMismatch { .. }), "{error:?}");
    assert_eq!(error.kafka_error_code(), error_codes::CORRUPT_MESSAGE);
}

#[test]
fn rewriting_offset_and_epoch_keeps_the_crc_valid() {
    let mut batch = sample();
    set_base_offset(&mut batch, 123_456_789);
    set_partition_leader_epoch(&mut batch, 42);
    let header = validate_batch(&batch, MAX).unwrap();
    assert_eq!(header.base_offset(), 123_456_789);
    assert_eq!(header.last_offset(), 123_456_791);
    assert_eq!(header.partition_leader_epoch(), 42);
}

#[test]
fn truncated_batches_are_corrupt() {
    let batch = sample();
    for len in [
        0,
        10,
        17,
        BATCH_HEADER_LEN - 1,
        BATCH_HEADER_LEN,
        batch.len() - 1,
    ] {
        let error = validate_batch(&batch[..len], MAX).unwrap_err();
        assert!(
            matches!(error, BatchError::Truncated { .. }),
            "len {len}: {error:?}"
        );
        assert_eq!(error.kafka_error_code(), error_codes::CORRUPT_MESSAGE);
    }
}

#[test]
fn impossible_batch_length_is_corrupt() {
    let mut batch = sample();
    batch[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&10i32.to_be_bytes());
    let error = validate_batch(&batch, MAX).unwrap_err();
    assert_eq!(error, BatchError::InvalidLength { batch_length: 10 });
    assert_eq!(error.kafka_error_code(), error_codes::CORRUPT_MESSAGE);
    batch[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(matches!(
        validate_batch(&batch, MAX),
        Err(BatchError::InvalidLength { batch_length: -5 })
    ));
}

#[test]
fn legacy_magic_is_unsupported_and_unknown_magic_corrupt() {
    let mut batch = sample();
    for magic in [0i8, 1] {
        batch[MAGIC_AT] = magic as u8;
        let error = validate_batch(&batch, MAX).unwrap_err();
        assert_eq!(error, BatchError::UnsupportedMagic { magic });
        assert_eq!(
            error.kafka_error_code(),
            error_codes::UNSUPPORTED_FOR_MESSAGE_FORMAT
        );
    }
    batch[MAGIC_AT] = 3;
    let error = validate_batch(&batch, MAX).unwrap_err();
    assert_eq!(error.kafka_error_code(), error_codes::CORRUPT_MESSAGE);
}

#[test]
fn too_large_batches_are_rejected() {
    let batch = sample();
    let error = validate_batch(&batch, batch.len() as u32 - 1).unwrap_err();
    assert_eq!(
        error,
        BatchError::TooLarge {
            size_bytes: batch.len(),
            max_bytes: batch.len() as u32 - 1
        }
    );
    assert_eq!(error.kafka_error_code(), error_codes::MESSAGE_TOO_LARGE);
    assert!(validate_batch(&batch, batch.len() as u32).is_ok());
}

fn set_i16(batch: &mut [u8], at: usize, value: i16) {
    batch[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

fn set_i32(batch: &mut [u8], at: usize, value: i32) {
    batch[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

#[test]
fn inconsistent_record_counts_are_invalid() {
    // (records count, last offset delta, whether a log may hold it):
    // compaction leaves empty batches and batches with gaps, which only
    // producers may not send.
    let cases = [
        (-1, 2, false), // negative count
        (4, 2, false),  // more records than offsets
        (0, 2, true),   // emptied by compaction
        (2, 2, true),   // uncompressed with a gap: a record compacted away
    ];
    for (records_count, last_offset_delta, compacted) in cases {
        let mut batch = sample();
        set_i32(&mut batch, RECORDS_COUNT_AT, records_count);
        set_i32(&mut batch, LAST_OFFSET_DELTA_AT, last_offset_delta);
        fix_crc(&mut batch);
        let error = match validate_batch(&batch, MAX) {
            Ok(header) => {
                assert!(compacted, "({records_count}, {last_offset_delta}) accepted");
                header.check_produced().unwrap_err()
            }
            Err(error) => {
                assert!(
                    !compacted,
                    "({records_count}, {last_offset_delta}): {error}"
                );
                error
            }
        };
        assert_eq!(
            error,
            BatchError::InvalidRecordCount {
                records_count,
                last_offset_delta
            }
        );
        assert_eq!(error.kafka_error_code(), error_codes::INVALID_RECORD);
    }
    let mut batch = sample();
    set_i32(&mut batch, LAST_OFFSET_DELTA_AT, -1);
    fix_crc(&mut batch);
    assert!(matches!(
        validate_batch(&batch, MAX),
        Err(BatchError::InvalidRecordCount { .. })
    ));
    validate_batch(&sample(), MAX)
        .unwrap()
        .check_produced()
        .expect("a dense batch from a producer");
}

#[test]
fn compressed_batches_may_have_offset_gaps_but_not_overlaps() {
    let mut batch = sample();
    batch[ATTRIBUTES_AT + 1] |= 4; // zstd
    set_i32(&mut batch, LAST_OFFSET_DELTA_AT, 9); // 3 records over 10 offsets
    fix_crc(&mut batch);
    let header = validate_batch(&batch, MAX).unwrap();
    assert_eq!(header.compression(), Some(Compression::Zstd));
    set_i32(&mut batch, LAST_OFFSET_DELTA_AT, 1); // 3 records in 2 offsets
    fix_crc(&mut batch);
    assert!(matches!(
        validate_batch(&batch, MAX),
        Err(BatchError::InvalidRecordCount { .. })
    ));
}

#[test]
fn unknown_compression_codec_is_invalid() {
    for codec in 5..=7u8 {
        let mut batch = sample();
        batch[ATTRIBUTES_AT + 1] |= codec;
        fix_crc(&mut batch);
        let error = validate_batch(&batch, MAX).unwrap_err();
        assert_eq!(
            error,
            BatchError::InvalidCompression {
                codec: codec as i16
            }
        );
        assert_eq!(error.kafka_error_code(), error_codes::INVALID_RECORD);
    }
}

#[test]
fn empty_control_batches_pass_header_checks_but_data_batches_do_not() {
    let mut batch = sample();
    batch[ATTRIBUTES_AT + 1] |= 0x20 | 0x10; // control + transactional
    set_i32(&mut batch, RECORDS_COUNT_AT, 0);
    set_i32(&mut batch, LAST_OFFSET_DELTA_AT, 0);
    fix_crc(&mut batch);
    let header = validate_batch(&batch, MAX).unwrap();
    assert!(header.is_control() && header.is_transactional());
}

#[test]
fn iterator_walks_batches_and_reports_a_torn_tail() {
    let a = sample();
    let b = build_batch(&[(None, Some(b"x"))], 5);
    let mut buf = a.clone();
    buf.extend_from_slice(&b);

    let mut iter = BatchIter::new(&buf);
    let positions: Vec<usize> = iter.by_ref().map(|(position, _)| position).collect();
    assert_eq!(positions, vec![0, a.len()]);
    assert_eq!(iter.tail_error(), None);
    assert_eq!(iter.position(), buf.len());

    for cut in [a.len() + 1, a.len() + BATCH_HEADER_LEN, buf.len() - 1] {
        let mut iter = BatchIter::new(&buf[..cut]);
        assert_eq!(iter.by_ref().count(), 1, "cut {cut}");
        assert!(matches!(
            iter.tail_error(),
            Some(BatchError::Truncated { .. })
        ));
        assert_eq!(
            iter.position(),
            a.len(),
            "the valid prefix ends after batch a"
        );
    }
}

#[test]
fn validate_batches_is_all_or_nothing() {
    let a = sample();
    let b = build_batch(&[(None, Some(b"x"))], 5);
    let mut buf = a.clone();
    buf.extend_from_slice(&b);
    assert_eq!(validate_batches(&buf, MAX), Ok(2));
    assert_eq!(validate_batches(&[], MAX), Err(BatchError::Empty));
    assert_eq!(
        BatchError::Empty.kafka_error_code(),
        error_codes::INVALID_RECORD
    );
    let last = buf.len() - 1;
    buf[last] ^= 1;
    assert!(matches!(
        validate_batches(&buf, MAX),
        Err(BatchError::CrcMismatch { .. })
    ));
    buf[last] ^= 1;
    buf.push(0); // a stray trailing byte
    assert!(matches!(
        validate_batches(&buf, MAX),
        Err(BatchError::Truncated { .. })
    ));
}

fn read_all(batch: &[u8]) -> Result<Vec<RecordRef<'_>>, BatchError> {
    let header = BatchHeader::parse(batch).unwrap();
    RecordReader::new(batch, &header)?.collect()
}

/// The in-place reader gives what the writer wrote: keys and values
/// (nulls included) as slices of the batch, the offset deltas in order,
/// across varints of more than one byte (a 300-byte value, deltas past 63).
#[test]
fn the_record_reader_reads_what_the_writer_wrote() {
    let long = vec![7u8; 300];
    let mut records: Vec<TestRecord<'_>> = vec![
        (Some(b"k0"), Some(b"v0")),
        (None, Some(&long)),
        (Some(b"k2"), None),
        (None, None),
    ];
    records.extend((0..80).map(|_| (None, Some(&b"x"[..]))));
    let batch = build_batch(&records, 5);
    let read = read_all(&batch).expect("a written batch reads");
    assert_eq!(read.len(), records.len());
    for (i, (record, (key, value))) in read.iter().zip(&records).enumerate() {
        assert_eq!(record.offset_delta, i as i32);
        assert_eq!((record.key, record.value), (*key, *value), "record {i}");
    }
    let mut writer = BatchWriter::new(5, 0);
    for (key, value) in &records {
        match (key, value) {
            (None, Some(value)) => writer.push_value(|out| out.extend_from_slice(value)),
            _ => writer.push(*key, *value),
        }
    }
    assert_eq!(writer.finish(), batch, "push_value frames as push does");
}

/// Damage inside a batch whose CRC was resealed over it is an error from
/// the reader, never a panic or an allocation sized by the damage.
#[test]
fn the_record_reader_reports_damaged_records() {
    let batch = build_batch(&[(Some(b"key"), Some(b"value")), (None, Some(b"v"))], 0);
    let first = BATCH_HEADER_LEN;
    let damaged = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = batch.clone();
        edit(&mut b);
        fix_crc(&mut b);
        read_all(&b).map(|records| records.len())
    };
    // A record length past the batch's end.
    assert!(damaged(&|b| b[first] = 0x7e).is_err());
    // A varint that never ends (every byte with its high bit set).
    assert!(damaged(&|b| b[first + 2..].iter_mut().for_each(|x| *x = 0xff)).is_err());
    // A key length beyond its record.
    assert!(damaged(&|b| b[first + 4] = 0x40).is_err());
    // A count of i32::MAX records over two records' bytes.
    assert!(damaged(&|b| set_i32(b, RECORDS_COUNT_AT, i32::MAX)).is_err());
    // A count of one record where two are: bytes after the last record.
    assert!(damaged(&|b| set_i32(b, RECORDS_COUNT_AT, 1)).is_err());
    // A negative header count (zigzag 1 is -1).
    let last = batch.len() - 1;
    assert_eq!(
        batch[last], 0,
        "the last byte is the last record's header count"
    );
    assert!(damaged(&|b| b[last] = 1).is_err());
    // A batch length shorter than the header.
    assert!(damaged(&|b| set_i32(b, BATCH_LENGTH_AT, 10)).is_err());
    // A compressed batch is refused, not misread.
    let mut gzip = batch.clone();
    set_i16(&mut gzip, ATTRIBUTES_AT, 1);
    fix_crc(&mut gzip);
    assert!(read_all(&gzip).is_err());
    // After an error the reader stops.
    let mut b = batch.clone();
    b[first] = 0x7e;
    let header = BatchHeader::parse(&b).unwrap();
    let mut reader = RecordReader::new(&b, &header).unwrap();
    assert!(reader.next().is_some_and(|r| r.is_err()));
    assert!(reader.next().is_none());
    // Undamaged, both records read.
    assert_eq!(read_all(&batch).unwrap().len(), 2);
}
