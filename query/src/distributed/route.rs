//! Where a user's statement runs: in this process, or on the Ballista cluster.
//!
//! Without a scheduler every statement runs here. With one, `--distribute` decides:
//! `local` and `distributed` send every statement one way; `auto` plans the statement here and
//! sends it to the cluster when its scans would read more than `--distribute-above` bytes of
//! stored files — so lookups by id and run-scoped answers, which the trace index narrows to a
//! few files, stay here. A statement's hint, `/*+ DISTRIBUTED */` or `/*+ LOCAL */`, wins over
//! the flag. The API's own answers (trails, lineage, replay) always run here.

use std::sync::Arc;

use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// Where statements run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Placement {
    /// On the cluster when the scans are large, here otherwise.
    Auto,
    /// Here.
    Local,
    /// On the cluster.
    Distributed,
}

impl Placement {
    /// The label of this placement in metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Placement::Auto => "auto",
            Placement::Local => "local",
            Placement::Distributed => "distributed",
        }
    }
}

/// The placement `sql`'s hint comment asks for: `/*+ DISTRIBUTED */` or `/*+ LOCAL */`
/// (any case, anywhere a comment may be; the last one wins). Text in literals is not a hint.
pub fn hint(sql: &str) -> Option<Placement> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    let mut found = None;
    for token in tokens {
        let Token::Whitespace(Whitespace::MultiLineComment(text)) = token else {
            continue;
        };
        let Some(words) = text.trim_start().strip_prefix('+') else {
            continue;
        };
        for word in words.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
            if word.eq_ignore_ascii_case("distributed") {
                found = Some(Placement::Distributed);
            } else if word.eq_ignore_ascii_case("local") {
                found = Some(Placement::Local);
            }
        }
    }
    found
}

/// `sql` with `placement`'s hint in front, for a statement taken out of a text whose comments
/// did not survive (the Postgres wire re-renders each statement of a query string).
pub fn with_hint(sql: String, placement: Option<Placement>) -> String {
    match placement {
        Some(Placement::Local) => format!("/*+ LOCAL */ {sql}"),
        Some(Placement::Distributed) => format!("/*+ DISTRIBUTED */ {sql}"),
        Some(Placement::Auto) | None => sql,
    }
}

/// Bytes of stored files the scans of `plan` read (before pruning within files).
pub fn scanned_bytes(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![Arc::clone(plan)];
    while let Some(node) = stack.pop() {
        stack.extend(node.children().into_iter().cloned());
        let Some(scan) = node.downcast_ref::<DataSourceExec>() else {
            continue;
        };
        let Some(files) = scan.data_source().downcast_ref::<FileScanConfig>() else {
            continue;
        };
        total += (files.file_groups.iter())
            .flat_map(|group| group.files())
            .map(|file| file.object_meta.size)
            .sum::<u64>();
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_comments_not_text() {
        assert_eq!(hint("SELECT 1"), None);
        assert_eq!(
            hint("SELECT /*+ DISTRIBUTED */ count(*) FROM spans"),
            Some(Placement::Distributed)
        );
        assert_eq!(hint("/*+local*/ SELECT 1"), Some(Placement::Local));
        assert_eq!(
            hint("SELECT 1 /*+ distributed */ /*+ LOCAL */"),
            Some(Placement::Local)
        );
        // Not hints: a plain comment, a literal, a line comment.
        assert_eq!(hint("SELECT 1 /* distributed */"), None);
        assert_eq!(hint("SELECT '/*+ DISTRIBUTED */'"), None);
        assert_eq!(hint("SELECT 1 -- +DISTRIBUTED"), None);
        assert_eq!(hint("SELECT 1 /*+ DISTRIBUTEDX */"), None);
        for placement in [Placement::Local, Placement::Distributed] {
            let sql = with_hint("SELECT 1".into(), Some(placement));
            assert_eq!(hint(&sql), Some(placement), "{sql}");
        }
        assert_eq!(with_hint("SELECT 1".into(), None), "SELECT 1");
    }
}
