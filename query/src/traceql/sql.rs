//! TraceQL conditions as SQL over the span source: each value a bound parameter (`$n`),
//! attribute keys escaped literals, comparisons typed as Tempo types them (a number matches
//! numeric attributes only, a string string attributes only, a regular expression the whole
//! value).

use datafusion::common::ScalarValue;

use super::ast::{Attr, Cond, Literal, Op, Scope};
use super::attrs::{target, Target, ValueType};

/// Parameters of a statement being written: `$1`, `$2`, ….
#[derive(Debug, Default, Clone)]
pub struct Params {
    pub values: Vec<ScalarValue>,
}

impl Params {
    /// Binds `value`; returns its placeholder.
    pub fn bind(&mut self, value: ScalarValue) -> String {
        self.values.push(value);
        format!("${}", self.values.len())
    }

    pub fn text(&mut self, value: &str) -> String {
        self.bind(ScalarValue::Utf8(Some(value.to_owned())))
    }
}

/// `text` as a SQL string literal.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The value of a map attribute as text, and its OTLP type (`NULL` for strings).
pub fn map_value(scope: Scope, key: &str) -> (String, String) {
    let k = quote(key);
    match scope {
        Scope::Span => (format!("attributes[{k}]"), format!("attribute_types[{k}]")),
        Scope::Resource => (
            format!("resource_attributes[{k}]"),
            format!("resource_attribute_types[{k}]"),
        ),
        Scope::Any => (
            format!("coalesce(attributes[{k}], resource_attributes[{k}])"),
            format!(
                "CASE WHEN attributes[{k}] IS NOT NULL THEN attribute_types[{k}] \
                 ELSE resource_attribute_types[{k}] END"
            ),
        ),
    }
}

/// `cond` as a SQL condition. With `two_valued`, a comparison with a missing value is false
/// rather than unknown (needed under `NOT`).
pub fn condition(cond: &Cond, params: &mut Params) -> String {
    to_sql(cond, params, false)
}

fn to_sql(cond: &Cond, params: &mut Params, two_valued: bool) -> String {
    match cond {
        Cond::Const(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        Cond::And(a, b) => format!(
            "({} AND {})",
            to_sql(a, params, two_valued),
            to_sql(b, params, two_valued)
        ),
        Cond::Or(a, b) => format!(
            "({} OR {})",
            to_sql(a, params, two_valued),
            to_sql(b, params, two_valued)
        ),
        Cond::Not(a) => format!("(NOT {})", to_sql(a, params, true)),
        Cond::Compare(attr, op, value) => {
            let sql = compare(attr, *op, value, params);
            if two_valued {
                format!("coalesce({sql}, FALSE)")
            } else {
                sql
            }
        }
    }
}

fn sql_op(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "<>",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Regex => "~",
        Op::NotRegex => "!~",
    }
}

/// A regular expression matching whole values only, as Tempo's are.
fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

fn number(value: &Literal) -> Option<ScalarValue> {
    match value {
        Literal::Int(n) => Some(ScalarValue::Float64(Some(*n as f64))),
        Literal::Float(f) => Some(ScalarValue::Float64(Some(*f))),
        Literal::Duration(d) => Some(ScalarValue::Float64(Some(*d as f64))),
        _ => None,
    }
}

/// One comparison.
pub fn compare(attr: &Attr, op: Op, value: &Literal, params: &mut Params) -> String {
    match target(attr) {
        Target::Column(column, value_type) => compare_column(column, value_type, op, value, params),
        Target::Map(scope, key) => {
            let (v, t) = map_value(scope, &key);
            compare_map(&v, &t, op, value, params)
        }
    }
}

fn nil(expr: &str, op: Op) -> String {
    match op {
        Op::Eq => format!("{expr} IS NULL"),
        _ => format!("{expr} IS NOT NULL"),
    }
}

fn compare_column(
    column: &str,
    value_type: ValueType,
    op: Op,
    value: &Literal,
    params: &mut Params,
) -> String {
    if let Literal::Nil = value {
        return match value_type {
            ValueType::TextList => match op {
                Op::Eq => format!("coalesce(cardinality({column}), 0) = 0"),
                _ => format!("cardinality({column}) > 0"),
            },
            _ => nil(column, op),
        };
    }
    let regex = matches!(op, Op::Regex | Op::NotRegex);
    match (value_type, value) {
        (ValueType::Status, Literal::Status(s)) => {
            format!("{column} {} {}", sql_op(op), params.text(s.as_str()))
        }
        (ValueType::Kind, Literal::Kind(k)) => {
            format!("{column} {} {}", sql_op(op), params.text(k.as_str()))
        }
        (ValueType::Text, Literal::Str(s)) if regex => {
            format!("{column} {} {}", sql_op(op), params.text(&anchored(s)))
        }
        (ValueType::Text, Literal::Str(s)) => {
            format!("{column} {} {}", sql_op(op), params.text(s))
        }
        (ValueType::TextList, Literal::Str(s)) if op == Op::Eq => {
            format!("array_has({column}, {})", params.text(s))
        }
        (ValueType::TextList, Literal::Str(s)) if op == Op::Ne => format!(
            "(cardinality({column}) > 0 AND NOT array_has({column}, {}))",
            params.text(s)
        ),
        (ValueType::TextList, Literal::Str(s)) if regex => {
            // Elements joined by newlines: `(?m)` anchors the pattern at each element.
            let p = params.text(&format!("(?m)^(?:{s})$"));
            let any = format!("array_to_string({column}, chr(10)) ~ {p}");
            if op == Op::Regex {
                any
            } else {
                format!("(cardinality({column}) > 0 AND NOT {any})")
            }
        }
        (ValueType::Int | ValueType::Float | ValueType::Duration, v) if !regex => match number(v) {
            Some(n) => format!("CAST({column} AS DOUBLE) {} {}", sql_op(op), params.bind(n)),
            None => "FALSE".to_owned(),
        },
        _ => "FALSE".to_owned(),
    }
}

