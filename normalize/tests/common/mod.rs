//! Helpers shared by the schema tests.

use cairn_normalize::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};

/// An attribute with a typed value.
pub fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}
