//! The global allocator: mimalloc, and harmless reservations for the
//! wire's lies about array sizes.
//!
//! kafka-protocol 0.18 reserves `Vec::with_capacity(count)` from an array
//! count read off the wire before it checks that the bytes are there. A
//! 14-byte Metadata request claiming 2^31-1 topics asks for ~150 GB; the
//! system allocator refuses, and a refused allocation aborts the process
//! (no unwinding, so `catch_unwind` cannot help). Upstream has open fixes;
//! until one lands we must not vendor their code, so we make the
//! reservation harmless instead: allocations of at least
//! [`HUGE_ALLOCATION_BYTES`] become `MAP_NORESERVE` anonymous mappings,
//! which reserve address space without committing memory. The decoder then
//! fails on the missing bytes, the `Vec` is dropped and the mapping is
//! returned. Nothing in seedlog legitimately allocates that much (requests
//! are capped at `request_bytes_max`), so no real memory is ever lent on
//! credit.
//!
//! Everything smaller goes to mimalloc, which costs about half the
//! instructions of glibc's malloc and free (they were ~13% of a simulation
//! and a quarter of the produce path) and keeps freed pages for reuse:
//! with glibc, every megabyte-sized request or response buffer was fresh
//! memory from the kernel, and its page faults a tenth of the broker's
//! time under a 1 KiB produce load (mimalloc there: +14-20% MB/s).
//! mimalloc's `realloc` copies where glibc's `mremap`s a mapped block, so
//! buffers that grow to megabytes are sized up front instead
//! (`framing::encode_response`).
//!
//! Layouts mimalloc's plain entry points already satisfy (alignment of at
//! most a word) go to `mi_malloc`, `mi_zalloc` and `mi_realloc`: the
//! `mimalloc` crate sends every layout through the `_aligned` variants,
//! whose checks were a third of the allocator's instructions in a
//! simulation.

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};

/// From this size up an allocation is a lazily-backed mapping.
pub const HUGE_ALLOCATION_BYTES: usize = 1 << 30;
const PAGE_BYTES: usize = 4096;
/// What every block of mimalloc's plain `mi_malloc` is aligned to: block
/// sizes are whole words, laid out from aligned page starts. (Not 16, its
/// `MI_MAX_ALIGN_SIZE`: a 24-byte bin's blocks are 8 apart, which is why
/// its own aligned path checks each candidate block.)
const PLAIN_ALIGN_BYTES: usize = std::mem::size_of::<usize>();

pub struct NoReserveHugeAllocations;

fn is_huge(layout: Layout) -> bool {
    layout.size() >= HUGE_ALLOCATION_BYTES && layout.align() <= PAGE_BYTES
}

/// Whether `mi_malloc(layout.size())` returns a block aligned as `layout`
/// asks.
fn is_plain(layout: Layout) -> bool {
    layout.align() <= PLAIN_ALIGN_BYTES
}

unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping touches no existing memory.
    let pointer = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if pointer == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        pointer.cast()
    }
}

unsafe impl GlobalAlloc for NoReserveHugeAllocations {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout) {
            // SAFETY: size is non-zero (>= HUGE_ALLOCATION_BYTES).
            unsafe { map(layout.size()) }
        } else if is_plain(layout) {
            // SAFETY: a plain block of this size is aligned as asked.
            unsafe { libmimalloc_sys::mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: forwarded with the caller's layout.
            unsafe { MiMalloc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout) {
            // Anonymous mappings are zero-filled.
            // SAFETY: as in `alloc`.
            unsafe { map(layout.size()) }
        } else if is_plain(layout) {
            // SAFETY: as in `alloc`.
            unsafe { libmimalloc_sys::mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: forwarded with the caller's layout.
            unsafe { MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        if is_huge(layout) {
            // SAFETY: `pointer` came from `map` with this exact size.
            let result = unsafe { libc::munmap(pointer.cast(), layout.size()) };
            debug_assert_eq!(result, 0, "munmap of our own mapping cannot fail");
        } else {
            // SAFETY: `pointer` came from mimalloc with this layout.
            unsafe { MiMalloc.dealloc(pointer, layout) }
        }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid layout for `new_size`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_huge(layout) && is_plain(new_layout) && !is_huge(new_layout) {
            // SAFETY: both sides are mimalloc's (`mi_free` and
            // `mi_realloc` take any of its blocks, aligned or not), and a
            // plain block of the new size is aligned as asked.
            return unsafe { libmimalloc_sys::mi_realloc(pointer.cast(), new_size).cast() };
        }
        if !is_huge(layout) && !is_huge(new_layout) {
            // SAFETY: both sides are mimalloc's.
            return unsafe { MiMalloc.realloc(pointer, layout, new_size) };
        }
        // SAFETY: a fresh block of the new layout, then a copy of the
        // smaller of the two sizes, then the old block returned.
        unsafe {
            let new_pointer = self.alloc(new_layout);
            if !new_pointer.is_null() {
                std::ptr::copy_nonoverlapping(pointer, new_pointer, layout.size().min(new_size));
                self.dealloc(pointer, layout);
            }
            new_pointer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_reservation_costs_no_memory_and_is_returned() {
        let a = NoReserveHugeAllocations;
        let layout = Layout::from_size_align(150 << 30, 8).unwrap();
        // SAFETY: paired alloc/dealloc with one layout; the block is only
        // written at its first page.
        unsafe {
            let pointer = a.alloc(layout);
            assert!(!pointer.is_null(), "150 GiB of address space, no memory");
            pointer.write(7);
            assert_eq!(pointer.read(), 7);
            a.dealloc(pointer, layout);
        }
    }

    #[test]
    fn plain_blocks_are_aligned_as_their_layouts_ask() {
        let a = NoReserveHugeAllocations;
        let mut blocks = Vec::new();
        // Every bin from 1 byte to 4 KiB, several blocks each, at every
        // alignment the plain path takes, then grown and shrunk.
        for size in 1..4096usize {
            for align in [1, 2, 4, 8] {
                let layout = Layout::from_size_align(size, align).unwrap();
                assert!(is_plain(layout));
                // SAFETY: each block is kept with its layout and freed once.
                let p = unsafe { a.alloc(layout) };
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                blocks.push((p, layout));
            }
        }
        assert!(!is_plain(Layout::from_size_align(64, 16).unwrap()));
        for (p, layout) in blocks {
            let grown = layout.size() * 3 + 5;
            // SAFETY: `p` is live with `layout`; the result with `grown`.
            let q = unsafe { a.realloc(p, layout, grown) };
            assert_eq!(q as usize % layout.align(), 0);
            let grown = Layout::from_size_align(grown, layout.align()).unwrap();
            // SAFETY: freed once, with the layout it has now.
            unsafe { a.dealloc(q, grown) };
        }
    }

    #[test]
    fn small_allocations_round_trip_through_realloc_into_huge_and_back() {
        let a = NoReserveHugeAllocations;
        let small = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: every block is used within its layout and freed once.
        unsafe {
            let p = a.alloc(small);
            p.write_bytes(9, 64);
            let huge = a.realloc(p, small, HUGE_ALLOCATION_BYTES);
            assert_eq!(huge.add(63).read(), 9);
            let huge_layout = Layout::from_size_align(HUGE_ALLOCATION_BYTES, 8).unwrap();
            let back = a.realloc(huge, huge_layout, 32);
            assert_eq!(back.add(31).read(), 9);
            a.dealloc(back, Layout::from_size_align(32, 8).unwrap());
        }
    }
}
