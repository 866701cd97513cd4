//! Attribute lists ↔ a pair of Arrow maps.
//!
//! `attributes` maps each key to its value rendered as text (strings as they are, numbers and
//! booleans in their canonical text form, bytes as hex, arrays and key-value lists as OTLP JSON),
//! which is what SQL users filter on: `attributes['gen_ai.request.model']`. `attribute_types`
//! records the OTLP type of every value that is not a string, so the original typed value can be
//! rebuilt exactly. Both maps keep the order in which attributes were sent.

use arrow::array::{Array, MapArray, MapBuilder, StringArray, StringBuilder};
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, KeyValue, KeyValueList,
};

use crate::{Error, Result};

/// Builder type of one attribute map column.
pub type AttrMapBuilder = MapBuilder<StringBuilder, StringBuilder>;

/// Renders a value as (text, type tag); the tag is `None` for strings.
pub fn render(value: Option<&Value>) -> (Option<String>, Option<&'static str>) {
    let text = match value {
        Some(Value::StringValue(s)) => Some(s.clone()),
        Some(Value::BoolValue(b)) => Some(b.to_string()),
        Some(Value::IntValue(i)) => Some(i.to_string()),
        Some(Value::DoubleValue(d)) => Some(d.to_string()),
        Some(Value::BytesValue(b)) => Some(hex::encode(b)),
        Some(Value::ArrayValue(a)) => serde_json::to_string(a).ok(),
        Some(Value::KvlistValue(kv)) => serde_json::to_string(kv).ok(),
        Some(Value::StringValueStrindex(i)) => Some(i.to_string()),
        None => None,
    };
    (text, type_tag(value))
}

/// Inverse of [`render`].
pub fn parse(text: Option<&str>, tag: Option<&str>) -> Result<Option<Value>> {
    let bad =
        |what: &str| Error::Corrupt(format!("attribute value {text:?} is not a valid {what}"));
    let Some(text) = text else {
        return Ok(None);
    };
    Ok(Some(match tag {
        None | Some("string") => Value::StringValue(text.to_owned()),
        Some("bool") => Value::BoolValue(text.parse().map_err(|_| bad("bool"))?),
        Some("int") => Value::IntValue(text.parse().map_err(|_| bad("int"))?),
        Some("double") => Value::DoubleValue(text.parse().map_err(|_| bad("double"))?),
        Some("bytes") => Value::BytesValue(hex::decode(text).map_err(|_| bad("bytes"))?),
        Some("array") => {
            Value::ArrayValue(serde_json::from_str::<ArrayValue>(text).map_err(|_| bad("array"))?)
        }
        Some("kvlist") => Value::KvlistValue(
            serde_json::from_str::<KeyValueList>(text).map_err(|_| bad("kvlist"))?,
        ),
        Some("strindex") => Value::StringValueStrindex(text.parse().map_err(|_| bad("strindex"))?),
        Some("empty") => return Ok(None),
        Some(other) => return Err(Error::Corrupt(format!("unknown attribute type {other:?}"))),
    }))
}

