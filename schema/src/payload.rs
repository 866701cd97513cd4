//! Content-addressed payloads: large attribute values (messages, system instructions, tool
//! definitions, arguments and results, policy documents) are stored once in the `payloads`
//! table under the BLAKE3 hash of their text and referenced from spans.
//!
//! A JSON array of messages is split into one payload per message, so a conversation that
//! resends its whole history every turn stores each message once. The span keeps the attribute
//! under its own key with the reference in place of the text and a type tag (`payload`,
//! `payload_list`, `payload_list_spaced`) in `attribute_types`; [`restore`] puts the exact
//! original text back.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use serde_json::value::RawValue;

use crate::agent::{conventions, SpanView};
use crate::{Error, Result};

/// Type tag of an attribute whose text is one payload.
pub const TAG_ONE: &str = "payload";
/// Type tag of a JSON array stored one payload per element, elements joined by `,`.
pub const TAG_LIST: &str = "payload_list";
/// Same, elements joined by `, ` (Python's default JSON separator).
pub const TAG_LIST_SPACED: &str = "payload_list_spaced";

/// Hash → content, for restoring references.
pub type Contents = HashMap<String, String>;

/// The content hash: the first 128 bits of BLAKE3, lowercase hex (32 characters). References
/// are stored on every span that uses a payload, so their size matters; 128 bits keeps the
/// chance of a collision negligible for any number of payloads a tenant will ever store.
pub fn hash(content: &str) -> String {
    blake3::hash(content.as_bytes()).to_hex()[..32].to_owned()
}

/// One payload row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub hash: String,
    pub kind: String,
    pub content: String,
}

/// A reference column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Ref {
    One(String),
    List(Vec<String>),
}

/// Splits a JSON array into its elements' exact text if it can be put back byte for byte.
fn split_array(text: &str) -> Option<(Vec<&str>, &'static str)> {
    let elements: Vec<&RawValue> = serde_json::from_str(text).ok()?;
    let parts: Vec<&str> = elements.iter().map(|e| e.get()).collect();
    for (sep, tag) in [(",", TAG_LIST), (", ", TAG_LIST_SPACED)] {
        if text.len()
            == 2 + parts.iter().map(|p| p.len()).sum::<usize>()
                + sep.len() * parts.len().saturating_sub(1)
            && format!("[{}]", parts.join(sep)) == text
        {
            return Some((parts, tag));
        }
    }
    None
}

/// Attributes with payloads replaced by references.
#[derive(Debug, Default)]
pub struct Extracted {
    /// The rewritten attributes (same keys, same order).
    pub attributes: Vec<KeyValue>,
    /// Type tags for rewritten attributes, by index.
    pub tags: HashMap<usize, &'static str>,
    /// Reference per payload column (aligned with the convention table), with its source.
    pub refs: Vec<Option<(Ref, String)>>,
}

impl Extracted {
    pub fn tag(&self, index: usize) -> Option<&'static str> {
        self.tags.get(&index).copied()
    }
}

struct Extractor<'p> {
    payloads: &'p mut Vec<Payload>,
    seen: &'p mut HashSet<String>,
}

impl Extractor<'_> {
    fn store(&mut self, kind: &str, content: &str) -> String {
        let h = hash(content);
        if self.seen.insert(h.clone()) {
            self.payloads.push(Payload {
                hash: h.clone(),
                kind: kind.to_owned(),
                content: content.to_owned(),
            });
        }
        h
    }

    /// Replaces `kv`'s text by references; returns the tag and the reference. A list that goes
    /// to a reference column (`in_column`) is kept there only: the attribute's text is left
    /// empty and restored from the column.
    fn extract(
        &mut self,
        kv: &mut KeyValue,
        kind: &str,
        split: bool,
        in_column: bool,
    ) -> Option<(&'static str, Ref)> {
        let Some(Value::StringValue(text)) = kv.value.as_ref().and_then(|v| v.value.as_ref())
        else {
            return None;
        };
        if conventions().is_placeholder(text) {
            return None;
        }
        let (new_text, tag, reference) = match split.then(|| split_array(text)).flatten() {
            Some((parts, tag)) => {
                let hashes: Vec<String> = parts.iter().map(|p| self.store(kind, p)).collect();
                let listed = if in_column {
                    String::new()
                } else {
                    serde_json::to_string(&hashes).expect("strings serialise")
                };
                (listed, tag, Ref::List(hashes))
            }
            None => {
                let h = self.store(kind, text);
                let reference = if split {
                    Ref::List(vec![h.clone()])
                } else {
                    Ref::One(h.clone())
                };
                (h, TAG_ONE, reference)
            }
        };
        kv.value = Some(AnyValue {
            value: Some(Value::StringValue(new_text)),
        });
        Some((tag, reference))
    }
}

