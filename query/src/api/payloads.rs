//! Resolving payload references in rows to their contents.

use std::collections::{BTreeSet, HashMap};

use cairn_schema::tenant::Tenant;
use serde_json::Value;

use super::Row;
use crate::{QueryEngine, Result};

/// Columns holding one payload reference, and the field each resolves into.
pub const SINGLE: &[(&str, &str)] = &[
    ("system_instructions_ref", "system_instructions"),
    ("tool_definitions_ref", "tool_definitions"),
    ("tool_arguments_ref", "arguments"),
    ("tool_result_ref", "result"),
    ("policy_document_ref", "policy_document"),
];
/// Columns holding a list of message references.
pub const LISTS: &[(&str, &str)] = &[
    ("input_message_refs", "input_messages"),
    ("output_message_refs", "output_messages"),
];

fn hashes(rows: &[Row]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for row in rows {
        for (col, _) in SINGLE {
            if let Some(Value::String(h)) = row.get(*col) {
                out.insert(h.clone());
            }
        }
        for (col, _) in LISTS {
            if let Some(Value::Array(list)) = row.get(*col) {
                out.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
            }
        }
    }
    out
}

/// Contents as JSON when they are JSON, else as text.
fn value(content: &str) -> Value {
    serde_json::from_str(content).unwrap_or_else(|_| Value::String(content.to_owned()))
}

/// The contents of every payload `rows` refer to.
pub async fn contents(
    engine: &QueryEngine,
    tenant: &Tenant,
    rows: &[Row],
) -> Result<HashMap<String, Value>> {
    // Hashes are hex, checked here, so they can be listed in the statement.
    let wanted: Vec<String> = hashes(rows)
        .into_iter()
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let list = wanted
        .iter()
        .map(|h| format!("'{h}'"))
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "SELECT hash, first_value(content) AS content FROM payloads WHERE hash IN ({list}) GROUP BY hash"
    );
    let found = engine.rows(tenant, &sql, vec![]).await?;
    Ok(found
        .into_iter()
        .filter_map(|r| {
            Some((
                super::field(&r, "hash")?.to_owned(),
                value(super::field(&r, "content")?),
            ))
        })
        .collect())
}

/// Adds the resolved contents to each row beside its references.
pub fn resolve(rows: &mut [Row], contents: &HashMap<String, Value>) {
    for row in rows {
        for (col, name) in SINGLE {
            if let Some(c) = row
                .get(*col)
                .and_then(Value::as_str)
                .and_then(|h| contents.get(h))
            {
                row.insert((*name).into(), c.clone());
            }
        }
        for (col, name) in LISTS {
            if let Some(Value::Array(list)) = row.get(*col) {
                let resolved: Vec<Value> = list
                    .iter()
                    .map(|h| {
                        h.as_str()
                            .and_then(|h| contents.get(h))
                            .cloned()
                            .unwrap_or(Value::Null)
                    })
                    .collect();
                row.insert((*name).into(), Value::Array(resolved));
            }
        }
    }
}