/// A new, empty attribute map builder.
pub fn new_map_builder() -> AttrMapBuilder {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

/// Appends one row of attribute values (the `attributes` map).
pub fn append_values(values: &mut AttrMapBuilder, attrs: &[KeyValue]) {
    for kv in attrs {
        let (text, _) = render(kv.value.as_ref().and_then(|v| v.value.as_ref()));
        values.keys().append_value(&kv.key);
        values.values().append_option(text);
    }
    values
        .append(true)
        .expect("keys and values appended in pairs");
}

/// Appends one row of attribute types (the `attribute_types` map): non-string values only.
pub fn append_types(types: &mut AttrMapBuilder, attrs: &[KeyValue]) {
    append_types_tagged(types, attrs, |_| None);
}

/// Like [`append_types`], with `tag(i)` overriding the type of attribute `i` (payload references).
pub fn append_types_tagged(
    types: &mut AttrMapBuilder,
    attrs: &[KeyValue],
    tag: impl Fn(usize) -> Option<&'static str>,
) {
    for (i, kv) in attrs.iter().enumerate() {
        let t = tag(i).or_else(|| type_tag(kv.value.as_ref().and_then(|v| v.value.as_ref())));
        if let Some(tag) = t {
            types.keys().append_value(&kv.key);
            types.values().append_value(tag);
        }
    }
    types
        .append(true)
        .expect("keys and values appended in pairs");
}

/// The type tag of a value; `None` for strings.
fn type_tag(value: Option<&Value>) -> Option<&'static str> {
    match value {
        Some(Value::StringValue(_)) => None,
        Some(Value::BoolValue(_)) => Some("bool"),
        Some(Value::IntValue(_)) => Some("int"),
        Some(Value::DoubleValue(_)) => Some("double"),
        Some(Value::BytesValue(_)) => Some("bytes"),
        Some(Value::ArrayValue(_)) => Some("array"),
        Some(Value::KvlistValue(_)) => Some("kvlist"),
        Some(Value::StringValueStrindex(_)) => Some("strindex"),
        None => Some("empty"),
    }
}

/// Reads row `row` of a value map and its type map back into typed attributes, restoring
/// payload references from `contents`.
pub fn read(
    values: &MapArray,
    types: &MapArray,
    row: usize,
    resolver: &crate::payload::Resolver<'_>,
) -> Result<Vec<KeyValue>> {
    let entries = |m: &MapArray| -> Result<(StringArray, StringArray)> {
        let e = m.value(row);
        let key = e.column(0).as_any().downcast_ref::<StringArray>().cloned();
        let val = e.column(1).as_any().downcast_ref::<StringArray>().cloned();
        key.zip(val)
            .ok_or_else(|| Error::Corrupt("attribute map is not string to string".into()))
    };
    let (keys, vals) = entries(values)?;
    let (type_keys, type_vals) = entries(types)?;
    let mut next_type = 0;
    let mut out = Vec::with_capacity(keys.len());
    for i in 0..keys.len() {
        let key = keys.value(i);
        let tag = if next_type < type_keys.len() && type_keys.value(next_type) == key {
            next_type += 1;
            Some(type_vals.value(next_type - 1))
        } else {
            None
        };
        let text = vals.is_valid(i).then(|| vals.value(i));
        let value = match (text, tag) {
            (Some(t), Some(tag)) if crate::payload::is_payload_tag(tag) => {
                Some(Value::StringValue(resolver.restore(key, t, tag)?))
            }
            _ => parse(text, tag)?,
        };
        out.push(KeyValue {
            key: key.to_owned(),
            value: value.map(|v| AnyValue { value: Some(v) }),
            ..Default::default()
        });
    }
    Ok(out)
}

/// Payload hashes referenced by row `row` of a value map and its type map.
pub fn payload_refs(
    values: &MapArray,
    types: &MapArray,
    row: usize,
    out: &mut std::collections::HashSet<String>,
) {
    let (t, v) = (types.value(row), values.value(row));
    let (Some(tk), Some(tv)) = (
        t.column(0).as_any().downcast_ref::<StringArray>(),
        t.column(1).as_any().downcast_ref::<StringArray>(),
    ) else {
        return;
    };
    let (Some(vk), Some(vv)) = (
        v.column(0).as_any().downcast_ref::<StringArray>(),
        v.column(1).as_any().downcast_ref::<StringArray>(),
    ) else {
        return;
    };
    // Types are kept in attribute order for the values that have one: pair them as [`read`]
    // does, in one pass (a search per type would be quadratic in the attributes of a row).
    let mut next_type = 0;
    for j in 0..vk.len() {
        if next_type >= tk.len() {
            break;
        }
        if vk.value(j) != tk.value(next_type) {
            continue;
        }
        let tag = tv.value(next_type);
        next_type += 1;
        if crate::payload::is_payload_tag(tag) && vv.is_valid(j) && !vv.value(j).is_empty() {
            out.extend(crate::payload::hashes_of(vv.value(j), tag));
        }
    }
}

