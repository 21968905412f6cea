//! AlterConfigs and IncrementalAlterConfigs as pure functions: a topic's
//! current overrides and the request's operations in, the new overrides (or
//! the error that refuses the whole resource) out. The standalone node
//! applies the result to its registry; the controller turns the difference
//! into ConfigRecords. Only topic resources are alterable: dynamic broker
//! configs are refused plainly.

use super::topic_config;
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

/// Kafka's ConfigResource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
/// Configs changed per resource in one request.
const CHANGES_PER_RESOURCE_MAX: usize = 1_000;

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub type Overrides = BTreeMap<String, String>;
pub type ChangeError = (ResponseError, String);
/// Each resource of a request with its result, in request order.
pub type ChangeResults = Vec<(ResourceChange, Result<(), ChangeError>)>;

/// One resource of either request, normalised.
pub struct ResourceChange {
    pub resource_type: i8,
    pub name: String,
    /// `(config, op, value)`; AlterConfigs is a SET of every listed config
    /// and a DELETE of every other.
    pub ops: Vec<(String, i8, Option<String>)>,
    pub replace_all: bool,
}

pub fn incremental_changes(request: &IncrementalAlterConfigsRequest) -> Vec<ResourceChange> {
    request
        .resources
        .iter()
        .map(|r| ResourceChange {
            resource_type: r.resource_type,
            name: r.resource_name.to_string(),
            ops: r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect(),
            replace_all: false,
        })
        .collect()
}

pub fn legacy_changes(request: &AlterConfigsRequest) -> Vec<ResourceChange> {
    request
        .resources
        .iter()
        .map(|r| ResourceChange {
            resource_type: r.resource_type,
            name: r.resource_name.to_string(),
            ops: r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        OP_SET,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect(),
            replace_all: true,
        })
        .collect()
}

/// The overrides after `change`, or why the resource is refused. The caller
/// has checked that the topic exists.
pub fn apply(current: &Overrides, change: &ResourceChange) -> Result<Overrides, ChangeError> {
    if change.resource_type == RESOURCE_BROKER {
        return Err((
            ResponseError::InvalidRequest,
            "dynamic broker configs are not supported; set them at start-up".to_string(),
        ));
    }
    if change.resource_type != RESOURCE_TOPIC {
        return Err((
            ResponseError::InvalidRequest,
            format!(
                "config resource type {} is not supported",
                change.resource_type
            ),
        ));
    }
    if change.ops.len() > CHANGES_PER_RESOURCE_MAX {
        return Err((
            ResponseError::InvalidRequest,
            "too many config changes".to_string(),
        ));
    }
    let mut next = if change.replace_all {
        Overrides::new()
    } else {
        current.clone()
    };
    for (name, op, value) in &change.ops {
        apply_one(&mut next, name, *op, value.as_deref())?;
    }
    Ok(next)
}

fn apply_one(
    overrides: &mut Overrides,
    name: &str,
    op: i8,
    value: Option<&str>,
) -> Result<(), ChangeError> {
    let invalid = |message: String| (ResponseError::InvalidConfig, message);
    match op {
        OP_DELETE => {
            topic_config::validate_name(name).map_err(invalid)?;
            overrides.remove(name);
        }
        OP_SET | OP_APPEND | OP_SUBTRACT => {
            let Some(value) = value else {
                if op == OP_SET {
                    // AlterConfigs with a null value means "back to the default".
                    topic_config::validate_name(name).map_err(invalid)?;
                    overrides.remove(name);
                    return Ok(());
                }
                return Err(invalid(format!("'{name}' needs a value")));
            };
            let value = list_op(overrides.get(name).map(String::as_str), op, value);
            topic_config::validate(name, &value).map_err(invalid)?;
            overrides.insert(name.to_string(), value);
        }
        other => {
            return Err((
                ResponseError::InvalidRequest,
                format!("unknown config operation {other}"),
            ))
        }
    }
    Ok(())
}

