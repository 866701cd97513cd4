//! Read-only SQL of bounded size: only queries and introspection are admitted.
//!
//! The statement is parsed once here to give a clear refusal; execution then runs with
//! DataFusion's own `SQLOptions` forbidding DDL, DML and statements as a second lock. Sessions
//! have no URL tables and no file-reading table functions, so no statement can reach a file.
//!
//! Planning and running a statement recurse over its expressions and plan, so the size of what
//! may be planned is bounded here first. The parser's recursion limit only bounds nesting it
//! reaches by recursion (parentheses, subqueries); chains such as `a OR b OR c …`, `1+1+…` or
//! `… UNION ALL …` are built by a loop into trees as deep as they are long. The statement is
//! therefore taken apart iteratively, with an explicit stack: this measures its depth and size
//! without recursing, and also drops a statement of any depth without recursing (dropping a deep
//! tree with the compiler's drop glue recurses once per level and can overflow the stack).

use std::ops::ControlFlow;
use std::sync::LazyLock;

use datafusion::sql::parser::{CopyToSource, DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    Expr, Query, SetExpr, Statement, TableFactor, Value, Values, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::dialect::BoundedDialect;
use crate::{Error, Result};

/// Most tokens (words, literals, operators) a statement may have. Checked before parsing, so a
/// huge statement is refused before its syntax tree is built.
pub const MAX_TOKENS: usize = 100_000;

/// Most expressions, subqueries and set operations a statement may have.
pub const MAX_NODES: usize = 50_000;

/// Deepest nesting of expressions, subqueries and set operations. Each operator of a chain such
/// as `a OR b OR c` or `1 + 2 + 3`, and each `UNION` of a chain, is one level. DataFusion's
/// planning time grows with about the cube of the depth (a chain of 1,000 takes seconds), and
/// planning cannot be interrupted by the query timeout: this keeps it to milliseconds.
pub const MAX_DEPTH: usize = 256;

/// Most queries (the statement, each subquery and common table expression), set operations and
/// table references (`FROM` and `JOIN` items) a statement may have. Each can add a level to the
/// plan however flat the statement is (a chain of CTEs, each reading the one before, plans as
/// deep as it is long), so these are bounded like the depth.
pub const MAX_RELATIONS: usize = 128;

/// Most `EXPLAIN` keywords a statement may have (`EXPLAIN EXPLAIN …` nests in the parser).
const MAX_EXPLAIN: usize = 4;

/// Admits `sql` if it is exactly one read-only statement within the size limits.
pub fn check(sql: &str) -> Result<()> {
    let mut statements = parse(sql)?;
    let count = statements.len();
    let verdict = match statements.front() {
        Some(statement) if count == 1 && read_only(statement) => Ok(()),
        Some(_) if count == 1 => Err(refused(sql)),
        _ => Err(Error::BadRequest(format!(
            "send exactly one statement, got {count}"
        ))),
    };
    verdict.and(measure(&mut statements))
}

/// Admits `sql` if each of its statements (none, one or several, of any kind) parses within the
/// size limits, so that it can safely be parsed again by another parser. It does not admit
/// what the statements do: each that is run must pass [`check`].
pub fn check_script(sql: &str) -> Result<()> {
    measure(&mut parse(sql)?)
}

/// Parses `sql` within the bounds on tokens and parsing work.
fn parse(sql: &str) -> Result<std::collections::VecDeque<DFStatement>> {
    let tokens = check_tokens(sql)?;
    let dialect = BoundedDialect::for_tokens(tokens);
    DFParser::parse_sql_with_dialect(sql, &dialect).map_err(|e| {
        if dialect.exhausted() {
            Error::BadRequest(format!(
                "statement too complex to parse: the parser passed its budget of {} expression \
                 starts for {tokens} tokens (keywords such as NOT or CASE nested in one another \
                 make it backtrack)",
                dialect.budget()
            ))
        } else {
            Error::BadRequest(e.strip_backtrace())
        }
    })
}

/// Takes every statement apart (also a refused one: that is how it is dropped safely); fails
/// with the first that is too large or too deep.
fn measure(statements: &mut std::collections::VecDeque<DFStatement>) -> Result<()> {
    let mut size = Ok(());
    while let Some(statement) = statements.pop_front() {
        let measured = dismantle(statement);
        if size.is_ok() {
            size = measured;
        }
    }
    size
}

/// Bounds the work of tokenizing and parsing before any syntax tree exists; returns the number
/// of tokens (whitespace excluded).
fn check_tokens(sql: &str) -> Result<usize> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| Error::BadRequest(format!("SQL: {e}")))?;
    let mut count = 0;
    let mut explains = 0;
    for token in &tokens {
        match token {
            Token::Whitespace(_) => continue,
            Token::Word(w) if w.keyword == Keyword::EXPLAIN => explains += 1,
            _ => {}
        }
        count += 1;
    }
    if count > MAX_TOKENS {
        return Err(Error::BadRequest(format!(
            "statement too large: {count} tokens, at most {MAX_TOKENS} are allowed"
        )));
    }
    if explains > MAX_EXPLAIN {
        return Err(Error::BadRequest(format!(
            "statement has {explains} EXPLAIN keywords, at most {MAX_EXPLAIN} are allowed"
        )));
    }
    Ok(count)
}

