//! The lineage, governance and replay API (`/api/v1/runs…`, `/api/v1/data`,
//! `/api/v1/governance/…`, `/api/v1/diff`, `/api/v1/costs`). Each answer is built from SQL over
//! the views of [`crate::views`], so the same question can be asked in SQL; Rust only assembles
//! trees, walks graphs and compares runs.

pub(crate) mod extract;
mod governance;
mod graph;
mod inherit;
mod inspect;
mod lineage;
mod payloads;
mod replay;
mod run_gates;
mod runs;
pub mod step;
mod why;

use axum::routing::get;
use axum::Router;
use cairn_schema::ids::parse_trace_id;
use datafusion::common::ScalarValue;
use serde_json::{Map, Value};

use crate::{Error, QueryEngine, Result};

pub use replay::{decision_path, diff};

/// One result row.
pub type Row = Map<String, Value>;

/// The API routes.
pub fn routes() -> Router<QueryEngine> {
    Router::new()
        .route("/api/v1/runs", get(runs::search))
        .route("/api/v1/runs/{trace_id}", get(runs::trail))
        .route("/api/v1/runs/{trace_id}/steps", get(inspect::steps))
        .route(
            "/api/v1/runs/{trace_id}/steps/{span_id}",
            get(inspect::step),
        )
        .route(
            "/api/v1/runs/{trace_id}/payloads/{hash}",
            get(inspect::payload),
        )
        .route("/api/v1/runs/{trace_id}/search", get(inspect::search))
        .route("/api/v1/runs/{trace_id}/steps/{span_id}/why", get(why::why))
        .route("/api/v1/runs/{trace_id}/lineage", get(graph::lineage))
        .route("/api/v1/runs/{trace_id}/data", get(governance::run_data))
        .route("/api/v1/runs/{trace_id}/replay", get(replay::replay))
        .route("/api/v1/runs/{trace_id}/replay/bundle", get(replay::bundle))
        .route("/api/v1/diff", get(replay::diff_runs))
        .route("/api/v1/data", get(governance::data_users))
        .route("/api/v1/governance/approvals", get(governance::approvals))
        .route("/api/v1/governance/bypasses", get(governance::bypasses))
        .route(
            "/api/v1/governance/policy-changes",
            get(governance::policy_changes),
        )
        .route("/api/v1/costs", get(governance::costs))
}

fn text(v: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(v.to_owned()))
}

/// A trace id parameter, validated and normalised.
fn trace_param(id: &str) -> Result<ScalarValue> {
    Ok(text(&parse_trace_id(id)?))
}

/// An RFC 3339 time parameter, as a timestamp literal (so hour partitions are pruned).
fn time_param(name: &str, value: &str) -> Result<ScalarValue> {
    let t = chrono::DateTime::parse_from_rfc3339(value)
        .map_err(|e| Error::BadRequest(format!("{name}={value:?} is not an RFC 3339 time: {e}")))?;
    Ok(ScalarValue::TimestampNanosecond(
        t.timestamp_nanos_opt(),
        Some("UTC".into()),
    ))
}

/// Keys per `IN (…)` list: lookups of many keys are batched in queries of at most this many.
pub const MAX_IN_LIST: usize = 1000;

/// The rows of `sql(list)` for every chunk of `keys` (at most [`MAX_IN_LIST`] each), where
/// `list` is the chunk's placeholders (`$1, $2, …`) with the keys bound as text: one query for
/// many keys instead of one per key. A statement may use `list` more than once.
async fn rows_in(
    engine: &QueryEngine,
    tenant: &cairn_schema::tenant::Tenant,
    keys: &[String],
    sql: impl Fn(&str) -> String,
) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for chunk in keys.chunks(MAX_IN_LIST) {
        let (list, params) = in_list(chunk);
        out.extend(engine.rows(tenant, &sql(&list), params).await?);
    }
    Ok(out)
}

/// Placeholders `$1, $2, …` for `keys`, and the keys as text parameters.
fn in_list(keys: &[String]) -> (String, Vec<ScalarValue>) {
    in_list_from(1, keys)
}

/// Placeholders `$first, …` for `keys`, and the keys as text parameters.
fn in_list_from(first: usize, keys: &[String]) -> (String, Vec<ScalarValue>) {
    let list = (first..first + keys.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    (list, keys.iter().map(|k| text(k)).collect())
}

/// The offset of the page after the page of `limit` at `offset`, of `total`; `None` after the
/// last.
fn next_offset(offset: usize, limit: usize, total: usize) -> Option<usize> {
    let next = offset.saturating_add(limit);
    (next < total).then_some(next)
}

/// A string field of a row.
fn field<'a>(row: &'a Row, key: &str) -> Option<&'a str> {
    row.get(key).and_then(Value::as_str)
}

/// Builds `WHERE` conditions with numbered parameters.
#[derive(Default)]
struct Conditions {
    sql: Vec<String>,
    params: Vec<ScalarValue>,
}

impl Conditions {
    /// Adds `template` with every `$?` replaced by the next parameter's number.
    fn add(&mut self, template: &str, value: ScalarValue) {
        self.params.push(value);
        self.sql
            .push(template.replace("$?", &format!("${}", self.params.len())));
    }

    /// Adds a parameter; returns its placeholder.
    fn param(&mut self, value: ScalarValue) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// The rows of `view` meeting the conditions, in `order`.
    async fn select(
        self,
        engine: &QueryEngine,
        tenant: &cairn_schema::tenant::Tenant,
        view: &str,
        order: &str,
    ) -> Result<Vec<Row>> {
        let sql = format!(
            "SELECT * FROM {view} WHERE {} ORDER BY {order}",
            self.clause()
        );
        engine.rows(tenant, &sql, self.params).await
    }

    fn clause(&self) -> String {
        if self.sql.is_empty() {
            "TRUE".into()
        } else {
            self.sql.join(" AND ")
        }
    }
}
