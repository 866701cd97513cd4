//! Resolving payload references in rows to their contents.

use std::collections::{BTreeSet, HashMap, HashSet};

use cairn_schema::tenant::Tenant;
use serde_json::Value;

use super::step::Step;
use crate::{QueryEngine, Result};

/// The payload hashes `step` refers to.
fn hashes(step: &Step) -> impl Iterator<Item = &String> {
    [
        &step.system_instructions_ref,
        &step.tool_definitions_ref,
        &step.tool_arguments_ref,
        &step.tool_result_ref,
        &step.policy_document_ref,
    ]
    .into_iter()
    .flatten()
    .chain(
        [&step.input_message_refs, &step.output_message_refs]
            .into_iter()
            .flatten()
            .flatten(),
    )
}

/// Contents as JSON when they are JSON, else as text.
fn value(content: &str) -> Value {
    serde_json::from_str(content).unwrap_or_else(|_| Value::String(content.to_owned()))
}

/// The contents of every payload `steps` refer to, read as the trace API reads them.
async fn contents(
    engine: &QueryEngine,
    tenant: &Tenant,
    steps: &[Step],
) -> Result<HashMap<String, Value>> {
    let wanted: HashSet<String> = steps.iter().flat_map(hashes).cloned().collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    // Every step has a start time when read whole; otherwise every partition is read.
    let hours = steps
        .iter()
        .map(|s| s.start_time.map(|t| t.0))
        .collect::<Option<Vec<i64>>>()
        .and_then(crate::trace::hour_range);
    let traces: BTreeSet<String> = steps.iter().filter_map(|s| s.trace_id.clone()).collect();
    let (runner, tenant) = (engine.clone(), tenant.clone());
    let engine = engine.clone();
    let found = runner
        .run(async move {
            let ctx = engine.session(&tenant).await?;
            crate::trace::payload_contents(&engine, &ctx, &tenant, wanted, &traces, hours).await
        })
        .await?;
    Ok(found.into_iter().map(|(h, c)| (h, value(&c))).collect())
}

/// Reads the payloads `steps` refer to and sets them beside their references.
pub async fn attach(engine: &QueryEngine, tenant: &Tenant, steps: &mut [Step]) -> Result<()> {
    let contents = contents(engine, tenant, steps).await?;
    resolve(steps, &contents);
    Ok(())
}

/// Sets the resolved contents of each step beside its references.
fn resolve(steps: &mut [Step], contents: &HashMap<String, Value>) {
    let one = |h: &Option<String>| h.as_ref().and_then(|h| contents.get(h)).cloned();
    let list = |l: &Option<Vec<String>>| {
        l.as_ref().map(|l| {
            l.iter()
                .map(|h| contents.get(h).cloned().unwrap_or(Value::Null))
                .collect()
        })
    };
    for s in steps {
        s.system_instructions = one(&s.system_instructions_ref);
        s.tool_definitions = one(&s.tool_definitions_ref);
        s.arguments = one(&s.tool_arguments_ref);
        s.result = one(&s.tool_result_ref);
        s.policy_document = one(&s.policy_document_ref);
        s.input_messages = list(&s.input_message_refs);
        s.output_messages = list(&s.output_message_refs);
    }
}
