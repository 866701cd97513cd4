//! A run's steps as read take their agent from their ancestors, and tool calls without ids the
//! model turn that requested them: spans flushed before their relatives arrived show it here at
//! once, before compaction rewrites them (see `cairn_normalize::agent::inherit` and
//! `derived_calls`).

use cairn_normalize::agent::derived_calls::{match_calls, CallStep, DERIVED};
use cairn_normalize::agent::inherit::{invoking_agent, resolve, shown, Step as Span, INHERITED};

use super::step::Step;

/// The identity columns filled from ancestors, each with its `_src`.
const IDENTITY: usize = 3;

/// The columns a run's steps are resolved from ([`inherit`], then [`derive_calls`], which
/// go by start order).
pub const RESOLVED_FROM: &[&str] = &[
    "trace_id",
    "span_id",
    "parent_span_id",
    "start_time",
    "operation",
    "agent_name",
    "agent_name_src",
    "agent_id",
    "agent_id_src",
    "framework",
    "framework_src",
    "parent_agent_name",
    "parent_agent_name_src",
    "tool_name",
    "tool_name_src",
    "tool_call_id",
    "tool_call_id_src",
    "requested_tool_call_ids",
    "requested_tool_names",
];

/// Gives `to` (the same span, read with other columns) what resolving gave `from`: its agent
/// identity and its tool call.
pub fn copy_resolved(to: &mut Step, from: &Step) {
    for i in 0..=IDENTITY {
        let (v, s) = identity(from, i);
        let (value, source) = identity_mut(to, i);
        (*value, *source) = (v.clone(), s.clone());
    }
    to.tool_name.clone_from(&from.tool_name);
    to.tool_name_src.clone_from(&from.tool_name_src);
    to.tool_call_id.clone_from(&from.tool_call_id);
    to.tool_call_id_src.clone_from(&from.tool_call_id_src);
}

/// Identity column `i` of `step` (agent name, agent id, framework; then the parent agent's
/// name) and its source.
fn identity(step: &Step, i: usize) -> (&Option<String>, &Option<String>) {
    match i {
        0 => (&step.agent_name, &step.agent_name_src),
        1 => (&step.agent_id, &step.agent_id_src),
        2 => (&step.framework, &step.framework_src),
        _ => (&step.parent_agent_name, &step.parent_agent_name_src),
    }
}

fn identity_mut(step: &mut Step, i: usize) -> (&mut Option<String>, &mut Option<String>) {
    match i {
        0 => (&mut step.agent_name, &mut step.agent_name_src),
        1 => (&mut step.agent_id, &mut step.agent_id_src),
        2 => (&mut step.framework, &mut step.framework_src),
        _ => (&mut step.parent_agent_name, &mut step.parent_agent_name_src),
    }
}

/// A value the span sent itself, with its source.
fn own<'a>(
    (value, source): (&'a Option<String>, &'a Option<String>),
) -> Option<(&'a str, Option<&'a str>)> {
    let source = source.as_deref();
    if source.is_some_and(|s| s.starts_with(INHERITED)) {
        return None;
    }
    value.as_deref().map(|v| (v, source))
}

/// Resolves `steps` (the steps of one run, with the identity columns and their sources).
pub fn inherit(steps: &mut [Step]) {
    let filled: Vec<Vec<(Option<String>, Option<String>)>> = {
        let rows: &[Step] = steps;
        let spans: Vec<Span<'_>> = rows
            .iter()
            .map(|r| Span {
                span_id: r.span_id.as_deref().unwrap_or_default(),
                parent: r.parent_span_id.as_deref(),
                name: own(identity(r, 0)).map(|(v, _)| v),
                id: own(identity(r, 1)).map(|(v, _)| v),
            })
            .collect();
        let owners = resolve(&spans);
        let id_of = |i: usize| spans[i].span_id;
        owners
            .iter()
            .enumerate()
            .map(|(row, o)| {
                let mut values: Vec<(Option<String>, Option<String>)> = (0..IDENTITY)
                    .map(
                        |i| match shown(row, o, |r| own(identity(&rows[r], i)), id_of) {
                            Some((v, s)) => (Some(v.to_owned()), s),
                            None => (None, None),
                        },
                    )
                    .collect();
                values.push(
                    match invoking_agent(o, |r| spans[r].name, |r| spans[r].id, id_of) {
                        Some((v, s)) => (Some(v.to_owned()), Some(s)),
                        None => (None, None),
                    },
                );
                values
            })
            .collect()
    };
    for (step, values) in steps.iter_mut().zip(filled) {
        for (i, (value, source)) in values.into_iter().enumerate() {
            let (v, s) = identity_mut(step, i);
            (*v, *s) = (value, source);
        }
    }
}

