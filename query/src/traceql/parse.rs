//! The TraceQL grammar ([`winnow`]): text to [`Query`]. A query that is not TraceQL is refused
//! with the line and column where it stops being so and what was expected there; TraceQL that
//! Cairn does not run (arithmetic, events, links, `topk`, …) is refused naming the construct.

use winnow::ascii::{digit1, multispace0};
use winnow::combinator::{alt, cut_err, delimited, opt, peek, preceded, separated};
use winnow::error::{ContextError, ErrMode, FromExternalError, StrContext, StrContextValue};
use winnow::prelude::*;
use winnow::token::{any, one_of, take_while};

use super::ast::*;
use crate::{Error, Result};

/// Longest query text accepted.
pub const MAX_QUERY_LEN: usize = 16 << 10;
/// Deepest nesting of parentheses and operators accepted.
const MAX_DEPTH: usize = 64;

/// A construct that parses but that Cairn does not run.
#[derive(Debug)]
struct Unsupported(String);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsupported {}

type Input<'a> = &'a str;

/// Parses `text` as a TraceQL query.
pub fn parse(text: &str) -> Result<Query> {
    if text.len() > MAX_QUERY_LEN {
        return Err(Error::BadRequest(format!(
            "invalid TraceQL query: longer than {MAX_QUERY_LEN} bytes"
        )));
    }
    let mut input: Input = text;
    DEPTH.with(|d| d.set(0));
    match query(&mut input) {
        Ok(q) => Ok(q),
        Err(e) => {
            let offset = text.len() - input.len();
            Err(error_at(text, offset, e))
        }
    }
}

