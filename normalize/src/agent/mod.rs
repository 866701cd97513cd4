//! Promoted agent columns: typed copies of what agent instrumentations emit, each with the
//! source it came from (`<column>_src`).
//!
//! Instrumentations disagree on names (OpenTelemetry GenAI current and deprecated, OpenInference,
//! OpenLLMetry, framework dialects). The candidate names, their precedence, the placeholder values
//! treated as absent and the operation and provider vocabularies are data, in the bundled
//! `conventions.toml` ([`conventions`]); this module only applies them. Raw attributes always stay
//! in the `attributes` map.

pub mod derived_calls;
pub mod inherit;
mod links;
pub mod prices;
mod table;

use foldhash::{HashMap, HashMapExt};

use opentelemetry_proto::tonic::common::v1::{any_value::Value, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::placement::Placement;

pub use cairn_schema::promoted::{output_columns, Kind};
pub use table::{conventions, Conventions, PayloadColumn, Source};

/// What a span's relatives say about it, resolved over whole traces in `batch` (rows of the
/// span schema): agent identity inherited from ancestors ([`inherit`]), model calls that wrap
/// another demoted to steps, then tool call ids matched to the model calls that requested them
/// ([`derived_calls`]). Runs on every flush and
/// compaction merge.
pub fn across_spans(batch: &arrow::array::RecordBatch) -> arrow::array::RecordBatch {
    let batch = derived_calls::count_model_calls_once(&inherit::inherit(batch));
    derived_calls::derive_tool_calls(&batch)
}

/// One promoted value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(Option<String>),
    Integer(Option<i64>),
    Float(Option<f64>),
    TextList(Option<Vec<String>>),
}

/// Table columns used only as inputs to derived columns, not stored.
pub(crate) const INTERNAL: &[&str] = &["provider_raw"];

/// Attribute lookup for one span.
pub struct SpanView<'a> {
    pub span: &'a Span,
    pub resource: &'a [KeyValue],
    pub scope: &'a InstrumentationScope,
    attrs: HashMap<&'a str, &'a Value>,
    res: HashMap<&'a str, &'a Value>,
}

fn index(kvs: &[KeyValue]) -> HashMap<&str, &Value> {
    let mut m = HashMap::with_capacity(kvs.len());
    for kv in kvs {
        if let Some(v) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            m.entry(kv.key.as_str()).or_insert(v);
        }
    }
    m
}

impl<'a> SpanView<'a> {
    pub fn new(span: &'a Span, resource: &'a [KeyValue], scope: &'a InstrumentationScope) -> Self {
        Self {
            span,
            resource,
            scope,
            attrs: index(&span.attributes),
            res: index(resource),
        }
    }

    pub fn attr(&self, key: &str) -> Option<&'a Value> {
        self.attrs.get(key).copied()
    }

    pub fn resource_attr(&self, key: &str) -> Option<&'a Value> {
        self.res.get(key).copied()
    }

    /// Index of the span attribute named `key`.
    pub fn attr_index(&self, key: &str) -> Option<usize> {
        self.span.attributes.iter().position(|kv| kv.key == key)
    }

    /// The first event named `name` with an attribute `key`: (event index, attribute index,
    /// value).
    pub fn event_attr(&self, name: &str, key: &str) -> Option<(usize, usize, &'a Value)> {
        self.span
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.name == name)
            .find_map(|(i, e)| {
                e.attributes.iter().enumerate().find_map(|(j, kv)| {
                    (kv.key == key)
                        .then(|| kv.value.as_ref()?.value.as_ref())
                        .flatten()
                        .map(|v| (i, j, v))
                })
            })
    }

    /// A top-level field of the JSON object a span attribute holds.
    pub fn json_attr(&self, key: &str, field: &str) -> Option<String> {
        match self.attr(key)? {
            Value::StringValue(text) => table::json_field(text, &[field.to_owned()]),
            _ => None,
        }
    }

    fn has_prefix(&self, prefix: &str) -> bool {
        self.attrs.keys().any(|k| k.starts_with(prefix))
    }
}

