//! [`Storage`] on a real directory: the adapter's disk.
//!
//! Storage paths are `/`-separated and relative to the root; directories are
//! created on demand, as the core treats them as implicit. Open handles are
//! cached (bounded, least recently used evicted) because the core reads and
//! appends the same few segment files over and over.
//!
//! Durability follows the trait's contract: `append` leaves bytes in the page
//! cache; `sync` makes them durable with `fdatasync`, and the first `sync`
//! after a file or directory was created also syncs the directories whose
//! entries changed, so a new segment survives a power cut and not just its
//! bytes. `FileStorage` remembers which files have unsynced bytes, so the
//! adapter can make everything durable at shutdown with [`FileStorage::sync_all`].
//!
//! The adapter syncs off the node thread: [`FileStorage::begin_sync`] hands
//! out a [`SyncRound`] (full paths of the files to sync and of the changed
//! directories), another thread performs it ([`SyncRound::perform`]), and
//! [`FileStorage::end_sync`] takes the outcome back. Meanwhile the node keeps
//! appending, truncating and deleting; `end_sync` re-syncs, on the calling
//! thread, any file of the round removed or replaced since, so a completion
//! never vouches for a file the round did not sync.
//!
//! With a page cache window ([`FileStorage::with_cache_window`]), a sync
//! round also drops the synced pages before each file's tail, and large
//! reads of the dropped part go around the cache ([`crate::page_cache`]).

use crate::cold_reads::ColdReads;
use crate::page_cache;
use bytes::Bytes;
use seedlog_core::storage::{Storage, StorageError};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tracing::debug;

/// Suffix of the temporary file `write_atomic` renames into place. `list`
/// hides such files: a crash between write and rename leaves one behind.
const TEMP_SUFFIX: &str = ".seedlog-tmp";

/// Default bound on cached open file handles. Far below a typical
/// `ulimit -n` of 1024+ minus sockets would be too tight for many partitions;
/// 1024 keeps a few hundred partitions' active segments open.
pub const OPEN_FILES_MAX_DEFAULT: usize = 1024;

struct CachedFile {
    file: File,
    /// The same file opened with `O_DIRECT`, for reads around the page
    /// cache; opened at the first such read.
    direct: Option<File>,
    /// Value of `FileStorage::use_counter` when the handle was last used.
    last_used: u64,
}

pub struct FileStorage {
    root: PathBuf,
    open_files_max: usize,
    /// Storage path -> open handle (read + append).
    files: BTreeMap<String, CachedFile>,
    /// `last_used` -> storage path, to find the least recently used handle
    /// without a scan.
    files_by_use: BTreeMap<u64, String>,
    use_counter: u64,
    /// Files appended to or truncated since their last sync.
    files_dirty: BTreeSet<String>,
    /// Directories (storage paths, "" for the root) whose entries changed
    /// since they were last synced: a file or directory was created, renamed
    /// into or removed from them.
    dirs_dirty: BTreeSet<String>,
    /// Files of the round handed out by `begin_sync` and not yet ended; at
    /// most one round is out at a time.
    syncing: BTreeSet<String>,
    /// Of `syncing`, those removed or replaced since the round began: the
    /// round may have synced the old file (or nothing), while the path may
    /// name a new file by now.
    syncing_replaced: BTreeSet<String>,
    round_out: bool,
    /// Each file keeps its last this many bytes in the page cache once
    /// synced; `None`: all of it, as the kernel sees fit.
    cache_window_bytes: Option<u64>,
    /// The filesystem refused `O_DIRECT` (tmpfs): every read is buffered.
    direct_unsupported: bool,
    /// Reads that went around the page cache, for tests and metrics.
    reads_direct: u64,
    /// Consumer reads answered with a mapping of the file, for tests and
    /// metrics.
    reads_mapped: u64,
    /// The read-ahead of reads around the page cache.
    cold_reads: ColdReads,
}

/// One round of syncs, performed away from the storage: the files to
/// `fdatasync` and the directories whose entries changed, by full path. The
/// file is opened by path when its turn comes: `fdatasync` through any
/// descriptor makes the whole inode's data durable, and opening by path
/// keeps the descriptors in use bounded by the threads, not by the files.
#[derive(Debug)]
pub struct SyncRound {
    /// (storage path, full path), sorted by storage path.
    files: Vec<(String, PathBuf)>,
    /// (storage path, full path), deepest first, as `sync_dirs` goes.
    dirs: Vec<(String, PathBuf)>,
    /// Paths refused before any sync (not a valid storage path).
    refused: BTreeMap<String, StorageError>,
    /// The storage's page cache window: synced files drop their pages
    /// before it.
    cache_window_bytes: Option<u64>,
}

/// What performing a [`SyncRound`] found.
#[derive(Debug, Default)]
pub struct SyncOutcome {
    /// Files whose sync failed. A file that no longer exists is not a
    /// failure: it was deleted (retention, DeleteTopics) and nothing of it
    /// needs to survive.
    files_failed: BTreeMap<String, StorageError>,
    /// The first directory whose sync failed, by its index in
    /// `SyncRound::dirs`; it and those after it were not synced.
    dir_failed: Option<(usize, StorageError)>,
    /// Files found missing (told apart for tests and logs).
    files_missing: usize,
}

/// How a file's data is made durable: `fdatasync` in production; a test
/// may wrap it (to count, or to hold a sync back).
pub type SyncFile = std::sync::Arc<dyn Fn(&Path) -> io::Result<()> + Send + Sync>;

