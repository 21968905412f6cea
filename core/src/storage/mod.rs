//! The disk as the core sees it: a flat tree of append-only files.
//!
//! The core calls [`Storage`] for appends, reads and truncation; it never
//! calls `sync` itself once serving (only while loading, to make what
//! recovery found durable before it is exposed). Durability is explicit: the node emits
//! `Output::Flush` naming the files to sync, the driver syncs them (now,
//! later, or never, if it crashes first) and reports `Input::FlushCompleted`.
//! The simulator's [`MemoryStorage`] and the adapter's file storage implement
//! the same trait, so a crash in the simulator loses exactly what a power cut
//! would lose on a real disk.
//!
//! Paths are `/`-separated and relative to the storage root, e.g.
//! `orders-3/00000000000000000000.log`. Directories exist implicitly.

mod memory;

pub use memory::MemoryStorage;

use bytes::Bytes;

/// What can go wrong with a disk. Each maps to a Kafka error code at the
/// request boundary (`KAFKA_STORAGE_ERROR` for most).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("no such file: {0}")]
    NotFound(String),
    #[error("no space left on device while writing {0}")]
    NoSpace(String),
    #[error("i/o error on {path}: {message}")]
    Io { path: String, message: String },
}

pub trait Storage {
    /// Appends `data` at the end of `path`, creating the file if needed.
    /// The bytes are readable at once but durable only after `sync`.
    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError>;

    /// Reads up to `len` bytes at `position`; fewer at the end of the file.
    fn read_at(&mut self, path: &str, position: u64, len: usize) -> Result<Bytes, StorageError>;

    /// `read_at` for bytes a consumer's Fetch sends on and drops once
    /// written, never kept or read again, from below a high watermark
    /// (which a clean log never truncates). Storage may answer with a
    /// mapping of the file instead of a copy; should the range be
    /// truncated all the same (an unclean election) while the bytes are in
    /// flight, the write of them fails or the client sees a bad CRC and
    /// fetches again. The default copies, as `read_at`.
    fn read_to_send(
        &mut self,
        path: &str,
        position: u64,
        len: usize,
    ) -> Result<Bytes, StorageError> {
        self.read_at(path, position, len)
    }

    /// The current length of `path` in bytes.
    fn len(&mut self, path: &str) -> Result<u64, StorageError>;

    /// What `read_at` would return, borrowed, for storage that holds its
    /// files in memory; `None` (the default) where a read must copy, and
    /// for a missing file. Lets lookups that only look at the bytes (a
    /// batch header search) skip a copy and an allocation.
    fn peek_at(&self, _path: &str, _position: u64, _len: usize) -> Option<&[u8]> {
        None
    }

    /// Whether `path` names an existing file.
    fn exists(&mut self, path: &str) -> bool;

    /// Cuts `path` down to `len` bytes (no-op when already shorter).
    fn truncate(&mut self, path: &str, len: u64) -> Result<(), StorageError>;

    /// Deletes one file. Deleting a missing file is not an error.
    fn remove(&mut self, path: &str) -> Result<(), StorageError>;

    /// Deletes a directory and everything under it.
    fn remove_dir(&mut self, dir: &str) -> Result<(), StorageError>;

    /// Names (not paths) of the entries directly under `dir`, sorted; files
    /// and directories alike. `""` is the root.
    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError>;

    /// Replaces the whole content of a small file atomically and durably
    /// (write to a temporary file, sync, rename). For checkpoints and
    /// metadata, never for segments.
    fn write_atomic(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError>;

    /// Makes every byte appended to `path` so far durable.
    fn sync(&mut self, path: &str) -> Result<(), StorageError>;
}

/// Joins a directory and a file name into a storage path.
pub fn join(dir: &str, name: &str) -> String {
    debug_assert!(!name.contains('/'), "file names hold no separator: {name}");
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}
