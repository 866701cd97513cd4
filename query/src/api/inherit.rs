//! A run's steps as read take their agent from their ancestors, and tool calls without ids the
//! model turn that requested them: spans flushed before their relatives arrived show it here at
//! once, before compaction rewrites them (see `cairn_normalize::agent::inherit` and
//! `derived_calls`).

use cairn_normalize::agent::derived_calls::{match_calls, CallStep, DERIVED};
use cairn_normalize::agent::inherit::{invoking_agent, resolve, shown, Step, INHERITED};
use serde_json::Value;

use super::{field, Row};

/// The identity columns filled from ancestors, each with its `_src`.
const IDENTITY: [&str; 3] = ["agent_name", "agent_id", "framework"];

/// A value the span sent itself, with its source.
fn own<'a>(row: &'a Row, column: &str, source: &str) -> Option<(&'a str, Option<&'a str>)> {
    let src = field(row, source);
    if src.is_some_and(|s| s.starts_with(INHERITED)) {
        return None;
    }
    field(row, column).map(|v| (v, src))
}

/// Resolves `rows` (the steps of one run, with the identity columns and their sources).
pub fn inherit(rows: &mut [Row]) {
    let sources: Vec<String> = IDENTITY.iter().map(|c| format!("{c}_src")).collect();
    let (owners, filled) = {
        let rows: &[Row] = rows;
        let steps: Vec<Step<'_>> = rows
            .iter()
            .map(|r| Step {
                span_id: field(r, "span_id").unwrap_or_default(),
                parent: field(r, "parent_span_id"),
                name: own(r, "agent_name", &sources[0]).map(|(v, _)| v),
                id: own(r, "agent_id", &sources[1]).map(|(v, _)| v),
            })
            .collect();
        let owners = resolve(&steps);
        let id_of = |i: usize| steps[i].span_id;
        let filled: Vec<Vec<(Value, Value)>> = owners
            .iter()
            .enumerate()
            .map(|(row, o)| {
                let mut values: Vec<(Value, Value)> = IDENTITY
                    .iter()
                    .zip(&sources)
                    .map(|(column, source)| {
                        match shown(row, o, |r| own(&rows[r], column, source), id_of) {
                            Some((v, s)) => (Value::from(v), s.map_or(Value::Null, Value::from)),
                            None => (Value::Null, Value::Null),
                        }
                    })
                    .collect();
                values.push(
                    match invoking_agent(o, |r| steps[r].name, |r| steps[r].id, id_of) {
                        Some((v, s)) => (Value::from(v), Value::from(s)),
                        None => (Value::Null, Value::Null),
                    },
                );
                values
            })
            .collect();
        (owners.len(), filled)
    };
    debug_assert_eq!(owners, rows.len());
    for (row, values) in rows.iter_mut().zip(filled) {
        for (column, (value, source)) in IDENTITY
            .iter()
            .copied()
            .chain(["parent_agent_name"])
            .zip(values)
        {
            // Rows leave out what is null, as every answer does.
            for (key, v) in [
                (column.to_owned(), value),
                (format!("{column}_src"), source),
            ] {
                if v.is_null() {
                    row.remove(&key);
                } else {
                    row.insert(key, v);
                }
            }
        }
    }
}

/// The strings of a list field of a row.
fn strings(row: &Row, key: &str) -> Vec<String> {
    row.get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A value the span sent itself (not derived by an earlier pass).
fn sent<'a>(row: &'a Row, column: &str) -> Option<&'a str> {
    let derived = field(row, &format!("{column}_src")).is_some_and(|s| s.starts_with(DERIVED));
    field(row, column).filter(|_| !derived)
}

