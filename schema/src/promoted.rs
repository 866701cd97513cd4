//! The promoted agent columns of `spans`: typed copies of what agent instrumentations emit, each
//! followed by `<column>_src`, the attribute it came from; and the payload reference columns.
//!
//! Only names and types live here. Which attributes fill each column (candidate names, their
//! precedence, the rules of the derived columns) is normalisation's business: `cairn-normalize`
//! reads it from its conventions table, and refuses a table whose columns differ from these.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field};

/// How a promoted value is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Integer,
    Float,
    TextList,
}

impl Kind {
    pub fn data_type(self) -> DataType {
        match self {
            Kind::Text => DataType::Utf8,
            Kind::Integer => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::TextList => text_list(),
        }
    }
}

fn text_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// Columns computed by rules rather than read from one attribute, in schema order.
pub const DERIVED: &[(&str, Kind)] = &[
    ("operation", Kind::Text),
    ("provider", Kind::Text),
    ("framework", Kind::Text),
    ("parent_agent_name", Kind::Text),
    ("requested_tool_call_ids", Kind::TextList),
    ("requested_tool_names", Kind::TextList),
    ("data_read", Kind::TextList),
    ("data_written", Kind::TextList),
];

/// Columns read from the first attribute present of a list of candidates, in schema order
/// (after [`DERIVED`]).
pub const COPIED: &[(&str, Kind)] = &[
    ("operation_raw", Kind::Text),
    ("agent_id", Kind::Text),
    ("agent_name", Kind::Text),
    ("conversation_id", Kind::Text),
    ("user_id", Kind::Text),
    ("tool_name", Kind::Text),
    ("tool_call_id", Kind::Text),
    ("tool_type", Kind::Text),
    ("request_model", Kind::Text),
    ("response_model", Kind::Text),
    ("input_tokens", Kind::Integer),
    ("output_tokens", Kind::Integer),
    ("cache_read_tokens", Kind::Integer),
    ("cache_write_tokens", Kind::Integer),
    ("reasoning_tokens", Kind::Integer),
    ("rollup_input_tokens", Kind::Integer),
    ("rollup_output_tokens", Kind::Integer),
    ("cost", Kind::Float),
    ("cost_currency", Kind::Text),
    ("sandbox_id", Kind::Text),
    ("sandbox_template", Kind::Text),
    ("sandbox_provider", Kind::Text),
    ("k8s_namespace", Kind::Text),
    ("k8s_pod_name", Kind::Text),
    ("k8s_pod_uid", Kind::Text),
    ("k8s_node_name", Kind::Text),
    ("k8s_container_name", Kind::Text),
    ("k8s_service_account", Kind::Text),
    ("container_id", Kind::Text),
    ("host_name", Kind::Text),
    ("service_instance_id", Kind::Text),
    ("process_pid", Kind::Integer),
    ("policy_ref", Kind::Text),
    ("policy_hash", Kind::Text),
    ("guardrail_verdict", Kind::Text),
    ("approval_state", Kind::Text),
    ("approver", Kind::Text),
    ("approval_request_id", Kind::Text),
];

/// Where a span ran on Kubernetes beyond what [`COPIED`] holds, in schema order (after it): from
/// the span's resource attributes where they say it (`k8s.deployment.name`, `k8s.pod.label.*`,
/// …), otherwise from the Kubernetes API (`_src = k8s_api`). `k8s_labels` holds `key=value`
/// entries of the selected pod labels and annotations.
pub const PLACEMENT: &[(&str, Kind)] = &[
    ("k8s_runtime_class", Kind::Text),
    ("k8s_workload_kind", Kind::Text),
    ("k8s_workload_name", Kind::Text),
    ("k8s_labels", Kind::TextList),
];

/// The redaction record, after [`PLACEMENT`] and without a `_src`: `rule@location` entries, one
/// for each redaction rule that removed something from the span's data at ingest and where
/// (`attribute:<key>`, `resource:<key>`, `scope:<key>`, `event:<name>:<key>`, `link:<key>`,
/// `name`, `status_message`), read from the reserved span attribute `cairn.redactions` that only
/// the collector writes. Null when nothing was redacted (and in files of schema version 3).
pub const REDACTIONS: &str = "redactions";

/// Payload reference columns, in schema order: the hash of a payload, or a list of hashes
/// (`true`) for values split into one payload per element (message lists).
pub const PAYLOAD_REFS: &[(&str, bool)] = &[
    ("input_message_refs", true),
    ("output_message_refs", true),
    ("system_instructions_ref", false),
    ("tool_definitions_ref", false),
    ("tool_arguments_ref", false),
    ("tool_result_ref", false),
    ("policy_document_ref", false),
];

/// (name, kind) of every promoted column in schema order: each value followed by its `_src`,
/// then [`REDACTIONS`].
pub fn output_columns() -> Vec<(String, Kind)> {
    DERIVED
        .iter()
        .chain(COPIED)
        .chain(PLACEMENT)
        .flat_map(|&(name, kind)| [(name.to_owned(), kind), (format!("{name}_src"), Kind::Text)])
        .chain([(REDACTIONS.to_owned(), Kind::TextList)])
        .collect()
}

/// Arrow fields of the promoted columns.
pub fn fields() -> Vec<Field> {
    output_columns()
        .into_iter()
        .map(|(name, kind)| Field::new(name, kind.data_type(), true))
        .collect()
}

/// Arrow fields of the payload reference columns: each followed by its `_src`.
pub fn ref_fields() -> Vec<Field> {
    PAYLOAD_REFS
        .iter()
        .flat_map(|&(name, list)| {
            let data_type = if list { text_list() } else { DataType::Utf8 };
            [
                Field::new(name, data_type, true),
                Field::new(format!("{name}_src"), DataType::Utf8, true),
            ]
        })
        .collect()
}
