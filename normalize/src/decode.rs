//! Arrow → OTLP: rebuilds `ResourceSpans` from stored rows, grouping spans that share a
//! resource and a scope, in row order. Used by the trace API and to prove the round trip.

use foldhash::{HashMap, HashMapExt};

use arrow::array::{
    Array, AsArray, ListArray, MapArray, RecordBatch, StringArray, StructArray,
    TimestampNanosecondArray, UInt32Array,
};
use arrow::datatypes::{TimestampNanosecondType, UInt32Type};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};

use crate::agent::conventions;
use crate::attributes::{payload_refs, read};
use crate::payload::{Contents, Resolver};
use crate::{Error, Result};
use cairn_schema::columns::col;

/// Rebuilds OTLP resource spans from rows of the `spans` schema.
pub fn decode(batches: &[RecordBatch], contents: &Contents) -> Result<Vec<ResourceSpans>> {
    let mut out: Vec<ResourceSpans> = Vec::new();
    let mut resource_index: HashMap<String, usize> = HashMap::new();
    let mut scope_index: HashMap<(usize, String), usize> = HashMap::new();
    for batch in batches {
        let rows = Rows::new(batch, contents)?;
        let plain = Resolver {
            contents,
            in_column: &|_| None,
        };
        for row in 0..batch.num_rows() {
            let resource = Resource {
                attributes: read(
                    rows.map(col::RESOURCE_ATTRIBUTES)?,
                    rows.map(col::RESOURCE_ATTRIBUTE_TYPES)?,
                    row,
                    &plain,
                )?,
                dropped_attributes_count: rows
                    .u32(col::RESOURCE_DROPPED_ATTRIBUTES_COUNT)?
                    .value(row),
                entity_refs: Vec::new(),
            };
            let resource_schema_url = rows.text(col::RESOURCE_SCHEMA_URL, row)?;
            let resource_key = format!("{resource:?}{resource_schema_url}");
            let ri = *resource_index.entry(resource_key).or_insert_with(|| {
                out.push(ResourceSpans {
                    resource: Some(resource),
                    scope_spans: Vec::new(),
                    schema_url: resource_schema_url,
                });
                out.len() - 1
            });
            let scope = InstrumentationScope {
                name: rows.text(col::SCOPE_NAME, row)?,
                version: rows.text(col::SCOPE_VERSION, row)?,
                attributes: read(
                    rows.map(col::SCOPE_ATTRIBUTES)?,
                    rows.map(col::SCOPE_ATTRIBUTE_TYPES)?,
                    row,
                    &plain,
                )?,
                dropped_attributes_count: rows.u32(col::SCOPE_DROPPED_ATTRIBUTES_COUNT)?.value(row),
            };
            let scope_schema_url = rows.text(col::SCOPE_SCHEMA_URL, row)?;
            let scope_key = (ri, format!("{scope:?}{scope_schema_url}"));
            let scope_spans = &mut out[ri].scope_spans;
            let si = *scope_index.entry(scope_key).or_insert_with(|| {
                scope_spans.push(ScopeSpans {
                    scope: Some(scope),
                    spans: Vec::new(),
                    schema_url: scope_schema_url,
                });
                scope_spans.len() - 1
            });
            let span = rows.span(row)?;
            out[ri].scope_spans[si].spans.push(span);
        }
    }
    Ok(out)
}

