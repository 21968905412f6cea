//! seedlog-net: the tokio TCP adapter that runs `seedlog-core` as a real
//! broker, and the file-backed [`Storage`](seedlog_core::storage::Storage).
//!
//! One OS thread owns the [`Node`](seedlog_core::node::Node): the core is
//! single-threaded by design, and its fsyncs must not stall the network
//! runtime; they run on a flusher thread ([`flusher`]) so that they do not
//! stall the node either. Connection tasks frame and decode requests and hand them to that
//! thread over a bounded channel; the node thread routes responses back to
//! each connection's bounded writer queue. In a cluster, the node's
//! requests to other nodes go out on one link per peer
//! ([`peers`](crate::peers)), whose answers come back over the same channel.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use seedlog_net::{Server, ServerConfig};
//! let config = ServerConfig::new("127.0.0.1:0".parse()?, "./seedlog-data");
//! let server = Server::bind(config).await?; // prints "seedlog listening on ..."
//! println!("port {}", server.local_addr().port());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

pub mod alloc;
pub mod cold_reads;
pub mod connection;
pub mod file_storage;
pub mod flusher;
pub mod framing;
pub mod fuzzing;
pub mod metrics;
pub mod node_thread;
pub mod page_cache;
pub mod peers;
pub mod response_frame;
pub mod server;

pub use file_storage::FileStorage;
pub use metrics::Metrics;
pub use peers::PeerLimits;
pub use server::{run, Server, ServerConfig};