/// Whether the statement only reads. Looks at the statement's kind, never deeper.
fn read_only(statement: &DFStatement) -> bool {
    match statement {
        DFStatement::Statement(s) => match s.as_ref() {
            Statement::Explain { statement, .. } => reads(statement),
            other => reads(other),
        },
        DFStatement::Explain(explain) => read_only(&explain.statement),
        _ => false,
    }
}

fn reads(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Query(_)
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowFunctions { .. }
            | Statement::ExplainTable { .. }
    )
}

fn refused(sql: &str) -> Error {
    // The statement's own first words, from its tokens (comments skipped): displaying the parsed
    // statement would recurse over all of it.
    let head = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .take(3)
        .map(|t| match t {
            Token::Word(w) if w.keyword != Keyword::NoKeyword && w.quote_style.is_none() => {
                w.value.to_uppercase()
            }
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    Error::Forbidden(format!(
        "only read-only queries are allowed (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE); refused: {head} …"
    ))
}

/// `SELECT 1`'s query, the stand-in for detached subqueries.
static EMPTY_QUERY: LazyLock<Query> = LazyLock::new(|| {
    let mut statements = DFParser::parse_sql("SELECT 1").expect("static SQL");
    match statements.pop_front() {
        Some(DFStatement::Statement(s)) => match *s {
            Statement::Query(q) => *q,
            _ => unreachable!("SELECT is a query"),
        },
        _ => unreachable!("one statement"),
    }
});

fn null_expr() -> Expr {
    Expr::Value(Value::Null.into())
}

fn empty_set_expr() -> SetExpr {
    SetExpr::Values(Values {
        explicit_row: false,
        value_keyword: false,
        rows: Vec::new(),
    })
}

/// A part of a statement not yet taken apart, with its nesting depth.
enum Part {
    Expr(Expr),
    Query(Box<Query>),
    SetExpr(Box<SetExpr>),
    Statement(DFStatement),
}

/// Takes `statement` apart iteratively and drops it; fails if it is larger or deeper than the
/// limits (it is taken apart and dropped all the same).
fn dismantle(statement: DFStatement) -> Result<()> {
    let mut stack = vec![(Part::Statement(statement), 0usize)];
    let (mut nodes, mut deepest, mut relations) = (0usize, 0usize, 0usize);
    while let Some((part, depth)) = stack.pop() {
        nodes += 1;
        deepest = deepest.max(depth);
        let mut children = Detach::default();
        if matches!(part, Part::Query(_)) {
            relations += 1;
        }
        match part {
            Part::Expr(mut e) => {
                children.root_pending = true;
                let _ = e.visit(&mut children);
            }
            Part::Query(mut q) => {
                children.parts.push(Part::SetExpr(std::mem::replace(
                    &mut q.body,
                    Box::new(empty_set_expr()),
                )));
                children.root_pending = true;
                let _ = q.visit(&mut children);
            }
            Part::SetExpr(s) => match *s {
                SetExpr::SetOperation { left, right, .. } => {
                    relations += 1;
                    children.parts.push(Part::SetExpr(left));
                    children.parts.push(Part::SetExpr(right));
                }
                SetExpr::Query(q) => children.parts.push(Part::Query(q)),
                mut other => {
                    let _ = other.visit(&mut children);
                }
            },
            Part::Statement(s) => match s {
                DFStatement::Statement(mut s) => {
                    let _ = s.visit(&mut children);
                }
                DFStatement::Explain(e) => children.parts.push(Part::Statement(*e.statement)),
                DFStatement::CopyTo(c) => {
                    if let CopyToSource::Query(q) = c.source {
                        children.parts.push(Part::Query(q));
                    }
                }
                DFStatement::CreateExternalTable(mut t) => {
                    let _ = t.columns.visit(&mut children);
                    let _ = t.order_exprs.visit(&mut children);
                }
                DFStatement::Reset(_) => {}
            },
        }
        relations += children.tables;
        stack.extend(children.parts.into_iter().map(|p| (p, depth + 1)));
    }
    if deepest > MAX_DEPTH {
        return Err(Error::BadRequest(format!(
            "statement nested too deeply: {deepest} levels of expressions, subqueries and set \
             operations, at most {MAX_DEPTH} are allowed (a long chain such as `a OR b OR …` \
             counts one level per operator: use `IN (…)` for lists)"
        )));
    }
    if relations > MAX_RELATIONS {
        return Err(Error::BadRequest(format!(
            "statement too large: {relations} queries, common table expressions, set operations \
             and table references, at most {MAX_RELATIONS} are allowed"
        )));
    }
    if nodes > MAX_NODES {
        return Err(Error::BadRequest(format!(
            "statement too large: {nodes} expressions, subqueries and set operations, at most \
             {MAX_NODES} are allowed"
        )));
    }
    Ok(())
}

/// Moves the expressions and queries directly below the visited part out of it, leaving cheap
/// stand-ins, so that the visit never goes deeper than one level of them.
#[derive(Default)]
struct Detach {
    /// The visited part is itself an expression or query: its own visit is let through.
    root_pending: bool,
    parts: Vec<Part>,
    /// Table references (`FROM` and `JOIN` items) met.
    tables: usize,
}

impl VisitorMut for Detach {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if std::mem::take(&mut self.root_pending) {
            return ControlFlow::Continue(());
        }
        let q = std::mem::replace(query, EMPTY_QUERY.clone());
        self.parts.push(Part::Query(Box::new(q)));
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, _table: &mut TableFactor) -> ControlFlow<()> {
        self.tables += 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if std::mem::take(&mut self.root_pending) {
            return ControlFlow::Continue(());
        }
        self.parts
            .push(Part::Expr(std::mem::replace(expr, null_expr())));
        ControlFlow::Continue(())
    }
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
        match check("/* hi */ drop table spans") {
            Err(Error::Forbidden(m)) => assert!(m.contains("refused: DROP TABLE spans"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(check("selec 1"), Err(Error::BadRequest(_))));
    }

    fn chain(n: usize, head: &str, term: &str, sep: &str) -> String {
        let mut s = String::from(head);
        for i in 0..n {
            if i > 0 {
                s.push_str(sep);
            }
            s.push_str(&term.replace("{i}", &i.to_string()));
        }
        s
    }

    fn refused_as_bad_request(sql: &str, needle: &str) {
        match check(sql) {
            Err(Error::BadRequest(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("{}…: {other:?}", &sql[..60]),
        }
    }

    fn cte_chain(n: usize) -> String {
        let mut s = String::from("with t0 as (select 1 as x)");
        for i in 1..n {
            s.push_str(&format!(", t{i} as (select x + 1 as x from t{})", i - 1));
        }
        s + &format!(" select * from t{}", n - 1)
    }

    #[test]
    fn bounds_depth_and_size() {
        // Within the limits.
        check(&chain(200, "select ", "1", "+")).unwrap();
        check(&chain(
            200,
            "select * from spans where ",
            "name = 'a{i}'",
            " or ",
        ))
        .unwrap();
        check(&chain(60, "", "select {i}", " union all ")).unwrap();
        check(&cte_chain(60)).unwrap();
        check(&(chain(10_000, "select 1 in (", "{i}", ", ") + ")")).unwrap();
        check(&chain(
            40,
            "select * from spans",
            " join spans s{i} using (span_id)",
            "",
        ))
        .unwrap();
        // Too deep: chains built by the parser's loops.
        for n in [1_000, 10_000] {
            refused_as_bad_request(&chain(n, "select ", "1", "+"), "nested too deeply");
            refused_as_bad_request(
                &chain(n, "select * from spans where ", "name = 'a{i}'", " or "),
                "nested too deeply",
            );
            refused_as_bad_request(&chain(n, "select ", "1", "::int"), "nested too deeply");
        }
        for n in [500, 5_000] {
            refused_as_bad_request(&chain(n, "", "select {i}", " union all "), "too");
        }
        // Too many relations, though shallow.
        refused_as_bad_request(&cte_chain(300), "common table expressions");
        refused_as_bad_request(
            &chain(
                200,
                "select * from spans",
                " join spans s{i} using (span_id)",
                "",
            ),
            "table references",
        );
        // Too large, though shallow.
        refused_as_bad_request(
            &(chain(60_000, "select 1 in (", "{i}", ", ") + ")"),
            "too large",
        );
        // Too many tokens: refused before parsing.
        refused_as_bad_request(&chain(200_000, "select 1 in (", "1", ", "), "tokens");
        // Nesting by recursion stops at the parser's recursion limit.
        let nested = format!("select {}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(matches!(check(&nested), Err(Error::BadRequest(_))));
        refused_as_bad_request(&chain(1_000, "", "explain", " "), "EXPLAIN");
    }

    /// Deep statements are taken apart without recursion, also when refused for another reason,
    /// on a thread with a small stack: dropping them the ordinary way would overflow it.
    #[test]
    fn deep_statements_drop_without_recursion() {
        let deep = [
            chain(10_000, "select ", "1", "+"),
            chain(10_000, "", "select {i}", " union all "),
            chain(10_000, "insert into spans select ", "1", "+"),
            chain(10_000, "copy (select ", "1", "+") + ") to '/tmp/x'",
            chain(10_000, "select (select ", "1", "+") + ")",
            chain(10_000, "explain select x from (select ", "1", "+") + ")",
        ];
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                for sql in &deep {
                    assert!(check(sql).is_err(), "{}… admitted", &sql[..40]);
                }
            })
            .unwrap()
            .join()
            .expect("no stack overflow");
    }
}
