//! Hostile and odd input to ingest: impossible times, values nested too deep to read back,
//! flattened keys built to exhaust the stack or memory, repeated keys of different types. Each
//! is either rejected per span with a clear reason or stored so that it reads back exactly.

use arrow::array::{Array, AsArray, RecordBatch};
use cairn_normalize::attributes::MAX_VALUE_NESTING;
use cairn_normalize::decode::decode;
use cairn_normalize::encode::{encode, Encoded};
use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_normalize::otlp::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use cairn_normalize::otlp::resource::v1::Resource;
use cairn_normalize::otlp::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use cairn_normalize::payload::Contents;

mod common;
use common::kv;

const T0: u64 = 1_764_290_000_000_000_000;

fn span(id: u8, start: u64, end: u64, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![7; 16],
        span_id: vec![id; 8],
        name: format!("s{id}"),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        ..Default::default()
    }
}

fn request_with(
    resource: Vec<KeyValue>,
    scope: Vec<KeyValue>,
    spans: Vec<Span>,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "hostile".into(),
                    attributes: scope,
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    request_with(
        vec![kv("service.name", Value::StringValue("h".into()))],
        vec![],
        spans,
    )
}

/// Names of the stored spans, in row order.
fn names(encoded: &Encoded) -> Vec<String> {
    let mut out = Vec::new();
    for p in &encoded.partitions {
        let names = p.spans.column_by_name("name").unwrap().as_string::<i32>();
        out.extend((0..names.len()).map(|i| names.value(i).to_owned()));
    }
    out
}

/// Decodes what `encoded` stores, with its payloads.
fn read_back(encoded: Encoded) -> Vec<ResourceSpans> {
    let mut contents = Contents::new();
    let mut batches: Vec<RecordBatch> = Vec::new();
    for p in encoded.partitions {
        let h = p.payloads.column(0).as_string::<i32>().clone();
        let c = p.payloads.column(2).as_string::<i32>().clone();
        for i in 0..h.len() {
            contents.insert(h.value(i).to_owned(), c.value(i).to_owned());
        }
        batches.push(p.spans);
    }
    decode(&batches, &contents).unwrap()
}

#[test]
fn a_span_ending_before_it_starts_is_rejected() {
    let req = request(vec![
        span(1, T0 + 10, T0, vec![]),
        span(2, T0, T0, vec![]),
        span(3, 0, 0, vec![]),
        span(4, T0, 0, vec![]),
        span(5, T0, T0 + 1, vec![]),
    ]);
    let encoded = encode(&req).unwrap();
    assert_eq!((encoded.accepted, encoded.rejected), (3, 2));
    assert_eq!(
        encoded.rejection_message(),
        format!(
            "2 of 5 spans rejected: span \"s1\": invalid input: end_time_unix_nano {} is before \
             start_time_unix_nano {}; span \"s4\": invalid input: end_time_unix_nano 0 is before \
             start_time_unix_nano {}",
            T0,
            T0 + 10,
            T0
        )
    );
    assert_eq!(names(&encoded), ["s3", "s2", "s5"]);
    // No stored span has a negative duration.
    for p in &encoded.partitions {
        let d = p.spans.column_by_name("duration_ns").unwrap();
        let d = d.as_primitive::<arrow::datatypes::Int64Type>();
        assert!(d.values().iter().all(|d| *d >= 0));
    }
}

/// A value nesting `depth` lists, alternating key-value lists and arrays.
fn nested(depth: usize) -> Value {
    let mut v = Value::StringValue("leaf".into());
    for level in 0..depth {
        let inner = AnyValue { value: Some(v) };
        v = if level % 2 == 0 {
            Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "k".into(),
                    value: Some(inner),
                    ..Default::default()
                }],
            })
        } else {
            Value::ArrayValue(ArrayValue {
                values: vec![inner],
            })
        };
    }
    v
}

fn kvlist_nested(depth: usize) -> Value {
    let mut v = Value::IntValue(1);
    for _ in 0..depth {
        v = Value::KvlistValue(KeyValueList {
            values: vec![kv("k", v)],
        });
    }
    v
}

