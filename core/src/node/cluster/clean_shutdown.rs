//! The clean-shutdown marker (KIP-966): a broker that stopped cleanly
//! (controlled shutdown done, every write flushed) records its broker
//! epoch in `.kafka_cleanshutdown`; at start it reads the marker, removes
//! it (so a later crash is not mistaken for a clean stop), and registers
//! with that epoch as `previous_broker_epoch`. The controller keeps a
//! broker in the ELR only when that epoch is the one it had: without the
//! marker every restart looked unclean, and a cleanly stopped replica
//! holding every committed record lost its claim to leadership.
//!
//! Same file name and JSON as Kafka's, so the format is recognisable.

use crate::storage::{Storage, StorageError};

pub const CLEAN_SHUTDOWN_PATH: &str = ".kafka_cleanshutdown";
/// The marker is one short JSON object; anything longer is not ours.
const MARKER_LEN_MAX: u64 = 256;

/// The marker's bytes for `broker_epoch`.
pub fn encode(broker_epoch: i64) -> Vec<u8> {
    assert!(broker_epoch >= 0, "only a registered broker writes it");
    format!("{{\"version\":0,\"brokerEpoch\":{broker_epoch}}}").into_bytes()
}

/// The broker epoch a marker names, `None` when it is not a marker.
pub fn decode(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let rest = text
        .trim()
        .strip_prefix("{\"version\":0,\"brokerEpoch\":")?;
    let epoch: i64 = rest.strip_suffix('}')?.trim().parse().ok()?;
    (epoch >= 0).then_some(epoch)
}

/// Reads and removes the marker: the previous broker epoch when the last
/// stop was clean, -1 otherwise (Kafka's "unknown").
pub fn take(storage: &mut dyn Storage) -> Result<i64, StorageError> {
    if !storage.exists(CLEAN_SHUTDOWN_PATH) {
        return Ok(-1);
    }
    let len = storage.len(CLEAN_SHUTDOWN_PATH)?.min(MARKER_LEN_MAX);
    let bytes = storage.read_at(CLEAN_SHUTDOWN_PATH, 0, len as usize)?;
    let epoch = decode(&bytes).unwrap_or(-1);
    if epoch < 0 {
        tracing::warn!(
            path = CLEAN_SHUTDOWN_PATH,
            "unreadable clean-shutdown marker ignored"
        );
    }
    storage.remove(CLEAN_SHUTDOWN_PATH)?;
    Ok(epoch)
}

/// Writes the marker, durably.
pub fn write(storage: &mut dyn Storage, broker_epoch: i64) -> Result<(), StorageError> {
    storage.write_atomic(CLEAN_SHUTDOWN_PATH, &encode(broker_epoch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    #[test]
    fn a_marker_is_read_once() {
        let mut storage = MemoryStorage::new();
        assert_eq!(take(&mut storage).unwrap(), -1, "no marker: unknown");
        write(&mut storage, 42).unwrap();
        assert_eq!(take(&mut storage).unwrap(), 42);
        assert_eq!(take(&mut storage).unwrap(), -1, "removed once read");
    }

    #[test]
    fn garbage_is_not_a_marker() {
        assert_eq!(decode(&encode(7)), Some(7));
        for bad in [
            &b""[..],
            b"{}",
            b"{\"version\":1,\"brokerEpoch\":3}",
            b"{\"version\":0,\"brokerEpoch\":-3}",
            b"\xff",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        let mut storage = MemoryStorage::new();
        storage
            .write_atomic(CLEAN_SHUTDOWN_PATH, b"nonsense")
            .unwrap();
        assert_eq!(take(&mut storage).unwrap(), -1);
        assert!(!storage.exists(CLEAN_SHUTDOWN_PATH));
    }
}
