//! Inputs the fuzz target `sql` once crashed on, saved under `fuzz/regressions/sql/`, replayed
//! in-process through the same function (the target's own source file, included here).

#[path = "../../fuzz/src/sql.rs"]
mod sql;

#[path = "../../fuzz/src/regressions.rs"]
mod regressions;
use regressions::replay;

#[test]
fn sql() {
    replay("sql", &[], sql::sql_target);
}