/// `fdatasync` of the file at `full`, opened read-only for the purpose.
pub fn fdatasync_path(full: &Path) -> io::Result<()> {
    File::open(full)?.sync_data()
}

impl SyncRound {
    pub fn files(&self) -> usize {
        self.files.len()
    }

    pub fn dirs(&self) -> usize {
        self.dirs.len()
    }

    /// Syncs every file, on up to `threads_max` threads (this one
    /// included) when there are several, then every directory in order,
    /// deepest first: a new file's directory entry is durable only once
    /// its directory is synced.
    pub fn perform(&self, threads_max: usize, sync_file: &SyncFile) -> SyncOutcome {
        assert!(threads_max > 0, "a round needs a thread");
        let threads = threads_max.min(self.files.len()).max(1);
        let next = std::sync::atomic::AtomicUsize::new(0);
        // Each thread takes the next file until none is left, so one slow
        // file does not hold up a whole share of them.
        let work = || {
            let mut results = Vec::new();
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((path, full)) = self.files.get(index) else {
                    break;
                };
                let synced = sync_file(full);
                if let (Ok(()), Some(window)) = (&synced, self.cache_window_bytes) {
                    // Best effort: pages left cached cost speed, not data.
                    if let Err(e) = page_cache::drop_cold(full, window) {
                        debug!(path, error = %e, "dropping synced pages failed");
                    }
                }
                results.push((path, synced));
            }
            results
        };
        let mut results = Vec::with_capacity(self.files.len());
        if threads == 1 {
            results.extend(work());
        } else {
            std::thread::scope(|scope| {
                let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
                results.extend(work());
                for helper in helpers {
                    // A panicking sync is a bug: let it take the caller down.
                    results.extend(helper.join().expect("a sync thread panicked"));
                }
            });
        }
        assert_eq!(results.len(), self.files.len(), "every file synced once");
        let mut outcome = SyncOutcome::default();
        for (path, result) in results {
            match result {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => outcome.files_missing += 1,
                Err(e) => {
                    outcome
                        .files_failed
                        .insert(path.clone(), map_io_error(path, e));
                }
            }
        }
        for (index, (dir, full)) in self.dirs.iter().enumerate() {
            match File::open(full).and_then(|d| d.sync_all()) {
                Ok(()) => {}
                // Removed since (remove_dir): nothing left to make durable.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    outcome.dir_failed = Some((index, map_io_error(dir, e)));
                    break;
                }
            }
        }
        outcome
    }
}

impl SyncOutcome {
    pub fn files_missing(&self) -> usize {
        self.files_missing
    }
}

impl std::fmt::Debug for FileStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStorage")
            .field("root", &self.root)
            .field("open_files", &self.files.len())
            .field("files_dirty", &self.files_dirty.len())
            .finish()
    }
}

