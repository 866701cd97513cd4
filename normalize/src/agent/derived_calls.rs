//! Why-links without ids: a tool execution whose span carries no tool call id is matched to
//! the call the model asked for. Some frameworks send none (smolagents), and a sub-agent run as
//! a managed agent has no tool span at all. The match is the nearest earlier model call under
//! the same parent that requested a call of that function (for an agent, of its name), taking
//! the first of its calls of that name not already answered. The id is marked as derived
//! (`tool_call_id_src = derived:<model span id>`), so a user can tell it from an id the span
//! sent. Like agent inheritance, this runs wherever whole traces are at hand (flush,
//! compaction), and again each time: derived values are recomputed, sent ones kept.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::TimestampNanosecondType;

use super::inherit::{filled_by, sent_value, text};

/// Prefix of the source of a derived value, followed by the model call's span id.
pub const DERIVED: &str = "derived:";

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
    sent_value(values, sources, row, DERIVED)
}

/// One span as far as matching tool calls is concerned.
#[derive(Debug, Clone, Copy)]
pub struct CallStep<'a> {
    pub trace: &'a str,
    pub parent: Option<&'a str>,
    /// Orders the spans in time (start time, or position in a list in start order).
    pub order: i64,
    pub operation: Option<&'a str>,
    /// The agent a span runs (after inheritance).
    pub agent: Option<&'a str>,
    /// The tool name and call id the span sent (not derived).
    pub tool: Option<&'a str>,
    pub call_id: Option<&'a str>,
    /// The calls a model turn requested: ids and function names, aligned.
    pub requested_ids: &'a [String],
    pub requested_names: &'a [String],
}

/// A tool call matched to the model turn that requested it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub id: String,
    /// For a managed agent without a tool name: the name it was called by.
    pub tool_name: Option<String>,
    /// The model turn (index).
    pub turn: usize,
}

/// For each step without a call id of its own that is a tool execution (or an agent run as
/// one): the call of the nearest earlier model turn under the same parent that requested its
/// function (or agent) name, each turn's calls answered once.
pub fn match_calls(steps: &[CallStep<'_>]) -> Vec<Option<Matched>> {
    let mut out = vec![None; steps.len()];
    // Model turns that requested calls, by (trace, parent), latest first.
    let mut turns: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (r, s) in steps.iter().enumerate() {
        if s.operation == Some("llm_call") && !s.requested_ids.is_empty() {
            if let Some(p) = s.parent {
                turns.entry((s.trace, p)).or_default().push(r);
            }
        }
    }
    if turns.is_empty() {
        return out;
    }
    for list in turns.values_mut() {
        list.sort_by_key(|&r| std::cmp::Reverse(steps[r].order));
    }
    // Ids a span already answers, per trace, and calls of a model turn answered by a derived
    // match (ids repeat across turns: each turn's calls are answered once).
    let answered: HashSet<(&str, &str)> = steps
        .iter()
        .filter_map(|s| Some((s.trace, s.call_id?)))
        .collect();
    let mut claimed: HashSet<(usize, &str)> = HashSet::new();
    let mut waiting: Vec<usize> = (0..steps.len())
        .filter(|&r| steps[r].call_id.is_none())
        .filter(|&r| matches!(steps[r].operation, Some("tool_call" | "agent_invoke")))
        .collect();
    waiting.sort_by_key(|&r| steps[r].order);
    for r in waiting {
        let s = &steps[r];
        let is_agent = s.operation == Some("agent_invoke");
        let name = if is_agent { s.agent } else { s.tool };
        let (Some(name), Some(p)) = (name, s.parent) else {
            continue;
        };
        let Some(candidates) = turns.get(&(s.trace, p)) else {
            continue;
        };
        let hit = candidates
            .iter()
            .filter(|&&m| steps[m].order <= s.order)
            .find_map(|&m| {
                let t = &steps[m];
                t.requested_ids
                    .iter()
                    .zip(t.requested_names)
                    .find(|(id, n)| {
                        n.as_str() == name
                            && !answered.contains(&(s.trace, id.as_str()))
                            && !claimed.contains(&(m, id.as_str()))
                    })
                    .map(|(id, _)| (id.as_str(), m))
            });
        if let Some((id, m)) = hit {
            claimed.insert((m, id));
            out[r] = Some(Matched {
                id: id.to_owned(),
                tool_name: (is_agent && s.tool.is_none()).then(|| name.to_owned()),
                turn: m,
            });
        }
    }
    out
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
    let owned: Vec<(Vec<String>, Vec<String>)> = (0..rows)
        .map(|r| (items(ids, r), items(names, r)))
        .collect();
    let steps: Vec<CallStep<'_>> = (0..rows)
        .map(|r| CallStep {
            trace: trace.value(r),
            parent: parent.is_valid(r).then(|| parent.value(r)),
            order: start.value(r),
            operation: operation.is_valid(r).then(|| operation.value(r)),
            agent: agent.is_valid(r).then(|| agent.value(r)),
            tool: sent(tool, tool_src, r),
            call_id: sent(call, call_src, r),
            requested_ids: &owned[r].0,
            requested_names: &owned[r].1,
        })
        .collect();
    let found: HashMap<usize, Matched> = match_calls(&steps)
        .into_iter()
        .enumerate()
        .filter_map(|(r, m)| Some((r, m?)))
        .collect();
    if found.is_empty()
        && !(0..rows).any(|r| filled_by(call_src, r, DERIVED) || filled_by(tool_src, r, DERIVED))
    {
        return batch.clone();
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
        found.get(&r).map(|m| (m.id.clone(), source_of(m.turn)))
    });
    let (tools_out, tools_src) = rebuild(tool, tool_src, &|r| {
        found
            .get(&r)
            .and_then(|m| m.tool_name.clone().map(|n| (n, source_of(m.turn))))
    });
    super::inherit::replace(&mut out, &schema, "tool_call_id", ids_out, ids_src);
    super::inherit::replace(&mut out, &schema, "tool_name", tools_out, tools_src);
    RecordBatch::try_new(schema, out).expect("same schema, same row count")
}

