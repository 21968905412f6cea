//! `seedlog topics`: create, list, describe, alter, delete and reassign
//! topics over the Kafka protocol (CreateTopics, Metadata, DescribeConfigs,
//! IncrementalAlterConfigs, CreatePartitions, DeleteTopics; reassignment in
//! [`super::reassign`]).

use super::client::{check, str_bytes, topic_name, Admin};
use super::table::{ids, Table};
use super::{ConfigEntry, Connect};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, MetadataResponse,
};
use kafka_protocol::ResponseError;
use serde::Serialize;

const RESOURCE_TOPIC: i8 = 2;
/// DescribeConfigs' source of a config set on the topic itself.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
pub(super) const TIMEOUT_MS: i32 = 30_000;

#[derive(Debug, Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    connect: Connect,
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create a topic (CreateTopics).
    Create {
        /// The topic's name.
        name: String,
        /// Partitions; the broker's `num.partitions` if absent.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        partitions: Option<i32>,
        /// Replicas per partition; the broker's default if absent.
        #[arg(long, value_parser = clap::value_parser!(i16).range(1..))]
        replication_factor: Option<i16>,
        /// A topic config, KEY=VALUE; repeat for more.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<ConfigEntry>,
    },
    /// List the topics (Metadata).
    List {
        /// Leave out internal topics such as __consumer_offsets.
        #[arg(long)]
        exclude_internal: bool,
    },
    /// Partitions with leader, replicas and ISR, and the topic's own configs
    /// (Metadata, DescribeConfigs). Every topic if none is named.
    Describe {
        /// Topics to describe; every topic if none.
        names: Vec<String>,
        /// Show every config, defaults included, not only those set on the topic.
        #[arg(long)]
        all_configs: bool,
    },
    /// Change configs (IncrementalAlterConfigs) or add partitions
    /// (CreatePartitions).
    Alter {
        /// The topic's name.
        name: String,
        /// Set a config, KEY=VALUE; repeat for more.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<ConfigEntry>,
        /// Remove a config set on the topic (back to the default).
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
        /// The new number of partitions (only ever more).
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        partitions: Option<i32>,
    },
    /// Delete topics (DeleteTopics).
    Delete {
        /// The topics' names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Move a partition to other brokers, or cancel a move in progress
    /// (AlterPartitionReassignments). New replicas catch up first; the old
    /// ones leave once they have.
    Reassign {
        /// The topic's name.
        name: String,
        /// The partition to move.
        #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
        partition: i32,
        /// The target brokers, the preferred leader first: ID[,ID...].
        #[arg(
            long,
            value_delimiter = ',',
            value_name = "ID,...",
            required_unless_present = "cancel",
            conflicts_with = "cancel"
        )]
        replicas: Vec<i32>,
        /// Cancel the reassignment in progress (back to the replicas before
        /// it).
        #[arg(long)]
        cancel: bool,
    },
    /// The partition reassignments in progress (ListPartitionReassignments),
    /// of the named topics or of every topic.
    Reassignments {
        /// Topics to look at; every topic if none.
        names: Vec<String>,
    },
}

pub fn run(args: TopicsArgs) -> anyhow::Result<()> {
    let mut admin = args.connect.admin()?;
    let json = args.connect.json;
    match args.command {
        TopicsCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => create(
            &mut admin,
            &name,
            partitions,
            replication_factor,
            &configs,
            json,
        ),
        TopicsCommand::List { exclude_internal } => list(&mut admin, exclude_internal, json),
        TopicsCommand::Describe { names, all_configs } => {
            describe(&mut admin, &names, all_configs, json)
        }
        TopicsCommand::Alter {
            name,
            configs,
            delete_configs,
            partitions,
        } => alter(
            &mut admin,
            &name,
            &configs,
            &delete_configs,
            partitions,
            json,
        ),
        TopicsCommand::Delete { names } => delete(&mut admin, &names, json),
        TopicsCommand::Reassign {
            name,
            partition,
            replicas,
            cancel,
        } => {
            let target = (!cancel).then_some(replicas.as_slice());
            super::reassign::reassign(&mut admin, &name, partition, target, json)
        }
        TopicsCommand::Reassignments { names } => super::reassign::list(&mut admin, &names, json),
    }
}