/// Every payload hash the rows refer to (reference columns, span and resource attributes).
pub fn referenced_payloads(batches: &[RecordBatch]) -> Result<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    let none = Contents::new();
    for batch in batches {
        let rows = Rows::new(batch, &none)?;
        for p in &conventions().payload_columns {
            let Some(column) = batch.column_by_name(&p.name) else {
                continue;
            };
            for row in 0..batch.num_rows() {
                if let Some(list) = column.as_list_opt::<i32>() {
                    if list.is_valid(row) {
                        let items = list.value(row);
                        let items = items.as_string::<i32>();
                        out.extend((0..items.len()).map(|i| items.value(i).to_owned()));
                    }
                } else if let Some(one) = column.as_string_opt::<i32>() {
                    if one.is_valid(row) {
                        out.insert(one.value(row).to_owned());
                    }
                }
            }
        }
        for (values, types) in [
            (col::ATTRIBUTES, col::ATTRIBUTE_TYPES),
            (col::RESOURCE_ATTRIBUTES, col::RESOURCE_ATTRIBUTE_TYPES),
        ] {
            let (v, t) = (rows.map(values)?, rows.map(types)?);
            for row in 0..batch.num_rows() {
                payload_refs(v, t, row, &mut out);
            }
        }
    }
    Ok(out)
}

/// Typed access to the columns of one batch.
struct Rows<'a> {
    batch: &'a RecordBatch,
    contents: &'a Contents,
}

fn hex_bytes(text: &str) -> Result<Vec<u8>> {
    hex::decode(text).map_err(|e| Error::Corrupt(format!("id {text:?}: {e}")))
}

fn kind_value(name: &str) -> i32 {
    span::SpanKind::from_str_name(&format!("SPAN_KIND_{}", name.to_ascii_uppercase()))
        .map(|k| k as i32)
        .unwrap_or_else(|| name.parse().unwrap_or(0))
}

fn status_value(name: &str) -> i32 {
    status::StatusCode::from_str_name(&format!("STATUS_CODE_{}", name.to_ascii_uppercase()))
        .map(|k| k as i32)
        .unwrap_or_else(|| name.parse().unwrap_or(0))
}

fn struct_text(s: &StructArray, i: usize, row: usize) -> String {
    let a = s.column(i).as_string::<i32>();
    if a.is_valid(row) {
        a.value(row).to_owned()
    } else {
        String::new()
    }
}

fn struct_map(s: &StructArray, i: usize) -> Result<&MapArray> {
    s.column(i)
        .as_map_opt()
        .ok_or_else(|| Error::Corrupt("nested attribute column is not a map".into()))
}

impl<'a> Rows<'a> {
    fn new(batch: &'a RecordBatch, contents: &'a Contents) -> Result<Self> {
        Ok(Self { batch, contents })
    }