thread_local! {
    /// Nesting of the parse running on this thread.
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The error for a parse that stopped at `offset`.
fn error_at(text: &str, offset: usize, e: ErrMode<ContextError>) -> Error {
    let e = match e {
        ErrMode::Backtrack(e) | ErrMode::Cut(e) => e,
        ErrMode::Incomplete(_) => ContextError::new(),
    };
    if let Some(u) = e.cause().and_then(|c| c.downcast_ref::<Unsupported>()) {
        return Error::BadRequest(format!(
            "unsupported TraceQL: {u} (Cairn runs spanset filters, spanset operators, \
             structural operators, count/avg/min/max/sum, select, by and metrics functions)"
        ));
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    let expected: Vec<String> = e
        .context()
        .filter_map(|c| match c {
            StrContext::Expected(v) => Some(v.to_string()),
            _ => None,
        })
        .collect();
    let found = match text[offset..].chars().next() {
        None => "end of query".to_owned(),
        Some(c) => format!("{c:?}"),
    };
    let expected = if expected.is_empty() {
        "a valid query".to_owned()
    } else {
        expected.join(" or ")
    };
    Error::BadRequest(format!(
        "invalid TraceQL query: parse error at line {line}, col {col}: expected {expected}, found {found}"
    ))
}

fn expected(what: &'static str) -> StrContext {
    StrContext::Expected(StrContextValue::Description(what))
}

/// An unrecoverable error: `what` was expected here.
fn want<T>(what: &'static str) -> ModalResult<T> {
    let mut e = ContextError::new();
    e.push(expected(what));
    Err(ErrMode::Cut(e))
}

/// Fails, unrecoverably, naming `what` as unsupported.
fn unsupported<T>(i: &mut Input, what: impl Into<String>) -> ModalResult<T> {
    Err(ErrMode::Cut(ContextError::from_external_error(
        i,
        Unsupported(what.into()),
    )))
}

fn ws(i: &mut Input) -> ModalResult<()> {
    multispace0.void().parse_next(i)
}

/// `tok` after optional whitespace.
fn sym<'a>(tok: &'static str) -> impl Parser<Input<'a>, &'a str, ErrMode<ContextError>> {
    preceded(ws, tok)
}

/// Tracks nesting so that deeply nested input is refused instead of overflowing the stack.
fn nested<T>(i: &mut Input, inner: impl FnOnce(&mut Input) -> ModalResult<T>) -> ModalResult<T> {
    let too_deep = DEPTH.with(|d| {
        d.set(d.get() + 1);
        d.get() > MAX_DEPTH
    });
    let out = if too_deep {
        unsupported(i, format!("nesting deeper than {MAX_DEPTH} levels"))
    } else {
        inner(i)
    };
    DEPTH.with(|d| d.set(d.get() - 1));
    out
}

fn query(i: &mut Input) -> ModalResult<Query> {
    let spansets = spanset_or(i)?;
    let mut stages = Vec::new();
    let mut metrics = None;
    loop {
        ws(i)?;
        if i.starts_with("||") || !i.starts_with('|') {
            break;
        }
        if metrics.is_some() {
            return unsupported(i, "a pipeline stage after a metrics function");
        }
        '|'.parse_next(i)?;
        ws(i)?;
        match stage(i)? {
            Step::Stage(s) => stages.push(s),
            Step::Metrics(m) => metrics = Some(m),
        }
    }
    ws(i)?;
    if i.starts_with("with") {
        hints(i)?;
        ws(i)?;
    }
    if !i.is_empty() {
        let what = if metrics.is_some() || !stages.is_empty() {
            "`|`, `with` or the end of the query"
        } else {
            "`&&`, `||`, a structural operator, `|` or the end of the query"
        };
        return want(what);
    }
    Ok(Query {
        spansets,
        stages,
        metrics,
    })
}

/// `with (name = value, …)`: query hints, accepted and ignored.
fn hints(i: &mut Input) -> ModalResult<()> {
    "with".parse_next(i)?;
    cut_err(sym("(")).context(expected("`(`")).parse_next(i)?;
    let hint = (
        ws,
        ident,
        sym("="),
        ws,
        cut_err(literal).context(expected("a value")),
    );
    cut_err(separated(1.., hint, sym(",")).map(|()| ()))
        .context(expected("a hint such as most_recent=true"))
        .parse_next(i)?;
    cut_err(sym(")")).context(expected("`)`")).parse_next(i)?;
    Ok(())
}

fn spanset_or(i: &mut Input) -> ModalResult<SpansetExpr> {
    nested(i, |i| {
        let mut left = spanset_and(i)?;
        while opt(sym("||")).parse_next(i)?.is_some() {
            let right = cut_err(spanset_and).parse_next(i)?;
            left = SpansetExpr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    })
}

fn spanset_and(i: &mut Input) -> ModalResult<SpansetExpr> {
    let mut left = spanset_structural(i)?;
    while opt(sym("&&")).parse_next(i)?.is_some() {
        let right = cut_err(spanset_structural).parse_next(i)?;
        left = SpansetExpr::And(Box::new(left), Box::new(right));
    }
    Ok(left)
}

fn spanset_structural(i: &mut Input) -> ModalResult<SpansetExpr> {
    let mut left = spanset_primary(i)?;
    while let Some(relation) = opt(preceded(ws, relation)).parse_next(i)? {
        let right = cut_err(spanset_primary).parse_next(i)?;
        left = SpansetExpr::Structural(relation, Box::new(left), Box::new(right));
    }
    Ok(left)
}

fn relation(i: &mut Input) -> ModalResult<Relation> {
    // Not `&&` (the spanset operator) nor `||`.
    let negated = opt(('!', peek(one_of(['>', '<', '~']))))
        .parse_next(i)?
        .is_some();
    let union = !negated
        && opt(('&', peek(one_of(['>', '<', '~']))))
            .parse_next(i)?
            .is_some();
    let kind = alt((
        ">>".value(RelationKind::Descendant),
        ">".value(RelationKind::Child),
        "<<".value(RelationKind::Ancestor),
        "<".value(RelationKind::Parent),
        "~".value(RelationKind::Sibling),
    ))
    .parse_next(i)?;
    Ok(Relation {
        kind,
        negated,
        union,
    })
}

fn spanset_primary(i: &mut Input) -> ModalResult<SpansetExpr> {
    ws(i)?;
    if i.starts_with('(') {
        return nested(i, |i| {
            '('.parse_next(i)?;
            let inner = cut_err(spanset_or).parse_next(i)?;
            ws(i)?;
            if i.starts_with('|') && !i.starts_with("||") {
                return unsupported(i, "a pipeline inside parentheses");
            }
            cut_err(')').context(expected("`)`")).parse_next(i)?;
            Ok(inner)
        });
    }
    if peek_aggregate_stage(i) {
        return unsupported(i, "a pipeline without a spanset filter (start with `{ }`)");
    }
    cut_err('{')
        .context(expected("`{`"))
        .context(expected("`(`"))
        .parse_next(i)?;
    ws(i)?;
    if opt('}').parse_next(i)?.is_some() {
        return Ok(SpansetExpr::Filter(None));
    }
    let cond = cut_err(cond_or).parse_next(i)?;
    ws(i)?;
    cut_err('}')
        .context(expected("`}`"))
        .context(expected("`&&`"))
        .context(expected("`||`"))
        .parse_next(i)?;
    Ok(SpansetExpr::Filter(Some(cond)))
}

fn peek_aggregate_stage(i: &Input) -> bool {
    ["count(", "avg(", "min(", "max(", "sum(", "select(", "by("]
        .iter()
        .any(|p| i.starts_with(p))
}

fn cond_or(i: &mut Input) -> ModalResult<Cond> {
    nested(i, |i| {
        let mut left = cond_and(i)?;
        while opt(sym("||")).parse_next(i)?.is_some() {
            let right = cut_err(cond_and).parse_next(i)?;
            left = Cond::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    })
}

fn cond_and(i: &mut Input) -> ModalResult<Cond> {
    let mut left = cond_unary(i)?;
    while opt(sym("&&")).parse_next(i)?.is_some() {
        let right = cut_err(cond_unary).parse_next(i)?;
        left = Cond::And(Box::new(left), Box::new(right));
    }
    Ok(left)
}

fn cond_unary(i: &mut Input) -> ModalResult<Cond> {
    ws(i)?;
    if i.starts_with('!') && !i.starts_with("!=") && !i.starts_with("!~") {
        '!'.parse_next(i)?;
        let inner = nested(i, |i| cut_err(cond_unary).parse_next(i))?;
        return Ok(Cond::Not(Box::new(inner)));
    }
    if i.starts_with('(') {
        return nested(i, |i| {
            '('.parse_next(i)?;
            let inner = cut_err(cond_or).parse_next(i)?;
            ws(i)?;
            cut_err(')').context(expected("`)`")).parse_next(i)?;
            Ok(inner)
        });
    }
    comparison(i)
}

fn comparison(i: &mut Input) -> ModalResult<Cond> {
    if let Some(b) = opt(keyword_bool).parse_next(i)? {
        return Ok(Cond::Const(b));
    }
    if digit_or_sign(i) || i.starts_with('"') || i.starts_with('`') {
        return unsupported(i, "a value on the left of a comparison");
    }
    let attr = cut_err(field)
        .context(expected(
            "an attribute or intrinsic (span.x, resource.x, .x, name, status, duration, …)",
        ))
        .parse_next(i)?;
    ws(i)?;
    let Some(op) = opt(op).parse_next(i)? else {
        if arithmetic_follows(i) {
            return unsupported(i, "arithmetic");
        }
        // A custom attribute alone is a comparison to `true`.
        return match attr {
            Attr::Named(..) => Ok(Cond::Compare(attr, Op::Eq, Literal::Bool(true))),
            Attr::Intrinsic(_) => want("a comparison operator (= != > >= < <= =~ !~)"),
        };
    };
    ws(i)?;
    if field_follows(i) {
        return unsupported(i, "a comparison between two attributes");
    }
    let value = cut_err(literal)
        .context(expected(
            "a value (string, number, duration, true, false, nil, a status or a kind)",
        ))
        .parse_next(i)?;
    ws(i)?;
    if arithmetic_follows(i) {
        return unsupported(i, "arithmetic");
    }
    check_types(i, &attr, op, &value)?;
    Ok(Cond::Compare(attr, op, value))
}

fn digit_or_sign(i: &Input) -> bool {
    i.starts_with(|c: char| c.is_ascii_digit())
        || (i.starts_with('-') && i[1..].starts_with(|c: char| c.is_ascii_digit()))
}

fn arithmetic_follows(i: &Input) -> bool {
    i.starts_with(['+', '*', '/', '%', '^']) || (i.starts_with('-') && !i.starts_with("->"))
}

/// Whether an attribute or intrinsic (not a value) starts here.
fn field_follows(i: &Input) -> bool {
    let mut probe = *i;
    field(&mut probe).is_ok()
}

/// Refuses comparisons that can never hold or that Tempo refuses (regex on a number, …).
fn check_types(i: &mut Input, attr: &Attr, op: Op, value: &Literal) -> ModalResult<()> {
    let regex = matches!(op, Op::Regex | Op::NotRegex);
    if regex && !matches!(value, Literal::Str(_)) {
        return want("a string after =~ or !~");
    }
    let ok = match (attr, value) {
        (Attr::Intrinsic(Intrinsic::Status), v) => {
            matches!(v, Literal::Status(_) | Literal::Nil) && matches!(op, Op::Eq | Op::Ne)
        }
        (Attr::Intrinsic(Intrinsic::Kind), v) => {
            matches!(v, Literal::Kind(_) | Literal::Nil) && matches!(op, Op::Eq | Op::Ne)
        }
        (Attr::Intrinsic(Intrinsic::Duration | Intrinsic::TraceDuration), v) => {
            matches!(
                v,
                Literal::Duration(_) | Literal::Int(_) | Literal::Float(_)
            ) && !regex
        }
        (Attr::Intrinsic(_), v) => matches!(v, Literal::Str(_) | Literal::Nil),
        (Attr::Named(..), Literal::Status(_) | Literal::Kind(_)) => false,
        (Attr::Named(..), _) => true,
    };
    if ok {
        return Ok(());
    }
    unsupported(
        i,
        format!(
            "comparing {} {} {} (the types do not match)",
            attr.to_traceql(),
            op.as_str(),
            literal_text(value)
        ),
    )
}

fn literal_text(v: &Literal) -> String {
    match v {
        Literal::Str(s) => format!("{s:?}"),
        Literal::Int(n) => n.to_string(),
        Literal::Float(f) => f.to_string(),
        Literal::Duration(d) => format!("{d}ns"),
        Literal::Bool(b) => b.to_string(),
        Literal::Status(s) => s.as_str().to_owned(),
        Literal::Kind(k) => k.as_str().to_owned(),
        Literal::Nil => "nil".to_owned(),
    }
}

fn op(i: &mut Input) -> ModalResult<Op> {
    alt((
        "=~".value(Op::Regex),
        "!~".value(Op::NotRegex),
        "!=".value(Op::Ne),
        ">=".value(Op::Ge),
        "<=".value(Op::Le),
        "=".value(Op::Eq),
        ">".value(Op::Gt),
        "<".value(Op::Lt),
    ))
    .parse_next(i)
}

fn ident<'a>(i: &mut Input<'a>) -> ModalResult<&'a str> {
    (
        one_of(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(0.., |c: char| c.is_ascii_alphanumeric() || c == '_'),
    )
        .take()
        .parse_next(i)
}

/// An attribute or intrinsic.
pub(super) fn field(i: &mut Input) -> ModalResult<Attr> {
    if i.starts_with('.') {
        '.'.parse_next(i)?;
        let name = cut_err(attribute_name)
            .context(expected("an attribute name"))
            .parse_next(i)?;
        return Ok(Attr::Named(Scope::Any, name));
    }
    let start = *i;
    let word = ident(i)?;
    if i.starts_with(':') {
        ':'.parse_next(i)?;
        let name = cut_err(ident)
            .context(expected("an intrinsic name"))
            .parse_next(i)?;
        let intrinsic = match (word, name) {
            ("span", "name") => Intrinsic::Name,
            ("span", "status") => Intrinsic::Status,
            ("span", "statusMessage") => Intrinsic::StatusMessage,
            ("span", "kind") => Intrinsic::Kind,
            ("span", "duration") => Intrinsic::Duration,
            ("span", "id") => Intrinsic::SpanId,
            ("span", "parentID") => Intrinsic::ParentId,
            ("trace", "rootName") => Intrinsic::RootName,
            ("trace", "rootService") => Intrinsic::RootService,
            ("trace", "duration") => Intrinsic::TraceDuration,
            ("trace", "id") => Intrinsic::TraceId,
            _ => {
                *i = start;
                return unsupported(i, format!("the intrinsic {word}:{name}"));
            }
        };
        return Ok(Attr::Intrinsic(intrinsic));
    }
    if i.starts_with('.') {
        let scope = match word {
            "span" => Scope::Span,
            "resource" => Scope::Resource,
            "event" | "link" | "instrumentation" | "parent" => {
                *i = start;
                return unsupported(i, format!("{word}-scoped attributes ({word}.…)"));
            }
            _ => {
                *i = start;
                return Err(ErrMode::Backtrack(ContextError::new()));
            }
        };
        '.'.parse_next(i)?;
        let name = cut_err(attribute_name)
            .context(expected("an attribute name"))
            .parse_next(i)?;
        return Ok(Attr::Named(scope, name));
    }
    let intrinsic = match word {
        "name" => Intrinsic::Name,
        "status" => Intrinsic::Status,
        "statusMessage" => Intrinsic::StatusMessage,
        "kind" => Intrinsic::Kind,
        "duration" => Intrinsic::Duration,
        "rootName" => Intrinsic::RootName,
        "rootServiceName" => Intrinsic::RootService,
        "traceDuration" => Intrinsic::TraceDuration,
        "childCount" | "nestedSetLeft" | "nestedSetRight" | "nestedSetParent" | "parent" => {
            *i = start;
            return unsupported(i, format!("the intrinsic {word}"));
        }
        _ => {
            *i = start;
            return Err(ErrMode::Backtrack(ContextError::new()));
        }
    };
    Ok(Attr::Intrinsic(intrinsic))
}

/// `a.b.c`, with segments optionally quoted: `"a b"`, `http."x y"`.
fn attribute_name(i: &mut Input) -> ModalResult<String> {
    let mut name = String::new();
    loop {
        if i.starts_with('"') {
            name.push_str(&quoted('"').parse_next(i)?);
        } else {
            let part = take_while(1.., |c: char| {
                !c.is_whitespace() && !"{}()=~!<>&|^,\".+*/%".contains(c)
            })
            .parse_next(i)?;
            name.push_str(part);
        }
        if i.starts_with('.') && !i[1..].starts_with(|c: char| c.is_whitespace()) {
            '.'.parse_next(i)?;
            name.push('.');
        } else {
            return Ok(name);
        }
    }
}

fn keyword_bool(i: &mut Input) -> ModalResult<bool> {
    let b = alt(("true".value(true), "false".value(false))).parse_next(i)?;
    if i.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == ':') {
        return Err(ErrMode::Backtrack(ContextError::new()));
    }
    Ok(b)
}

/// A literal value.
pub(super) fn literal(i: &mut Input) -> ModalResult<Literal> {
    if i.starts_with('"') {
        return quoted('"').map(Literal::Str).parse_next(i);
    }
    if i.starts_with('`') {
        return quoted('`').map(Literal::Str).parse_next(i);
    }
    if digit_or_sign(i) {
        return number(i);
    }
    let start = *i;
    let word = ident(i)?;
    Ok(match word {
        "true" => Literal::Bool(true),
        "false" => Literal::Bool(false),
        "nil" => Literal::Nil,
        "ok" => Literal::Status(Status::Ok),
        "error" => Literal::Status(Status::Error),
        "unset" => Literal::Status(Status::Unset),
        "unspecified" => Literal::Kind(Kind::Unspecified),
        "internal" => Literal::Kind(Kind::Internal),
        "server" => Literal::Kind(Kind::Server),
        "client" => Literal::Kind(Kind::Client),
        "producer" => Literal::Kind(Kind::Producer),
        "consumer" => Literal::Kind(Kind::Consumer),
        "minInt" => Literal::Int(i64::MIN),
        "maxInt" => Literal::Int(i64::MAX),
        _ => {
            *i = start;
            return Err(ErrMode::Backtrack(ContextError::new()));
        }
    })
}

/// A string between `delim`s; in double quotes `\"`, `\\`, `\n`, `\t`, `\r` are escapes.
fn quoted(delim: char) -> impl FnMut(&mut Input) -> ModalResult<String> {
    move |i: &mut Input| {
        let mut open = delim;
        open.parse_next(i)?;
        let mut out = String::new();
        loop {
            let c = cut_err(any)
                .context(StrContext::Expected(StrContextValue::CharLiteral(delim)))
                .parse_next(i)?;
            if c == delim {
                return Ok(out);
            }
            if c == '\\' && delim == '"' {
                let e = cut_err(any)
                    .context(expected("an escaped character"))
                    .parse_next(i)?;
                out.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => other,
                });
            } else {
                out.push(c);
            }
        }
    }
}