/// Retries a controller request that met NOT_CONTROLLER (a controller
/// election in progress) a few times, asking Metadata again in between.
pub(super) fn with_controller<T>(
    admin: &mut Admin,
    mut attempt: impl FnMut(&mut Admin) -> anyhow::Result<Result<T, i16>>,
) -> anyhow::Result<Result<T, i16>> {
    let not_controller = ResponseError::NotController.code();
    for _ in 0..10 {
        match attempt(admin)? {
            Err(code) if code == not_controller => {
                admin.forget_controller();
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            other => return Ok(other),
        }
    }
    attempt(admin)
}

/// The outcome of `with_controller`: a code left over after the retries
/// (still NOT_CONTROLLER) is an error.
pub(super) fn settled<T>(outcome: Result<T, i16>, what: &str) -> anyhow::Result<T> {
    outcome.map_err(|code| anyhow::anyhow!("{what}: {}", super::client::error_name(code)))
}

fn create(
    admin: &mut Admin,
    name: &str,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    configs: &[ConfigEntry],
    json: bool,
) -> anyhow::Result<()> {
    let result = with_controller(admin, |admin| {
        let response = admin.controller()?.call(|version| {
            // Before v4 a topic must say its partitions and replicas.
            let default = |v: i16| if version >= 4 { -1 } else { v };
            let topic = CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions.unwrap_or(default(1) as i32))
                .with_replication_factor(replication_factor.unwrap_or(default(1)))
                .with_configs(
                    configs
                        .iter()
                        .map(|c| {
                            CreatableTopicConfig::default()
                                .with_name(str_bytes(&c.key))
                                .with_value(Some(str_bytes(&c.value)))
                        })
                        .collect(),
                );
            CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(TIMEOUT_MS)
        })?;
        let Some(result) = response.topics.into_iter().next() else {
            bail!("topic '{name}': the broker's CreateTopics answer names no topic");
        };
        if result.error_code == ResponseError::NotController.code() {
            return Ok(Err(result.error_code));
        }
        check(
            &format!("topic '{name}'"),
            result.error_code,
            result.error_message.as_ref(),
        )?;
        Ok(Ok(result))
    })?;
    let result = settled(result, &format!("topic '{name}'"))?;
    if json {
        print_json(&serde_json::json!({
            "topic": name,
            "created": true,
            "partitions": result.num_partitions,
            "replication_factor": result.replication_factor,
        }));
    } else {
        let mut line = format!("Created topic {name}.");
        if result.num_partitions > 0 {
            line = format!(
                "Created topic {name} with {} partition(s), replication factor {}.",
                result.num_partitions, result.replication_factor
            );
        }
        println!("{line}");
    }
    Ok(())
}

