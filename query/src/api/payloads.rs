//! Payload references of steps and the payloads they refer to: contents set beside the
//! references, payloads described (kind, size, small contents inline), and any expression over
//! `payloads` per hash, each read through the index-pruned lookup of
//! [`crate::trace::payload_rows`].

use std::collections::{BTreeSet, HashMap, HashSet};

use arrow::array::RecordBatch;
use cairn_schema::tenant::Tenant;
use datafusion::functions::string::expr_fn::octet_length;
use datafusion::logical_expr::{when, Expr};
use datafusion::prelude::{col, lit};
use serde::Serialize;
use serde_json::Value;

use super::step::{Column, Step};
use crate::{QueryEngine, Result};

/// The payload fields of a step, as answers name them, with their reference columns: first the
/// [`LISTS`] (a list of references each), then one reference each.
pub const FIELDS: [(&str, &str); 7] = [
    ("input_messages", "input_message_refs"),
    ("output_messages", "output_message_refs"),
    ("system_instructions", "system_instructions_ref"),
    ("tool_definitions", "tool_definitions_ref"),
    ("tool_arguments", "tool_arguments_ref"),
    ("tool_result", "tool_result_ref"),
    ("policy_document", "policy_document_ref"),
];

/// How many of [`FIELDS`] are lists.
const LISTS: usize = 2;

/// The reference columns of [`FIELDS`].
pub fn ref_columns() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().map(|(_, column)| *column)
}