/// APPEND and SUBTRACT work on comma-separated lists (`cleanup.policy`).
fn list_op(current: Option<&str>, op: i8, value: &str) -> String {
    let mut items: Vec<&str> = current
        .map(|c| c.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    match op {
        OP_APPEND => {
            if !items.contains(&value) {
                items.push(value);
            }
            items.join(",")
        }
        OP_SUBTRACT => {
            items.retain(|i| *i != value);
            items.join(",")
        }
        _ => value.to_string(),
    }
}

/// `(config, Some(value) | None for removed)` that turn `from` into `to`.
pub fn diff(from: &Overrides, to: &Overrides) -> Vec<(String, Option<String>)> {
    let mut changes = Vec::new();
    for (name, value) in to {
        if from.get(name) != Some(value) {
            changes.push((name.clone(), Some(value.clone())));
        }
    }
    for name in from.keys() {
        if !to.contains_key(name) {
            changes.push((name.clone(), None));
        }
    }
    changes
}

/// The two requests answer with per-resource results of the same fields in
/// two generated types; this fills either.
macro_rules! resource_results {
    ($results:expr, $entry:ty) => {
        $results
            .into_iter()
            .map(|(change, result)| {
                let (code, message) = match result {
                    Ok(()) => (0, None),
                    Err((error, message)) => (error.code(), Some(StrBytes::from_string(message))),
                };
                <$entry>::default()
                    .with_resource_type(change.resource_type)
                    .with_resource_name(StrBytes::from_string(change.name))
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect()
    };
}

/// The response of IncrementalAlterConfigs from per-resource results.
pub fn incremental_response(results: ChangeResults) -> IncrementalAlterConfigsResponse {
    IncrementalAlterConfigsResponse::default().with_responses(resource_results!(
        results,
        incremental_alter_configs_response::AlterConfigsResourceResponse
    ))
}

/// The response of AlterConfigs from per-resource results.
pub fn legacy_response(results: ChangeResults) -> AlterConfigsResponse {
    AlterConfigsResponse::default().with_responses(resource_results!(
        results,
        alter_configs_response::AlterConfigsResourceResponse
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(ops: &[(&str, i8, Option<&str>)], replace_all: bool) -> ResourceChange {
        ResourceChange {
            resource_type: RESOURCE_TOPIC,
            name: "t".to_string(),
            ops: ops
                .iter()
                .map(|(n, o, v)| (n.to_string(), *o, v.map(str::to_string)))
                .collect(),
            replace_all,
        }
    }

    #[test]
    fn incremental_ops_set_delete_and_append() {
        let mut current = Overrides::new();
        current.insert("retention.ms".into(), "1000".into());
        let next = apply(
            &current,
            &change(
                &[
                    ("segment.bytes", OP_SET, Some("1048576")),
                    ("retention.ms", OP_DELETE, None),
                    ("cleanup.policy", OP_APPEND, Some("delete")),
                    ("cleanup.policy", OP_APPEND, Some("delete")),
                ],
                false,
            ),
        )
        .expect("valid");
        assert_eq!(
            next.get("segment.bytes").map(String::as_str),
            Some("1048576")
        );
        assert!(!next.contains_key("retention.ms"));
        assert_eq!(
            next.get("cleanup.policy").map(String::as_str),
            Some("delete"),
            "appended once"
        );
        assert_eq!(
            diff(&current, &next).len(),
            3,
            "{:?}",
            diff(&current, &next)
        );
    }

    #[test]
    fn list_ops_append_and_subtract_items() {
        assert_eq!(
            list_op(Some("compact"), OP_APPEND, "delete"),
            "compact,delete"
        );
        assert_eq!(
            list_op(Some("compact,delete"), OP_SUBTRACT, "compact"),
            "delete"
        );
        assert_eq!(list_op(None, OP_APPEND, "delete"), "delete");
    }

    #[test]
    fn bad_names_values_and_broker_resources_are_refused_with_a_reason() {
        let current = Overrides::new();
        let (error, message) = apply(
            &current,
            &change(&[("retention.ms", OP_SET, Some("soon"))], false),
        )
        .expect_err("not a number");
        assert_eq!(error, ResponseError::InvalidConfig);
        assert!(message.contains("retention.ms"), "{message}");
        let (error, _) = apply(
            &current,
            &change(&[("no.such.config", OP_SET, Some("1"))], false),
        )
        .expect_err("unknown");
        assert_eq!(error, ResponseError::InvalidConfig);
        let mut broker = change(&[("log.retention.ms", OP_SET, Some("1"))], false);
        broker.resource_type = RESOURCE_BROKER;
        assert_eq!(
            apply(&current, &broker).unwrap_err().0,
            ResponseError::InvalidRequest
        );
    }

    #[test]
    fn legacy_alter_configs_replaces_every_override() {
        let mut current = Overrides::new();
        current.insert("retention.ms".into(), "1000".into());
        let next = apply(
            &current,
            &change(&[("segment.ms", OP_SET, Some("5000"))], true),
        )
        .expect("valid");
        assert_eq!(next.len(), 1);
        assert_eq!(next.get("segment.ms").map(String::as_str), Some("5000"));
    }
}