fn list(admin: &mut Admin, exclude_internal: bool, json: bool) -> anyhow::Result<()> {
    let metadata = admin.metadata(None)?;
    let mut names: Vec<String> = metadata
        .topics
        .iter()
        .filter(|t| !(exclude_internal && t.is_internal))
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    names.sort();
    if json {
        print_json(&names);
    } else {
        for name in names {
            println!("{name}");
        }
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct TopicDescription {
    name: String,
    topic_id: String,
    internal: bool,
    partitions: Vec<PartitionDescription>,
    configs: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
struct PartitionDescription {
    partition: i32,
    leader: i32,
    leader_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    offline: Vec<i32>,
}

fn describe(
    admin: &mut Admin,
    names: &[String],
    all_configs: bool,
    json: bool,
) -> anyhow::Result<()> {
    let metadata = if names.is_empty() {
        admin.metadata(None)?
    } else {
        admin.metadata(Some(names))?
    };
    let mut topics = topic_descriptions(&metadata, names)?;
    if !topics.is_empty() {
        let response = admin.any()?.call(|_| {
            DescribeConfigsRequest::default().with_resources(
                topics
                    .iter()
                    .map(|t| {
                        DescribeConfigsResource::default()
                            .with_resource_type(RESOURCE_TOPIC)
                            .with_resource_name(str_bytes(&t.name))
                            .with_configuration_keys(None)
                    })
                    .collect(),
            )
        })?;
        for result in response.results {
            check(
                &format!("configs of topic '{}'", result.resource_name.as_str()),
                result.error_code,
                result.error_message.as_ref(),
            )?;
            let Some(topic) = topics
                .iter_mut()
                .find(|t| t.name == result.resource_name.as_str())
            else {
                continue;
            };
            topic.configs = result
                .configs
                .iter()
                .filter(|c| all_configs || c.config_source == DYNAMIC_TOPIC_CONFIG)
                .map(|c| {
                    let value = match (&c.value, c.is_sensitive) {
                        (_, true) => "(sensitive)".to_string(),
                        (Some(v), false) => v.to_string(),
                        (None, false) => "(null)".to_string(),
                    };
                    (c.name.to_string(), value)
                })
                .collect();
            topic.configs.sort();
        }
    }
    if json {
        print_json(&topics);
        return Ok(());
    }
    for (i, topic) in topics.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let replication = topic.partitions.first().map_or(0, |p| p.replicas.len());
        let configs: Vec<String> = topic
            .configs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
            topic.name,
            topic.topic_id,
            topic.partitions.len(),
            replication,
            configs.join(",")
        );
        let mut table = Table::new(&["PARTITION", "LEADER", "REPLICAS", "ISR", "OFFLINE"]);
        for p in &topic.partitions {
            table.row(vec![
                p.partition.to_string(),
                if p.leader < 0 {
                    "none".to_string()
                } else {
                    p.leader.to_string()
                },
                ids(&p.replicas),
                ids(&p.isr),
                ids(&p.offline),
            ]);
        }
        print!("{}", table.render());
    }
    Ok(())
}

/// The topics of a Metadata answer, in name order; an error naming the
/// first asked-for topic that came back with an error.
fn topic_descriptions(
    metadata: &MetadataResponse,
    asked: &[String],
) -> anyhow::Result<Vec<TopicDescription>> {
    let mut topics = Vec::new();
    for topic in &metadata.topics {
        let name = topic
            .name
            .as_ref()
            .map(|n| n.0.to_string())
            .unwrap_or_default();
        check(&format!("topic '{name}'"), topic.error_code, None)?;
        let mut partitions: Vec<PartitionDescription> = topic
            .partitions
            .iter()
            .map(|p| PartitionDescription {
                partition: p.partition_index,
                leader: p.leader_id.0,
                leader_epoch: p.leader_epoch,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                offline: p.offline_replicas.iter().map(|b| b.0).collect(),
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        topics.push(TopicDescription {
            name,
            topic_id: topic.topic_id.to_string(),
            internal: topic.is_internal,
            partitions,
            configs: Vec::new(),
        });
    }
    for name in asked {
        if !topics.iter().any(|t| &t.name == name) {
            bail!(
                "topic '{name}': {}",
                super::client::error_name(ResponseError::UnknownTopicOrPartition.code())
            );
        }
    }
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(topics)
}

fn alter(
    admin: &mut Admin,
    name: &str,
    configs: &[ConfigEntry],
    delete_configs: &[String],
    partitions: Option<i32>,
    json: bool,
) -> anyhow::Result<()> {
    if configs.is_empty() && delete_configs.is_empty() && partitions.is_none() {
        bail!("nothing to alter: give --config KEY=VALUE, --delete-config KEY or --partitions N");
    }
    let what = format!("topic '{name}'");
    topics_exist(admin, &[name.to_string()])?;
    let mut done = Vec::new();
    if !configs.is_empty() || !delete_configs.is_empty() {
        let outcome = with_controller(admin, |admin| {
            let response = admin.controller()?.call(|_| {
                let set = configs.iter().map(|c| {
                    AlterableConfig::default()
                        .with_name(str_bytes(&c.key))
                        .with_config_operation(OP_SET)
                        .with_value(Some(str_bytes(&c.value)))
                });
                let remove = delete_configs.iter().map(|k| {
                    AlterableConfig::default()
                        .with_name(str_bytes(k))
                        .with_config_operation(OP_DELETE)
                        .with_value(None)
                });
                IncrementalAlterConfigsRequest::default().with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(RESOURCE_TOPIC)
                        .with_resource_name(str_bytes(name))
                        .with_configs(set.chain(remove).collect()),
                ])
            })?;
            let result = response.responses.into_iter().next();
            Ok(match result {
                Some(r) if r.error_code == ResponseError::NotController.code() => Err(r.error_code),
                Some(r) => {
                    check(&what, r.error_code, r.error_message.as_ref())?;
                    Ok(())
                }
                None => bail!("{what}: the IncrementalAlterConfigs answer names no resource"),
            })
        })?;
        settled(outcome, &what)?;
        for c in configs {
            done.push(format!("set {}={}", c.key, c.value));
        }
        for k in delete_configs {
            done.push(format!("deleted {k}"));
        }
    }
    if let Some(count) = partitions {
        let outcome = with_controller(admin, |admin| {
            let response = admin.controller()?.call(|_| {
                CreatePartitionsRequest::default()
                    .with_topics(vec![CreatePartitionsTopic::default()
                        .with_name(topic_name(name))
                        .with_count(count)
                        .with_assignments(None)])
                    .with_timeout_ms(TIMEOUT_MS)
            })?;
            Ok(match response.results.into_iter().next() {
                Some(r) if r.error_code == ResponseError::NotController.code() => Err(r.error_code),
                Some(r) => {
                    check(&what, r.error_code, r.error_message.as_ref())?;
                    Ok(())
                }
                None => bail!("{what}: the CreatePartitions answer names no topic"),
            })
        })?;
        settled(outcome, &what)?;
        done.push(format!("partitions={count}"));
    }
    if json {
        print_json(&serde_json::json!({ "topic": name, "altered": done }));
    } else {
        println!("Altered topic {name}: {}.", done.join(", "));
    }
    Ok(())
}

/// An error naming the first of `names` that Metadata does not know.
pub(super) fn topics_exist(admin: &mut Admin, names: &[String]) -> anyhow::Result<()> {
    let metadata = admin.metadata(Some(names))?;
    topic_descriptions(&metadata, names).map(|_| ())
}

fn delete(admin: &mut Admin, names: &[String], json: bool) -> anyhow::Result<()> {
    let outcome = with_controller(admin, |admin| {
        let response = admin.controller()?.call(|version| {
            let request = DeleteTopicsRequest::default().with_timeout_ms(TIMEOUT_MS);
            if version >= 6 {
                request.with_topics(
                    names
                        .iter()
                        .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                        .collect(),
                )
            } else {
                request.with_topic_names(names.iter().map(|n| topic_name(n)).collect())
            }
        })?;
        if let Some(r) = response
            .responses
            .iter()
            .find(|r| r.error_code == ResponseError::NotController.code())
        {
            return Ok(Err(r.error_code));
        }
        Ok(Ok(response))
    })?;
    let response = settled(outcome, "DeleteTopics")?;
    let mut errors = Vec::new();
    let mut deleted = Vec::new();
    for r in &response.responses {
        let name = r
            .name
            .as_ref()
            .map(|n| n.0.to_string())
            .unwrap_or_else(|| r.topic_id.to_string());
        match check(
            &format!("topic '{name}'"),
            r.error_code,
            r.error_message.as_ref(),
        ) {
            Ok(()) => deleted.push(name),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if json {
        print_json(&serde_json::json!({ "deleted": deleted, "errors": errors }));
    } else {
        for name in &deleted {
            println!("Deleted topic {name}.");
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(())
}

pub fn print_json<T: Serialize + ?Sized>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value)
            .context("encoding JSON")
            .expect("admin output is plain data")
    );
}