impl FileStorage {
    /// Opens (creating if needed) the storage rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<FileStorage> {
        FileStorage::with_open_files_max(root, OPEN_FILES_MAX_DEFAULT)
    }

    pub fn with_open_files_max(
        root: impl Into<PathBuf>,
        open_files_max: usize,
    ) -> io::Result<FileStorage> {
        assert!(
            open_files_max > 0,
            "the handle cache needs room for at least one file"
        );
        let root = root.into();
        fs::create_dir_all(&root)?;
        // Make the root itself durable once, so the first segment has a
        // directory to live in after a power cut.
        File::open(&root)?.sync_all()?;
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(parent)?.sync_all()?;
        }
        Ok(FileStorage {
            root,
            open_files_max,
            files: BTreeMap::new(),
            files_by_use: BTreeMap::new(),
            use_counter: 0,
            files_dirty: BTreeSet::new(),
            dirs_dirty: BTreeSet::new(),
            syncing: BTreeSet::new(),
            syncing_replaced: BTreeSet::new(),
            round_out: false,
            cache_window_bytes: None,
            direct_unsupported: false,
            reads_direct: 0,
            reads_mapped: 0,
            cold_reads: ColdReads::default(),
        })
    }

    /// Keeps only the last `window_bytes` of each file in the page cache
    /// once synced (`None`: leave it all to the kernel). See
    /// [`crate::page_cache`] for why.
    pub fn with_cache_window(mut self, window_bytes: Option<u64>) -> FileStorage {
        self.cache_window_bytes = window_bytes;
        self
    }

    /// Reads served around the page cache so far.
    pub fn reads_direct(&self) -> u64 {
        self.reads_direct
    }

    /// Consumer reads answered with a mapping of the file so far.
    pub fn reads_mapped(&self) -> u64 {
        self.reads_mapped
    }

    /// Of the reads around the page cache, those answered from what was
    /// read ahead.
    pub fn read_ahead_hits(&self) -> u64 {
        self.cold_reads.hits()
    }

    /// Hands out the syncs that make `paths` durable, with every directory
    /// changed so far, for another thread to perform; `end_sync` must take
    /// the outcome back before the next round. The files count as synced
    /// from here on: an append from now on marks its file dirty again, and
    /// a failed sync marks it dirty again in `end_sync`.
    pub fn begin_sync<'a>(&mut self, paths: impl IntoIterator<Item = &'a str>) -> SyncRound {
        assert!(!self.round_out, "one sync round at a time");
        assert!(self.syncing.is_empty() && self.syncing_replaced.is_empty());
        self.round_out = true;
        let mut round = SyncRound {
            files: Vec::new(),
            dirs: Vec::new(),
            refused: BTreeMap::new(),
            cache_window_bytes: self.cache_window_bytes,
        };
        for path in paths {
            if self.syncing.contains(path) {
                continue;
            }
            match self.full_path(path) {
                Ok(full) => {
                    self.syncing.insert(path.to_string());
                    self.files_dirty.remove(path);
                    round.files.push((path.to_string(), full));
                }
                Err(e) => {
                    round.refused.insert(path.to_string(), e);
                }
            }
        }
        round.files.sort();
        while let Some(dir) = self.dirs_dirty.pop_last() {
            match self.full_path(&dir) {
                Ok(full) => round.dirs.push((dir, full)),
                Err(e) => {
                    round.refused.insert(dir, e);
                }
            }
        }
        round
    }

    /// Takes a round's outcome back: what failed is dirty again, and a
    /// file removed or replaced while its sync was out is synced here and
    /// now (the round may have synced the old file, or found none, while a
    /// new one may hold bytes under the same path). Returns the paths of
    /// the round whose sync failed; a directory failure fails them all,
    /// as a file whose directory entry is not durable is not either.
    pub fn end_sync(
        &mut self,
        round: SyncRound,
        outcome: SyncOutcome,
    ) -> BTreeMap<String, StorageError> {
        assert!(self.round_out, "end_sync without a round out");
        self.round_out = false;
        let mut failed = round.refused;
        if let Some((index, error)) = outcome.dir_failed {
            for (dir, _) in &round.dirs[index..] {
                self.dirs_dirty.insert(dir.clone());
            }
            for (path, _) in &round.files {
                failed.entry(path.clone()).or_insert_with(|| error.clone());
            }
        }
        for (path, error) in outcome.files_failed {
            failed.insert(path, error);
        }
        let replaced = std::mem::take(&mut self.syncing_replaced);
        for (path, _) in &round.files {
            if replaced.contains(path) {
                continue;
            }
            if failed.contains_key(path) {
                self.files_dirty.insert(path.clone());
            }
        }
        self.syncing.clear();
        for path in replaced {
            failed.remove(&path);
            match self.sync(&path) {
                Ok(()) | Err(StorageError::NotFound(_)) => {}
                Err(e) => {
                    failed.insert(path, e);
                }
            }
        }
        failed
    }

    /// Whether a round is out (handed out by `begin_sync`, not ended).
    pub fn sync_round_out(&self) -> bool {
        self.round_out
    }

    /// A file of the round out is gone or replaced under its path.
    fn note_replaced(&mut self, path: &str) {
        if self.syncing.contains(path) {
            self.syncing_replaced.insert(path.to_string());
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Handles currently cached.
    pub fn open_files(&self) -> usize {
        self.files.len()
    }

    /// Files with bytes not yet synced, sorted.
    pub fn dirty_paths(&self) -> Vec<String> {
        self.files_dirty.iter().cloned().collect()
    }

    /// Syncs every file with unsynced bytes and every changed directory: the
    /// final flush at shutdown.
    pub fn sync_all(&mut self) -> Result<(), StorageError> {
        assert!(!self.round_out, "sync_all with a sync round out");
        for path in self.dirty_paths() {
            self.sync(&path)?;
        }
        self.sync_dirs()
    }

    fn full_path(&self, path: &str) -> Result<PathBuf, StorageError> {
        validate(path)?;
        let mut full = self.root.clone();
        if !path.is_empty() {
            full.extend(path.split('/'));
        }
        Ok(full)
    }

    /// The cached handle for `path`, opening it if needed. With `create`, a
    /// missing file (and its directories) is created.
    fn handle(&mut self, path: &str, create: bool) -> Result<&File, StorageError> {
        self.use_counter += 1;
        let use_counter = self.use_counter;
        if let Some(cached) = self.files.get_mut(path) {
            let old = std::mem::replace(&mut cached.last_used, use_counter);
            let removed = self.files_by_use.remove(&old);
            debug_assert_eq!(
                removed.as_deref(),
                Some(path),
                "use index out of step with the cache"
            );
            self.files_by_use.insert(use_counter, path.to_string());
            return Ok(&self.files.get(path).expect("present: just touched").file);
        }

        let full = self.full_path(path)?;
        let mut options = OpenOptions::new();
        options.read(true).append(true);
        let file = match options.open(&full) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                self.create_parent_dirs(path)?;
                let file = options
                    .create(true)
                    .open(&full)
                    .map_err(|e| map_io_error(path, e))?;
                self.dirs_dirty.insert(parent_of(path).to_string());
                file
            }
            Err(e) => return Err(map_io_error(path, e)),
        };
        if !file
            .metadata()
            .map_err(|e| map_io_error(path, e))?
            .is_file()
        {
            return Err(StorageError::Io {
                path: path.to_string(),
                message: "not a regular file".to_string(),
            });
        }

        if self.files.len() >= self.open_files_max {
            let (_, lru_path) = self
                .files_by_use
                .pop_first()
                .expect("a full cache has a least recently used entry");
            self.files
                .remove(&lru_path)
                .expect("use index names a cached file");
        }
        self.files_by_use.insert(use_counter, path.to_string());
        self.files.insert(
            path.to_string(),
            CachedFile {
                file,
                direct: None,
                last_used: use_counter,
            },
        );
        assert!(
            self.files.len() <= self.open_files_max,
            "handle cache over its bound"
        );
        assert_eq!(
            self.files.len(),
            self.files_by_use.len(),
            "use index out of step with the cache"
        );
        Ok(&self.files.get(path).expect("present: just inserted").file)
    }

    /// Opens the `O_DIRECT` handle of `path` beside its cached handle
    /// (which `handle` has just brought in), if not open yet. False when
    /// the filesystem has no `O_DIRECT`.
    fn open_direct(&mut self, path: &str) -> Result<bool, StorageError> {
        if self.files.get(path).is_some_and(|c| c.direct.is_some()) {
            return Ok(true);
        }
        let full = self.full_path(path)?;
        let cached = self.files.get_mut(path).expect("handle() cached it");
        if cached.direct.is_none() {
            match page_cache::open_direct(&full) {
                Ok(file) => cached.direct = Some(file),
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    debug!(path, "no O_DIRECT on this filesystem: reads stay buffered");
                    self.direct_unsupported = true;
                    return Ok(false);
                }
                Err(e) => return Err(map_io_error(path, e)),
            }
        }
        Ok(true)
    }

    /// Drops the cached handle of `path`, if any (the file was removed or
    /// replaced, so the handle would name a dead inode).
    fn forget(&mut self, path: &str) {
        if let Some(cached) = self.files.remove(path) {
            self.files_by_use.remove(&cached.last_used);
        }
        self.cold_reads.forget(path);
    }

    /// Creates the missing directories above `path`, remembering which
    /// directories gained an entry.
    fn create_parent_dirs(&mut self, path: &str) -> Result<(), StorageError> {
        let mut dir = String::new();
        let parent = parent_of(path);
        if parent.is_empty() {
            return Ok(());
        }
        for component in parent.split('/') {
            let above = dir.clone();
            if !dir.is_empty() {
                dir.push('/');
            }
            dir.push_str(component);
            let full = self.full_path(&dir)?;
            match fs::create_dir(&full) {
                Ok(()) => {
                    self.dirs_dirty.insert(above);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(map_io_error(&dir, e)),
            }
        }
        Ok(())
    }

    /// Syncs every directory whose entries changed, deepest first, so that
    /// no directory entry is made durable before the directory it names.
    fn sync_dirs(&mut self) -> Result<(), StorageError> {
        while let Some(dir) = self.dirs_dirty.pop_last() {
            let full = self.full_path(&dir)?;
            let result = File::open(&full).and_then(|d| d.sync_all());
            match result {
                Ok(()) => {}
                // Removed since (remove_dir): nothing left to make durable.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.dirs_dirty.insert(dir.clone());
                    return Err(map_io_error(&dir, e));
                }
            }
        }
        Ok(())
    }
}