/// Source of the operation of a span demoted from `llm_call` because it wraps one, followed by
/// the wrapped call's span id.
pub const WRAPS_MODEL_CALL: &str = "rule:wraps_model_call:";

/// `batch` with each model call that wraps another model call (an SDK-level "generate" span
/// around the provider call it makes, a request-building step marked as an LLM span) demoted to
/// a `step`, so that only the call that went to the model counts, and its tokens and cost once.
pub fn count_model_calls_once(batch: &RecordBatch) -> RecordBatch {
    let (Some(trace), Some(span), Some(parent), Some(operation), Some(operation_src)) = (
        text(batch, "trace_id"),
        text(batch, "span_id"),
        text(batch, "parent_span_id"),
        text(batch, "operation"),
        text(batch, "operation_src"),
    ) else {
        return batch.clone();
    };
    let rows = batch.num_rows();
    let is_call = |r: usize| operation.is_valid(r) && operation.value(r) == "llm_call";
    // (trace, parent span id) of every model call → one such call.
    let mut wrapped: HashMap<(&str, &str), usize> = HashMap::new();
    for r in (0..rows).filter(|&r| is_call(r) && parent.is_valid(r)) {
        wrapped
            .entry((trace.value(r), parent.value(r)))
            .or_insert(r);
    }
    let demoted: HashMap<usize, usize> = (0..rows)
        .filter(|&r| is_call(r))
        .filter_map(|r| {
            wrapped
                .get(&(trace.value(r), span.value(r)))
                .map(|&child| (r, child))
        })
        .collect();
    if demoted.is_empty() {
        return batch.clone();
    }
    let (mut v, mut s) = (StringBuilder::new(), StringBuilder::new());
    for r in 0..rows {
        match demoted.get(&r) {
            Some(&child) => {
                v.append_value("step");
                s.append_value(format!("{WRAPS_MODEL_CALL}{}", span.value(child)));
            }
            None => {
                v.append_option(operation.is_valid(r).then(|| operation.value(r)));
                s.append_option(operation_src.is_valid(r).then(|| operation_src.value(r)));
            }
        }
    }
    let schema = batch.schema();
    let mut out: Vec<ArrayRef> = batch.columns().to_vec();
    out[schema.index_of("operation").expect("checked")] = Arc::new(v.finish());
    out[schema.index_of("operation_src").expect("checked")] = Arc::new(s.finish());
    RecordBatch::try_new(schema, out).expect("same schema, same row count")
}

#[cfg(test)]
mod tests {
    use arrow::array::{ListBuilder, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;

    /// (span, parent, operation, tool name, tool call id, requested (id, name) calls)
    type Row<'a> = (
        &'a str,
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a [(&'a str, &'a str)],
    );

