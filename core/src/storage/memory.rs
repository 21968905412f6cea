//! In-memory storage for the simulator and for tests.
//!
//! Each file remembers how many of its bytes are durable. `crash` forgets
//! the rest, as a power cut forgets the page cache; optional faults tear the
//! last write, flip bits, or fill the disk.

use super::{Storage, StorageError};
use bytes::Bytes;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
struct MemFile {
    data: Vec<u8>,
    /// Bytes `[0, durable_len)` survive a crash.
    durable_len: usize,
}

#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    files: BTreeMap<String, MemFile>,
    /// When set, appends that would grow the total beyond this fail with
    /// `NoSpace` (a full disk, not a panic).
    capacity_bytes: Option<u64>,
    used_bytes: u64,
}

impl MemoryStorage {
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    pub fn set_capacity_bytes(&mut self, capacity_bytes: Option<u64>) {
        self.capacity_bytes = capacity_bytes;
    }

    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    /// Every path, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    /// Bytes appended to `path` and not yet synced.
    pub fn unsynced_bytes(&self, path: &str) -> usize {
        self.files
            .get(path)
            .map_or(0, |f| f.data.len() - f.durable_len)
    }

    /// A power cut: every file loses what was not synced.
    pub fn crash(&mut self) {
        for file in self.files.values_mut() {
            file.data.truncate(file.durable_len);
        }
        self.recount();
    }

    /// A power cut in the middle of the last unsynced write of `path`: keeps
    /// `keep_bytes` of the unsynced tail, so the file ends in a torn batch.
    pub fn crash_torn(&mut self, path: &str, keep_bytes: usize) {
        if let Some(file) = self.files.get_mut(path) {
            let keep = file.durable_len + keep_bytes.min(file.data.len() - file.durable_len);
            file.data.truncate(keep);
            file.durable_len = keep;
        }
        self.crash();
    }

    /// Flips one bit, as a bad sector would; the CRC must catch it.
    pub fn flip_bit(&mut self, path: &str, byte_position: usize, bit: u8) {
        let file = self
            .files
            .get_mut(path)
            .expect("flip_bit on a missing file");
        assert!(
            byte_position < file.data.len(),
            "flip_bit past the end of {path}"
        );
        file.data[byte_position] ^= 1 << (bit % 8);
    }

    /// Overwrites bytes in place (fault injection: a replica whose data
    /// silently changed); durability is unchanged.
    pub fn overwrite(&mut self, path: &str, position: usize, bytes: &[u8]) {
        let file = self
            .files
            .get_mut(path)
            .expect("overwrite on a missing file");
        let end = position + bytes.len();
        assert!(end <= file.data.len(), "overwrite past the end of {path}");
        file.data[position..end].copy_from_slice(bytes);
    }

    fn recount(&mut self) {
        self.used_bytes = self.files.values().map(|f| f.data.len() as u64).sum();
    }

    fn file(&self, path: &str) -> Result<&MemFile, StorageError> {
        self.files
            .get(path)
            .ok_or_else(|| StorageError::NotFound(path.to_string()))
    }
}

