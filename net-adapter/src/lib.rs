//! seedlog-net: the tokio TCP adapter that runs `seedlog-core` as a real
//! broker, and the file-backed [`Storage`](seedlog_core::storage::Storage).
//!
//! One OS thread owns the [`Node`](seedlog_core::node::Node): the core is
//! single-threaded by design, and its fsyncs must not stall the network
//! runtime. Connection tasks frame and decode requests and hand them to that
//! thread over a bounded channel; the node thread routes responses back to
//! each connection's bounded writer queue.

pub mod file_storage;

pub use file_storage::FileStorage;
