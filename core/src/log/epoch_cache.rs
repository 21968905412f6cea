//! The leader epoch cache: at which offset each leader epoch began.
//!
//! A follower that comes back asks the leader, with OffsetForLeaderEpoch,
//! where its last epoch ended on the leader, and truncates to that point
//! instead of to its high watermark (KIP-101, KIP-279). The cache is
//! persisted in Kafka's `leader-epoch-checkpoint` text format:
//!
//! ```text
//! 0            <- version
//! 2            <- entry count
//! 0 0          <- epoch start_offset
//! 3 150
//! ```

use crate::storage::StorageError;

/// The file name under the partition directory.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

const CHECKPOINT_VERSION: &str = "0";
/// A checkpoint holding more entries than this is taken for garbage; a
/// partition sees a few leader changes an hour at worst.
const CHECKPOINT_ENTRIES_MAX: usize = 1 << 20;

/// `(epoch, start_offset)` entries, strictly increasing in both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|&(epoch, _)| epoch)
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: for `requested_epoch`,
    /// the largest known epoch at or below it and the offset where the next
    /// higher epoch starts (the log end when it is the latest epoch).
    /// `None` is Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET: an empty
    /// cache, an undefined request, or an epoch above every known one.
    pub fn end_offset_for_epoch(
        &self,
        requested_epoch: i32,
        log_end_offset: i64,
    ) -> Option<(i32, i64)> {
        if requested_epoch < 0 {
            return None;
        }
        let latest = self.latest_epoch()?;
        if requested_epoch == latest {
            return Some((latest, log_end_offset));
        }
        let higher = self
            .entries
            .partition_point(|&(epoch, _)| epoch <= requested_epoch);
        if higher == self.entries.len() {
            return None; // above every known epoch
        }
        let higher_start = self.entries[higher].1;
        if higher == 0 {
            // Below every known epoch: Kafka answers with the requested
            // epoch and the start of the first known one.
            Some((requested_epoch, higher_start))
        } else {
            Some((self.entries[higher - 1].0, higher_start))
        }
    }

    /// Records that `epoch` starts at `start_offset`. Entries starting at or
    /// after `start_offset` are dropped first: they can only be the first
    /// entry bumped to a log start offset that equals the log end.
    /// Returns whether the cache changed.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        assert!(epoch >= 0, "leader epochs are non-negative, got {epoch}");
        assert!(
            start_offset >= 0,
            "offsets are non-negative, got {start_offset}"
        );
        if let Some(latest) = self.latest_epoch() {
            assert!(
                epoch >= latest,
                "epoch {epoch} assigned after newer epoch {latest}"
            );
            if epoch == latest {
                return false;
            }
        }
        while self
            .entries
            .last()
            .is_some_and(|&(_, start)| start >= start_offset)
        {
            self.entries.pop();
        }
        self.entries.push((epoch, start_offset));
        true
    }

    /// Drops entries starting at or beyond `end_offset` (the log was cut
    /// there). Returns whether the cache changed.
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let keep = self
            .entries
            .partition_point(|&(_, start)| start < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log now starts at `start_offset`: entries wholly before it go,
    /// and the entry holding it is moved up to start there (Kafka's
    /// `truncateFromStart`). Returns whether the cache changed.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let at_or_below = self
            .entries
            .partition_point(|&(_, start)| start <= start_offset);
        if at_or_below == 0 {
            return false;
        }
        let holder = at_or_below - 1;
        let changed = holder > 0 || self.entries[holder].1 != start_offset;
        self.entries.drain(..holder);
        self.entries[0].1 = start_offset;
        changed
    }

    pub(crate) fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    pub(crate) fn to_checkpoint(&self) -> String {
        let mut out = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for &(epoch, start) in &self.entries {
            out.push_str(&format!("{epoch} {start}\n"));
        }
        out
    }

    /// Parses a checkpoint; a malformed one is a storage error (the file is
    /// written atomically, so garbage means the disk or an operator broke it).
    pub(crate) fn from_checkpoint(
        path: &str,
        text: &[u8],
    ) -> Result<LeaderEpochCache, StorageError> {
        let bad = |why: &str| StorageError::Io {
            path: path.to_string(),
            message: format!("malformed leader epoch checkpoint: {why}"),
        };
        let text = std::str::from_utf8(text).map_err(|_| bad("not utf-8"))?;
        let mut lines = text.lines();
        if lines.next() != Some(CHECKPOINT_VERSION) {
            return Err(bad("unknown version"));
        }
        let count: usize = lines
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| bad("no entry count"))?;
        if count > CHECKPOINT_ENTRIES_MAX {
            return Err(bad("too many entries"));
        }
        let mut cache = LeaderEpochCache::default();
        for _ in 0..count {
            let line = lines
                .next()
                .ok_or_else(|| bad("fewer entries than counted"))?;
            let mut fields = line.split_whitespace();
            let epoch: i32 = fields
                .next()
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| bad("bad epoch"))?;
            let start: i64 = fields
                .next()
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| bad("bad start offset"))?;
            if fields.next().is_some() || epoch < 0 || start < 0 {
                return Err(bad("bad entry"));
            }
            if let Some(&(last_epoch, last_start)) = cache.entries.last() {
                if epoch <= last_epoch || start <= last_start {
                    return Err(bad("entries not strictly increasing"));
                }
            }
            cache.entries.push((epoch, start));
        }
        if lines.any(|line| !line.trim().is_empty()) {
            return Err(bad("more entries than counted"));
        }
        Ok(cache)
    }

    pub(crate) fn check_invariants(&self, log_start_offset: i64, log_end_offset: i64) {
        for pair in self.entries.windows(2) {
            assert!(
                pair[0].0 < pair[1].0 && pair[0].1 < pair[1].1,
                "epoch cache strictly increasing: {:?}",
                self.entries
            );
        }
        if let Some(&(_, first_start)) = self.entries.first() {
            assert!(
                first_start >= log_start_offset,
                "epoch cache starts at {first_start}, below log start {log_start_offset}"
            );
        }
        if let Some(&(_, last_start)) = self.entries.last() {
            assert!(
                last_start <= log_end_offset,
                "epoch cache entry at {last_start} beyond log end {log_end_offset}"
            );
        }
    }
}