/// Matches tool calls without ids in `rows` (the steps of one run, in start order, agents
/// already resolved) to the model turns that requested them.
pub fn derive_calls(rows: &mut [Row]) {
    let matched = {
        let rows: &[Row] = rows;
        let requested: Vec<(Vec<String>, Vec<String>)> = rows
            .iter()
            .map(|r| {
                (
                    strings(r, "requested_tool_call_ids"),
                    strings(r, "requested_tool_names"),
                )
            })
            .collect();
        let steps: Vec<CallStep<'_>> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| CallStep {
                trace: field(r, "trace_id").unwrap_or_default(),
                parent: field(r, "parent_span_id"),
                order: i as i64,
                operation: field(r, "operation"),
                agent: field(r, "agent_name"),
                tool: sent(r, "tool_name"),
                call_id: sent(r, "tool_call_id"),
                requested_ids: &requested[i].0,
                requested_names: &requested[i].1,
            })
            .collect();
        let turns: Vec<String> = rows
            .iter()
            .map(|r| field(r, "span_id").unwrap_or_default().to_owned())
            .collect();
        match_calls(&steps)
            .into_iter()
            .map(|m| m.map(|m| (m.id, m.tool_name, format!("{DERIVED}{}", turns[m.turn]))))
            .collect::<Vec<_>>()
    };
    for (row, m) in rows.iter_mut().zip(matched) {
        let Some((id, tool_name, source)) = m else {
            continue;
        };
        row.insert("tool_call_id".into(), Value::from(id));
        row.insert("tool_call_id_src".into(), Value::from(source.clone()));
        if let Some(name) = tool_name {
            row.insert("tool_name".into(), Value::from(name));
            row.insert("tool_name_src".into(), Value::from(source));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(v: Value) -> Row {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn steps_take_their_agent_and_keep_their_own() {
        let mut rows = vec![
            row(
                json!({"span_id": "a", "parent_span_id": null, "agent_name": "supervisor",
                "agent_name_src": "gen_ai.agent.name", "framework": "strands-agents",
                "framework_src": "scope.name"}),
            ),
            row(
                json!({"span_id": "b", "parent_span_id": "a", "agent_name": "stale",
                "agent_name_src": "inherited:zz"}),
            ),
            row(
                json!({"span_id": "c", "parent_span_id": "b", "agent_name": "weather_agent",
                "agent_name_src": "gen_ai.agent.name"}),
            ),
            row(json!({"span_id": "d", "parent_span_id": "c"})),
        ];
        inherit(&mut rows);
        assert_eq!(rows[1]["agent_name"], "supervisor");
        assert_eq!(rows[1]["agent_name_src"], "inherited:a");
        assert_eq!(rows[1]["framework"], "strands-agents");
        assert_eq!(rows[2]["agent_name_src"], "gen_ai.agent.name");
        assert_eq!(rows[2]["parent_agent_name"], "supervisor");
        assert_eq!(rows[3]["agent_name"], "weather_agent");
        assert_eq!(rows[3]["agent_name_src"], "inherited:c");
        assert_eq!(rows[3]["parent_agent_name"], "supervisor");
        assert_eq!(rows[3]["parent_agent_name_src"], "ancestor:a");
        assert!(!rows[0].contains_key("parent_agent_name"));
    }
}

#[cfg(test)]
mod calls {
    use serde_json::json;

    use super::*;

    #[test]
    fn tool_runs_without_ids_take_the_requesting_turn() {
        let mut rows: Vec<Row> = [
            json!({"trace_id": "t", "span_id": "step", "operation": "step"}),
            json!({"trace_id": "t", "span_id": "model", "parent_span_id": "step",
                "operation": "llm_call", "requested_tool_call_ids": ["c1"],
                "requested_tool_names": ["search"]}),
            json!({"trace_id": "t", "span_id": "tool", "parent_span_id": "step",
                "operation": "tool_call", "tool_name": "search", "tool_name_src": "tool.name"}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
        derive_calls(&mut rows);
        assert_eq!(rows[2]["tool_call_id"], "c1");
        assert_eq!(rows[2]["tool_call_id_src"], "derived:model");
    }
}
