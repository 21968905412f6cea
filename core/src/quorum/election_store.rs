//! The durable election state: epoch, the vote cast in it, the leader known
//! in it. Kafka keeps it in `__cluster_metadata-0/quorum-state` as JSON; so
//! do we, through `Storage::write_atomic`, which is durable when it returns.
//! Every change is written before anything that depends on it leaves the
//! node (a vote response, a BeginQuorumEpoch), so a restart can never vote
//! twice in one epoch nor go back to an older epoch.

use crate::storage::{Storage, StorageError};
use serde::{Deserialize, Serialize};

/// Where the election state lives.
pub const QUORUM_STATE_PATH: &str = "__cluster_metadata-0/quorum-state";

/// The file is tiny; anything larger is not ours.
const QUORUM_STATE_BYTES_MAX: u64 = 64 * 1024;

/// Epoch, vote and leader, as persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ElectionState {
    pub epoch: i32,
    /// The candidate this node voted for in `epoch` (itself as a candidate).
    pub voted_id: Option<i32>,
    /// The leader of `epoch`, once known.
    pub leader_id: Option<i32>,
}

impl ElectionState {
    pub fn check_invariants(&self) {
        assert!(self.epoch >= 0, "epoch {} is negative", self.epoch);
        if self.epoch == 0 {
            assert!(
                self.leader_id.is_none() && self.voted_id.is_none(),
                "epoch 0 has no election: {self:?}"
            );
        }
    }
}

/// Kafka's `quorum-state` JSON (data version 0 field names).
#[derive(Serialize, Deserialize)]
struct QuorumStateJson {
    #[serde(rename = "leaderId")]
    leader_id: i32,
    #[serde(rename = "leaderEpoch")]
    leader_epoch: i32,
    #[serde(rename = "votedId")]
    voted_id: i32,
    data_version: i32,
}

/// Reads and writes [`ElectionState`]; remembers what it last wrote so the
/// node can assert that memory and disk agree.
#[derive(Debug, Clone)]
pub struct ElectionStore {
    persisted: ElectionState,
}

impl ElectionStore {
    /// Reads the state from `storage`, or epoch 0 with no vote when absent.
    pub fn open(storage: &mut dyn Storage) -> Result<ElectionStore, StorageError> {
        let persisted = read(storage)?.unwrap_or_default();
        persisted.check_invariants();
        Ok(ElectionStore { persisted })
    }

    pub fn persisted(&self) -> ElectionState {
        self.persisted
    }

    /// Durably replaces the state. The epoch never goes back, and within
    /// one epoch neither a vote nor a leader is ever replaced by another.
    pub fn write(
        &mut self,
        storage: &mut dyn Storage,
        state: ElectionState,
    ) -> Result<(), StorageError> {
        state.check_invariants();
        let old = self.persisted;
        assert!(
            state.epoch >= old.epoch,
            "election epoch goes back from {} to {}",
            old.epoch,
            state.epoch
        );
        if state.epoch == old.epoch {
            assert!(
                old.voted_id.is_none() || old.voted_id == state.voted_id,
                "vote changed within epoch {}: {old:?} -> {state:?}",
                state.epoch
            );
            assert!(
                old.leader_id.is_none() || old.leader_id == state.leader_id,
                "leader changed within epoch {}: {old:?} -> {state:?}",
                state.epoch
            );
        }
        if state == old {
            return Ok(());
        }
        let json = QuorumStateJson {
            leader_id: state.leader_id.unwrap_or(-1),
            leader_epoch: state.epoch,
            voted_id: state.voted_id.unwrap_or(-1),
            data_version: 0,
        };
        let bytes = serde_json::to_vec(&json).expect("quorum state serializes");
        storage.write_atomic(QUORUM_STATE_PATH, &bytes)?;
        self.persisted = state;
        Ok(())
    }
}

/// Reads the persisted state without opening a store (checkers use it).
pub fn read(storage: &mut dyn Storage) -> Result<Option<ElectionState>, StorageError> {
    if !storage.exists(QUORUM_STATE_PATH) {
        return Ok(None);
    }
    let len = storage.len(QUORUM_STATE_PATH)?;
    let bad = |message: String| StorageError::Io {
        path: QUORUM_STATE_PATH.to_string(),
        message,
    };
    if len > QUORUM_STATE_BYTES_MAX {
        return Err(bad(format!("quorum state of {len} bytes is implausible")));
    }
    let bytes = storage.read_at(QUORUM_STATE_PATH, 0, len as usize)?;
    let json: QuorumStateJson =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("malformed quorum state: {e}")))?;
    if json.leader_epoch < 0 {
        return Err(bad(format!("negative epoch {}", json.leader_epoch)));
    }
    Ok(Some(ElectionState {
        epoch: json.leader_epoch,
        voted_id: (json.voted_id >= 0).then_some(json.voted_id),
        leader_id: (json.leader_id >= 0).then_some(json.leader_id),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    #[test]
    fn state_survives_a_crash() {
        let mut storage = MemoryStorage::new();
        let mut store = ElectionStore::open(&mut storage).unwrap();
        assert_eq!(store.persisted(), ElectionState::default());
        let state = ElectionState {
            epoch: 3,
            voted_id: Some(2),
            leader_id: None,
        };
        store.write(&mut storage, state).unwrap();
        storage.crash();
        assert_eq!(
            ElectionStore::open(&mut storage).unwrap().persisted(),
            state
        );
    }

    #[test]
    #[should_panic(expected = "vote changed within epoch")]
    fn a_vote_is_never_replaced() {
        let mut storage = MemoryStorage::new();
        let mut store = ElectionStore::open(&mut storage).unwrap();
        let voted = |id| ElectionState {
            epoch: 1,
            voted_id: Some(id),
            leader_id: None,
        };
        store.write(&mut storage, voted(1)).unwrap();
        store.write(&mut storage, voted(2)).unwrap();
    }
}
