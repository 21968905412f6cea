//! The metadata image: what applying committed records builds, and nothing
//! else. A follower controller, a restarted one and a broker replaying the
//! same log prefix hold equal images; [`MetadataImage::apply`] is the only
//! mutation.

use super::records::{
    ConfigRecord, MetadataRecord, PartitionChangeRecord, PartitionRecord, ProducerIdsRecord,
    RegisterBrokerRecord, TopicRecord, CONFIG_RESOURCE_TOPIC, NO_LEADER, NO_LEADER_CHANGE,
};
use crate::partition::PartitionAssignment;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use uuid::Uuid;

/// Bound on registered brokers.
pub const BROKERS_MAX: usize = 10_000;
/// Bound on topics.
pub const TOPICS_MAX: usize = 100_000;
/// Bound on partitions of one topic.
pub const PARTITIONS_PER_TOPIC_MAX: usize = 100_000;
/// Bound on config keys of one resource.
pub const CONFIGS_PER_RESOURCE_MAX: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub id: i32,
    /// The offset of the broker's RegisterBrokerRecord.
    pub epoch: i64,
    pub incarnation_id: Uuid,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
    pub end_points: Vec<super::records::BrokerEndpoint>,
}

impl BrokerRegistration {
    /// Kafka's `isActive`: may lead and may be placed on.
    pub fn is_active(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

/// A partition as the controller holds it: the assignment the replicas act
/// on, plus the KIP-966 eligible leader replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRegistration {
    pub assignment: PartitionAssignment,
    /// Replicas that left the ISR while it was below min.insync.replicas
    /// and still hold every committed record: electable when the ISR is
    /// empty.
    pub elr: BTreeSet<i32>,
    pub last_known_elr: BTreeSet<i32>,
    /// KIP-455: an ongoing reassignment's joining replicas (part of
    /// `assignment.replicas`, not yet all in the ISR). Empty with
    /// `removing` when no reassignment is in progress.
    pub adding: Vec<i32>,
    /// KIP-455: the replicas the reassignment drops once it completes.
    pub removing: Vec<i32>,
}

impl PartitionRegistration {
    pub fn from_record(record: &PartitionRecord) -> PartitionRegistration {
        PartitionRegistration {
            assignment: PartitionAssignment {
                replicas: record.replicas.clone(),
                isr: small_set(&record.isr),
                leader: record.leader,
                leader_epoch: record.leader_epoch,
                partition_epoch: record.partition_epoch,
            },
            elr: small_set(&record.eligible_leader_replicas),
            last_known_elr: small_set(&record.last_known_elr),
            adding: record.adding_replicas.clone(),
            removing: record.removing_replicas.clone(),
        }
    }

    /// Whether a reassignment is in progress.
    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The reassignment's target: the replicas minus those being removed,
    /// in replica order (the first is the preferred leader).
    pub fn target_replicas(&self) -> Vec<i32> {
        super::excluding(&self.assignment.replicas, &self.removing)
    }

    /// The KIP-455 rules: adding and removing are disjoint parts of the
    /// replicas, and the target is never empty.
    pub fn check_reassignment(&self) {
        let replicas = &self.assignment.replicas;
        assert!(
            self.adding.iter().all(|r| replicas.contains(r))
                && self.removing.iter().all(|r| replicas.contains(r)),
            "adding {:?} and removing {:?} within replicas {replicas:?}",
            self.adding,
            self.removing
        );
        assert!(
            self.adding.iter().all(|r| !self.removing.contains(r)),
            "adding {:?} and removing {:?} disjoint",
            self.adding,
            self.removing
        );
        assert!(
            self.removing.len() < replicas.len(),
            "a reassignment keeps at least one replica"
        );
    }

