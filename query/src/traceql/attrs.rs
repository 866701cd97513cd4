//! TraceQL attributes mapped onto `spans`: intrinsics onto core columns, Cairn's promoted agent
//! columns under OTel GenAI names (or `agent_trail.*` where no convention exists), everything
//! else onto the attribute maps.
//!
//! A promoted name means its column whatever its scope (`span.`, `resource.` or unscoped): the
//! column holds one value per span, whichever attribute (span or resource, whichever framework's
//! name) filled it. Only `service.name` is a resource attribute alone.

use super::ast::{Attr, Intrinsic, Scope};

/// How a column's values are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Text,
    Int,
    Float,
    /// Nanoseconds.
    Duration,
    /// `ok`, `error`, `unset`.
    Status,
    /// `server`, `client`, …
    Kind,
    /// A list of texts: `=` matches when an element equals the value.
    TextList,
}

impl ValueType {
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            ValueType::Int | ValueType::Float | ValueType::Duration
        )
    }

    /// The type Tempo's tag values name.
    pub fn tempo_type(self) -> &'static str {
        match self {
            ValueType::Text | ValueType::TextList => "string",
            ValueType::Int => "int",
            ValueType::Float => "float",
            ValueType::Duration => "duration",
            ValueType::Status | ValueType::Kind => "keyword",
        }
    }
}

/// A promoted column and the TraceQL name it is searched by.
#[derive(Debug, Clone, Copy)]
pub struct Promoted {
    pub name: &'static str,
    pub column: &'static str,
    pub value_type: ValueType,
    /// The scope its attribute is usually sent in (tag lists show it there).
    pub scope: Scope,
}

const fn p(
    name: &'static str,
    column: &'static str,
    value_type: ValueType,
    scope: Scope,
) -> Promoted {
    Promoted {
        name,
        column,
        value_type,
        scope,
    }
}

use Scope::{Resource as R, Span as S};
use ValueType::{Float as F, Int as I, Text as T, TextList as L};

/// Every promoted name, in the order tag lists show them.
pub const PROMOTED: &[Promoted] = &[
    p("service.name", "service_name", T, R),
    p("gen_ai.operation.name", "operation_raw", T, S),
    p("gen_ai.provider.name", "provider", T, S),
    p("gen_ai.agent.id", "agent_id", T, S),
    p("gen_ai.agent.name", "agent_name", T, S),
    p("gen_ai.conversation.id", "conversation_id", T, S),
    p("gen_ai.tool.name", "tool_name", T, S),
    p("gen_ai.tool.call.id", "tool_call_id", T, S),
    p("gen_ai.tool.type", "tool_type", T, S),
    p("gen_ai.request.model", "request_model", T, S),
    p("gen_ai.response.model", "response_model", T, S),
    p("gen_ai.usage.input_tokens", "input_tokens", I, S),
    p("gen_ai.usage.output_tokens", "output_tokens", I, S),
    p(
        "gen_ai.usage.cache_read.input_tokens",
        "cache_read_tokens",
        I,
        S,
    ),
    p(
        "gen_ai.usage.cache_creation.input_tokens",
        "cache_write_tokens",
        I,
        S,
    ),
    p(
        "gen_ai.usage.reasoning.output_tokens",
        "reasoning_tokens",
        I,
        S,
    ),
    p("user.id", "user_id", T, S),
    p("agent_trail.operation", "operation", T, S),
    p("agent_trail.framework", "framework", T, S),
    p("agent_trail.parent_agent.name", "parent_agent_name", T, S),
    p(
        "agent_trail.rollup.input_tokens",
        "rollup_input_tokens",
        I,
        S,
    ),
    p(
        "agent_trail.rollup.output_tokens",
        "rollup_output_tokens",
        I,
        S,
    ),
    p("agent_trail.cost", "cost", F, S),
    p("agent_trail.cost.currency", "cost_currency", T, S),
    p("agent_trail.approval.state", "approval_state", T, S),
    p("agent_trail.approval.approver.id", "approver", T, S),
    p(
        "agent_trail.approval.request.id",
        "approval_request_id",
        T,
        S,
    ),
    p("agent_trail.guardrail.verdict", "guardrail_verdict", T, S),
    p("agent_trail.policy.snapshot.id", "policy_ref", T, R),
    p("agent_trail.policy.snapshot.hash", "policy_hash", T, R),
    p("agent_trail.sandbox.id", "sandbox_id", T, R),
    p("agent_trail.sandbox.template", "sandbox_template", T, R),
    p("agent_trail.sandbox.provider", "sandbox_provider", T, R),
    p("agent_trail.data.read", "data_read", L, S),
    p("agent_trail.data.written", "data_written", L, S),
    p(
        "agent_trail.requested_tool.names",
        "requested_tool_names",
        L,
        S,
    ),
    p("k8s.namespace.name", "k8s_namespace", T, R),
    p("k8s.pod.name", "k8s_pod_name", T, R),
    p("k8s.pod.uid", "k8s_pod_uid", T, R),
    p("k8s.node.name", "k8s_node_name", T, R),
    p("k8s.container.name", "k8s_container_name", T, R),
    p("k8s.pod.service_account.name", "k8s_service_account", T, R),
    p("agent_trail.k8s.runtime_class", "k8s_runtime_class", T, R),
    p("agent_trail.k8s.workload.kind", "k8s_workload_kind", T, R),
    p("agent_trail.k8s.workload.name", "k8s_workload_name", T, R),
    p("agent_trail.k8s.labels", "k8s_labels", L, R),
    p("cairn.redactions", "redactions", L, S),
    p("container.id", "container_id", T, R),
    p("host.name", "host_name", T, R),
    p("service.instance.id", "service_instance_id", T, R),
    p("process.pid", "process_pid", I, R),
];