/// A value the span sent itself (not derived by an earlier pass).
fn sent<'a>(value: &'a Option<String>, source: &Option<String>) -> Option<&'a str> {
    let derived = source.as_deref().is_some_and(|s| s.starts_with(DERIVED));
    value.as_deref().filter(|_| !derived)
}

/// Matches tool calls without ids in `steps` (the steps of one run, in start order, agents
/// already resolved) to the model turns that requested them.
pub fn derive_calls(steps: &mut [Step]) {
    let matched = {
        let rows: &[Step] = steps;
        let calls: Vec<CallStep<'_>> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| CallStep {
                trace: r.trace_id.as_deref().unwrap_or_default(),
                parent: r.parent_span_id.as_deref(),
                order: i as i64,
                operation: r.operation.as_deref(),
                agent: r.agent_name.as_deref(),
                tool: sent(&r.tool_name, &r.tool_name_src),
                call_id: sent(&r.tool_call_id, &r.tool_call_id_src),
                requested_ids: r.requested_tool_call_ids.as_deref().unwrap_or_default(),
                requested_names: r.requested_tool_names.as_deref().unwrap_or_default(),
            })
            .collect();
        match_calls(&calls)
            .into_iter()
            .map(|m| {
                m.map(|m| {
                    let turn = rows[m.turn].span_id.as_deref().unwrap_or_default();
                    (m.id, m.tool_name, format!("{DERIVED}{turn}"))
                })
            })
            .collect::<Vec<_>>()
    };
    for (step, m) in steps.iter_mut().zip(matched) {
        let Some((id, tool_name, source)) = m else {
            continue;
        };
        step.tool_call_id = Some(id);
        step.tool_call_id_src = Some(source.clone());
        if let Some(name) = tool_name {
            step.tool_name = Some(name);
            step.tool_name_src = Some(source);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// A step with the fields of `v`.
    pub(super) fn row(v: Value) -> Step {
        serde_json::from_value(v).unwrap()
    }

    /// The steps as the answer shows them.
    fn shown(steps: &[Step]) -> Vec<Value> {
        steps
            .iter()
            .map(|s| serde_json::to_value(s).unwrap())
            .collect()
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
        let rows = shown(&rows);
        assert_eq!(rows[1]["agent_name"], "supervisor");
        assert_eq!(rows[1]["agent_name_src"], "inherited:a");
        assert_eq!(rows[1]["framework"], "strands-agents");
        assert_eq!(rows[2]["agent_name_src"], "gen_ai.agent.name");
        assert_eq!(rows[2]["parent_agent_name"], "supervisor");
        assert_eq!(rows[3]["agent_name"], "weather_agent");
        assert_eq!(rows[3]["agent_name_src"], "inherited:c");
        assert_eq!(rows[3]["parent_agent_name"], "supervisor");
        assert_eq!(rows[3]["parent_agent_name_src"], "ancestor:a");
        assert!(rows[0].get("parent_agent_name").is_none());
    }
}

#[cfg(test)]
mod calls {
    use serde_json::json;

    use super::tests::row;
    use super::*;

    #[test]
    fn tool_runs_without_ids_take_the_requesting_turn() {
        let mut rows: Vec<Step> = [
            json!({"trace_id": "t", "span_id": "step", "operation": "step"}),
            json!({"trace_id": "t", "span_id": "model", "parent_span_id": "step",
                "operation": "llm_call", "requested_tool_call_ids": ["c1"],
                "requested_tool_names": ["search"]}),
            json!({"trace_id": "t", "span_id": "tool", "parent_span_id": "step",
                "operation": "tool_call", "tool_name": "search", "tool_name_src": "tool.name"}),
        ]
        .into_iter()
        .map(row)
        .collect();
        derive_calls(&mut rows);
        assert_eq!(rows[2].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(rows[2].tool_call_id_src.as_deref(), Some("derived:model"));
    }
}
