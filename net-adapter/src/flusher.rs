//! The flusher: performs the node's sync rounds on its own OS thread, so
//! the node thread keeps handling requests while the disk syncs.
//!
//! The node thread hands over one [`SyncRound`] at a time (taken from the
//! storage with `FileStorage::begin_sync`); flushes asked for meanwhile
//! wait on the node thread and form the next round, which is group commit
//! without a timer. The round's files are synced in parallel, on up to
//! `threads_max` threads, since a filesystem journal commits many
//! concurrent `fdatasync`s together while one after another each waits
//! for its own. The outcome comes back as [`NodeMessage::Synced`] on the
//! node's own channel, so the node hears of it between two requests.
//!
//! The flusher holds only a weak sender: it must not keep the channel
//! open, as the node thread stops when every sender is gone. A round done
//! after that is handed back through [`Flusher::finish`] instead.

use crate::file_storage::{SyncFile, SyncOutcome, SyncRound};
use crate::node_thread::NodeMessage;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use tokio::sync::mpsc;
use tracing::debug;

/// Upper bound on the threads one round syncs on.
pub const FLUSH_THREADS_MAX_LIMIT: usize = 256;

/// A round performed: it goes back to the node thread with its outcome.
#[derive(Debug)]
pub struct SyncDone {
    pub round_id: u64,
    pub round: SyncRound,
    pub outcome: SyncOutcome,
}

pub struct Flusher {
    /// Rounds to perform; room for one, as one round at most is out.
    rounds: Option<std_mpsc::SyncSender<(u64, SyncRound)>>,
    thread: Option<JoinHandle<Option<SyncDone>>>,
    threads_max: usize,
    sync_file: SyncFile,
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher")
            .field("threads_max", &self.threads_max)
            .finish()
    }
}

impl Flusher {
    /// Starts the flusher thread. `node` is where outcomes go.
    pub fn spawn(
        node: mpsc::WeakSender<NodeMessage>,
        threads_max: usize,
        sync_file: SyncFile,
    ) -> std::io::Result<Flusher> {
        assert!(
            (1..=FLUSH_THREADS_MAX_LIMIT).contains(&threads_max),
            "flush threads out of bounds: {threads_max}"
        );
        let (rounds, receiver) = std_mpsc::sync_channel::<(u64, SyncRound)>(1);
        let thread_sync_file = sync_file.clone();
        let thread = std::thread::Builder::new()
            .name("seedlog-flusher".to_string())
            .spawn(move || run(&receiver, &node, threads_max, &thread_sync_file))?;
        Ok(Flusher {
            rounds: Some(rounds),
            thread: Some(thread),
            threads_max,
            sync_file,
        })
    }

    pub fn threads_max(&self) -> usize {
        self.threads_max
    }

    /// How files are synced (for the rounds the node thread performs
    /// itself, at start and at shutdown).
    pub fn sync_file(&self) -> &SyncFile {
        &self.sync_file
    }

    /// Hands a round over. Never waits: the caller keeps at most one round
    /// out, and the channel has room for one.
    ///
    /// # Panics
    /// If a round is already waiting, or the flusher thread died (it only
    /// dies of a panic, which is a bug).
    pub fn submit(&self, round_id: u64, round: SyncRound) {
        let rounds = self.rounds.as_ref().expect("flusher not finished");
        match rounds.try_send((round_id, round)) {
            Ok(()) => {}
            Err(std_mpsc::TrySendError::Full(_)) => panic!("a second sync round handed over"),
            Err(std_mpsc::TrySendError::Disconnected(_)) => panic!("the flusher thread died"),
        }
    }

    /// Stops the thread once it has performed what it was handed; returns
    /// the outcome it could not deliver (every sender of the node's
    /// channel was gone by then), if any.
    pub fn finish(&mut self) -> Option<SyncDone> {
        self.rounds = None;
        let thread = self.thread.take()?;
        thread.join().expect("the flusher thread panicked")
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        // Not joined: a node thread unwinding must not wait on a sync.
        self.rounds = None;
    }
}

fn run(
    rounds: &std_mpsc::Receiver<(u64, SyncRound)>,
    node: &mpsc::WeakSender<NodeMessage>,
    threads_max: usize,
    sync_file: &SyncFile,
) -> Option<SyncDone> {
    while let Ok((round_id, round)) = rounds.recv() {
        let started = std::time::Instant::now();
        let outcome = round.perform(threads_max, sync_file);
        debug!(
            round_id,
            files = round.files(),
            dirs = round.dirs(),
            elapsed = ?started.elapsed(),
            "sync round performed"
        );
        let done = SyncDone {
            round_id,
            round,
            outcome,
        };
        // Waits while the channel is full: the node thread drains it.
        let undelivered = match node.upgrade() {
            Some(sender) => match sender.blocking_send(NodeMessage::Synced(Box::new(done))) {
                Ok(()) => None,
                Err(mpsc::error::SendError(message)) => match message {
                    NodeMessage::Synced(done) => Some(*done),
                    _ => unreachable!("sent a Synced message"),
                },
            },
            None => Some(done),
        };
        if let Some(done) = undelivered {
            // The node thread is stopping: it collects this in `finish`.
            return Some(done);
        }
    }
    None
}
