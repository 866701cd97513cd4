//! Files written under an earlier span schema, without the columns added since, are read with
//! those columns null, next to files that have them: upgrading never needs a rewrite.

use std::sync::Arc;

use cairn_normalize::encode::encode;
use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_normalize::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use cairn_normalize::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use cairn_query::{EngineConfig, QueryEngine};
use cairn_schema::layout::{new_file, Dataset};
use cairn_schema::tenant::Tenant;
use datafusion::parquet::arrow::ArrowWriter;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};

/// Columns added by span schema version 2.
const ADDED_IN_2: &[&str] = &[
    "parent_agent_name",
    "requested_tool_names",
    "container_id",
    "host_name",
    "service_instance_id",
    "process_pid",
];

fn request(id: u8, agent: &str) -> ExportTraceServiceRequest {
    let attr = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(cairn_normalize::otlp::resource::v1::Resource {
                attributes: vec![attr("host.name", "laptop")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![id; 16],
                    span_id: vec![id; 8],
                    name: format!("invoke_agent {agent}"),
                    start_time_unix_nano: 1_700_000_000_000_000_000,
                    end_time_unix_nano: 1_700_000_000_000_001_000,
                    attributes: vec![
                        attr("gen_ai.operation.name", "invoke_agent"),
                        attr("gen_ai.agent.name", agent),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Writes `batch` as a Parquet file of `tenant`'s spans in `hour`.
async fn put_spans(
    store: &Arc<dyn ObjectStore>,
    tenant: &Tenant,
    hour: i64,
    batch: &arrow::record_batch::RecordBatch,
) {
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    store
        .put(&new_file(Dataset::Spans, tenant, hour), bytes.into())
        .await
        .unwrap();
}

/// The rows `sql` answers over `store` as `tenant`.
async fn query(
    store: Arc<dyn ObjectStore>,
    tenant: &Tenant,
    sql: &str,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let spill = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        spill_dir: spill.path().join("spill"),
        ..EngineConfig::default()
    };
    let engine = QueryEngine::new(store, &config).unwrap();
    engine.rows(tenant, sql, vec![]).await.unwrap()
}

#[tokio::test]
async fn files_without_later_columns_read_with_nulls() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let tenant = Tenant::new("default").unwrap();
    for (id, agent, old) in [(1u8, "old_agent", true), (2, "new_agent", false)] {
        let part = encode(&request(id, agent)).unwrap().partitions.remove(0);
        let mut batch = part.spans;
        if old {
            let schema = batch.schema();
            let keep: Vec<usize> = (0..schema.fields().len())
                .filter(|&i| {
                    let name = schema.field(i).name();
                    let base = name.strip_suffix("_src").unwrap_or(name);
                    !ADDED_IN_2.contains(&base)
                })
                .collect();
            batch = batch.project(&keep).unwrap();
            assert_eq!(
                batch.num_columns() + 2 * ADDED_IN_2.len(),
                schema.fields().len()
            );
        }
        put_spans(&store, &tenant, part.hour, &batch).await;
    }
    let rows = query(
        store,
        &tenant,
        "SELECT agent_name, host_name, host_name_src FROM spans ORDER BY agent_name",
    )
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["agent_name"], "new_agent");
    assert_eq!(rows[0]["host_name"], "laptop");
    assert_eq!(rows[1]["agent_name"], "old_agent");
    assert!(
        rows[1].get("host_name").is_none_or(|v| v.is_null()),
        "{rows:?}"
    );
}

/// Files of span schema version 3 have no `redactions` column: read as null beside files that
/// record a redaction.
#[tokio::test]
async fn files_without_the_redaction_record_read_it_as_null() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let tenant = Tenant::new("default").unwrap();
    for (id, agent, old) in [(1u8, "old_agent", true), (2, "new_agent", false)] {
        let mut req = request(id, agent);
        let span = &mut req.resource_spans[0].scope_spans[0].spans[0];
        span.attributes.push(KeyValue {
            key: cairn_normalize::redact::REDACTIONS_KEY.into(),
            value: Some(AnyValue {
                value: Some(Value::ArrayValue(
                    cairn_normalize::otlp::common::v1::ArrayValue {
                        values: vec![AnyValue {
                            value: Some(Value::StringValue("email@name".into())),
                        }],
                    },
                )),
            }),
            ..Default::default()
        });
        let mut batch = encode(&req).unwrap().partitions.remove(0).spans;
        if old {
            let schema = batch.schema();
            let keep: Vec<usize> = (0..schema.fields().len())
                .filter(|&i| schema.field(i).name() != "redactions")
                .collect();
            batch = batch.project(&keep).unwrap();
            assert_eq!(batch.num_columns() + 1, schema.fields().len());
        }
        put_spans(&store, &tenant, 472_222, &batch).await;
    }
    let rows = query(
        store,
        &tenant,
        "SELECT agent_name, redactions FROM spans ORDER BY agent_name",
    )
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["redactions"], serde_json::json!(["email@name"]));
    assert!(
        rows[1].get("redactions").is_none_or(|v| v.is_null()),
        "{rows:?}"
    );
}
