//! Record batches (magic 2) kept as bytes. TO BE WRITTEN (helper A).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("corrupt batch: {0}")]
    Corrupt(String),
}
