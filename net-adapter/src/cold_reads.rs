//! Reads of the cold part of files (before their page cache window, see
//! [`crate::page_cache`]): `O_DIRECT`, with a read-ahead on a helper thread.
//!
//! A cold read goes to the disk, and on the node thread it would stall
//! every other request for as long (a 1 MiB `O_DIRECT` read: ~0.6 ms on
//! the benchmark VM). Cold reads are mostly a consumer catching up, one
//! fetch after another along a file, so after each one the next
//! [`CHUNK_BYTES`] are read ahead on the reader thread, two chunks deep;
//! the next fetch finds its bytes there and takes a slice (no copy, no
//! syscall; a copy when it spans two chunks), while the following chunk is
//! being read.
//!
//! Bounded: at most [`STREAMS_MAX`] streams (a reader's way along a file;
//! the least recently read replaced), [`CHUNKS_AHEAD_MAX`] chunks each, and
//! [`JOBS_QUEUED_MAX`] reads queued for
//! the thread (past it, no read-ahead until it catches up). Chunks hold
//! only bytes before the window when they were asked for; such bytes
//! change only by a truncation or a replacement of the file, and
//! [`ColdReads::forget`] drops a file's chunks on either.

use crate::page_cache::{direct_buffer_bytes, read_direct};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::mpsc;
use tracing::debug;

/// Bytes one read-ahead reads: large enough for `O_DIRECT` to run near
/// the disk's speed (2.5 GB/s at 4 MiB against 1.7 GB/s at 1 MiB there).
pub const CHUNK_BYTES: u64 = 4 * 1024 * 1024;
/// Chunks kept per file: the one being consumed and two being read ahead.
pub const CHUNKS_AHEAD_MAX: usize = 3;
/// Streams (a reader's way along a file) with chunks at once: STREAMS_MAX
/// x CHUNKS_AHEAD_MAX x CHUNK_BYTES = 96 MiB of memory at most (a chunk
/// read on a miss is as long as the read, which is a fetch's size, smaller
/// than a chunk but for huge `max_bytes`).
pub const STREAMS_MAX: usize = 8;
/// Reads queued for the reader thread.
pub const JOBS_QUEUED_MAX: usize = STREAMS_MAX * CHUNKS_AHEAD_MAX;
/// Buffers of chunks done with, kept for the next chunks: a fresh buffer
/// costs a page fault per 4 KiB (and on the benchmark VM a host fault
/// too), which was most of the reader thread's time.
pub const SPARE_BUFFERS_MAX: usize = CHUNKS_AHEAD_MAX;

struct Job {
    file: File,
    position: u64,
    len: usize,
    buffer: Vec<u8>,
    reply: mpsc::SyncSender<io::Result<Bytes>>,
}

enum ChunkState {
    Reading(mpsc::Receiver<io::Result<Bytes>>),
    /// The bytes read: shorter than asked at the end of the file; empty
    /// after a failed read (the next read of the range goes to the disk
    /// itself and reports the error).
    Ready(Bytes),
}

struct Chunk {
    position: u64,
    state: ChunkState,
}

impl Chunk {
    /// The chunk's bytes, waiting for the reader thread if it is still
    /// reading them.
    fn ready(&mut self) -> &Bytes {
        if let ChunkState::Reading(reply) = &self.state {
            let bytes = match reply.recv() {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(e)) => {
                    debug!(error = %e, "a read-ahead failed");
                    Bytes::new()
                }
                Err(mpsc::RecvError) => Bytes::new(), // the thread is gone
            };
            self.state = ChunkState::Ready(bytes);
        }
        match &self.state {
            ChunkState::Ready(bytes) => bytes,
            ChunkState::Reading(_) => unreachable!("just waited"),
        }
    }

    /// Where the bytes it was asked for end (they may come back shorter).
    fn end(&self, asked: u64) -> u64 {
        self.position + asked
    }
}

/// One reader's way along one file: the chunks it is consuming and those
/// read ahead of it. A file read by several (two followers and a consumer
/// catching up) has a stream for each, or each would keep throwing away
/// what was read ahead for the other.
struct Stream {
    path: String,
    /// In file order, contiguous: each starts where the one before ends.
    chunks: VecDeque<(Chunk, u64)>,
    last_used: u64,
}

