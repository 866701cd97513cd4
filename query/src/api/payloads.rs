//! Resolving payload references in rows to their contents.

use std::collections::{BTreeSet, HashMap, HashSet};

use cairn_schema::layout::hour_of;
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

/// The first and last hour partition of rows with a `start_time` (RFC 3339); `None` if any row
/// has none, so that every partition is read.
fn span_hours(rows: &[Row]) -> Option<(i64, i64)> {
    let mut range: Option<(i64, i64)> = None;
    for row in rows {
        let t = chrono::DateTime::parse_from_rfc3339(row.get("start_time")?.as_str()?).ok()?;
        let h = hour_of(t.timestamp_nanos_opt()?);
        range = Some(range.map_or((h, h), |(lo, hi)| (lo.min(h), hi.max(h))));
    }
    range
}

/// Contents as JSON when they are JSON, else as text.
fn value(content: &str) -> Value {
    serde_json::from_str(content).unwrap_or_else(|_| Value::String(content.to_owned()))
}

/// The contents of every payload `rows` refer to, read as the trace API reads them.
pub async fn contents(
    engine: &QueryEngine,
    tenant: &Tenant,
    rows: &[Row],
) -> Result<HashMap<String, Value>> {
    let wanted: HashSet<String> = hashes(rows).into_iter().collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let hours = span_hours(rows);
    let (runner, tenant) = (engine.clone(), tenant.clone());
    let engine = engine.clone();
    let found = runner
        .run(async move {
            let ctx = engine.session(&tenant).await?;
            crate::trace::payload_contents(&engine, &ctx, &tenant, wanted, hours).await
        })
        .await?;
    Ok(found.into_iter().map(|(h, c)| (h, value(&c))).collect())
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