/// Other names accepted for a promoted column.
const ALIASES: &[(&str, &str)] = &[
    (
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
    ),
    ("gen_ai.system", "gen_ai.provider.name"),
    ("agent_trail.agent.id", "gen_ai.agent.id"),
    ("agent_trail.agent.name", "gen_ai.agent.name"),
    ("agent_trail.conversation.id", "gen_ai.conversation.id"),
    ("agent_trail.user.id", "user.id"),
];

/// Intrinsics listed by the tags endpoints.
pub const INTRINSICS: &[Intrinsic] = &[
    Intrinsic::Duration,
    Intrinsic::Kind,
    Intrinsic::Name,
    Intrinsic::RootName,
    Intrinsic::RootService,
    Intrinsic::Status,
    Intrinsic::StatusMessage,
    Intrinsic::TraceDuration,
];

/// Where an attribute's value is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A typed column of the span source (also the trace-level columns of [`TRACE_COLUMNS`]).
    Column(&'static str, ValueType),
    /// A key of the attribute maps: the span's (`attributes`), the resource's, or the span's
    /// else the resource's.
    Map(Scope, String),
}

/// Columns the span source has for trace-level intrinsics, when a query uses them.
pub const TRACE_COLUMNS: [(&str, Intrinsic); 3] = [
    ("trace_root_name", Intrinsic::RootName),
    ("trace_root_service", Intrinsic::RootService),
    ("trace_duration_ns", Intrinsic::TraceDuration),
];

/// The promoted column searched by `name`, if any.
pub fn promoted(name: &str) -> Option<&'static Promoted> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, to)| to);
    PROMOTED.iter().find(|p| p.name == name)
}

/// Where `attr` is read from.
pub fn target(attr: &Attr) -> Target {
    match attr {
        Attr::Intrinsic(i) => {
            let (column, value_type) = match i {
                Intrinsic::Name => ("name", ValueType::Text),
                Intrinsic::Status => ("status_code", ValueType::Status),
                Intrinsic::StatusMessage => ("status_message", ValueType::Text),
                Intrinsic::Kind => ("kind", ValueType::Kind),
                Intrinsic::Duration => ("duration_ns", ValueType::Duration),
                Intrinsic::SpanId => ("span_id", ValueType::Text),
                Intrinsic::ParentId => ("parent_span_id", ValueType::Text),
                Intrinsic::TraceId => ("trace_id", ValueType::Text),
                Intrinsic::RootName => ("trace_root_name", ValueType::Text),
                Intrinsic::RootService => ("trace_root_service", ValueType::Text),
                Intrinsic::TraceDuration => ("trace_duration_ns", ValueType::Duration),
            };
            Target::Column(column, value_type)
        }
        Attr::Named(scope, name) => match promoted(name) {
            Some(p) if p.name != "service.name" || *scope != Scope::Span => {
                Target::Column(p.column, p.value_type)
            }
            _ => Target::Map(*scope, name.clone()),
        },
    }
}

/// Whether a query reading `attrs` needs the trace-level columns.
pub fn needs_trace_columns<'a>(mut attrs: impl Iterator<Item = &'a Attr>) -> bool {
    attrs.any(|a| matches!(a, Attr::Intrinsic(i) if i.is_trace_level()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceql_promoted_names_map_to_their_columns_in_every_scope() {
        for scope in [Scope::Span, Scope::Resource, Scope::Any] {
            let tool = Attr::Named(scope, "gen_ai.tool.name".into());
            assert_eq!(target(&tool), Target::Column("tool_name", ValueType::Text));
        }
        let cost = Attr::Named(Scope::Span, "agent_trail.cost".into());
        assert_eq!(target(&cost), Target::Column("cost", ValueType::Float));
        let alias = Attr::Named(Scope::Any, "gen_ai.usage.cache_write.input_tokens".into());
        assert_eq!(
            target(&alias),
            Target::Column("cache_write_tokens", ValueType::Int)
        );
        // service.name is a resource attribute: span.service.name is a span attribute.
        let service = Attr::Named(Scope::Resource, "service.name".into());
        assert_eq!(
            target(&service),
            Target::Column("service_name", ValueType::Text)
        );
        let span_service = Attr::Named(Scope::Span, "service.name".into());
        assert_eq!(
            target(&span_service),
            Target::Map(Scope::Span, "service.name".into())
        );
        let other = Attr::Named(Scope::Resource, "deployment.environment".into());
        assert_eq!(
            target(&other),
            Target::Map(Scope::Resource, "deployment.environment".into())
        );
    }

    #[test]
    fn traceql_promoted_columns_exist_in_the_schema() {
        let schema = cairn_schema::columns::spans_schema();
        for p in PROMOTED {
            assert!(schema.field_with_name(p.column).is_ok(), "{}", p.column);
        }
    }
}
