//! The parsed form of a TraceQL query: spanset filters combined by spanset operators, then a
//! pipeline of aggregates, `select` and `by`, or a metrics function.

/// A whole query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The spansets the query selects.
    pub spansets: SpansetExpr,
    /// What is done to each trace's spansets, in order.
    pub stages: Vec<Stage>,
    /// The metrics function that ends the query, if it is a metrics query.
    pub metrics: Option<Metrics>,
}

/// Spansets: filters combined per trace.
#[derive(Debug, Clone, PartialEq)]
pub enum SpansetExpr {
    /// `{ … }`: the spans for which the condition holds (`None`: every span).
    Filter(Option<Cond>),
    /// Spans of both sides, in traces where both sides matched (`&&`).
    And(Box<SpansetExpr>, Box<SpansetExpr>),
    /// Spans of either side (`||`).
    Or(Box<SpansetExpr>, Box<SpansetExpr>),
    /// Spans of the right side related to a span of the left side (`>`, `>>`, `<`, `<<`, `~`,
    /// and their `!` and `&` forms).
    Structural(Relation, Box<SpansetExpr>, Box<SpansetExpr>),
}

/// How a structural operator relates the right side's spans to the left side's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relation {
    pub kind: RelationKind,
    /// `!>`…: right-side spans that are *not* so related.
    pub negated: bool,
    /// `&>`…: spans of both sides that are so related.
    pub union: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// `>`: the right span is a child of a left span.
    Child,
    /// `>>`: the right span is a descendant of a left span.
    Descendant,
    /// `<`: the right span is the parent of a left span.
    Parent,
    /// `<<`: the right span is an ancestor of a left span.
    Ancestor,
    /// `~`: the right span has a left span as sibling.
    Sibling,
}

/// A condition on one span.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    /// `attr op value`.
    Compare(Attr, Op, Literal),
    /// `true` / `false`.
    Const(bool),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Regex,
    NotRegex,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Regex => "=~",
            Op::NotRegex => "!~",
        }
    }
}

/// What a condition or pipeline stage reads of a span.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr {
    Intrinsic(Intrinsic),
    /// A custom attribute: `span.x`, `resource.x` or unscoped `.x`.
    Named(Scope, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Span,
    Resource,
    /// `.x`: the span's attribute, else the resource's.
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Intrinsic {
    Name,
    Status,
    StatusMessage,
    Kind,
    Duration,
    SpanId,
    ParentId,
    TraceId,
    RootName,
    RootService,
    TraceDuration,
}

impl Intrinsic {
    /// The name Tempo gives the intrinsic in answers and tag lists.
    pub fn name(self) -> &'static str {
        match self {
            Intrinsic::Name => "name",
            Intrinsic::Status => "status",
            Intrinsic::StatusMessage => "statusMessage",
            Intrinsic::Kind => "kind",
            Intrinsic::Duration => "duration",
            Intrinsic::SpanId => "span:id",
            Intrinsic::ParentId => "span:parentID",
            Intrinsic::TraceId => "trace:id",
            Intrinsic::RootName => "rootName",
            Intrinsic::RootService => "rootServiceName",
            Intrinsic::TraceDuration => "traceDuration",
        }
    }

    /// Whether the value is the same for every span of a trace.
    pub fn is_trace_level(self) -> bool {
        matches!(
            self,
            Intrinsic::RootName | Intrinsic::RootService | Intrinsic::TraceDuration
        )
    }
}

impl Attr {
    /// The attribute as TraceQL writes it.
    pub fn to_traceql(&self) -> String {
        match self {
            Attr::Intrinsic(i) => i.name().to_owned(),
            Attr::Named(scope, name) => {
                let name = if name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-/:".contains(&b))
                {
                    name.clone()
                } else {
                    format!("{name:?}")
                };
                match scope {
                    Scope::Span => format!("span.{name}"),
                    Scope::Resource => format!("resource.{name}"),
                    Scope::Any => format!(".{name}"),
                }
            }
        }
    }

    /// The key Tempo uses for the attribute in a span's attribute list.
    pub fn key(&self) -> String {
        match self {
            Attr::Intrinsic(i) => i.name().to_owned(),
            Attr::Named(_, name) => name.clone(),
        }
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i64),
    Float(f64),
    /// Nanoseconds.
    Duration(i64),
    Bool(bool),
    Status(Status),
    Kind(Kind),
    Nil,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Error,
    Unset,
}

impl Status {
    /// As stored in `status_code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Unset => "unset",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl Kind {
    /// As stored in `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Unspecified => "unspecified",
            Kind::Internal => "internal",
            Kind::Server => "server",
            Kind::Client => "client",
            Kind::Producer => "producer",
            Kind::Consumer => "consumer",
        }
    }
}

/// A pipeline stage after the spansets.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// `| count() > 2`, `| avg(duration) > 1s`: spansets whose aggregate compares so.
    Filter(Aggregate, Op, Literal),
    /// `| select(a, …)`: these attributes are returned with each span.
    Select(Vec<Attr>),
    /// `| by(a, …)`: spansets split by the values of these attributes.
    By(Vec<Attr>),
}

/// An aggregate over a spanset.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    Count,
    Avg(Attr),
    Min(Attr),
    Max(Attr),
    Sum(Attr),
}

impl Aggregate {
    /// As TraceQL writes it (the spanset attribute's key in answers).
    pub fn to_traceql(&self) -> String {
        match self {
            Aggregate::Count => "count()".into(),
            Aggregate::Avg(a) => format!("avg({})", a.to_traceql()),
            Aggregate::Min(a) => format!("min({})", a.to_traceql()),
            Aggregate::Max(a) => format!("max({})", a.to_traceql()),
            Aggregate::Sum(a) => format!("sum({})", a.to_traceql()),
        }
    }
}

/// A metrics function ending the query, with its `by` attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    pub function: MetricsFn,
    pub by: Vec<Attr>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MetricsFn {
    /// Matching spans per second.
    Rate,
    /// Matching spans per step.
    CountOverTime,
    /// Quantiles of an attribute's values per step (e.g. `duration`).
    Quantile(Attr, Vec<f64>),
    AvgOverTime(Attr),
    MinOverTime(Attr),
    MaxOverTime(Attr),
    SumOverTime(Attr),
    /// Matching spans per step per power-of-two bucket of an attribute's values (`__bucket`:
    /// the bucket's upper bound; seconds for durations).
    HistogramOverTime(Attr),
}