/// `len` cut down to what the file holds from `position` on.
fn within_file(file_len: u64, position: u64, len: usize) -> usize {
    let available = file_len.saturating_sub(position);
    len.min(usize::try_from(available).unwrap_or(usize::MAX))
}

impl FileStorage {
    /// Opens `path` for reading (cached) and returns its length and `len`
    /// cut down to it: one `fstat` per read, whichever way it is served.
    fn read_extent(
        &mut self,
        path: &str,
        position: u64,
        len: usize,
    ) -> Result<(u64, usize), StorageError> {
        let file = self.handle(path, false)?;
        let file_len = file.metadata().map_err(|e| map_io_error(path, e))?.len();
        Ok((file_len, within_file(file_len, position, len)))
    }

    /// A copy of `len` bytes at `position` of `path` (opened by
    /// `read_extent`): around the page cache before its window, else
    /// buffered.
    fn read_copy(
        &mut self,
        path: &str,
        position: u64,
        len: usize,
        file_len: u64,
    ) -> Result<Bytes, StorageError> {
        if let Some(window) = self.cache_window_bytes {
            if !self.direct_unsupported
                && page_cache::reads_direct(position, len, file_len, window)
                && self.open_direct(path)?
            {
                let direct = self.files[path].direct.as_ref().expect("just opened");
                let cold_end = page_cache::cold_end(file_len, window);
                let read = self
                    .cold_reads
                    .read(path, direct, position, len, cold_end)
                    .map_err(|e| map_io_error(path, e))?;
                self.reads_direct += 1;
                return Ok(read);
            }
        }
        let file = &self.files.get(path).expect("read_extent() cached it").file;
        // Shorter if truncated under us: what there is.
        page_cache::read_buffered(file, position, len).map_err(|e| map_io_error(path, e))
    }
}

