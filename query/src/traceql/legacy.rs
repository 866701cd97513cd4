//! Tempo's tag search (`tags=service.name="a b" http.status_code=500`, `minDuration`,
//! `maxDuration`) as a TraceQL query: one spanset filter whose conditions all hold on one span.
//! Tags are unscoped attributes, except the names Tempo gives a meaning: `name` (span name),
//! `status.code`/`status` (span status), `error=true` (status error), `root.name` and
//! `root.service.name` (the trace's root). A number or boolean value also matches the same
//! text. The durations bound the trace's duration.

use super::ast::{Attr, Cond, Intrinsic, Literal, Op, Query, Scope, SpansetExpr, Status};
use crate::{Error, Result};

/// The query of a tag search.
pub fn query(
    tags: &str,
    min_duration_ns: Option<i64>,
    max_duration_ns: Option<i64>,
) -> Result<Query> {
    let mut conds = Vec::new();
    for (key, value) in logfmt(tags)? {
        conds.push(tag_condition(&key, &value));
    }
    let trace_duration = Attr::Intrinsic(Intrinsic::TraceDuration);
    if let Some(min) = min_duration_ns {
        conds.push(Cond::Compare(
            trace_duration.clone(),
            Op::Ge,
            Literal::Duration(min),
        ));
    }
    if let Some(max) = max_duration_ns {
        conds.push(Cond::Compare(
            trace_duration,
            Op::Le,
            Literal::Duration(max),
        ));
    }
    let cond = conds
        .into_iter()
        .reduce(|a, b| Cond::And(Box::new(a), Box::new(b)));
    Ok(Query {
        spansets: SpansetExpr::Filter(cond),
        stages: Vec::new(),
        metrics: None,
    })
}

fn tag_condition(key: &str, value: &str) -> Cond {
    let status = |v: &str| match v {
        "ok" | "STATUS_CODE_OK" | "1" => Some(Status::Ok),
        "error" | "STATUS_CODE_ERROR" | "2" => Some(Status::Error),
        "unset" | "STATUS_CODE_UNSET" | "0" => Some(Status::Unset),
        _ => None,
    };
    let intrinsic = |i: Intrinsic| Attr::Intrinsic(i);
    match key {
        "name" => Cond::Compare(
            intrinsic(Intrinsic::Name),
            Op::Eq,
            Literal::Str(value.into()),
        ),
        "root.name" => Cond::Compare(
            intrinsic(Intrinsic::RootName),
            Op::Eq,
            Literal::Str(value.into()),
        ),
        "root.service.name" => Cond::Compare(
            intrinsic(Intrinsic::RootService),
            Op::Eq,
            Literal::Str(value.into()),
        ),
        "status.code" | "status" => match status(value) {
            Some(s) => Cond::Compare(intrinsic(Intrinsic::Status), Op::Eq, Literal::Status(s)),
            None => Cond::Const(false),
        },
        "error" if value == "true" => Cond::Compare(
            intrinsic(Intrinsic::Status),
            Op::Eq,
            Literal::Status(Status::Error),
        ),
        _ => {
            let attr = Attr::Named(Scope::Any, key.to_owned());
            let text = Cond::Compare(attr.clone(), Op::Eq, Literal::Str(value.to_owned()));
            let typed = if let Ok(n) = value.parse::<i64>() {
                Some(Literal::Int(n))
            } else if let Ok(f) = value.parse::<f64>() {
                f.is_finite().then_some(Literal::Float(f))
            } else {
                match value {
                    "true" => Some(Literal::Bool(true)),
                    "false" => Some(Literal::Bool(false)),
                    _ => None,
                }
            };
            match typed {
                Some(v) => Cond::Or(Box::new(Cond::Compare(attr, Op::Eq, v)), Box::new(text)),
                None => text,
            }
        }
    }
}

/// `key=value key="quoted value"` pairs.
fn logfmt(text: &str) -> Result<Vec<(String, String)>> {
    let bad = |why: &str| Error::BadRequest(format!("tags={text:?}: {why}"));
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        if chars.next() != Some('=') || key.is_empty() {
            return Err(bad("expected key=value pairs"));
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    None => return Err(bad("a quoted value is not closed")),
                    Some('"') => break,
                    Some('\\') => value.push(
                        chars
                            .next()
                            .ok_or_else(|| bad("a quoted value is not closed"))?,
                    ),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceql_legacy_tags_become_one_filter() {
        let q = query(
            r#"service.name="a b" http.status_code=500 error=true"#,
            Some(1_000_000),
            None,
        )
        .unwrap();
        let SpansetExpr::Filter(Some(cond)) = q.spansets else {
            panic!("one filter")
        };
        let text = format!("{cond:?}");
        assert!(text.contains("\"service.name\""), "{text}");
        assert!(text.contains("Int(500)"), "{text}");
        assert!(text.contains("Status(Error)"), "{text}");
        assert!(text.contains("TraceDuration"), "{text}");
        assert!(query("novalue", None, None).is_err());
        assert!(query(r#"a="open"#, None, None).is_err());
        let empty = query("", None, None).unwrap();
        assert_eq!(empty.spansets, SpansetExpr::Filter(None));
    }
}
