//! The run trail (`GET /api/v1/runs/{trace_id}`): every step of a run as a tree, with timing,
//! status, model, tool, tokens, cost, sandbox and pod, policy and approval, and payloads when
//! `?payloads=true`. Every step of the run appears exactly once; how steps with a missing
//! parent, parent cycles and trees deeper than [`MAX_TREE_DEPTH`] are shown is described at
//! [`tree`], and `tree` in the answer says how many steps were placed so. Run search
//! (`GET /api/v1/runs?…`): runs filtered by time, agent, tool, model, sandbox, status, cost,
//! approval state, pending approvals, data touched and attributes, newest first, paginated by
//! cursor, each run with its approval states and bypasses counted ([`super::run_gates`]).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use datafusion::common::ScalarValue;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::extract::{ApiPath, Params, TenantOf, TraceId};
use super::step::{self, Step};
use super::{field, payloads, text, time_param, trace_param, Conditions, Row};
use crate::{Error, QueryEngine, Result};

/// The steps of a run in start order (optionally with payload contents).
pub async fn steps(
    engine: &QueryEngine,
    tenant: &cairn_schema::tenant::Tenant,
    trace_id: &str,
    with_payloads: bool,
) -> Result<Vec<Step>> {
    let mut rows = steps_with(engine, tenant, trace_id, step::COLUMNS).await?;
    if with_payloads {
        payloads::attach(engine, tenant, &mut rows).await?;
    }
    Ok(rows)
}

/// The steps of a run in start order with `columns` only (among them those
/// [`super::inherit::RESOLVED_FROM`] names), agents and tool calls resolved.
pub async fn steps_with(
    engine: &QueryEngine,
    tenant: &cairn_schema::tenant::Tenant,
    trace_id: &str,
    columns: &[&str],
) -> Result<Vec<Step>> {
    let sql = format!(
        "SELECT {} FROM spans WHERE trace_id = $1",
        columns.join(", ")
    );
    let mut rows = engine
        .decoded(tenant, &sql, vec![trace_param(trace_id)?], Step::decode)
        .await?;
    // Sorted here rather than in the statement: moving decoded steps is cheaper than
    // interleaving every column of the rows.
    step::sort(&mut rows);
    if rows.is_empty() {
        return Err(Error::NotFound(format!("run {trace_id} not found")));
    }
    super::inherit::inherit(&mut rows);
    super::inherit::derive_calls(&mut rows);
    Ok(rows)
}

/// The steps of run `trace_id` as [`steps_with`] reads them, and the index of the first with
/// span id `span_id` (404 when there is none).
pub async fn step_in(
    engine: &QueryEngine,
    tenant: &cairn_schema::tenant::Tenant,
    trace_id: &str,
    span_id: &str,
    columns: &[&str],
) -> Result<(Vec<Step>, usize)> {
    let all = steps_with(engine, tenant, trace_id, columns).await?;
    let index = all
        .iter()
        .position(|s| s.span_id.as_deref() == Some(span_id))
        .ok_or_else(|| Error::NotFound(format!("step {span_id} not in run {trace_id}")))?;
    Ok((all, index))
}

/// The `runs` row of `trace_id`, if it has one.
pub async fn run_row(
    engine: &QueryEngine,
    tenant: &cairn_schema::tenant::Tenant,
    trace_id: &TraceId,
) -> Result<Option<Row>> {
    let rows = engine
        .rows(
            tenant,
            "SELECT * FROM runs WHERE trace_id = $1",
            vec![trace_id.param()],
        )
        .await?;
    Ok(rows.into_iter().next())
}

/// `steps` (of run `trace_id`, read with some columns and resolved) with every column, in
/// the same order: each is the run's row with its span id and start time.
pub async fn whole(
    engine: &QueryEngine,
    tenant: &cairn_schema::tenant::Tenant,
    trace_id: &str,
    steps: &[&Step],
) -> Result<Vec<Step>> {
    let ids = step::distinct(steps.iter().copied(), |s| &s.span_id);
    let rows = rows_of(engine, tenant, trace_id, &ids).await?;
    resolved_rows(&rows, steps)
}

