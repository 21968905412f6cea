//! `seedlog topics reassign` and `seedlog topics reassignments`: move a
//! partition's replicas (AlterPartitionReassignments, KIP-455) and list the
//! moves in progress (ListPartitionReassignments). Both go to the
//! controller, as Kafka's `kafka-reassign-partitions.sh` does.

use super::client::{check, topic_name, Admin};
use super::table::{ids, Table};
use super::topics::{print_json, settled, topics_exist, with_controller, TIMEOUT_MS};
use anyhow::bail;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest,
};
use kafka_protocol::ResponseError;
use serde::Serialize;

/// Starts (`replicas` Some) or cancels (None) the reassignment of one
/// partition.
pub fn reassign(
    admin: &mut Admin,
    name: &str,
    partition: i32,
    replicas: Option<&[i32]>,
    json: bool,
) -> anyhow::Result<()> {
    let what = format!("partition {name}-{partition}");
    topics_exist(admin, &[name.to_string()])?;
    let outcome = with_controller(admin, |admin| {
        let response = admin.controller()?.call(|_| {
            let target = replicas.map(|r| r.iter().map(|&b| BrokerId(b)).collect());
            AlterPartitionReassignmentsRequest::default()
                .with_timeout_ms(TIMEOUT_MS)
                .with_topics(vec![ReassignableTopic::default()
                    .with_name(topic_name(name))
                    .with_partitions(vec![ReassignablePartition::default()
                        .with_partition_index(partition)
                        .with_replicas(target)])])
        })?;
        let not_controller = ResponseError::NotController.code();
        if response.error_code == not_controller {
            return Ok(Err(not_controller));
        }
        check(
            "AlterPartitionReassignments",
            response.error_code,
            response.error_message.as_ref(),
        )?;
        let result = response
            .responses
            .into_iter()
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == partition);
        Ok(match result {
            Some(p) if p.error_code == not_controller => Err(p.error_code),
            Some(p) => {
                check(&what, p.error_code, p.error_message.as_ref())?;
                Ok(())
            }
            None => bail!("{what}: the AlterPartitionReassignments answer names no partition"),
        })
    })?;
    settled(outcome, &what)?;
    match (replicas, json) {
        (Some(r), true) => print_json(&serde_json::json!({
            "topic": name, "partition": partition, "replicas": r, "reassigning": true,
        })),
        (None, true) => print_json(&serde_json::json!({
            "topic": name, "partition": partition, "cancelled": true,
        })),
        (Some(r), false) => println!(
            "Reassigning partition {name}-{partition} to replicas {}.",
            ids(r)
        ),
        (None, false) => println!("Cancelled the reassignment of partition {name}-{partition}."),
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct Ongoing {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
    adding: Vec<i32>,
    removing: Vec<i32>,
}

/// Lists the reassignments in progress, of `names` (every partition of
/// each) or of every topic.
pub fn list(admin: &mut Admin, names: &[String], json: bool) -> anyhow::Result<()> {
    // ListPartitionReassignments names partitions, so ask Metadata which
    // the named topics have.
    let wanted = if names.is_empty() {
        None
    } else {
        let metadata = admin.metadata(Some(names))?;
        topics_exist(admin, names)?;
        Some(
            metadata
                .topics
                .iter()
                .filter_map(|t| {
                    let name = t.name.as_ref()?;
                    let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
                    Some(
                        ListPartitionReassignmentsTopics::default()
                            .with_name(name.clone())
                            .with_partition_indexes(partitions),
                    )
                })
                .collect::<Vec<_>>(),
        )
    };
    let outcome = with_controller(admin, |admin| {
        let response = admin.controller()?.call(|_| {
            ListPartitionReassignmentsRequest::default()
                .with_timeout_ms(TIMEOUT_MS)
                .with_topics(wanted.clone())
        })?;
        if response.error_code == ResponseError::NotController.code() {
            return Ok(Err(response.error_code));
        }
        check(
            "ListPartitionReassignments",
            response.error_code,
            response.error_message.as_ref(),
        )?;
        Ok(Ok(response))
    })?;
    let response = settled(outcome, "ListPartitionReassignments")?;
    let broker_ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
    let mut ongoing: Vec<Ongoing> = response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| Ongoing {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                replicas: broker_ids(&p.replicas),
                adding: broker_ids(&p.adding_replicas),
                removing: broker_ids(&p.removing_replicas),
            })
        })
        .collect();
    ongoing.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    if json {
        print_json(&ongoing);
        return Ok(());
    }
    if ongoing.is_empty() {
        println!("No partition reassignment in progress.");
        return Ok(());
    }
    let mut table = Table::new(&["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"]);
    for o in &ongoing {
        table.row(vec![
            o.topic.clone(),
            o.partition.to_string(),
            ids(&o.replicas),
            ids(&o.adding),
            ids(&o.removing),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}