/// SQL: whether a row of `spans` refers to the payload whose hash is `param` (a placeholder).
pub fn refers_to(param: &str) -> String {
    let (lists, ones) = FIELDS.split_at(LISTS);
    lists
        .iter()
        .map(|(_, c)| format!("array_has({c}, {param})"))
        .chain(ones.iter().map(|(_, c)| format!("{c} = {param}")))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Each payload reference of `step` with its field, in the order of [`FIELDS`] (a list's in
/// its order).
pub fn references(step: &Step) -> Vec<(&'static str, &String)> {
    let lists = [&step.input_message_refs, &step.output_message_refs];
    let ones = [
        &step.system_instructions_ref,
        &step.tool_definitions_ref,
        &step.tool_arguments_ref,
        &step.tool_result_ref,
        &step.policy_document_ref,
    ];
    let (list_fields, one_fields) = FIELDS.split_at(LISTS);
    let mut out = Vec::new();
    for ((field, _), refs) in list_fields.iter().zip(lists) {
        out.extend(refs.iter().flatten().map(|h| (*field, h)));
    }
    for ((field, _), one) in one_fields.iter().zip(ones) {
        out.extend(one.iter().map(|h| (*field, h)));
    }
    out
}

/// Contents as JSON when they are JSON, else as text.
pub fn value(content: &str) -> Value {
    serde_json::from_str(content).unwrap_or_else(|_| Value::String(content.to_owned()))
}

/// One row per payload of `wanted` found (its hash, then `columns`, expressions over
/// `payloads`), looked up as the trace API looks up the payloads of `steps` (which refer to
/// them): through the trace index entries of their runs and the hours they started in.
pub async fn rows(
    engine: &QueryEngine,
    tenant: &Tenant,
    wanted: HashSet<String>,
    steps: &[Step],
    columns: Vec<Expr>,
) -> Result<Vec<RecordBatch>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    // Every step has a start time when read whole; otherwise every partition is read.
    let hours = steps
        .iter()
        .map(|s| s.start_time.map(|t| t.0))
        .collect::<Option<Vec<i64>>>()
        .and_then(crate::trace::hour_range);
    let traces: BTreeSet<String> = steps.iter().filter_map(|s| s.trace_id.clone()).collect();
    let (runner, owned) = (engine.clone(), tenant.clone());
    let engine = engine.clone();
    runner
        .run(tenant, async move {
            let ctx = engine.session(&owned).await?;
            crate::trace::payload_rows(&engine, &ctx, &owned, wanted, &traces, hours, columns).await
        })
        .await
}

/// The contents (as stored) of the payloads of `wanted` found, referred to by `steps`.
pub async fn texts(
    engine: &QueryEngine,
    tenant: &Tenant,
    wanted: HashSet<String>,
    steps: &[Step],
) -> Result<HashMap<String, String>> {
    let batches = rows(engine, tenant, wanted, steps, vec![col("content")]).await?;
    let mut found = HashMap::new();
    for b in &batches {
        let (hashes, contents) = (String::read(b.column(0))?, String::read(b.column(1))?);
        found.extend(
            hashes
                .into_iter()
                .zip(contents)
                .filter_map(|(h, c)| Some((h?, c?))),
        );
    }
    Ok(found)
}

/// The contents of every payload `steps` refer to, read as the trace API reads them.
async fn contents(
    engine: &QueryEngine,
    tenant: &Tenant,
    steps: &[Step],
) -> Result<HashMap<String, Value>> {
    let wanted: HashSet<String> = steps
        .iter()
        .flat_map(references)
        .map(|(_, h)| h.clone())
        .collect();
    let texts = texts(engine, tenant, wanted, steps).await?;
    Ok(texts.into_iter().map(|(h, c)| (h, value(&c))).collect())
}

/// A payload as the step inspector and the payload endpoint show it.
#[derive(Debug, Clone, Serialize)]
pub struct Described {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The size of the content in bytes (UTF-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<i64>,
    /// The content (JSON when it is JSON, else text), when read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
}

/// The payloads of `wanted` (referred to by `steps`) found, each with its kind and size, and
/// its content when it is at most `inline_bytes` long.
pub async fn describe(
    engine: &QueryEngine,
    tenant: &Tenant,
    wanted: HashSet<String>,
    steps: &[Step],
    inline_bytes: usize,
) -> Result<HashMap<String, Described>> {
    let size = octet_length(col("content"));
    let up_to = i64::try_from(inline_bytes).unwrap_or(i64::MAX);
    let small = when(size.clone().lt_eq(lit(up_to)), col("content")).end()?;
    let columns = vec![col("kind"), size.alias("bytes"), small.alias("content")];
    let batches = rows(engine, tenant, wanted, steps, columns).await?;
    let mut found = HashMap::new();
    for b in &batches {
        let hashes = String::read(b.column(0))?;
        let kinds = String::read(b.column(1))?;
        let sizes = i64::read(b.column(2))?;
        let contents = String::read(b.column(3))?;
        for (((h, kind), bytes), content) in hashes.into_iter().zip(kinds).zip(sizes).zip(contents)
        {
            if let Some(h) = h {
                let content = content.as_deref().map(value);
                found.insert(
                    h,
                    Described {
                        kind,
                        bytes,
                        content,
                    },
                );
            }
        }
    }
    Ok(found)
}

/// Reads the payloads `steps` refer to and sets them beside their references.
pub async fn attach(engine: &QueryEngine, tenant: &Tenant, steps: &mut [Step]) -> Result<()> {
    let contents = contents(engine, tenant, steps).await?;
    resolve(steps, &contents);
    Ok(())
}

/// Sets the resolved contents of each step beside its references.
fn resolve(steps: &mut [Step], contents: &HashMap<String, Value>) {
    let one = |h: &Option<String>| h.as_ref().and_then(|h| contents.get(h)).cloned();
    let list = |l: &Option<Vec<String>>| {
        l.as_ref().map(|l| {
            l.iter()
                .map(|h| contents.get(h).cloned().unwrap_or(Value::Null))
                .collect()
        })
    };
    for s in steps {
        s.system_instructions = one(&s.system_instructions_ref);
        s.tool_definitions = one(&s.tool_definitions_ref);
        s.arguments = one(&s.tool_arguments_ref);
        s.result = one(&s.tool_result_ref);
        s.policy_document = one(&s.policy_document_ref);
        s.input_messages = list(&s.input_message_refs);
        s.output_messages = list(&s.output_message_refs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_their_field_in_order() {
        let step = Step {
            input_message_refs: Some(vec!["i1".into(), "i2".into()]),
            output_message_refs: Some(vec!["o1".into()]),
            tool_result_ref: Some("r".into()),
            policy_document_ref: Some("p".into()),
            ..Step::default()
        };
        let refs: Vec<(&str, &str)> = references(&step)
            .into_iter()
            .map(|(f, h)| (f, h.as_str()))
            .collect();
        assert_eq!(
            refs,
            [
                ("input_messages", "i1"),
                ("input_messages", "i2"),
                ("output_messages", "o1"),
                ("tool_result", "r"),
                ("policy_document", "p"),
            ]
        );
        // Every reference column is a step column.
        for c in ref_columns() {
            assert!(super::super::step::COLUMNS.contains(&c), "{c}");
        }
        assert_eq!(
            refers_to("$2"),
            "array_has(input_message_refs, $2) OR array_has(output_message_refs, $2) OR \
             system_instructions_ref = $2 OR tool_definitions_ref = $2 OR \
             tool_arguments_ref = $2 OR tool_result_ref = $2 OR policy_document_ref = $2"
        );
    }
}
