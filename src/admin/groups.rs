//! `seedlog groups`: list, describe (members, committed offsets, lag),
//! reset the offsets of an idle group, delete groups. Requests for a group
//! go to its coordinator (FindCoordinator); ListOffsets to the leader of
//! each partition.

use super::client::{check, error_name, str_bytes, topic_name, Admin, Connection};
use super::table::Table;
use super::topics::print_json;
use super::Connect;
use anyhow::{anyhow, bail};
use bytes::Buf;
use clap::{Args, Subcommand};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerProtocolAssignment, DeleteGroupsRequest,
    DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest, ListOffsetsRequest,
    OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::ResponseError;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// ListOffsets' timestamps that stand for the log start and end.
const EARLIEST: i64 = -2;
const LATEST: i64 = -1;
/// How long a coordinator that is loading or moving is waited for.
const COORDINATOR_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    connect: Connect,
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(Debug, Subcommand)]
enum GroupsCommand {
    /// List the consumer groups of every broker (ListGroups).
    List,
    /// State, protocol, members with their assignments, and committed
    /// offsets with lag per partition.
    Describe {
        /// The group's id.
        group: String,
    },
    /// Move a group's committed offsets. The group must be Empty (no
    /// member running), as Kafka's kafka-consumer-groups.sh requires.
    ResetOffsets {
        /// The group (it need not exist yet).
        group: String,
        /// The topic whose offsets move, every partition of it.
        #[arg(long)]
        topic: String,
        #[command(flatten)]
        to: ResetTo,
        /// Print the new offsets without committing them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete groups and their committed offsets (DeleteGroups).
    Delete {
        /// The groups' ids; each must be Empty.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct ResetTo {
    /// To the log start of each partition.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end of each partition.
    #[arg(long)]
    to_latest: bool,
    /// To this offset, kept within each partition's log start and end.
    #[arg(long, value_name = "N")]
    to_offset: Option<i64>,
}

pub fn run(args: GroupsArgs) -> anyhow::Result<()> {
    let mut admin = args.connect.admin()?;
    let json = args.connect.json;
    match args.command {
        GroupsCommand::List => list(&mut admin, json),
        GroupsCommand::Describe { group } => describe(&mut admin, &group, json),
        GroupsCommand::ResetOffsets {
            group,
            topic,
            to,
            dry_run,
        } => reset_offsets(&mut admin, &group, &topic, &to, dry_run, json),
        GroupsCommand::Delete { groups } => delete(&mut admin, &groups, json),
    }
}

#[derive(Debug, Serialize)]
struct ListedGroup {
    group: String,
    group_type: String,
    state: String,
    protocol_type: String,
}

fn list(admin: &mut Admin, json: bool) -> anyhow::Result<()> {
    admin.metadata(Some(&[]))?;
    let mut groups: BTreeMap<String, ListedGroup> = BTreeMap::new();
    // Each broker lists the groups it coordinates. One that does not
    // answer is reported after the others' groups are shown.
    let mut failures = Vec::new();
    for id in admin.broker_ids() {
        let answer = admin
            .node(id)
            .and_then(|c| c.call(|_| ListGroupsRequest::default()))
            .and_then(|r| {
                check(&format!("ListGroups at broker {id}"), r.error_code, None)?;
                Ok(r)
            });
        let response = match answer {
            Ok(response) => response,
            Err(e) => {
                failures.push(format!("broker {id}: {e:#}"));
                continue;
            }
        };
        for g in response.groups {
            let group = g.group_id.0.to_string();
            let group_type = if g.group_type.is_empty() {
                "classic".to_string()
            } else {
                g.group_type.to_string().to_lowercase()
            };
            groups.insert(
                group.clone(),
                ListedGroup {
                    group,
                    group_type,
                    state: g.group_state.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                },
            );
        }
    }
    let groups: Vec<ListedGroup> = groups.into_values().collect();
    let finish = |failures: Vec<String>| {
        if failures.is_empty() {
            Ok(())
        } else {
            Err(anyhow!(
                "some brokers did not list their groups: {}",
                failures.join("; ")
            ))
        }
    };
    if json {
        print_json(&groups);
        return finish(failures);
    }
    let mut table = Table::new(&["GROUP", "TYPE", "STATE", "PROTOCOL-TYPE"]);
    for g in &groups {
        table.row(vec![
            g.group.clone(),
            g.group_type.clone(),
            if g.state.is_empty() {
                "-".into()
            } else {
                g.state.clone()
            },
            g.protocol_type.clone(),
        ]);
    }
    print!("{}", table.render());
    finish(failures)
}

/// The coordinator of `group`, waiting while it is being elected or loads.
fn coordinator(admin: &mut Admin, group: &str) -> anyhow::Result<i32> {
    let deadline = Instant::now() + COORDINATOR_WAIT;
    loop {
        let response = admin.any()?.call(|version| {
            if version >= 4 {
                FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(vec![str_bytes(group)])
            } else {
                FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_key(str_bytes(group))
            }
        })?;
        let (code, message, node) = match response.coordinators.first() {
            Some(c) => (c.error_code, c.error_message.clone(), c.node_id.0),
            None => (
                response.error_code,
                response.error_message.clone(),
                response.node_id.0,
            ),
        };
        if code == 0 {
            return Ok(node);
        }
        if !is_coordinator_error(code) || Instant::now() > deadline {
            check(
                &format!("coordinator of group '{group}'"),
                code,
                message.as_ref(),
            )?;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Calls the group's coordinator, finding it again while `call` answers
/// with a coordinator error (`Err(code)`).
fn at_coordinator<T>(
    admin: &mut Admin,
    group: &str,
    mut call: impl FnMut(&mut Connection) -> anyhow::Result<Result<T, i16>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + COORDINATOR_WAIT;
    loop {
        let id = coordinator(admin, group)?;
        let code = match call(admin.node(id)?)? {
            Ok(t) => return Ok(t),
            Err(code) => code,
        };
        if !is_coordinator_error(code) || Instant::now() > deadline {
            bail!("group '{group}': {}", error_name(code));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The group's coordinator is moving or loading: ask again.
fn is_coordinator_error(code: i16) -> bool {
    [
        ResponseError::CoordinatorNotAvailable.code(),
        ResponseError::CoordinatorLoadInProgress.code(),
        ResponseError::NotCoordinator.code(),
    ]
    .contains(&code)
}

#[derive(Debug, Serialize)]
struct GroupDescription {
    group: String,
    /// "classic" or "consumer" (KIP-848).
    group_type: String,
    state: String,
    protocol_type: String,
    /// The classic group's assignor, or the KIP-848 group's.
    protocol: String,
    coordinator: i32,
    members: Vec<MemberDescription>,
    offsets: Vec<PartitionLag>,
}

#[derive(Debug, Serialize)]
struct MemberDescription {
    member_id: String,
    instance_id: Option<String>,
    client_id: String,
    host: String,
    /// topic -> partitions.
    assignment: BTreeMap<String, Vec<i32>>,
}

#[derive(Debug, Serialize)]
struct PartitionLag {
    topic: String,
    partition: i32,
    /// None: assigned but nothing committed yet.
    committed: Option<i64>,
    log_end_offset: Option<i64>,
    lag: Option<i64>,
    member_id: Option<String>,
}

/// State, protocol and members, from ConsumerGroupDescribe (KIP-848) or
/// DescribeGroups (classic).
fn group_state(admin: &mut Admin, group: &str) -> anyhow::Result<GroupDescription> {
    let coordinator = coordinator(admin, group)?;
    let consumer_protocol = admin
        .node(coordinator)?
        .supports(kafka_protocol::messages::ApiKey::ConsumerGroupDescribe);
    if consumer_protocol {
        let described = at_coordinator(admin, group, |c| {
            let response = c.call(|_| {
                ConsumerGroupDescribeRequest::default()
                    .with_group_ids(vec![GroupId(str_bytes(group))])
            })?;
            let Some(g) = response.groups.into_iter().next() else {
                bail!("group '{group}': ConsumerGroupDescribe named no group");
            };
            if is_coordinator_error(g.error_code) {
                return Ok(Err(g.error_code));
            }
            Ok(Ok(g))
        })?;
        // Anything else than "not a consumer group": the answer.
        if described.error_code != ResponseError::GroupIdNotFound.code() {
            check(
                &format!("group '{group}'"),
                described.error_code,
                described.error_message.as_ref(),
            )?;
            let members = described
                .members
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.member_id.to_string(),
                    instance_id: m.instance_id.as_ref().map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment: m
                        .assignment
                        .topic_partitions
                        .iter()
                        .map(|t| {
                            let mut partitions = t.partitions.clone();
                            partitions.sort_unstable();
                            (t.topic_name.0.to_string(), partitions)
                        })
                        .collect(),
                })
                .collect();
            return Ok(GroupDescription {
                group: group.to_string(),
                group_type: "consumer".to_string(),
                state: described.group_state.to_string(),
                protocol_type: "consumer".to_string(),
                protocol: described.assignor_name.to_string(),
                coordinator,
                members,
                offsets: Vec::new(),
            });
        }
    }
    let described = at_coordinator(admin, group, |c| {
        let response = c.call(|_| {
            DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))])
        })?;
        let Some(g) = response.groups.into_iter().next() else {
            bail!("group '{group}': DescribeGroups named no group");
        };
        if is_coordinator_error(g.error_code) {
            return Ok(Err(g.error_code));
        }
        Ok(Ok(g))
    })?;
    check(
        &format!("group '{group}'"),
        described.error_code,
        described.error_message.as_ref(),
    )?;
    let consumer = described.protocol_type.as_str() == "consumer";
    let members = described
        .members
        .iter()
        .map(|m| MemberDescription {
            member_id: m.member_id.to_string(),
            instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            assignment: if consumer {
                decode_assignment(&m.member_assignment)
            } else {
                BTreeMap::new()
            },
        })
        .collect();
    Ok(GroupDescription {
        group: group.to_string(),
        group_type: "classic".to_string(),
        state: described.group_state.to_string(),
        protocol_type: described.protocol_type.to_string(),
        protocol: described.protocol_data.to_string(),
        coordinator,
        members,
        offsets: Vec::new(),
    })
}

/// A classic consumer's assignment: ConsumerProtocolAssignment after its
/// version. Empty if it does not decode (a member of another protocol).
fn decode_assignment(bytes: &bytes::Bytes) -> BTreeMap<String, Vec<i32>> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return BTreeMap::new();
    }
    let version = buf.get_i16().clamp(0, 3);
    let Ok(assignment) = ConsumerProtocolAssignment::decode(&mut buf, version) else {
        return BTreeMap::new();
    };
    assignment
        .assigned_partitions
        .into_iter()
        .map(|t| {
            let mut partitions = t.partitions;
            partitions.sort_unstable();
            (t.topic.0.to_string(), partitions)
        })
        .collect()
}

