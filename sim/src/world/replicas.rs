//! Replica checks of cluster scenarios, from each broker's disk.
//!
//! The core's getters say where a partition's log starts and ends and its
//! high watermark (`Node::partition_offsets`), not what the log holds nor
//! who leads. The simulator owns the disks, though, and a partition's log
//! is Kafka's own layout (`<topic>-<partition>/<base offset:020>.log`
//! holding v2 record batches), so the world keeps a mirror of every
//! replica as batch signatures (base and last offset, partition leader
//! epoch, CRC), read incrementally and never written. From the mirrors:
//!
//! - `log_matching` (INVARIANTS.md): any two replicas agree on every batch
//!   below both of their high watermarks. Checked against one reference
//!   per partition: the first replica to hold a batch below its high
//!   watermark sets it, every other must match.
//! - `single_leader_per_epoch`: a successful Produce response from broker
//!   B for a batch stamped with leader epoch E says B led the partition in
//!   E; no two brokers may do so for one E. (Not for idempotent batches:
//!   a retry's duplicate is acknowledged at the original's offset, which
//!   an earlier leader may have written.)
//! - `monotonic_leader_epoch`: the epochs a broker acknowledges writes in,
//!   per partition, never go back.
//!
//! And from the core's getters (`Node::replica_role`,
//! `Node::cluster_status`): `single_leader_per_epoch` and
//! `monotonic_leader_epoch` by the brokers' own word too, `leader_in_isr`,
//! and for the controller quorum `single_leader` and `monotonic_epoch`.
//!
//! Reads go through `Storage` (`&mut` for the trait's sake; nothing
//! changes) and are bounded: a resynchronisation after truncation walks
//! back at most the batches the mirror holds.

use super::*;
use seedlog_core::batch::{BatchHeader, BATCH_HEADER_LEN};
use seedlog_core::quorum::{Role, SnapshotId};

/// One batch as the mirror knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BatchSig {
    pub(super) last_offset: i64,
    pub(super) epoch: i32,
    pub(super) crc: u32,
    /// Written by an idempotent producer: a retry of it is acknowledged
    /// again, by whichever broker leads then, at its original offset.
    idempotent: bool,
    /// Where it sits: the segment's base offset and the byte position.
    segment: i64,
    position: u64,
    size: u64,
}

impl BatchSig {
    fn same_batch(&self, other: &BatchSig) -> bool {
        (self.last_offset, self.epoch, self.crc) == (other.last_offset, other.epoch, other.crc)
    }
}

/// One replica's log, as batch signatures.
#[derive(Debug, Default)]
pub(super) struct Mirror {
    batches: BTreeMap<i64, BatchSig>,
    /// (log start, log end) when last synced: unchanged, nothing to read.
    /// (Truncation changes the end between events: a follower truncates
    /// on a fetch answer that carries no records.)
    synced: Option<(i64, i64)>,
    /// Segment base offset -> its path, so hot paths format none.
    paths: BTreeMap<i64, String>,
    /// Bumped whenever batches leave the mirror (truncation, a crash, a
    /// corruption): comparisons made before no longer hold.
    generation: u64,
}

/// How far `strong_isr` compared an ISR member with its leader, and under
/// which mirrors: while neither mirror lost a batch since, the batches
/// below `below` need no second look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IsrCompared {
    leader: BrokerId,
    epoch: i32,
    leader_generation: u64,
    member_generation: u64,
    below: i64,
}

fn segment_path(dir: &str, base: i64) -> String {
    format!("{dir}/{base:020}.log")
}

impl Mirror {
    fn path(&mut self, dir: &str, base: i64) -> &str {
        // Bounded by the segments the log ever had.
        self.paths
            .entry(base)
            .or_insert_with(|| segment_path(dir, base))
    }
}

