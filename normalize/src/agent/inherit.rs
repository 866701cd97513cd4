//! Agent identity inherited from ancestors: a step that names no agent belongs to the nearest
//! ancestor that does, and every step knows the agent that invoked its own (`parent_agent_name`).
//!
//! Current instrumentations put `gen_ai.agent.name` on the `invoke_agent` span only, and
//! OpenInference names no agent on model or tool spans at all, so "which agent did this?" is
//! answered by walking up the parent chain. An ancestor may arrive in a later export than its
//! descendants (an agent span ends, and is exported, after its steps), so the same resolution
//! runs wherever a whole trace, or more of it, is at hand: on each flush, on each compaction
//! merge, and when a run is read through the API. Values a span sent itself are never
//! replaced; inherited ones say where from (`inherited:<span_id>`) and are resolved again each
//! time, so a later, better-informed pass corrects an earlier one.
//!
//! Walks are iterative and take linear time in the trace's size, whatever its depth; parent
//! cycles and missing parents end a walk without an owner.

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder};

/// Prefix of the source of an inherited value, followed by the span id it came from.
pub const INHERITED: &str = "inherited:";

/// Prefix of the source of `parent_agent_name`, followed by the invoking agent's span id.
pub const ANCESTOR: &str = "ancestor:";

/// Most agents of the same identity nested directly in one another that are skipped to find
/// the invoking agent.
pub const MAX_DEPTH: usize = 256;

/// One span as far as inheritance is concerned.
#[derive(Debug, Clone, Copy, Default)]
pub struct Step<'a> {
    pub span_id: &'a str,
    pub parent: Option<&'a str>,
    /// The agent name and id the span sent itself (not inherited).
    pub name: Option<&'a str>,
    pub id: Option<&'a str>,
}

impl Step<'_> {
    fn names_agent(&self) -> bool {
        self.name.is_some() || self.id.is_some()
    }

    fn same_agent(&self, other: &Step<'_>) -> bool {
        self.name == other.name && self.id == other.id
    }
}

/// Whose identity a step carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owner {
    /// The step (index) whose agent this step runs in: itself when it names one.
    pub agent: Option<usize>,
    /// The step of the agent that invoked that agent.
    pub parent_agent: Option<usize>,
}

/// The owner of every step of one trace (`steps` in any order).
pub fn resolve(steps: &[Step<'_>]) -> Vec<Owner> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        index.entry(s.span_id).or_insert(i);
    }
    let parent = |i: usize| {
        steps[i]
            .parent
            .and_then(|p| index.get(p).copied())
            .filter(|p| *p != i)
    };
    // The nearest step at or above each step that names an agent. Each walk stops at a step
    // already resolved, so the whole trace takes linear time whatever its depth; a step met
    // again on the same walk is a parent cycle, which resolves to no agent.
    let mut agent: Vec<Option<Option<usize>>> = vec![None; steps.len()];
    let mut on_walk = vec![false; steps.len()];
    let mut path = Vec::new();
    for start in 0..steps.len() {
        path.clear();
        let mut at = Some(start);
        let found = loop {
            let Some(i) = at else { break None };
            if let Some(known) = agent[i] {
                break known;
            }
            if steps[i].names_agent() {
                break Some(i);
            }
            if on_walk[i] {
                break None;
            }
            on_walk[i] = true;
            path.push(i);
            at = parent(i);
        };
        for &i in &path {
            agent[i] = Some(found);
            on_walk[i] = false;
        }
        if agent[start].is_none() {
            agent[start] = Some(found);
        }
    }
    let agent: Vec<Option<usize>> = agent.into_iter().map(Option::flatten).collect();
    // The agent above an agent: the owner of its parent, skipping steps of the same agent.
    let invoker = |a: usize| {
        let mut at = parent(a).and_then(|p| agent[p]);
        for _ in 0..MAX_DEPTH {
            match at {
                Some(p) if steps[p].same_agent(&steps[a]) => at = parent(p).and_then(|q| agent[q]),
                other => return other,
            }
        }
        None
    };
    agent
        .iter()
        .map(|&a| Owner {
            agent: a,
            parent_agent: a.and_then(invoker),
        })
        .collect()
}

