#![no_main]
//! See `seedlog_net::fuzzing::node_requests`.

/// The broker's allocator: the decoder's huge reservations for array counts
/// off the wire are lazily-backed mappings there, not an abort.
#[global_allocator]
static ALLOCATOR: seedlog_net::alloc::NoReserveHugeAllocations =
    seedlog_net::alloc::NoReserveHugeAllocations;

libfuzzer_sys::fuzz_target!(|data: &[u8]| seedlog_net::fuzzing::node_requests(data));
