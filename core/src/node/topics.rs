//! The topics this node hosts: names, ids, partitions, config overrides,
//! and their durable record in `meta/topics.json`.
//!
//! The registry is written (atomically and durably) before a partition's log
//! is created and after it is deleted, so a crash in between leaves at worst
//! an orphan directory, which `load` removes.

use super::partition_map::PartitionMap;
use super::producer_state::ProducerStateTable;
use super::topic_config;
use crate::log::{LogConfig, PartitionLog, RecoveryReport};
use crate::partition::{FollowerReplica, LeaderReplica};
use crate::storage::Storage;
use crate::time::Instant;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

use super::NodeError;

const METADATA_PATH: &str = "meta/topics.json";
const TOPIC_NAME_LEN_MAX: usize = 249;
/// A bound on partitions per topic, so one request cannot exhaust memory.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

/// One partition replica hosted here.
pub struct Partition {
    pub log: PartitionLog,
    pub leader_epoch: i32,
    /// Offsets below this are visible to consumers.
    pub high_watermark: i64,
    /// Idempotent producers' last batches, rebuilt from the log on load.
    pub producers: ProducerStateTable,
    pub replica: Replica,
}

/// The part this node plays for one partition.
#[derive(Debug)]
pub enum Replica {
    /// A standalone broker: the only replica, always the leader.
    Standalone,
    /// A cluster replica the committed metadata has not given a role (just
    /// loaded, or its partition has no leader).
    Offline,
    Leader(LeaderReplica),
    Follower(FollowerReplica),
}

impl Replica {
    pub fn is_leader(&self) -> bool {
        matches!(self, Replica::Standalone | Replica::Leader(_))
    }
}

/// After an append as leader: a replicated leader's high watermark may move
/// (a one-member ISR), a standalone one acking from the page cache exposes
/// the records at once. Returns whether parked fetches should look again
/// (a replicated leader always says yes: followers wait for new data).
pub fn after_leader_append(p: &mut Partition, flush_before_ack: bool) -> bool {
    use super::cluster::broker::{leader_end_offset, sync_high_watermark};
    match &mut p.replica {
        Replica::Leader(leader) => {
            leader.handle_leader_end_offset(leader_end_offset(&p.log, flush_before_ack));
            sync_high_watermark(p, flush_before_ack);
            true
        }
        _ if !flush_before_ack => {
            p.high_watermark = p.log.log_end_offset();
            true
        }
        _ => false,
    }
}

impl Partition {
    /// Whether the high watermark may be shown to consumers: a leader's is
    /// once it reaches the start of the leader's own epoch (before that it
    /// may lag what the previous leader exposed, KIP-207).
    pub fn high_watermark_established(&self) -> bool {
        match &self.replica {
            Replica::Leader(leader) => {
                leader.high_watermark() >= leader.leader_epoch_start_offset()
            }
            _ => true,
        }
    }

    pub fn new(log: PartitionLog, leader_epoch: i32) -> Partition {
        let high_watermark = log.log_end_offset();
        Partition {
            log,
            leader_epoch,
            high_watermark,
            producers: ProducerStateTable::default(),
            replica: Replica::Standalone,
        }
    }

    /// Makes what recovery found durable before anyone may read it, as
    /// Kafka flushes recovered segments: after a process kill the tail may
    /// sit in the page cache only, and exposing it (the high watermark is
    /// the log end after load) before a power cut would let the high
    /// watermark go back and consumers read records that then vanish.
    /// This is the one place the core syncs by itself: the node is not
    /// serving yet, so there is no one to answer meanwhile.
    fn sync_recovered(&mut self, storage: &mut dyn Storage) -> Result<(), NodeError> {
        for path in self.log.unsynced_paths() {
            storage.sync(&path)?;
        }
        self.log.mark_synced(self.log.log_end_offset());
        Ok(())
    }

    /// Reads every batch header once to learn the producers' sequences.
    fn rebuild_producer_state(&mut self, storage: &mut dyn Storage) -> Result<(), NodeError> {
        let producers = &mut self.producers;
        self.log
            .for_each_batch_header(storage, |header| producers.record(header))?;
        Ok(())
    }
}

