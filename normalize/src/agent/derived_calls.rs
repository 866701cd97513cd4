//! Why-links without ids: a tool execution whose span carries no tool call id is matched to
//! the call the model asked for. Some frameworks send none (smolagents), and a sub-agent run as
//! a managed agent has no tool span at all. The match is the nearest earlier model call under
//! the same parent that requested a call of that function (for an agent, of its name), taking
//! the first of its calls of that name not already answered. The id is marked as derived
//! (`tool_call_id_src = derived:<model span id>`), so a user can tell it from an id the span
//! sent. Like agent inheritance, this runs wherever whole traces are at hand (flush,
//! compaction), and again each time: derived values are recomputed, sent ones kept.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::TimestampNanosecondType;

/// Prefix of the source of a derived value, followed by the model call's span id.
pub const DERIVED: &str = "derived:";

fn text<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    batch.column_by_name(name)?.as_string_opt::<i32>()
}

fn list<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a ListArray> {
    batch.column_by_name(name)?.as_list_opt::<i32>()
}

/// The strings of a list cell.
fn items(list: &ListArray, row: usize) -> Vec<String> {
    if !list.is_valid(row) {
        return Vec::new();
    }
    let values = list.value(row);
    let values = values.as_string::<i32>();
    (0..values.len())
        .map(|i| {
            if values.is_valid(i) {
                values.value(i).to_owned()
            } else {
                String::new()
            }
        })
        .collect()
}

/// A value the span sent (not derived by an earlier pass).
fn sent<'a>(values: &'a StringArray, sources: &'a StringArray, row: usize) -> Option<&'a str> {
    let derived = sources.is_valid(row) && sources.value(row).starts_with(DERIVED);
    (values.is_valid(row) && !derived).then(|| values.value(row))
}

/// `batch` with tool call ids (and, for managed agents, tool names) derived where sent ones are
/// missing. A batch without the columns involved is returned as it is.
pub fn derive_tool_calls(batch: &RecordBatch) -> RecordBatch {
    let columns = (
        text(batch, "trace_id"),
        text(batch, "span_id"),
        text(batch, "parent_span_id"),
        text(batch, "operation"),
        text(batch, "agent_name"),
        (text(batch, "tool_name"), text(batch, "tool_name_src")),
        (text(batch, "tool_call_id"), text(batch, "tool_call_id_src")),
        list(batch, "requested_tool_call_ids"),
        list(batch, "requested_tool_names"),
        batch
            .column_by_name("start_time")
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>()),
    );
    let (
        Some(trace),
        Some(span),
        Some(parent),
        Some(operation),
        Some(agent),
        (Some(tool), Some(tool_src)),
        (Some(call), Some(call_src)),
        Some(ids),
        Some(names),
        Some(start),
    ) = columns
    else {
        return batch.clone();
    };
    let rows = batch.num_rows();
    let op = |r: usize| operation.is_valid(r).then(|| operation.value(r));
    let parent_of = |r: usize| parent.is_valid(r).then(|| parent.value(r));
    // Model calls that requested calls, by (trace, parent), latest first.
    let mut turns: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for r in 0..rows {
        if op(r) == Some("llm_call") && ids.is_valid(r) && !ids.value(r).is_empty() {
            if let Some(p) = parent_of(r) {
                turns.entry((trace.value(r), p)).or_default().push(r);
            }
        }
    }
    if turns.is_empty() {
        return batch.clone();
    }
    for list in turns.values_mut() {
        list.sort_by_key(|&r| std::cmp::Reverse(start.value(r)));
    }
    // Ids a span already answers, per trace, and calls of a model turn answered by a derived
    // match (ids repeat across turns: each turn's calls are answered once).
    let answered: HashSet<(&str, String)> = (0..rows)
        .filter_map(|r| sent(call, call_src, r).map(|id| (trace.value(r), id.to_owned())))
        .collect();
    let mut claimed: HashSet<(usize, String)> = HashSet::new();
    let mut waiting: Vec<usize> = (0..rows)
        .filter(|&r| sent(call, call_src, r).is_none())
        .filter(|&r| matches!(op(r), Some("tool_call" | "agent_invoke")))
        .collect();
    waiting.sort_by_key(|&r| start.value(r));
    // Per row: (derived id, derived tool name, model span).
    let mut found: HashMap<usize, (String, Option<String>, usize)> = HashMap::new();
    for r in waiting {
        let (name, is_agent) = match op(r) {
            Some("agent_invoke") => (agent.is_valid(r).then(|| agent.value(r)), true),
            _ => (sent(tool, tool_src, r), false),
        };
        let (Some(name), Some(p)) = (name, parent_of(r)) else {
            continue;
        };
        let Some(candidates) = turns.get(&(trace.value(r), p)) else {
            continue;
        };
        let hit = candidates
            .iter()
            .filter(|&&m| start.value(m) <= start.value(r))
            .find_map(|&m| {
                let (ids, names) = (items(ids, m), items(names, m));
                ids.into_iter()
                    .zip(names)
                    .find(|(id, n)| {
                        n == name
                            && !answered.contains(&(trace.value(r), id.clone()))
                            && !claimed.contains(&(m, id.clone()))
                    })
                    .map(|(id, _)| (id, m))
            });
        if let Some((id, m)) = hit {
            claimed.insert((m, id.clone()));
            let tool_name =
                (is_agent && sent(tool, tool_src, r).is_none()).then(|| name.to_owned());
            found.insert(r, (id, tool_name, m));
        }
    }
    let mut out: Vec<ArrayRef> = batch.columns().to_vec();
    let schema = batch.schema();
    let rebuild = |values: &StringArray,
                   sources: &StringArray,
                   pick: &dyn Fn(usize) -> Option<(String, String)>| {
        let (mut v, mut s) = (StringBuilder::new(), StringBuilder::new());
        for r in 0..rows {
            if let Some(value) = sent(values, sources, r) {
                v.append_value(value);
                s.append_option(sources.is_valid(r).then(|| sources.value(r)));
            } else if let Some((value, source)) = pick(r) {
                v.append_value(value);
                s.append_value(source);
            } else {
                v.append_null();
                s.append_null();
            }
        }
        (v.finish(), s.finish())
    };
    let source_of = |m: usize| format!("{DERIVED}{}", span.value(m));
    let (ids_out, ids_src) = rebuild(call, call_src, &|r| {
        found.get(&r).map(|(id, _, m)| (id.clone(), source_of(*m)))
    });
    let (tools_out, tools_src) = rebuild(tool, tool_src, &|r| {
        found
            .get(&r)
            .and_then(|(_, name, m)| name.clone().map(|n| (n, source_of(*m))))
    });
    for (name, values, sources) in [
        ("tool_call_id", ids_out, ids_src),
        ("tool_name", tools_out, tools_src),
    ] {
        let v = schema.index_of(name).expect("column checked above");
        let s = schema
            .index_of(&format!("{name}_src"))
            .expect("column checked above");
        out[v] = Arc::new(values);
        out[s] = Arc::new(sources);
    }
    RecordBatch::try_new(schema, out).expect("same schema, same row count")
}
