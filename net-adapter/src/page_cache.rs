//! How much of a file the broker leaves in the OS page cache, and how it
//! reads around the cache.
//!
//! Kafka leaves every byte it writes in the page cache until the kernel
//! evicts it. With a window, a file keeps only its last `window` bytes
//! cached: once a sync round has made a file durable, the pages before that
//! tail are dropped (`POSIX_FADV_DONTNEED`; they are clean after the
//! `fdatasync`, so nothing is lost), and a large read that lies wholly in
//! the dropped part goes around the cache with `O_DIRECT`, from the disk
//! straight into the response buffer.
//!
//! Why: a write into a page the kernel has not freed a moment ago costs far
//! more than a copy on a VM whose balloon hands free guest memory back to
//! the host (virtio-balloon free page reporting, as on the Firecracker VMs
//! seedlog is benchmarked on): the host must fault the page in again.
//! Measured there with `dd bs=1M` into a new file: 380-440 MB/s into fresh
//! pages, 5 GB/s into pages freed a second before. A broker that keeps all
//! it wrote takes a fresh page for every 4 KiB it appends; one that drops
//! its synced pages reuses them. Reads of old data are no worse off: a
//! cold buffered read fills fresh pages too (616 MB/s there), an
//! `O_DIRECT` read does not (2.6 GB/s), and it leaves the tail that
//! tailing consumers and followers read in the cache instead of evicting it.
//!
//! The tail is what is read most: tailing consumers, followers, and the
//! producer state a new leader rebuilds. Reads smaller than
//! [`DIRECT_READ_BYTES_MIN`] (batch headers, index lookups) stay buffered,
//! where readahead serves a sequential scan better than one `O_DIRECT`
//! block read per header.

use bytes::Bytes;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The unit `O_DIRECT` offsets, lengths and buffers are aligned to: the
/// page size, a multiple of every common logical block size (512, 4096).
pub const BLOCK_BYTES: u64 = 4096;

/// Reads below this size stay buffered (see the module comment).
pub const DIRECT_READ_BYTES_MIN: usize = 64 * 1024;

/// Where the cached tail of a file of `file_len` bytes begins with a
/// window of `window_bytes`: the pages before it may be dropped. Block
/// aligned down, so the page holding the window's first byte stays.
pub fn cold_end(file_len: u64, window_bytes: u64) -> u64 {
    let end = file_len.saturating_sub(window_bytes) / BLOCK_BYTES * BLOCK_BYTES;
    debug_assert!(end <= file_len && end.is_multiple_of(BLOCK_BYTES));
    end
}

/// Whether a read of `len` bytes at `position` goes around the cache.
pub fn reads_direct(position: u64, len: usize, file_len: u64, window_bytes: u64) -> bool {
    len >= DIRECT_READ_BYTES_MIN
        && position.saturating_add(len as u64) <= cold_end(file_len, window_bytes)
}

