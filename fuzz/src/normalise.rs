//! Normalisation and read-back of one decoded export request, shared by the OTLP and attribute
//! targets and by the regression tests that replay their findings (which include this file).
//!
//! Always checked: nothing panics, overflows its stack or runs out of memory; `encode` accounts
//! for every span; every partition reads back with `decode` without a panic. With
//! `CAIRN_FUZZ_STRICT=1` the read-back must also succeed and be lossless, as the schema promises
//! (OTLP → Arrow → OTLP keeps every field it stores).

use std::sync::LazyLock;

use arrow::array::{Array, AsArray, RecordBatch};
use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_normalize::otlp::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use cairn_normalize::otlp::resource::v1::Resource;
use cairn_normalize::otlp::trace::v1::Span;
use cairn_normalize::payload::Contents;
use cairn_schema::ids::validate;

/// Are lossless read-back checks on (`CAIRN_FUZZ_STRICT=1`)?
pub fn strict() -> bool {
    static STRICT: LazyLock<bool> =
        LazyLock::new(|| std::env::var("CAIRN_FUZZ_STRICT").is_ok_and(|v| v == "1"));
    *STRICT
}

/// Normalises `request` and reads every partition back, losslessly if [`strict`].
pub fn check_request(request: &ExportTraceServiceRequest) {
    check(request, strict());
}

/// Normalises `request` and reads every partition back; with `lossless`, the read-back must
/// succeed and give the spans that were accepted.
pub fn check(request: &ExportTraceServiceRequest, lossless: bool) {
    let encoded = cairn_normalize::encode::encode(request).expect("encode fails only on a bug");
    let total: usize = request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    assert_eq!(encoded.accepted + encoded.rejected, total, "spans lost");
    let rows: usize = encoded.partitions.iter().map(|p| p.spans.num_rows()).sum();
    assert_eq!(rows, encoded.accepted, "accepted spans and rows differ");
    let mut decoded = Vec::new();
    for partition in &encoded.partitions {
        let contents = contents_of(&partition.payloads);
        match cairn_normalize::decode::decode(std::slice::from_ref(&partition.spans), &contents) {
            Ok(resource_spans) => decoded.push((partition.hour, resource_spans)),
            Err(e) if lossless => panic!("accepted spans do not read back: {e}"),
            Err(_) => return,
        }
    }
    if lossless {
        compare(request, &decoded);
    }
}

fn contents_of(payloads: &RecordBatch) -> Contents {
    let hash = payloads.column(0).as_string::<i32>();
    let content = payloads.column(2).as_string::<i32>();
    (0..payloads.num_rows())
        .filter(|&i| hash.is_valid(i) && content.is_valid(i))
        .map(|i| (hash.value(i).to_owned(), content.value(i).to_owned()))
        .collect()
}

/// A value as read back: an `AnyValue` without a value is no value.
fn normal_attrs(attrs: &[KeyValue]) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|kv| KeyValue {
            key: kv.key.clone(),
            value: kv.value.clone().filter(|v: &AnyValue| v.value.is_some()),
            ..Default::default()
        })
        .collect()
}

fn normal_span(span: &Span) -> Span {
    let mut s = span.clone();
    s.attributes = normal_attrs(&s.attributes);
    for e in &mut s.events {
        e.attributes = normal_attrs(&e.attributes);
    }
    for l in &mut s.links {
        l.attributes = normal_attrs(&l.attributes);
    }
    s.status = s.status.filter(|st| st.code != 0 || !st.message.is_empty());
    s
}

/// (resource, scope, span) of every span, as Debug text (NaN compares equal to NaN there).
type Flat = Vec<(String, String, String)>;

fn flatten_input(request: &ExportTraceServiceRequest, hours: &[i64]) -> Flat {
    let mut by_hour: Vec<(i64, usize, (String, String, String))> = Vec::new();
    let mut n = 0;
    for rs in &request.resource_spans {
        let resource = rs.resource.clone().unwrap_or_default();
        let resource = Resource {
            attributes: normal_attrs(&resource.attributes),
            dropped_attributes_count: resource.dropped_attributes_count,
            entity_refs: Vec::new(),
        };
        for ss in &rs.scope_spans {
            let scope = ss.scope.clone().unwrap_or_default();
            let scope = InstrumentationScope {
                attributes: normal_attrs(&scope.attributes),
                ..scope
            };
            for span in &ss.spans {
                let Some(start) = accepted(span) else {
                    continue;
                };
                let hour = cairn_schema::layout::hour_of(start);
                if !hours.contains(&hour) {
                    continue;
                }
                n += 1;
                by_hour.push((
                    hour,
                    n,
                    (
                        format!("{resource:?}{}", rs.schema_url),
                        format!("{scope:?}{}", ss.schema_url),
                        format!("{:?}", normal_span(span)),
                    ),
                ));
            }
        }
    }
    by_hour.sort_by_key(|(h, n, _)| (*h, *n));
    by_hour.into_iter().map(|(_, _, t)| t).collect()
}

/// The start time of a span that `encode` accepts (the same checks).
fn accepted(span: &Span) -> Option<i64> {
    validate("", &span.trace_id, 16).ok()?;
    validate("", &span.span_id, 8).ok()?;
    if !span.parent_span_id.is_empty() {
        validate("", &span.parent_span_id, 8).ok()?;
    }
    for link in &span.links {
        validate("", &link.trace_id, 16).ok()?;
        validate("", &link.span_id, 8).ok()?;
    }
    i64::try_from(span.end_time_unix_nano).ok()?;
    for event in &span.events {
        i64::try_from(event.time_unix_nano).ok()?;
    }
    i64::try_from(span.start_time_unix_nano).ok()
}

fn compare(
    request: &ExportTraceServiceRequest,
    decoded: &[(i64, Vec<cairn_normalize::otlp::trace::v1::ResourceSpans>)],
) {
    // `decode` groups rows by resource and scope, so compare per group, in row order.
    let hours: Vec<i64> = decoded.iter().map(|(h, _)| *h).collect();
    let mut expected = flatten_input(request, &hours);
    let mut got: Flat = Vec::new();
    for (_, resource_spans) in decoded {
        let mut part = Vec::new();
        for rs in resource_spans {
            let resource = rs.resource.clone().unwrap_or_default();
            for ss in &rs.scope_spans {
                let scope = ss.scope.clone().unwrap_or_default();
                for span in &ss.spans {
                    part.push((
                        format!("{resource:?}{}", rs.schema_url),
                        format!("{scope:?}{}", ss.schema_url),
                        format!("{:?}", normal_span(span)),
                    ));
                }
            }
        }
        got.extend(part);
    }
    // Grouping reorders spans of different resources and scopes; the multiset must match.
    expected.sort();
    got.sort();
    assert_eq!(
        expected.len(),
        got.len(),
        "span count differs after read-back"
    );
    for (e, g) in expected.iter().zip(&got) {
        assert_eq!(e, g, "span differs after read-back");
    }
}
