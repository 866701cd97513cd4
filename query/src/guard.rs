//! Read-only SQL: only queries and introspection are admitted.
//!
//! The statement is parsed once here to give a clear refusal; execution then runs with
//! DataFusion's own `SQLOptions` forbidding DDL, DML and statements as a second lock. Sessions
//! have no URL tables and no file-reading table functions, so no statement can reach a file.

use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;

use crate::{Error, Result};

/// Admits `sql` if it is exactly one read-only statement.
pub fn check(sql: &str) -> Result<()> {
    let mut statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
        .map_err(|e| Error::BadRequest(e.strip_backtrace()))?;
    if statements.len() != 1 {
        return Err(Error::BadRequest(format!(
            "send exactly one statement, got {}",
            statements.len()
        )));
    }
    let statement = statements.pop_front().expect("one statement");
    check_statement(&statement)
}

fn check_statement(statement: &DFStatement) -> Result<()> {
    match statement {
        DFStatement::Statement(s) => match s.as_ref() {
            Statement::Query(_)
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowFunctions { .. }
            | Statement::ExplainTable { .. } => Ok(()),
            Statement::Explain { statement, .. } => {
                check_statement(&DFStatement::Statement(statement.clone()))
            }
            other => Err(refused(&other.to_string())),
        },
        DFStatement::Explain(explain) => check_statement(&explain.statement),
        other => Err(refused(&other.to_string())),
    }
}

fn refused(statement: &str) -> Error {
    let head: String = statement
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    Error::Forbidden(format!(
        "only read-only queries are allowed (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE); refused: {head} …"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_reads() {
        for sql in [
            "select 1",
            "with x as (select 1) select * from x",
            "explain select * from spans",
            "explain analyze select * from spans",
            "show tables",
            "show columns from spans",
            "describe spans",
        ] {
            check(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn refuses_writes_and_files() {
        for sql in [
            "create table t as select 1",
            "create external table t stored as parquet location '/etc'",
            "copy (select 1) to '/tmp/x.parquet'",
            "insert into spans select * from spans",
            "delete from spans",
            "drop table spans",
            "create view v as select 1",
            "set datafusion.execution.batch_size = 1",
            "explain copy (select 1) to '/tmp/x'",
            "select 1; drop table spans",
        ] {
            assert!(check(sql).is_err(), "{sql} admitted");
        }
        assert!(matches!(
            check("drop table spans"),
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(check("selec 1"), Err(Error::BadRequest(_))));
    }
}
