//! Metadata snapshots (KIP-630): the applied state at a committed offset,
//! as the records that rebuild it, in one file per snapshot named as
//! Kafka names them, `<end offset, 20 digits>-<epoch, 10 digits>.checkpoint`
//! in `__cluster_metadata-0/`.
//!
//! The quorum treats the content as opaque bytes (the node's metadata image
//! encodes itself as record batches); it owns only the framing, so that a
//! torn or corrupt file is refused rather than loaded:
//!
//! ```text
//! 8  magic        "SLSNAP01"
//! 8  end offset   i64, equal to the name's
//! 4  epoch        i32, equal to the name's
//! 8  payload len  u64
//! 4  crc32c       of the payload
//! .. payload
//! ```
//!
//! (Kafka frames a snapshot as record batches between SnapshotHeader and
//! SnapshotFooter control records; seedlog's metadata records have their
//! own encoding already, so the framing is its own too.)

use super::METADATA_LOG_DIR;
use crate::storage::{join, Storage, StorageError};
use bytes::Bytes;

const MAGIC: &[u8; 8] = b"SLSNAP01";
/// Bytes before the payload.
pub const HEADER_BYTES: usize = 8 + 8 + 4 + 8 + 4;
/// A snapshot larger than this is refused (a corrupt length, or an image
/// far beyond the bounds the controller keeps).
pub const SNAPSHOT_BYTES_MAX: u64 = 512 * 1024 * 1024;
const SUFFIX: &str = ".checkpoint";

/// Names a snapshot: it holds every record below `end_offset`, the last of
/// them of `epoch`. Ordered by end offset first, as Kafka's OffsetAndEpoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId {
    pub end_offset: i64,
    pub epoch: i32,
}

impl SnapshotId {
    pub fn file_name(&self) -> String {
        format!("{:020}-{:010}{SUFFIX}", self.end_offset, self.epoch)
    }

    pub fn path(&self) -> String {
        join(METADATA_LOG_DIR, &self.file_name())
    }

    /// The id a snapshot file name carries, if it is one.
    pub fn parse_file_name(name: &str) -> Option<SnapshotId> {
        let stem = name.strip_suffix(SUFFIX)?;
        let (offset, epoch) = stem.split_once('-')?;
        if offset.len() != 20 || epoch.len() != 10 {
            return None;
        }
        let end_offset: i64 = offset.parse().ok()?;
        let epoch: i32 = epoch.parse().ok()?;
        (end_offset > 0 && epoch >= 0).then_some(SnapshotId { end_offset, epoch })
    }
}

/// The whole file for a snapshot holding `payload`.
pub fn encode(id: SnapshotId, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&id.end_offset.to_be_bytes());
    out.extend_from_slice(&id.epoch.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    assert!(
        (out.len() as u64) <= SNAPSHOT_BYTES_MAX,
        "snapshot of {} bytes beyond the bound",
        out.len()
    );
    out
}

/// The payload of a whole snapshot file, or why it is refused.
pub fn decode(id: SnapshotId, file: &[u8]) -> Result<Bytes, String> {
    if file.len() < HEADER_BYTES {
        return Err(format!("{} bytes, shorter than the header", file.len()));
    }
    if &file[0..8] != MAGIC {
        return Err("bad magic".to_string());
    }
    let end_offset = i64::from_be_bytes(file[8..16].try_into().expect("8 bytes"));
    let epoch = i32::from_be_bytes(file[16..20].try_into().expect("4 bytes"));
    if (end_offset, epoch) != (id.end_offset, id.epoch) {
        return Err(format!(
            "header names ({end_offset}, {epoch}), the file name ({}, {})",
            id.end_offset, id.epoch
        ));
    }
    let len = u64::from_be_bytes(file[20..28].try_into().expect("8 bytes"));
    let crc = u32::from_be_bytes(file[28..32].try_into().expect("4 bytes"));
    let payload = &file[HEADER_BYTES..];
    if payload.len() as u64 != len {
        return Err(format!(
            "payload of {} bytes, the header says {len} (torn write?)",
            payload.len()
        ));
    }
    if crc32c::crc32c(payload) != crc {
        return Err("payload checksum mismatch".to_string());
    }
    Ok(Bytes::copy_from_slice(payload))
}

/// Reads and checks the snapshot `id` from `storage`.
pub fn read(
    storage: &mut dyn Storage,
    id: SnapshotId,
) -> Result<Result<Bytes, String>, StorageError> {
    let path = id.path();
    let len = storage.len(&path)?;
    if len > SNAPSHOT_BYTES_MAX {
        return Ok(Err(format!("{len} bytes, beyond the bound")));
    }
    let file = storage.read_at(&path, 0, len as usize)?;
    Ok(decode(id, &file))
}

/// Every snapshot file in the metadata log directory, valid or not.
pub fn list(storage: &mut dyn Storage) -> Result<Vec<SnapshotId>, StorageError> {
    let names = match storage.list(METADATA_LOG_DIR) {
        Ok(names) => names,
        Err(StorageError::NotFound(_)) => Vec::new(),
        Err(error) => return Err(error),
    };
    let mut ids: Vec<SnapshotId> = names
        .iter()
        .filter_map(|n| SnapshotId::parse_file_name(n))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_as_kafka_spells_them() {
        let id = SnapshotId {
            end_offset: 1234,
            epoch: 7,
        };
        assert_eq!(id.file_name(), "00000000000000001234-0000000007.checkpoint");
        assert_eq!(SnapshotId::parse_file_name(&id.file_name()), Some(id));
        assert_eq!(
            SnapshotId::parse_file_name("00000000000000001234.log"),
            None
        );
        assert_eq!(SnapshotId::parse_file_name("1234-7.checkpoint"), None);
    }

    #[test]
    fn a_torn_or_flipped_file_is_refused() {
        let id = SnapshotId {
            end_offset: 10,
            epoch: 2,
        };
        let file = encode(id, b"payload bytes");
        assert_eq!(decode(id, &file).unwrap().as_ref(), b"payload bytes");
        assert!(decode(id, &file[..file.len() - 1])
            .unwrap_err()
            .contains("torn"));
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(decode(id, &flipped).unwrap_err().contains("checksum"));
        let other = SnapshotId {
            end_offset: 11,
            epoch: 2,
        };
        assert!(decode(other, &file).is_err());
    }
}