/// Extracts the payloads of one attribute list. `columns` are the keys claimed by payload
/// columns here, as (column index, key); other keys are extracted when they match a payload
/// pattern and are long enough.
fn extract_list(
    attrs: &[KeyValue],
    claimed: &[(usize, &str)],
    ex: &mut Extractor<'_>,
) -> Extracted {
    let conv = conventions();
    let mut out = Extracted {
        attributes: attrs.to_vec(),
        tags: HashMap::new(),
        refs: vec![None; conv.payload_columns.len()],
    };
    for (i, kv) in out.attributes.iter_mut().enumerate() {
        let column = claimed
            .iter()
            .find(|(_, key)| *key == kv.key)
            .map(|(c, _)| *c);
        let result = match column {
            Some(c) => {
                let spec = &conv.payload_columns[c];
                ex.extract(kv, &spec.kind, spec.split, true)
                    .map(|r| (Some(c), r))
            }
            None => {
                let long = matches!(kv.value.as_ref().and_then(|v| v.value.as_ref()),
                    Some(Value::StringValue(s)) if s.len() >= conv.payload_min_bytes);
                (long && conv.is_payload_key(&kv.key))
                    .then(|| ex.extract(kv, "text", false, false))
                    .flatten()
                    .map(|r| (None, r))
            }
        };
        if let Some((column, (tag, reference))) = result {
            out.tags.insert(i, tag);
            if let Some(c) = column {
                if out.refs[c].is_none() {
                    out.refs[c] = Some((reference, kv.key.clone()));
                }
            }
        }
    }
    out
}

fn json_of(v: &Value) -> Option<serde_json::Value> {
    Some(match v {
        Value::StringValue(s) => serde_json::Value::from(s.as_str()),
        Value::BoolValue(b) => serde_json::Value::from(*b),
        Value::IntValue(i) => serde_json::Value::from(*i),
        Value::DoubleValue(d) => serde_json::Value::from(*d),
        _ => return None,
    })
}

/// Sets `path` (segments; numbers index arrays) in `target`.
fn set_path(target: &mut serde_json::Value, path: &[&str], value: serde_json::Value) {
    let Some((head, rest)) = path.split_first() else {
        *target = value;
        return;
    };
    let slot = match head.parse::<usize>() {
        Ok(i) if i < 1024 => {
            if !target.is_array() {
                *target = serde_json::Value::Array(Vec::new());
            }
            let arr = target.as_array_mut().expect("array");
            while arr.len() <= i {
                arr.push(serde_json::Value::Null);
            }
            &mut arr[i]
        }
        _ => {
            if !target.is_object() {
                *target = serde_json::Value::Object(Default::default());
            }
            target
                .as_object_mut()
                .expect("object")
                .entry(head.to_string())
                .or_insert(serde_json::Value::Null)
        }
    };
    set_path(slot, rest, value);
}

