//! `histogram_over_time(x)`: the power-of-two bucket of each span's value, as Tempo buckets it
//! (`Log2Bucketize`): the smallest power of two at least the value, in seconds for durations.
//! Values below 2 (and values that are not integers or durations) fall in no bucket, and their
//! spans are not counted.

use super::ast::Attr;
use super::attrs::{target, Target, ValueType};
use super::metrics::not_numeric;
use super::sql::map_value;
use crate::Result;

/// The label Tempo gives the bucket's upper bound.
pub const BUCKET_LABEL: &str = "__bucket";

/// SQL for the upper bound of `attr`'s bucket (a `DOUBLE`), `NULL` where it has none.
pub fn log2_bucket(attr: &Attr) -> Result<String> {
    let (value, seconds) = match target(attr) {
        Target::Column(column, ValueType::Duration) => (format!("CAST({column} AS DOUBLE)"), true),
        Target::Column(column, ValueType::Int) => (format!("CAST({column} AS DOUBLE)"), false),
        Target::Column(_, ValueType::Float) => return Ok("CAST(NULL AS DOUBLE)".to_owned()),
        Target::Column(..) => return Err(not_numeric(attr)),
        Target::Map(scope, key) => {
            let (v, t) = map_value(scope, &key);
            (
                format!("CASE WHEN {t} = 'int' THEN TRY_CAST({v} AS DOUBLE) END"),
                false,
            )
        }
    };
    let bound = ceil_pow2(&value);
    Ok(if seconds {
        format!("CASE WHEN {value} >= 2 THEN {bound} / 1e9 END")
    } else {
        format!("CASE WHEN {value} >= 2 THEN {bound} END")
    })
}

/// The smallest power of two at least `v` (> 0): `2^ceil(log2 v)`, corrected by one step where
/// the logarithm rounds across an integer (values just above a large power of two).
fn ceil_pow2(v: &str) -> String {
    let e = format!("ceil(log2({v}))");
    format!(
        "CASE WHEN power(2.0, {e} - 1) >= {v} THEN power(2.0, {e} - 1) \
         WHEN power(2.0, {e}) < {v} THEN power(2.0, {e} + 1) \
         ELSE power(2.0, {e}) END"
    )
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, Float64Array};
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::traceql::ast::{Intrinsic, Scope};

    async fn buckets(attr: &Attr, values: &[i64]) -> Vec<Option<f64>> {
        let rows: Vec<String> = values.iter().map(|v| format!("({v})")).collect();
        let column = match target(attr) {
            Target::Column(c, _) => c,
            Target::Map(..) => unreachable!(),
        };
        let sql = format!(
            "SELECT {} AS b FROM (VALUES {}) AS t({column})",
            log2_bucket(attr).unwrap(),
            rows.join(", ")
        );
        let batches = SessionContext::new()
            .sql(&sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut out = Vec::new();
        for batch in batches {
            let b = batch
                .column(0)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap();
            out.extend((0..b.len()).map(|i| b.is_valid(i).then(|| b.value(i))));
        }
        out
    }

    #[tokio::test]
    async fn traceql_histogram_buckets_are_tempos_log2_buckets() {
        let duration = Attr::Intrinsic(Intrinsic::Duration);
        let big = 1_i64 << 50;
        let got = buckets(
            &duration,
            &[0, 1, 2, 3, 4, 5, 300_000_000, big, big + 1, big - 1],
        )
        .await;
        let seconds = |e: i32| Some(2f64.powi(e) / 1e9);
        assert_eq!(
            got,
            [
                None,
                None,
                seconds(1),
                seconds(2),
                seconds(2),
                seconds(3),
                seconds(29),
                seconds(50),
                seconds(51),
                seconds(50),
            ]
        );
        let tokens = Attr::Named(Scope::Span, "gen_ai.usage.input_tokens".into());
        let got = buckets(&tokens, &[1, 2, 7, 8, 9, 1000]).await;
        assert_eq!(
            got,
            [
                None,
                Some(2.0),
                Some(8.0),
                Some(8.0),
                Some(16.0),
                Some(1024.0)
            ]
        );
        let cost = Attr::Named(Scope::Span, "agent_trail.cost".into());
        assert_eq!(log2_bucket(&cost).unwrap(), "CAST(NULL AS DOUBLE)");
        let name = Attr::Intrinsic(Intrinsic::Name);
        assert!(log2_bucket(&name).is_err());
    }
}
