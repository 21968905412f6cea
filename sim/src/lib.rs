//! seedlog-sim: the deterministic simulator that drives seedlog-core.
//!
//! One seed derives a whole run: the swarm of parameters, the fault
//! schedule, every latency and every client decision. A discrete-event loop
//! over a virtual clock drives the sans-IO broker core; checkers from
//! INVARIANTS.md run after every event and on the history at the end.
//!
//! - [`scenario`]: TOML scenario files; [`bugs`]: the known-bug flags.
//! - [`world`]: the event loop, network, disk and process faults, clients.
//! - [`checker`]: end-of-run history checks.
//! - [`trace`]: JSON Lines traces and their hash; [`replay`] compares them.
//! - [`explore`]: many seeds in parallel; [`shrink`]: minimise a schedule.

pub mod bugs;
pub mod checker;
pub mod explore;
pub mod history;
pub mod replay;
pub mod scenario;
pub mod shrink;
pub mod swarm;
pub mod trace;
pub mod world;

pub use scenario::Scenario;
pub use world::{run, Bug, GroupStats, RunOptions, RunReport, Violation};