fn segment_base(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(".log")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn header_at(storage: &MemoryStorage, path: &str, position: u64) -> Option<BatchHeader> {
    let bytes = storage.peek_at(path, position, BATCH_HEADER_LEN)?;
    BatchHeader::parse(bytes).ok()
}

impl Mirror {
    /// Brings the mirror up to the log's end. Returns the lowest offset
    /// whose batch was dropped because the log no longer holds it
    /// (truncation, a crash, retention), if any.
    ///
    /// Inlined test, out-of-line work: it runs for every partition after
    /// every event, and nearly always neither end moved.
    #[inline]
    fn sync(
        &mut self,
        storage: &mut MemoryStorage,
        dir: &str,
        log_start: i64,
        log_end: i64,
    ) -> Option<i64> {
        if self.synced == Some((log_start, log_end)) {
            return None;
        }
        self.sync_moved(storage, dir, log_start, log_end)
    }

    #[inline(never)]
    fn sync_moved(
        &mut self,
        storage: &mut MemoryStorage,
        dir: &str,
        log_start: i64,
        log_end: i64,
    ) -> Option<i64> {
        self.synced = Some((log_start, log_end));
        // Retention deleted the oldest segments: forget their batches (and
        // paths). Not a loss that invalidates comparisons above it, so the
        // generation stays.
        while let Some(entry) = self.batches.first_entry() {
            if entry.get().last_offset >= log_start {
                break;
            }
            entry.remove();
        }
        if let Some((_, first)) = self.batches.first_key_value() {
            // Only when a segment before the first batch's is remembered
            // (a split allocates a new map, and nearly every sync has none).
            if self
                .paths
                .first_key_value()
                .is_some_and(|(base, _)| *base < first.segment)
            {
                let keep = self.paths.split_off(&first.segment);
                self.paths = keep;
            }
        }
        let mut dropped_from = None;
        // Walk back from the newest batch to one the log still holds.
        while let Some((&base, sig)) = self.batches.last_key_value() {
            let sig = *sig;
            let path = self.path(dir, sig.segment);
            let held = header_at(storage, path, sig.position).is_some_and(|h| {
                h.base_offset() == base
                    && h.crc() == sig.crc
                    && h.partition_leader_epoch() == sig.epoch
                    && h.last_offset() == sig.last_offset
            });
            if held {
                break;
            }
            self.batches.pop_last();
            self.generation += 1;
            dropped_from = Some(base);
        }
        // Scan forward from the end of the newest batch.
        let (mut segment, mut position) = match self.batches.last_key_value() {
            Some((_, sig)) => (sig.segment, sig.position + sig.size),
            None => match first_segment(storage, dir) {
                Some(s) => (s, 0),
                None => return dropped_from,
            },
        };
        let mut next_offset = self
            .batches
            .last_key_value()
            .map_or(0, |(_, s)| s.last_offset + 1);
        // Bounded: each round reads one segment to its end or moves to the
        // next segment, and a log has finitely many.
        for _ in 0..100_000 {
            let path = self.path(dir, segment);
            // The file's rest, borrowed: the whole of it up to its end.
            let Some(bytes) = storage.peek_at(path, position, usize::MAX) else {
                break;
            };
            if !bytes.is_empty() {
                for (at, header) in BatchIter::new(bytes) {
                    self.batches.insert(
                        header.base_offset(),
                        BatchSig {
                            last_offset: header.last_offset(),
                            epoch: header.partition_leader_epoch(),
                            crc: header.crc(),
                            idempotent: header.producer_id() >= 0,
                            segment,
                            position: position + at as u64,
                            size: header.total_size() as u64,
                        },
                    );
                    next_offset = header.last_offset() + 1;
                }
            }
            if next_offset >= log_end {
                break;
            }
            match next_segment(storage, dir, segment) {
                Some(s) => {
                    segment = s;
                    position = 0;
                }
                None => break,
            }
        }
        dropped_from
    }

    /// Forgets everything (the broker's disk was replaced by a crash).
    fn clear(&mut self) -> Option<i64> {
        let first = self.batches.first_key_value().map(|(b, _)| *b);
        self.batches.clear();
        self.synced = None;
        self.generation += 1;
        first
    }
}

fn segments(storage: &mut MemoryStorage, dir: &str) -> Vec<i64> {
    storage
        .list(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| segment_base(n))
        .collect()
}

fn first_segment(storage: &mut MemoryStorage, dir: &str) -> Option<i64> {
    segments(storage, dir).into_iter().min()
}

fn next_segment(storage: &mut MemoryStorage, dir: &str, after: i64) -> Option<i64> {
    segments(storage, dir)
        .into_iter()
        .filter(|s| *s > after)
        .min()
}

/// One partition of one broker as `Node::replica_view` reported it, the
/// ISR copied out (see `Views`).
#[derive(Debug, Clone, Copy)]
pub(super) struct ViewCopy {
    pub(super) log_start_offset: i64,
    pub(super) high_watermark: i64,
    pub(super) log_end_offset: i64,
    pub(super) leader_epoch: i32,
    /// Where the ISR sits in `Views::isrs`, when the broker leads.
    isr: Option<(usize, usize)>,
    /// The node listed it as touched (`Node::drain_touched`) since the
    /// last walk. A full walk reads the others too, and they must be as
    /// they were: the walks between looked at touched partitions only.
    pub(super) touched: bool,
}

/// The workload partitions of one broker an event's checks look at, read
/// once: the per-event checks of `check_broker` and `check_replicas` share
/// it. Only hosted partitions are read (in a large cluster a broker hosts a
/// few hundred of ten thousand), and between full walks only those the node
/// says it touched (an event touches a few). Reused buffers.
#[derive(Debug, Default)]
pub(super) struct Views {
    /// (index in `tps`, its view), by ascending index.
    pub(super) hosted: Vec<(usize, ViewCopy)>,
    /// The leaders' ISRs, in the core's (ascending) order.
    isrs: Vec<i32>,
}

impl Views {
    /// Reads every partition of the workload's `topics` ((name, index in
    /// `tps` of its partition 0, partition count), in `tps` order) that
    /// `node` hosts; `touched` (ascending) says which the node touched.
    pub(super) fn read(
        &mut self,
        node: &Node<MemoryStorage>,
        topics: &[(String, usize, i32)],
        touched: &[usize],
    ) {
        self.hosted.clear();
        self.isrs.clear();
        for (topic, base, count) in topics {
            let Some(replicas) = node.topic_replicas(topic) else {
                continue;
            };
            for (partition, v) in replicas.views() {
                // Ascending: nothing past the workload's partitions.
                if partition >= *count {
                    break;
                }
                if partition < 0 {
                    continue;
                }
                let i = base + partition as usize;
                let touched = touched.binary_search(&i).is_ok();
                self.push(i, v, touched);
            }
        }
        debug_assert!(self.hosted.windows(2).all(|w| w[0].0 < w[1].0));
    }

    /// Reads the partitions `listed` (indexes in `tps`, ascending), which
    /// the node touched and so hosts.
    pub(super) fn read_listed(&mut self, node: &Node<MemoryStorage>, tps: &[Tp], listed: &[usize]) {
        self.hosted.clear();
        self.isrs.clear();
        for &i in listed {
            let (topic, partition) = &tps[i];
            let v = node
                .replica_view(topic, *partition)
                .expect("a partition the node touched is hosted there");
            self.push(i, v, true);
        }
    }

    fn push(&mut self, i: usize, v: seedlog_core::node::ReplicaView<'_>, touched: bool) {
        let isr = v.leader_isr.map(|isr| {
            let start = self.isrs.len();
            self.isrs.extend(isr.iter().copied());
            (start, self.isrs.len())
        });
        let view = ViewCopy {
            log_start_offset: v.log_start_offset,
            high_watermark: v.high_watermark,
            log_end_offset: v.log_end_offset,
            leader_epoch: v.leader_epoch,
            isr,
            touched,
        };
        self.hosted.push((i, view));
    }

    /// The ISR of a view, if its broker leads.
    pub(super) fn isr(&self, view: &ViewCopy) -> Option<&[i32]> {
        view.isr.map(|(start, end)| &self.isrs[start..end])
    }
}

/// A partition's leader as it reported itself last.
#[derive(Debug, Clone)]
pub(super) struct LeaderView {
    pub(super) broker: BrokerId,
    pub(super) epoch: i32,
    pub(super) high_watermark: i64,
    /// The ISR it holds, by broker index.
    pub(super) isr: Vec<BrokerId>,
}

/// The replica checkers' state of one replica (a broker's copy of a
/// partition), kept together: a check reads all of it, and as five arrays
/// over a 100-broker cluster's million (broker, partition) pairs it was
/// five cache misses per replica checked, most of the checks' time.
struct ReplicaSeen {
    mirror: Mirror,
    /// Offsets below this were compared.
    verified_upto: i64,
    /// The newest epoch the broker acknowledged in.
    epoch_max: i32,
    /// The newest leader epoch `Node::replica_role` reported in the
    /// broker's current life.
    role_epoch: i32,
    /// The newest epoch the broker led in, any life.
    led_epoch: i32,
}

impl Default for ReplicaSeen {
    fn default() -> ReplicaSeen {
        ReplicaSeen {
            mirror: Mirror::default(),
            verified_upto: 0,
            epoch_max: -1,
            role_epoch: -1,
            led_epoch: -1,
        }
    }
}

/// The replica checkers' state.
pub(super) struct ReplicaChecks {
    /// [broker][partition]: what the checkers know of that replica.
    replicas: Vec<Vec<ReplicaSeen>>,
    /// Per partition: its log directory (`<topic>-<partition>`).
    dirs: Vec<String>,
    /// Per partition: base offset -> (the first broker seen holding it
    /// below its high watermark, the batch).
    committed: Vec<BTreeMap<i64, (BrokerId, BatchSig)>>,
    /// Per partition: leader epoch -> the broker that acknowledged writes
    /// in it.
    epoch_leader: Vec<BTreeMap<i32, BrokerId>>,
    /// Successful Produce responses of the current event: (broker,
    /// partition, base offset), checked once the mirror has caught up.
    acked: Vec<(BrokerId, usize, i64)>,
    /// Per partition: the newest leader as its leader reports itself.
    pub(super) leader_view: Vec<Option<LeaderView>>,
    /// Quorum epoch -> its leader.
    quorum_leader: BTreeMap<i32, BrokerId>,
    /// Per broker: the newest quorum epoch seen (persisted, so across
    /// lives).
    quorum_epoch: Vec<i32>,
    /// Per broker: its metadata log (`__cluster_metadata-0`), read from its
    /// disk whether it runs or not.
    meta_mirrors: Vec<Mirror>,
    /// The metadata log's committed batches: base offset -> (the first
    /// broker seen holding it below its quorum high watermark, the batch).
    meta_committed: BTreeMap<i64, (BrokerId, BatchSig)>,
    /// Per broker: metadata offsets below this were compared.
    meta_verified: Vec<i64>,
    /// Per broker: the metadata log start on its disk and the snapshot
    /// there, once checked (its file is whole and valid).
    meta_snapshot_checked: Vec<(i64, Option<SnapshotId>)>,
    /// Metadata snapshots seen on any disk: end offset -> (the first
    /// broker seen holding it, its epoch, its payload). Every node's
    /// snapshot at one offset holds the same image.
    meta_snapshots: BTreeMap<i64, (BrokerId, i32, bytes::Bytes)>,
    /// Per broker: the metadata offset its image had applied when last
    /// checked (-1: none).
    meta_applied_seen: Vec<i64>,
    /// Metadata image digests by the offset applied last: (the first
    /// broker seen there, the CRC32C of the image as a snapshot holds it).
    /// A snapshot ending at `e` is the image after `e - 1`.
    meta_images: BTreeMap<i64, (BrokerId, u32)>,
    /// The highest quorum high watermark a quorum leader reported.
    quorum_hw_max: i64,
    /// [partition]: (member broker, the last `strong_isr` comparison with
    /// it), one entry per broker ever compared (a handful: a
    /// `[partition][broker]` table was mostly empty).
    isr_compared: Vec<Vec<(BrokerId, IsrCompared)>>,
    /// [partition][member broker]: the broker lost power (its page cache)
    /// while its leader's ISR named it, and no leader's ISR has left it out
    /// since. See `World::check_isr`.
    isr_power_lost: Vec<Vec<bool>>,
    /// Per partition: a replica of it was walked (touched) since the last
    /// ISR check, which is a function of the replicas' views and mirrors:
    /// an ISR check between faults looks at these only.
    isr_due: Vec<bool>,
    /// The partitions with `isr_due` set, each once.
    isr_due_list: Vec<usize>,
}

impl ReplicaChecks {
    pub(super) fn new(brokers: usize, tps: &[Tp]) -> ReplicaChecks {
        let dirs: Vec<String> = tps.iter().map(|(t, p)| format!("{t}-{p}")).collect();
        let tps = tps.len();
        ReplicaChecks {
            dirs,
            replicas: (0..brokers)
                .map(|_| (0..tps).map(|_| ReplicaSeen::default()).collect())
                .collect(),
            committed: vec![BTreeMap::new(); tps],
            epoch_leader: vec![BTreeMap::new(); tps],
            acked: Vec::new(),
            leader_view: vec![None; tps],
            quorum_leader: BTreeMap::new(),
            quorum_epoch: vec![-1; brokers],
            meta_mirrors: (0..brokers).map(|_| Mirror::default()).collect(),
            meta_committed: BTreeMap::new(),
            meta_verified: vec![0; brokers],
            meta_snapshot_checked: vec![(0, None); brokers],
            meta_snapshots: BTreeMap::new(),
            meta_applied_seen: vec![-1; brokers],
            meta_images: BTreeMap::new(),
            quorum_hw_max: 0,
            isr_compared: vec![Vec::new(); tps],
            isr_power_lost: vec![vec![false; brokers]; tps],
            isr_due: vec![false; tps],
            isr_due_list: Vec::new(),
        }
    }

    /// Broker `b`'s metadata image after applying `offset` has `digest`:
    /// the broker first seen with a different one there, if any.
    fn note_image(&mut self, offset: i64, b: BrokerId, digest: u32) -> Option<BrokerId> {
        assert!(offset >= 0, "an image after no record is not compared");
        match self.meta_images.get(&offset) {
            None => {
                self.meta_images.insert(offset, (b, digest));
                None
            }
            Some(&(other, theirs)) if theirs != digest => Some(other),
            Some(_) => None,
        }
    }

    /// Broker `b` leads `tp` in `epoch` (its own word or an acknowledged
    /// write's stamp): no other broker may lead in that epoch.
    fn led(&mut self, b: BrokerId, tp: usize, epoch: i32) -> Option<BrokerId> {
        match self.epoch_leader[tp].get(&epoch) {
            Some(other) if *other != b => Some(*other),
            Some(_) => None,
            None => {
                self.epoch_leader[tp].insert(epoch, b);
                None
            }
        }
    }

    /// A replica of partition `i` changed: the next ISR check looks at it.
    fn isr_due(&mut self, i: usize) {
        if !std::mem::replace(&mut self.isr_due[i], true) {
            self.isr_due_list.push(i);
        }
    }

    /// Retention deleted partition `tp` below `floor` on every replica:
    /// the committed batches there can be compared with no one any more.
    pub(super) fn forget_below(&mut self, tp: usize, floor: i64) {
        let committed = &mut self.committed[tp];
        let keep = committed.split_off(&floor);
        // A batch that straddles the floor stays: a replica may still hold it.
        let straddling = committed
            .last_key_value()
            .filter(|(_, (_, sig))| sig.last_offset >= floor)
            .map(|(base, entry)| (*base, *entry));
        *committed = keep;
        if let Some((base, entry)) = straddling {
            committed.insert(base, entry);
        }
    }

    pub(super) fn produce_acked(&mut self, broker: BrokerId, tp: usize, base_offset: i64) {
        // Bounded by the responses one event can emit.
        assert!(
            self.acked.len() < OUTPUTS_PER_INPUT_MAX,
            "acks pile up unchecked"
        );
        self.acked.push((broker, tp, base_offset));
    }

    /// The broker lost its disk's unsynced tail (or restarted): its mirror
    /// is rebuilt from what the disk holds now.
    pub(super) fn broker_restarted(&mut self, broker: BrokerId) {
        for r in &mut self.replicas[broker] {
            r.mirror.clear();
            r.verified_upto = 0;
            r.role_epoch = -1;
        }
        self.meta_mirrors[broker].clear();
        self.meta_verified[broker] = 0;
    }

    /// The broker lost power: its unsynced records are gone, including any
    /// below a high watermark its leader counted it for (Kafka's default
    /// durability acknowledges before fsync). Where its leader's ISR names
    /// it, that membership now belongs to an earlier life, until a leader
    /// leaves it out (fenced, shrunk, or removed by the controller when the
    /// new incarnation registers unclean, KIP-966).
    pub(super) fn broker_lost_power(&mut self, broker: BrokerId) {
        for (i, view) in self.leader_view.iter().enumerate() {
            let Some(view) = view else {
                continue;
            };
            if view.broker != broker && view.isr.contains(&broker) {
                self.isr_power_lost[i][broker] = true;
            }
        }
    }
}

impl World {
    /// The test-only `corrupt_replica` fault: broker `b`'s newest batch of
    /// partition `tp` below its high watermark gets a max timestamp one
    /// millisecond later and a recomputed CRC. The mirror forgets what it
    /// compared of that replica, so the next check reads the disk again.
    pub(super) fn corrupt_replica(&mut self, b: BrokerId, tp: usize) -> Result<(), &'static str> {
        let cluster = self.cluster.as_mut().ok_or("not a cluster")?;
        let BrokerState::Up(node) = &mut self.brokers[b].state else {
            return Err("broker down");
        };
        let (topic, partition) = &self.tps[tp];
        let (log_start, hw, _) = node
            .partition_offsets(topic, *partition)
            .ok_or("no replica on that broker")?;
        let checks = &mut cluster.replicas;
        let mirror = &mut checks.replicas[b][tp].mirror;
        let (base, sig) = mirror
            .batches
            .range(log_start..)
            .rev()
            .find(|(_, sig)| sig.last_offset < hw)
            .map(|(base, sig)| (*base, *sig))
            .ok_or("nothing committed on that replica yet")?;
        let path = segment_path(&checks.dirs[tp], sig.segment);
        let storage = node.storage_mut();
        let size = usize::try_from(sig.size).expect("a batch fits in memory");
        let mut batch = storage
            .read_at(&path, sig.position, size)
            .map_err(|_| "segment unreadable")?
            .to_vec();
        let header = BatchHeader::parse(&batch).map_err(|_| "no batch where the mirror says")?;
        if header.base_offset() != base || header.crc() != sig.crc || batch.len() != size {
            return Err("mirror out of date");
        }
        seedlog_core::batch::set_max_timestamp(&mut batch, header.max_timestamp() + 1);
        let position = usize::try_from(sig.position).expect("positions fit in memory");
        storage.overwrite(&path, position, &batch);
        mirror.clear();
        checks.replicas[b][tp].verified_upto = 0;
        // The node changed nothing: the next walk reads it all the same.
        self.touched_by_faults[b].push(tp);
        Ok(())
    }

    /// The replica checks of broker `b` after an event touched it: catch
    /// the mirrors of the partitions in `self.views` up (`check_partitions`
    /// just read them: those the event touched, or all), compare what is
    /// below their high watermarks, and judge the Produce acknowledgements
    /// it just sent.
    pub(super) fn check_replicas(&mut self, b: BrokerId) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let BrokerState::Up(node) = &mut self.brokers[b].state else {
            return;
        };
        let views = &self.views;
        let checks = &mut cluster.replicas;
        let divergence_allowed = cluster.config.unclean_leader_election;
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        if let Some((epoch, quorum_role)) = node.quorum_position() {
            let seen = &mut checks.quorum_epoch[b];
            if epoch < *seen {
                problems.push((
                    "monotonic_epoch",
                    format!("broker {b}: quorum epoch went back from {seen} to {epoch}"),
                ));
            }
            *seen = (*seen).max(epoch);
            if quorum_role == Role::Leader {
                match checks.quorum_leader.get(&epoch) {
                    Some(other) if *other != b => problems.push((
                        "single_leader",
                        format!("quorum epoch {epoch}: brokers {other} and {b} both led it"),
                    )),
                    Some(_) => {}
                    None => {
                        checks.quorum_leader.insert(epoch, b);
                    }
                }
            }
        }
        let node_id = node.config().node_id;
        for &(i, view) in &views.hosted {
            checks.isr_due(i);
            let (topic, partition) = &self.tps[i];
            let (log_start, hw, log_end) = (
                view.log_start_offset,
                view.high_watermark,
                view.log_end_offset,
            );
            {
                let epoch = view.leader_epoch;
                let seen = &mut checks.replicas[b][i].role_epoch;
                if epoch < *seen {
                    problems.push((
                        "monotonic_leader_epoch",
                        format!("{topic}-{partition}: broker {b}'s leader epoch went back from {seen} to {epoch}"),
                    ));
                }
                *seen = (*seen).max(epoch);
                if let Some(isr) = views.isr(&view) {
                    if let Some(other) = checks.led(b, i, epoch) {
                        problems.push((
                            "single_leader_per_epoch",
                            format!("{topic}-{partition} leader epoch {epoch}: broker {b} leads it, broker {other} led it too"),
                        ));
                    }
                    let led = &mut checks.replicas[b][i].led_epoch;
                    if epoch < *led {
                        problems.push((
                            "monotonic_leader_epoch",
                            format!("{topic}-{partition}: broker {b} leads in epoch {epoch} after leading in {led}"),
                        ));
                    }
                    *led = (*led).max(epoch);
                    if !isr.contains(&node_id) {
                        // Formatted as the core's set, as before the copy.
                        let isr: BTreeSet<i32> = isr.iter().copied().collect();
                        problems.push((
                            "leader_in_isr",
                            format!("{topic}-{partition}: broker {b} leads epoch {epoch} with ISR {isr:?}, without itself"),
                        ));
                    }
                    let members = isr.iter().filter(|id| **id >= 1).map(|id| *id as usize - 1);
                    match &mut checks.leader_view[i] {
                        // The same leadership and ISR as last time (nearly
                        // always): only the high watermark moves, and no
                        // ISR list is allocated per event.
                        Some(v)
                            if v.broker == b
                                && v.epoch == epoch
                                && v.isr.iter().copied().eq(members.clone()) =>
                        {
                            v.high_watermark = hw;
                        }
                        view => {
                            let isr: Vec<BrokerId> = members.collect();
                            for (m, lost) in checks.isr_power_lost[i].iter_mut().enumerate() {
                                *lost &= isr.contains(&m);
                            }
                            *view = Some(LeaderView {
                                broker: b,
                                epoch,
                                high_watermark: hw,
                                isr,
                            });
                        }
                    }
                }
            }
            let replica = &mut checks.replicas[b][i];
            let mirror = &mut replica.mirror;
            assert!(
                view.touched || mirror.synced == Some((log_start, log_end)),
                "{topic}-{partition} on broker {b}: the log moved from {:?} to {:?} without the node listing it as touched",
                mirror.synced,
                (log_start, log_end)
            );
            let dir = &checks.dirs[i];
            if let Some(dropped) = mirror.sync(node.storage_mut(), dir, log_start, log_end) {
                replica.verified_upto = replica.verified_upto.min(dropped);
            }
            if divergence_allowed {
                continue;
            }
            let from = replica.verified_upto;
            if from >= hw {
                // Nothing new below the high watermark: a batch at or
                // after `from` ends at or after it.
                continue;
            }
            let replica = &mut checks.replicas[b][i];
            let mut verified_upto = from;
            for (base, sig) in replica.mirror.batches.range(from..) {
                if sig.last_offset >= hw {
                    break;
                }
                match checks.committed[i].get(base) {
                    None => {
                        checks.committed[i].insert(*base, (b, *sig));
                    }
                    Some((other, theirs)) if !theirs.same_batch(sig) => problems.push((
                        "log_matching",
                        format!(
                            "{topic}-{partition} offset {base}: broker {b} holds batch ..{} of epoch {} (crc {:08x}) below its high watermark {hw}; broker {other} held ..{} of epoch {} (crc {:08x}) below its own",
                            sig.last_offset, sig.epoch, sig.crc, theirs.last_offset, theirs.epoch, theirs.crc
                        ),
                    )),
                    Some(_) => {}
                }
                verified_upto = sig.last_offset + 1;
            }
            replica.verified_upto = verified_upto;
        }
        let mut acked = Vec::new();
        checks.acked.retain(|a| {
            if a.0 == b {
                acked.push(*a);
            }
            a.0 != b
        });
        for (broker, i, base) in acked {
            let (topic, partition) = &self.tps[i];
            let Some(sig) = checks.replicas[broker][i]
                .mirror
                .batches
                .get(&base)
                .copied()
            else {
                problems.push((
                    "leader_completeness",
                    format!(
                        "{topic}-{partition}: broker {broker} acknowledged a write at offset {base} that its log does not hold as a batch"
                    ),
                ));
                continue;
            };
            if sig.idempotent {
                // Perhaps a duplicate's acknowledgement: it names the
                // original batch, which another leader may have written.
                continue;
            }
            if let Some(other) = checks.led(broker, i, sig.epoch) {
                problems.push((
                    "single_leader_per_epoch",
                    format!(
                        "{topic}-{partition} leader epoch {}: broker {broker} acknowledged a write at offset {base}, broker {other} led in the same epoch",
                        sig.epoch
                    ),
                ));
            }
            let max = &mut checks.replicas[broker][i].epoch_max;
            if sig.epoch < *max {
                problems.push((
                    "monotonic_leader_epoch",
                    format!(
                        "{topic}-{partition}: broker {broker} acknowledged a write in leader epoch {} after one in epoch {max}",
                        sig.epoch
                    ),
                ));
            }
            *max = (*max).max(sig.epoch);
        }
        for (checker, message) in problems {
            self.violation(checker, message);
        }
    }
}

