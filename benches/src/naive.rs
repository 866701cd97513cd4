//! The storage baseline: the same spans as a naive single table, one row per span with every
//! attribute (messages, arguments and results inline) as a JSON object, zstd-compressed Parquet
//! with default settings, one file per hour.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_normalize::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use cairn_schema::layout::hour_of;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value as Json};

use crate::{Error, Result};

fn json(value: Option<&AnyValue>) -> Json {
    match value.and_then(|v| v.value.as_ref()) {
        None => Json::Null,
        Some(Value::StringValue(s)) => Json::from(s.as_str()),
        Some(Value::BoolValue(b)) => Json::from(*b),
        Some(Value::IntValue(i)) => Json::from(*i),
        Some(Value::DoubleValue(d)) => Json::from(*d),
        Some(Value::BytesValue(b)) => Json::from(hex(b)),
        Some(Value::ArrayValue(a)) => a.values.iter().map(|v| json(Some(v))).collect(),
        Some(Value::KvlistValue(l)) => Json::Object(object(&l.values)),
        Some(_) => Json::Null,
    }
}

fn object(attributes: &[KeyValue]) -> Map<String, Json> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), json(kv.value.as_ref())))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rows of one hour, column by column.
#[derive(Default)]
pub struct Rows {
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent_span_id: StringBuilder,
    name: StringBuilder,
    start: Int64Builder,
    end: Int64Builder,
    status: StringBuilder,
    attributes: StringBuilder,
    resource: StringBuilder,
    links: StringBuilder,
}

/// Appends the spans of `request` to the rows of their hours.
pub fn append(hours: &mut BTreeMap<i64, Rows>, request: &ExportTraceServiceRequest) {
    for rs in &request.resource_spans {
        let resource = Json::Object(object(
            rs.resource.as_ref().map_or(&[][..], |r| &r.attributes),
        ))
        .to_string();
        for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            let rows = hours
                .entry(hour_of(span.start_time_unix_nano as i64))
                .or_default();
            rows.trace_id.append_value(hex(&span.trace_id));
            rows.span_id.append_value(hex(&span.span_id));
            rows.parent_span_id.append_value(hex(&span.parent_span_id));
            rows.name.append_value(&span.name);
            rows.start.append_value(span.start_time_unix_nano as i64);
            rows.end.append_value(span.end_time_unix_nano as i64);
            rows.status
                .append_value(span.status.as_ref().map_or("", |s| s.message.as_str()));
            rows.attributes
                .append_value(Json::Object(object(&span.attributes)).to_string());
            rows.resource.append_value(&resource);
            let links: Vec<Json> = span
                .links
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "trace_id": hex(&l.trace_id),
                        "span_id": hex(&l.span_id),
                        "attributes": object(&l.attributes),
                    })
                })
                .collect();
            rows.links.append_value(Json::from(links).to_string());
        }
    }
}

/// One zstd Parquet file of the rows.
pub fn encode(mut rows: Rows) -> Result<Vec<u8>> {
    let text = |n: &str| Field::new(n, DataType::Utf8, false);
    let schema = Arc::new(Schema::new(vec![
        text("trace_id"),
        text("span_id"),
        text("parent_span_id"),
        text("name"),
        Field::new("start_time_unix_nano", DataType::Int64, false),
        Field::new("end_time_unix_nano", DataType::Int64, false),
        text("status_message"),
        text("attributes"),
        text("resource"),
        text("links"),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.trace_id.finish()),
        Arc::new(rows.span_id.finish()),
        Arc::new(rows.parent_span_id.finish()),
        Arc::new(rows.name.finish()),
        Arc::new(rows.start.finish()),
        Arc::new(rows.end.finish()),
        Arc::new(rows.status.finish()),
        Arc::new(rows.attributes.finish()),
        Arc::new(rows.resource.finish()),
        Arc::new(rows.links.finish()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("level")))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props))
        .map_err(|e| Error::Internal(e.to_string()))?;
    writer
        .write(&batch)
        .map_err(|e| Error::Internal(e.to_string()))?;
    writer.close().map_err(|e| Error::Internal(e.to_string()))?;
    Ok(out)
}