pub struct Topic {
    pub name: String,
    pub id: Uuid,
    /// The partitions hosted here by index: all of them on a standalone
    /// broker, the ones this node is a replica of in a cluster. Private so
    /// that every change goes through a method that notes it in `touched`.
    partitions: PartitionMap<Partition>,
    pub overrides: BTreeMap<String, String>,
    /// Hosts a subset of the topic's partitions (a cluster node).
    pub sparse: bool,
    /// Per reader (`TouchReader`): the partitions handed out for change
    /// since it last took the list, each once (`touched_bits`): a
    /// superset of those whose offsets, high watermark, leader epoch,
    /// role or ISR changed. A reader that would look at every partition
    /// after every input looks at these only. A list no one takes (the
    /// observer's in a real broker) holds at most one entry per partition.
    touched: [Vec<i32>; TOUCH_READERS],
    /// By partition index, a bit per reader (`TouchReader as u8`): listed
    /// in that reader's `touched`. Beside the partitions, not in them, so
    /// that taking a list clears its bits by index: a B-tree search per
    /// listed partition was 3% of a large cluster's simulation. (At most
    /// PARTITIONS_PER_TOPIC_MAX bytes; a bit is set exactly while its
    /// partition is in the list, removed partitions included.)
    touched_bits: Vec<u8>,
    /// Per reader: a partition was added or removed since it last took the
    /// list: every one of the topic counts as touched, those gone included.
    all_touched: [bool; TOUCH_READERS],
}

/// Who takes a topic's touched lists: each reader has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchReader {
    /// `Node::drain_touched`: a checker outside the core.
    Observer = 0,
    /// `maybe_start_flush`: partitions that may hold unsynced appends.
    Flusher = 1,
    /// `drive_isr`: leaders that may have an ISR change to send.
    Isr = 2,
    /// `drive_fetcher`: partitions whose role (or leader) may have changed.
    Fetcher = 3,
    /// `retry_delayed_fetches`: partitions a parked fetch may now read
    /// something new from.
    Parked = 4,
}

const TOUCH_READERS: usize = 5;