#[test]
fn values_nested_at_the_limit_read_back_and_deeper_are_rejected() {
    let at = || kv("deep", kvlist_nested(MAX_VALUE_NESTING));
    let past = || kv("deep", nested(MAX_VALUE_NESTING + 1));
    let with_event = |a: KeyValue| {
        let mut s = span(3, T0, T0 + 1, vec![]);
        s.events.push(span::Event {
            time_unix_nano: T0,
            name: "e".into(),
            attributes: vec![a],
            dropped_attributes_count: 0,
        });
        s
    };
    let with_link = |a: KeyValue| {
        let mut s = span(4, T0, T0 + 1, vec![]);
        s.links.push(span::Link {
            trace_id: vec![9; 16],
            span_id: vec![9; 8],
            attributes: vec![a],
            ..Default::default()
        });
        s
    };

    // At the limit, everywhere: accepted, and read back exactly (the stored JSON parses).
    let spans = vec![
        span(
            1,
            T0,
            T0 + 1,
            vec![at(), kv("arr", nested(MAX_VALUE_NESTING))],
        ),
        with_event(at()),
        with_link(at()),
    ];
    let req = request_with(vec![at()], vec![at()], spans);
    let encoded = encode(&req).unwrap();
    assert_eq!((encoded.accepted, encoded.rejected), (3, 0));
    assert_eq!(read_back(encoded), req.resource_spans);

    // One past it: the span, the event's span and the link's span are rejected.
    let req = request(vec![
        span(1, T0, T0 + 1, vec![past()]),
        with_event(past()),
        with_link(past()),
        span(2, T0, T0 + 1, vec![at()]),
    ]);
    let encoded = encode(&req).unwrap();
    assert_eq!((encoded.accepted, encoded.rejected), (1, 3));
    let msg = encoded.rejection_message();
    for what in ["attribute", "event attribute", "link attribute"] {
        assert!(
            msg.contains(&format!(
                "invalid input: {what} \"deep\" nests arrays and key-value lists more than 24 deep"
            )),
            "{msg}"
        );
    }
    assert_eq!(names(&encoded), ["s2"]);

    // In the resource or the scope: every span under it.
    for (resource, scope, what) in [
        (vec![past()], vec![], "resource attribute"),
        (vec![], vec![past()], "scope attribute"),
    ] {
        let req = request_with(
            resource,
            scope,
            vec![span(1, T0, T0 + 1, vec![]), span(2, T0, T0 + 1, vec![])],
        );
        let encoded = encode(&req).unwrap();
        assert_eq!((encoded.accepted, encoded.rejected), (0, 2));
        assert!(encoded
            .rejection_message()
            .contains(&format!("{what} \"deep\" nests")));
    }
}

#[test]
fn hostile_flattened_keys_are_stored_as_sent() {
    // 20,000 segments (used to overflow the stack) and 16 keys of 2,000 `1023.` segments (used
    // to take 1.43 GB), next to a real flattened message.
    let mut attrs = vec![
        kv(
            &format!("llm.input_messages.0.{}", "a.".repeat(20_000)),
            Value::StringValue("x".into()),
        ),
        kv(
            "llm.input_messages.0.message.role",
            Value::StringValue("user".into()),
        ),
    ];
    let sparse = "1023.".repeat(2_000);
    attrs.extend((0..16).map(|i| {
        kv(
            &format!("llm.output_messages.{i}.{sparse}x"),
            Value::StringValue("v".into()),
        )
    }));
    let started = std::time::Instant::now();
    let req = request(vec![span(1, T0, T0 + 1, attrs)]);
    let encoded = encode(&req).unwrap();
    println!("hostile flattened keys encoded in {:?}", started.elapsed());
    assert_eq!((encoded.accepted, encoded.rejected), (1, 0));
    let spans = &encoded.partitions[0].spans;
    let input = spans
        .column_by_name("input_message_refs")
        .unwrap()
        .as_list::<i32>();
    assert_eq!(input.value(0).len(), 1, "the real message is re-assembled");
    let output = spans.column_by_name("output_message_refs").unwrap();
    assert!(output.is_null(0), "the sparse list is not");
    assert_eq!(
        read_back(encoded),
        req.resource_spans,
        "every raw attribute is kept"
    );
}

#[test]
fn repeated_keys_of_different_types_read_back_exactly() {
    let messages = |who: &str| {
        Value::StringValue(format!(
            r#"[{{"role":"{who}","content":"hi"}},{{"role":"assistant","content":"yo"}}]"#
        ))
    };
    let attrs = vec![
        kv("dup", Value::StringValue("1".into())),
        kv("dup", Value::IntValue(1)),
        kv("dup", Value::BoolValue(true)),
        kv("dup", Value::StringValue("true".into())),
        // A payload list claimed by a reference column, sent twice with different text.
        kv("gen_ai.input.messages", messages("user")),
        kv("gen_ai.input.messages", Value::IntValue(3)),
        kv("gen_ai.input.messages", messages("system")),
        kv("input.value", Value::StringValue("x".repeat(200))),
        kv("input.value", Value::StringValue("y".repeat(200))),
    ];
    let mut event = span::Event {
        time_unix_nano: T0,
        name: "e".into(),
        attributes: vec![
            kv("k", Value::IntValue(1)),
            kv("k", Value::StringValue("1".into())),
        ],
        dropped_attributes_count: 0,
    };
    let mut s = span(1, T0, T0 + 1, attrs);
    s.events.push(event.clone());
    event.attributes.reverse();
    s.events.push(event);
    let req = request_with(
        vec![
            kv("r", Value::StringValue("2".into())),
            kv("r", Value::DoubleValue(2.0)),
        ],
        vec![
            kv("s", Value::StringValue("false".into())),
            kv("s", Value::BoolValue(false)),
        ],
        vec![s],
    );
    let encoded = encode(&req).unwrap();
    assert_eq!(encoded.accepted, 1);
    assert_eq!(read_back(encoded), req.resource_spans);
}
