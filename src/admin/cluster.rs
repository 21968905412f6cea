//! `seedlog cluster describe`: brokers with their racks, the controller,
//! the cluster id (DescribeCluster, or Metadata where it is not served),
//! and the partitions that are under-replicated or offline (Metadata).

use super::client::{check, Admin};
use super::table::{ids, Table};
use super::topics::print_json;
use kafka_protocol::messages::{ApiKey, DescribeClusterRequest};
use serde::Serialize;

#[derive(Debug, Serialize)]
struct ClusterDescription {
    cluster_id: Option<String>,
    controller_id: i32,
    brokers: Vec<BrokerDescription>,
    under_replicated_partitions: Vec<PartitionState>,
    offline_partitions: Vec<PartitionState>,
}

#[derive(Debug, Serialize)]
struct BrokerDescription {
    id: i32,
    host: String,
    port: i32,
    rack: Option<String>,
    fenced: bool,
}

#[derive(Debug, Serialize)]
struct PartitionState {
    topic: String,
    partition: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

pub fn describe(admin: &mut Admin, json: bool) -> anyhow::Result<()> {
    let metadata = admin.metadata(None)?;
    let mut description = ClusterDescription {
        cluster_id: metadata.cluster_id.as_ref().map(|c| c.to_string()),
        controller_id: metadata.controller_id.0,
        brokers: metadata
            .brokers
            .iter()
            .map(|b| BrokerDescription {
                id: b.node_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
                fenced: false,
            })
            .collect(),
        under_replicated_partitions: Vec::new(),
        offline_partitions: Vec::new(),
    };
    let connection = admin.any()?;
    if connection.supports(ApiKey::DescribeCluster) {
        let response = connection.call(|_| DescribeClusterRequest::default())?;
        check(
            "DescribeCluster",
            response.error_code,
            response.error_message.as_ref(),
        )?;
        description.cluster_id = Some(response.cluster_id.to_string());
        description.controller_id = response.controller_id.0;
        description.brokers = response
            .brokers
            .iter()
            .map(|b| BrokerDescription {
                id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
                fenced: b.is_fenced,
            })
            .collect();
    }
    description.brokers.sort_by_key(|b| b.id);
    for topic in &metadata.topics {
        let name = topic
            .name
            .as_ref()
            .map(|n| n.0.to_string())
            .unwrap_or_default();
        for p in &topic.partitions {
            let state = PartitionState {
                topic: name.clone(),
                partition: p.partition_index,
                leader: p.leader_id.0,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            };
            if state.leader < 0 {
                description.offline_partitions.push(state);
            } else if state.isr.len() < state.replicas.len() {
                description.under_replicated_partitions.push(state);
            }
        }
    }
    for list in [
        &mut description.under_replicated_partitions,
        &mut description.offline_partitions,
    ] {
        list.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    }
    if json {
        print_json(&description);
        return Ok(());
    }
    let d = &description;
    println!("Cluster ID: {}", d.cluster_id.as_deref().unwrap_or("-"));
    println!(
        "Controller: {}",
        if d.controller_id < 0 {
            "none".to_string()
        } else {
            d.controller_id.to_string()
        }
    );
    println!();
    let mut table = Table::new(&["BROKER", "HOST", "PORT", "RACK", "FENCED"]);
    for b in &d.brokers {
        table.row(vec![
            b.id.to_string(),
            b.host.clone(),
            b.port.to_string(),
            b.rack.clone().unwrap_or_else(|| "-".to_string()),
            if b.fenced { "yes" } else { "no" }.to_string(),
        ]);
    }
    print!("{}", table.render());
    for (what, list) in [
        (
            "Under-replicated partitions",
            &d.under_replicated_partitions,
        ),
        ("Offline partitions", &d.offline_partitions),
    ] {
        println!();
        println!("{what}: {}", list.len());
        if list.is_empty() {
            continue;
        }
        let mut table = Table::new(&["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR"]);
        for p in list {
            table.row(vec![
                p.topic.clone(),
                p.partition.to_string(),
                p.leader.to_string(),
                ids(&p.replicas),
                ids(&p.isr),
            ]);
        }
        print!("{}", table.render());
    }
    Ok(())
}