impl World {
    /// `metadata_log_matching`, after every event touching broker `b`:
    /// its metadata image, each time it applied more, equals every other
    /// broker's image (and snapshot) at the same offset. Brokers apply only
    /// committed records, so two images at one offset differ only when one
    /// applied a record that never committed (a high watermark over an
    /// unvalidated log tail) or applied one wrongly.
    pub(super) fn check_applied_metadata(&mut self, b: BrokerId) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let BrokerState::Up(node) = &self.brokers[b].state else {
            return;
        };
        let Some(applied) = node.metadata_applied_offset() else {
            return;
        };
        let checks = &mut cluster.replicas;
        if applied == checks.meta_applied_seen[b] {
            return;
        }
        checks.meta_applied_seen[b] = applied;
        if applied < 0 {
            return;
        }
        let digest = node.metadata_image_digest().expect("a cluster node");
        if let Some(other) = checks.note_image(applied, b, digest) {
            self.violation(
                "metadata_log_matching",
                format!(
                    "broker {b}'s metadata image after applying offset {applied} differs from broker {other}'s there"
                ),
            );
        }
    }

    /// The ISR checks, run with the core's full checks (every so many
    /// events and around every fault), on fresh mirrors of every running
    /// broker: for each partition whose leader still leads in the epoch it
    /// last reported, every running member of its ISR
    ///
    /// - `valid_high_watermark`: holds the log up to the leader's high
    ///   watermark;
    /// - `strong_isr`: holds below it exactly the leader's batches.
    ///
    /// `all`: every partition (before a fault, and at the end), else those
    /// a replica of which changed since the last check (the others would
    /// be judged the same again).
    pub(super) fn check_isr(&mut self, all: bool) {
        if self.cluster.is_none() {
            return;
        }
        self.isr_checked_at_event = self.events;
        // Every event's checks walked what it touched, so this finds
        // nothing to catch up on unless something changed a node outside
        // the events (setup, a fault).
        for b in 0..self.brokers.len() {
            self.check_partitions(b, false);
        }
        self.check_quorum_log();
        let checks = &mut self.cluster.as_mut().expect("checked").replicas;
        let mut due = std::mem::take(&mut checks.isr_due_list);
        for &i in &due {
            checks.isr_due[i] = false;
        }
        if all {
            due.clear();
            due.extend(0..self.tps.len());
        } else {
            due.sort_unstable();
        }
        let checks = &self.cluster.as_ref().expect("checked").replicas;
        let mut problems = Vec::new();
        let mut compared = Vec::new();
        for &i in &due {
            let (topic, partition) = &self.tps[i];
            let Some(view) = &checks.leader_view[i] else {
                continue;
            };
            let BrokerState::Up(leader) = &self.brokers[view.broker].state else {
                continue;
            };
            // A cluster replica leads when it holds an ISR (the view
            // copies none, where `replica_role` allocated one per check).
            let still = leader
                .replica_view(topic, *partition)
                .is_some_and(|v| v.leader_isr.is_some() && v.leader_epoch == view.epoch);
            if !still {
                continue;
            }
            let hw = view.high_watermark;
            let theirs_mirror = &checks.replicas[view.broker][i].mirror;
            let theirs = &theirs_mirror.batches;
            for m in view.isr.iter().copied().filter(|m| *m != view.broker) {
                let BrokerState::Up(node) = &self.brokers[m].state else {
                    continue;
                };
                let Some((_, _, log_end)) = node.partition_offsets(topic, *partition) else {
                    continue;
                };
                // A member that lost power while in this ISR may hold less
                // than the high watermark its earlier life was counted for:
                // Kafka without fsync acknowledges on page caches, and no
                // one can take it out of the ISR before it is back (its
                // registration is refused while its old session lives, and
                // its leader does not know it restarted). It takes no
                // replica role before its new registration, which takes it
                // out of every ISR and ELR (KIP-966), so it is held only to
                // what it has until a leader's ISR leaves it out.
                let hw = if checks.isr_power_lost[i][m] {
                    hw.min(log_end)
                } else {
                    hw
                };
                if log_end < hw {
                    problems.push((
                        "valid_high_watermark",
                        format!(
                            "{topic}-{partition}: broker {m} is in leader {}'s ISR (epoch {}) but its log ends at {log_end}, below the high watermark {hw}",
                            view.broker, view.epoch
                        ),
                    ));
                    continue;
                }
                let mine_mirror = &checks.replicas[m][i].mirror;
                let mine = &mine_mirror.batches;
                let mut now = IsrCompared {
                    leader: view.broker,
                    epoch: view.epoch,
                    leader_generation: theirs_mirror.generation,
                    member_generation: mine_mirror.generation,
                    below: i64::MIN,
                };
                let last = checks.isr_compared[i].iter().find(|(b, _)| *b == m);
                let from = match last.map(|(_, c)| *c) {
                    Some(c)
                        if c == IsrCompared {
                            below: c.below,
                            ..now
                        } =>
                    {
                        c.below
                    }
                    _ => i64::MIN,
                };
                let differs = theirs
                    .range(from..)
                    .take_while(|(_, sig)| sig.last_offset < hw)
                    .find(|(base, sig)| mine.get(base).is_none_or(|s| !s.same_batch(sig)));
                if differs.is_none() {
                    now.below = theirs
                        .range(from..)
                        .find(|(_, sig)| sig.last_offset >= hw)
                        .map_or(
                            theirs.last_key_value().map_or(from, |(b, _)| b + 1),
                            |(b, _)| *b,
                        );
                    compared.push((i, m, now));
                }
                if let Some((base, sig)) = differs {
                    problems.push((
                        "strong_isr",
                        format!(
                            "{topic}-{partition}: leader {} (epoch {}) holds batch {base}..{} of epoch {} below its high watermark {hw}; ISR member {m} holds {:?}",
                            view.broker,
                            view.epoch,
                            sig.last_offset,
                            sig.epoch,
                            mine.get(base).map(|s| (s.last_offset, s.epoch))
                        ),
                    ));
                }
            }
        }
        let checks = &mut self.cluster.as_mut().expect("checked").replicas;
        for (i, m, now) in compared {
            let members = &mut checks.isr_compared[i];
            match members.iter_mut().find(|(b, _)| *b == m) {
                Some((_, last)) => *last = now,
                None => {
                    assert!(members.len() < self.brokers.len(), "one entry per broker");
                    members.push((m, now));
                }
            }
        }
        due.clear();
        checks.isr_due_list = due;
        for (checker, message) in problems {
            self.violation(checker, message);
        }
    }
}

