//! The bundled convention table (`conventions.toml`), parsed once.

use foldhash::{HashMap, HashSet};
use std::sync::LazyLock;

use cairn_schema::promoted;
use regex::Regex;
use serde::Deserialize;

use super::{Kind, Resolved, SpanView};

/// Where a candidate value is read from.
#[derive(Debug)]
pub enum Source {
    /// A span attribute.
    Span(String),
    /// A resource attribute.
    Resource(String),
    /// The first capture group of a pattern over the span name.
    Name(Regex),
    /// An attribute of the span's first event of a name that has it (`event:<name>:<key>`).
    Event { name: String, key: String },
    /// A field (dotted path) of a JSON object held by a span attribute
    /// (`json:<key>#<path>`), e.g. the model in OpenInference's `llm.invocation_parameters`.
    Json { key: String, path: Vec<String> },
    /// Another source, only when a span attribute equals a value, case-insensitive
    /// (`<source>|if <key>=<value>`).
    If {
        source: Box<Source>,
        when: String,
        equals: String,
    },
}

/// Whether span attribute `when` of `view` equals `equals` (case-insensitive); `*` asks only
/// that it is present.
fn holds(view: &SpanView<'_>, when: &str, equals: &str) -> bool {
    if equals == "*" {
        return view.attr(when).is_some();
    }
    matches!(view.attr(when),
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s))
            if s.eq_ignore_ascii_case(equals))
}

/// `key=value` of a `|if` condition.
fn condition(text: &str, cond: &str) -> Result<(String, String), String> {
    let (when, equals) = cond
        .split_once('=')
        .ok_or_else(|| format!("{text}: condition must be key=value"))?;
    Ok((when.trim().to_owned(), equals.trim().to_owned()))
}

/// The field at `path` of the JSON object in `text`, as text (strings as they are, numbers and
/// booleans printed).
pub fn json_field(text: &str, path: &[String]) -> Option<String> {
    let mut node: serde_json::Value = serde_json::from_str(text).ok()?;
    for segment in path {
        node = node.get_mut(segment.as_str())?.take();
    }
    match node {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Source {
    fn parse(text: &str) -> Result<Self, String> {
        if let Some((inner, cond)) = text.split_once("|if ") {
            let (when, equals) = condition(text, cond)?;
            return Ok(Source::If {
                source: Box::new(Source::parse(inner)?),
                when,
                equals,
            });
        }
        if let Some(key) = text.strip_prefix("@res:") {
            return Ok(Source::Resource(key.to_owned()));
        }
        if let Some(pattern) = text.strip_prefix("name:") {
            return Regex::new(pattern)
                .map(Source::Name)
                .map_err(|e| format!("{text}: {e}"));
        }
        if let Some(rest) = text.strip_prefix("event:") {
            let (name, key) = rest
                .split_once(':')
                .ok_or_else(|| format!("{text}: an event source is event:<name>:<key>"))?;
            return Ok(Source::Event {
                name: name.to_owned(),
                key: key.to_owned(),
            });
        }
        if let Some(rest) = text.strip_prefix("json:") {
            let (key, path) = rest
                .split_once('#')
                .ok_or_else(|| format!("{text}: a JSON source is json:<key>#<path>"))?;
            return Ok(Source::Json {
                key: key.to_owned(),
                path: path.split('.').map(str::to_owned).collect(),
            });
        }
        Ok(Source::Span(text.to_owned()))
    }

    /// The source itself, seen through a condition that holds for `view`.
    fn active(&self, view: &SpanView<'_>) -> Option<&Source> {
        match self {
            Source::If {
                source,
                when,
                equals,
            } => holds(view, when, equals)
                .then(|| source.active(view))
                .flatten(),
            other => Some(other),
        }
    }

    /// The event attribute this source reads for `view`, if it is an event source whose
    /// condition holds: (event name, attribute key).
    pub fn event<'s>(&'s self, view: &SpanView<'_>) -> Option<(&'s str, &'s str)> {
        match self.active(view)? {
            Source::Event { name, key } => Some((name, key)),
            _ => None,
        }
    }

    /// Where the value of this source lives for `view`: (is a resource attribute, key).
    pub fn attribute<'s>(&'s self, view: &SpanView<'_>) -> Option<(bool, &'s str)> {
        self.resolve(view)?;
        match self.active(view)? {
            Source::Span(key) => Some((false, key)),
            Source::Resource(key) => Some((true, key)),
            _ => None,
        }
    }

    /// The value this source yields for `view`, with the label recorded as provenance.
    pub(crate) fn resolve<'a>(&self, view: &SpanView<'a>) -> Option<(Resolved<'a>, String)> {
        match self.active(view)? {
            Source::Span(key) => view.attr(key).map(|v| (Resolved::Value(v), key.clone())),
            Source::Resource(key) => view
                .resource_attr(key)
                .map(|v| (Resolved::Value(v), format!("resource:{key}"))),
            Source::Name(re) => {
                let caps = re.captures(&view.span.name)?;
                let m = caps.get(1)?;
                Some((
                    Resolved::Text(m.as_str().trim().to_owned()),
                    format!("span.name:{}", re.as_str()),
                ))
            }
            Source::Event { name, key } => {
                let (_, _, value) = view.event_attr(name, key)?;
                Some((Resolved::Value(value), format!("event:{name}.{key}")))
            }
            Source::Json { key, path } => {
                let opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(text) =
                    view.attr(key)?
                else {
                    return None;
                };
                let value = json_field(text, path)?;
                Some((Resolved::Text(value), format!("{key}#{}", path.join("."))))
            }
            Source::If { .. } => None,
        }
    }
}