/// Re-assembles a list flattened as `<prefix>.<index>.<field path>` attributes, in index order.
/// OpenInference nests each element under `message`, which is unwrapped.
pub fn unflatten(attrs: &[KeyValue], prefix: &str) -> Vec<String> {
    let mut root = serde_json::Value::Array(Vec::new());
    let lead = format!("{prefix}.");
    for kv in attrs {
        let Some(rest) = kv.key.strip_prefix(&lead) else {
            continue;
        };
        let Some(value) = kv
            .value
            .as_ref()
            .and_then(|v| v.value.as_ref())
            .and_then(json_of)
        else {
            continue;
        };
        let path: Vec<&str> = rest.split('.').collect();
        if path.first().is_some_and(|p| p.parse::<usize>().is_ok()) && path.len() > 1 {
            set_path(&mut root, &path, value);
        }
    }
    root.as_array()
        .map(|items| {
            items
                .iter()
                .filter(|m| !m.is_null())
                .map(|m| m.get("message").unwrap_or(m).to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Payload extraction for one span: its own attributes and, when a payload column names a
/// resource attribute, the resource's.
pub fn extract_span(
    view: &SpanView<'_>,
    payloads: &mut Vec<Payload>,
    seen: &mut HashSet<String>,
) -> (Extracted, Extracted) {
    let conv = conventions();
    let mut span_claims = Vec::new();
    let mut resource_claims = Vec::new();
    for (c, spec) in conv.payload_columns.iter().enumerate() {
        if let Some((is_resource, key)) = spec.candidates.iter().find_map(|s| s.attribute(view)) {
            if is_resource {
                resource_claims.push((c, key));
            } else {
                span_claims.push((c, key));
            }
        }
    }
    let mut ex = Extractor { payloads, seen };
    let span = extract_list(&view.span.attributes, &span_claims, &mut ex);
    let mut span = span;
    for (c, spec) in conv.payload_columns.iter().enumerate() {
        if span.refs[c].is_some() || spec.flattened.is_empty() {
            continue;
        }
        for prefix in &spec.flattened {
            let items = unflatten(&view.span.attributes, prefix);
            if !items.is_empty() {
                let hashes = items.iter().map(|m| ex.store(&spec.kind, m)).collect();
                span.refs[c] = Some((Ref::List(hashes), format!("{prefix}.*")));
                break;
            }
        }
    }
    let mut resource = extract_list(view.resource, &resource_claims, &mut ex);
    // Resource references count for the span's columns, labelled as resource sources.
    for (c, r) in resource.refs.iter_mut().enumerate() {
        if span.refs[c].is_none() {
            if let Some((reference, key)) = r.take() {
                span.refs[c] = Some((reference, format!("resource:{key}")));
            }
        }
    }
    (span, resource)
}

/// What restoring references needs: payload contents, and the hash list of a reference column
/// for an attribute whose list is kept only there (by attribute key).
pub struct Resolver<'a> {
    pub contents: &'a Contents,
    pub lists: &'a dyn Fn(&str) -> Option<Vec<String>>,
}

impl Resolver<'_> {
    /// Restores the attribute `key`'s original text.
    pub fn restore(&self, key: &str, text: &str, tag: &str) -> Result<String> {
        if text.is_empty() && matches!(tag, TAG_LIST | TAG_LIST_SPACED) {
            let hashes = (self.lists)(key).ok_or_else(|| {
                Error::Corrupt(format!("reference list of attribute {key} is missing"))
            })?;
            let listed = serde_json::to_string(&hashes).expect("strings serialise");
            return restore(&listed, tag, self.contents);
        }
        restore(text, tag, self.contents)
    }
}

/// Puts back the original text of a rewritten attribute value.
pub fn restore(text: &str, tag: &str, contents: &Contents) -> Result<String> {
    let get = |h: &str| {
        contents
            .get(h)
            .cloned()
            .ok_or_else(|| Error::Corrupt(format!("payload {h} is missing")))
    };
    match tag {
        TAG_ONE => get(text),
        TAG_LIST | TAG_LIST_SPACED => {
            let hashes: Vec<String> = serde_json::from_str(text)
                .map_err(|e| Error::Corrupt(format!("payload list {text:?}: {e}")))?;
            let parts = hashes.iter().map(|h| get(h)).collect::<Result<Vec<_>>>()?;
            let sep = if tag == TAG_LIST { "," } else { ", " };
            Ok(format!("[{}]", parts.join(sep)))
        }
        other => Err(Error::Corrupt(format!("{other:?} is not a payload tag"))),
    }
}

/// The hashes a rewritten attribute value refers to.
pub fn hashes_of(text: &str, tag: &str) -> Vec<String> {
    match tag {
        TAG_ONE => vec![text.to_owned()],
        TAG_LIST | TAG_LIST_SPACED => serde_json::from_str(text).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Is `tag` a payload tag?
pub fn is_payload_tag(tag: &str) -> bool {
    matches!(tag, TAG_ONE | TAG_LIST | TAG_LIST_SPACED)
}

static PAYLOADS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("hash", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("content", DataType::Utf8, false),
    ]))
});

