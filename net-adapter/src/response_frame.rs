//! An encoded response frame in parts, so that records go to the socket
//! as the core read them, without a copy into the frame.
//!
//! A Fetch response is mostly record batches, `Bytes` the core read from
//! the log. Encoded into one buffer, every fetched byte is copied once more
//! on the node thread: that copy was a quarter of the node thread's time
//! serving 1 KiB records to a consumer, and it is paid once per follower
//! on a leader. Here the encoder writes into [`PartsBuf`], which takes
//! every large records field by reference (the `Bytes` itself, recognised
//! by address and length when the encoder hands it over) and copies only
//! what lies between them; [`write_frame`] sends the parts with vectored
//! writes.

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use std::io::IoSlice;
use std::ops::Range;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Records fields at least this large are sent by reference; smaller ones
/// are copied, which costs less than another part to write.
pub const SHARED_BYTES_MIN: usize = 16 * 1024;

/// Parts [`write_frame`] hands to one vectored write, at most.
const IO_SLICES_MAX: usize = 64;

/// A frame as the parts that, written in order, make it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    parts: Vec<Bytes>,
    len: usize,
}

impl Frame {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The frame in one buffer (a copy when it has several parts): for
    /// tests and tools that read frames back.
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            parts => {
                let mut all = BytesMut::with_capacity(self.len);
                for part in parts {
                    all.extend_from_slice(part);
                }
                all.freeze()
            }
        }
    }
}

impl From<Bytes> for Frame {
    fn from(bytes: Bytes) -> Frame {
        let len = bytes.len();
        let parts = if bytes.is_empty() {
            vec![]
        } else {
            vec![bytes]
        };
        Frame { parts, len }
    }
}

/// A [`ByteBufMut`] that copies what the encoder writes, except the
/// `shared` fields, which it keeps as parts of their own.
pub struct PartsBuf<'a> {
    shared: &'a [&'a Bytes],
    parts: Vec<Bytes>,
    /// Bytes in `parts`.
    parts_len: usize,
    current: BytesMut,
}

impl<'a> PartsBuf<'a> {
    /// `copied_capacity`: what the encoder will copy, for one allocation.
    pub fn new(shared: &'a [&'a Bytes], copied_capacity: usize) -> PartsBuf<'a> {
        PartsBuf {
            shared,
            parts: Vec::with_capacity(2 * shared.len() + 1),
            parts_len: 0,
            current: BytesMut::with_capacity(copied_capacity),
        }
    }

    pub fn finish(mut self) -> Frame {
        self.close_current();
        let len = self.parts_len;
        debug_assert_eq!(len, self.parts.iter().map(Bytes::len).sum::<usize>());
        Frame {
            parts: self.parts,
            len,
        }
    }

    fn close_current(&mut self) {
        if !self.current.is_empty() {
            let copied = self.current.split().freeze();
            self.parts_len += copied.len();
            self.parts.push(copied);
        }
    }

    fn shared_at(&self, src: &[u8]) -> Option<Bytes> {
        if src.len() < SHARED_BYTES_MIN {
            return None;
        }
        self.shared
            .iter()
            .find(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())
            .map(|b| (*b).clone())
    }
}

// SAFETY: every method forwards to the `BytesMut` being written, whose
// guarantees `BufMut` relies on; `put_slice` either does the same or
// appends a whole part without touching it.
unsafe impl BufMut for PartsBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise about `current`'s chunk, passed on.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.shared_at(src) {
            Some(shared) => {
                self.close_current();
                self.parts_len += shared.len();
                self.parts.push(shared);
            }
            None => self.current.extend_from_slice(src),
        }
    }
}

impl ByteBufMut for PartsBuf<'_> {
    fn offset(&self) -> usize {
        self.parts_len + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        assert!(
            offset >= self.parts_len,
            "seek into a part already closed: {offset} < {}",
            self.parts_len
        );
        self.current.seek(offset - self.parts_len);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        assert!(
            r.start >= self.parts_len,
            "a range in a part already closed: {r:?}"
        );
        let base = self.parts_len;
        self.current.range(r.start - base..r.end - base)
    }
}

/// Writes every part of `frame`, in order, with vectored writes.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &Frame,
) -> std::io::Result<()> {
    let mut part = 0;
    let mut skip = 0; // bytes of parts[part] already written
    while part < frame.parts.len() {
        let slices: Vec<IoSlice<'_>> = frame.parts[part..]
            .iter()
            .take(IO_SLICES_MAX)
            .enumerate()
            .map(|(i, p)| IoSlice::new(if i == 0 { &p[skip..] } else { p }))
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let left = frame.parts[part].len() - skip;
            if written >= left {
                written -= left;
                part += 1;
                skip = 0;
            } else {
                skip += written;
                written = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterned(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
            .collect::<Vec<u8>>()
            .into()
    }

    #[test]
    fn large_shared_fields_become_parts_and_the_rest_is_copied() {
        let big = patterned(SHARED_BYTES_MIN, 1);
        let small = patterned(100, 2);
        let shared = [&big, &small];
        let mut buf = PartsBuf::new(&shared, 64);
        buf.put_i32(7);
        buf.put_slice(&big);
        buf.put_slice(&small); // too small to be worth a part: copied
        buf.put_slice(&big[1..]); // not the field itself: copied
        buf.put_u8(9);
        let frame = buf.finish();
        assert_eq!(frame.parts().len(), 3);
        assert_eq!(
            frame.parts()[1].as_ptr(),
            big.as_ptr(),
            "the field, not a copy"
        );
        let mut expected = BytesMut::new();
        expected.put_i32(7);
        expected.extend_from_slice(&big);
        expected.extend_from_slice(&small);
        expected.extend_from_slice(&big[1..]);
        expected.put_u8(9);
        assert_eq!(frame.to_bytes(), expected.freeze());
        assert_eq!(frame.len(), 4 + 2 * SHARED_BYTES_MIN - 1 + 100 + 1);
    }

    /// A writer that takes at most `step` bytes per call, to exercise the
    /// resumption of partial vectored writes.
    struct Trickle {
        out: Vec<u8>,
        step: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.out.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.step - n);
                self.out.extend_from_slice(&b[..take]);
                n += take;
                if n == self.step {
                    break;
                }
            }
            std::task::Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_frame_is_written_whole_through_partial_vectored_writes() {
        let parts: Vec<Bytes> = (0..100).map(|i| patterned(1 + i * 37, i as u8)).collect();
        let len = parts.iter().map(Bytes::len).sum();
        let frame = Frame { parts, len };
        for step in [1, 7, 1000, 1 << 20] {
            let mut writer = Trickle {
                out: Vec::new(),
                step,
            };
            write_frame(&mut writer, &frame).await.expect("write");
            assert_eq!(writer.out, frame.to_bytes(), "step {step}");
        }
    }
}
