//! AlterConfigs and IncrementalAlterConfigs on the controller: the new
//! overrides of each topic (computed by `node::config_change`, the same
//! rules a standalone broker applies) become ConfigRecords, one per changed
//! key, so every broker learns them from the metadata log.

use super::image::MetadataImage;
use super::records::{ConfigRecord, MetadataRecord, CONFIG_RESOURCE_TOPIC};
use crate::node::config_change::{self, ChangeError, ChangeResults, ResourceChange};
use kafka_protocol::ResponseError;

/// Records for `changes` (none with `validate_only`) and each resource's
/// result, in request order.
pub fn alter_configs(
    image: &MetadataImage,
    changes: Vec<ResourceChange>,
    validate_only: bool,
) -> (Vec<MetadataRecord>, ChangeResults) {
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(changes.len());
    for change in changes {
        let result = topic_records(image, &change).map(|mut new| {
            if !validate_only {
                records.append(&mut new);
            }
        });
        results.push((change, result));
    }
    (records, results)
}

fn topic_records(
    image: &MetadataImage,
    change: &ResourceChange,
) -> Result<Vec<MetadataRecord>, ChangeError> {
    if change.resource_type == CONFIG_RESOURCE_TOPIC && image.topic_by_name(&change.name).is_none()
    {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("no topic '{}'", change.name),
        ));
    }
    let current = image
        .configs
        .get(&(CONFIG_RESOURCE_TOPIC, change.name.clone()))
        .cloned()
        .unwrap_or_default();
    let next = config_change::apply(&current, change)?;
    Ok(config_change::diff(&current, &next)
        .into_iter()
        .map(|(name, value)| {
            MetadataRecord::Config(ConfigRecord {
                resource_type: CONFIG_RESOURCE_TOPIC,
                resource_name: change.name.clone(),
                name,
                value,
            })
        })
        .collect())
}