/// An integer, a float or a duration (`1.5s`, `100ms`, `1h30m`).
fn number(i: &mut Input) -> ModalResult<Literal> {
    let negative = opt('-').parse_next(i)?.is_some();
    let mut total_ns: f64 = 0.0;
    let mut is_duration = false;
    let mut first: Option<Literal> = None;
    loop {
        let text = (digit1, opt(('.', digit1))).take().parse_next(i)?;
        let unit = opt(alt((
            "ns".value(1.0),
            "us".value(1e3),
            "µs".value(1e3),
            "ms".value(1e6),
            "s".value(1e9),
            "m".value(60e9),
            "h".value(3600e9),
        )))
        .parse_next(i)?;
        match unit {
            Some(scale) => {
                is_duration = true;
                let v: f64 = text.parse().unwrap_or(0.0);
                total_ns += v * scale;
                if !i.starts_with(|c: char| c.is_ascii_digit()) {
                    break;
                }
            }
            None if is_duration => {
                return want("a duration unit (ns, us, ms, s, m, h)");
            }
            None => {
                first = Some(if text.contains('.') {
                    Literal::Float(text.parse().unwrap_or(0.0))
                } else {
                    match text.parse::<i64>() {
                        Ok(n) => Literal::Int(n),
                        Err(_) => Literal::Float(text.parse().unwrap_or(0.0)),
                    }
                });
                break;
            }
        }
    }
    if i.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        return want("a number or a duration (ns, us, ms, s, m, h)");
    }
    let value = match first {
        Some(v) => v,
        None => Literal::Duration(total_ns.round() as i64),
    };
    Ok(match (negative, value) {
        (false, v) => v,
        (true, Literal::Int(n)) => Literal::Int(-n),
        (true, Literal::Float(f)) => Literal::Float(-f),
        (true, Literal::Duration(d)) => Literal::Duration(-d),
        (true, v) => v,
    })
}