    /// The registration after `change`: the partition epoch always bumps,
    /// the leader epoch bumps when the record names a leader.
    pub fn merge(&self, change: &PartitionChangeRecord) -> PartitionRegistration {
        let mut next = self.clone();
        let a = &mut next.assignment;
        if let Some(isr) = &change.isr {
            a.isr = small_set(isr);
        }
        if let Some(replicas) = &change.replicas {
            a.replicas = replicas.clone();
        }
        if change.leader != NO_LEADER_CHANGE {
            assert!(
                change.leader >= NO_LEADER,
                "leader {} is a broker id or NO_LEADER",
                change.leader
            );
            a.leader = change.leader;
            a.leader_epoch = a
                .leader_epoch
                .checked_add(1)
                .expect("leader epoch fits i32");
        }
        a.partition_epoch = a
            .partition_epoch
            .checked_add(1)
            .expect("partition epoch fits i32");
        if let Some(elr) = &change.eligible_leader_replicas {
            next.elr = small_set(elr);
        }
        if let Some(elr) = &change.last_known_elr {
            next.last_known_elr = small_set(elr);
        }
        if let Some(adding) = &change.adding_replicas {
            next.adding = adding.clone();
        }
        if let Some(removing) = &change.removing_replicas {
            next.removing = removing.clone();
        }
        next
    }
}

/// A set of a few broker ids, by insertion: collecting into a `BTreeSet`
/// gathers, sorts and bulk-builds, a temporary `Vec` more per set.
fn small_set(ids: &[i32]) -> BTreeSet<i32> {
    let mut set = BTreeSet::new();
    for &id in ids {
        set.insert(id);
    }
    set
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

/// Config resource key: (Kafka's ConfigResource type, resource name).
pub type ConfigResource = (i8, String);

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataImage {
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    pub topics: BTreeMap<Uuid, TopicImage>,
    pub topics_by_name: BTreeMap<String, Uuid>,
    pub configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    /// The first producer id of the next block the controller hands out.
    pub next_producer_id: i64,
    /// The offset of the last applied record, -1 before any.
    pub last_applied_offset: i64,
}

impl MetadataImage {
    pub fn new() -> MetadataImage {
        MetadataImage {
            last_applied_offset: -1,
            ..MetadataImage::default()
        }
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&TopicImage> {
        self.topics_by_name.get(name).map(|id| &self.topics[id])
    }

    pub fn partition(&self, topic_id: Uuid, partition_id: i32) -> Option<&PartitionRegistration> {
        self.topics.get(&topic_id)?.partitions.get(&partition_id)
    }

    /// A topic config, if set on the topic.
    pub fn topic_config(&self, topic_name: &str, key: &str) -> Option<&str> {
        self.configs
            .get(&(CONFIG_RESOURCE_TOPIC, topic_name.to_string()))?
            .get(key)
            .map(String::as_str)
    }

    pub fn is_active(&self, broker_id: i32) -> bool {
        self.brokers.get(&broker_id).is_some_and(|b| b.is_active())
    }

    /// Applies one committed record at `offset`. Panics on a record that
    /// does not fit the image: the controller that wrote it derived it from
    /// this very prefix of the log, so a misfit means the logs diverged or
    /// the controller is wrong, and carrying on would spread the damage
    /// (Kafka treats it as a fatal fault too).
    pub fn apply(&mut self, offset: i64, record: &MetadataRecord) {
        assert!(
            offset > self.last_applied_offset,
            "records apply in offset order: {offset} after {}",
            self.last_applied_offset
        );
        self.apply_record(Some(offset), record);
        self.last_applied_offset = offset;
    }

    /// The records that rebuild this image from nothing: a metadata
    /// snapshot's content (KIP-630). Each part of the image becomes the
    /// record that creates it in its current state: a broker its
    /// RegisterBrokerRecord (fenced and shutdown flags as they are now), a
    /// topic its TopicRecord and one PartitionRecord per partition (epochs,
    /// ISR, ELR and reassignment as they are now), each config key its
    /// ConfigRecord, the producer id block its ProducerIdsRecord. A new
    /// part of the image adds its record here and nothing else: the
    /// snapshot is loaded by [`MetadataImage::from_snapshot`] through
    /// `apply_record`, as the log is.
    pub fn snapshot_records(&self) -> Vec<MetadataRecord> {
        // Sized up front (records are large; see `decode_batches`).
        let mut records = Vec::with_capacity(self.snapshot_records_max());
        self.for_each_snapshot_record(|record| records.push(record));
        records
    }

    /// At least as many records as a snapshot of the image holds.
    pub fn snapshot_records_max(&self) -> usize {
        let partitions: usize = self.topics.values().map(|t| t.partitions.len()).sum();
        let configs: usize = self.configs.values().map(BTreeMap::len).sum();
        self.brokers.len() + self.topics.len() + partitions + configs + 1
    }

    /// [`MetadataImage::snapshot_records`] one at a time, in the same
    /// order, for a writer that encodes each as it comes (a large
    /// cluster's image is ~10,000 records, and checkers encode it often).
    pub fn for_each_snapshot_record(&self, mut visit: impl FnMut(MetadataRecord)) {
        for b in self.brokers.values() {
            visit(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: b.id,
                incarnation_id: b.incarnation_id,
                broker_epoch: b.epoch,
                end_points: b.end_points.clone(),
                rack: b.rack.clone(),
                fenced: b.fenced,
                in_controlled_shutdown: b.in_controlled_shutdown,
            }));
        }
        for t in self.topics.values() {
            visit(MetadataRecord::Topic(TopicRecord {
                name: t.name.clone(),
                topic_id: t.topic_id,
            }));
            for (&partition_id, p) in &t.partitions {
                let a = &p.assignment;
                visit(MetadataRecord::Partition(PartitionRecord {
                    partition_id,
                    topic_id: t.topic_id,
                    replicas: a.replicas.clone(),
                    isr: a.isr.iter().copied().collect(),
                    leader: a.leader,
                    leader_epoch: a.leader_epoch,
                    partition_epoch: a.partition_epoch,
                    eligible_leader_replicas: p.elr.iter().copied().collect(),
                    last_known_elr: p.last_known_elr.iter().copied().collect(),
                    adding_replicas: p.adding.clone(),
                    removing_replicas: p.removing.clone(),
                }));
            }
        }
        for ((resource_type, resource_name), configs) in &self.configs {
            for (name, value) in configs {
                visit(MetadataRecord::Config(ConfigRecord {
                    resource_type: *resource_type,
                    resource_name: resource_name.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                }));
            }
        }
        if self.next_producer_id > 0 {
            visit(MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: -1,
                broker_epoch: -1,
                producer_ids_end: self.next_producer_id,
            }));
        }
    }

    /// The image a snapshot of everything below `end_offset` rebuilds.
    pub fn from_snapshot(end_offset: i64, records: &[MetadataRecord]) -> MetadataImage {
        assert!(end_offset > 0, "a snapshot holds at least one offset");
        let mut image = MetadataImage::new();
        for record in records {
            image.apply_record(None, record);
        }
        image.last_applied_offset = end_offset - 1;
        image
    }

    /// Applies `record`, read from the log at `offset` or from a snapshot
    /// (`None`: no offset, and a broker's epoch is the one it carries).
    fn apply_record(&mut self, offset: Option<i64>, record: &MetadataRecord) {
        match record {
            MetadataRecord::RegisterBroker(r) => {
                if let Some(offset) = offset {
                    assert_eq!(
                        r.broker_epoch, offset,
                        "a broker's epoch is the offset of its RegisterBrokerRecord"
                    );
                }
                if let Some(previous) = self.brokers.get(&r.broker_id) {
                    assert!(previous.epoch < r.broker_epoch, "broker epochs only grow");
                } else {
                    assert!(self.brokers.len() < BROKERS_MAX, "broker bound reached");
                }
                self.brokers.insert(
                    r.broker_id,
                    BrokerRegistration {
                        id: r.broker_id,
                        epoch: r.broker_epoch,
                        incarnation_id: r.incarnation_id,
                        rack: r.rack.clone(),
                        fenced: r.fenced,
                        in_controlled_shutdown: r.in_controlled_shutdown,
                        end_points: r.end_points.clone(),
                    },
                );
            }
            MetadataRecord::FenceBroker(r) => {
                let broker = self.broker_at_epoch(r.id, r.epoch, "FenceBrokerRecord");
                broker.fenced = true;
                // Fencing ends a controlled shutdown: the broker is gone.
                broker.in_controlled_shutdown = false;
            }
            MetadataRecord::UnfenceBroker(r) => {
                let broker = self.broker_at_epoch(r.id, r.epoch, "UnfenceBrokerRecord");
                broker.fenced = false;
            }
            MetadataRecord::BrokerRegistrationChange(r) => {
                let broker =
                    self.broker_at_epoch(r.broker_id, r.broker_epoch, "BrokerRegistrationChange");
                match r.fenced {
                    -1 => broker.fenced = false,
                    0 => {}
                    1 => broker.fenced = true,
                    other => panic!("BrokerRegistrationChange fenced {other} is not -1/0/1"),
                }
                match r.in_controlled_shutdown {
                    0 => {}
                    1 => broker.in_controlled_shutdown = true,
                    other => panic!("in_controlled_shutdown {other} is not 0/1"),
                }
            }
            MetadataRecord::Topic(r) => {
                assert!(
                    !self.topics_by_name.contains_key(&r.name),
                    "topic {} exists already",
                    r.name
                );
                assert!(
                    !self.topics.contains_key(&r.topic_id),
                    "topic id {} exists already",
                    r.topic_id
                );
                assert!(self.topics.len() < TOPICS_MAX, "topic bound reached");
                self.topics_by_name.insert(r.name.clone(), r.topic_id);
                self.topics.insert(
                    r.topic_id,
                    TopicImage {
                        name: r.name.clone(),
                        topic_id: r.topic_id,
                        partitions: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::Partition(r) => {
                let topic = self
                    .topics
                    .get_mut(&r.topic_id)
                    .unwrap_or_else(|| panic!("PartitionRecord for unknown topic {}", r.topic_id));
                assert!(
                    topic.partitions.len() < PARTITIONS_PER_TOPIC_MAX,
                    "partition bound reached"
                );
                let registration = PartitionRegistration::from_record(r);
                registration.assignment.check_invariants();
                registration.check_reassignment();
                // One search for the check and the insert (a broker
                // applies 10,000 of these when a large cluster's topics
                // are created).
                match topic.partitions.entry(r.partition_id) {
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(registration);
                    }
                    std::collections::btree_map::Entry::Occupied(_) => {
                        panic!("partition {}-{} exists already", topic.name, r.partition_id)
                    }
                }
            }
            MetadataRecord::PartitionChange(r) => {
                let topic = self.topics.get_mut(&r.topic_id).unwrap_or_else(|| {
                    panic!("PartitionChangeRecord for unknown topic {}", r.topic_id)
                });
                let name = topic.name.clone();
                let partition = topic
                    .partitions
                    .get_mut(&r.partition_id)
                    .unwrap_or_else(|| {
                        panic!(
                            "PartitionChangeRecord for unknown partition {name}-{}",
                            r.partition_id
                        )
                    });
                let next = partition.merge(r);
                // epochs monotonic per partition
                assert!(
                    next.assignment.partition_epoch > partition.assignment.partition_epoch
                        && next.assignment.leader_epoch >= partition.assignment.leader_epoch,
                    "epochs of {name}-{} only grow",
                    r.partition_id
                );
                next.assignment.check_invariants();
                next.check_reassignment();
                *partition = next;
            }
            MetadataRecord::RemoveTopic(r) => {
                let topic = self.topics.remove(&r.topic_id).unwrap_or_else(|| {
                    panic!("RemoveTopicRecord for unknown topic {}", r.topic_id)
                });
                self.topics_by_name.remove(&topic.name);
                self.configs
                    .remove(&(CONFIG_RESOURCE_TOPIC, topic.name.clone()));
            }
            MetadataRecord::Config(r) => {
                let resource = (r.resource_type, r.resource_name.clone());
                match &r.value {
                    Some(value) => {
                        let configs = self.configs.entry(resource).or_default();
                        assert!(
                            configs.len() < CONFIGS_PER_RESOURCE_MAX
                                || configs.contains_key(&r.name),
                            "config bound reached"
                        );
                        configs.insert(r.name.clone(), value.clone());
                    }
                    None => {
                        if let Some(configs) = self.configs.get_mut(&resource) {
                            configs.remove(&r.name);
                            if configs.is_empty() {
                                self.configs.remove(&resource);
                            }
                        }
                    }
                }
            }
            MetadataRecord::ProducerIds(r) => {
                assert!(
                    r.producer_ids_end > self.next_producer_id,
                    "producer id blocks only move forward: {} after {}",
                    r.producer_ids_end,
                    self.next_producer_id
                );
                self.next_producer_id = r.producer_ids_end;
            }
        }
    }

    fn broker_at_epoch(&mut self, id: i32, epoch: i64, what: &str) -> &mut BrokerRegistration {
        let broker = self
            .brokers
            .get_mut(&id)
            .unwrap_or_else(|| panic!("{what} for unregistered broker {id}"));
        assert_eq!(
            broker.epoch, epoch,
            "{what} for broker {id} names epoch {epoch}, registration has {}",
            broker.epoch
        );
        broker
    }

    /// A stable, complete text of the image: equal images give equal
    /// strings, so two controllers can be compared by it or by its hash.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for b in self.brokers.values() {
            let _ = writeln!(
                out,
                "broker {} epoch {} rack {:?} fenced {} shutdown {} incarnation {}",
                b.id, b.epoch, b.rack, b.fenced, b.in_controlled_shutdown, b.incarnation_id
            );
        }
        for t in self.topics.values() {
            let _ = writeln!(out, "topic {} {}", t.name, t.topic_id);
            for (id, p) in &t.partitions {
                let a = &p.assignment;
                let _ = writeln!(
                    out,
                    "  {id} replicas {:?} isr {:?} elr {:?} lkelr {:?} leader {} le {} pe {}",
                    a.replicas,
                    a.isr,
                    p.elr,
                    p.last_known_elr,
                    a.leader,
                    a.leader_epoch,
                    a.partition_epoch
                );
                // Only while reassigning, so images without one describe
                // as they always did.
                if p.is_reassigning() {
                    let _ = writeln!(out, "    adding {:?} removing {:?}", p.adding, p.removing);
                }
            }
        }
        for ((kind, name), configs) in &self.configs {
            let _ = writeln!(out, "config {kind} {name} {configs:?}");
        }
        let _ = writeln!(
            out,
            "next_producer_id {} last_applied {}",
            self.next_producer_id, self.last_applied_offset
        );
        out
    }
}