    fn column(&self, name: &str) -> Result<&'a dyn Array> {
        self.batch
            .column_by_name(name)
            .map(|c| c.as_ref())
            .ok_or_else(|| Error::Corrupt(format!("column {name} is missing")))
    }

    fn strings(&self, name: &str) -> Result<&'a StringArray> {
        self.column(name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| Error::Corrupt(format!("column {name} is not a string")))
    }

    /// The string at `row`, empty when null.
    fn text(&self, name: &str, row: usize) -> Result<String> {
        let a = self.strings(name)?;
        Ok(if a.is_valid(row) {
            a.value(row).to_owned()
        } else {
            String::new()
        })
    }

    fn u32(&self, name: &str) -> Result<&'a UInt32Array> {
        self.column(name)?
            .as_primitive_opt::<UInt32Type>()
            .ok_or_else(|| Error::Corrupt(format!("column {name} is not uint32")))
    }

    fn time(&self, name: &str) -> Result<&'a TimestampNanosecondArray> {
        self.column(name)?
            .as_primitive_opt::<TimestampNanosecondType>()
            .ok_or_else(|| Error::Corrupt(format!("column {name} is not a timestamp")))
    }

    fn map(&self, name: &str) -> Result<&'a MapArray> {
        self.column(name)?
            .as_map_opt()
            .ok_or_else(|| Error::Corrupt(format!("column {name} is not a map")))
    }

    fn list(&self, name: &str) -> Result<&'a ListArray> {
        self.column(name)?
            .as_list_opt::<i32>()
            .ok_or_else(|| Error::Corrupt(format!("column {name} is not a list")))
    }

    /// The hashes of the reference column filled from span attribute `key` at `row` (one for a
    /// single-payload column).
    fn reference_column(&self, key: &str, row: usize) -> Option<Vec<String>> {
        conventions().payload_columns.iter().find_map(|p| {
            let src = self
                .batch
                .column_by_name(&format!("{}_src", p.name))?
                .as_string_opt::<i32>()?;
            if !src.is_valid(row) || src.value(row) != key {
                return None;
            }
            let column = self.batch.column_by_name(&p.name)?;
            if let Some(one) = column.as_string_opt::<i32>() {
                return one.is_valid(row).then(|| vec![one.value(row).to_owned()]);
            }
            let items = column.as_list_opt::<i32>()?.value(row);
            let items = items.as_string::<i32>();
            Some(
                (0..items.len())
                    .map(|i| items.value(i).to_owned())
                    .collect(),
            )
        })
    }

    fn span(&self, row: usize) -> Result<Span> {
        let plain = Resolver {
            contents: self.contents,
            in_column: &|_| None,
        };
        let events = self.list(col::EVENTS)?.value(row);
        let events = events.as_struct();
        let mut span_events = Vec::with_capacity(events.len());
        for i in 0..events.len() {
            span_events.push(span::Event {
                time_unix_nano: events
                    .column(0)
                    .as_primitive::<TimestampNanosecondType>()
                    .value(i) as u64,
                name: struct_text(events, 1, i),
                attributes: read(struct_map(events, 2)?, struct_map(events, 3)?, i, &plain)?,
                dropped_attributes_count: events.column(4).as_primitive::<UInt32Type>().value(i),
            });
        }
        let links = self.list(col::LINKS)?.value(row);
        let links = links.as_struct();
        let mut span_links = Vec::with_capacity(links.len());
        for i in 0..links.len() {
            span_links.push(span::Link {
                trace_id: hex_bytes(&struct_text(links, 0, i))?,
                span_id: hex_bytes(&struct_text(links, 1, i))?,
                trace_state: struct_text(links, 2, i),
                attributes: read(struct_map(links, 4)?, struct_map(links, 5)?, i, &plain)?,
                dropped_attributes_count: links.column(6).as_primitive::<UInt32Type>().value(i),
                flags: links.column(3).as_primitive::<UInt32Type>().value(i),
            });
        }
        let status_code = status_value(&self.text(col::STATUS_CODE, row)?);
        let status_message = self.text(col::STATUS_MESSAGE, row)?;
        let status = (status_code != 0 || !status_message.is_empty()).then_some(Status {
            message: status_message,
            code: status_code,
        });
        Ok(Span {
            trace_id: hex_bytes(&self.text(col::TRACE_ID, row)?)?,
            span_id: hex_bytes(&self.text(col::SPAN_ID, row)?)?,
            trace_state: self.text(col::TRACE_STATE, row)?,
            parent_span_id: hex_bytes(&self.text(col::PARENT_SPAN_ID, row)?)?,
            flags: self.u32(col::FLAGS)?.value(row),
            name: self.text(col::NAME, row)?,
            kind: kind_value(&self.text(col::KIND, row)?),
            start_time_unix_nano: self.time(col::START_TIME)?.value(row) as u64,
            end_time_unix_nano: self.time(col::END_TIME)?.value(row) as u64,
            attributes: read(
                self.map(col::ATTRIBUTES)?,
                self.map(col::ATTRIBUTE_TYPES)?,
                row,
                &Resolver {
                    contents: self.contents,
                    in_column: &|key| self.reference_column(key, row),
                },
            )?,
            dropped_attributes_count: self.u32(col::DROPPED_ATTRIBUTES_COUNT)?.value(row),
            events: span_events,
            dropped_events_count: self.u32(col::DROPPED_EVENTS_COUNT)?.value(row),
            links: span_links,
            dropped_links_count: self.u32(col::DROPPED_LINKS_COUNT)?.value(row),
            status,
        })
    }
}