impl Stream {
    /// Whether a read at `position` continues this stream.
    fn covers(&self, path: &str, position: u64) -> bool {
        let (Some((front, _)), Some((back, asked))) = (self.chunks.front(), self.chunks.back())
        else {
            return false;
        };
        self.path == path && front.position <= position && position < back.end(*asked)
    }
}

/// The read-ahead state of the storage's cold reads.
#[derive(Default)]
pub struct ColdReads {
    /// Started at the first cold read: storages without a window never
    /// start it.
    jobs: Option<mpsc::SyncSender<Job>>,
    /// At most [`STREAMS_MAX`], the least recently read replaced.
    streams: Vec<Stream>,
    use_counter: u64,
    spare: Vec<Vec<u8>>,
    /// Reads answered from a chunk read ahead, for tests and metrics.
    hits: u64,
}

impl std::fmt::Debug for ColdReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdReads")
            .field("streams", &self.streams.len())
            .field("hits", &self.hits)
            .finish()
    }
}

impl ColdReads {
    /// Reads answered from a chunk read ahead.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Reads `len` bytes at `position` of `path` (all of them before
    /// `cold_end`, the start of its window; `direct` is the file opened with
    /// `O_DIRECT`), then reads ahead what comes next.
    pub fn read(
        &mut self,
        path: &str,
        direct: &File,
        position: u64,
        len: usize,
        cold_end: u64,
    ) -> io::Result<Bytes> {
        let end = position + len as u64;
        assert!(end <= cold_end, "a cold read ends before the window");
        self.use_counter += 1;
        let index = match self.streams.iter().position(|s| s.covers(path, position)) {
            Some(index) => index,
            None => self.new_stream(path),
        };
        let stream = &mut self.streams[index];
        stream.last_used = self.use_counter;
        // Chunks wholly behind this read are done with.
        while stream
            .chunks
            .front()
            .is_some_and(|(chunk, asked)| chunk.end(*asked) <= position)
        {
            let (chunk, _) = stream.chunks.pop_front().expect("just seen");
            keep_buffer(&mut self.spare, chunk);
        }
        let read = match answer_from(&mut stream.chunks, position, len) {
            Some(bytes) => {
                self.hits += 1;
                bytes
            }
            None => {
                // Not read ahead (a first read, a jump back or ahead, a
                // failed read-ahead): read it here, and read ahead from its
                // end rather than from chunks that missed it. It is kept as
                // a chunk of its own: the log reads whole batches up to a
                // size and hands out only those that fit, so the next
                // fetch starts inside this read, not at its end.
                for (chunk, _) in stream.chunks.drain(..) {
                    keep_buffer(&mut self.spare, chunk);
                }
                let bytes =
                    read_direct(direct, position, len, self.spare.pop().unwrap_or_default())?;
                let chunk = Chunk {
                    position,
                    state: ChunkState::Ready(bytes.clone()),
                };
                stream.chunks.push_back((chunk, bytes.len() as u64));
                bytes
            }
        };
        self.read_ahead(index, direct, end, cold_end);
        Ok(read)
    }

    /// Drops what was read ahead of `path`: it was truncated, replaced or
    /// removed.
    pub fn forget(&mut self, path: &str) {
        self.streams.retain(|s| s.path != path);
    }

    /// Drops what was read ahead of every file under the directory
    /// `prefix` (ending in `/`): it was removed.
    pub fn forget_under(&mut self, prefix: &str) {
        self.streams.retain(|s| !s.path.starts_with(prefix));
    }

