//! Content-addressed payloads: large attribute values (messages, system instructions, tool
//! definitions, arguments and results, policy documents) are stored once in the `payloads`
//! table under the BLAKE3 hash of their text and referenced from spans.
//!
//! A JSON array of messages is split into one payload per message, so a conversation that
//! resends its whole history every turn stores each message once. The span keeps the attribute
//! under its own key with the reference in place of the text and a type tag (`payload`,
//! `payload_list`, `payload_list_spaced`) in `attribute_types`; [`restore`] puts the exact
//! original text back. A span attribute whose reference went to a reference column keeps an
//! empty text: the reference is stored once, in the column.

use foldhash::{HashMap, HashMapExt, HashSet};
use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use serde_json::value::RawValue;

use cairn_schema::columns::payloads_schema;

use crate::agent::{conventions, SpanView};
use crate::{Error, Result};

/// Type tag of an attribute whose text is one payload.
pub const TAG_ONE: &str = "payload";
/// Type tag of a JSON array stored one payload per element, elements joined by `,`.
pub const TAG_LIST: &str = "payload_list";
/// Same, elements joined by `, ` (Python's default JSON separator).
pub const TAG_LIST_SPACED: &str = "payload_list_spaced";

/// Type tag of an event attribute whose text is the `content` of a message payload, embedded
/// there as JSON as it was sent.
pub const TAG_IN_MESSAGE_JSON: &str = "payload_in_message";
/// Same, embedded as a JSON string (the text was not JSON).
pub const TAG_IN_MESSAGE_TEXT: &str = "payload_in_message_text";

/// Hash → content, for restoring references.
pub type Contents = std::collections::HashMap<String, String>;

/// The content hash: the first 128 bits of BLAKE3, lowercase hex (32 characters). References
/// are stored on every span that uses a payload, so their size matters; 128 bits keeps the
/// chance of a collision negligible for any number of payloads a tenant will ever store.
pub fn hash(content: &str) -> String {
    blake3::hash(content.as_bytes()).to_hex()[..32].to_owned()
}

/// One payload row; its content borrowed from the request (`'r`) when it was sent as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload<'r> {
    pub hash: String,
    pub kind: String,
    pub content: Cow<'r, str>,
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

/// A span's events with payloads replaced by references. Only the events a payload was taken
/// from are copied; the others keep their attributes as sent.
#[derive(Debug, Default)]
pub struct ExtractedEvents {
    /// Rewritten attributes, by event index.
    rewritten: HashMap<usize, Vec<KeyValue>>,
    /// Type tags by (event, attribute) index.
    pub tags: HashMap<(usize, usize), &'static str>,
}

impl ExtractedEvents {
    /// The attributes to store for event `i`, whose attributes as sent are `sent`.
    pub fn attributes<'a>(&'a self, i: usize, sent: &'a [KeyValue]) -> &'a [KeyValue] {
        self.rewritten.get(&i).map_or(sent, Vec::as_slice)
    }

    /// Attribute `a` of event `e` of `view`'s span, to be rewritten.
    fn attribute_mut(&mut self, view: &SpanView<'_>, e: usize, a: usize) -> &mut KeyValue {
        &mut self
            .rewritten
            .entry(e)
            .or_insert_with(|| view.span.events[e].attributes.clone())[a]
    }
}

impl Extracted {
    pub fn tag(&self, index: usize) -> Option<&'static str> {
        self.tags.get(&index).copied()
    }
}

/// The payloads one batch has stored so far, for the request (`'r`) it is built from.
#[derive(Debug, Default)]
pub struct Seen<'r> {
    hashes: HashSet<String>,
    /// Hashes of messages whose role is `system`.
    system: HashSet<String>,
    /// The hash of each text of the request already stored: a conversation resent every turn
    /// is hashed once, not once per turn (looking a text up costs a fast hash and a compare).
    known: HashMap<&'r str, String>,
}

/// Whether a message payload has the role `system`.
fn is_system_message(content: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Role<'a> {
        #[serde(borrow)]
        role: Option<&'a str>,
    }
    content.contains("system")
        && serde_json::from_str::<Role<'_>>(content).is_ok_and(|m| m.role == Some("system"))
}

