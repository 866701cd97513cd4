//! `requires_approval(policy_document, tool_name)`: whether a tool call needs a human approval,
//! per the policy snapshot in force or the operator's rule list (`--approval-required`).
//!
//! A policy document is JSON naming the gated tools in any of these forms (names may use `*`
//! as a wildcard):
//!
//! ```json
//! {"requires_approval": ["issue_refund", "delete_*"]}
//! {"approval_required": ["issue_refund"]}
//! {"tools": {"issue_refund": {"requires_approval": true}}}
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::datatypes::DataType;
use datafusion::common::cast::as_string_array;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

/// Whether `name` matches `pattern`, where `*` matches any run of characters.
pub fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The tool patterns a policy document gates.
pub fn gated_tools(document: &str) -> Vec<String> {
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(document) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for key in ["requires_approval", "approval_required"] {
        if let Some(Value::Array(list)) = doc.get(key) {
            out.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
        }
    }
    if let Some(Value::Object(tools)) = doc.get("tools") {
        for (name, rule) in tools {
            if rule.get("requires_approval").and_then(Value::as_bool) == Some(true) {
                out.push(name.clone());
            }
        }
    }
    out
}

/// The name SQL calls it by.
pub const REQUIRES_APPROVAL: &str = "requires_approval";

/// The `requires_approval` function, with `rules` applying to every tool call.
pub fn requires_approval_udf(rules: Arc<Vec<String>>) -> ScalarUDF {
    ScalarUDF::new_from_impl(RequiresApproval {
        rules,
        signature: Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Immutable),
    })
}

/// `requires_approval`: its rules travel with distributed plans ([`Self::rules`]).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RequiresApproval {
    rules: Arc<Vec<String>>,
    signature: Signature,
}

impl RequiresApproval {
    /// The operator's rules (`--approval-required`) this function applies.
    pub fn rules(&self) -> &[String] {
        &self.rules
    }

    fn evaluate(&self, args: &[ColumnarValue]) -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let documents = as_string_array(&arrays[0])?;
        let tools = arrays[1].as_string::<i32>();
        let mut parsed: HashMap<&str, Vec<String>> = HashMap::new();
        let out: BooleanArray = (0..tools.len())
            .map(|i| {
                if tools.is_null(i) {
                    return Some(false);
                }
                let tool = tools.value(i);
                if self.rules.iter().any(|p| matches(p, tool)) {
                    return Some(true);
                }
                if documents.is_null(i) {
                    return Some(false);
                }
                let gated = parsed
                    .entry(documents.value(i))
                    .or_insert_with_key(|d| gated_tools(d));
                Some(gated.iter().any(|p| matches(p, tool)))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}

impl ScalarUDFImpl for RequiresApproval {
    fn name(&self) -> &str {
        REQUIRES_APPROVAL
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        self.evaluate(&args.args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_document_forms() {
        assert!(matches("issue_refund", "issue_refund"));
        assert!(!matches("issue_refund", "issue_refunds"));
        assert!(matches("delete_*", "delete_customer"));
        assert!(matches("*_customer", "delete_customer"));
        assert!(matches("d*e*r", "delete_customer"));
        assert!(!matches("d*x*r", "delete_customer"));
        assert!(matches("*", "anything"));
        assert_eq!(
            gated_tools(
                r#"{"requires_approval": ["a", "b*"], "tools": {"c": {"requires_approval": true}, "d": {}}}"#
            ),
            ["a", "b*", "c"]
        );
        assert!(gated_tools("not json").is_empty());
    }
}
