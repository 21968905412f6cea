//! AlterConfigs and IncrementalAlterConfigs on a standalone broker: the new
//! overrides go to the registry (durably) and to every partition's log at
//! once. A cluster node forwards both requests to the controller instead.

use super::super::config_change::{self, ChangeError, ResourceChange, RESOURCE_TOPIC};
use super::super::{topic_config, Node};
use crate::storage::Storage;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::ResponseError;

impl<S: Storage> Node<S> {
    pub(crate) fn handle_incremental_alter_configs(
        &mut self,
        request: &IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        let changes = config_change::incremental_changes(request);
        config_change::incremental_response(
            self.alter_topic_configs(changes, request.validate_only),
        )
    }

    pub(crate) fn handle_alter_configs(
        &mut self,
        request: &AlterConfigsRequest,
    ) -> AlterConfigsResponse {
        let changes = config_change::legacy_changes(request);
        config_change::legacy_response(self.alter_topic_configs(changes, request.validate_only))
    }

    fn alter_topic_configs(
        &mut self,
        changes: Vec<ResourceChange>,
        validate_only: bool,
    ) -> config_change::ChangeResults {
        changes
            .into_iter()
            .map(|change| {
                let result = self.alter_topic_config(&change, validate_only);
                (change, result)
            })
            .collect()
    }

    fn alter_topic_config(
        &mut self,
        change: &ResourceChange,
        validate_only: bool,
    ) -> Result<(), ChangeError> {
        let current = match self.topics.get(&change.name) {
            Some(topic) => topic.overrides.clone(),
            None if change.resource_type == RESOURCE_TOPIC => {
                return Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("no topic '{}'", change.name),
                ))
            }
            None => Default::default(),
        };
        let next = config_change::apply(&current, change)?;
        if validate_only || next == current {
            return Ok(());
        }
        self.set_topic_overrides(&change.name, next);
        if let Err(e) = self.topics.persist(&mut self.storage) {
            self.set_topic_overrides(&change.name, current);
            return Err((ResponseError::KafkaStorageError, e.to_string()));
        }
        tracing::info!(topic = %change.name, "topic configs changed");
        Ok(())
    }

    /// Makes `overrides` the topic's, in memory and in every partition's log.
    pub(crate) fn set_topic_overrides(
        &mut self,
        topic: &str,
        overrides: std::collections::BTreeMap<String, String>,
    ) {
        let config = topic_config::log_config(&overrides, &self.config.log);
        let Some(topic) = self.topics.get_mut(topic) else {
            return;
        };
        for (_, p) in topic.partitions_mut() {
            p.log.set_config(config.clone());
        }
        topic.overrides = overrides;
    }
}