/// Schema of the `payloads` table.
pub fn payloads_schema() -> SchemaRef {
    PAYLOADS_SCHEMA.clone()
}

/// Payload rows as a batch.
pub fn payloads_batch(rows: &[Payload]) -> Result<RecordBatch> {
    let mut hash = StringBuilder::new();
    let mut kind = StringBuilder::new();
    let mut content = StringBuilder::new();
    for p in rows {
        hash.append_value(&p.hash);
        kind.append_value(&p.kind);
        content.append_value(&p.content);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(hash.finish()),
        Arc::new(kind.finish()),
        Arc::new(content.finish()),
    ];
    Ok(RecordBatch::try_new(payloads_schema(), columns)?)
}

/// Arrow fields of the reference columns on `spans`: each followed by its `_src`.
pub fn ref_fields() -> Vec<Field> {
    let mut out = Vec::new();
    for p in &conventions().payload_columns {
        let data_type = if p.split {
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        } else {
            DataType::Utf8
        };
        out.push(Field::new(&p.name, data_type, true));
        out.push(Field::new(format!("{}_src", p.name), DataType::Utf8, true));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_split_and_restore_exactly() {
        for text in [
            r#"[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]"#,
            r#"[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]"#,
            "[]",
            "[1]",
        ] {
            let (parts, tag) = split_array(text).unwrap_or_else(|| panic!("{text}"));
            let contents: Contents = parts.iter().map(|p| (hash(p), p.to_string())).collect();
            let listed =
                serde_json::to_string(&parts.iter().map(|p| hash(p)).collect::<Vec<_>>()).unwrap();
            assert_eq!(restore(&listed, tag, &contents).unwrap(), text);
        }
        for text in ["[1,  2]", "[ 1 ]", "{\"a\":1}", "not json", "[1,2"] {
            assert!(split_array(text).is_none(), "{text}");
        }
        assert!(restore("abc", TAG_ONE, &Contents::new()).is_err());
    }

    #[test]
    fn flattened_lists_reassemble() {
        let kv = |k: &str, v: Value| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let attrs = vec![
            kv(
                "llm.input_messages.1.message.role",
                Value::StringValue("user".into()),
            ),
            kv(
                "llm.input_messages.0.message.role",
                Value::StringValue("system".into()),
            ),
            kv(
                "llm.input_messages.0.message.content",
                Value::StringValue("be brief".into()),
            ),
            kv(
                "llm.input_messages.1.message.content",
                Value::StringValue("hi".into()),
            ),
            kv(
                "llm.input_messages.2.message.tool_calls.0.tool_call.id",
                Value::StringValue("c1".into()),
            ),
            kv(
                "llm.input_messages.10.message.role",
                Value::StringValue("tool".into()),
            ),
            kv("llm.other", Value::IntValue(1)),
        ];
        let m = unflatten(&attrs, "llm.input_messages");
        assert_eq!(m.len(), 4);
        assert_eq!(m[0], r#"{"content":"be brief","role":"system"}"#);
        assert_eq!(m[1], r#"{"content":"hi","role":"user"}"#);
        assert_eq!(m[2], r#"{"tool_calls":[{"tool_call":{"id":"c1"}}]}"#);
        assert_eq!(m[3], r#"{"role":"tool"}"#);
        assert!(unflatten(&attrs, "gen_ai.prompt").is_empty());
    }
}