impl World {
    /// The controller quorum's log, from every voter's disk (running or
    /// not: a stopped voter still holds what it synced):
    ///
    /// - `consistent_committed_data`: every running voter agrees with the
    ///   others on every batch below its quorum high watermark;
    /// - `monotonic_high_watermark`: a quorum leader's high watermark is
    ///   never below one an earlier leader (or itself) reported;
    /// - `majority_reached_high_watermark`: a majority of the voters hold
    ///   the log up to the leader's high watermark;
    /// - `leader_commits_own_epoch`: a leader's high watermark covers a
    ///   batch of its own epoch.
    fn check_quorum_log(&mut self) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let checks = &mut cluster.replicas;
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        let mut leader_hw: Option<(BrokerId, i64)> = None;
        let dir = seedlog_core::quorum::METADATA_LOG_DIR;
        let mut meta_log_starts = vec![0; self.brokers.len()];
        for (b, broker) in self.brokers.iter_mut().enumerate() {
            let (storage, status) = match &mut broker.state {
                BrokerState::Up(node) => {
                    let status = node.cluster_status();
                    (node.storage_mut(), status)
                }
                BrokerState::Down(storage) => (storage, None),
                BrokerState::Gone => continue,
            };
            let mirror = &mut checks.meta_mirrors[b];
            // No cheap sign of change here (the log grows uncommitted):
            // read on, from where the mirror stands.
            mirror.synced = None;
            if let Some(dropped) = mirror.sync(storage, dir, -1, i64::MAX) {
                let v = &mut checks.meta_verified[b];
                *v = (*v).min(dropped);
            }
            let log_start = check_metadata_snapshots(checks, b, storage, &mut problems);
            meta_log_starts[b] = log_start;
            let Some(hw) = status.as_ref().and_then(|s| s.quorum_high_watermark) else {
                continue;
            };
            if let Some(s) = status.as_ref().filter(|s| s.quorum_role == Role::Leader) {
                leader_hw = Some((b, hw));
                // leader_commits_own_epoch: what it has committed holds a
                // batch of its own epoch (Raft's rule against figure 8).
                let epoch = s.quorum_epoch;
                let own = checks.meta_mirrors[b]
                    .batches
                    .range(..hw)
                    .rev()
                    .take_while(|(_, sig)| sig.epoch >= epoch)
                    .any(|(_, sig)| sig.epoch == epoch)
                    // Or the batch is below the log start, in the snapshot
                    // that ends in the leader's epoch.
                    || checks.meta_snapshot_checked[b]
                        .1
                        .is_some_and(|id| id.epoch == epoch && id.end_offset <= hw);
                if hw > 0 && !own {
                    problems.push((
                        "leader_commits_own_epoch",
                        format!(
                            "quorum leader {b} of epoch {epoch} has a high watermark of {hw} with no batch of its own epoch below it"
                        ),
                    ));
                }
            }
            let from = checks.meta_verified[b];
            for (base, sig) in checks.meta_mirrors[b].batches.range(from..) {
                if sig.last_offset >= hw {
                    break;
                }
                match checks.meta_committed.get(base) {
                    None => {
                        checks.meta_committed.insert(*base, (b, *sig));
                    }
                    Some((other, theirs)) if !theirs.same_batch(sig) => problems.push((
                        "consistent_committed_data",
                        format!(
                            "metadata log offset {base}: broker {b} holds batch ..{} of epoch {} below its quorum high watermark {hw}; broker {other} held ..{} of epoch {}",
                            sig.last_offset, sig.epoch, theirs.last_offset, theirs.epoch
                        ),
                    )),
                    Some(_) => {}
                }
                checks.meta_verified[b] = sig.last_offset + 1;
            }
        }
        if let Some((leader, hw)) = leader_hw {
            if hw < checks.quorum_hw_max {
                problems.push((
                    "monotonic_high_watermark",
                    format!(
                        "quorum leader {leader}'s high watermark {hw} is below the {} a leader reported before",
                        checks.quorum_hw_max
                    ),
                ));
            }
            checks.quorum_hw_max = checks.quorum_hw_max.max(hw);
            // A node whose log starts at or above the high watermark holds
            // it all in its snapshot. Only voters count: an observer's copy
            // commits nothing.
            let holding = cluster
                .voters
                .iter()
                .filter(|&&v| {
                    meta_log_starts[v] >= hw
                        || checks.meta_mirrors[v]
                            .batches
                            .last_key_value()
                            .is_some_and(|(_, s)| s.last_offset + 1 >= hw)
                })
                .count();
            let voters = cluster.voters.len();
            if hw > 0 && holding * 2 <= voters {
                problems.push((
                    "majority_reached_high_watermark",
                    format!(
                        "quorum leader {leader}'s high watermark is {hw}, but only {holding} of {voters} voters hold the log that far"
                    ),
                ));
            }
        }
        for (checker, message) in problems {
            self.violation(checker, message);
        }
    }
}

