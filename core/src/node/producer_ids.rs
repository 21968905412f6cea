//! Producer ids for a standalone broker's InitProducerId, unique across
//! restarts (a cluster broker takes blocks from the controller instead:
//! `cluster::producer_id_blocks`).
//!
//! Ids are handed out from blocks; the end of the current block is written
//! durably before any id of it is given, so a crash can skip ids but never
//! hand one out twice.

use crate::storage::Storage;

use super::NodeError;

const PRODUCER_IDS_PATH: &str = "meta/producer-ids";
/// Ids per durable write.
const BLOCK_SIZE: i64 = 1000;

#[derive(Debug)]
pub struct ProducerIdAllocator {
    next: i64,
    /// Ids below this are covered by the durable high mark.
    block_end: i64,
}

impl ProducerIdAllocator {
    pub fn load(storage: &mut dyn Storage) -> Result<ProducerIdAllocator, NodeError> {
        let mark = if storage.exists(PRODUCER_IDS_PATH) {
            let len = storage.len(PRODUCER_IDS_PATH)? as usize;
            let bytes = storage.read_at(PRODUCER_IDS_PATH, 0, len)?;
            std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|mark| *mark >= 0)
                .ok_or_else(|| {
                    NodeError::Metadata(format!("{PRODUCER_IDS_PATH} holds no producer id mark"))
                })?
        } else {
            0
        };
        Ok(ProducerIdAllocator {
            next: mark,
            block_end: mark,
        })
    }

    pub fn allocate(&mut self, storage: &mut dyn Storage) -> Result<i64, NodeError> {
        if self.next == self.block_end {
            let end = self
                .block_end
                .checked_add(BLOCK_SIZE)
                .expect("producer ids never run out of i64");
            storage.write_atomic(PRODUCER_IDS_PATH, end.to_string().as_bytes())?;
            self.block_end = end;
        }
        let id = self.next;
        self.next += 1;
        assert!(
            self.next <= self.block_end,
            "ids stay within the durable block"
        );
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    #[test]
    fn ids_are_unique_across_a_crash() {
        let mut storage = MemoryStorage::new();
        let mut ids = ProducerIdAllocator::load(&mut storage).unwrap();
        let before: Vec<i64> = (0..5)
            .map(|_| ids.allocate(&mut storage).unwrap())
            .collect();
        assert_eq!(before, vec![0, 1, 2, 3, 4]);
        storage.crash();
        let mut ids = ProducerIdAllocator::load(&mut storage).unwrap();
        let after = ids.allocate(&mut storage).unwrap();
        assert!(after > 4, "no id is handed out twice: {after}");
    }
}
