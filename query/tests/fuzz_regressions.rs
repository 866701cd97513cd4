//! Inputs the fuzz target `sql` once crashed or stalled on, saved under `fuzz/regressions/sql/`,
//! replayed in-process through the same function (the target's own source file, included here).

#[path = "../../fuzz/src/sql.rs"]
mod sql;

#[path = "../../fuzz/src/regressions.rs"]
mod regressions;
use regressions::{inputs, replay};

/// Inputs with a test of their own below.
const SEPARATE: &[&str] = &["timeout-guard-parse"];

#[test]
fn sql() {
    replay("sql", SEPARATE, sql::sql_target);
}

/// About 1 KB of SQL, mostly chains of unary `+` and `NOT` around keywords used as identifiers:
/// sqlparser tries each such word as its own syntax, then as an identifier, so its work doubles
/// with each nesting level (over 20 s before the parse was bounded). The guard must refuse it
/// for its parse budget, not after parsing it.
#[test]
fn timeout_guard_parse() {
    let (_, data) = inputs("sql", &[])
        .into_iter()
        .find(|(name, _)| name == "timeout-guard-parse")
        .expect("the saved input");
    let sql = std::str::from_utf8(&data).expect("UTF-8");
    let refusal = cairn_query::guard::check(sql)
        .expect_err("refused")
        .to_string();
    assert!(refusal.contains("too complex to parse"), "{refusal}");
}