/// KIP-630 on broker `b`'s disk, returning its metadata log start:
///
/// - `snapshot_at_log_start`: no snapshot file below the log start, and a
///   non-zero log start has a whole, valid snapshot exactly there;
/// - `consistent_committed_data`, snapshots included: every node's
///   snapshot at one offset holds the same image and names the epoch of
///   the committed batch it ends in.
///
/// A snapshot above the log start may be one being written or copied
/// (not yet synced, or torn by a crash): open refuses those, so only the
/// one at the log start must be whole.
fn check_metadata_snapshots(
    checks: &mut ReplicaChecks,
    b: BrokerId,
    storage: &mut MemoryStorage,
    problems: &mut Vec<(&'static str, String)>,
) -> i64 {
    let dir = seedlog_core::quorum::METADATA_LOG_DIR;
    let start_path = format!("{dir}/{}", seedlog_core::log::LOG_START_OFFSET_CHECKPOINT);
    let log_start = storage
        .len(&start_path)
        .ok()
        .and_then(|len| storage.read_at(&start_path, 0, len as usize).ok())
        .and_then(|bytes| {
            let text = String::from_utf8(bytes.to_vec()).ok()?;
            text.lines().nth(1)?.trim().parse::<i64>().ok()
        })
        .unwrap_or(0);
    let Ok(ids) = seedlog_core::quorum::snapshot::list(storage) else {
        return log_start;
    };
    if let Some(below) = ids.iter().find(|id| id.end_offset < log_start) {
        problems.push((
            "snapshot_at_log_start",
            format!("broker {b}: metadata snapshot {below:?} below the log start {log_start}"),
        ));
    }
    if log_start == 0 || checks.meta_snapshot_checked[b].0 == log_start {
        checks.meta_snapshot_checked[b] = (log_start, checks.meta_snapshot_checked[b].1);
        return log_start;
    }
    let Some(id) = ids.iter().copied().find(|id| id.end_offset == log_start) else {
        problems.push((
            "snapshot_at_log_start",
            format!("broker {b}: metadata log starts at {log_start} with no snapshot there"),
        ));
        return log_start;
    };
    let payload = match seedlog_core::quorum::snapshot::read(storage, id) {
        Ok(Ok(payload)) => payload,
        Ok(Err(reason))
        | Err(seedlog_core::storage::StorageError::Io {
            message: reason, ..
        }) => {
            problems.push((
                "snapshot_at_log_start",
                format!("broker {b}: the metadata snapshot {id:?} at the log start is refused: {reason}"),
            ));
            return log_start;
        }
        Err(e) => {
            problems.push((
                "snapshot_at_log_start",
                format!(
                    "broker {b}: the metadata snapshot {id:?} at the log start is unreadable: {e}"
                ),
            ));
            return log_start;
        }
    };
    checks.meta_snapshot_checked[b] = (log_start, Some(id));
    if let Some((_, (_, sig))) = checks.meta_committed.range(..id.end_offset).next_back() {
        if sig.last_offset + 1 >= id.end_offset && sig.epoch != id.epoch {
            problems.push((
                "consistent_committed_data",
                format!(
                    "broker {b}: metadata snapshot {id:?} names epoch {}, the committed batch it ends in is of epoch {}",
                    id.epoch, sig.epoch
                ),
            ));
        }
    }
    match checks.meta_snapshots.get(&id.end_offset) {
        None => {
            let digest = crc32c::crc32c(&payload);
            if let Some(other) = checks.note_image(id.end_offset - 1, b, digest) {
                problems.push((
                    "metadata_log_matching",
                    format!(
                        "broker {b}'s metadata snapshot {id:?} differs from broker {other}'s image after applying offset {}",
                        id.end_offset - 1
                    ),
                ));
            }
            checks
                .meta_snapshots
                .insert(id.end_offset, (b, id.epoch, payload));
        }
        Some((other, epoch, theirs)) if *epoch != id.epoch || *theirs != payload => {
            problems.push((
                "consistent_committed_data",
                format!(
                    "metadata snapshot at {}: broker {b}'s (epoch {}, {} bytes) differs from broker {other}'s (epoch {epoch}, {} bytes)",
                    id.end_offset,
                    id.epoch,
                    payload.len(),
                    theirs.len()
                ),
            ));
        }
        Some(_) => {}
    }
    log_start
}

#[cfg(test)]
mod tests {
    use super::*;
    use seedlog_core::storage::Storage;

    fn append(storage: &mut MemoryStorage, path: &str, value: &str, base: i64, epoch: i32) {
        let mut batch = build_batch(&[(None, Some(value.as_bytes()))], 0);
        batch[0..8].copy_from_slice(&base.to_be_bytes());
        batch[12..16].copy_from_slice(&epoch.to_be_bytes());
        storage.append(path, &batch).unwrap();
    }

    #[test]
    fn mirror_follows_appends_truncation_and_segment_rolls() {
        let mut s = MemoryStorage::new();
        let seg0 = "t-0/00000000000000000000.log";
        append(&mut s, seg0, "a", 0, 1);
        append(&mut s, seg0, "b", 1, 1);
        let mut m = Mirror::default();
        assert_eq!(m.sync(&mut s, "t-0", 0, 2), None);
        assert_eq!(m.batches.len(), 2);
        // A roll to a second segment.
        let seg2 = "t-0/00000000000000000002.log";
        append(&mut s, seg2, "c", 2, 2);
        assert_eq!(m.sync(&mut s, "t-0", 0, 3), None);
        assert_eq!(m.batches.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
        // Truncation to offset 1, then a different batch appended there.
        s.remove(seg2).unwrap();
        let first_len = s.len(seg0).unwrap() / 2;
        s.truncate(seg0, first_len).unwrap();
        append(&mut s, seg0, "B", 1, 3);
        // The end is back at 2: the mirror notices the change of end and
        // finds the replaced batch.
        assert_eq!(m.sync(&mut s, "t-0", 0, 2), Some(1));
        let epochs: Vec<i32> = m.batches.values().map(|b| b.epoch).collect();
        assert_eq!(epochs, vec![1, 3]);
    }
}
