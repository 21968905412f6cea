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
//!
//! Past the last entry, the active segment's offset index also lists every
//! batch (up to `TAIL_ENTRIES_MAX`): followers and consumers that keep up
//! read there, and with small batches the scan from the last entry crossed
//! ~20 headers per read (1.6% of a 3-broker simulation's instructions).

/// At most this many batches past the last sparse entry are listed (the
/// default 4 KiB of `index.interval.bytes` holds about 67 of the smallest): a bound on the
/// memory of a segment of tiny batches or a large interval.
const TAIL_ENTRIES_MAX: usize = 64;

/// Relative base offset of a batch -> its byte position in the segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OffsetIndex {
    /// Strictly increasing in both fields.
    entries: Vec<(u32, u32)>,
    /// The batches after the last entry, each as an entry would be (while
    /// the segment is active); strictly increasing, after `entries`.
    tail: Vec<(u32, u32)>,
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
        self.tail.clear();
    }

    /// A batch that got no entry: listed in the tail while there is room.
    /// Any batch is a valid start for the scan, so a full tail only makes
    /// the scans after it longer.
    pub(crate) fn note_unindexed(&mut self, relative_offset: u32, position: u32) {
        let last = self.tail.last().or(self.entries.last());
        if let Some(&(last_offset, last_position)) = last {
            assert!(
                relative_offset > last_offset && position > last_position,
                "batches are noted in order"
            );
        }
        if self.tail.len() < TAIL_ENTRIES_MAX {
            self.tail.push((relative_offset, position));
        }
    }

    /// The segment was rolled: its tail is no longer where readers are,
    /// and is freed (only active segments hold one).
    pub(crate) fn seal(&mut self) {
        self.tail = Vec::new();
    }

    /// Whether batches past the last entry are listed.
    pub(crate) fn has_tail(&self) -> bool {
        !self.tail.is_empty()
    }

    /// The position of the last listed batch whose base offset is at or
    /// below `relative_offset`; 0 (the segment start) when there is none.
    pub(crate) fn lookup(&self, relative_offset: u32) -> u32 {
        let floor = |list: &[(u32, u32)]| {
            let count = list.partition_point(|&(offset, _)| offset <= relative_offset);
            count.checked_sub(1).map(|last| list[last].1)
        };
        floor(&self.tail)
            .or_else(|| floor(&self.entries))
            .unwrap_or(0)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn check_invariants(&self, segment_size_bytes: u64) {
        assert!(
            self.tail.len() <= TAIL_ENTRIES_MAX,
            "offset index tail bounded"
        );
        // The tail continues the entries: together one increasing list.
        let junction = self.entries.last().zip(self.tail.first());
        for (a, b) in self
            .entries
            .windows(2)
            .chain(self.tail.windows(2))
            .map(|w| (w[0], w[1]))
            .chain(junction.map(|(a, b)| (*a, *b)))
        {
            assert!(a.0 < b.0, "offset index offsets increase");
            assert!(a.1 < b.1, "offset index positions increase");
        }
        if let Some(&(_, position)) = self.tail.last().or(self.entries.last()) {
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
    fn the_tail_lists_every_batch_after_the_last_entry() {
        let mut index = OffsetIndex::default();
        // Batches of 10 offsets and 100 bytes; an entry every fourth.
        for batch in 1..12u32 {
            let (offset, position) = (batch * 10, batch * 100);
            if batch % 4 == 0 {
                index.append(offset, position);
            } else {
                index.note_unindexed(offset, position);
            }
            index.check_invariants(u64::from(position) + 100);
        }
        assert_eq!(index.len(), 2, "entries at batches 4 and 8 only");
        assert!(index.has_tail());
        // Past the last entry, each batch is found where it starts.
        assert_eq!(index.lookup(80), 800);
        assert_eq!(index.lookup(95), 900);
        assert_eq!(index.lookup(109), 1000);
        assert_eq!(index.lookup(u32::MAX), 1100);
        // Before it, the sparse entries as ever: the tail of batches 1-3
        // went when batch 4 got its entry.
        assert_eq!(index.lookup(35), 0);
        assert_eq!(index.lookup(79), 400);
        index.seal();
        assert!(!index.has_tail());
        assert_eq!(index.lookup(109), 800, "sealed: back to the sparse entry");
    }

    #[test]
    fn a_full_tail_stops_listing_but_still_gives_a_start() {
        let mut index = OffsetIndex::default();
        let batches = TAIL_ENTRIES_MAX as u32 + 10;
        for batch in 1..=batches {
            index.note_unindexed(batch, batch * 70);
        }
        index.check_invariants(u64::from(batches) * 70 + 70);
        let last_listed = TAIL_ENTRIES_MAX as u32;
        assert_eq!(index.lookup(last_listed), last_listed * 70);
        assert_eq!(
            index.lookup(batches),
            last_listed * 70,
            "beyond the bound, the scan starts at the last listed batch"
        );
    }

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
