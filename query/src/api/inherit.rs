//! A run's steps as read take their agent from their ancestors: spans flushed before their
//! agent span arrived show it here at once, before compaction rewrites them (see
//! `cairn_normalize::agent::inherit`).

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
