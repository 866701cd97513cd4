//! A whole trace as OTLP JSON (`TracesData`), rebuilt losslessly from the stored rows and the
//! payloads they reference.

use arrow::array::{Array, AsArray};
use cairn_normalize::decode::{decode, referenced_payloads};
use cairn_normalize::otlp::trace::v1::TracesData;
use cairn_normalize::payload::Contents;
use cairn_schema::ids::parse_trace_id;
use cairn_schema::tenant::Tenant;
use datafusion::prelude::{col, lit, SessionContext};

use crate::{Error, QueryEngine, Result};

/// The spans of `trace_id` for `tenant`, in start order (run on the query runtime).
pub async fn fetch(engine: &QueryEngine, tenant: &Tenant, trace_id: &str) -> Result<TracesData> {
    let trace_id = parse_trace_id(trace_id)?;
    let (runner, tenant) = (engine.clone(), tenant.clone());
    let engine = engine.clone();
    runner
        .run(async move { fetch_on(&engine, &tenant, trace_id).await })
        .await
}

async fn fetch_on(engine: &QueryEngine, tenant: &Tenant, trace_id: String) -> Result<TracesData> {
    let ctx = engine.session(tenant).await?;
    let batches = ctx
        .table("spans")
        .await?
        .filter(col("trace_id").eq(lit(trace_id.as_str())))?
        .sort(vec![col("start_time").sort(true, false)])?
        .collect()
        .await?;
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Err(Error::NotFound(format!("trace {trace_id} not found")));
    }
    let contents = payload_contents(&ctx, referenced_payloads(&batches)?).await?;
    Ok(TracesData {
        resource_spans: decode(&batches, &contents)?,
    })
}

/// The contents of `hashes` from the `payloads` table.
pub async fn payload_contents(
    ctx: &SessionContext,
    hashes: std::collections::HashSet<String>,
) -> Result<Contents> {
    let mut contents = Contents::new();
    if hashes.is_empty() {
        return Ok(contents);
    }
    let list = hashes.iter().map(|h| lit(h.as_str())).collect();
    let batches = ctx
        .table("payloads")
        .await?
        .filter(col("hash").in_list(list, false))?
        .select_columns(&["hash", "content"])?
        .collect()
        .await?;
    for b in &batches {
        let (h, c) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            if h.is_valid(i) && c.is_valid(i) {
                contents.insert(h.value(i).to_owned(), c.value(i).to_owned());
            }
        }
    }
    Ok(contents)
}