/// What [`crate::log::PartitionLog::epoch_cache`] hands out: the cache
/// together with the log end, which OffsetForLeaderEpoch answers need.
#[derive(Debug, Clone, Copy)]
pub struct EpochCacheView<'a> {
    pub(crate) cache: &'a LeaderEpochCache,
    pub(crate) log_end_offset: i64,
}

impl<'a> EpochCacheView<'a> {
    pub fn entries(&self) -> &'a [(i32, i64)] {
        self.cache.entries()
    }
    pub fn latest_epoch(&self) -> Option<i32> {
        self.cache.latest_epoch()
    }
    /// See [`LeaderEpochCache::end_offset_for_epoch`].
    pub fn end_offset_for_epoch(&self, requested_epoch: i32) -> Option<(i32, i64)> {
        self.cache
            .end_offset_for_epoch(requested_epoch, self.log_end_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::default();
        for &(epoch, start) in entries {
            assert!(cache.assign(epoch, start));
        }
        cache
    }

    #[test]
    fn end_offset_follows_kafka_semantics() {
        let c = cache(&[(1, 0), (3, 100), (6, 250)]);
        assert_eq!(c.end_offset_for_epoch(-1, 300), None);
        assert_eq!(c.end_offset_for_epoch(0, 300), Some((0, 0)));
        assert_eq!(c.end_offset_for_epoch(1, 300), Some((1, 100)));
        assert_eq!(c.end_offset_for_epoch(2, 300), Some((1, 100)));
        assert_eq!(c.end_offset_for_epoch(3, 300), Some((3, 250)));
        assert_eq!(c.end_offset_for_epoch(5, 300), Some((3, 250)));
        assert_eq!(c.end_offset_for_epoch(6, 300), Some((6, 300)));
        assert_eq!(c.end_offset_for_epoch(7, 300), None);
        assert_eq!(LeaderEpochCache::default().end_offset_for_epoch(0, 5), None);
    }

    #[test]
    fn truncation_from_both_ends() {
        let mut c = cache(&[(1, 0), (3, 100), (6, 250)]);
        assert!(c.truncate_from_start(120));
        assert_eq!(c.entries(), &[(3, 120), (6, 250)]);
        assert!(!c.truncate_from_start(120));
        assert!(c.truncate_from_end(250));
        assert_eq!(c.entries(), &[(3, 120)]);
        assert!(!c.truncate_from_end(250));
    }

    #[test]
    fn checkpoint_round_trips_and_rejects_garbage() {
        let c = cache(&[(0, 0), (3, 150)]);
        let text = c.to_checkpoint();
        assert_eq!(text, "0\n2\n0 0\n3 150\n");
        assert_eq!(
            LeaderEpochCache::from_checkpoint("p", text.as_bytes()),
            Ok(c)
        );
        for bad in [
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\n0 x\n",
            "0\n2\n3 0\n1 5\n",
            "0\n0\n1 1\n",
        ] {
            assert!(
                LeaderEpochCache::from_checkpoint("p", bad.as_bytes()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "assigned after newer epoch")]
    fn epochs_never_go_back() {
        let mut c = cache(&[(5, 0)]);
        c.assign(4, 10);
    }
}
