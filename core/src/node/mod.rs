//! The broker node: one state machine per process, driven through
//! `handle` / `poll_output` / `poll_timeout` / `handle_timeout`.

mod config;
mod io;

pub use config::NodeConfig;
pub use io::{ConnectionId, FlushId, Input, Output};

use crate::storage::{Storage, StorageError};
use crate::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("log: {0}")]
    Log(#[from] crate::log::LogError),
    #[error("invalid config: {0}")]
    Config(String),
    #[error("corrupt metadata: {0}")]
    Metadata(String),
}

pub struct Node<S: Storage> {
    storage: S,
}

impl<S: Storage> Node<S> {
    /// Opens every partition found in `storage` (running log recovery).
    pub fn new(_config: NodeConfig, storage: S, _rng_seed: u64, _now: Instant) -> Result<Node<S>, NodeError> {
        Ok(Node { storage })
    }
    pub fn handle(&mut self, _now: Instant, _input: Input) {
        todo!()
    }
    pub fn poll_output(&mut self) -> Option<Output> {
        todo!()
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
    pub fn handle_timeout(&mut self, _now: Instant) {
        todo!()
    }
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }
    pub fn into_storage(self) -> S {
        self.storage
    }
}

/// The ApiVersions answer for a request whose version the node does not
/// support: v0 with UNSUPPORTED_VERSION, as Kafka sends, so that the client
/// can retry with a version both sides know.
pub fn api_versions_unsupported_response() -> kafka_protocol::messages::ApiVersionsResponse {
    todo!()
}

/// Whether the node serves `api_key` at `api_version`.
pub fn supports(_api_key: kafka_protocol::messages::ApiKey, _api_version: i16) -> bool {
    todo!()
}