fn compare_map(v: &str, t: &str, op: Op, value: &Literal, params: &mut Params) -> String {
    let regex = matches!(op, Op::Regex | Op::NotRegex);
    let is_string = format!("coalesce({t}, 'string') = 'string'");
    match value {
        Literal::Nil => nil(v, op),
        Literal::Str(s) if regex => format!(
            "({is_string} AND {v} {} {})",
            sql_op(op),
            params.text(&anchored(s))
        ),
        Literal::Str(s) => format!("({is_string} AND {v} {} {})", sql_op(op), params.text(s)),
        Literal::Bool(b) if matches!(op, Op::Eq | Op::Ne) => format!(
            "({t} = 'bool' AND {v} {} {})",
            sql_op(op),
            params.text(if *b { "true" } else { "false" })
        ),
        v_num if !regex => match number(v_num) {
            Some(n) => format!(
                "({t} IN ('int', 'double') AND TRY_CAST({v} AS DOUBLE) {} {})",
                sql_op(op),
                params.bind(n)
            ),
            None => "FALSE".to_owned(),
        },
        _ => "FALSE".to_owned(),
    }
}

/// The numeric value of `attr` (for aggregates and metrics), `NULL` when it has none.
pub fn numeric(attr: &Attr) -> String {
    match target(attr) {
        Target::Column(column, value_type) if value_type.is_numeric() => {
            format!("CAST({column} AS DOUBLE)")
        }
        Target::Column(..) => "CAST(NULL AS DOUBLE)".to_owned(),
        Target::Map(scope, key) => {
            let (v, t) = map_value(scope, &key);
            format!("CASE WHEN {t} IN ('int', 'double') THEN TRY_CAST({v} AS DOUBLE) END")
        }
    }
}

/// The value of `attr` as text, and its type as Tempo's `AnyValue` would have it: `string`,
/// `int`, `double`, `bool` (other OTLP types are shown as strings).
pub fn typed_text(attr: &Attr) -> (String, String) {
    match target(attr) {
        Target::Column(column, value_type) => {
            let tag = match value_type {
                ValueType::Int | ValueType::Duration => "'int'",
                ValueType::Float => "'double'",
                _ => "'string'",
            };
            let text = match value_type {
                ValueType::TextList => format!("array_to_string({column}, ',')"),
                ValueType::Text | ValueType::Status | ValueType::Kind => column.to_owned(),
                _ => format!("CAST({column} AS VARCHAR)"),
            };
            (text, tag.to_owned())
        }
        Target::Map(scope, key) => map_value(scope, &key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traceql::parse;

    fn sql_of(q: &str) -> (String, Vec<ScalarValue>) {
        let query = parse(q).unwrap();
        let crate::traceql::ast::SpansetExpr::Filter(Some(cond)) = query.spansets else {
            panic!("{q}: not one filter")
        };
        let mut params = Params::default();
        (condition(&cond, &mut params), params.values)
    }

    #[test]
    fn traceql_sql_binds_values_and_types_comparisons() {
        let (sql, params) = sql_of(
            r#"{ span.gen_ai.tool.name = "shell" && span.agent_trail.approval.state = "bypassed" }"#,
        );
        assert_eq!(sql, "(tool_name = $1 AND approval_state = $2)");
        assert_eq!(params.len(), 2);
        let (sql, params) = sql_of("{ duration > 1.5s }");
        assert_eq!(sql, "CAST(duration_ns AS DOUBLE) > $1");
        assert_eq!(params, [ScalarValue::Float64(Some(1.5e9))]);
        let (sql, _) = sql_of("{ span.http.status_code >= 500 }");
        assert!(
            sql.contains("attribute_types['http.status_code'] IN ('int', 'double')"),
            "{sql}"
        );
        let (sql, params) = sql_of(r#"{ resource.env =~ "prod-.*" }"#);
        assert!(sql.contains("resource_attributes['env'] ~ $1"), "{sql}");
        assert_eq!(params, [ScalarValue::Utf8(Some("^(?:prod-.*)$".into()))]);
        let (sql, _) = sql_of("{ .x != nil }");
        assert_eq!(
            sql,
            "coalesce(attributes['x'], resource_attributes['x']) IS NOT NULL"
        );
        let (sql, _) = sql_of("{ !(status = error) }");
        assert_eq!(sql, "(NOT coalesce(status_code = $1, FALSE))");
        let (sql, _) = sql_of("{ span.flag = true }");
        assert_eq!(
            sql,
            "(attribute_types['flag'] = 'bool' AND attributes['flag'] = $1)"
        );
    }

    #[test]
    fn traceql_sql_injection_stays_in_values_and_escaped_keys() {
        let (sql, params) = sql_of(r#"{ span.x = "'; DROP TABLE spans; --" }"#);
        assert!(!sql.contains("DROP"), "{sql}");
        assert_eq!(
            params,
            [ScalarValue::Utf8(Some("'; DROP TABLE spans; --".into()))]
        );
        let (sql, _) = sql_of(r#"{ span."a']; DROP TABLE spans; --" = 1 }"#);
        assert!(
            sql.contains("attributes['a'']; DROP TABLE spans; --']"),
            "{sql}"
        );
        let (sql, _) = sql_of(r#"{ span."x\"y\\z" = "v" }"#);
        assert!(sql.contains(r#"attributes['x"y\z']"#), "{sql}");
    }
}
