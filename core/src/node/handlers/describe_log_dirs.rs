//! DescribeLogDirs: one log directory holding every partition.

use super::super::Node;
use super::str_bytes;
use crate::storage::Storage;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

/// The name the single log directory is reported under.
pub const LOG_DIR: &str = "/seedlog-data";
/// Kafka's "unknown" for a log directory's total and usable bytes.
const BYTES_UNKNOWN: i64 = -1;

impl<S: Storage> Node<S> {
    pub(crate) fn handle_describe_log_dirs(
        &mut self,
        request: &DescribeLogDirsRequest,
    ) -> DescribeLogDirsResponse {
        // None: every partition. Otherwise only the named ones that exist,
        // as Kafka leaves unknown partitions out.
        let wanted: Vec<(String, Vec<i32>)> = match &request.topics {
            None => self
                .topics
                .iter()
                .map(|t| (t.name.clone(), t.partitions().keys().copied().collect()))
                .collect(),
            Some(topics) => topics
                .iter()
                .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
                .collect(),
        };
        let mut topics = Vec::new();
        for (name, partitions) in wanted {
            let Some(topic) = self.topics.get(&name) else {
                continue;
            };
            let partitions: Vec<DescribeLogDirsPartition> = partitions
                .into_iter()
                .filter_map(|index| {
                    let p = topic.partitions().get(&index)?;
                    Some(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(index)
                            .with_partition_size(i64::try_from(p.log.size_bytes()).ok()?)
                            .with_offset_lag(0)
                            .with_is_future_key(false),
                    )
                })
                .collect();
            if !partitions.is_empty() {
                topics.push(
                    DescribeLogDirsTopic::default()
                        .with_name(TopicName(str_bytes(&name)))
                        .with_partitions(partitions),
                );
            }
        }
        let dir = DescribeLogDirsResult::default()
            .with_log_dir(str_bytes(LOG_DIR))
            .with_topics(topics)
            .with_total_bytes(BYTES_UNKNOWN)
            .with_usable_bytes(BYTES_UNKNOWN);
        DescribeLogDirsResponse::default().with_results(vec![dir])
    }
}