/// What [`Topics::drain_touched`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touched<'a> {
    /// Every partition of the topic, hosted now or before.
    Topic(&'a str),
    Partition(&'a str, i32),
}

fn touch(touched: &mut [Vec<i32>; TOUCH_READERS], bits: &mut Vec<u8>, index: i32) {
    const ALL: u8 = (1 << TOUCH_READERS) - 1;
    assert!((0..PARTITIONS_PER_TOPIC_MAX).contains(&index));
    let at = index as usize;
    if at >= bits.len() {
        bits.resize(at + 1, 0);
    }
    let was = bits[at];
    if was == ALL {
        return;
    }
    for (reader, list) in touched.iter_mut().enumerate() {
        if was & (1 << reader) == 0 {
            list.push(index);
        }
    }
    bits[at] = ALL;
}

/// Clears `reader`'s bit of every partition in its list.
fn clear_bits(bits: &mut [u8], listed: &[i32], reader: TouchReader) {
    let bit = 1 << reader as u8;
    for &index in listed {
        bits[index as usize] &= !bit;
    }
    debug_assert!(
        bits.iter().all(|b| b & bit == 0),
        "every listed one cleared"
    );
}

impl Topic {
    /// A topic as hosted from now on: every partition counts as touched.
    pub fn new(
        name: String,
        id: Uuid,
        partitions: PartitionMap<Partition>,
        overrides: BTreeMap<String, String>,
        sparse: bool,
    ) -> Topic {
        Topic {
            name,
            id,
            partitions,
            overrides,
            sparse,
            touched: Default::default(),
            touched_bits: Vec::new(),
            all_touched: [true; TOUCH_READERS],
        }
    }

    pub fn partitions(&self) -> &PartitionMap<Partition> {
        &self.partitions
    }

    pub fn partition(&self, index: i32) -> Option<&Partition> {
        self.partitions.get(&index)
    }

    /// The partition, to change: noted as touched.
    pub fn partition_mut(&mut self, index: i32) -> Option<&mut Partition> {
        let p = self.partitions.get_mut(&index)?;
        touch(&mut self.touched, &mut self.touched_bits, index);
        Some(p)
    }

    /// Every partition, to change: each noted as touched as it is handed
    /// out. For rare passes over all (retention, a config change, the lag
    /// check); a pass per input would make every drain list them all.
    pub fn partitions_mut(&mut self) -> impl Iterator<Item = (i32, &mut Partition)> {
        let (touched, bits) = (&mut self.touched, &mut self.touched_bits);
        self.partitions.iter_mut().map(move |(&index, p)| {
            touch(touched, bits, index);
            (index, p)
        })
    }

    /// The partitions of a topic no longer hosted.
    pub fn into_partitions(self) -> PartitionMap<Partition> {
        self.partitions
    }

    pub fn insert_partition(&mut self, index: i32, partition: Partition) {
        let old = self.partitions.insert(index, partition);
        assert!(
            old.is_none(),
            "partition {}-{index} inserted twice",
            self.name
        );
        self.all_touched = [true; TOUCH_READERS];
    }

    pub fn remove_partition(&mut self, index: i32) -> Option<Partition> {
        let p = self.partitions.remove(&index)?;
        self.all_touched = [true; TOUCH_READERS];
        Some(p)
    }

    /// Moves `reader`'s list of the partitions touched since it last took
    /// it into `out` (unordered, each once) and forgets it. Returns true
    /// when every partition of the topic counts as touched.
    pub fn take_touched(&mut self, reader: TouchReader, out: &mut Vec<i32>) -> bool {
        let list = &mut self.touched[reader as usize];
        // Bounded by the partitions ever touched: each is listed once.
        clear_bits(&mut self.touched_bits, list, reader);
        out.append(list);
        std::mem::take(&mut self.all_touched[reader as usize])
    }

    /// The partitions `reader` must look at, ascending, into `out` (cleared
    /// first): those touched since it last looked, or every hosted one
    /// when the whole topic counts as touched or `everything` does (a
    /// topic came or went, a periodic pass). Returns whether it is every
    /// one.
    pub fn take_touched_sorted(
        &mut self,
        reader: TouchReader,
        everything: bool,
        out: &mut Vec<i32>,
    ) -> bool {
        out.clear();
        let whole = self.take_touched(reader, out) || everything;
        if whole {
            out.clear();
            out.extend(self.partitions.keys());
        } else {
            out.sort_unstable();
        }
        whole
    }

    /// Reports what `reader` has not taken yet, and forgets it.
    fn drain_touched(&mut self, reader: TouchReader, each: &mut impl FnMut(Touched<'_>)) {
        // The list is lent out and given back: no allocation per drain.
        let mut listed = std::mem::take(&mut self.touched[reader as usize]);
        let all = std::mem::take(&mut self.all_touched[reader as usize]);
        clear_bits(&mut self.touched_bits, &listed, reader);
        if all {
            each(Touched::Topic(&self.name));
        } else {
            for &index in &listed {
                each(Touched::Partition(&self.name, index));
            }
        }
        listed.clear();
        self.touched[reader as usize] = listed;
    }

    /// A reader's bit is set exactly for the partitions in its list, each
    /// listed once.
    fn check_touched(&self) {
        for (reader, list) in self.touched.iter().enumerate() {
            let bit = 1u8 << reader;
            let set = self.touched_bits.iter().filter(|b| *b & bit != 0).count();
            assert_eq!(
                set,
                list.len(),
                "{}: reader {reader}'s bits and list",
                self.name
            );
            for &index in list {
                assert!(
                    self.touched_bits[index as usize] & bit != 0,
                    "{}-{index}: listed for reader {reader} without its bit",
                    self.name
                );
            }
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: Uuid,
    partitions: i32,
    leader_epochs: Vec<i32>,
    configs: BTreeMap<String, String>,
    /// A cluster node hosts some partitions only: their indexes, aligned
    /// with `leader_epochs`. Absent: all of `0..partitions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    partition_ids: Option<Vec<i32>>,
}

#[derive(Debug, Serialize, Deserialize, Default)]
struct MetadataFile {
    version: u32,
    topics: Vec<TopicRecord>,
}

pub struct Topics {
    by_name: BTreeMap<String, Topic>,
    name_by_id: BTreeMap<Uuid, String>,
    /// Per reader (`TouchReader`): a topic was added or removed since it
    /// last looked (or it never did): every partition counts as touched.
    all_touched: [bool; TOUCH_READERS],
}

impl Default for Topics {
    fn default() -> Topics {
        Topics {
            by_name: BTreeMap::new(),
            name_by_id: BTreeMap::new(),
            all_touched: [true; TOUCH_READERS],
        }
    }
}

/// Kafka's topic name rules.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("topic name '{name}' is not allowed"));
    }
    if name.len() > TOPIC_NAME_LEN_MAX {
        return Err(format!(
            "topic name is longer than {TOPIC_NAME_LEN_MAX} characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name '{name}' holds '{c}'; allowed are ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

pub fn partition_dir(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

impl Topics {
    /// Loads the registry and opens (recovers) every partition log.
    pub fn load(
        storage: &mut dyn Storage,
        defaults: &LogConfig,
        now: Instant,
    ) -> Result<(Topics, Vec<(String, RecoveryReport)>), NodeError> {
        let mut topics = Topics::default();
        let mut reports = Vec::new();
        let file: MetadataFile = if storage.exists(METADATA_PATH) {
            let len = storage.len(METADATA_PATH)? as usize;
            let bytes = storage.read_at(METADATA_PATH, 0, len)?;
            serde_json::from_slice(&bytes)
                .map_err(|e| NodeError::Metadata(format!("{METADATA_PATH}: {e}")))?
        } else {
            MetadataFile::default()
        };
        for record in file.topics {
            if record.partition_ids.is_none()
                && record.leader_epochs.len() != record.partitions as usize
            {
                return Err(NodeError::Metadata(format!(
                    "{METADATA_PATH}: topic '{}' has {} partitions but {} epochs",
                    record.name,
                    record.partitions,
                    record.leader_epochs.len()
                )));
            }
            let config = topic_config::log_config(&record.configs, defaults);
            let mut partitions = PartitionMap::default();
            let ids: Vec<i32> = match &record.partition_ids {
                Some(ids) => ids.clone(),
                None => (0..record.partitions).collect(),
            };
            if let Some(bad) = ids
                .iter()
                .find(|i| !(0..PARTITIONS_PER_TOPIC_MAX).contains(*i))
            {
                return Err(NodeError::Metadata(format!(
                    "{METADATA_PATH}: topic '{}' lists partition {bad}, outside [0, {PARTITIONS_PER_TOPIC_MAX})",
                    record.name
                )));
            }
            if ids.len() != record.leader_epochs.len() {
                return Err(NodeError::Metadata(format!(
                    "{METADATA_PATH}: topic '{}' lists {} partitions but {} epochs",
                    record.name,
                    ids.len(),
                    record.leader_epochs.len()
                )));
            }
            for (&index, leader_epoch) in ids.iter().zip(&record.leader_epochs) {
                let dir = partition_dir(&record.name, index);
                let (log, report) = PartitionLog::open(storage, &dir, config.clone(), now)?;
                reports.push((dir, report));
                let mut partition = Partition::new(log, *leader_epoch);
                partition.sync_recovered(storage)?;
                if record.partition_ids.is_some() {
                    // A cluster replica waits for the metadata to give it a role.
                    partition.replica = Replica::Offline;
                    // Only the leader knows what is committed; start low and
                    // learn (consumers wait rather than read too far).
                    partition.high_watermark = partition.log.log_start_offset();
                }
                partition.rebuild_producer_state(storage)?;
                partitions.insert(index, partition);
            }
            let sparse = record.partition_ids.is_some();
            topics.insert(Topic::new(
                record.name,
                record.id,
                partitions,
                record.configs,
                sparse,
            ));
        }
        topics.remove_orphans(storage)?;
        Ok((topics, reports))
    }

    /// Deletes partition directories that no topic owns (a crash during
    /// CreateTopics or DeleteTopics).
    fn remove_orphans(&self, storage: &mut dyn Storage) -> Result<(), NodeError> {
        for entry in storage.list("")? {
            if entry == crate::quorum::METADATA_LOG_DIR {
                continue;
            }
            let Some((topic, partition)) = entry.rsplit_once('-') else {
                continue;
            };
            let Ok(partition) = partition.parse::<i32>() else {
                continue;
            };
            let owned = self
                .by_name
                .get(topic)
                .is_some_and(|t| t.partitions.contains_key(&partition));
            if !owned {
                tracing::warn!(dir = %entry, "removing a partition directory no topic owns");
                storage.remove_dir(&entry)?;
            }
        }
        Ok(())
    }

    /// Writes the registry durably.
    pub fn persist(&self, storage: &mut dyn Storage) -> Result<(), NodeError> {
        let file = MetadataFile {
            version: 0,
            topics: self
                .by_name
                .values()
                .map(|t| TopicRecord {
                    name: t.name.clone(),
                    id: t.id,
                    partitions: t.partitions.len() as i32,
                    leader_epochs: t.partitions.values().map(|p| p.leader_epoch).collect(),
                    configs: t.overrides.clone(),
                    partition_ids: t.sparse.then(|| t.partitions.keys().copied().collect()),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("the registry serializes");
        storage.write_atomic(METADATA_PATH, &bytes)?;
        Ok(())
    }

    pub fn insert(&mut self, topic: Topic) {
        assert!(
            !self.by_name.contains_key(&topic.name),
            "topic '{}' inserted twice",
            topic.name
        );
        assert!(
            !self.name_by_id.contains_key(&topic.id),
            "topic id {} reused",
            topic.id
        );
        self.name_by_id.insert(topic.id, topic.name.clone());
        self.by_name.insert(topic.name.clone(), topic);
        self.all_touched = [true; TOUCH_READERS];
    }

    pub fn remove(&mut self, name: &str) -> Option<Topic> {
        let topic = self.by_name.remove(name)?;
        self.name_by_id.remove(&topic.id);
        self.all_touched = [true; TOUCH_READERS];
        Some(topic)
    }

    /// The partitions that may have changed since `reader` last looked
    /// (see `Topic::touched`), reported to `each`, and forgotten. Returns
    /// false when a topic came or went: then every partition counts as
    /// touched and `each` is not called.
    pub fn drain_touched(
        &mut self,
        reader: TouchReader,
        mut each: impl FnMut(Touched<'_>),
    ) -> bool {
        let all = self.take_all_touched(reader);
        // Bounded by the topics hosted.
        for topic in self.by_name.values_mut() {
            if all {
                topic.drain_touched(reader, &mut |_| {});
            } else {
                topic.drain_touched(reader, &mut each);
            }
        }
        !all
    }

    /// Whether a topic came or went since `reader` last asked (then every
    /// partition counts as touched); forgets it.
    pub fn take_all_touched(&mut self, reader: TouchReader) -> bool {
        std::mem::take(&mut self.all_touched[reader as usize])
    }

    pub fn get(&self, name: &str) -> Option<&Topic> {
        self.by_name.get(name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Topic> {
        self.by_name.get_mut(name)
    }

    pub fn name_of(&self, id: &Uuid) -> Option<&str> {
        self.name_by_id.get(id).map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Topic> {
        self.by_name.values()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Topic> {
        self.by_name.values_mut()
    }

    pub fn partition(&self, name: &str, partition: i32) -> Option<&Partition> {
        self.by_name.get(name)?.partition(partition)
    }

    /// Notes the partition as touched, changed or not (a failed flush left
    /// it unsynced: the flusher must look at it again).
    pub fn touch(&mut self, name: &str, partition: i32) {
        self.partition_mut(name, partition);
    }

    /// The partition, to change: noted as touched.
    pub fn partition_mut(&mut self, name: &str, partition: i32) -> Option<&mut Partition> {
        self.by_name.get_mut(name)?.partition_mut(partition)
    }

    pub fn check_invariants(&self) {
        assert_eq!(
            self.by_name.len(),
            self.name_by_id.len(),
            "ids and names index the same topics"
        );
        for topic in self.by_name.values() {
            assert_eq!(self.name_by_id.get(&topic.id), Some(&topic.name));
            topic.partitions.check_invariants();
            for p in topic.partitions.values() {
                p.log.check_invariants();
                p.producers.check_invariants();
                assert!(
                    p.high_watermark >= p.log.log_start_offset().min(p.log.log_end_offset()),
                    "high watermark below log start"
                );
                assert!(
                    p.high_watermark <= p.log.log_end_offset(),
                    "high watermark {} beyond log end {}",
                    p.high_watermark,
                    p.log.log_end_offset()
                );
            }
            topic.check_touched();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").unwrap_err().contains('/'));
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    /// A partition index no topic can have is refused with the file named,
    /// before any log is opened for it.
    #[test]
    fn a_metadata_file_naming_a_partition_out_of_range_does_not_load() {
        for bad in [-1, PARTITIONS_PER_TOPIC_MAX] {
            let mut storage = crate::storage::MemoryStorage::new();
            let file = MetadataFile {
                version: 1,
                topics: vec![TopicRecord {
                    name: "orders".to_string(),
                    id: Uuid::from_u128(7),
                    partitions: 2,
                    leader_epochs: vec![0, 0],
                    configs: BTreeMap::new(),
                    partition_ids: Some(vec![0, bad]),
                }],
            };
            let bytes = serde_json::to_vec(&file).expect("serializes");
            storage
                .write_atomic(METADATA_PATH, &bytes)
                .expect("written");
            let loaded = Topics::load(&mut storage, &LogConfig::default(), Instant::from_millis(0));
            let Err(NodeError::Metadata(message)) = loaded else {
                panic!("partition {bad} loaded");
            };
            assert!(message.contains(METADATA_PATH), "{message}");
            assert!(message.contains(&format!("partition {bad}")), "{message}");
            assert!(
                !storage.exists(&partition_dir("orders", 0)),
                "no log opened"
            );
        }
    }
}
