//! What the unit tests of this crate build their requests from.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};

/// A string attribute.
pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}
