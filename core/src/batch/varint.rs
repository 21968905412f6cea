//! Kafka's zigzag varints (`ByteUtils.writeVarlong` / `readVarlong`), the
//! integers inside records. An `int` varint reads the same as a `long` one
//! of the same value, so one pair serves both.

/// At most 10 groups of 7 bits hold 64 bits.
const VARLONG_BYTES_MAX: usize = 10;

/// Appends `value` zigzagged, then in base-128 little-endian groups
/// (protobuf style).
pub(crate) fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    for _ in 0..VARLONG_BYTES_MAX {
        if zigzag < 0x80 {
            out.push(zigzag as u8);
            return;
        }
        out.push((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    unreachable!("a u64 needs at most 10 varint groups");
}

/// Reads a varint at `*position` and moves past it; `None` when the bytes
/// end first or it runs longer than 10 bytes (`position` then unchanged).
pub(crate) fn read_varlong(bytes: &[u8], position: &mut usize) -> Option<i64> {
    let mut zigzag: u64 = 0;
    for group in 0..VARLONG_BYTES_MAX {
        let byte = *bytes.get(*position + group)?;
        zigzag |= u64::from(byte & 0x7f) << (7 * group);
        if byte & 0x80 == 0 {
            *position += group + 1;
            return Some(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varlong_round_trips_edges() {
        for value in [0i64, 1, -1, 63, -64, 64, 300, -300, i64::MAX, i64::MIN] {
            let mut buf = Vec::new();
            put_varlong(&mut buf, value);
            let mut position = 0;
            assert_eq!(read_varlong(&buf, &mut position), Some(value));
            assert_eq!(position, buf.len());
        }
        // Kafka's zigzag: -1 encodes as 1, 1 as 2.
        let mut buf = Vec::new();
        put_varlong(&mut buf, -1);
        put_varlong(&mut buf, 1);
        assert_eq!(buf, vec![1, 2]);
    }

    #[test]
    fn truncated_or_overlong_varints_are_refused() {
        let mut position = 0;
        assert_eq!(read_varlong(&[0x80, 0x80], &mut position), None);
        assert_eq!(read_varlong(&[0xff; 11], &mut position), None);
        assert_eq!(position, 0);
    }
}
