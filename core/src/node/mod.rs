//! The broker node: one state machine per process, driven through
//! `handle` / `poll_output` / `poll_timeout` / `handle_timeout`.

mod io;

pub use io::{ConnectionId, FlushId, Input, Output};