impl Storage for MemoryStorage {
    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        if let Some(capacity) = self.capacity_bytes {
            if self.used_bytes + data.len() as u64 > capacity {
                return Err(StorageError::NoSpace(path.to_string()));
            }
        }
        self.files
            .entry(path.to_string())
            .or_default()
            .data
            .extend_from_slice(data);
        self.used_bytes += data.len() as u64;
        Ok(())
    }

    fn read_at(&mut self, path: &str, position: u64, len: usize) -> Result<Bytes, StorageError> {
        let file = self.file(path)?;
        let start = (position as usize).min(file.data.len());
        let end = start.saturating_add(len).min(file.data.len());
        Ok(Bytes::copy_from_slice(&file.data[start..end]))
    }

    fn len(&mut self, path: &str) -> Result<u64, StorageError> {
        Ok(self.file(path)?.data.len() as u64)
    }

    fn peek_at(&self, path: &str, position: u64, len: usize) -> Option<&[u8]> {
        let data = &self.files.get(path)?.data;
        let start = (position as usize).min(data.len());
        let end = start.saturating_add(len).min(data.len());
        Some(&data[start..end])
    }

    fn exists(&mut self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    fn truncate(&mut self, path: &str, len: u64) -> Result<(), StorageError> {
        let file = self
            .files
            .get_mut(path)
            .ok_or_else(|| StorageError::NotFound(path.to_string()))?;
        let len = (len as usize).min(file.data.len());
        file.data.truncate(len);
        // Truncation is treated as durable at once; a real disk may
        // resurrect the tail after a crash, which recovery would then cut.
        file.durable_len = file.durable_len.min(len);
        self.recount();
        Ok(())
    }

    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.files.remove(path);
        self.recount();
        Ok(())
    }

    fn remove_dir(&mut self, dir: &str) -> Result<(), StorageError> {
        let prefix = format!("{dir}/");
        self.files.retain(|path, _| !path.starts_with(&prefix));
        self.recount();
        Ok(())
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut names: Vec<String> = self
            .files
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .map(|(path, _)| {
                let rest = &path[prefix.len()..];
                rest.split('/')
                    .next()
                    .expect("split yields one item")
                    .to_string()
            })
            .collect();
        names.dedup();
        Ok(names)
    }

    fn write_atomic(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        let old_len = self.files.get(path).map_or(0, |f| f.data.len() as u64);
        if let Some(capacity) = self.capacity_bytes {
            if self.used_bytes - old_len + data.len() as u64 > capacity {
                return Err(StorageError::NoSpace(path.to_string()));
            }
        }
        self.files.insert(
            path.to_string(),
            MemFile {
                data: data.to_vec(),
                durable_len: data.len(),
            },
        );
        self.recount();
        Ok(())
    }

    fn sync(&mut self, path: &str) -> Result<(), StorageError> {
        let file = self
            .files
            .get_mut(path)
            .ok_or_else(|| StorageError::NotFound(path.to_string()))?;
        file.durable_len = file.data.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_drops_unsynced_bytes_only() {
        let mut s = MemoryStorage::new();
        s.append("t-0/a.log", b"hello").unwrap();
        s.sync("t-0/a.log").unwrap();
        s.append("t-0/a.log", b" world").unwrap();
        assert_eq!(s.unsynced_bytes("t-0/a.log"), 6);
        s.crash();
        assert_eq!(&s.read_at("t-0/a.log", 0, 100).unwrap()[..], b"hello");
    }

    #[test]
    fn torn_crash_keeps_part_of_the_tail() {
        let mut s = MemoryStorage::new();
        s.append("f", b"abc").unwrap();
        s.sync("f").unwrap();
        s.append("f", b"defgh").unwrap();
        s.crash_torn("f", 2);
        assert_eq!(&s.read_at("f", 0, 100).unwrap()[..], b"abcde");
    }

    #[test]
    fn full_disk_is_an_error_not_a_panic() {
        let mut s = MemoryStorage::new();
        s.set_capacity_bytes(Some(4));
        s.append("f", b"abcd").unwrap();
        assert_eq!(s.append("f", b"e"), Err(StorageError::NoSpace("f".into())));
        assert_eq!(s.len("f").unwrap(), 4);
    }

    #[test]
    fn list_names_direct_children_sorted() {
        let mut s = MemoryStorage::new();
        s.append("b-0/x.log", b"1").unwrap();
        s.append("a-1/y.log", b"1").unwrap();
        s.append("a-1/z.log", b"1").unwrap();
        s.write_atomic("meta.json", b"{}").unwrap();
        assert_eq!(s.list("").unwrap(), vec!["a-1", "b-0", "meta.json"]);
        assert_eq!(s.list("a-1").unwrap(), vec!["y.log", "z.log"]);
        s.remove_dir("a-1").unwrap();
        assert_eq!(s.list("").unwrap(), vec!["b-0", "meta.json"]);
    }
}