enum Step {
    Stage(Stage),
    Metrics(Metrics),
}

fn stage(i: &mut Input) -> ModalResult<Step> {
    let start = *i;
    let word = cut_err(ident)
        .context(expected(
            "a pipeline stage (count(), avg(…), select(…), by(…), rate(), …)",
        ))
        .parse_next(i)?;
    let call = |i: &mut Input| -> ModalResult<()> {
        cut_err(sym("(")).context(expected("`(`")).parse_next(i)?;
        Ok(())
    };
    let close = |i: &mut Input| -> ModalResult<()> {
        cut_err(sym(")")).context(expected("`)`")).parse_next(i)?;
        Ok(())
    };
    match word {
        "count" | "avg" | "min" | "max" | "sum" => {
            call(i)?;
            let aggregate = if word == "count" {
                Aggregate::Count
            } else {
                ws(i)?;
                let attr = cut_err(field)
                    .context(expected("an attribute or intrinsic"))
                    .parse_next(i)?;
                match word {
                    "avg" => Aggregate::Avg(attr),
                    "min" => Aggregate::Min(attr),
                    "max" => Aggregate::Max(attr),
                    _ => Aggregate::Sum(attr),
                }
            };
            close(i)?;
            ws(i)?;
            let op = cut_err(op)
                .context(expected("a comparison operator"))
                .parse_next(i)?;
            if matches!(op, Op::Regex | Op::NotRegex) {
                return unsupported(i, "a regular expression on an aggregate");
            }
            ws(i)?;
            let value = cut_err(literal)
                .context(expected("a number or a duration"))
                .parse_next(i)?;
            if !matches!(
                value,
                Literal::Int(_) | Literal::Float(_) | Literal::Duration(_)
            ) {
                return unsupported(
                    i,
                    "comparing an aggregate with a value that is not a number",
                );
            }
            Ok(Step::Stage(Stage::Filter(aggregate, op, value)))
        }
        "select" | "by" => {
            call(i)?;
            let attrs: Vec<Attr> = cut_err(separated(1.., preceded(ws, field), sym(",")))
                .context(expected("an attribute or intrinsic"))
                .parse_next(i)?;
            close(i)?;
            Ok(Step::Stage(if word == "select" {
                Stage::Select(attrs)
            } else {
                Stage::By(attrs)
            }))
        }
        "rate" | "count_over_time" => {
            call(i)?;
            close(i)?;
            let function = if word == "rate" {
                MetricsFn::Rate
            } else {
                MetricsFn::CountOverTime
            };
            Ok(Step::Metrics(Metrics {
                function,
                by: metrics_by(i)?,
            }))
        }
        "avg_over_time"
        | "min_over_time"
        | "max_over_time"
        | "sum_over_time"
        | "histogram_over_time" => {
            call(i)?;
            ws(i)?;
            let attr = cut_err(field)
                .context(expected("an attribute or intrinsic"))
                .parse_next(i)?;
            close(i)?;
            let function = match word {
                "avg_over_time" => MetricsFn::AvgOverTime(attr),
                "min_over_time" => MetricsFn::MinOverTime(attr),
                "max_over_time" => MetricsFn::MaxOverTime(attr),
                "sum_over_time" => MetricsFn::SumOverTime(attr),
                _ => MetricsFn::HistogramOverTime(attr),
            };
            Ok(Step::Metrics(Metrics {
                function,
                by: metrics_by(i)?,
            }))
        }
        "quantile_over_time" => {
            call(i)?;
            ws(i)?;
            let attr = cut_err(field)
                .context(expected("an attribute or intrinsic"))
                .parse_next(i)?;
            let mut qs = Vec::new();
            while opt(sym(",")).parse_next(i)?.is_some() {
                ws(i)?;
                let q = cut_err(number)
                    .context(expected("a quantile between 0 and 1"))
                    .parse_next(i)?;
                let q = match q {
                    Literal::Int(n) => n as f64,
                    Literal::Float(f) => f,
                    _ => -1.0,
                };
                if !(0.0..=1.0).contains(&q) {
                    return want("a quantile between 0 and 1");
                }
                qs.push(q);
            }
            if qs.is_empty() {
                return want("`,` and at least one quantile");
            }
            close(i)?;
            Ok(Step::Metrics(Metrics {
                function: MetricsFn::Quantile(attr, qs),
                by: metrics_by(i)?,
            }))
        }
        "coalesce" | "topk" | "bottomk" | "compare" | "sum_by" | "avg_by" => {
            *i = start;
            unsupported(i, format!("the pipeline function {word}()"))
        }
        _ => {
            *i = start;
            want("a pipeline stage (count(), avg(…), min(…), max(…), sum(…), select(…), by(…), rate(), count_over_time(), quantile_over_time(…), …)")
        }
    }
}