/// Drops the cached pages of the file at `full` before its tail of
/// `window_bytes`. Call after the file was synced: only clean pages are
/// dropped (dirty ones stay until written back), so this never loses data.
pub fn drop_cold(full: &Path, window_bytes: u64) -> io::Result<()> {
    let file = File::open(full)?;
    let end = cold_end(file.metadata()?.len(), window_bytes);
    if end == 0 {
        return Ok(());
    }
    let offset_end = libc::off_t::try_from(end).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: a plain syscall on a descriptor this function owns.
    let rc =
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, offset_end, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Opens `full` for reads around the cache. Fails with `InvalidInput`
/// (EINVAL) on a filesystem without `O_DIRECT`, such as tmpfs.
pub fn open_direct(full: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(full)
}

/// The buffer [`read_direct`] needs for a read of `len` bytes: the blocks
/// the range may cover, and one more so that an aligned start fits.
pub fn direct_buffer_bytes(len: usize) -> usize {
    let block = BLOCK_BYTES as usize;
    (len + block - 1).div_ceil(block) * block + block
}

/// Reads up to `len` bytes at `position` from `file`, opened with
/// [`open_direct`]: the blocks covering the range are read into an aligned
/// place in `buffer` (emptied first, grown to [`direct_buffer_bytes`] if
/// smaller; pass a buffer of an earlier read to spare the allocation and
/// its page faults), and the answer is the range's slice of it (no copy).
/// Shorter when the file ends first.
pub fn read_direct(
    file: &File,
    position: u64,
    len: usize,
    mut buffer: Vec<u8>,
) -> io::Result<Bytes> {
    let block = BLOCK_BYTES as usize;
    let start = position / BLOCK_BYTES * BLOCK_BYTES;
    let lead = usize::try_from(position - start).expect("below one block");
    let span = (lead + len).div_ceil(block) * block;
    buffer.clear();
    buffer.reserve_exact(span + block);
    let align = buffer.as_ptr().align_offset(block);
    assert!(align < block, "a byte buffer can always be aligned");
    let spare = buffer.spare_capacity_mut();
    spare[..align].fill(std::mem::MaybeUninit::new(0));
    let filled = pread_into(file, &mut spare[align..align + span], start, block)?;
    assert!(filled <= span);
    // SAFETY: the first `align` bytes were set just above, the `filled`
    // after them by pread.
    unsafe { buffer.set_len(align + filled) };
    let begin = (align + lead).min(buffer.len());
    let end = (align + lead + len).min(buffer.len());
    Ok(Bytes::from(buffer).slice(begin..end))
}

/// From this size up a consumer's read (`Storage::read_to_send`) maps the
/// file rather than copying it: below it the `mmap` and `munmap` cost
/// more than the copy they save.
pub const MAPPED_READ_BYTES_MIN: usize = 64 * 1024;

/// The `len` bytes at `position` of `file` as a read-only mapping, for
/// bytes that are written to a socket and dropped: the kernel copies them
/// from the page cache once, where `read_buffered` copies them twice
/// (into the buffer, then into the socket). Populated up front, one
/// syscall rather than a page fault per 64 KiB. `len` must be within the
/// file.
pub fn read_mapped(file: &File, position: u64, len: usize) -> io::Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the mapping is read-only and private to this `Bytes`; the
    // caller promises the range is within the file and below a high
    // watermark, which a clean log never truncates (see
    // `Storage::read_to_send` for what happens if it is cut anyway: the
    // bytes are only read by the kernel's socket write, which fails with
    // EFAULT past the end of a file rather than raising SIGBUS).
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(position)
            .len(len)
            .populate()
            .map(file)?
    };
    Ok(Bytes::from_owner(map))
}

/// Reads up to `len` bytes at `position` from `file` into a new buffer:
/// fewer only where the file ends. The buffer is not zeroed first (that
/// was 2% of a leader's time serving followers: megabytes pread then
/// overwrites).
pub fn read_buffered(file: &File, position: u64, len: usize) -> io::Result<Bytes> {
    let mut buffer: Vec<u8> = Vec::with_capacity(len);
    let filled = pread_into(file, &mut buffer.spare_capacity_mut()[..len], position, 1)?;
    // SAFETY: pread wrote the first `filled` bytes.
    unsafe { buffer.set_len(filled) };
    Ok(Bytes::from(buffer))
}

