//! A whole trace as OTLP JSON (`TracesData`), rebuilt losslessly from the stored rows.

use cairn_schema::decode::decode;
use cairn_schema::ids::parse_trace_id;
use cairn_schema::otlp::trace::v1::TracesData;
use cairn_schema::tenant::Tenant;
use datafusion::prelude::{col, lit};

use crate::{Error, QueryEngine, Result};

/// The spans of `trace_id` for `tenant`, in start order.
pub async fn fetch(engine: &QueryEngine, tenant: &Tenant, trace_id: &str) -> Result<TracesData> {
    let trace_id = parse_trace_id(trace_id)?;
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
    Ok(TracesData {
        resource_spans: decode(&batches)?,
    })
}