impl Storage for FileStorage {
    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        let mut file = self.handle(path, true)?;
        let len_before = file.metadata().map_err(|e| map_io_error(path, e))?.len();
        if let Err(e) = file.write_all(data) {
            // All or nothing, as `MemoryStorage` behaves: a half-written
            // batch would otherwise sit at the end of a segment until the
            // next recovery. Best effort: the disk is already failing.
            let _ = file.set_len(len_before);
            return Err(map_io_error(path, e));
        }
        self.files_dirty.insert(path.to_string());
        Ok(())
    }

    fn read_at(&mut self, path: &str, position: u64, len: usize) -> Result<Bytes, StorageError> {
        let (file_len, len) = self.read_extent(path, position, len)?;
        self.read_copy(path, position, len, file_len)
    }

    fn read_to_send(
        &mut self,
        path: &str,
        position: u64,
        len: usize,
    ) -> Result<Bytes, StorageError> {
        let (file_len, len) = self.read_extent(path, position, len)?;
        let before_window = self
            .cache_window_bytes
            .is_some_and(|window| page_cache::reads_direct(position, len, file_len, window));
        if len < page_cache::MAPPED_READ_BYTES_MIN || before_window {
            // Small reads copy; reads before the page cache window go
            // around the cache, as every read does there.
            return self.read_copy(path, position, len, file_len);
        }
        let file = &self.files.get(path).expect("read_extent() cached it").file;
        match page_cache::read_mapped(file, position, len) {
            Ok(read) => {
                self.reads_mapped += 1;
                Ok(read)
            }
            // A filesystem that cannot map files still reads them.
            Err(e) => {
                debug!(path, error = %e, "mapping refused: reading a copy");
                self.read_copy(path, position, len, file_len)
            }
        }
    }

    fn len(&mut self, path: &str) -> Result<u64, StorageError> {
        let file = self.handle(path, false)?;
        Ok(file.metadata().map_err(|e| map_io_error(path, e))?.len())
    }

    fn exists(&mut self, path: &str) -> bool {
        if self.files.contains_key(path) {
            return true;
        }
        match self.full_path(path) {
            Ok(full) => fs::metadata(full).is_ok_and(|m| m.is_file()),
            Err(_) => false,
        }
    }

    fn truncate(&mut self, path: &str, len: u64) -> Result<(), StorageError> {
        let file = self.handle(path, false)?;
        let current = file.metadata().map_err(|e| map_io_error(path, e))?.len();
        if len < current {
            file.set_len(len).map_err(|e| map_io_error(path, e))?;
            self.cold_reads.forget(path);
            // A cut must be synced too, or a power cut can bring the tail back.
            self.files_dirty.insert(path.to_string());
        }
        Ok(())
    }

    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.note_replaced(path);
        self.forget(path);
        self.files_dirty.remove(path);
        let full = self.full_path(path)?;
        match fs::remove_file(full) {
            Ok(()) => {
                self.dirs_dirty.insert(parent_of(path).to_string());
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(map_io_error(path, e)),
        }
    }

    fn remove_dir(&mut self, dir: &str) -> Result<(), StorageError> {
        assert!(!dir.is_empty(), "remove_dir of the storage root");
        let prefix = format!("{dir}/");
        let under: Vec<String> = self
            .files
            .keys()
            .filter(|p| p.starts_with(&prefix))
            .cloned()
            .collect();
        for path in &under {
            self.forget(path);
        }
        self.cold_reads.forget_under(&prefix);
        for path in self.syncing.iter().filter(|p| p.starts_with(&prefix)) {
            self.syncing_replaced.insert(path.clone());
        }
        self.files_dirty.retain(|p| !p.starts_with(&prefix));
        self.dirs_dirty
            .retain(|d| d != dir && !d.starts_with(&prefix));
        let full = self.full_path(dir)?;
        match fs::remove_dir_all(full) {
            Ok(()) => {
                self.dirs_dirty.insert(parent_of(dir).to_string());
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(map_io_error(dir, e)),
        }
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError> {
        let full = self.full_path(dir)?;
        let entries = match fs::read_dir(&full) {
            Ok(entries) => entries,
            // Directories are implicit: a missing one is empty.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(map_io_error(dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| map_io_error(dir, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                // Not written by us (storage paths are UTF-8); skip it
                // rather than fail recovery of everything else.
                continue;
            };
            if name.ends_with(TEMP_SUFFIX) {
                continue;
            }
            let file_type = entry.file_type().map_err(|e| map_io_error(dir, e))?;
            // An empty directory holds no file, and in the core's model a
            // directory exists only through its files.
            if file_type.is_dir() && !has_visible_entries(&entry.path()) {
                continue;
            }
            names.push(name);
        }
        names.sort();
        Ok(names)
    }

    fn write_atomic(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        validate(path)?;
        let temp_path = format!("{path}{TEMP_SUFFIX}");
        let full = self.full_path(path)?;
        let full_temp = self.full_path(&temp_path)?;
        self.create_parent_dirs(path)?;
        let write = || -> io::Result<()> {
            let mut temp = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&full_temp)?;
            temp.write_all(data)?;
            temp.sync_all()?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&full_temp);
            return Err(map_io_error(path, e));
        }
        self.note_replaced(path);
        fs::rename(&full_temp, &full).map_err(|e| map_io_error(path, e))?;
        // The cached handle (if any) names the replaced inode.
        self.forget(path);
        self.files_dirty.remove(path);
        // Durable means the rename too: sync the directory now, not at the
        // next segment sync.
        self.dirs_dirty.insert(parent_of(path).to_string());
        self.sync_dirs()
    }

    fn sync(&mut self, path: &str) -> Result<(), StorageError> {
        let file = self.handle(path, false)?;
        file.sync_data().map_err(|e| map_io_error(path, e))?;
        self.files_dirty.remove(path);
        self.sync_dirs()
    }
}

