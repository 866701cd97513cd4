//! The types of a prepared statement's `$1`, `$2`, … parameters.
//!
//! Data flow: the types a client declares in `Parse` are written into the statement as casts
//! ([`declare`]), so that a declared parameter plans as that type wherever it stands (`SELECT
//! $1` included), as in Postgres; DataFusion then infers the others from what they are compared
//! with, and [`planned`] reads them all from the plan, a cast parameter as the type it is cast
//! to. The types decode the values of `Bind` ([`super::extended`]) and answer `Describe`.

use std::ops::ControlFlow;

use arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::sqlparser::ast::{
    self, CastKind, ExactNumberInfo, Statement, TimezoneInfo, Value, ValueWithSpan, VisitMut,
    VisitorMut,
};
use datafusion_postgres::pgwire::api::Type;

use crate::Result;

/// `statement` with each parameter whose type the client declared cast to that type. Types
/// without an SQL name DataFusion plans are left to inference.
pub fn declare(mut statement: Statement, types: &[Option<Type>]) -> Statement {
    if types.iter().any(Option::is_some) {
        let _ = statement.visit(&mut Declare(types));
    }
    statement
}

struct Declare<'a>(&'a [Option<Type>]);

impl VisitorMut for Declare<'_> {
    type Break = ();

    /// After the children, so that the cast put in is not visited again.
    fn post_visit_expr(&mut self, expr: &mut ast::Expr) -> ControlFlow<()> {
        let ast::Expr::Value(ValueWithSpan {
            value: Value::Placeholder(id),
            ..
        }) = expr
        else {
            return ControlFlow::Continue(());
        };
        let declared = position(id)
            .and_then(|i| self.0.get(i))
            .and_then(|t| sql_type(t.as_ref()?));
        if let Some(data_type) = declared {
            let placeholder = std::mem::replace(expr, ast::Expr::Value(Value::Null.into()));
            *expr = ast::Expr::Cast {
                kind: CastKind::DoubleColon,
                expr: Box::new(placeholder),
                data_type,
                array: false,
                format: None,
            };
        }
        ControlFlow::Continue(())
    }
}

/// The index of parameter `$n`.
fn position(id: &str) -> Option<usize> {
    id.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1)
}

/// The SQL type DataFusion plans for Postgres type `t`, for the types clients declare.
fn sql_type(t: &Type) -> Option<ast::DataType> {
    Some(match *t {
        Type::BOOL => ast::DataType::Boolean,
        Type::INT2 => ast::DataType::SmallInt(None),
        Type::INT4 => ast::DataType::Int(None),
        Type::INT8 => ast::DataType::BigInt(None),
        Type::FLOAT4 => ast::DataType::Real,
        Type::FLOAT8 => ast::DataType::DoublePrecision,
        Type::NUMERIC => ast::DataType::Numeric(ExactNumberInfo::None),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => ast::DataType::Text,
        Type::BYTEA => ast::DataType::Bytea,
        Type::DATE => ast::DataType::Date,
        Type::TIMESTAMP => ast::DataType::Timestamp(None, TimezoneInfo::None),
        Type::TIMESTAMPTZ => ast::DataType::Timestamp(None, TimezoneInfo::WithTimeZone),
        _ => return None,
    })
}

/// The types of `plan`'s parameters by position (`None`: nothing tells), as many as the highest
/// `$n` it uses.
pub fn planned(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>> {
    let mut types: Vec<Option<DataType>> = Vec::new();
    let mut set = |id: &str, data_type: Option<DataType>| {
        if let Some(i) = position(id) {
            if types.len() <= i {
                types.resize(i + 1, None);
            }
            if types[i].is_none() {
                types[i] = data_type;
            }
        }
    };
    for (id, data_type) in plan.get_parameter_types()? {
        set(&id, data_type);
    }
    plan.apply_with_subqueries(|node| {
        for expr in node.expressions() {
            expr.apply(|e| {
                let cast = match e {
                    Expr::Cast(cast) => Some((&cast.expr, cast.field.data_type())),
                    Expr::TryCast(cast) => Some((&cast.expr, cast.field.data_type())),
                    _ => None,
                };
                if let Some((inner, data_type)) = cast {
                    if let Expr::Placeholder(p) = inner.as_ref() {
                        set(&p.id, Some(data_type.clone()));
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(types)
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;
    use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    use super::*;

    async fn types_of(sql: &str, declared: &[Option<Type>]) -> Vec<Option<DataType>> {
        let mut statements = PostgresCompatibilityParser::new().parse(sql).unwrap();
        let sql = declare(statements.remove(0), declared).to_string();
        let ctx = SessionContext::new();
        let df = ctx.sql(&sql).await.unwrap();
        planned(df.logical_plan()).unwrap()
    }

    #[tokio::test]
    async fn pg_declared_types_win_and_the_rest_is_inferred() {
        let sql = "SELECT $3, a FROM (VALUES (1, 'x')) AS t(a, b) WHERE b = $1 AND a > $2";
        assert_eq!(
            types_of(sql, &[]).await,
            vec![Some(DataType::Utf8), Some(DataType::Int64), None]
        );
        let declared = [None, Some(Type::INT2), Some(Type::TIMESTAMPTZ)];
        assert_eq!(
            types_of(sql, &declared).await,
            vec![
                Some(DataType::Utf8),
                Some(DataType::Int16),
                Some(DataType::Timestamp(
                    arrow::datatypes::TimeUnit::Nanosecond,
                    None
                ))
            ]
        );
        assert_eq!(
            types_of("SELECT $1::int", &[]).await,
            vec![Some(DataType::Int32)]
        );
    }
}