/// Fills `dst` from `file` at `position` with as many `pread`s as it
/// takes, until it is full, the file ends, or a read ends off a multiple
/// of `block` (with `O_DIRECT` the next read would be unaligned, and such
/// a short read only happens at the end of a file). Returns the bytes
/// written at the start of `dst`.
fn pread_into(
    file: &File,
    dst: &mut [std::mem::MaybeUninit<u8>],
    position: u64,
    block: usize,
) -> io::Result<usize> {
    let mut filled = 0;
    while filled < dst.len() {
        let offset = libc::off_t::try_from(position + filled as u64)
            .map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: pread writes at most `dst.len() - filled` bytes, the
        // rest of `dst`, which it does not read.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                dst[filled..].as_mut_ptr().cast(),
                dst.len() - filled,
                offset,
            )
        };
        match n {
            0 => break, // the end of the file
            n if n > 0 => {
                filled += usize::try_from(n).expect("positive");
                if !filled.is_multiple_of(block) {
                    break;
                }
            }
            _ => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
    assert!(filled <= dst.len());
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_cold_part_ends_a_window_before_the_end_on_a_block_boundary() {
        assert_eq!(cold_end(0, 0), 0);
        assert_eq!(cold_end(10_000, 0), 8192);
        assert_eq!(cold_end(10_000, 5_000), 4096);
        assert_eq!(cold_end(10_000, 6_000), 0);
        assert_eq!(cold_end(10_000, 20_000), 0);
        assert_eq!(cold_end(1 << 30, 64 << 20), (1 << 30) - (64 << 20));
    }

    #[test]
    fn only_large_reads_wholly_before_the_window_go_around_the_cache() {
        let len = DIRECT_READ_BYTES_MIN;
        let file_len = 10 << 20;
        let window = 1 << 20;
        assert!(reads_direct(0, len, file_len, window));
        // Ends exactly where the window begins: cold.
        let cold = cold_end(file_len, window);
        assert!(reads_direct(cold - len as u64, len, file_len, window));
        // One byte into the window: buffered.
        assert!(!reads_direct(cold - len as u64 + 1, len, file_len, window));
        // Too small: buffered, wherever it is.
        assert!(!reads_direct(0, len - 1, file_len, window));
    }

    /// A file holding `bytes` on a filesystem with O_DIRECT: the temp dir,
    /// or, when that is tmpfs (no O_DIRECT), one in the crate's directory.
    /// `None` when neither has it.
    fn direct_file(bytes: &[u8]) -> Option<(tempfile::TempDir, std::path::PathBuf)> {
        let dirs = [
            tempfile::tempdir(),
            tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")),
        ];
        for dir in dirs {
            let dir = dir.expect("temp dir");
            let path = dir.path().join("segment");
            File::create(&path)
                .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
                .expect("write");
            match open_direct(&path) {
                Ok(_) => return Some((dir, path)),
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => continue,
                Err(e) => panic!("open_direct: {e}"),
            }
        }
        None
    }

    #[test]
    fn a_direct_read_returns_the_same_bytes_as_a_buffered_one() {
        let bytes: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let Some((_dir, path)) = direct_file(&bytes) else {
            eprintln!("no O_DIRECT on this filesystem: nothing to check");
            return;
        };
        let file = open_direct(&path).expect("open");
        let cases = [
            (0, 4096),
            (0, 50_000),
            (1, 1),
            (4095, 2),
            (5_000, 20_000),
            (49_999, 10),     // past the end: one byte
            (45_000, 10_000), // runs past the end
            (50_000, 100),    // at the end: nothing
            (60_000, 100),    // beyond the end: nothing
        ];
        // A used buffer of the wrong size each time: it is emptied and
        // grown, never read back.
        let mut used = vec![0xEEu8; 3];
        for (position, len) in cases {
            let read = read_direct(&file, position, len, std::mem::take(&mut used)).expect("read");
            used = vec![0xEEu8; len / 2 + 1];
            let from = (position as usize).min(bytes.len());
            let to = (position as usize + len).min(bytes.len());
            assert_eq!(&read[..], &bytes[from..to], "read of {len} at {position}");
        }
    }

    #[test]
    fn dropping_the_cold_part_leaves_only_the_window_cached() {
        let mib = 1 << 20;
        let bytes = vec![7u8; 16 * mib];
        let Some((_dir, path)) = direct_file(&bytes) else {
            eprintln!("no O_DIRECT on this filesystem: page cache residency not checked");
            return;
        };
        // Bring every page in, then drop all but the last 4 MiB.
        std::fs::read(&path).expect("read");
        drop_cold(&path, 4 * mib as u64).expect("drop");
        let resident = resident_pages(&path);
        let block = BLOCK_BYTES as usize;
        assert_eq!(resident.len(), 16 * mib / block);
        assert!(
            resident[12 * mib / block..].iter().all(|&r| r),
            "the window stays cached"
        );
        // The page cache may hold a file in folios of up to 2 MiB, and a
        // folio straddling the window's edge stays: check below that.
        let dropped = resident[..10 * mib / block].iter().filter(|&&r| !r).count();
        assert_eq!(dropped, 10 * mib / block, "the cold part is dropped");
    }

    /// Which pages of the file are in the page cache (`mincore`).
    fn resident_pages(path: &Path) -> Vec<bool> {
        let file = File::open(path).expect("open");
        let len = usize::try_from(file.metadata().expect("stat").len()).expect("small");
        let pages = len.div_ceil(BLOCK_BYTES as usize);
        let mut vec = vec![0u8; pages];
        // SAFETY: a read-only shared mapping of a file this test owns,
        // unmapped before returning; mincore writes `pages` bytes to vec.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(map, libc::MAP_FAILED, "mmap");
            let rc = libc::mincore(map, len, vec.as_mut_ptr());
            libc::munmap(map, len);
            assert_eq!(rc, 0, "mincore");
        }
        vec.iter().map(|&v| v & 1 == 1).collect()
    }
}