/// Rejects paths that could escape the root or that the core never forms:
/// absolute, empty components, `.` or `..`.
fn validate(path: &str) -> Result<(), StorageError> {
    if path.is_empty() {
        return Ok(()); // The root, for `list("")`.
    }
    let bad = path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\0'));
    if bad {
        return Err(StorageError::Io {
            path: path.to_string(),
            message: "invalid storage path".to_string(),
        });
    }
    Ok(())
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

fn has_visible_entries(dir: &Path) -> bool {
    match fs::read_dir(dir) {
        Ok(mut entries) => entries.any(|e| {
            e.ok()
                .and_then(|e| e.file_name().into_string().ok())
                .is_some_and(|name| !name.ends_with(TEMP_SUFFIX))
        }),
        Err(_) => false,
    }
}

/// Maps an OS error to the core's vocabulary: a full disk is `NoSpace` (the
/// core answers with a storage error and keeps serving reads), a missing
/// file is `NotFound`, anything else is `Io`.
pub fn map_io_error(path: &str, error: io::Error) -> StorageError {
    match error.kind() {
        io::ErrorKind::NotFound => StorageError::NotFound(path.to_string()),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            StorageError::NoSpace(path.to_string())
        }
        _ => StorageError::Io {
            path: path.to_string(),
            message: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> (tempfile::TempDir, FileStorage) {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = FileStorage::open(dir.path().join("data")).expect("open storage");
        (dir, storage)
    }

    fn patterned(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn large_reads_before_the_window_go_around_the_cache_with_the_same_bytes() {
        let (_dir, s) = storage();
        let mut s = s.with_cache_window(Some(128 * 1024));
        let path = "orders-0/00000000000000000000.log";
        let bytes = patterned(1 << 20, 1);
        s.append(path, &bytes).unwrap();
        s.sync(path).unwrap();
        let reads = [
            (0, 512 * 1024),     // cold: around the cache
            (3, 100_000),        // cold, unaligned
            (900_000, 100_000),  // in the window: buffered
            (10, 1000),          // small: buffered
            (1_000_000, 90_000), // past the end
        ];
        for (position, len) in reads {
            let read = s.read_at(path, position, len).unwrap();
            let to = (position as usize + len).min(bytes.len());
            assert_eq!(
                &read[..],
                &bytes[position as usize..to],
                "{len} at {position}"
            );
        }
        if s.direct_unsupported {
            eprintln!("no O_DIRECT on this filesystem: every read was buffered");
        } else {
            assert_eq!(s.reads_direct(), 2, "the two cold reads");
        }
    }

    #[test]
    fn consumer_reads_of_64_kib_or_more_are_mappings_with_the_same_bytes() {
        let (_dir, mut s) = storage();
        let path = "orders-0/00000000000000000000.log";
        let bytes = patterned(1 << 20, 2);
        s.append(path, &bytes).unwrap();
        let reads = [
            (0, 512 * 1024),     // mapped
            (4097, 100_000),     // mapped, off a page boundary
            (1_000_000, 90_000), // past the end: what there is (48,576)
            (10, 1000),          // small: copied
            (1 << 20, 100_000),  // at the end: nothing
        ];
        let mut held = Vec::new();
        for (position, len) in reads {
            let read = s.read_to_send(path, position, len).unwrap();
            let from = (position as usize).min(bytes.len());
            let to = (position as usize + len).min(bytes.len());
            assert_eq!(&read[..], &bytes[from..to], "{len} at {position}");
            held.push(read);
        }
        assert_eq!(
            s.reads_mapped(),
            2,
            "the two reads of 64 KiB or more within the file"
        );
        // Appends after a mapping was lent change nothing it holds, and
        // the next read sees them.
        s.append(path, &patterned(70_000, 3)).unwrap();
        assert_eq!(&held[0][..], &bytes[..512 * 1024]);
        let tail = s.read_to_send(path, 1 << 20, 70_000).unwrap();
        assert_eq!(&tail[..], &patterned(70_000, 3)[..]);
        assert_eq!(s.reads_mapped(), 3);
    }

    #[test]
    fn a_truncated_file_is_never_read_from_what_was_read_ahead_of_it() {
        let (_dir, s) = storage();
        let mut s = s.with_cache_window(Some(64 * 1024));
        let path = "orders-0/00000000000000000000.log";
        let old = patterned(2 << 20, 1);
        s.append(path, &old).unwrap();
        // A cold read: the rest of the cold part is read ahead; the next
        // read waits for that read-ahead and is answered from it.
        let read = s.read_at(path, 0, 64 * 1024).unwrap();
        assert_eq!(&read[..], &old[..64 * 1024]);
        let read = s.read_at(path, 64 * 1024, 64 * 1024).unwrap();
        assert_eq!(&read[..], &old[64 * 1024..128 * 1024]);
        if !s.direct_unsupported {
            assert_eq!(s.cold_reads.hits(), 1);
        }
        // A follower's truncation, then other bytes under the same offsets.
        s.truncate(path, 128 * 1024).unwrap();
        let new = patterned(2 << 20, 2);
        s.append(path, &new).unwrap();
        let read = s.read_at(path, 64 * 1024, 128 * 1024).unwrap();
        assert_eq!(&read[..64 * 1024], &old[64 * 1024..128 * 1024]);
        assert_eq!(&read[64 * 1024..], &new[..64 * 1024], "the new bytes");
    }

    #[test]
    fn append_read_len_round_trip() {
        let (_dir, mut s) = storage();
        s.append("orders-0/00000000000000000000.log", b"hello")
            .unwrap();
        s.append("orders-0/00000000000000000000.log", b" world")
            .unwrap();
        let path = "orders-0/00000000000000000000.log";
        assert_eq!(s.len(path).unwrap(), 11);
        assert_eq!(&s.read_at(path, 0, 100).unwrap()[..], b"hello world");
        assert_eq!(&s.read_at(path, 6, 3).unwrap()[..], b"wor");
        assert_eq!(&s.read_at(path, 11, 3).unwrap()[..], b"");
        assert_eq!(&s.read_at(path, 50, 3).unwrap()[..], b"");
        assert!(s.exists(path));
        assert!(!s.exists("orders-0/missing.log"));
        assert!(!s.exists("orders-0"), "a directory is not a file");
    }

    #[test]
    fn missing_files_are_not_found() {
        let (_dir, mut s) = storage();
        let nf = |p: &str| StorageError::NotFound(p.to_string());
        assert_eq!(s.read_at("a/b.log", 0, 1), Err(nf("a/b.log")));
        assert_eq!(s.len("a/b.log"), Err(nf("a/b.log")));
        assert_eq!(s.sync("a/b.log"), Err(nf("a/b.log")));
        assert_eq!(s.truncate("a/b.log", 0), Err(nf("a/b.log")));
        assert_eq!(s.remove("a/b.log"), Ok(()));
        assert_eq!(s.remove_dir("a"), Ok(()));
        assert_eq!(s.list("a"), Ok(vec![]));
    }

    #[test]
    fn data_survives_reopen() {
        let (dir, mut s) = storage();
        s.append("t-0/0.log", b"abc").unwrap();
        s.sync("t-0/0.log").unwrap();
        s.write_atomic("meta/cluster.json", b"{}").unwrap();
        drop(s);
        let mut s = FileStorage::open(dir.path().join("data")).unwrap();
        assert_eq!(&s.read_at("t-0/0.log", 0, 10).unwrap()[..], b"abc");
        assert_eq!(&s.read_at("meta/cluster.json", 0, 10).unwrap()[..], b"{}");
    }

    #[test]
    fn truncate_cuts_and_never_grows() {
        let (_dir, mut s) = storage();
        s.append("f", b"abcdef").unwrap();
        s.truncate("f", 4).unwrap();
        assert_eq!(s.len("f").unwrap(), 4);
        s.truncate("f", 10).unwrap();
        assert_eq!(s.len("f").unwrap(), 4);
        s.append("f", b"XY").unwrap();
        assert_eq!(
            &s.read_at("f", 0, 10).unwrap()[..],
            b"abcdXY",
            "append goes to the new end"
        );
    }

    #[test]
    fn list_is_sorted_and_hides_temp_files_and_empty_dirs() {
        let (dir, mut s) = storage();
        s.append("b-0/x.log", b"1").unwrap();
        s.append("a-1/z.log", b"1").unwrap();
        s.append("a-1/y.log", b"1").unwrap();
        s.write_atomic("meta.json", b"{}").unwrap();
        // A crash between write and rename leaves a temp file behind.
        fs::write(dir.path().join("data/a-1/y.log.seedlog-tmp"), b"partial").unwrap();
        fs::create_dir(dir.path().join("data/empty")).unwrap();
        assert_eq!(s.list("").unwrap(), vec!["a-1", "b-0", "meta.json"]);
        assert_eq!(s.list("a-1").unwrap(), vec!["y.log", "z.log"]);
        s.remove_dir("a-1").unwrap();
        assert_eq!(s.list("").unwrap(), vec!["b-0", "meta.json"]);
        assert!(!s.exists("a-1/y.log"));
        s.remove("b-0/x.log").unwrap();
        assert_eq!(s.list("").unwrap(), vec!["meta.json"]);
    }

    #[test]
    fn write_atomic_replaces_content_even_with_a_cached_handle() {
        let (_dir, mut s) = storage();
        s.write_atomic("cp", b"first version").unwrap();
        assert_eq!(&s.read_at("cp", 0, 100).unwrap()[..], b"first version");
        s.write_atomic("cp", b"second").unwrap();
        assert_eq!(&s.read_at("cp", 0, 100).unwrap()[..], b"second");
        assert_eq!(s.len("cp").unwrap(), 6);
    }

    #[test]
    fn handle_cache_is_bounded_and_evicts_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStorage::with_open_files_max(dir.path(), 3).unwrap();
        for i in 0..10 {
            s.append(&format!("p/{i}.log"), format!("file {i}").as_bytes())
                .unwrap();
            assert!(s.open_files() <= 3);
        }
        // Evicted handles reopen transparently, and unsynced bytes written
        // through an evicted handle are still synced by path.
        for i in 0..10 {
            assert_eq!(
                &s.read_at(&format!("p/{i}.log"), 0, 100).unwrap()[..],
                format!("file {i}").as_bytes()
            );
        }
        assert_eq!(s.dirty_paths().len(), 10);
        s.sync_all().unwrap();
        assert!(s.dirty_paths().is_empty());
        assert_eq!(s.open_files(), 3);
    }

    #[test]
    fn sync_tracks_dirty_files() {
        let (_dir, mut s) = storage();
        s.append("x/a", b"1").unwrap();
        s.append("x/b", b"1").unwrap();
        assert_eq!(s.dirty_paths(), vec!["x/a", "x/b"]);
        s.sync("x/a").unwrap();
        assert_eq!(s.dirty_paths(), vec!["x/b"]);
        s.sync_all().unwrap();
        assert!(s.dirty_paths().is_empty());
        assert!(s.dirs_dirty.is_empty(), "created directories were synced");
    }

    /// A sync that counts the files it synced, by full path, and fails
    /// those whose name ends with `fail`.
    fn counting_sync() -> (
        SyncFile,
        std::sync::Arc<std::sync::Mutex<BTreeMap<PathBuf, u32>>>,
    ) {
        let counts = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let seen = counts.clone();
        let sync: SyncFile = std::sync::Arc::new(move |full: &Path| {
            if full.to_string_lossy().ends_with("fail") {
                return Err(io::Error::other("injected EIO"));
            }
            fdatasync_path(full)?;
            *seen.lock().unwrap().entry(full.to_path_buf()).or_insert(0) += 1;
            Ok(())
        });
        (sync, counts)
    }

    #[test]
    fn a_sync_round_syncs_each_file_once_in_parallel_and_every_changed_dir() {
        let (_dir, mut s) = storage();
        let paths: Vec<String> = (0..40).map(|i| format!("t-{i}/0.log")).collect();
        for path in &paths {
            s.append(path, b"x").unwrap();
        }
        assert_eq!(s.dirty_paths().len(), 40);
        assert!(!s.dirs_dirty.is_empty());
        // Asked twice: synced once.
        let round = s.begin_sync(paths.iter().chain(&paths).map(String::as_str));
        assert_eq!(round.files(), 40);
        assert_eq!(round.dirs(), 41, "each partition directory and the root");
        assert!(s.dirty_paths().is_empty(), "handed out counts as synced");
        assert!(s.dirs_dirty.is_empty());
        // The node goes on appending meanwhile: that file is dirty again.
        s.append("t-3/0.log", b"y").unwrap();
        let (sync, counts) = counting_sync();
        let outcome = round.perform(8, &sync);
        assert!(s.end_sync(round, outcome).is_empty());
        let counts = counts.lock().unwrap();
        assert_eq!(counts.len(), 40);
        assert!(counts.values().all(|&n| n == 1), "{counts:?}");
        assert_eq!(s.dirty_paths(), vec!["t-3/0.log"]);
    }

    #[test]
    fn a_failed_sync_leaves_its_file_dirty_and_a_deleted_one_is_no_failure() {
        let (_dir, mut s) = storage();
        s.append("a/ok", b"1").unwrap();
        s.append("a/fail", b"1").unwrap();
        s.append("a/gone", b"1").unwrap();
        s.sync_all().unwrap();
        s.append("a/ok", b"2").unwrap();
        s.append("a/fail", b"2").unwrap();
        s.append("a/gone", b"2").unwrap();
        let round = s.begin_sync(["a/ok", "a/fail", "a/gone"]);
        // Deleted behind the storage's back, so the round finds it missing
        // and the storage does not know (retention goes through `remove`,
        // tested below).
        fs::remove_file(s.root().join("a/gone")).unwrap();
        let (sync, counts) = counting_sync();
        let outcome = round.perform(2, &sync);
        assert_eq!(outcome.files_missing(), 1);
        let failed = s.end_sync(round, outcome);
        assert_eq!(failed.keys().collect::<Vec<_>>(), vec!["a/fail"]);
        assert!(matches!(failed["a/fail"], StorageError::Io { .. }));
        assert_eq!(s.dirty_paths(), vec!["a/fail"]);
        assert_eq!(counts.lock().unwrap().len(), 1, "only a/ok synced");
    }

    #[test]
    fn a_file_replaced_while_its_sync_is_out_is_synced_again_at_the_end() {
        let (_dir, mut s) = storage();
        s.append("t-0/0.log", b"old bytes").unwrap();
        let round = s.begin_sync(["t-0/0.log"]);
        // The round has synced the old file (performed before the delete).
        let (sync, counts) = counting_sync();
        let outcome = round.perform(1, &sync);
        // DeleteTopics, then the topic is created again and written to: the
        // path names a new file with bytes the round never saw.
        s.remove_dir("t-0").unwrap();
        s.append("t-0/0.log", b"new").unwrap();
        assert_eq!(s.dirty_paths(), vec!["t-0/0.log"]);
        assert!(s.end_sync(round, outcome).is_empty());
        assert!(
            s.dirty_paths().is_empty(),
            "the new file was not synced before the completion"
        );
        assert!(s.dirs_dirty.is_empty());
        assert_eq!(counts.lock().unwrap().len(), 1);

        // A file removed (retention) and not created again: nothing to do.
        s.append("t-1/0.log", b"x").unwrap();
        let round = s.begin_sync(["t-1/0.log"]);
        s.remove("t-1/0.log").unwrap();
        let outcome = round.perform(1, &sync);
        assert_eq!(outcome.files_missing(), 1);
        assert!(s.end_sync(round, outcome).is_empty());
        assert!(s.dirty_paths().is_empty());
        s.sync_all().unwrap();
    }

    #[test]
    fn paths_cannot_escape_the_root() {
        let (_dir, mut s) = storage();
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", "a/"] {
            assert!(
                matches!(s.append(bad, b"1"), Err(StorageError::Io { .. })),
                "{bad} accepted"
            );
            assert!(!s.exists(bad));
        }
    }

    #[test]
    fn enospc_maps_to_no_space() {
        let enospc = io::Error::from_raw_os_error(28);
        assert_eq!(map_io_error("f", enospc), StorageError::NoSpace("f".into()));
        let enoent = io::Error::from_raw_os_error(2);
        assert_eq!(
            map_io_error("f", enoent),
            StorageError::NotFound("f".into())
        );
    }
}