/// The group's committed offsets: (topic, partition) -> offset.
fn committed_offsets(
    admin: &mut Admin,
    group: &str,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    at_coordinator(admin, group, |c| {
        let mut version = 0;
        let response = c.call(|v| {
            version = v;
            if v >= 8 {
                OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(str_bytes(group)))
                    .with_topics(None)])
            } else {
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(str_bytes(group)))
                    .with_topics(None)
            }
        })?;
        let mut offsets = BTreeMap::new();
        let code;
        if version >= 8 {
            let Some(g) = response.groups.into_iter().next() else {
                bail!("group '{group}': OffsetFetch named no group");
            };
            code = g.error_code;
            for t in g.topics {
                for p in t.partitions {
                    if p.error_code == 0 && p.committed_offset >= 0 {
                        offsets.insert(
                            (t.name.0.to_string(), p.partition_index),
                            p.committed_offset,
                        );
                    }
                }
            }
        } else {
            code = response.error_code;
            for t in response.topics {
                for p in t.partitions {
                    if p.error_code == 0 && p.committed_offset >= 0 {
                        offsets.insert(
                            (t.name.0.to_string(), p.partition_index),
                            p.committed_offset,
                        );
                    }
                }
            }
        }
        if is_coordinator_error(code) {
            return Ok(Err(code));
        }
        check(&format!("offsets of group '{group}'"), code, None)?;
        Ok(Ok(offsets))
    })
}