    /// A new, empty stream for `path`, in place of the least recently read
    /// one when there are `STREAMS_MAX`; its index.
    fn new_stream(&mut self, path: &str) -> usize {
        let stream = Stream {
            path: path.to_string(),
            chunks: VecDeque::new(),
            last_used: self.use_counter,
        };
        if self.streams.len() < STREAMS_MAX {
            self.streams.push(stream);
            return self.streams.len() - 1;
        }
        let (oldest, _) = self
            .streams
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.last_used)
            .expect("STREAMS_MAX streams");
        let replaced = std::mem::replace(&mut self.streams[oldest], stream);
        for (chunk, _) in replaced.chunks {
            keep_buffer(&mut self.spare, chunk);
        }
        assert!(self.streams.len() <= STREAMS_MAX);
        oldest
    }

    /// Asks the reader thread for the chunks after `from`, up to
    /// `CHUNKS_AHEAD_MAX` ahead and never into the window.
    fn read_ahead(&mut self, index: usize, direct: &File, from: u64, cold_end: u64) {
        let stream = &mut self.streams[index];
        let mut next = stream
            .chunks
            .back()
            .map_or(from, |(chunk, asked)| chunk.end(*asked).max(from));
        while stream.chunks.len() < CHUNKS_AHEAD_MAX && next < cold_end {
            let asked = CHUNK_BYTES.min(cold_end - next);
            let jobs = self.jobs.get_or_insert_with(spawn_reader);
            let Ok(file) = direct.try_clone() else {
                return;
            };
            let (reply, receiver) = mpsc::sync_channel(1);
            let job = Job {
                file,
                position: next,
                len: usize::try_from(asked).expect("a chunk fits memory"),
                buffer: self.spare.pop().unwrap_or_default(),
                reply,
            };
            if let Err(e) = jobs.try_send(job) {
                // The thread is behind (or gone): no read-ahead now.
                let (mpsc::TrySendError::Full(job) | mpsc::TrySendError::Disconnected(job)) = e;
                if job.buffer.capacity() > 0 {
                    self.spare.push(job.buffer);
                }
                return;
            }
            stream.chunks.push_back((
                Chunk {
                    position: next,
                    state: ChunkState::Reading(receiver),
                },
                asked,
            ));
            next += asked;
        }
    }
}

/// The bytes at `position..position + len` from the chunks read ahead,
/// waiting for them if they are still being read: a slice of one chunk, or
/// a copy joining the end of one and the start of the next.
fn answer_from(chunks: &mut VecDeque<(Chunk, u64)>, position: u64, len: usize) -> Option<Bytes> {
    let (first, _) = chunks.front_mut()?;
    if first.position > position {
        return None;
    }
    let first_position = first.position;
    let head = first.ready().clone();
    let from = usize::try_from(position - first_position).expect("within a chunk");
    if from + len <= head.len() {
        return Some(head.slice(from..from + len));
    }
    let (second, _) = chunks.get_mut(1)?;
    if from >= head.len() || second.position != first_position + head.len() as u64 {
        return None; // the first came back short: the file ended, or failed
    }
    let tail = second.ready();
    let rest = from + len - head.len();
    if rest > tail.len() {
        return None;
    }
    let mut joined = BytesMut::with_capacity(len);
    joined.extend_from_slice(&head[from..]);
    joined.extend_from_slice(&tail[..rest]);
    Some(joined.freeze())
}

/// Keeps the buffer of a chunk done with for the next read, if it was read
/// and nothing else holds a part of it (a fetch answer is encoded, and
/// its slice dropped, before the next fetch comes).
fn keep_buffer(spare: &mut Vec<Vec<u8>>, chunk: Chunk) {
    if spare.len() >= SPARE_BUFFERS_MAX {
        return;
    }
    let ChunkState::Ready(bytes) = chunk.state else {
        return;
    };
    if let Ok(mut buffer) = bytes.try_into_mut() {
        buffer.clear();
        let buffer = Vec::from(buffer);
        if buffer.capacity() >= direct_buffer_bytes(CHUNK_BYTES as usize) {
            spare.push(buffer);
        }
    }
    assert!(spare.len() <= SPARE_BUFFERS_MAX);
}

