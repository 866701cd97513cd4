//! The gates of a page of run search, beside each run's `runs` row: `approvals`, the states of
//! its approval steps counted (`{"granted": 1, "requested": 1}`), and `bypasses`, the number of
//! its rows in the `bypasses` view; each left out when there are none. And `root_missing: true`
//! for a run none of whose steps is a root (no parent): its root has not arrived, because the
//! run is still going (a root span is exported when it ends) or it was lost.
//!
//! Both are read for the whole page at once, by trace id (so the trace index prunes the scans).
//! The `bypasses` view finds the document of each policy snapshot among every policy document
//! stored, which on a large store costs seconds whatever the runs; a page's bypasses are the
//! view's statement over the documents of the snapshots its own steps name instead, looked up
//! as a trace's payloads are. A snapshot that none of the page's steps carried a document for
//! takes the document of its row in the `policies` view (another run sent it).

use std::collections::{BTreeMap, HashMap, HashSet};

use cairn_schema::tenant::Tenant;
use datafusion::common::ScalarValue;
use serde_json::Value;

use super::step::Step;
use super::{field, payloads, rows_in, text, Conditions, Row, MAX_IN_LIST};
use crate::{Error, QueryEngine, Result};

/// Adds `approvals`, `bypasses` and `root_missing` to each of `runs` (rows of `runs`).
pub async fn annotate(engine: &QueryEngine, tenant: &Tenant, runs: &mut [Row]) -> Result<()> {
    let ids: Vec<String> = runs
        .iter()
        .filter_map(|r| field(r, "trace_id").map(str::to_owned))
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let (mut steps, bypasses) = tokio::try_join!(
        page_steps(engine, tenant, &ids),
        bypass_counts(engine, tenant, &ids)
    )?;
    for run in runs {
        let Some(id) = field(run, "trace_id").map(str::to_owned) else {
            continue;
        };
        let Steps { states, has_root } = steps.remove(&id).unwrap_or_default();
        if !states.is_empty() {
            run.insert("approvals".into(), serde_json::json!(states));
        }
        if !has_root {
            run.insert("root_missing".into(), Value::Bool(true));
        }
        if let Some(&n) = bypasses.get(&id).filter(|n| **n > 0) {
            run.insert("bypasses".into(), Value::from(n));
        }
    }
    Ok(())
}

/// A count column of a row.
fn count(row: &Row) -> i64 {
    row.get("n").and_then(Value::as_i64).unwrap_or_default()
}

/// What the steps of each of `ids` say about it: the states of its approval steps, counted,
/// and whether a root step (one without a parent) has arrived.
#[derive(Default)]
struct Steps {
    states: BTreeMap<String, i64>,
    has_root: bool,
}

/// [`Steps`] of each of `ids`, in one scan of their spans.
async fn page_steps(
    engine: &QueryEngine,
    tenant: &Tenant,
    ids: &[String],
) -> Result<HashMap<String, Steps>> {
    let rows = rows_in(engine, tenant, ids, |list| {
        format!(
            "SELECT trace_id, approval_state,
                    count(*) FILTER (WHERE operation = 'approval') AS n,
                    bool_or(parent_span_id IS NULL) AS has_root
             FROM spans WHERE trace_id IN ({list})
             GROUP BY trace_id, approval_state"
        )
    })
    .await?;
    let mut out: HashMap<String, Steps> = HashMap::new();
    for r in &rows {
        let Some(id) = field(r, "trace_id") else {
            continue;
        };
        let steps = out.entry(id.to_owned()).or_default();
        steps.has_root |= r.get("has_root").and_then(Value::as_bool) == Some(true);
        if let Some(state) = field(r, "approval_state").filter(|_| count(r) > 0) {
            steps.states.insert(state.to_owned(), count(r));
        }
    }
    Ok(out)
}

/// A policy snapshot: its ref and hash.
type Snapshot = (String, Option<String>);

/// The rows of the `bypasses` view of each of `ids`, counted.
async fn bypass_counts(
    engine: &QueryEngine,
    tenant: &Tenant,
    ids: &[String],
) -> Result<HashMap<String, i64>> {
    let mut out = HashMap::new();
    for r in bypass_rows(engine, tenant, ids).await? {
        if let Some(id) = field(&r, "trace_id") {
            *out.entry(id.to_owned()).or_default() += 1;
        }
    }
    Ok(out)
}

