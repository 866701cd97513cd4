//! OTLP → Arrow → OTLP is lossless for every field the schema keeps.

use arrow::array::{Array, AsArray};
use cairn_normalize::decode::decode;
use cairn_normalize::encode::encode;
use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_normalize::otlp::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope,
};
use cairn_normalize::otlp::resource::v1::Resource;
use cairn_normalize::otlp::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};

mod common;
use common::kv;

fn span(trace: u8, id: u8, parent: Option<u8>, start: u64) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        trace_state: if id.is_multiple_of(2) {
            "k=v".into()
        } else {
            String::new()
        },
        flags: 0x101,
        name: format!("span-{id}"),
        kind: (id % 6) as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_500,
        attributes: vec![
            kv("gen_ai.request.model", Value::StringValue("gpt-4o".into())),
            kv("gen_ai.usage.input_tokens", Value::IntValue(1234)),
            kv("ratio", Value::DoubleValue(0.25)),
            kv("ok", Value::BoolValue(true)),
            kv(
                "gen_ai.input.messages",
                Value::StringValue(r#"[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]"#.into()),
            ),
            kv("gen_ai.system_instructions", Value::StringValue("be brief".into())),
            kv("input.value", Value::StringValue("x".repeat(200))),
            kv(
                "list",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::StringValue("a".into())),
                    }],
                }),
            ),
        ],
        dropped_attributes_count: 2,
        events: vec![span::Event {
            time_unix_nano: start + 10,
            name: "exception".into(),
            attributes: vec![kv("exception.message", Value::StringValue("boom".into()))],
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 3,
        links: vec![span::Link {
            trace_id: vec![9; 16],
            span_id: vec![8; 8],
            trace_state: "a=b".into(),
            attributes: vec![kv("link.kind", Value::StringValue("retry_of".into()))],
            dropped_attributes_count: 0,
            flags: 1,
        }],
        dropped_links_count: 4,
        status: Some(Status {
            message: "bad".into(),
            code: 2,
        }),
    }
}

fn request() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::StringValue("planner".into()))],
                dropped_attributes_count: 1,
                entity_refs: vec![],
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "agents".into(),
                    version: "1.2".into(),
                    attributes: vec![kv("x", Value::IntValue(1))],
                    dropped_attributes_count: 0,
                }),
                spans: vec![
                    span(1, 1, None, 1_000),
                    span(1, 2, Some(1), 2_000),
                    span(2, 3, None, 3_000),
                ],
                schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
            }],
            schema_url: "https://example.com/r".into(),
        }],
    }
}

#[test]
fn round_trip_is_lossless() {
    let req = request();
    let encoded = encode(&req).unwrap();
    assert_eq!(encoded.accepted, 3);
    assert_eq!(encoded.rejected, 0);
    let mut contents = cairn_normalize::payload::Contents::new();
    let mut batches = Vec::new();
    for p in encoded.partitions {
        let h = p.payloads.column(0).as_string::<i32>().clone();
        let c = p.payloads.column(2).as_string::<i32>().clone();
        for i in 0..h.len() {
            contents.insert(h.value(i).to_owned(), c.value(i).to_owned());
        }
        batches.push(p.spans);
    }
    // A reference that went to its column is stored there only: the attribute keeps an empty
    // text (and a tag), which reading restores from the column.
    let batch = &batches[0];
    let attributes = batch
        .column_by_name("attributes")
        .unwrap()
        .as_map()
        .value(0);
    let (keys, values) = (
        attributes.column(0).as_string::<i32>(),
        attributes.column(1).as_string::<i32>(),
    );
    for key in ["gen_ai.system_instructions", "gen_ai.input.messages"] {
        let i = (0..keys.len()).find(|&i| keys.value(i) == key).unwrap();
        assert_eq!(values.value(i), "", "{key}");
    }
    let instructions = batch
        .column_by_name("system_instructions_ref")
        .unwrap()
        .as_string::<i32>()
        .value(0);
    assert_eq!(instructions.len(), 32);
    assert_eq!(contents[instructions], "be brief");
    let back = decode(&batches, &contents).unwrap();
    assert_eq!(back, req.resource_spans);
    // Three spans resend the same two messages, instructions and input: stored once each.
    assert_eq!(contents.len(), 4);
    assert!(
        decode(&batches, &cairn_normalize::payload::Contents::new()).is_err(),
        "missing payloads are an error"
    );
}

#[test]
fn promoted_columns_are_filled() {
    let encoded = encode(&request()).unwrap();
    let batch = &encoded.partitions[0].spans;
    let model = batch.column_by_name("request_model").unwrap();
    let tokens = batch.column_by_name("input_tokens").unwrap();
    let service = batch.column_by_name("service_name").unwrap();
    assert_eq!(
        arrow::util::display::array_value_to_string(model, 0).unwrap(),
        "gpt-4o"
    );
    assert_eq!(
        arrow::util::display::array_value_to_string(tokens, 2).unwrap(),
        "1234"
    );
    assert_eq!(
        arrow::util::display::array_value_to_string(service, 1).unwrap(),
        "planner"
    );
}

#[test]
fn invalid_spans_are_rejected_one_by_one() {
    let mut req = request();
    let spans = &mut req.resource_spans[0].scope_spans[0].spans;
    spans[0].trace_id = vec![0; 16];
    spans[1].span_id = vec![1; 3];
    spans.push(Span {
        start_time_unix_nano: u64::MAX,
        ..span(5, 5, None, 0)
    });
    let encoded = encode(&req).unwrap();
    assert_eq!(encoded.accepted, 1);
    assert_eq!(encoded.rejected, 3);
    let msg = encoded.rejection_message();
    assert!(msg.contains("3 of 4 spans rejected"), "{msg}");
    assert!(msg.contains("all zeroes"), "{msg}");
}

#[test]
fn spans_split_by_hour() {
    let hour = 3_600_000_000_000u64;
    let mut req = request();
    let moved = &mut req.resource_spans[0].scope_spans[0].spans[2];
    moved.start_time_unix_nano = 5 * hour + 1;
    moved.end_time_unix_nano = 5 * hour + 2;
    let encoded = encode(&req).unwrap();
    let hours: Vec<i64> = encoded.partitions.iter().map(|p| p.hour).collect();
    assert_eq!(hours, vec![0, 5]);
    assert_eq!(encoded.partitions[1].spans.num_rows(), 1);
}
