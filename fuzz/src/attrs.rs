//! The `attributes` target: structure-aware attribute lists, built from the fuzzer's bytes with
//! `arbitrary`, through the attribute maps and through normalisation. Shared with
//! `cairn-normalize`'s regression tests (which include this file next to `normalise.rs`).
//!
//! The saved inputs under `fuzz/regressions/attributes/` mean what this generator makes of them:
//! a change to it can silently turn them into other inputs. After changing it, check that each
//! saved input still reproduces what its test in `normalize/tests/fuzz_regressions.rs` says it
//! did (minimise and save it again if not).

use arbitrary::{Result, Unstructured};
use cairn_normalize::attributes::{append_types, append_values, new_map_builder, read};
use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_normalize::otlp::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use cairn_normalize::otlp::resource::v1::Resource;
use cairn_normalize::otlp::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use cairn_normalize::payload::{Contents, Resolver};

/// Nesting of arrays and key-value lists at most: about what the OTLP decoders admit (protobuf
/// stops at 100 nested messages, two or three per level; JSON at 128 nested containers, three
/// per level).
const MAX_DEPTH: usize = 48;
/// Attributes per list at most.
const MAX_ATTRS: usize = 16;
/// Times the segments of a flattened key may repeat: a compact way to say a long key.
const MAX_REPEAT: u32 = 8_192;

/// Keys that the conventions give a meaning to (promoted columns, payloads, span kinds).
const KNOWN_KEYS: &[&str] = &[
    "service.name",
    "openinference.span.kind",
    "traceloop.span.kind",
    "gen_ai.operation.name",
    "gen_ai.system",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.agent.name",
    "gen_ai.tool.name",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "llm.token_count.prompt",
    "llm.model_name",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "llm.tools",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "input.value",
    "output.value",
    "traceloop.entity.input",
    "traceloop.entity.output",
    "agent_trail.policy.document",
    "agent_trail.approval.state",
    "k8s.pod.name",
];

/// Prefixes of lists flattened into one attribute per field.
const FLATTENED: &[&str] = &[
    "llm.input_messages",
    "llm.output_messages",
    "gen_ai.prompt",
    "gen_ai.completion",
];

const SEGMENTS: &[&str] = &[
    "message",
    "role",
    "content",
    "tool_calls",
    "tool_call",
    "id",
    "a",
];

const TEXTS: &[&str] = &[
    r#"[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]"#,
    r#"[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]"#,
    "[]",
    "[1,2",
    "{\"city\":\"Paris\"}",
    "TOOL",
    "LLM",
    "AGENT",
    "tool",
    "chat",
    "true",
    "42",
    "",
];

fn text(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 => u.arbitrary::<String>()?,
        1 => u.choose(TEXTS)?.to_string(),
        // Long enough to be stored as a payload.
        2 => u
            .choose(TEXTS)?
            .repeat(usize::from(u.int_in_range(1u16..=400)?)),
        _ => "x".repeat(usize::from(u.arbitrary::<u16>()? % 8192)),
    })
}

fn key(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=2)? {
        0 => u.arbitrary::<String>()?,
        1 => u.choose(KNOWN_KEYS)?.to_string(),
        _ => {
            let mut key = u.choose(FLATTENED)?.to_string();
            let mut segments = Vec::new();
            for _ in 0..u.int_in_range(1..=4)? {
                segments.push(match u.int_in_range(0..=2)? {
                    0 => (u.arbitrary::<u16>()? % 1100).to_string(),
                    1 => u.choose(SEGMENTS)?.to_string(),
                    _ => u.arbitrary::<String>()?,
                });
            }
            let repeat = if u.ratio(1, 128)? {
                u.int_in_range(1..=MAX_REPEAT)?
            } else {
                1
            };
            key.push('.');
            key.push_str(&(u.arbitrary::<u8>()? % 12).to_string());
            for _ in 0..repeat {
                for s in &segments {
                    key.push('.');
                    key.push_str(s);
                }
            }
            key
        }
    })
}