/// Starts the reader thread; it ends when the sender is dropped.
fn spawn_reader() -> mpsc::SyncSender<Job> {
    let (jobs, receiver) = mpsc::sync_channel::<Job>(JOBS_QUEUED_MAX);
    let spawned = std::thread::Builder::new()
        .name("seedlog-reader".to_string())
        .spawn(move || {
            while let Ok(job) = receiver.recv() {
                let read = read_direct(&job.file, job.position, job.len, job.buffer);
                // The asker may have moved on (evicted, forgotten): fine.
                let _ = job.reply.send(read);
            }
        });
    if let Err(e) = spawned {
        // Without the thread, every job fails to send and reads are done
        // on the caller's thread: slower, still correct.
        debug!(error = %e, "cannot spawn the reader thread: no read-ahead");
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page_cache::open_direct;
    use std::io::Write;

    /// A file of `len` patterned bytes on a filesystem with O_DIRECT.
    fn direct_file(len: usize) -> Option<(tempfile::TempDir, File, Vec<u8>)> {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 253) as u8).collect();
        for dir in [
            tempfile::tempdir(),
            tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")),
        ] {
            let dir = dir.expect("temp dir");
            let path = dir.path().join("segment");
            File::create(&path)
                .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
                .expect("write");
            match open_direct(&path) {
                Ok(file) => return Some((dir, file, bytes)),
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => continue,
                Err(e) => panic!("open_direct: {e}"),
            }
        }
        None
    }

    #[test]
    fn a_sequential_scan_is_served_from_the_read_ahead_with_the_right_bytes() {
        let len = 3 * CHUNK_BYTES as usize + 12_345;
        let Some((_dir, file, bytes)) = direct_file(len) else {
            eprintln!("no O_DIRECT on this filesystem: nothing to check");
            return;
        };
        let cold_end = len as u64;
        let mut reads = ColdReads::default();
        // As the log reads: `step` bytes, of which the whole batches are
        // handed out, so the next read starts a little before this one's
        // end. Not a divisor of a chunk: some reads span two.
        let step = 300_000;
        let handed_out = step - 7_000;
        let mut position = 0;
        let mut count = 0u64;
        while position < len {
            let n = step.min(len - position);
            let read = reads
                .read("seg", &file, position as u64, n, cold_end)
                .expect("read");
            assert_eq!(&read[..], &bytes[position..position + n], "at {position}");
            position += handed_out.min(n);
            count += 1;
        }
        // All but the first, straddling ones included.
        assert_eq!(reads.hits(), count - 1, "hits of {count} reads");
        // The buffers of chunks done with came back for later chunks.
        assert!(!reads.spare.is_empty() && reads.spare.len() <= SPARE_BUFFERS_MAX);
        assert!(reads.streams.len() == 1 && reads.streams[0].chunks.len() <= CHUNKS_AHEAD_MAX);
    }

    #[test]
    fn read_ahead_never_reaches_into_the_window_and_forget_drops_it() {
        let len = 2 * CHUNK_BYTES as usize;
        let Some((_dir, file, bytes)) = direct_file(len) else {
            eprintln!("no O_DIRECT on this filesystem: nothing to check");
            return;
        };
        let cold_end = CHUNK_BYTES + 100_000;
        let mut reads = ColdReads::default();
        let read = reads
            .read("seg", &file, 0, 100_000, cold_end)
            .expect("read");
        assert_eq!(&read[..], &bytes[..100_000]);
        let ahead = &reads.streams[0].chunks;
        let (last, asked) = ahead.back().expect("read ahead");
        assert_eq!(last.end(*asked), cold_end, "stops where the window starts");
        reads.forget("seg");
        assert!(reads.streams.is_empty());
    }

    #[test]
    fn streams_read_ahead_are_bounded() {
        let Some((_dir, file, _)) = direct_file(1 << 20) else {
            eprintln!("no O_DIRECT on this filesystem: nothing to check");
            return;
        };
        let mut reads = ColdReads::default();
        for i in 0..STREAMS_MAX + 5 {
            reads
                .read(&format!("seg-{i}"), &file, 0, 65_536, 1 << 20)
                .expect("read");
        }
        assert_eq!(reads.streams.len(), STREAMS_MAX);
        assert!(
            !reads.streams.iter().any(|s| s.path == "seg-0"),
            "the least recently read goes"
        );
    }

    #[test]
    fn two_readers_of_one_file_each_keep_their_read_ahead() {
        // Two followers (or a follower and a consumer) far apart in the
        // same segment, taking turns.
        let len = 6 * CHUNK_BYTES as usize;
        let Some((_dir, file, bytes)) = direct_file(len) else {
            eprintln!("no O_DIRECT on this filesystem: nothing to check");
            return;
        };
        let mut reads = ColdReads::default();
        let step = 500_000;
        let mut positions = [0, 3 * CHUNK_BYTES as usize];
        let mut count = 0;
        for _ in 0..12 {
            for position in &mut positions {
                let read = reads
                    .read("seg", &file, *position as u64, step, len as u64)
                    .expect("read");
                assert_eq!(&read[..], &bytes[*position..*position + step]);
                *position += step;
                count += 1;
            }
        }
        assert_eq!(reads.streams.len(), 2);
        assert_eq!(reads.hits(), count - 2, "all but each reader's first");
    }
}
