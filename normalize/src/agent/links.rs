//! Why-links and data lineage read from a span's attributes: the tool calls a model turn
//! requested (so each tool execution joins to the turn that asked for it), and the resources a
//! step read or wrote, as normalised URIs.

use foldhash::HashSet;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use serde_json::Value as Json;

use super::SpanView;
use crate::payload::MAX_FLATTENED_PATH_SEGMENTS;

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::StringValue(s) => vec![s.clone()],
        Value::ArrayValue(a) => a
            .values
            .iter()
            .filter_map(|v| match v.value.as_ref()? {
                Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// One tool call a model turn asked for: (id, function name; empty when not sent).
pub type Requested = (String, String);

fn text(v: &Json, key: &str) -> String {
    v.get(key)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Tool calls in OpenTelemetry GenAI output messages (`parts` of type `tool_call`) and in Chat
/// Completions messages (`tool_calls`).
fn calls_in_messages(text_: &str) -> Vec<Requested> {
    let Ok(Json::Array(messages)) = serde_json::from_str::<Json>(text_) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in &messages {
        for part in m
            .get("parts")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            if part.get("type").and_then(Json::as_str) == Some("tool_call") {
                if let Some(id) = part.get("id").and_then(Json::as_str) {
                    out.push((id.to_owned(), text(part, "name")));
                }
            }
        }
        for call in m
            .get("tool_calls")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = call.get("id").and_then(Json::as_str) {
                let name = call
                    .get("function")
                    .map_or_else(|| text(call, "name"), |f| text(f, "name"));
                out.push((id.to_owned(), name));
            }
        }
    }
    out
}

/// Tool calls in a message's content blocks as Bedrock-style APIs (and Strands) write them:
/// `[{"toolUse": {"toolUseId": …, "name": …}}]`.
fn calls_in_content_blocks(text_: &str) -> Vec<Requested> {
    let Ok(Json::Array(blocks)) = serde_json::from_str::<Json>(text_) else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter_map(|b| {
            let call = b.get("toolUse")?;
            Some((
                call.get("toolUseId")?.as_str()?.to_owned(),
                text(call, "name"),
            ))
        })
        .collect()
}

/// Flattened tool calls (`<prefix>.<i>.….tool_calls.<j>.<id suffix>` and the name beside it),
/// in index order.
fn flattened_calls(
    view: &SpanView<'_>,
    prefix: &str,
    id_suffix: &str,
    name_suffix: &str,
) -> Vec<Requested> {
    let mut found: Vec<(Vec<u32>, Requested)> = view
        .span
        .attributes
        .iter()
        .filter(|kv| {
            kv.key.starts_with(prefix)
                && kv.key.ends_with(id_suffix)
                && kv.key.contains("tool_calls.")
                // As deep as a flattened message may be (the prefix has two segments).
                && kv.key.split('.').nth(MAX_FLATTENED_PATH_SEGMENTS + 2).is_none()
        })
        .filter_map(|kv| {
            let Some(Value::StringValue(id)) = kv.value.as_ref()?.value.as_ref() else {
                return None;
            };
            let stem = &kv.key[..kv.key.len() - id_suffix.len()];
            let name = match view.attr(&format!("{stem}{name_suffix}")) {
                Some(Value::StringValue(n)) => n.clone(),
                _ => String::new(),
            };
            let order = kv.key.split('.').filter_map(|s| s.parse().ok()).collect();
            Some((order, (id.clone(), name)))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, call)| call).collect()
}

/// The tool calls a model turn asked for, in order, with the attribute they came from.
pub fn requested_tool_calls(view: &SpanView<'_>) -> Option<(Vec<Requested>, String)> {
    if let Some(Value::StringValue(t)) = view.attr("gen_ai.output.messages") {
        let calls = calls_in_messages(t);
        if !calls.is_empty() {
            return Some((calls, "gen_ai.output.messages".into()));
        }
    }
    // The same in the inference details event, and the deprecated per-message choice event.
    let details = "gen_ai.client.inference.operation.details";
    if let Some((_, _, Value::StringValue(t))) = view.event_attr(details, "gen_ai.output.messages")
    {
        let calls = calls_in_messages(t);
        if !calls.is_empty() {
            return Some((calls, format!("event:{details}.gen_ai.output.messages")));
        }
    }
    let choices: Vec<Requested> = view
        .span
        .events
        .iter()
        .filter(|e| e.name == "gen_ai.choice")
        .flat_map(|e| &e.attributes)
        .filter(|kv| kv.key == "message")
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(t) => Some(t),
            _ => None,
        })
        .flat_map(|t| {
            let calls = calls_in_content_blocks(t);
            if calls.is_empty() {
                calls_in_messages(&format!("[{t}]"))
            } else {
                calls
            }
        })
        .collect();
    if !choices.is_empty() {
        return Some((choices, "event:gen_ai.choice.message".into()));
    }
    // Flattened forms: OpenInference and OpenLLMetry (legacy).
    for (prefix, id_suffix, name_suffix, label) in [
        (
            "llm.output_messages.",
            ".tool_call.id",
            ".tool_call.function.name",
            "llm.output_messages.*.message.tool_calls.*.tool_call.id",
        ),
        (
            "gen_ai.completion.",
            ".id",
            ".name",
            "gen_ai.completion.*.tool_calls.*.id",
        ),
    ] {
        let calls = flattened_calls(view, prefix, id_suffix, name_suffix);
        if !calls.is_empty() {
            return Some((calls, label.into()));
        }
    }
    None
}