/// ListOffsets at `timestamp` (EARLIEST or LATEST) for every partition of
/// `partitions`, each asked of its leader. A partition whose leader does
/// not answer is left out.
fn list_offsets(
    admin: &mut Admin,
    partitions: &BTreeSet<(String, i32)>,
    timestamp: i64,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let topics: Vec<String> = partitions
        .iter()
        .map(|(t, _)| t.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if topics.is_empty() {
        return Ok(BTreeMap::new());
    }
    let metadata = admin.metadata(Some(&topics))?;
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for t in &metadata.topics {
        let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
            continue;
        };
        for p in &t.partitions {
            if p.leader_id.0 >= 0 && partitions.contains(&(name.clone(), p.partition_index)) {
                by_leader
                    .entry(p.leader_id.0)
                    .or_default()
                    .entry(name.clone())
                    .or_default()
                    .push(p.partition_index);
            }
        }
    }
    let mut offsets = BTreeMap::new();
    for (leader, topics) in by_leader {
        let response = admin.node(leader)?.call(|_| {
            ListOffsetsRequest::default()
                .with_replica_id((-1).into())
                .with_topics(
                    topics
                        .iter()
                        .map(|(name, partitions)| {
                            ListOffsetsTopic::default()
                                .with_name(topic_name(name))
                                .with_partitions(
                                    partitions
                                        .iter()
                                        .map(|p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(*p)
                                                .with_timestamp(timestamp)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        })?;
        for t in response.topics {
            for p in t.partitions {
                if p.error_code == 0 {
                    offsets.insert((t.name.0.to_string(), p.partition_index), p.offset);
                }
            }
        }
    }
    Ok(offsets)
}

fn describe(admin: &mut Admin, group: &str, json: bool) -> anyhow::Result<()> {
    let mut description = group_state(admin, group)?;
    let committed = committed_offsets(admin, group)?;
    if description.state == "Dead" && committed.is_empty() {
        bail!(
            "group '{group}': {} (no such group, and no committed offsets)",
            error_name(ResponseError::GroupIdNotFound.code())
        );
    }
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &description.members {
        for (topic, partitions) in &m.assignment {
            for p in partitions {
                owner.insert((topic.clone(), *p), m.member_id.clone());
            }
        }
    }
    let partitions: BTreeSet<(String, i32)> =
        committed.keys().chain(owner.keys()).cloned().collect();
    let ends = list_offsets(admin, &partitions, LATEST)?;
    description.offsets = partitions
        .into_iter()
        .map(|key| {
            let committed = committed.get(&key).copied();
            let end = ends.get(&key).copied();
            let lag = match (committed, end) {
                (Some(c), Some(e)) => Some((e - c).max(0)),
                _ => None,
            };
            PartitionLag {
                member_id: owner.get(&key).cloned(),
                topic: key.0,
                partition: key.1,
                committed,
                log_end_offset: end,
                lag,
            }
        })
        .collect();
    if json {
        print_json(&description);
        return Ok(());
    }
    let d = &description;
    println!(
        "Group: {}\tType: {}\tState: {}\tProtocol: {}\tProtocolType: {}\tCoordinator: {}\tMembers: {}",
        d.group,
        d.group_type,
        d.state,
        dash(&d.protocol),
        dash(&d.protocol_type),
        d.coordinator,
        d.members.len()
    );
    if !d.members.is_empty() {
        println!();
        let mut table = Table::new(&["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"]);
        for m in &d.members {
            let assignment: Vec<String> = m
                .assignment
                .iter()
                .map(|(t, ps)| format!("{t}:{}", super::table::ids(ps)))
                .collect();
            table.row(vec![
                m.member_id.clone(),
                m.client_id.clone(),
                m.host.clone(),
                if assignment.is_empty() {
                    "-".to_string()
                } else {
                    assignment.join(" ")
                },
            ]);
        }
        print!("{}", table.render());
    }
    println!();
    let mut table = Table::new(&[
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "MEMBER-ID",
    ]);
    let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    for o in &d.offsets {
        table.row(vec![
            o.topic.clone(),
            o.partition.to_string(),
            opt(o.committed),
            opt(o.log_end_offset),
            opt(o.lag),
            o.member_id.clone().unwrap_or_else(|| "-".to_string()),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

fn dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

#[derive(Debug, Serialize)]
struct NewOffset {
    topic: String,
    partition: i32,
    previous: Option<i64>,
    offset: i64,
}

fn reset_offsets(
    admin: &mut Admin,
    group: &str,
    topic: &str,
    to: &ResetTo,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    let state = group_state(admin, group)?;
    // Kafka's tool: "Assignments can only be reset if the group is
    // inactive". A group that does not exist yet (Dead) is inactive too.
    if !matches!(state.state.as_str(), "Empty" | "Dead") {
        bail!(
            "group '{group}' is {} with {} member(s): offsets can only be reset while the group \
             is Empty; stop its consumers first",
            state.state,
            state.members.len()
        );
    }
    let metadata = admin.metadata(Some(&[topic.to_string()]))?;
    let Some(t) = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
    else {
        bail!(
            "topic '{topic}': {}",
            error_name(ResponseError::UnknownTopicOrPartition.code())
        );
    };
    check(&format!("topic '{topic}'"), t.error_code, None)?;
    let partitions: BTreeSet<(String, i32)> = t
        .partitions
        .iter()
        .map(|p| (topic.to_string(), p.partition_index))
        .collect();
    let earliest = list_offsets(admin, &partitions, EARLIEST)?;
    let latest = list_offsets(admin, &partitions, LATEST)?;
    let previous = committed_offsets(admin, group)?;
    let mut new_offsets = Vec::new();
    for key in &partitions {
        let (Some(&start), Some(&end)) = (earliest.get(key), latest.get(key)) else {
            bail!(
                "topic '{topic}' partition {}: its leader did not answer ListOffsets",
                key.1
            );
        };
        let offset = if to.to_earliest {
            start
        } else if to.to_latest {
            end
        } else {
            let n = to.to_offset.ok_or_else(|| anyhow!("no target offset"))?;
            n.clamp(start, end)
        };
        new_offsets.push(NewOffset {
            topic: key.0.clone(),
            partition: key.1,
            previous: previous.get(key).copied(),
            offset,
        });
    }
    if !dry_run {
        let responses = at_coordinator(admin, group, |c| {
            let response = c.call(|_| {
                OffsetCommitRequest::default()
                    .with_group_id(GroupId(str_bytes(group)))
                    .with_generation_id_or_member_epoch(-1)
                    .with_member_id(str_bytes(""))
                    .with_topics(vec![OffsetCommitRequestTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(
                            new_offsets
                                .iter()
                                .map(|o| {
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(o.partition)
                                        .with_committed_offset(o.offset)
                                })
                                .collect(),
                        )])
            })?;
            let codes: Vec<(i32, i16)> = response
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (p.partition_index, p.error_code))
                })
                .collect();
            if let Some((_, code)) = codes.iter().find(|(_, c)| is_coordinator_error(*c)) {
                return Ok(Err(*code));
            }
            Ok(Ok(codes))
        })?;
        for (partition, code) in responses {
            check(
                &format!("committing group '{group}' topic '{topic}' partition {partition}"),
                code,
                None,
            )?;
        }
    }
    if json {
        print_json(&serde_json::json!({
            "group": group,
            "dry_run": dry_run,
            "offsets": new_offsets,
        }));
        return Ok(());
    }
    let mut table = Table::new(&["TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"]);
    for o in &new_offsets {
        table.row(vec![
            o.topic.clone(),
            o.partition.to_string(),
            o.previous.map_or("-".to_string(), |v| v.to_string()),
            o.offset.to_string(),
        ]);
    }
    print!("{}", table.render());
    if dry_run {
        println!("(dry run: nothing committed)");
    }
    Ok(())
}

fn delete(admin: &mut Admin, groups: &[String], json: bool) -> anyhow::Result<()> {
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for group in groups {
        let outcome = at_coordinator(admin, group, |c| {
            let response = c.call(|_| {
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes(group))])
            })?;
            let code = response.results.first().map_or(0, |r| r.error_code);
            if is_coordinator_error(code) {
                return Ok(Err(code));
            }
            Ok(Ok(code))
        });
        match outcome.and_then(|code| check(&format!("group '{group}'"), code, None)) {
            Ok(()) => deleted.push(group.clone()),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if json {
        print_json(&serde_json::json!({ "deleted": deleted, "errors": errors }));
    } else {
        for group in &deleted {
            println!("Deleted group {group}.");
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(())
}