/// The rows of the `bypasses` view of the runs `ids` (`trace_id`, `span_id`, `reason`), over
/// the policy documents of those runs' own snapshots (see the module's header).
pub async fn bypass_rows(
    engine: &QueryEngine,
    tenant: &Tenant,
    ids: &[String],
) -> Result<Vec<Row>> {
    let documents = documents(engine, tenant, ids).await?;
    let mut out = Vec::new();
    for chunk in ids.chunks(MAX_IN_LIST) {
        let mut c = Conditions::default();
        let list: Vec<String> = chunk.iter().map(|id| c.param(text(id))).collect();
        // A first row of nulls gives the columns their type (and the relation a row).
        let mut policies = vec![
            "(CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR))".to_owned(),
        ];
        for ((policy_ref, hash), document) in &documents {
            policies.push(format!(
                "({}, {}, {})",
                c.param(text(policy_ref)),
                c.param(ScalarValue::Utf8(hash.clone())),
                c.param(ScalarValue::Utf8(document.clone())),
            ));
        }
        let policies = format!(
            "(SELECT column1 AS policy_ref, column2 AS policy_hash, column3 AS document
              FROM (VALUES {}))",
            policies.join(", ")
        );
        let sql = format!(
            "SELECT trace_id, span_id, reason FROM ({}) WHERE trace_id IN ({})",
            crate::views::bypasses_over(&policies),
            list.join(", ")
        );
        out.extend(engine.rows(tenant, &sql, c.params).await?);
    }
    Ok(out)
}

/// The policy snapshots that steps of `ids` name, each with its document (as the `policies`
/// view gives it: the greatest of those sent, `None` when no span sent one).
async fn documents(
    engine: &QueryEngine,
    tenant: &Tenant,
    ids: &[String],
) -> Result<BTreeMap<Snapshot, Option<String>>> {
    // One row per snapshot, document and hour of each run: the hours bound the payload lookup.
    let named = rows_in(engine, tenant, ids, |list| {
        format!(
            "SELECT DISTINCT trace_id, policy_ref, policy_hash, policy_document_ref,
                    date_trunc('hour', start_time) AS start_time
             FROM spans WHERE trace_id IN ({list}) AND policy_ref IS NOT NULL"
        )
    })
    .await?;
    let steps = named
        .into_iter()
        .map(|r| serde_json::from_value::<Step>(Value::Object(r)))
        .collect::<Result<Vec<Step>, _>>()
        .map_err(|e| Error::Internal(format!("a snapshot row: {e}")))?;
    // Each document looked up where one run that carried it keeps its payloads.
    let mut wanted: HashSet<String> = HashSet::new();
    let carriers: Vec<Step> = steps
        .iter()
        .filter(|s| {
            s.policy_document_ref
                .as_ref()
                .is_some_and(|h| wanted.insert(h.clone()))
        })
        .cloned()
        .collect();
    let texts = payloads::texts(engine, tenant, wanted, &carriers).await?;
    let mut documents: BTreeMap<Snapshot, Option<String>> = BTreeMap::new();
    for s in &steps {
        let Some(policy_ref) = s.policy_ref.clone() else {
            continue;
        };
        let sent = s.policy_document_ref.as_ref().and_then(|h| texts.get(h));
        let document = documents
            .entry((policy_ref, s.policy_hash.clone()))
            .or_default();
        if sent > document.as_ref() {
            *document = sent.cloned();
        }
    }
    // Snapshots whose documents other runs sent.
    let unsent: Vec<String> = documents
        .iter()
        .filter(|(_, d)| d.is_none())
        .map(|((r, _), _)| r.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let others = rows_in(engine, tenant, &unsent, |list| {
        format!(
            "SELECT policy_ref, policy_hash, document FROM policies
             WHERE policy_ref IN ({list}) AND document IS NOT NULL"
        )
    })
    .await?;
    for r in &others {
        let key = (
            field(r, "policy_ref").unwrap_or_default().to_owned(),
            field(r, "policy_hash").map(str::to_owned),
        );
        if let Some(document @ None) = documents.get_mut(&key) {
            *document = field(r, "document").map(str::to_owned);
        }
    }
    Ok(documents)
}
