//! seedlog-core: the sans-IO broker core of seedlog.
//!
//! # The contract
//!
//! The core touches no socket, file, clock, thread or global RNG. A driver
//! (the simulator in `seedlog-sim`, or the TCP adapter in `seedlog-net`)
//! owns the world and talks to a [`Node`] through four calls:
//!
//! 1. `node.handle(now, input)`: a client request, a flush completion, a
//!    closed connection. The node mutates its state; it does no I/O except
//!    through its [`Storage`](storage::Storage), whose writes are not durable
//!    until the driver syncs them.
//! 2. `node.poll_output()`: drain until `None` after every `handle*` call.
//!    Outputs are responses to send and flushes to perform.
//! 3. `node.poll_timeout()`: the next instant at which the node wants
//!    `handle_timeout` (long-poll fetch deadlines, retention checks).
//! 4. `node.handle_timeout(now)`.
//!
//! Mutate, then drain. Time is always an argument ([`time::Instant`]);
//! randomness comes from a ChaCha RNG seeded by the driver. Iteration order
//! that anyone can observe comes from `BTreeMap`s, so the same inputs give
//! the same outputs, byte for byte.
//!
//! The vocabulary of messages is Kafka's own, the `kafka-protocol` crate's
//! request and response types; the adapter only frames and encodes them.

pub mod batch;
pub mod controller;
pub mod group;
pub mod log;
pub mod node;
pub mod partition;
pub mod quorum;
pub mod storage;
pub mod time;

pub use time::Instant;