/// A URI with its scheme lower-cased and no trailing slash.
pub fn normalise_uri(uri: &str) -> String {
    let uri = uri.trim().trim_end_matches('/');
    match uri.split_once("://") {
        Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
        None => uri.to_owned(),
    }
}

type Found = Option<(Vec<String>, String)>;

/// Distinct URIs in the order first named, with the attribute that named the first one.
#[derive(Default)]
struct Uris {
    list: Vec<String>,
    seen: HashSet<String>,
    source: Option<String>,
}

impl Uris {
    fn add(&mut self, uris: impl IntoIterator<Item = String>, source: &str) {
        for uri in uris {
            let uri = normalise_uri(&uri);
            if !uri.is_empty() && self.seen.insert(uri.clone()) {
                self.list.push(uri);
                self.source.get_or_insert_with(|| source.to_owned());
            }
        }
    }

    fn found(self) -> Found {
        Some((self.list, self.source?))
    }
}

const WRITE_DB_OPERATIONS: &[&str] = &[
    "insert", "update", "delete", "upsert", "replace", "merge", "put", "write", "create", "drop",
];

/// (resources read, resources written), each with the attribute that first named one.
pub fn data_accessed(view: &SpanView<'_>, operation: Option<&str>) -> (Found, Found) {
    let mut read = Uris::default();
    let mut written = Uris::default();
    if let Some(v) = view.attr("agent_trail.data.read") {
        read.add(strings(v), "agent_trail.data.read");
    }
    if let Some(v) = view.attr("agent_trail.data.written") {
        written.add(strings(v), "agent_trail.data.written");
    }
    if let Some(v) = view.attr("agent_trail.data.accessed") {
        // Entries may say how: `write:s3://…`, `delete:…`, `read:…`; plain URIs are reads.
        for entry in strings(v) {
            let (how, uri) = match entry.split_once(':') {
                Some((how @ ("read" | "write" | "delete"), rest)) if !rest.starts_with("//") => {
                    (how, rest.to_owned())
                }
                _ => ("read", entry.clone()),
            };
            let list = if how == "read" {
                &mut read
            } else {
                &mut written
            };
            list.add([uri], "agent_trail.data.accessed");
        }
    }
    if let Some(Value::StringValue(id)) = view.attr("gen_ai.data_source.id") {
        read.add([format!("datasource:{id}")], "gen_ai.data_source.id");
    }
    if let Some(Value::StringValue(uri)) = view.attr("mcp.resource.uri") {
        read.add([uri.clone()], "mcp.resource.uri");
    }
    let docs: Vec<String> = view
        .span
        .attributes
        .iter()
        .filter(|kv| kv.key.starts_with("retrieval.documents.") && kv.key.ends_with(".document.id"))
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(format!("doc:{s}")),
            Value::IntValue(i) => Some(format!("doc:{i}")),
            _ => None,
        })
        .collect();
    read.add(docs, "retrieval.documents.*.document.id");
    let text = |k: &str| match view.attr(k) {
        Some(Value::StringValue(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    if let Some(store) = text("gen_ai.memory.store.id") {
        let uri = match text("gen_ai.memory.record.id") {
            Some(record) => format!("memory://{store}/{record}"),
            None => format!("memory://{store}"),
        };
        let op = text("gen_ai.operation.name").unwrap_or_default();
        let list = if op == "search_memory" || operation == Some("retrieval") {
            &mut read
        } else {
            &mut written
        };
        list.add([uri], "gen_ai.memory.store.id");
    }
    if let Some(system) = text("db.system.name").or_else(|| text("db.system")) {
        let mut uri = format!("db://{system}");
        for k in ["db.namespace", "db.collection.name"] {
            if let Some(part) = text(k) {
                uri.push('/');
                uri.push_str(&part);
            }
        }
        let op = text("db.operation.name")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let list = if WRITE_DB_OPERATIONS.iter().any(|w| op.starts_with(w)) {
            &mut written
        } else {
            &mut read
        };
        list.add([uri], "db.system");
    }
    (read.found(), written.found())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_from_messages() {
        let call = |id: &str, name: &str| (id.to_owned(), name.to_owned());
        let text = r#"[{"role":"assistant","parts":[{"type":"text","content":"x"},{"type":"tool_call","id":"call_1","name":"a"},{"type":"tool_call","id":"call_2","name":"b"}]}]"#;
        assert_eq!(
            calls_in_messages(text),
            [call("call_1", "a"), call("call_2", "b")]
        );
        assert_eq!(
            calls_in_messages(
                r#"[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f"}}]}]"#
            ),
            [call("c", "f")]
        );
        assert!(calls_in_messages("not json").is_empty());
        assert_eq!(
            calls_in_content_blocks(r#"[{"toolUse": {"toolUseId": "t1", "name": "get_weather"}}]"#),
            [call("t1", "get_weather")]
        );
        assert_eq!(normalise_uri(" S3://Bucket/key/ "), "s3://Bucket/key");
    }
}