/// What one step shows in an identity column (`agent_name`, `agent_id`, `framework`) as
/// (value, source): its own value (`own(row)` gives value and source of what the span sent),
/// else its agent's, with the source `inherited:<span_id>`.
pub fn shown<'a>(
    row: usize,
    owner: &Owner,
    own: impl Fn(usize) -> Option<(&'a str, Option<&'a str>)>,
    span_id: impl Fn(usize) -> &'a str,
) -> Option<(&'a str, Option<String>)> {
    if let Some((value, source)) = own(row) {
        return Some((value, source.map(str::to_owned)));
    }
    let agent = owner.agent.filter(|&a| a != row)?;
    let (value, _) = own(agent)?;
    Some((value, Some(format!("{INHERITED}{}", span_id(agent)))))
}

/// The `parent_agent_name` of a step as (value, source `ancestor:<span_id>`): the name (else
/// id) of the agent that invoked its agent.
pub fn invoking_agent<'a>(
    owner: &Owner,
    name: impl Fn(usize) -> Option<&'a str>,
    id: impl Fn(usize) -> Option<&'a str>,
    span_id: impl Fn(usize) -> &'a str,
) -> Option<(&'a str, String)> {
    let p = owner.parent_agent?;
    let value = name(p).or_else(|| id(p))?;
    Some((value, format!("{ANCESTOR}{}", span_id(p))))
}

/// The columns inheritance reads and writes, each followed by its `_src`.
const IDENTITY: [&str; 3] = ["agent_name", "agent_id", "framework"];

/// A text column of `batch`.
pub(crate) fn text<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    batch.column_by_name(name)?.as_string_opt::<i32>()
}

/// Whether the value at `row` was filled by an earlier pass whose sources start with
/// `prefix` (and so is recomputed rather than kept).
pub(crate) fn filled_by(sources: &StringArray, row: usize, prefix: &str) -> bool {
    sources.is_valid(row) && sources.value(row).starts_with(prefix)
}

/// The value at `row` if the span sent it, not an earlier pass of the kind `prefix` names.
pub(crate) fn sent_value<'a>(
    values: &'a StringArray,
    sources: &'a StringArray,
    row: usize,
    prefix: &str,
) -> Option<&'a str> {
    (values.is_valid(row) && !filled_by(sources, row, prefix)).then(|| values.value(row))
}

/// A value the span sent itself (not one an earlier pass inherited).
fn own<'a>(values: &'a StringArray, sources: &'a StringArray, row: usize) -> Option<&'a str> {
    sent_value(values, sources, row, INHERITED)
}

/// `batch` (rows of the span schema, any number of traces) with `agent_name`, `agent_id`,
/// `framework` and `parent_agent_name` resolved from ancestors within it. A batch without these
/// columns is returned as it is.
pub fn inherit(batch: &RecordBatch) -> RecordBatch {
    let (Some(trace), Some(span), Some(parent)) = (
        text(batch, "trace_id"),
        text(batch, "span_id"),
        text(batch, "parent_span_id"),
    ) else {
        return batch.clone();
    };
    let mut columns: Vec<(&StringArray, &StringArray)> = Vec::new();
    for name in IDENTITY.iter().copied().chain(["parent_agent_name"]) {
        match (text(batch, name), text(batch, &format!("{name}_src"))) {
            (Some(v), Some(s)) => columns.push((v, s)),
            _ => return batch.clone(),
        }
    }
    let rows = batch.num_rows();
    let mut traces: HashMap<&str, Vec<usize>> = HashMap::new();
    for row in 0..rows {
        traces.entry(trace.value(row)).or_default().push(row);
    }
    // Per row: the row whose identity it takes, and the row of the invoking agent.
    let mut owner: Vec<Owner> = vec![Owner::default(); rows];
    let (names, name_src) = columns[0];
    let (ids, id_src) = columns[1];
    for group in traces.values() {
        let steps: Vec<Step<'_>> = group
            .iter()
            .map(|&row| Step {
                span_id: span.value(row),
                parent: parent.is_valid(row).then(|| parent.value(row)),
                name: own(names, name_src, row),
                id: own(ids, id_src, row),
            })
            .collect();
        for (k, o) in resolve(&steps).into_iter().enumerate() {
            owner[group[k]] = Owner {
                agent: o.agent.map(|i| group[i]),
                parent_agent: o.parent_agent.map(|i| group[i]),
            };
        }
    }
    let schema = batch.schema();
    let mut out: Vec<ArrayRef> = batch.columns().to_vec();
    let id_of = |row: usize| span.value(row);
    for (c, name) in IDENTITY.iter().enumerate() {
        let (values, sources) = columns[c];
        let own_at = |row: usize| {
            own(values, sources, row)
                .map(|v| (v, sources.is_valid(row).then(|| sources.value(row))))
        };
        let (mut v, mut s) = (StringBuilder::new(), StringBuilder::new());
        for (row, o) in owner.iter().enumerate() {
            let shown = shown(row, o, own_at, id_of);
            v.append_option(shown.as_ref().map(|(value, _)| *value));
            s.append_option(shown.and_then(|(_, source)| source));
        }
        replace(&mut out, &schema, name, v.finish(), s.finish());
    }
    let (mut v, mut s) = (StringBuilder::new(), StringBuilder::new());
    for o in &owner {
        let found = invoking_agent(
            o,
            |r| own(names, name_src, r),
            |r| own(ids, id_src, r),
            id_of,
        );
        v.append_option(found.as_ref().map(|(value, _)| *value));
        s.append_option(found.map(|(_, source)| source));
    }
    replace(
        &mut out,
        &schema,
        "parent_agent_name",
        v.finish(),
        s.finish(),
    );
    RecordBatch::try_new(schema, out).expect("same schema, same row count")
}