struct Extractor<'p, 'r> {
    payloads: &'p mut Vec<Payload<'r>>,
    seen: &'p mut Seen<'r>,
}

impl<'r> Extractor<'_, 'r> {
    /// Stores a text of the request (see [`Seen::known`]).
    fn store_sent(&mut self, kind: &str, content: &'r str) -> String {
        if let Some(h) = self.seen.known.get(content) {
            return h.clone();
        }
        let h = self.store_cow(kind, Cow::Borrowed(content));
        self.seen.known.insert(content, h.clone());
        h
    }

    /// Stores a text made from the request's (a re-assembled or wrapped message).
    fn store(&mut self, kind: &str, content: String) -> String {
        self.store_cow(kind, Cow::Owned(content))
    }

    fn store_cow(&mut self, kind: &str, content: Cow<'r, str>) -> String {
        let h = hash(&content);
        if self.seen.hashes.insert(h.clone()) {
            if kind == "message" && is_system_message(&content) {
                self.seen.system.insert(h.clone());
            }
            self.payloads.push(Payload {
                hash: h.clone(),
                kind: kind.to_owned(),
                content,
            });
        }
        h
    }

    /// The references to store in place of `kv`'s text: the new text, the tag and the
    /// reference. A reference that goes to a reference column (`in_column`) is kept there only:
    /// the attribute's text is left empty and restored from the column.
    fn extract(
        &mut self,
        kv: &'r KeyValue,
        kind: &str,
        split: bool,
        in_column: bool,
    ) -> Option<(String, &'static str, Ref)> {
        let Some(Value::StringValue(text)) = kv.value.as_ref().and_then(|v| v.value.as_ref())
        else {
            return None;
        };
        if conventions().is_placeholder(text) {
            return None;
        }
        let (new_text, tag, reference) = match split.then(|| split_array(text)).flatten() {
            Some((parts, tag)) => {
                let hashes: Vec<String> = parts.iter().map(|p| self.store_sent(kind, p)).collect();
                let listed = if in_column {
                    String::new()
                } else {
                    serde_json::to_string(&hashes).expect("strings serialise")
                };
                (listed, tag, Ref::List(hashes))
            }
            None => {
                let h = self.store_sent(kind, text);
                let reference = if split {
                    Ref::List(vec![h.clone()])
                } else {
                    Ref::One(h.clone())
                };
                let text = if in_column { String::new() } else { h };
                (text, TAG_ONE, reference)
            }
        };
        Some((new_text, tag, reference))
    }
}

/// A string attribute value.
fn text_value(text: String) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(text)),
    })
}

