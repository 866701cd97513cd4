//! Postgres functions clients call that neither DataFusion nor datafusion-pg-catalog has:
//! `current_setting(name [, missing_ok])`, answering from the server parameters clients are
//! told at startup ([`super::auth::parameters`]), so that e.g. Grafana's version probe
//! `current_setting('server_version_num')::int/100` reads `1600`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::cast::{as_boolean_array, as_string_array};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion_postgres::pgwire::api::auth::DefaultServerParameterProvider;

/// `current_setting`, answering from `settings` (names compared case-insensitively).
pub fn current_setting(settings: HashMap<String, String>) -> ScalarUDF {
    ScalarUDF::new_from_impl(CurrentSetting {
        settings: settings
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Utf8]),
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
            ],
            Volatility::Stable,
        ),
    })
}

/// The settings `current_setting` knows: those clients are told at startup, and
/// `server_version_num` derived from `server_version` (`16.6-…` → `160006`).
pub fn settings(p: &DefaultServerParameterProvider) -> HashMap<String, String> {
    let on = |b: bool| if b { "on" } else { "off" }.to_owned();
    let version = p
        .server_version
        .split(['-', ' '])
        .next()
        .unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    HashMap::from([
        ("server_version".into(), version.to_owned()),
        (
            "server_version_num".into(),
            (major * 10_000 + minor).to_string(),
        ),
        ("server_encoding".into(), p.server_encoding.clone()),
        (
            "client_encoding".into(),
            p.client_encoding.clone().unwrap_or_else(|| "UTF8".into()),
        ),
        ("search_path".into(), p.search_path.clone()),
        ("timezone".into(), p.time_zone.clone()),
        ("datestyle".into(), p.date_style.clone()),
        ("intervalstyle".into(), p.interval_style.clone()),
        ("integer_datetimes".into(), on(p.integer_datetimes)),
        (
            "standard_conforming_strings".into(),
            on(p.standard_conforming_strings),
        ),
        (
            "default_transaction_read_only".into(),
            on(p.default_transaction_read_only),
        ),
        (
            "transaction_read_only".into(),
            on(p.default_transaction_read_only),
        ),
        ("is_superuser".into(), on(p.is_superuser)),
        ("max_identifier_length".into(), "63".into()),
    ])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    settings: Vec<(String, String)>,
    signature: Signature,
}

impl CurrentSetting {
    fn get(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        (self.settings.iter())
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = as_string_array(&arrays[0])?;
        let missing_ok = arrays.get(1).map(|a| as_boolean_array(a)).transpose()?;
        let mut values = Vec::with_capacity(rows);
        for row in 0..names.len() {
            if names.is_null(row) {
                values.push(None);
                continue;
            }
            let name = names.value(row);
            match self.get(name) {
                Some(value) => values.push(Some(value)),
                None if missing_ok.is_some_and(|m| m.is_valid(row) && m.value(row)) => {
                    values.push(None)
                }
                None => return exec_err!("unrecognized configuration parameter \"{name}\""),
            }
        }
        let array: ArrayRef = Arc::new(StringArray::from(values));
        Ok(ColumnarValue::Array(array))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    #[tokio::test]
    async fn settings_clients_ask_for() {
        let ctx = SessionContext::new();
        ctx.register_udf(current_setting(settings(&crate::pg::auth::parameters())));
        let sql = "SELECT current_setting('server_version_num')::int/100 AS version, \
                   current_setting('search_path') AS p, current_setting('TimeZone') AS tz, \
                   current_setting('nope', true) AS missing";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(text.contains("| 1600    | \"$user\", public |"), "{text}");
        let err = ctx
            .sql("SELECT current_setting('nope')")
            .await
            .unwrap()
            .collect()
            .await;
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("unrecognized configuration parameter"));
    }
}