/// Every row, with every column, of run `trace_id` with one of the span ids `ids`.
pub async fn rows_of(
    engine: &QueryEngine,
    tenant: &cairn_schema::tenant::Tenant,
    trace_id: &str,
    ids: &[String],
) -> Result<Vec<Step>> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(super::MAX_IN_LIST) {
        let mut params = vec![super::trace_param(trace_id)?];
        let (list, ids) = super::in_list_from(2, chunk);
        params.extend(ids);
        let sql = format!(
            "SELECT {} FROM spans WHERE trace_id = $1 AND span_id IN ({list})",
            step::COLUMNS.join(", ")
        );
        rows.extend(engine.decoded(tenant, &sql, params, Step::decode).await?);
    }
    Ok(rows)
}

/// `steps` (read with some columns and resolved) with every column, from `rows` (their rows
/// read whole, [`rows_of`]): each is the first row with its span id and start time, resolved
/// as the step is.
pub fn resolved_rows(rows: &[Step], steps: &[&Step]) -> Result<Vec<Step>> {
    let mut by_key: HashMap<(&Option<String>, Option<step::Timestamp>), &Step> = HashMap::new();
    for r in rows {
        by_key.entry((&r.span_id, r.start_time)).or_insert(r);
    }
    steps
        .iter()
        .map(|s| {
            let mut row = by_key
                .get(&(&s.span_id, s.start_time))
                .map(|r| (*r).clone())
                .ok_or_else(|| Error::NotFound(format!("step {:?} is gone", s.span_id)))?;
            super::inherit::copy_resolved(&mut row, s);
            Ok(row)
        })
        .collect()
}

/// How deep steps nest in a trail answer: roots are level 1, and no step is nested deeper than
/// this. Every step is still returned: a step whose real level is deeper is listed in the
/// `children` of its ancestor at level `MAX_TREE_DEPTH - 1` (that list is the ancestor's whole
/// subtree, depth first, each level in start order, so it follows the part of the subtree it
/// belongs to), keeps its real `parent_span_id` and carries `"beyond_max_depth": true`. Each
/// level adds two levels of JSON nesting (the step and its `children`), so 50 levels keep the
/// answer, with room for payload contents, within the nesting limit of common JSON parsers (128
/// for serde_json) and bound the recursion of serialising it; the full tree can be rebuilt to
/// any depth from `parent_span_id`.
pub const MAX_TREE_DEPTH: usize = 50;