    fn batch(rows: &[Row<'_>]) -> RecordBatch {
        let texts = |f: &dyn Fn(&Row<'_>) -> Option<String>| -> ArrayRef {
            Arc::new(rows.iter().map(f).collect::<StringArray>())
        };
        let lists = |second: bool| -> ArrayRef {
            let mut b = ListBuilder::new(StringBuilder::new());
            for r in rows {
                for (id, name) in r.5 {
                    b.values().append_value(if second { name } else { id });
                }
                b.append(true);
            }
            Arc::new(b.finish())
        };
        let text_field = |n: &str| Field::new(n, DataType::Utf8, true);
        let list_field = |n: &str| {
            Field::new(
                n,
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            )
        };
        let schema = Schema::new(vec![
            text_field("trace_id"),
            text_field("span_id"),
            text_field("parent_span_id"),
            text_field("operation"),
            text_field("operation_src"),
            text_field("agent_name"),
            text_field("tool_name"),
            text_field("tool_name_src"),
            text_field("tool_call_id"),
            text_field("tool_call_id_src"),
            list_field("requested_tool_call_ids"),
            list_field("requested_tool_names"),
            Field::new(
                "start_time",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                false,
            ),
        ]);
        let columns: Vec<ArrayRef> = vec![
            texts(&|_| Some("t".into())),
            texts(&|r| Some(r.0.into())),
            texts(&|r| r.1.map(Into::into)),
            texts(&|r| Some(r.2.into())),
            texts(&|_| Some("test".into())),
            texts(&|r| (r.2 == "agent_invoke").then(|| r.0.to_owned())),
            texts(&|r| r.3.map(Into::into)),
            texts(&|r| r.3.map(|_| "tool.name".into())),
            texts(&|r| r.4.map(Into::into)),
            texts(&|r| r.4.map(|_| "gen_ai.tool.call.id".into())),
            lists(false),
            lists(true),
            Arc::new(TimestampNanosecondArray::from(
                (0..rows.len() as i64).collect::<Vec<_>>(),
            )),
        ];
        RecordBatch::try_new(Arc::new(schema), columns).unwrap()
    }

    fn column(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
        let c = batch.column_by_name(name).unwrap().as_string::<i32>();
        (0..c.len())
            .map(|i| c.is_valid(i).then(|| c.value(i).to_owned()))
            .collect()
    }

    #[test]
    fn tool_calls_and_managed_agents_match_the_turn_that_asked() {
        let out = derive_tool_calls(&batch(&[
            ("step1", None, "step", None, None, &[]),
            (
                "model1",
                Some("step1"),
                "llm_call",
                None,
                None,
                &[("c_agent", "helper"), ("c_1", "search")],
            ),
            ("helper", Some("step1"), "agent_invoke", None, None, &[]),
            (
                "search1",
                Some("step1"),
                "tool_call",
                Some("search"),
                None,
                &[],
            ),
            ("step2", None, "step", None, None, &[]),
            // The same id again in a later turn: answered once per turn.
            (
                "model2",
                Some("step2"),
                "llm_call",
                None,
                None,
                &[("c_1", "search")],
            ),
            (
                "search2",
                Some("step2"),
                "tool_call",
                Some("search"),
                None,
                &[],
            ),
            (
                "sent",
                Some("step2"),
                "tool_call",
                Some("search"),
                Some("own"),
                &[],
            ),
            (
                "other",
                Some("step2"),
                "tool_call",
                Some("unasked"),
                None,
                &[],
            ),
        ]));
        let ids = column(&out, "tool_call_id");
        let src = column(&out, "tool_call_id_src");
        assert_eq!(ids[2].as_deref(), Some("c_agent"));
        assert_eq!(column(&out, "tool_name")[2].as_deref(), Some("helper"));
        assert_eq!(src[2].as_deref(), Some("derived:model1"));
        assert_eq!(ids[3].as_deref(), Some("c_1"));
        assert_eq!(ids[6].as_deref(), Some("c_1"));
        assert_eq!(src[6].as_deref(), Some("derived:model2"));
        assert_eq!(ids[7].as_deref(), Some("own"));
        assert_eq!(src[7].as_deref(), Some("gen_ai.tool.call.id"));
        assert_eq!(ids[8], None);
        // A second pass gives the same answer.
        assert_eq!(column(&derive_tool_calls(&out), "tool_call_id"), ids);
    }

    #[test]
    fn a_model_call_wrapping_another_counts_once() {
        let out = count_model_calls_once(&batch(&[
            ("generate", None, "llm_call", None, None, &[]),
            ("do_generate", Some("generate"), "llm_call", None, None, &[]),
            ("alone", None, "llm_call", None, None, &[]),
        ]));
        let ops = column(&out, "operation");
        assert_eq!(ops[0].as_deref(), Some("step"));
        assert_eq!(
            column(&out, "operation_src")[0].as_deref(),
            Some("rule:wraps_model_call:do_generate")
        );
        assert_eq!(ops[1].as_deref(), Some("llm_call"));
        assert_eq!(ops[2].as_deref(), Some("llm_call"));
    }
}
