//! Grafana's "is this schema on the search path" subquery, answered before planning.
//!
//! Grafana's PostgreSQL query builder lists tables and columns with a subquery that splits
//! `current_setting('search_path')` into schema names (with `generate_series` over array
//! subscripts and a function in `FROM`); it sits inside `CASE` in the projection and in
//! `ORDER BY`, where DataFusion cannot run an `IN (subquery)`. The search path is fixed here,
//! so the subquery is replaced by the list of names it would return (`'<user>', 'public'`),
//! which every engine can evaluate. datafusion-pg-catalog's own stand-in (an empty string) would
//! make every table look off the path. Source of the SQL: grafana/grafana
//! `public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts`
//! (`buildSchemaConstraint`).

use std::borrow::Cow;
use std::sync::LazyLock;

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

/// The subquery as Grafana sends it (whitespace does not matter).
const SUBQUERY: &str = r#"SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s"#;

static PATTERN: LazyLock<Vec<Token>> = LazyLock::new(|| {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, SUBQUERY)
        .tokenize()
        .expect("static SQL");
    tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect()
});

/// `sql` with each of Grafana's search path subqueries replaced by the schema names of
/// `search_path` for `user`.
pub fn resolve<'a>(sql: &'a str, search_path: &str, user: &str) -> Cow<'a, str> {
    if !sql.contains("current_setting('search_path')") {
        return Cow::Borrowed(sql);
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() else {
        return Cow::Borrowed(sql);
    };
    let tokens: Vec<TokenWithSpan> = tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let offsets = Offsets::new(sql);
    let names = names(search_path, user);
    let (mut out, mut copied, mut i) = (String::new(), 0, 0);
    while i + PATTERN.len() <= tokens.len() {
        let window = &tokens[i..i + PATTERN.len()];
        if window
            .iter()
            .zip(PATTERN.iter())
            .all(|(t, p)| t.token == *p)
        {
            let start = offsets.of(window[0].span.start);
            let end = offsets.of(window[PATTERN.len() - 1].span.end);
            out.push_str(&sql[copied..start]);
            out.push_str(&names);
            copied = end;
            i += PATTERN.len();
        } else {
            i += 1;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(sql);
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

/// The schema names of `search_path` as a list of SQL strings, `"$user"` being `user`.
fn names(search_path: &str, user: &str) -> String {
    search_path
        .split(',')
        .map(str::trim)
        .map(|name| if name == "\"$user\"" { user } else { name })
        .map(|name| format!("'{}'", name.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Byte offsets of the tokenizer's line and column (in characters, from 1) positions.
struct Offsets<'a> {
    sql: &'a str,
    lines: Vec<usize>,
}

impl<'a> Offsets<'a> {
    fn new(sql: &'a str) -> Self {
        let lines = std::iter::once(0)
            .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { sql, lines }
    }

    fn of(&self, at: Location) -> usize {
        let line = self.lines[(at.line as usize)
            .saturating_sub(1)
            .min(self.lines.len() - 1)];
        let column = (at.column as usize).saturating_sub(1);
        self.sql[line..]
            .char_indices()
            .nth(column)
            .map_or(self.sql.len(), |(i, _)| line + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grafana_subquery_becomes_the_schema_names() {
        let sql = format!(
            "SELECT CASE WHEN quote_ident(table_schema) IN (\n  {SUBQUERY}\n) THEN 1 ELSE 2 END, 'é' \
             FROM t ORDER BY CASE WHEN quote_ident(table_schema) IN ({SUBQUERY}) THEN 0 END"
        );
        let resolved = resolve(&sql, "\"$user\", public", "ac'me");
        assert_eq!(
            resolved,
            "SELECT CASE WHEN quote_ident(table_schema) IN (\n  'ac''me', 'public'\n) THEN 1 ELSE 2 \
             END, 'é' FROM t ORDER BY CASE WHEN quote_ident(table_schema) IN ('ac''me', 'public') \
             THEN 0 END"
        );
        let other = "SELECT current_setting('search_path')";
        assert!(matches!(resolve(other, "public", "u"), Cow::Borrowed(_)));
    }
}