/// The string value of `key`, if present and a string.
pub fn find_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, v: Option<Value>) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: v }),
            ..Default::default()
        }
    }

    #[test]
    fn every_type_round_trips() {
        let attrs = vec![
            kv("s", Some(Value::StringValue("hello".into()))),
            kv("s_looks_int", Some(Value::StringValue("42".into()))),
            kv("b", Some(Value::BoolValue(true))),
            kv("i", Some(Value::IntValue(-9_007_199_254_740_993))),
            kv("d", Some(Value::DoubleValue(0.1 + 0.2))),
            kv("nan", Some(Value::DoubleValue(f64::INFINITY))),
            kv("bytes", Some(Value::BytesValue(vec![0, 1, 255]))),
            kv(
                "arr",
                Some(Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(Value::IntValue(1)),
                        },
                        AnyValue {
                            value: Some(Value::StringValue("x".into())),
                        },
                    ],
                })),
            ),
            kv(
                "kv",
                Some(Value::KvlistValue(KeyValueList {
                    values: vec![kv("inner", Some(Value::BoolValue(false)))],
                })),
            ),
            kv("dup", Some(Value::IntValue(1))),
            kv("dup", Some(Value::StringValue("1".into()))),
            kv("empty", None),
        ];
        let mut values = new_map_builder();
        let mut types = new_map_builder();
        append_values(&mut values, &attrs);
        append_types(&mut types, &attrs);
        append_values(&mut values, &[]);
        append_types(&mut types, &[]);
        let (values, types) = (values.finish(), types.finish());
        let contents = crate::payload::Contents::new();
        let none = crate::payload::Resolver {
            contents: &contents,
            lists: &|_| None,
        };
        let back = read(&values, &types, 0, &none).unwrap();
        let expected: Vec<KeyValue> = attrs
            .into_iter()
            .map(|a| KeyValue {
                value: a.value.filter(|v| v.value.is_some()),
                ..a
            })
            .collect();
        assert_eq!(back, expected);
        assert!(read(&values, &types, 1, &none).unwrap().is_empty());
    }

    #[test]
    fn payload_references_are_found_in_one_pass_as_read_pairs_them() {
        use crate::payload::{TAG_LIST, TAG_ONE};
        let n = 50_000;
        let attrs: Vec<KeyValue> = (0..n)
            .map(|i| kv(&format!("p.{i}"), Some(Value::StringValue(format!("h{i}")))))
            .chain([
                kv("list", Some(Value::StringValue(r#"["l1","l2"]"#.into()))),
                kv("n", Some(Value::IntValue(1))),
                kv("in_column", Some(Value::StringValue(String::new()))),
            ])
            .collect();
        let mut values = new_map_builder();
        let mut types = new_map_builder();
        append_values(&mut values, &attrs);
        append_types_tagged(&mut types, &attrs, |i| match i {
            i if i < n => Some(TAG_ONE),
            i if i == n => Some(TAG_LIST),
            i if i == n + 2 => Some(TAG_LIST),
            _ => None,
        });
        let (values, types) = (values.finish(), types.finish());
        let mut found = std::collections::HashSet::new();
        payload_refs(&values, &types, 0, &mut found);
        assert_eq!(found.len(), n + 2);
        assert!(found.contains("h0") && found.contains(&format!("h{}", n - 1)));
        assert!(found.contains("l1") && found.contains("l2"));
        // Every reference found is one that reading restores.
        let contents: crate::payload::Contents = found
            .iter()
            .map(|h| (h.clone(), format!("<{h}>")))
            .collect();
        let resolver = crate::payload::Resolver {
            contents: &contents,
            lists: &|_| Some(Vec::new()),
        };
        let back = read(&values, &types, 0, &resolver).unwrap();
        assert_eq!(back.len(), n + 3);
        assert_eq!(
            back[7].value.as_ref().unwrap().value,
            Some(Value::StringValue("<h7>".into()))
        );
        assert_eq!(
            back[n].value.as_ref().unwrap().value,
            Some(Value::StringValue("[<l1>,<l2>]".into()))
        );
    }
}