/// Extracts the payloads of one attribute list. `columns` are the keys claimed by payload
/// columns here, as (column index, key); other keys are extracted when they match a payload
/// pattern and are long enough. With `column_only`, an attribute whose reference goes to its
/// column keeps an empty text (span attributes: the column is the row's own); a resource's
/// attributes keep their references, as several spans with columns of their own share them.
fn extract_list<'r>(
    attrs: &'r [KeyValue],
    claimed: &[(usize, &str)],
    column_only: bool,
    ex: &mut Extractor<'_, 'r>,
) -> Extracted {
    let conv = conventions();
    let mut out = Extracted {
        attributes: Vec::with_capacity(attrs.len()),
        tags: HashMap::new(),
        refs: vec![None; conv.payload_columns.len()],
    };
    for (i, kv) in attrs.iter().enumerate() {
        let column = claimed
            .iter()
            .find(|(_, key)| *key == kv.key)
            .map(|(c, _)| *c);
        let result = match column {
            Some(c) => {
                // Only the first value of a repeated key goes to the column; the others keep
                // their references in the attribute.
                let spec = &conv.payload_columns[c];
                let in_column = out.refs[c].is_none();
                ex.extract(kv, &spec.kind, spec.split, column_only && in_column)
                    .map(|r| (in_column.then_some(c), r))
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
        // A payload's text is not copied: the attribute is rebuilt around its reference.
        let Some((column, (text, tag, reference))) = result else {
            out.attributes.push(kv.clone());
            continue;
        };
        out.attributes.push(KeyValue {
            key: kv.key.clone(),
            value: text_value(text),
            key_strindex: kv.key_strindex,
        });
        out.tags.insert(i, tag);
        if let Some(c) = column {
            if out.refs[c].is_none() {
                out.refs[c] = Some((reference, kv.key.clone()));
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

/// Most segments a flattened attribute key may have after its list prefix, index included, to
/// be re-assembled into a message (`llm.input_messages.0.message.contents.1.message_content.
/// image.image.url` has 8). A deeper key is left out of the re-assembled messages.
///
/// What a client sees: nothing is rejected; the attribute is stored as sent, and only the
/// message reference column (`input_message_refs`, `output_message_refs`) lacks it.
pub const MAX_FLATTENED_PATH_SEGMENTS: usize = 32;

/// Re-assembling one flattened list creates at most this many JSON nodes (array slots, object
/// fields) per path segment of its attributes. Real instrumentations number elements densely
/// from 0, which needs at most one node per segment; sparse numbering that would take more
/// (index 9 of ten attributes `<prefix>.9.x<i>.8`, each needing a nine-slot array) leaves the
/// list un-assembled. Besides, an index is only honoured below the number of attributes under
/// the prefix (`1023` among 16 attributes is not): a key with a larger one is left out.
///
/// What a client sees: nothing is rejected; the attributes are stored as sent, and the message
/// reference column is not filled from them.
pub const MAX_FLATTENED_NODES_PER_SEGMENT: usize = 2;

/// The index a path segment names, if it is a decimal number (`usize::MAX` if too large).
fn as_index(segment: &str) -> Option<usize> {
    (!segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()))
        .then(|| segment.parse().unwrap_or(usize::MAX))
}

/// Why a path was not set.
enum Unset {
    /// An index is not below the limit: this path is left out.
    Index,
    /// The node budget is spent: the whole list is left un-assembled.
    Budget,
}

/// Sets `path` (segments; numbers index arrays) in `root`, iteratively, creating at most
/// `budget` nodes (array slots, object fields) and taking those it creates from it. Indexes must
/// be below `limit`.
fn set_path(
    root: &mut serde_json::Value,
    path: &[&str],
    value: serde_json::Value,
    limit: usize,
    budget: &mut usize,
) -> Result<(), Unset> {
    if path.iter().any(|s| as_index(s).is_some_and(|i| i >= limit)) {
        return Err(Unset::Index);
    }
    let mut node = root;
    for segment in path {
        node = match as_index(segment) {
            Some(i) => {
                if !node.is_array() {
                    *node = serde_json::Value::Array(Vec::new());
                }
                let arr = node.as_array_mut().expect("array");
                if arr.len() <= i {
                    let grow = i + 1 - arr.len();
                    *budget = budget.checked_sub(grow).ok_or(Unset::Budget)?;
                    arr.resize(i + 1, serde_json::Value::Null);
                }
                &mut arr[i]
            }
            None => {
                if !node.is_object() {
                    *node = serde_json::Value::Object(Default::default());
                }
                let obj = node.as_object_mut().expect("object");
                if !obj.contains_key(*segment) {
                    *budget = budget.checked_sub(1).ok_or(Unset::Budget)?;
                }
                obj.entry(segment.to_string())
                    .or_insert(serde_json::Value::Null)
            }
        };
    }
    *node = value;
    Ok(())
}

/// Re-assembles a list flattened as `<prefix>.<index>.<field path>` attributes, in index order.
/// OpenInference nests each element under `message`, which is unwrapped.
///
/// Bounded by its input: keys deeper than [`MAX_FLATTENED_PATH_SEGMENTS`] and indexes not below
/// the number of attributes under the prefix are left out, and a list that would need more
/// than [`MAX_FLATTENED_NODES_PER_SEGMENT`] nodes per segment yields nothing.
pub fn unflatten(attrs: &[KeyValue], prefix: &str) -> Vec<String> {
    let lead = format!("{prefix}.");
    let mut under = 0;
    let mut paths: Vec<(Vec<&str>, &Value)> = Vec::new();
    for kv in attrs {
        let Some(rest) = kv.key.strip_prefix(&lead) else {
            continue;
        };
        under += 1;
        let Some(
            value @ (Value::StringValue(_)
            | Value::BoolValue(_)
            | Value::IntValue(_)
            | Value::DoubleValue(_)),
        ) = kv.value.as_ref().and_then(|v| v.value.as_ref())
        else {
            continue;
        };
        let path: Vec<&str> = rest
            .split('.')
            .take(MAX_FLATTENED_PATH_SEGMENTS + 1)
            .collect();
        if path.len() <= MAX_FLATTENED_PATH_SEGMENTS
            && path.len() > 1
            && as_index(path[0]).is_some()
        {
            paths.push((path, value));
        }
    }
    let mut budget =
        MAX_FLATTENED_NODES_PER_SEGMENT * paths.iter().map(|(p, _)| p.len()).sum::<usize>();
    let mut root = serde_json::Value::Array(Vec::new());
    for (path, value) in paths {
        let Some(value) = json_of(value) else {
            continue;
        };
        match set_path(&mut root, &path, value, under, &mut budget) {
            Ok(()) | Err(Unset::Index) => {}
            Err(Unset::Budget) => return Vec::new(),
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

/// A flattened tool definition (`{"tool": {"json_schema": "<JSON>"}}`) as the definition itself,
/// when its schema is JSON; else as it is.
fn schema_of(item: &str) -> String {
    let schema = serde_json::from_str::<serde_json::Value>(item)
        .ok()
        .and_then(|v| {
            v.get("tool")?
                .get("json_schema")?
                .as_str()
                .map(str::to_owned)
        });
    match schema {
        Some(text) if serde_json::from_str::<&RawValue>(&text).is_ok() => text,
        _ => item.to_owned(),
    }
}

/// Payload extraction for one span: its own attributes, its events and, when a payload column
/// names a resource attribute, the resource's.
pub fn extract_span<'r>(
    view: &SpanView<'r>,
    payloads: &mut Vec<Payload<'r>>,
    seen: &mut Seen<'r>,
) -> (Extracted, Extracted, ExtractedEvents) {
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
    let span = extract_list(&view.span.attributes, &span_claims, true, &mut ex);
    let mut span = span;
    for (c, spec) in conv.payload_columns.iter().enumerate() {
        if span.refs[c].is_some() || spec.flattened.is_empty() {
            continue;
        }
        for prefix in &spec.flattened {
            let items = unflatten(&view.span.attributes, prefix);
            if !items.is_empty() {
                // A list column keeps one payload per element; another (tool definitions) one
                // payload of the re-assembled JSON array.
                let reference = if spec.split {
                    Ref::List(items.into_iter().map(|m| ex.store(&spec.kind, m)).collect())
                } else {
                    let items: Vec<String> = items.iter().map(|i| schema_of(i)).collect();
                    Ref::One(ex.store(&spec.kind, format!("[{}]", items.join(","))))
                };
                span.refs[c] = Some((reference, format!("{prefix}.*")));
                break;
            }
        }
    }
    let events = extract_events(view, &mut span, &mut ex);
    system_from_first_message(&mut span, ex.seen);
    let mut resource = extract_list(view.resource, &resource_claims, false, &mut ex);
    // Resource references count for the span's columns, labelled as resource sources.
    for (c, r) in resource.refs.iter_mut().enumerate() {
        if span.refs[c].is_none() {
            if let Some((reference, key)) = r.take() {
                span.refs[c] = Some((reference, format!("resource:{key}")));
            }
        }
    }
    (span, resource, events)
}

/// Without system instructions of their own, a model call's are its first input message when
/// that has the role `system` (the way most instrumentations send the system prompt).
fn system_from_first_message(span: &mut Extracted, seen: &Seen<'_>) {
    let conv = conventions();
    let column = |name: &str| conv.payload_columns.iter().position(|p| p.name == name);
    let (Some(input), Some(system)) = (
        column("input_message_refs"),
        column("system_instructions_ref"),
    ) else {
        return;
    };
    if span.refs[system].is_some() {
        return;
    }
    if let Some((Ref::List(hashes), label)) = &span.refs[input] {
        if let Some(first) = hashes.first().filter(|h| seen.system.contains(*h)) {
            span.refs[system] = Some((Ref::One(first.clone()), format!("{label}[0]")));
        }
    }
}

/// Fills the payload columns still empty from the span's events: an event attribute a
/// candidate names (`event:<name>:<key>`, e.g. the messages of
/// `gen_ai.client.inference.operation.details`), else one message per event of the column's
/// `message_events` (`gen_ai.user.message`, `gen_ai.choice`, …). The event attributes taken are
/// replaced by references, so each text is stored once.
fn extract_events<'r>(
    view: &SpanView<'r>,
    span: &mut Extracted,
    ex: &mut Extractor<'_, 'r>,
) -> ExtractedEvents {
    let conv = conventions();
    let mut out = ExtractedEvents::default();
    if view.span.events.is_empty() {
        return out;
    }
    let system = conv
        .payload_columns
        .iter()
        .position(|p| p.name == "system_instructions_ref")
        .expect("system_instructions_ref in conventions");
    for (c, spec) in conv.payload_columns.iter().enumerate() {
        if span.refs[c].is_some() {
            continue;
        }
        for source in &spec.candidates {
            let Some((name, key)) = source.event(view) else {
                continue;
            };
            let Some((e, a, _)) = view.event_attr(name, key) else {
                continue;
            };
            let sent = &view.span.events[e].attributes[a];
            if let Some((text, tag, reference)) = ex.extract(sent, &spec.kind, spec.split, false) {
                out.attribute_mut(view, e, a).value = text_value(text);
                out.tags.insert((e, a), tag);
                span.refs[c] = Some((reference, format!("event:{name}.{key}")));
                break;
            }
        }
        if span.refs[c].is_some() || spec.message_events.is_empty() || spec.skip_events(view) {
            continue;
        }
        let mut hashes = Vec::new();
        let mut label = None;
        for (e, event) in view.span.events.iter().enumerate() {
            let Some((role, key)) = spec.message_event(&event.name) else {
                continue;
            };
            let Some(a) = event.attributes.iter().position(|kv| kv.key == key) else {
                continue;
            };
            let Some(Value::StringValue(text)) = event.attributes[a]
                .value
                .as_ref()
                .and_then(|v| v.value.as_ref())
            else {
                continue;
            };
            if out.tags.contains_key(&(e, a)) {
                continue;
            }
            let role = event
                .attributes
                .iter()
                .find(|kv| kv.key == "role")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(r) => Some(r.as_str()),
                    _ => None,
                })
                .unwrap_or(role);
            let (message, tag) = message_of(role, text);
            let h = ex.store(&spec.kind, message);
            out.attribute_mut(view, e, a).value = text_value(h.clone());
            out.tags.insert((e, a), tag);
            label.get_or_insert_with(|| format!("event:{}.{key}", event.name));
            if role == "system" && span.refs[system].is_none() {
                span.refs[system] =
                    Some((Ref::One(h.clone()), format!("event:{}.{key}", event.name)));
            }
            hashes.push(h);
        }
        if let Some(label) = label {
            span.refs[c] = Some((Ref::List(hashes), label));
        }
    }
    out
}

/// What restoring references needs: payload contents, and the hashes of the reference column
/// filled from an attribute whose reference is kept only there (by attribute key; one hash for
/// a single-payload column).
pub struct Resolver<'a> {
    pub contents: &'a Contents,
    pub in_column: &'a dyn Fn(&str) -> Option<Vec<String>>,
}

impl Resolver<'_> {
    /// Restores the attribute `key`'s original text.
    pub fn restore(&self, key: &str, text: &str, tag: &str) -> Result<String> {
        if text.is_empty() && matches!(tag, TAG_ONE | TAG_LIST | TAG_LIST_SPACED) {
            let hashes = (self.in_column)(key).ok_or_else(|| {
                Error::Corrupt(format!("reference column of attribute {key} is missing"))
            })?;
            if tag == TAG_ONE {
                let [hash] = hashes.as_slice() else {
                    return Err(Error::Corrupt(format!(
                        "reference column of attribute {key} holds {} references, not one",
                        hashes.len()
                    )));
                };
                return restore(hash, tag, self.contents);
            }
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
        TAG_IN_MESSAGE_JSON | TAG_IN_MESSAGE_TEXT => {
            let message = get(text)?;
            content_of(&message, tag == TAG_IN_MESSAGE_JSON)
                .ok_or_else(|| Error::Corrupt(format!("payload {text} holds no message content")))
        }
        other => Err(Error::Corrupt(format!("{other:?} is not a payload tag"))),
    }
}

/// The `content` of a message payload as it was sent: its exact JSON text, or the string.
fn content_of(message: &str, json: bool) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        content: &'a RawValue,
    }
    let m: Message<'_> = serde_json::from_str(message).ok()?;
    if json {
        Some(m.content.get().to_owned())
    } else {
        serde_json::from_str::<String>(m.content.get()).ok()
    }
}

/// A message payload for one message sent as an event attribute: `{"role":…,"content":…}`
/// with the text embedded so that it can be put back exactly, and the tag saying how.
fn message_of(role: &str, text: &str) -> (String, &'static str) {
    let role = serde_json::to_string(role).expect("strings serialise");
    let exact_json = text.trim() == text
        && serde_json::from_str::<&RawValue>(text).is_ok_and(|raw| raw.get() == text);
    if exact_json {
        (
            format!(r#"{{"role":{role},"content":{text}}}"#),
            TAG_IN_MESSAGE_JSON,
        )
    } else {
        let quoted = serde_json::to_string(text).expect("strings serialise");
        (
            format!(r#"{{"role":{role},"content":{quoted}}}"#),
            TAG_IN_MESSAGE_TEXT,
        )
    }
}

/// The hashes a rewritten attribute value refers to.
pub fn hashes_of(text: &str, tag: &str) -> Vec<String> {
    match tag {
        TAG_ONE | TAG_IN_MESSAGE_JSON | TAG_IN_MESSAGE_TEXT => vec![text.to_owned()],
        TAG_LIST | TAG_LIST_SPACED => serde_json::from_str(text).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Is `tag` a payload tag?
pub fn is_payload_tag(tag: &str) -> bool {
    matches!(
        tag,
        TAG_ONE | TAG_LIST | TAG_LIST_SPACED | TAG_IN_MESSAGE_JSON | TAG_IN_MESSAGE_TEXT
    )
}

/// Payload rows as a batch.
pub fn payloads_batch(rows: &[Payload<'_>]) -> Result<RecordBatch> {
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
                // A gap (3 and 4 missing) is skipped; the index must be below the 6
                // attributes under the prefix.
                "llm.input_messages.5.message.role",
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

    fn text(key: &str, v: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    /// Peak resident memory of this process in KiB (nextest runs each test in its own).
    fn peak_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    #[test]
    fn deep_flattened_keys_are_left_out_without_recursion() {
        // One key of 20,000 segments used to overflow the stack.
        let before = (peak_kib(), std::time::Instant::now());
        let key = format!("llm.input_messages.0.{}", "a.".repeat(20_000));
        let attrs = vec![text(&key, "x"), text("llm.input_messages.0.role", "user")];
        let m = unflatten(&attrs, "llm.input_messages");
        assert_eq!(m, [r#"{"role":"user"}"#]);
        println!(
            "20,000-segment key: {:?}, peak RSS +{} KiB",
            before.1.elapsed(),
            peak_kib() - before.0
        );
        // The limit itself: 32 segments after the prefix are re-assembled, 33 are not.
        let path = |n: usize| {
            let mut p = vec!["0"];
            p.extend(std::iter::repeat_n("a", n - 2));
            p.push("b");
            format!("llm.input_messages.{}", p.join("."))
        };
        let at = path(MAX_FLATTENED_PATH_SEGMENTS);
        let m = unflatten(&[text(&at, "x")], "llm.input_messages");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].matches('{').count(), MAX_FLATTENED_PATH_SEGMENTS - 1);
        let past = path(MAX_FLATTENED_PATH_SEGMENTS + 1);
        assert!(unflatten(&[text(&past, "x")], "llm.input_messages").is_empty());
    }

    #[test]
    fn sparse_indexes_allocate_nothing() {
        // 16 keys of 2,000 `1023.` segments (156 KB) used to grow RSS by 1.43 GB.
        let before = (peak_kib(), std::time::Instant::now());
        let keys = |segments: usize| -> Vec<KeyValue> {
            let tail = "1023.".repeat(segments);
            (0..16)
                .map(|i| text(&format!("llm.input_messages.{i}.{tail}x"), "v"))
                .collect()
        };
        assert!(unflatten(&keys(2_000), "llm.input_messages").is_empty());
        // The same within the segment limit: every index is past the attribute count.
        assert!(unflatten(&keys(30), "llm.input_messages").is_empty());
        let grown = peak_kib() - before.0;
        println!(
            "16 keys of 2,000 `1023.` segments: {:?}, peak RSS +{grown} KiB",
            before.1.elapsed()
        );
        assert!(grown < 64 * 1024, "peak RSS grew {grown} KiB");
    }

    #[test]
    fn indexes_are_bounded_by_the_attribute_count() {
        // Two attributes: indexes 0 and 1 are honoured, 2 is not.
        let attrs = vec![
            text("gen_ai.prompt.1.content", "b"),
            text("gen_ai.prompt.2.content", "c"),
        ];
        assert_eq!(unflatten(&attrs, "gen_ai.prompt"), [r#"{"content":"b"}"#]);
        // Dense numbering arriving in any order is re-assembled.
        let attrs: Vec<KeyValue> = (0..50)
            .rev()
            .flat_map(|i| {
                [
                    text(&format!("gen_ai.prompt.{i}.role"), "user"),
                    text(
                        &format!("gen_ai.prompt.{i}.tool_calls.0.id"),
                        &format!("c{i}"),
                    ),
                ]
            })
            .collect();
        let m = unflatten(&attrs, "gen_ai.prompt");
        assert_eq!(m.len(), 50);
        assert_eq!(m[7], r#"{"role":"user","tool_calls":[{"id":"c7"}]}"#);
        assert_eq!(
            m[10], r#"{"role":"user","tool_calls":[{"id":"c10"}]}"#,
            "numeric order"
        );
        assert_eq!(m[49], r#"{"role":"user","tool_calls":[{"id":"c49"}]}"#);
        // Nested indexes too.
        let attrs = vec![
            text("gen_ai.prompt.0.tool_calls.5.id", "far"),
            text("gen_ai.prompt.0.tool_calls.1.id", "near"),
            text("gen_ai.prompt.0.role", "user"),
        ];
        assert_eq!(
            unflatten(&attrs, "gen_ai.prompt"),
            [r#"{"role":"user","tool_calls":[null,{"id":"near"}]}"#]
        );
    }

    #[test]
    fn node_budget_stops_sparse_lists() {
        // 10 attributes whose indexes, though below the attribute count, each need 9 slots
        // for 3 segments: past 2 nodes a segment, nothing is derived.
        let attrs: Vec<KeyValue> = (0..10)
            .map(|i| text(&format!("gen_ai.prompt.9.x{i}.8"), "x"))
            .collect();
        assert!(unflatten(&attrs, "gen_ai.prompt").is_empty());
        // Dense, the same shape fits.
        let attrs: Vec<KeyValue> = (0..10)
            .map(|i| text(&format!("gen_ai.prompt.{i}.x.0"), "x"))
            .collect();
        assert_eq!(unflatten(&attrs, "gen_ai.prompt").len(), 10);
    }
}
