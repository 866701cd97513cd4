//! The SQL dialect user statements are parsed with: DataFusion's generic dialect, with a bound
//! on the parser's work.
//!
//! sqlparser reads some words two ways: `NOT`, `CASE`, `EXTRACT` … first as the start of their
//! own syntax, and when that fails, as plain identifiers (`maybe_parse` backtracks). When such
//! words nest inside one another and the statement is invalid at its end, every nesting level
//! doubles the work: `SELECT NOT + NOT + … )` with 20 `NOT`s takes seconds, with 30 it takes
//! hours, in a statement of 150 bytes. The recursion limit does not help (the nesting is shallow)
//! and the query timeout cannot interrupt synchronous parsing.
//!
//! [`BoundedDialect`] counts how often the parser starts an expression (its `parse_prefix`
//! hook, which every attempt passes through) and stops the parse once that count passes a budget
//! proportional to the statement's length. A valid statement starts a handful of expressions per
//! token; the budget leaves a wide margin above that.

use std::any::TypeId;
use std::cell::Cell;

use datafusion::sql::sqlparser::ast::Expr;
use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};
use datafusion::sql::sqlparser::parser::{Parser, ParserError};

/// Expression starts allowed per token of the statement.
pub const PARSE_STEPS_PER_TOKEN: usize = 32;

/// Expression starts allowed to any statement, however short.
pub const MIN_PARSE_STEPS: usize = 4_096;

/// [`GenericDialect`], parsing at most a budget of expression starts.
#[derive(Debug)]
pub struct BoundedDialect {
    steps: Cell<usize>,
    budget: usize,
}

impl BoundedDialect {
    /// A dialect for one statement of `tokens` tokens (whitespace excluded).
    pub fn for_tokens(tokens: usize) -> Self {
        Self {
            steps: Cell::new(0),
            budget: MIN_PARSE_STEPS.saturating_add(tokens.saturating_mul(PARSE_STEPS_PER_TOKEN)),
        }
    }

    /// Whether a parse with this dialect was stopped for exceeding its budget.
    pub fn exhausted(&self) -> bool {
        self.steps.get() > self.budget
    }

    /// The number of expression starts allowed.
    pub fn budget(&self) -> usize {
        self.budget
    }
}

/// Forwards each method [`GenericDialect`] overrides, so that the parser behaves exactly as with
/// it (methods it does not override keep the trait's defaults here too).
macro_rules! forward {
    (chars: $($c:ident),* ; flags: $($f:ident),* $(,)?) => {
        $(fn $c(&self, ch: char) -> bool { GenericDialect.$c(ch) })*
        $(fn $f(&self) -> bool { GenericDialect.$f() })*
    };
}

impl Dialect for BoundedDialect {
    /// Parses as [`GenericDialect`] wherever sqlparser asks which dialect it is parsing.
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }

    fn parse_prefix(&self, _parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let steps = self.steps.get() + 1;
        self.steps.set(steps);
        // The one error `maybe_parse` does not swallow, so the whole parse stops here.
        (steps > self.budget).then_some(Err(ParserError::RecursionLimitExceeded))
    }

    forward! {
        chars: is_delimited_identifier_start, is_identifier_start, is_identifier_part;
        flags: supports_unicode_string_literal, supports_partition_by_after_order_by,
        supports_array_join_syntax, supports_group_by_expr, supports_group_by_with_modifier,
        supports_left_associative_joins_without_parens, supports_connect_by,
        supports_match_recognize, supports_pipe_operator, supports_start_transaction_modifier,
        supports_window_function_null_treatment_arg, supports_dictionary_syntax,
        supports_window_clause_named_window_reference, supports_parenthesized_set_variables,
        supports_select_wildcard_except, support_map_literal_syntax, allow_extract_custom,
        allow_extract_single_quotes, supports_extract_comma_syntax,
        supports_create_view_comment_syntax, supports_parens_around_table_factor,
        supports_values_as_table_factor, supports_create_index_with_clause,
        supports_explain_with_utility_options, supports_limit_comma, supports_update_order_by,
        supports_from_first_select, supports_projection_trailing_commas,
        supports_asc_desc_in_column_definition, supports_try_convert,
        supports_bitwise_shift_operators, supports_comment_on, supports_load_extension,
        supports_named_fn_args_with_assignment_operator, supports_struct_literal,
        supports_empty_projections, supports_nested_comments, supports_multiline_comment_hints,
        supports_user_host_grantee, supports_string_escape_constant,
        supports_array_typedef_with_brackets, supports_match_against, supports_set_names,
        supports_comma_separated_set_assignments, supports_filter_during_aggregation,
        supports_select_wildcard_exclude, supports_data_type_signed_suffix,
        supports_interval_options, supports_quote_delimited_string,
        supports_select_wildcard_replace, supports_select_wildcard_ilike,
        supports_select_wildcard_rename, supports_optimize_table, supports_install,
        supports_detach, supports_prewhere, supports_with_fill, supports_limit_by,
        supports_interpolate, supports_settings, supports_select_format,
        supports_comment_optimizer_hint, supports_constraint_keyword_without_name,
        supports_key_column_option, supports_comma_separated_trim, supports_cte_without_as,
        supports_select_item_multi_column_alias, supports_xml_expressions,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::DFParser;

    use super::*;

    /// The statements of the SQL fuzz corpus (views, tests and what fuzzing found), valid and
    /// invalid: parsed with the bounded dialect and the generic one, they must give the same
    /// syntax tree or the same error. This fails if sqlparser's generic dialect gains an override
    /// that is not forwarded.
    #[test]
    fn parses_as_the_generic_dialect() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/sql");
        let mut compared = 0;
        for entry in std::fs::read_dir(dir).expect("the SQL fuzz corpus") {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let Ok(sql) = std::str::from_utf8(&bytes) else {
                continue;
            };
            let bounded = BoundedDialect::for_tokens(usize::MAX / 64);
            let ours = DFParser::parse_sql_with_dialect(sql, &bounded);
            let theirs = DFParser::parse_sql_with_dialect(sql, &GenericDialect);
            assert_eq!(
                format!("{ours:?}"),
                format!("{theirs:?}"),
                "parsed differently: {sql}"
            );
            compared += 1;
        }
        assert!(compared > 1_000, "only {compared} statements compared");
    }

    #[test]
    fn stops_exponential_backtracking() {
        // 2^20 expression starts without the bound: seconds, not forever, if the bound breaks.
        let sql = format!("SELECT {} )", "NOT + ".repeat(20));
        let dialect = BoundedDialect::for_tokens(41);
        let parsed = DFParser::parse_sql_with_dialect(&sql, &dialect);
        assert!(parsed.is_err());
        assert!(dialect.exhausted(), "{} steps", dialect.steps.get());
    }
}
