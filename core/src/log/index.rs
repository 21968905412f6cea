//! Sparse in-memory indexes of one segment.
//!
//! Both are rebuilt on open by scanning batch headers; nothing is written
//! to disk. Kafka keeps `.index`/`.timeindex` files to avoid that scan, at
//! the price of index recovery code; a header scan reads 61 bytes per batch,
//! cheap enough for the segment sizes a simulation uses, and the adapter can
//! add index files later behind the same lookups.
//!
//! An entry is added before a batch whenever at least `index.interval.bytes`
//! were appended since the previous entry, so a lookup is followed by a
//! forward header scan of at most about that many bytes.

/// Relative base offset of a batch -> its byte position in the segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OffsetIndex {
    /// Strictly increasing in both fields.
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub(crate) fn append(&mut self, relative_offset: u32, position: u32) {
        if let Some(&(last_offset, last_position)) = self.entries.last() {
            assert!(
                relative_offset > last_offset && position > last_position,
                "offset index entries must grow: ({last_offset}, {last_position}) then ({relative_offset}, {position})"
            );
        }
        self.entries.push((relative_offset, position));
    }

    /// The position of the last indexed batch whose base offset is at or
    /// below `relative_offset`; 0 (the segment start) when there is none.
    pub(crate) fn lookup(&self, relative_offset: u32) -> u32 {
        let count = self
            .entries
            .partition_point(|&(offset, _)| offset <= relative_offset);
        if count == 0 {
            0
        } else {
            self.entries[count - 1].1
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn check_invariants(&self, segment_size_bytes: u64) {
        for pair in self.entries.windows(2) {
            assert!(pair[0].0 < pair[1].0, "offset index offsets increase");
            assert!(pair[0].1 < pair[1].1, "offset index positions increase");
        }
        if let Some(&(_, position)) = self.entries.last() {
            assert!(
                u64::from(position) < segment_size_bytes,
                "offset index points past the segment end"
            );
        }
    }
}

/// Largest timestamp of every batch before an indexed batch -> that batch's
/// relative base offset (which the offset index then maps to a position,
/// since both indexes gain entries at the same batches).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TimeIndex {
    /// Timestamps non-decreasing (a running maximum), offsets increasing.
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub(crate) fn append(&mut self, max_timestamp_before: i64, relative_offset: u32) {
        if let Some(&(last_timestamp, last_offset)) = self.entries.last() {
            assert!(
                max_timestamp_before >= last_timestamp,
                "time index timestamps are a running maximum"
            );
            assert!(relative_offset > last_offset, "time index offsets increase");
        }
        self.entries.push((max_timestamp_before, relative_offset));
    }

    /// A relative offset from which a forward scan finds the first batch
    /// whose max timestamp is >= `timestamp`: every batch before it is older.
    /// `None` means scan from the segment start.
    pub(crate) fn lookup(&self, timestamp: i64) -> Option<u32> {
        let count = self
            .entries
            .partition_point(|&(max_before, _)| max_before < timestamp);
        if count == 0 {
            None
        } else {
            Some(self.entries[count - 1].1)
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn check_invariants(&self) {
        for pair in self.entries.windows(2) {
            assert!(
                pair[0].0 <= pair[1].0,
                "time index timestamps never decrease"
            );
            assert!(pair[0].1 < pair[1].1, "time index offsets increase");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_the_floor_entry() {
        let mut index = OffsetIndex::default();
        assert_eq!(index.lookup(5), 0);
        index.append(10, 100);
        index.append(20, 250);
        assert_eq!(index.lookup(0), 0);
        assert_eq!(index.lookup(9), 0);
        assert_eq!(index.lookup(10), 100);
        assert_eq!(index.lookup(19), 100);
        assert_eq!(index.lookup(20), 250);
        assert_eq!(index.lookup(u32::MAX), 250);
    }

    #[test]
    fn time_lookup_skips_only_older_prefixes() {
        let mut index = TimeIndex::default();
        index.append(50, 10);
        index.append(50, 20);
        index.append(90, 30);
        assert_eq!(index.lookup(10), None);
        assert_eq!(index.lookup(50), None);
        assert_eq!(index.lookup(51), Some(20));
        assert_eq!(index.lookup(90), Some(20));
        assert_eq!(index.lookup(91), Some(30));
    }
}