fn value(u: &mut Unstructured<'_>, depth: usize) -> Result<Option<Value>> {
    let nested = depth < MAX_DEPTH;
    Ok(Some(match u.int_in_range(0..=9)? {
        0 | 1 => Value::StringValue(text(u)?),
        2 => Value::BoolValue(u.arbitrary()?),
        3 => Value::IntValue(u.arbitrary()?),
        4 => Value::DoubleValue(u.arbitrary()?),
        5 => Value::BytesValue(u.arbitrary()?),
        6 if nested => Value::ArrayValue(ArrayValue {
            values: (0..u.int_in_range(0..=4)?)
                .map(|_| any_value(u, depth + 1))
                .collect::<Result<_>>()?,
        }),
        7 if nested => Value::KvlistValue(KeyValueList {
            values: (0..u.int_in_range(0..=4)?)
                .map(|_| key_value(u, depth + 1))
                .collect::<Result<_>>()?,
        }),
        8 => Value::StringValueStrindex(u.arbitrary()?),
        _ => return Ok(None),
    }))
}

fn any_value(u: &mut Unstructured<'_>, depth: usize) -> Result<AnyValue> {
    Ok(AnyValue {
        value: value(u, depth)?,
    })
}

fn key_value(u: &mut Unstructured<'_>, depth: usize) -> Result<KeyValue> {
    Ok(KeyValue {
        key: key(u)?,
        value: if u.ratio(1, 16)? {
            None
        } else {
            Some(any_value(u, depth)?)
        },
        ..Default::default()
    })
}

fn attributes(u: &mut Unstructured<'_>) -> Result<Vec<KeyValue>> {
    (0..u.int_in_range(0..=MAX_ATTRS)?)
        .map(|_| key_value(u, 0))
        .collect()
}

/// A request of one resource and scope with one or two valid spans, every attribute list fuzzed.
fn request(u: &mut Unstructured<'_>) -> Result<(Vec<KeyValue>, ExportTraceServiceRequest)> {
    let list = attributes(u)?;
    let resource = attributes(u)?;
    let scope = InstrumentationScope {
        name: u
            .choose(&["", "openinference.instrumentation.openai_agents", "x"])?
            .to_string(),
        version: String::new(),
        attributes: attributes(u)?,
        dropped_attributes_count: 0,
    };
    let mut spans = Vec::new();
    for i in 0..u.int_in_range(1..=2u8)? {
        let start = 1_700_000_000_000_000_000 + u64::from(i) * 1_000;
        spans.push(Span {
            trace_id: vec![7; 16],
            span_id: vec![i + 1; 8],
            parent_span_id: if i == 0 { Vec::new() } else { vec![1; 8] },
            name: format!("span-{i}"),
            kind: u.int_in_range(0..=5)?,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 500,
            attributes: if i == 0 { list.clone() } else { attributes(u)? },
            events: vec![span::Event {
                time_unix_nano: start + 1,
                name: "event".into(),
                attributes: attributes(u)?,
                dropped_attributes_count: 0,
            }],
            links: vec![span::Link {
                trace_id: vec![9; 16],
                span_id: vec![9; 8],
                attributes: attributes(u)?,
                ..Default::default()
            }],
            status: Some(Status {
                message: String::new(),
                code: 1,
            }),
            ..Default::default()
        });
    }
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    Ok((list, request))
}

/// One input of the `attributes` target.
pub fn attributes_target(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((list, request)) = request(&mut u) else {
        return;
    };
    // The attribute maps alone: a value map and a type map, read back.
    let mut values = new_map_builder();
    let mut types = new_map_builder();
    append_values(&mut values, &list);
    append_types(&mut types, &list);
    let (values, types) = (values.finish(), types.finish());
    let contents = Contents::new();
    let resolver = Resolver {
        contents: &contents,
        in_column: &|_| None,
    };
    match read(&values, &types, 0, &resolver) {
        Ok(back) if crate::normalise::strict() => {
            let expected: Vec<KeyValue> = list
                .iter()
                .map(|kv| KeyValue {
                    value: kv.value.clone().filter(|v| v.value.is_some()),
                    ..kv.clone()
                })
                .collect();
            assert_eq!(
                format!("{back:?}"),
                format!("{expected:?}"),
                "attributes differ after the map round trip"
            );
        }
        Err(e) if crate::normalise::strict() => panic!("attributes do not read back: {e}"),
        _ => {}
    }
    // The whole normalisation: payload extraction, promotion, un-flattening.
    crate::normalise::check_request(&request);
}