/// ` by (a, …)` after a metrics function.
fn metrics_by(i: &mut Input) -> ModalResult<Vec<Attr>> {
    ws(i)?;
    if !(i.starts_with("by") && i[2..].trim_start().starts_with('(')) {
        return Ok(Vec::new());
    }
    "by".parse_next(i)?;
    delimited(
        sym("("),
        cut_err(separated(1.., preceded(ws, field), sym(",")))
            .context(expected("an attribute or intrinsic")),
        cut_err(sym(")")).context(expected("`)`")),
    )
    .parse_next(i)
}

/// A Go-style duration (`100ms`, `1.5s`, `1h30m`), in nanoseconds.
pub fn duration(text: &str) -> Result<i64> {
    let mut input: Input = text.trim();
    DEPTH.with(|d| d.set(0));
    match number(&mut input) {
        Ok(Literal::Duration(ns)) if input.is_empty() => Ok(ns),
        _ => Err(Error::BadRequest(format!(
            "{text:?} is not a duration (such as 100ms, 1.5s, 1m30s)"
        ))),
    }
}

/// One attribute or intrinsic as TraceQL writes it (`span.x`, `resource.x`, `.x`, `name`,
/// `span:status`, …).
pub fn attribute(text: &str) -> Result<Attr> {
    let mut input: Input = text.trim();
    DEPTH.with(|d| d.set(0));
    match field(&mut input) {
        Ok(attr) if input.is_empty() => Ok(attr),
        Ok(_) => Err(Error::BadRequest(format!("{text:?} is not one attribute"))),
        Err(e) => Err(error_at(text.trim(), text.trim().len() - input.len(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(q: &str) -> Cond {
        match parse(q).unwrap_or_else(|e| panic!("{q}: {e}")).spansets {
            SpansetExpr::Filter(Some(c)) => c,
            other => panic!("{q}: {other:?}"),
        }
    }

    fn cmp(attr: Attr, op: Op, value: Literal) -> Cond {
        Cond::Compare(attr, op, value)
    }

    fn span(name: &str) -> Attr {
        Attr::Named(Scope::Span, name.into())
    }

    fn err(q: &str) -> String {
        parse(q).unwrap_err().to_string()
    }

    #[test]
    fn traceql_parses_every_comparison_operator() {
        for (text, op) in [
            ("=", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            (">=", Op::Ge),
            ("<", Op::Lt),
            ("<=", Op::Le),
        ] {
            assert_eq!(
                filter(&format!("{{ span.n {text} 3 }}")),
                cmp(span("n"), op, Literal::Int(3))
            );
        }
        assert_eq!(
            filter(r#"{ span.s =~ "a.*" }"#),
            cmp(span("s"), Op::Regex, Literal::Str("a.*".into()))
        );
        assert_eq!(
            filter(r#"{span.s!~"a"}"#),
            cmp(span("s"), Op::NotRegex, Literal::Str("a".into()))
        );
    }

    #[test]
    fn traceql_parses_scopes_intrinsics_and_quoted_names() {
        assert_eq!(
            filter(r#"{ resource.service.name = "a" }"#),
            cmp(
                Attr::Named(Scope::Resource, "service.name".into()),
                Op::Eq,
                Literal::Str("a".into())
            )
        );
        assert_eq!(
            filter("{ .x = 1 }"),
            cmp(Attr::Named(Scope::Any, "x".into()), Op::Eq, Literal::Int(1))
        );
        assert_eq!(
            filter(r#"{ span."a b" = 1 && span.http."x y".z = 2 }"#),
            Cond::And(
                Box::new(cmp(span("a b"), Op::Eq, Literal::Int(1))),
                Box::new(cmp(span("http.x y.z"), Op::Eq, Literal::Int(2)))
            )
        );
        for (text, intrinsic) in [
            ("name", Intrinsic::Name),
            ("span:name", Intrinsic::Name),
            ("statusMessage", Intrinsic::StatusMessage),
            ("rootName", Intrinsic::RootName),
            ("trace:rootName", Intrinsic::RootName),
            ("rootServiceName", Intrinsic::RootService),
            ("trace:rootService", Intrinsic::RootService),
        ] {
            assert_eq!(
                filter(&format!("{{ {text} = \"v\" }}")),
                cmp(Attr::Intrinsic(intrinsic), Op::Eq, Literal::Str("v".into()))
            );
        }
        assert_eq!(
            filter("{ span:status = error }"),
            cmp(
                Attr::Intrinsic(Intrinsic::Status),
                Op::Eq,
                Literal::Status(Status::Error)
            )
        );
        assert_eq!(
            filter("{ kind != server }"),
            cmp(
                Attr::Intrinsic(Intrinsic::Kind),
                Op::Ne,
                Literal::Kind(Kind::Server)
            )
        );
        assert_eq!(
            filter("{ trace:duration > 2m }"),
            cmp(
                Attr::Intrinsic(Intrinsic::TraceDuration),
                Op::Gt,
                Literal::Duration(120_000_000_000)
            )
        );
    }

    #[test]
    fn traceql_parses_literals() {
        let value = |text: &str| match filter(&format!("{{ span.v = {text} }}")) {
            Cond::Compare(_, _, v) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            value(r#""a \"b\" \\ c""#),
            Literal::Str(r#"a "b" \ c"#.into())
        );
        assert_eq!(value(r"`raw \n`"), Literal::Str(r"raw \n".into()));
        assert_eq!(value("-12"), Literal::Int(-12));
        assert_eq!(value("1.25"), Literal::Float(1.25));
        assert_eq!(value("true"), Literal::Bool(true));
        assert_eq!(value("nil"), Literal::Nil);
        assert_eq!(value("maxInt"), Literal::Int(i64::MAX));
        for (text, ns) in [
            ("5ns", 5),
            ("3us", 3_000),
            ("3µs", 3_000),
            ("10ms", 10_000_000),
            ("1.5s", 1_500_000_000),
            ("2m", 120_000_000_000),
            ("1h30m", 5_400_000_000_000),
        ] {
            assert_eq!(value(text), Literal::Duration(ns), "{text}");
        }
        assert_eq!(duration("100ms").unwrap(), 100_000_000);
        assert!(duration("100").is_err());
    }

    #[test]
    fn traceql_precedence_and_grouping() {
        // && binds tighter than ||.
        let c = filter("{ .a = 1 || .b = 2 && .c = 3 }");
        assert!(
            matches!(c, Cond::Or(_, ref r) if matches!(**r, Cond::And(..))),
            "{c:?}"
        );
        let c = filter("{ (.a = 1 || .b = 2) && !(.c = 3) }");
        assert!(
            matches!(c, Cond::And(ref l, ref r)
            if matches!(**l, Cond::Or(..)) && matches!(**r, Cond::Not(_))),
            "{c:?}"
        );
        assert_eq!(
            filter("{ span.cache.hit }"),
            cmp(span("cache.hit"), Op::Eq, Literal::Bool(true))
        );
        // Structural binds tighter than &&, && tighter than ||.
        let q = parse("{ .a = 1 } > { .b = 1 } && { .c = 1 } || { }").unwrap();
        let SpansetExpr::Or(l, r) = q.spansets else {
            panic!()
        };
        assert_eq!(*r, SpansetExpr::Filter(None));
        assert!(matches!(*l, SpansetExpr::And(ref a, _)
            if matches!(**a, SpansetExpr::Structural(..))));
        let q = parse("({ .a = 1 } || { .b = 1 }) >> { .c = 1 }").unwrap();
        assert!(matches!(q.spansets, SpansetExpr::Structural(r, ref a, _)
            if r.kind == RelationKind::Descendant && matches!(**a, SpansetExpr::Or(..))));
        for (text, kind, negated, union) in [
            (">", RelationKind::Child, false, false),
            (">>", RelationKind::Descendant, false, false),
            ("<", RelationKind::Parent, false, false),
            ("<<", RelationKind::Ancestor, false, false),
            ("~", RelationKind::Sibling, false, false),
            ("!<", RelationKind::Parent, true, false),
            ("&>>", RelationKind::Descendant, false, true),
        ] {
            let q = parse(&format!("{{}} {text} {{}}")).unwrap();
            let SpansetExpr::Structural(r, ..) = q.spansets else {
                panic!("{text}")
            };
            assert_eq!(
                r,
                Relation {
                    kind,
                    negated,
                    union
                },
                "{text}"
            );
        }
    }

    #[test]
    fn traceql_parses_pipelines_and_metrics() {
        let q =
            parse("{ } | count() > 2 | avg(duration) >= 1s | select(span.a, resource.b) | by(.c)")
                .unwrap();
        assert_eq!(
            q.stages,
            [
                Stage::Filter(Aggregate::Count, Op::Gt, Literal::Int(2)),
                Stage::Filter(
                    Aggregate::Avg(Attr::Intrinsic(Intrinsic::Duration)),
                    Op::Ge,
                    Literal::Duration(1_000_000_000)
                ),
                Stage::Select(vec![span("a"), Attr::Named(Scope::Resource, "b".into())]),
                Stage::By(vec![Attr::Named(Scope::Any, "c".into())]),
            ]
        );
        let q = parse("{ status = error } | rate() by (resource.service.name)").unwrap();
        assert_eq!(
            q.metrics,
            Some(Metrics {
                function: MetricsFn::Rate,
                by: vec![Attr::Named(Scope::Resource, "service.name".into())]
            })
        );
        let q = parse("{} | quantile_over_time(duration, .5, 0.95)").unwrap_err();
        assert!(q.to_string().contains("quantile"), "{q}");
        let q = parse("{} | quantile_over_time(duration, 0.5, 0.95)").unwrap();
        assert_eq!(
            q.metrics.unwrap().function,
            MetricsFn::Quantile(Attr::Intrinsic(Intrinsic::Duration), vec![0.5, 0.95])
        );
        assert!(parse("{} | count_over_time() by(span.x)").is_ok());
        let q = parse("{ } | histogram_over_time(duration) by (resource.service.name)").unwrap();
        assert_eq!(
            q.metrics,
            Some(Metrics {
                function: MetricsFn::HistogramOverTime(Attr::Intrinsic(Intrinsic::Duration)),
                by: vec![Attr::Named(Scope::Resource, "service.name".into())]
            })
        );
        let q = parse("{ }|histogram_over_time(span.gen_ai.usage.input_tokens)").unwrap();
        assert_eq!(
            q.metrics.unwrap().function,
            MetricsFn::HistogramOverTime(span("gen_ai.usage.input_tokens"))
        );
        assert!(err("{ } | histogram_over_time()").contains("expected an attribute"));
        assert!(parse("{ } with (most_recent=true)").is_ok());
    }

    #[test]
    fn traceql_errors_name_the_column_and_what_was_expected() {
        let e = err("{ span.x = }");
        assert!(
            e.starts_with("invalid TraceQL query: parse error at line 1, col 12: expected a value"),
            "{e}"
        );
        let e = err("{ span.x = 1");
        assert!(e.contains("col 13") && e.contains("`}`"), "{e}");
        let e = err("{ span.x 1 }");
        assert!(e.contains("col 10"), "{e}");
        let e = err("{ foo = 1 }");
        assert!(e.contains("col 3") && e.contains("attribute"), "{e}");
        let e = err("{ }\n| nope()");
        assert!(e.contains("line 2, col 3"), "{e}");
        let e = err("{ span.x = \"open }");
        assert!(e.contains("expected `\"`"), "{e}");
        let e = err("");
        assert!(e.contains("col 1"), "{e}");
    }

    #[test]
    fn traceql_unsupported_constructs_are_named() {
        for (q, what) in [
            ("{ span.a + 1 > 2 }", "arithmetic"),
            ("{ event.name = \"x\" }", "event-scoped"),
            ("{ link:traceID = \"x\" }", "link:traceID"),
            ("{ span:childCount = 0 }", "span:childCount"),
            ("{ span.a = span.b }", "two attributes"),
            ("{ } | topk(5)", "topk"),
            ("{ } | rate() | count() > 1", "after a metrics function"),
            ("{ status = 5 }", "types"),
        ] {
            let e = err(q);
            assert!(e.starts_with("unsupported TraceQL: "), "{q}: {e}");
            assert!(e.contains(what), "{q}: {e}");
        }
    }

    #[test]
    fn traceql_injection_attempts_are_values_or_errors() {
        assert_eq!(
            filter(r#"{ name = "x' OR '1'='1" }"#),
            cmp(
                Attr::Intrinsic(Intrinsic::Name),
                Op::Eq,
                Literal::Str("x' OR '1'='1".into())
            )
        );
        assert!(parse("{ name = 'x' }").is_err());
        assert!(parse("{ name = \"x\" }; DROP TABLE spans").is_err());
        assert!(parse(&"(".repeat(10_000)).is_err());
        let deep = format!("{}{{}}{}", "(".repeat(100), ")".repeat(100));
        assert!(err(&deep).contains("nesting"));
        assert!(parse(&"x".repeat(MAX_QUERY_LEN + 1)).is_err());
    }
}