/// Text of a scalar value, `None` for placeholders, lists and maps.
fn scalar_text(v: &Value, conv: &Conventions) -> Option<String> {
    let text = match v {
        Value::StringValue(s) => s.trim().to_owned(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BoolValue(b) => b.to_string(),
        _ => return None,
    };
    (!conv.is_placeholder(&text)).then_some(text)
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::IntValue(i) => Some(*i),
        Value::DoubleValue(d) if d.fract() == 0.0 && d.is_finite() => Some(*d as i64),
        Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_float(v: &Value) -> Option<f64> {
    match v {
        Value::DoubleValue(d) => Some(*d),
        Value::IntValue(i) => Some(*i as f64),
        Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The first candidate of `column` with a usable value: (value, source label).
fn pick(
    view: &SpanView<'_>,
    candidates: &[Source],
    kind: Kind,
    conv: &Conventions,
) -> Option<(Cell, String)> {
    for source in candidates {
        let Some((value, label)) = source.resolve(view) else {
            continue;
        };
        let cell = match (kind, value) {
            (Kind::Text, Resolved::Value(v)) => scalar_text(v, conv).map(|t| Cell::Text(Some(t))),
            (Kind::Text, Resolved::Text(t)) => {
                (!conv.is_placeholder(&t)).then_some(Cell::Text(Some(t)))
            }
            (Kind::Integer, Resolved::Value(v)) => as_int(v).map(|i| Cell::Integer(Some(i))),
            (Kind::Integer, Resolved::Text(t)) => t.parse().ok().map(|i| Cell::Integer(Some(i))),
            (Kind::Float, Resolved::Value(v)) => as_float(v).map(|f| Cell::Float(Some(f))),
            (Kind::Float, Resolved::Text(t)) => t.parse().ok().map(|f| Cell::Float(Some(f))),
            (Kind::TextList, _) => None,
        };
        if let Some(cell) = cell {
            return Some((cell, label));
        }
    }
    None
}

/// What a candidate source yields.
pub enum Resolved<'a> {
    Value(&'a Value),
    Text(String),
}

fn text_of(cell: &Cell) -> Option<&str> {
    match cell {
        Cell::Text(Some(t)) => Some(t),
        _ => None,
    }
}

/// All promoted values of one span, aligned with [`output_columns`]. `placement` (from the
/// Kubernetes API) fills the placement columns the span's attributes leave empty; `placed` are
/// its resource's [`crate::placement::columns`], computed once per resource.
pub fn promote(view: &SpanView<'_>, placement: Option<&Placement>, placed: &[Cell]) -> Vec<Cell> {
    let conv = conventions();
    let mut picked: HashMap<&str, (Cell, String)> = HashMap::new();
    for c in &conv.columns {
        if let Some(found) = pick(view, &c.candidates, c.kind, conv) {
            picked.insert(c.name.as_str(), found);
        }
    }
    for (column, value) in placement.map(Placement::copied).into_iter().flatten() {
        if let Some(value) = value {
            picked.entry(column).or_insert_with(|| {
                (
                    Cell::Text(Some(value.to_owned())),
                    crate::placement::K8S_API.to_owned(),
                )
            });
        }
    }
    let text = |name: &str| {
        picked
            .get(name)
            .and_then(|(c, _)| text_of(c).map(str::to_owned))
    };
    let src = |name: &str| picked.get(name).map(|(_, s)| s.clone());

    let (operation, operation_src) = derive_operation(view, conv, &text, &src);
    let model_call = matches!(operation.as_deref(), Some("llm_call" | "embeddings"));
    let (provider, provider_src, framework, framework_src) =
        derive_provider(view, conv, &text, model_call);
    // Usage on agent and workflow spans sums their children: keep it as a rollup so that totals
    // over leaf model calls never count it twice.
    if matches!(operation.as_deref(), Some("agent_invoke" | "workflow")) {
        for (leaf, rollup) in [
            ("input_tokens", "rollup_input_tokens"),
            ("output_tokens", "rollup_output_tokens"),
        ] {
            if let Some(found) = picked.remove(leaf) {
                picked.entry(rollup).or_insert(found);
            }
        }
    }

    derive_cost(&mut picked, operation.as_deref(), provider.as_deref());

    let mut out = Vec::new();
    for (value, source) in [
        (operation.clone(), operation_src),
        (provider, provider_src),
        (framework, framework_src),
    ] {
        out.push(Cell::Text(value));
        out.push(Cell::Text(source));
    }
    // The agent that invoked this one: known only from the span's ancestors (see `inherit`).
    out.push(Cell::Text(None));
    out.push(Cell::Text(None));
    // Only a model turn requests tool calls; agent and loop spans that repeat its output do not.
    let (calls, calls_src) = matches!(operation.as_deref(), Some("llm_call") | None)
        .then(|| links::requested_tool_calls(view))
        .flatten()
        .unzip();
    // A streamed output may repeat a call in its partial messages: each id counts once.
    let (ids, names): (Option<Vec<String>>, Option<Vec<String>>) = calls
        .map(|c| {
            let mut seen = std::collections::HashSet::new();
            c.into_iter()
                .filter(|(id, _)| seen.insert(id.clone()))
                .unzip()
        })
        .unzip();
    out.push(Cell::TextList(ids));
    out.push(Cell::Text(calls_src.clone()));
    out.push(Cell::TextList(names));
    out.push(Cell::Text(calls_src));
    let (read, written) = links::data_accessed(view, operation.as_deref());
    for list in [read, written] {
        let (uris, src) = list.unzip();
        out.push(Cell::TextList(uris));
        out.push(Cell::Text(src));
    }
    for c in &conv.columns {
        if INTERNAL.contains(&c.name.as_str()) {
            continue;
        }
        match picked.remove(c.name.as_str()) {
            Some((cell, source)) => {
                out.push(cell);
                out.push(Cell::Text(Some(source)));
            }
            None => {
                out.push(match c.kind {
                    Kind::Text => Cell::Text(None),
                    Kind::Integer => Cell::Integer(None),
                    Kind::Float => Cell::Float(None),
                    Kind::TextList => Cell::TextList(None),
                });
                out.push(Cell::Text(None));
            }
        }
    }
    out.extend_from_slice(placed);
    out.push(Cell::TextList(redactions(view)));
    out
}

/// The span's redaction record: the entries of its [`crate::redact::REDACTIONS_KEY`] attribute.
fn redactions(view: &SpanView<'_>) -> Option<Vec<String>> {
    match view.attr(crate::redact::REDACTIONS_KEY)? {
        Value::ArrayValue(list) => Some(
            list.values
                .iter()
                .filter_map(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// Fills `cost` from the price table for model calls that report none; the source records the
/// table version, and a reported cost is never replaced.
fn derive_cost(
    picked: &mut HashMap<&str, (Cell, String)>,
    operation: Option<&str>,
    provider: Option<&str>,
) {
    if picked.contains_key("cost") || !matches!(operation, Some("llm_call" | "embeddings")) {
        return;
    }
    let int = |p: &HashMap<&str, (Cell, String)>, k: &str| match p.get(k) {
        Some((Cell::Integer(Some(v)), _)) => *v,
        _ => 0,
    };
    let usage = prices::Usage {
        input: int(picked, "input_tokens"),
        output: int(picked, "output_tokens"),
        cache_read: int(picked, "cache_read_tokens"),
        cache_write: int(picked, "cache_write_tokens"),
        reasoning: int(picked, "reasoning_tokens"),
    };
    if usage.input == 0 && usage.output == 0 {
        return;
    }
    let model = ["response_model", "request_model"]
        .iter()
        .find_map(|k| match picked.get(k) {
            Some((Cell::Text(Some(m)), _)) => Some(m.clone()),
            _ => None,
        });
    let (Some(provider), Some(model)) = (provider, model) else {
        return;
    };
    let table = prices::prices();
    let Some(price) = table.find(provider, bare_model(&model)) else {
        return;
    };
    let cost = table.cost(price, usage);
    let source = format!("price_table:{}", table.version);
    picked.insert("cost", (Cell::Float(Some(cost)), source.clone()));
    picked.insert(
        "cost_currency",
        (Cell::Text(Some(table.currency.clone())), source),
    );
}

/// The normalised operation and what decided it.
fn derive_operation(
    view: &SpanView<'_>,
    conv: &Conventions,
    text: &Lookup<'_>,
    src: &Lookup<'_>,
) -> (Option<String>, Option<String>) {
    let mut op: Option<String> = None;
    let mut why: Option<String> = None;
    if let (Some(raw), Some(source)) = (text("operation_raw"), src("operation_raw")) {
        op = Some(conv.operation(&source, &raw));
        why = Some(source);
    }
    let tool_attrs = [
        "gen_ai.tool.name",
        "tool.name",
        "gen_ai.tool.call.id",
        "ai.toolCall.name",
    ]
    .iter()
    .any(|k| view.attr(k).is_some());
    let weak = matches!(
        op.as_deref(),
        None | Some("agent_invoke" | "step" | "other" | "workflow")
    );
    if tool_attrs && weak {
        op = Some("tool_call".into());
        why = Some("rule:tool_attributes".into());
    }
    if op.as_deref() == Some("tool_call") {
        let name = view.span.name.to_ascii_lowercase();
        let tool = text("tool_name").unwrap_or_default().to_ascii_lowercase();
        if view.has_prefix("gen_ai.transfer.")
            || view.has_prefix("gen_ai.handoff.")
            || name.starts_with("handoff")
            || name.contains("transfer_to_")
            || tool.starts_with("transfer_to_")
        {
            op = Some("handoff".into());
            why = Some("rule:handoff".into());
        }
    }
    // LangChain (OpenInference) labels AGENT any run whose name mentions an agent, graph nodes
    // included, and the agent graph itself CHAIN; the agent a run belongs to is in its
    // metadata. A run named as that agent is the agent; another AGENT run is a step of it.
    if let Some(agent) = view.json_attr("metadata", "lc_agent_name") {
        if view.span.name == agent && matches!(op.as_deref(), None | Some("step" | "agent_invoke"))
        {
            op = Some("agent_invoke".into());
            why = Some("rule:lc_agent_name".into());
        } else if op.as_deref() == Some("agent_invoke") {
            op = Some("step".into());
            why = Some("rule:graph_node".into());
        }
    }
    if op.is_none() {
        if [
            "gen_ai.agent.name",
            "gen_ai.agent.id",
            "agent.name",
            "agent_trail.agent.name",
        ]
        .iter()
        .any(|k| view.attr(k).is_some())
        {
            op = Some("agent_invoke".into());
            why = Some("rule:agent_identity".into());
        } else if text("request_model").is_some() || text("response_model").is_some() {
            op = Some("llm_call".into());
            why = Some("rule:model_attributes".into());
        }
    }
    (op, why)
}

/// The provider a model name implies: its provider prefix (`openai/gpt-4o-mini`), else the
/// provider whose priced models it starts with (`gpt-`, `claude-`, `gemini-`).
fn provider_of_model(model: &str, conv: &Conventions) -> Option<(String, String)> {
    if let Some(provider) = model
        .split_once('/')
        .and_then(|(prefix, _)| conv.known_provider(&prefix.to_ascii_lowercase()))
    {
        return Some((provider, "rule:model_prefix".into()));
    }
    let table = prices::prices();
    if let Some(provider) = table.provider_of(model) {
        return Some((
            provider.to_owned(),
            format!("price_table:{}", table.version),
        ));
    }
    conv.provider_for_model(model)
        .map(|p| (p, "rule:model_family".into()))
}

/// A model name without the provider prefix some instrumentations add (`openai/gpt-4o-mini`).
fn bare_model(model: &str) -> &str {
    model.split_once('/').map_or(model, |(_, rest)| rest)
}

/// (provider, its source, framework, its source).
fn derive_provider(
    view: &SpanView<'_>,
    conv: &Conventions,
    text: &Lookup<'_>,
    model_call: bool,
) -> (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    let column = conv
        .columns
        .iter()
        .find(|c| c.name == "provider_raw")
        .expect("provider_raw in conventions");
    let mut provider = None;
    let mut framework = None;
    for source in &column.candidates {
        let Some((Resolved::Value(v), label)) = source.resolve(view) else {
            continue;
        };
        let Some(raw) = scalar_text(v, conv) else {
            continue;
        };
        let mut raw = raw.to_ascii_lowercase();
        if label == "ai.model.provider" {
            raw = raw.split('.').next().unwrap_or_default().to_owned();
        }
        if conv.frameworks.contains(&raw) {
            framework.get_or_insert((raw, label));
        } else if provider.is_none() {
            provider = Some((conv.provider(&raw), label));
        }
    }
    if provider.is_none() {
        if let Some(host) = view
            .attr("server.address")
            .and_then(|v| scalar_text(v, conv))
        {
            provider = conv
                .provider_for_host(&host)
                .map(|p| (p, "server.address".to_owned()));
        }
    }
    // A model call that names no provider: the one its model implies.
    if provider.is_none() && model_call {
        provider = ["request_model", "response_model"]
            .iter()
            .find_map(|column| provider_of_model(&text(column)?, conv));
    }
    if framework.is_none() {
        framework = conv
            .framework_for_scope(&view.scope.name)
            .map(|f| (f, "scope.name".to_owned()));
    }
    let (p, ps) = provider.unzip();
    let (f, fs) = framework.unzip();
    (p, ps, f, fs)
}