pub(crate) fn replace(
    out: &mut [ArrayRef],
    schema: &arrow::datatypes::SchemaRef,
    name: &str,
    values: StringArray,
    sources: StringArray,
) {
    let v = schema.index_of(name).expect("column checked by the caller");
    let s = schema
        .index_of(&format!("{name}_src"))
        .expect("column checked by the caller");
    out[v] = Arc::new(values);
    out[s] = Arc::new(sources);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step<'a>(id: &'a str, parent: Option<&'a str>, name: Option<&'a str>) -> Step<'a> {
        Step {
            span_id: id,
            parent,
            name,
            id: None,
        }
    }

    #[test]
    fn nearest_agent_and_the_agent_that_invoked_it() {
        // supervisor → (model, delegate tool → weather_agent → (model, tool)); given out of order.
        let steps = [
            step("tool", Some("weather"), None),
            step("supervisor", None, Some("supervisor")),
            step("weather-model", Some("weather"), Some("weather_agent")),
            step("delegate", Some("supervisor"), None),
            step("weather", Some("delegate"), Some("weather_agent")),
            step("model", Some("supervisor"), None),
            step("orphan", Some("missing"), None),
        ];
        let o = resolve(&steps);
        assert_eq!(
            o[0],
            Owner {
                agent: Some(4),
                parent_agent: Some(1)
            }
        );
        assert_eq!(
            o[1],
            Owner {
                agent: Some(1),
                parent_agent: None
            }
        );
        // A model span naming its agent itself still has the supervisor above it, not itself.
        assert_eq!(
            o[2],
            Owner {
                agent: Some(2),
                parent_agent: Some(1)
            }
        );
        assert_eq!(
            o[3],
            Owner {
                agent: Some(1),
                parent_agent: None
            }
        );
        assert_eq!(
            o[4],
            Owner {
                agent: Some(4),
                parent_agent: Some(1)
            }
        );
        assert_eq!(o[5].agent, Some(1));
        assert_eq!(o[6], Owner::default());
    }

    #[test]
    fn cycles_and_deep_chains_end_without_recursion() {
        let cycle = [step("a", Some("b"), None), step("b", Some("a"), None)];
        assert_eq!(resolve(&cycle), vec![Owner::default(); 2]);
        let named = [
            step("a", Some("b"), Some("x")),
            step("b", Some("a"), Some("x")),
        ];
        assert!(resolve(&named).iter().all(|o| o.parent_agent.is_none()));
        let ids: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
        let mut chain: Vec<Step<'_>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| step(id, (i > 0).then(|| ids[i - 1].as_str()), None))
            .collect();
        chain[0].name = Some("root");
        chain.reverse();
        let o = resolve(&chain);
        assert!(o.iter().all(|o| o.agent == Some(99_999)));
    }
}