/// A step of a trail, with the steps listed under it.
#[derive(Debug, Serialize)]
pub struct Node {
    #[serde(flatten)]
    pub step: Step,
    /// The step's parent link was cut to break a cycle.
    #[serde(skip_serializing_if = "is_false")]
    pub parent_cycle: bool,
    /// The step is listed under an ancestor, deeper than the maximum depth.
    #[serde(skip_serializing_if = "is_false")]
    pub beyond_max_depth: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Node>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A run's steps nested under their parents, and how the nesting was shaped.
#[derive(Debug)]
pub struct Tree {
    /// The root steps in start order, each with its `children`.
    pub roots: Vec<Node>,
    /// Steps listed under an ancestor because they are deeper than the maximum depth.
    pub beyond_max_depth: usize,
    /// Parent cycles broken (each made one of its steps a root).
    pub parent_cycles: usize,
}

/// Nests `steps` (in start order) under their parents, without recursion, so that any depth of
/// input is safe. Every step appears exactly once:
///
/// - a step whose parent is not in the run (or has no parent) is a root;
/// - children are listed in the order of `steps` (start time, then span id), whether they
///   started before or after their parent;
/// - parent links that form a cycle (A's parent is B, B's parent is A; a step that is its own
///   parent) are broken at the cycle's earliest step, which becomes a root marked
///   `"parent_cycle": true` (keeping its real `parent_span_id`); the other steps of the cycle and
///   their descendants stay under their real parents;
/// - when several steps share a span id, children name the earliest of them as their parent;
/// - steps deeper than `max_depth` levels are listed under their ancestor at level
///   `max_depth - 1`, marked `"beyond_max_depth": true` (see [`MAX_TREE_DEPTH`]).
pub fn tree(steps: Vec<Step>, max_depth: usize) -> Tree {
    let max_depth = max_depth.max(2);
    let n = steps.len();
    let mut parent: Vec<Option<usize>> = {
        let mut ids: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (i, s) in steps.iter().enumerate() {
            if let Some(id) = s.span_id.as_deref() {
                ids.entry(id).or_insert(i);
            }
        }
        steps
            .iter()
            .map(|s| {
                s.parent_span_id
                    .as_deref()
                    .and_then(|p| ids.get(p).copied())
            })
            .collect()
    };
    // Break cycles: follow each step's parent links until a root, a step already placed, or a
    // step of the current walk (a cycle). Each step is walked once.
    const NEW: u8 = 0;
    const WALKING: u8 = 1;
    const PLACED: u8 = 2;
    let mut state = vec![NEW; n];
    let mut cut = vec![false; n];
    let mut parent_cycles = 0;
    let mut walk = Vec::new();
    for start in 0..n {
        let mut at = start;
        let mut cycle_at = None;
        loop {
            match state[at] {
                PLACED => break,
                WALKING => {
                    cycle_at = Some(at);
                    break;
                }
                _ => {}
            }
            state[at] = WALKING;
            walk.push(at);
            match parent[at] {
                Some(p) => at = p,
                None => break,
            }
        }
        if let Some(c) = cycle_at {
            let from = walk.iter().rposition(|&w| w == c).expect("on the walk");
            let earliest = *walk[from..].iter().min().expect("a cycle has a step");
            parent[earliest] = None;
            cut[earliest] = true;
            parent_cycles += 1;
        }
        for w in walk.drain(..) {
            state[w] = PLACED;
        }
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for (i, p) in parent.iter().enumerate() {
        match p {
            Some(p) => children[*p].push(i),
            None => roots.push(i),
        }
    }
    // Depth first, children in start order: each step's level, and where it is listed.
    let mut order = Vec::with_capacity(n);
    let mut level = vec![0usize; n];
    // For a step at level >= max_depth: its ancestor at level max_depth - 1.
    let mut holder = vec![usize::MAX; n];
    let mut listed: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
    for &r in &roots {
        level[r] = 1;
    }
    let mut beyond_max_depth = 0;
    while let Some(i) = stack.pop() {
        order.push(i);
        if let Some(p) = parent[i] {
            if level[i] < max_depth {
                listed[p].push(i);
            } else {
                holder[i] = if level[i] == max_depth { p } else { holder[p] };
                listed[holder[i]].push(i);
                beyond_max_depth += usize::from(level[i] > max_depth);
            }
        }
        for &c in children[i].iter().rev() {
            level[c] = level[i] + 1;
            stack.push(c);
        }
    }
    debug_assert_eq!(order.len(), n, "a forest once cycles are broken");
    // Listed steps come after their holder in depth-first order: build from the end.
    let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
    let mut built: Vec<Option<Node>> = std::iter::repeat_with(|| None).take(n).collect();
    for &i in order.iter().rev() {
        let step = slots[i].take().expect("each step once");
        let children = listed[i]
            .iter()
            .map(|c| built[*c].take().expect("built before its holder"))
            .collect();
        built[i] = Some(Node {
            step,
            parent_cycle: cut[i],
            beyond_max_depth: level[i] > max_depth,
            children,
        });
    }
    Tree {
        roots: roots
            .iter()
            .map(|r| built[*r].take().expect("every root built"))
            .collect(),
        beyond_max_depth,
        parent_cycles,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrailParams {
    /// Include payload contents (messages, arguments, results).
    payloads: Option<bool>,
}

pub async fn trail(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    ApiPath(trace_id): ApiPath<TraceId>,
    Params(q): Params<TrailParams>,
) -> Result<Json<TrailAnswer>> {
    // The steps and the run's summary, read at once.
    let (steps, run) = tokio::try_join!(
        steps(
            &engine,
            &tenant,
            trace_id.as_str(),
            q.payloads.unwrap_or(false),
        ),
        run_row(&engine, &tenant, &trace_id)
    )?;
    let tree = tree(steps, MAX_TREE_DEPTH);
    // Serialised as it is: the steps are not copied into JSON values first.
    Ok(Json(TrailAnswer {
        run,
        steps: tree.roots,
        tree: TreeShape {
            max_depth: MAX_TREE_DEPTH,
            beyond_max_depth: tree.beyond_max_depth,
            parent_cycles: tree.parent_cycles,
        },
    }))
}

/// The trail answer.
#[derive(Serialize)]
pub struct TrailAnswer {
    run: Option<Row>,
    steps: Vec<Node>,
    tree: TreeShape,
}

/// How a trail's steps were nested.
#[derive(Serialize)]
struct TreeShape {
    max_depth: usize,
    beyond_max_depth: usize,
    parent_cycles: usize,
}

const PAGE: usize = 100;
/// Runs a search summarises by trace id at most; a search matching more summarises the
/// tenant's runs and filters them.
const MAX_CANDIDATES: usize = super::MAX_IN_LIST;
const MAX_PAGE: usize = 1000;
/// Query-string parameters a search takes at most: each filter is a condition of the query, so
/// their number is bounded like any other size a request controls.
pub const MAX_SEARCH_PARAMS: usize = 32;

/// Run search. Filters: `from`, `to` (RFC 3339, on span start), `agent`, `tool`, `model`
/// (request or response), `sandbox`, `pod`, `status` (`ok`, `error`, `unset`), `min_cost`,
/// `approval` (a state any step had), `pending=approval` (an approval gate the run requested is
/// still `requested`, per `approval_gates`), `data` (a URI any step read or wrote), `conversation`,
/// `attr.<key>=<value>` (a span attribute); `limit` (default 100) and `cursor` (from the
/// previous page); at most [`MAX_SEARCH_PARAMS`] parameters in all.
pub async fn search(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    if q.len() > MAX_SEARCH_PARAMS {
        return Err(Error::BadRequest(format!(
            "{} parameters; a search takes at most {MAX_SEARCH_PARAMS}",
            q.len()
        )));
    }
    let mut span = Conditions::default();
    for (key, value) in &q {
        match key.as_str() {
            "from" => span.add("start_time >= $?", time_param(key, value)?),
            "to" => span.add("start_time < $?", time_param(key, value)?),
            "agent" => span.add("agent_name = $?", text(value)),
            "tool" => span.add("tool_name = $?", text(value)),
            "model" => span.add("(request_model = $? OR response_model = $?)", text(value)),
            "sandbox" => span.add("sandbox_id = $?", text(value)),
            "pod" => span.add("k8s_pod_name = $?", text(value)),
            "approval" => span.add("approval_state = $?", text(value)),
            "conversation" => span.add("conversation_id = $?", text(value)),
            "pending" if value == "approval" => span.add(
                "trace_id IN (SELECT trace_id FROM approval_gates WHERE state = $?)",
                text("requested"),
            ),
            "pending" => {
                return Err(Error::BadRequest(format!(
                    "pending={value:?}: the only pending state searched is approval"
                )))
            }
            "data" => span.add(
                "(array_has(data_read, $?) OR array_has(data_written, $?))",
                text(value),
            ),
            k if k.starts_with("attr.") => {
                let name = &k["attr.".len()..];
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
                {
                    return Err(Error::BadRequest(format!(
                        "attribute name {name:?} is not valid"
                    )));
                }
                span.add(&format!("attributes['{name}'] = $?"), text(value));
            }
            "status" | "min_cost" | "limit" | "cursor" => {}
            other => return Err(Error::BadRequest(format!("unknown filter {other:?}"))),
        }
    }
    let limit = match q.get("limit") {
        None => PAGE,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| Error::BadRequest(format!("limit must be 1 to {MAX_PAGE}")))?,
    };
    let cursor = match q.get("cursor") {
        None => None,
        Some(cursor) => Some(
            cursor
                .split_once('.')
                .and_then(|(n, id)| Some((n.parse::<i64>().ok()?, id.to_owned())))
                .ok_or_else(|| Error::BadRequest(format!("cursor {cursor:?} is not valid")))?,
        ),
    };
    let min_cost = match q.get("min_cost") {
        None => None,
        Some(min) => Some(
            min.parse::<f64>()
                .map_err(|_| Error::BadRequest(format!("min_cost={min:?} is not a number")))?,
        ),
    };
    let run_filters = q.contains_key("status") || min_cost.is_some();
    // The runs the search can return, when they are few: the traces with a matching step, or
    // with no step filter and no run filter, the page's runs straight from the trace index.
    // Only those runs are then summarised (read through the trace index), not the tenant.
    let candidates = if !span.sql.is_empty() {
        let sql = format!(
            "SELECT DISTINCT trace_id FROM spans WHERE {} LIMIT {}",
            span.clause(),
            MAX_CANDIDATES + 1
        );
        let rows = engine.rows(&tenant, &sql, span.params.clone()).await?;
        (rows.len() <= MAX_CANDIDATES).then(|| trace_ids(&rows))
    } else if !run_filters {
        engine
            .newest_traces(&tenant, cursor.clone(), limit + 1)
            .await?
    } else {
        None
    };
    let (mut run, traces) = match &candidates {
        Some(ids) if ids.is_empty() => {
            return Ok(Json(json!({ "runs": [], "next_cursor": null })));
        }
        Some(ids) => {
            let mut c = Conditions::default();
            let list: Vec<String> = ids.iter().map(|id| c.param(text(id))).collect();
            (c, format!("trace_id IN ({})", list.join(", ")))
        }
        None => (
            Conditions {
                sql: Vec::new(),
                params: span.params.clone(),
            },
            format!(
                "trace_id IN (SELECT DISTINCT trace_id FROM spans WHERE {})",
                span.clause()
            ),
        ),
    };
    if let Some(status) = q.get("status") {
        run.add("status = $?", text(status));
    }
    if let Some(v) = min_cost {
        run.add("cost >= $?", ScalarValue::Float64(Some(v)));
    }
    if let Some((nanos, id)) = cursor {
        let n = run.param(ScalarValue::Int64(Some(nanos)));
        let t = run.param(text(&id));
        run.sql.push(format!(
            "(CAST(start_time AS BIGINT) < {n} OR (CAST(start_time AS BIGINT) = {n} AND trace_id < {t}))"
        ));
    }
    let sql = format!(
        "SELECT *, CAST(start_time AS BIGINT) AS start_nanos FROM runs
         WHERE {traces} AND {}
         ORDER BY start_time DESC, trace_id DESC LIMIT {}",
        run.clause(),
        limit + 1
    );
    let mut rows = engine.rows(&tenant, &sql, run.params).await?;
    let next = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        let last = rows.last().expect("a full page");
        format!(
            "{}.{}",
            last.get("start_nanos")
                .and_then(Value::as_i64)
                .unwrap_or_default(),
            field(last, "trace_id").unwrap_or_default()
        )
    });
    for r in rows.iter_mut() {
        r.remove("start_nanos");
    }
    super::run_gates::annotate(&engine, &tenant, &mut rows).await?;
    Ok(Json(json!({ "runs": rows, "next_cursor": next })))
}

/// The `trace_id` of each row.
fn trace_ids(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter_map(|r| field(r, "trace_id").map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, parent: Option<&str>) -> Step {
        Step {
            span_id: Some(id.into()),
            parent_span_id: parent.map(str::to_owned),
            ..Step::default()
        }
    }

    /// The roots of `steps` nested at most `max_depth` deep, as the answer shows them.
    fn tree(steps: Vec<Step>, max_depth: usize) -> Shown {
        let t = super::tree(steps, max_depth);
        Shown {
            roots: t
                .roots
                .iter()
                .map(|r| serde_json::to_value(r).unwrap())
                .collect(),
            beyond_max_depth: t.beyond_max_depth,
            parent_cycles: t.parent_cycles,
        }
    }

    struct Shown {
        roots: Vec<Value>,
        beyond_max_depth: usize,
        parent_cycles: usize,
    }

    /// Every step of `roots` as (span id, id of the step it is listed under, level), depth first,
    /// without recursion.
    fn listed(roots: &[Value]) -> Vec<(String, Option<String>, usize)> {
        let mut out = Vec::new();
        let mut stack: Vec<(&Value, Option<String>, usize)> =
            roots.iter().rev().map(|r| (r, None, 1)).collect();
        while let Some((s, under, level)) = stack.pop() {
            let id = s["span_id"].as_str().unwrap().to_owned();
            if let Some(children) = s.get("children") {
                for c in children.as_array().unwrap().iter().rev() {
                    stack.push((c, Some(id.clone()), level + 1));
                }
            }
            out.push((id, under, level));
        }
        out
    }

    fn ids(listed: &[(String, Option<String>, usize)]) -> Vec<&str> {
        listed.iter().map(|(id, _, _)| id.as_str()).collect()
    }

    #[test]
    fn a_chain_of_100k_nests_to_the_maximum_depth_and_keeps_every_step() {
        let n = 100_000;
        let id = |i: usize| format!("{i:016x}");
        let steps: Vec<Step> = (0..n)
            .map(|i| step(&id(i), (i > 0).then(|| id(i - 1)).as_deref()))
            .collect();
        let t = tree(steps, MAX_TREE_DEPTH);
        assert_eq!(t.roots.len(), 1);
        assert_eq!(t.beyond_max_depth, n - MAX_TREE_DEPTH);
        assert_eq!(t.parent_cycles, 0);
        let all = listed(&t.roots);
        let expected: Vec<String> = (0..n).map(id).collect();
        assert_eq!(ids(&all), expected, "each step once, in chain order");
        assert_eq!(all.iter().map(|s| s.2).max(), Some(MAX_TREE_DEPTH));
        // Levels up to the maximum under their real parents; deeper ones under the ancestor
        // at level max - 1, marked, with their real parent id.
        let holder = id(MAX_TREE_DEPTH - 2);
        let mut stack: Vec<&Value> = t.roots.iter().collect();
        let mut seen = 0;
        while let Some(s) = stack.pop() {
            let i = usize::from_str_radix(s["span_id"].as_str().unwrap(), 16).unwrap();
            assert_eq!(
                s["parent_span_id"].as_str(),
                (i > 0).then(|| id(i - 1)).as_deref()
            );
            assert_eq!(
                s.get("beyond_max_depth").is_some(),
                i >= MAX_TREE_DEPTH,
                "{i}"
            );
            if let Some(c) = s.get("children") {
                let c = c.as_array().unwrap();
                if i == MAX_TREE_DEPTH - 2 {
                    assert_eq!(c.len(), n - MAX_TREE_DEPTH + 1);
                } else {
                    assert_eq!(c.len(), 1, "{i}");
                }
                stack.extend(c);
            }
            seen += 1;
        }
        assert_eq!(seen, n);
        assert_eq!(all[n - 1].1.as_deref(), Some(holder.as_str()));
        // The answer serialises and parses back with serde_json's default nesting limit.
        let text = serde_json::to_string(&json!({ "steps": t.roots })).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(listed(back["steps"].as_array().unwrap()).len(), n);
    }

    #[test]
    fn deep_subtrees_are_listed_depth_first_under_the_deepest_allowed_ancestor() {
        // r ─ a ┬ b ─ c ─ d
        //       └ e ─ f
        // At most 3 levels: b and e are a's children at level 3; c, d and f are listed under
        // a too, each after the subtree it belongs to.
        let steps = vec![
            step("r", None),
            step("a", Some("r")),
            step("b", Some("a")),
            step("c", Some("b")),
            step("d", Some("c")),
            step("e", Some("a")),
            step("f", Some("e")),
        ];
        let t = tree(steps, 3);
        assert_eq!(t.beyond_max_depth, 3);
        let all = listed(&t.roots);
        let under: Vec<(&str, Option<&str>, usize)> = all
            .iter()
            .map(|(id, u, l)| (id.as_str(), u.as_deref(), *l))
            .collect();
        assert_eq!(
            under,
            [
                ("r", None, 1),
                ("a", Some("r"), 2),
                ("b", Some("a"), 3),
                ("c", Some("a"), 3),
                ("d", Some("a"), 3),
                ("e", Some("a"), 3),
                ("f", Some("a"), 3),
            ]
        );
        let a = &t.roots[0]["children"][0];
        let flags: Vec<bool> = a["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.get("beyond_max_depth") == Some(&Value::Bool(true)))
            .collect();
        assert_eq!(flags, [false, true, true, false, true]);
        assert_eq!(a["children"][1]["parent_span_id"], "b");
        assert_eq!(a["children"][2]["parent_span_id"], "c");
    }

    #[test]
    fn a_child_that_starts_before_its_parent_stays_under_it() {
        // In start order: the child first.
        let t = tree(vec![step("c", Some("p")), step("p", None)], MAX_TREE_DEPTH);
        let all = listed(&t.roots);
        assert_eq!(
            all,
            [("p".into(), None, 1), ("c".into(), Some("p".into()), 2)]
        );
        // Siblings in start order whatever their parent's position.
        let t = tree(
            vec![
                step("c1", Some("p")),
                step("g", Some("c2")),
                step("c2", Some("p")),
                step("p", None),
                step("c3", Some("p")),
            ],
            MAX_TREE_DEPTH,
        );
        assert_eq!(ids(&listed(&t.roots)), ["p", "c1", "c2", "g", "c3"]);
    }

    #[test]
    fn parent_cycles_are_broken_at_their_earliest_step() {
        // A's parent B, B's parent A: A (earlier) becomes a root, B stays under it.
        let t = tree(vec![step("a", Some("b")), step("b", Some("a"))], 50);
        assert_eq!(t.parent_cycles, 1);
        let all = listed(&t.roots);
        assert_eq!(
            all,
            [("a".into(), None, 1), ("b".into(), Some("a".into()), 2)]
        );
        assert_eq!(t.roots[0]["parent_cycle"], true);
        assert_eq!(t.roots[0]["parent_span_id"], "b");
        assert!(t.roots[0]["children"][0].get("parent_cycle").is_none());

        // Its own parent; a 3-cycle entered from a tail; a normal tree beside them.
        let t = tree(
            vec![
                step("root", None),
                step("self", Some("self")),
                step("x", Some("z")),
                step("tail", Some("y")),
                step("y", Some("x")),
                step("z", Some("y")),
                step("kid", Some("root")),
            ],
            50,
        );
        assert_eq!(t.parent_cycles, 2);
        let all = listed(&t.roots);
        assert_eq!(
            ids(&all),
            ["root", "kid", "self", "x", "y", "tail", "z"],
            "roots in start order, each step once"
        );
        let roots: Vec<&str> = t
            .roots
            .iter()
            .map(|r| r["span_id"].as_str().unwrap())
            .collect();
        assert_eq!(roots, ["root", "self", "x"]);
        assert_eq!(t.roots[1]["parent_cycle"], true);
        assert_eq!(t.roots[2]["parent_cycle"], true);
        assert!(t.roots[0].get("parent_cycle").is_none());
    }

    #[test]
    fn missing_parents_and_duplicate_ids_keep_every_step() {
        let t = tree(
            vec![
                step("a", Some("gone")),
                step("d", None),
                step("d", Some("a")),
                step("k", Some("d")),
            ],
            50,
        );
        let all = listed(&t.roots);
        assert_eq!(all.len(), 4);
        // Children of a duplicated id go under its earliest step.
        let under: Vec<(&str, Option<&str>)> = all
            .iter()
            .map(|(id, u, _)| (id.as_str(), u.as_deref()))
            .collect();
        assert_eq!(
            under,
            [("a", None), ("d", Some("a")), ("d", None), ("k", Some("d"))]
        );
        assert_eq!(t.roots[1]["children"][0]["span_id"], "k");
        assert!(tree(Vec::new(), 50).roots.is_empty());
    }
}