/// One promoted column and its candidates in precedence order.
#[derive(Debug)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    pub candidates: Vec<Source>,
}

/// A payload reference column and the attributes it is filled from.
#[derive(Debug)]
pub struct PayloadColumn {
    pub name: String,
    pub kind: String,
    /// Split a JSON array into one payload per element.
    pub split: bool,
    pub candidates: Vec<Source>,
    /// Prefixes of lists flattened into one attribute per field, re-assembled into elements.
    pub flattened: Vec<String>,
    /// Events that each carry one message: (event name, attribute with the text, role).
    pub message_events: Vec<(String, String, String)>,
    /// A span attribute value (`key=value`) under which `message_events` are not messages.
    pub message_events_unless: Option<(String, String)>,
}

impl PayloadColumn {
    /// The role and text attribute of a message carried by events named `name`.
    pub fn message_event(&self, name: &str) -> Option<(&str, &str)> {
        self.message_events
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, key, role)| (role.as_str(), key.as_str()))
    }

    /// Whether this span's events are not messages of this column.
    pub fn skip_events(&self, view: &SpanView<'_>) -> bool {
        self.message_events_unless
            .as_ref()
            .is_some_and(|(when, equals)| holds(view, when, equals))
    }
}

/// The parsed convention table.
#[derive(Debug)]
pub struct Conventions {
    pub version: u32,
    pub columns: Vec<Column>,
    pub payload_columns: Vec<PayloadColumn>,
    pub payload_min_bytes: usize,
    payload_patterns: Vec<Vec<String>>,
    placeholders: HashSet<String>,
    operations: HashMap<String, HashMap<String, String>>,
    providers: HashMap<String, String>,
    pub frameworks: HashSet<String>,
    provider_hosts: Vec<(String, String)>,
    model_providers: Vec<(String, String)>,
    scope_frameworks: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    candidates: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPayload {
    column: String,
    kind: String,
    #[serde(default)]
    split: bool,
    candidates: Vec<String>,
    #[serde(default)]
    flattened: Vec<String>,
    #[serde(default)]
    message_events: Vec<String>,
    #[serde(default)]
    message_events_unless: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConventions {
    version: u32,
    placeholders: Vec<String>,
    payload_min_bytes: usize,
    payload_patterns: Vec<String>,
    payload: Vec<RawPayload>,
    column: Vec<RawColumn>,
    operation: HashMap<String, HashMap<String, String>>,
    provider: HashMap<String, String>,
    frameworks: Vec<String>,
    provider_hosts: HashMap<String, String>,
    model_providers: HashMap<String, String>,
    scope_frameworks: HashMap<String, String>,
}

/// Checks that the table fills exactly the promoted and payload reference columns of the span
/// schema, in its order and with its types: the table says where values come from, the schema
/// (`cairn_schema::promoted`) which columns exist.
fn matches_the_schema(columns: &[Column], payloads: &[PayloadColumn]) -> Result<(), String> {
    let stored: Vec<(&str, Kind)> = columns
        .iter()
        .filter(|c| !super::INTERNAL.contains(&c.name.as_str()))
        .map(|c| (c.name.as_str(), c.kind))
        .collect();
    if stored != promoted::COPIED {
        return Err(format!(
            "the [[column]] entries must be the span schema's promoted columns {:?} in that \
             order (plus {:?}), got {stored:?}",
            promoted::COPIED,
            super::INTERNAL
        ));
    }
    let refs: Vec<(&str, bool)> = payloads
        .iter()
        .map(|p| (p.name.as_str(), p.split))
        .collect();
    if refs != promoted::PAYLOAD_REFS {
        return Err(format!(
            "the [[payload]] entries must be the span schema's payload reference columns {:?} \
             in that order (name, split), got {refs:?}",
            promoted::PAYLOAD_REFS
        ));
    }
    Ok(())
}

/// The bundled table's text.
pub const BUNDLED: &str = include_str!("conventions.toml");

impl Conventions {
    /// Parses a convention table.
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: RawConventions = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut columns = Vec::with_capacity(raw.column.len());
        for c in raw.column {
            let kind = match c.kind.as_str() {
                "text" => Kind::Text,
                "int" => Kind::Integer,
                "float" => Kind::Float,
                other => return Err(format!("column {}: unknown type {other:?}", c.name)),
            };
            let candidates = c
                .candidates
                .iter()
                .map(|s| Source::parse(s))
                .collect::<Result<Vec<_>, _>>()?;
            columns.push(Column {
                name: c.name,
                kind,
                candidates,
            });
        }
        let mut payload_columns = Vec::with_capacity(raw.payload.len());
        for p in raw.payload {
            payload_columns.push(PayloadColumn {
                name: p.column,
                kind: p.kind,
                split: p.split,
                candidates: p
                    .candidates
                    .iter()
                    .map(|s| Source::parse(s))
                    .collect::<Result<Vec<_>, _>>()?,
                flattened: p.flattened,
                message_events: p
                    .message_events
                    .iter()
                    .map(|m| {
                        let mut parts = m.splitn(3, ':');
                        match (parts.next(), parts.next(), parts.next()) {
                            (Some(n), Some(k), Some(r)) => {
                                Ok((n.to_owned(), k.to_owned(), r.to_owned()))
                            }
                            _ => Err(format!("{m}: a message event is <name>:<key>:<role>")),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                message_events_unless: p
                    .message_events_unless
                    .map(|c| condition(&c, &c))
                    .transpose()?,
            });
        }
        let lower = |m: HashMap<String, String>| {
            m.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect::<HashMap<_, _>>()
        };
        let by_length = |m: HashMap<String, String>| {
            let mut v: Vec<_> = m.into_iter().collect();
            v.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
            v
        };
        matches_the_schema(&columns, &payload_columns)?;
        Ok(Self {
            version: raw.version,
            columns,
            payload_columns,
            payload_min_bytes: raw.payload_min_bytes,
            payload_patterns: raw
                .payload_patterns
                .iter()
                .map(|p| p.split('.').map(str::to_owned).collect())
                .collect(),
            placeholders: raw
                .placeholders
                .iter()
                .map(|p| p.to_ascii_lowercase())
                .collect(),
            operations: raw
                .operation
                .into_iter()
                .map(|(k, v)| (k, lower(v)))
                .collect(),
            providers: lower(raw.provider),
            frameworks: raw
                .frameworks
                .into_iter()
                .map(|f| f.to_ascii_lowercase())
                .collect(),
            provider_hosts: by_length(raw.provider_hosts),
            model_providers: by_length(raw.model_providers),
            scope_frameworks: by_length(raw.scope_frameworks),
        })
    }

    pub fn is_placeholder(&self, text: &str) -> bool {
        self.placeholders
            .contains(&text.trim().to_ascii_lowercase())
    }

    /// Does `key` match one of the payload patterns (`*` is one key segment)?
    pub fn is_payload_key(&self, key: &str) -> bool {
        self.payload_patterns.iter().any(|p| {
            let mut segments = key.split('.');
            p.iter()
                .all(|a| segments.next().is_some_and(|b| a == "*" || a == b))
                && segments.next().is_none()
        })
    }

    /// The normalised operation for a raw value read from `source`.
    pub fn operation(&self, source: &str, raw: &str) -> String {
        let raw = raw.trim().to_ascii_lowercase();
        if let Some(op) = self.operations.get(source).and_then(|m| m.get(&raw)) {
            return op.clone();
        }
        match source {
            "mcp.method.name" if raw == "tools/call" => "tool_call".into(),
            "mcp.method.name" => "mcp".into(),
            "a2a.method.name" => "agent_invoke".into(),
            "ai.operationId" if raw.contains("toolcall") => "tool_call".into(),
            "ai.operationId" if raw.contains("embed") => "embeddings".into(),
            "ai.operationId" if raw.contains("generate") || raw.contains("stream") => {
                "llm_call".into()
            }
            _ => "other".into(),
        }
    }

    /// The canonical provider name of a lower-cased raw value.
    pub fn provider(&self, raw: &str) -> String {
        self.known_provider(raw).unwrap_or_else(|| raw.to_owned())
    }

    /// The canonical provider `raw` names, if it names one: as it is, or without an API suffix
    /// (`openai.chat`, `openai.responses` → `openai`).
    pub fn known_provider(&self, raw: &str) -> Option<String> {
        let mut name = raw;
        loop {
            if let Some(p) = self.providers.get(name) {
                return Some(p.clone());
            }
            name = name.rsplit_once('.')?.0;
        }
    }

    /// The provider a server host name implies (longest matching fragment wins).
    pub fn provider_for_host(&self, host: &str) -> Option<String> {
        let host = host.to_ascii_lowercase();
        self.provider_hosts
            .iter()
            .find(|(fragment, _)| host.contains(fragment.as_str()))
            .map(|(_, p)| p.clone())
    }

    /// The provider a model family implies (longest matching name prefix wins).
    pub fn provider_for_model(&self, model: &str) -> Option<String> {
        let model = model.to_ascii_lowercase();
        self.model_providers
            .iter()
            .find(|(prefix, _)| model.starts_with(prefix.as_str()))
            .map(|(_, p)| p.clone())
    }

    /// The framework an instrumentation scope name implies (longest prefix wins).
    pub fn framework_for_scope(&self, scope: &str) -> Option<String> {
        self.scope_frameworks
            .iter()
            .find(|(prefix, _)| scope.starts_with(prefix.as_str()))
            .map(|(_, f)| f.clone())
    }
}

static CONVENTIONS: LazyLock<Conventions> =
    LazyLock::new(|| Conventions::parse(BUNDLED).expect("the bundled conventions.toml is valid"));

/// The bundled convention table.
pub fn conventions() -> &'static Conventions {
    &CONVENTIONS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_table_parses() {
        let c = conventions();
        assert_eq!(c.version, 1);
        assert!(c.columns.iter().any(|c| c.name == "agent_name"));
        assert_eq!(c.operation("gen_ai.operation.name", "Chat"), "llm_call");
        assert_eq!(c.operation("openinference.span.kind", "TOOL"), "tool_call");
        assert_eq!(c.operation("mcp.method.name", "tools/call"), "tool_call");
        assert_eq!(c.operation("gen_ai.operation.name", "dance"), "other");
        assert_eq!(c.provider("az.ai.openai"), "azure.ai.openai");
        assert_eq!(c.provider("brand-new"), "brand-new");
        assert_eq!(
            c.provider_for_host("my-rg.openai.azure.com").as_deref(),
            Some("azure.ai.openai")
        );
        assert_eq!(
            c.framework_for_scope("openinference.instrumentation.openai_agents")
                .as_deref(),
            Some("openai-agents")
        );
        assert!(c.is_placeholder(" <not specified> "));
        assert!(c.is_payload_key("llm.input_messages.3.message.content"));
        assert!(!c.is_payload_key("llm.input_messages.3.message.role"));
        assert!(c
            .payload_columns
            .iter()
            .any(|p| p.name == "input_message_refs" && p.split));
    }

    #[test]
    fn rejects_bad_tables() {
        assert!(Conventions::parse("version = 1").is_err());
        let bad_type = BUNDLED.replacen("type = \"text\"", "type = \"txt\"", 1);
        assert!(Conventions::parse(&bad_type).is_err());
        let bad_regex = BUNDLED.replacen("name:^invoke_agent (.+)$", "name:^invoke_agent (.+$", 1);
        assert!(Conventions::parse(&bad_regex).is_err());
        // Columns the span schema does not have, or of another type, or payload columns split
        // differently, are refused.
        let extra = format!(
            "{BUNDLED}\n[[column]]\nname = \"mood\"\ntype = \"text\"\ncandidates = [\"x\"]\n"
        );
        assert!(Conventions::parse(&extra)
            .unwrap_err()
            .contains("promoted columns"));
        let retyped = BUNDLED.replacen(
            "name = \"agent_id\"\ntype = \"text\"",
            "name = \"agent_id\"\ntype = \"int\"",
            1,
        );
        assert_ne!(retyped, BUNDLED);
        assert!(Conventions::parse(&retyped)
            .unwrap_err()
            .contains("promoted columns"));
        let unsplit = BUNDLED.replacen("\nsplit = true", "\nsplit = false", 1);
        assert!(Conventions::parse(&unsplit)
            .unwrap_err()
            .contains("payload reference"));
    }
}
