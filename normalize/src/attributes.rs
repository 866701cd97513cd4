//! Attribute lists ↔ a pair of Arrow maps.
//!
//! `attributes` maps each key to its value rendered as text (strings as they are, numbers and
//! booleans in their canonical text form, bytes as hex, arrays and key-value lists as OTLP JSON),
//! which is what SQL users filter on: `attributes['gen_ai.request.model']`. `attribute_types`
//! records the OTLP type of every value that is not a string, so the original typed value can be
//! rebuilt exactly. Both maps keep the order in which attributes were sent.
//!
//! Type entries are matched to values in order, by key. A key that occurs more than once in one
//! list (OTLP forbids it, but it is sent) has a type entry for every occurrence, `string`
//! included, so that each value gets its own type back.
//!
//! Arrays and key-value lists are stored as OTLP JSON and parsed back with `serde_json`, whose
//! parser refuses more than 127 nested levels; [`check_nesting`] keeps what is accepted at ingest
//! well below that ([`MAX_VALUE_NESTING`]).

use foldhash::{HashSet, HashSetExt};

use arrow::array::{Array, MapArray, StringArray};
pub use cairn_schema::columns::{new_map_builder, AttrMapBuilder};
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, KeyValue, KeyValueList,
};

use crate::{Error, Result};

/// Deepest nesting of arrays and key-value lists accepted in one attribute value (a scalar is
/// 0 deep, an array of scalars 1, an array of arrays 2, …), for span, event, link, resource and
/// scope attributes alike.
///
/// Such values are stored as OTLP JSON, where one array level costs 3 JSON levels
/// (`{"values":[{"arrayValue":…}]}`: the array object, its `values` list, the element object) and
/// one key-value list level 4 (list object, `values` list, key-value object, value object). At
/// 24 levels the stored text is at most 96 JSON levels deep and the same value inside the trace
/// API's OTLP JSON document at most 108 — both below the 127 that `serde_json` (and clients with
/// its default limit) parse, so whatever is accepted can always be read back.
///
/// A client that sends a deeper value sees its span rejected in the OTLP partial success:
/// `span "NAME": invalid input: attribute "KEY" nests arrays and key-value lists more than 24
/// deep` (`event attribute`, `link attribute`, `resource attribute`, `scope attribute` for the
/// others; a resource or scope attribute rejects every span under it).
pub const MAX_VALUE_NESTING: usize = 24;

/// How deep arrays and key-value lists nest in `value` (0 for a scalar or no value). Iterative,
/// so any depth is measured without recursion.
pub fn nesting(value: Option<&Value>) -> usize {
    fn container(v: Option<&Value>) -> Option<&Value> {
        v.filter(|v| matches!(v, Value::ArrayValue(_) | Value::KvlistValue(_)))
    }
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = container(value).map(|v| (v, 1)).into_iter().collect();
    while let Some((value, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match value {
            Value::ArrayValue(a) => stack.extend(
                a.values
                    .iter()
                    .filter_map(|v| container(v.value.as_ref()))
                    .map(|v| (v, depth + 1)),
            ),
            Value::KvlistValue(kv) => stack.extend(
                kv.values
                    .iter()
                    .filter_map(|kv| container(kv.value.as_ref().and_then(|v| v.value.as_ref())))
                    .map(|v| (v, depth + 1)),
            ),
            _ => {}
        }
    }
    deepest
}

/// Checks that no value of `attrs` nests deeper than [`MAX_VALUE_NESTING`]; `what` names the
/// list in the error (`attribute`, `event attribute`, …).
pub fn check_nesting(what: &str, attrs: &[KeyValue]) -> Result<()> {
    for kv in attrs {
        let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
        if matches!(value, Some(Value::ArrayValue(_) | Value::KvlistValue(_)))
            && nesting(value) > MAX_VALUE_NESTING
        {
            return Err(Error::InvalidInput(format!(
                "{what} {:?} nests arrays and key-value lists more than {MAX_VALUE_NESTING} deep",
                clip(&kv.key)
            )));
        }
    }
    Ok(())
}

/// At most the first 100 characters of `text`, for quoting client input in messages.
pub fn clip(text: &str) -> &str {
    match text.char_indices().nth(100) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Renders a value as (text, type tag); the tag is `None` for strings.
pub fn render(value: Option<&Value>) -> (Option<String>, Option<&'static str>) {
    let text = match value {
        Some(Value::StringValue(s)) => Some(s.clone()),
        Some(Value::BoolValue(b)) => Some(b.to_string()),
        Some(Value::IntValue(i)) => Some(i.to_string()),
        Some(Value::DoubleValue(d)) => Some(d.to_string()),
        Some(Value::BytesValue(b)) => Some(hex::encode(b)),
        // Only values checked by `check_nesting` reach here from ingest, so the recursive
        // serialiser stays shallow.
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
        Some("array") => match serde_json::from_str::<ArrayValue>(text) {
            Ok(a) => Value::ArrayValue(a),
            Err(e) if too_deep(&e) => Value::StringValue(text.to_owned()),
            Err(_) => return Err(bad("array")),
        },
        Some("kvlist") => match serde_json::from_str::<KeyValueList>(text) {
            Ok(kv) => Value::KvlistValue(kv),
            Err(e) if too_deep(&e) => Value::StringValue(text.to_owned()),
            Err(_) => return Err(bad("kvlist")),
        },
        Some("strindex") => Value::StringValueStrindex(text.parse().map_err(|_| bad("strindex"))?),
        Some("empty") => return Ok(None),
        Some(other) => return Err(Error::Corrupt(format!("unknown attribute type {other:?}"))),
    }))
}

/// Did parsing fail on `serde_json`'s nesting limit? Only values stored before ingest checked
/// [`MAX_VALUE_NESTING`] can be that deep; they are read back as their JSON text rather than
/// failing the whole read.
fn too_deep(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("recursion limit exceeded")
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
/// Every occurrence of a repeated key gets an entry, `string` included.
pub fn append_types_tagged(
    types: &mut AttrMapBuilder,
    attrs: &[KeyValue],
    tag: impl Fn(usize) -> Option<&'static str>,
) {
    let repeated = repeated_keys(attrs);
    for (i, kv) in attrs.iter().enumerate() {
        let t = tag(i)
            .or_else(|| type_tag(kv.value.as_ref().and_then(|v| v.value.as_ref())))
            .or_else(|| repeated.contains(kv.key.as_str()).then_some("string"));
        if let Some(tag) = t {
            types.keys().append_value(&kv.key);
            types.values().append_value(tag);
        }
    }
    types
        .append(true)
        .expect("keys and values appended in pairs");
}

/// Keys that occur more than once in `attrs` (empty, without allocating, when none does).
fn repeated_keys(attrs: &[KeyValue]) -> HashSet<&str> {
    let mut repeated = HashSet::new();
    if attrs.len() <= 16 {
        for (i, kv) in attrs.iter().enumerate() {
            if attrs[..i].iter().any(|earlier| earlier.key == kv.key) {
                repeated.insert(kv.key.as_str());
            }
        }
    } else {
        let mut seen = HashSet::with_capacity(attrs.len());
        for kv in attrs {
            if !seen.insert(kv.key.as_str()) {
                repeated.insert(kv.key.as_str());
            }
        }
    }
    repeated
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
    let tags = aligned_tags(&keys, &type_keys, &type_vals);
    let mut out = Vec::with_capacity(keys.len());
    for (i, tag) in tags.into_iter().enumerate() {
        let key = keys.value(i);
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

/// The type tag of each value entry: type entries follow the values' order and are matched by
/// key, one per value at most (every occurrence of a repeated key has one).
fn aligned_tags<'a>(
    keys: &StringArray,
    type_keys: &StringArray,
    type_vals: &'a StringArray,
) -> Vec<Option<&'a str>> {
    let mut next_type = 0;
    (0..keys.len())
        .map(|i| {
            if next_type < type_keys.len() && type_keys.value(next_type) == keys.value(i) {
                next_type += 1;
                Some(type_vals.value(next_type - 1))
            } else {
                None
            }
        })
        .collect()
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
    for (j, tag) in aligned_tags(vk, tk, tv).into_iter().enumerate() {
        match tag {
            Some(tag)
                if crate::payload::is_payload_tag(tag)
                    && vv.is_valid(j)
                    && !vv.value(j).is_empty() =>
            {
                out.extend(crate::payload::hashes_of(vv.value(j), tag));
            }
            _ => {}
        }
    }
}

/// Writes `attrs` as one row of an attribute map pair and reads it back: the stored form's round
/// trip, without payload extraction. For tests and fuzz targets.
pub fn round_trip(attrs: &[KeyValue]) -> Result<Vec<KeyValue>> {
    let mut values = new_map_builder();
    let mut types = new_map_builder();
    append_values(&mut values, attrs);
    append_types(&mut types, attrs);
    let (values, types) = (values.finish(), types.finish());
    let contents = crate::payload::Contents::new();
    let resolver = crate::payload::Resolver {
        contents: &contents,
        in_column: &|_| None,
    };
    read(&values, &types, 0, &resolver)
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
            in_column: &|_| None,
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

    /// What a stored value reads back as: an empty `AnyValue` has no value.
    fn normalised(attrs: &[KeyValue]) -> Vec<KeyValue> {
        attrs
            .iter()
            .cloned()
            .map(|a| KeyValue {
                value: a.value.filter(|v| v.value.is_some()),
                ..a
            })
            .collect()
    }

    fn typed_values() -> Vec<Option<Value>> {
        vec![
            Some(Value::StringValue("1".into())),
            Some(Value::IntValue(1)),
            Some(Value::DoubleValue(1.0)),
            Some(Value::BoolValue(true)),
            Some(Value::BytesValue(vec![1])),
            Some(Value::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(Value::StringValue("1".into())),
                }],
            })),
            Some(Value::KvlistValue(KeyValueList {
                values: vec![kv("1", Some(Value::IntValue(1)))],
            })),
            Some(Value::StringValue("true".into())),
            None,
        ]
    }

    /// Every permutation of `items`.
    fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            for mut p in permutations(&rest) {
                p.insert(0, first.clone());
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn duplicate_keys_keep_their_own_types() {
        // The case that used to pair the int's type with the string.
        let attrs = vec![
            kv("dup", Some(Value::StringValue("1".into()))),
            kv("dup", Some(Value::IntValue(1))),
        ];
        assert_eq!(round_trip(&attrs).unwrap(), attrs);

        let values = typed_values();
        let mut cases = 0;
        // Every ordered pair and triple of typed values under one key, with other keys around.
        for a in &values {
            for b in &values {
                for c in [None, Some(&values[1]), Some(&values[0])] {
                    let mut attrs = vec![
                        kv("before", Some(Value::StringValue("x".into()))),
                        kv("dup", a.clone()),
                        kv("mid", Some(Value::IntValue(7))),
                        kv("dup", b.clone()),
                    ];
                    if let Some(c) = c {
                        attrs.push(kv("dup", c.clone()));
                    }
                    attrs.push(kv("after", Some(Value::StringValue("y".into()))));
                    assert_eq!(round_trip(&attrs).unwrap(), normalised(&attrs), "{attrs:?}");
                    cases += 1;
                }
            }
        }
        // Every permutation of five differently typed values of one key, and of two keys
        // repeated and interleaved.
        for p in permutations(&values[..5]) {
            let attrs: Vec<KeyValue> = p.into_iter().map(|v| kv("dup", v)).collect();
            assert_eq!(round_trip(&attrs).unwrap(), normalised(&attrs), "{attrs:?}");
            cases += 1;
        }
        let mixed = [
            ("a", values[0].clone()),
            ("a", values[1].clone()),
            ("b", values[0].clone()),
            ("b", values[3].clone()),
            ("a", values[8].clone()),
        ];
        for p in permutations(&mixed) {
            let attrs: Vec<KeyValue> = p.into_iter().map(|(k, v)| kv(k, v)).collect();
            assert_eq!(round_trip(&attrs).unwrap(), normalised(&attrs), "{attrs:?}");
            cases += 1;
        }
        assert_eq!(cases, 9 * 9 * 3 + 120 + 120);
    }

    #[test]
    fn repeated_keys_are_found_in_short_and_long_lists() {
        let short = [kv("a", None), kv("b", None), kv("a", None)];
        assert_eq!(repeated_keys(&short), HashSet::from_iter(["a"]));
        let long: Vec<KeyValue> = (0..40).map(|i| kv(&format!("k{}", i % 30), None)).collect();
        assert_eq!(repeated_keys(&long).len(), 10);
        assert!(repeated_keys(&long[..30]).is_empty());
        // Strings of unique keys still get no type entry: the stored form is unchanged.
        let mut types = new_map_builder();
        append_types(&mut types, &[kv("s", Some(Value::StringValue("x".into())))]);
        assert_eq!(types.finish().value(0).len(), 0);
    }

    /// A value nesting `depth` lists: key-value lists, arrays, or alternating.
    fn nested(depth: usize, shape: &str) -> Value {
        let mut v = Value::StringValue("leaf".into());
        for level in 0..depth {
            let kvlist = match shape {
                "kvlist" => true,
                "array" => false,
                _ => level % 2 == 0,
            };
            let inner = AnyValue { value: Some(v) };
            v = if kvlist {
                Value::KvlistValue(KeyValueList {
                    values: vec![KeyValue {
                        key: "k".into(),
                        value: Some(inner),
                        ..Default::default()
                    }],
                })
            } else {
                Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(Value::IntValue(1)),
                        },
                        inner,
                    ],
                })
            };
        }
        v
    }

    #[test]
    fn nesting_is_measured() {
        assert_eq!(nesting(None), 0);
        assert_eq!(nesting(Some(&Value::IntValue(1))), 0);
        assert_eq!(nesting(Some(&Value::ArrayValue(ArrayValue::default()))), 1);
        for shape in ["array", "kvlist", "mixed"] {
            for depth in [1, 2, 7, MAX_VALUE_NESTING] {
                assert_eq!(nesting(Some(&nested(depth, shape))), depth, "{shape}");
            }
        }
        // Far deeper than any recursion could go: measured iteratively. (The value is leaked:
        // dropping it would recurse.)
        let deep = nested(200_000, "mixed");
        assert_eq!(nesting(Some(&deep)), 200_000);
        let attrs = vec![kv("deep", Some(deep))];
        let e = check_nesting("attribute", &attrs).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid input: attribute \"deep\" nests arrays and key-value lists more than 24 deep"
        );
        std::mem::forget(attrs);
    }

    #[test]
    fn values_at_the_nesting_limit_read_back() {
        for shape in ["array", "kvlist", "mixed"] {
            let at = vec![kv("v", Some(nested(MAX_VALUE_NESTING, shape)))];
            check_nesting("attribute", &at).unwrap();
            assert_eq!(round_trip(&at).unwrap(), at, "{shape}");
            let past = vec![kv("v", Some(nested(MAX_VALUE_NESTING + 1, shape)))];
            assert!(check_nesting("attribute", &past).is_err(), "{shape}");
        }
        // The margin: a key-value list level costs 4 JSON levels, so 31 still parse and 32 (128
        // JSON levels) are past serde_json's limit — read back as their JSON text rather than
        // failing, as values stored before the check was made are.
        let margin = vec![kv("v", Some(nested(31, "kvlist")))];
        assert_eq!(round_trip(&margin).unwrap(), margin);
        let legacy = vec![kv("v", Some(nested(32, "kvlist")))];
        let (text, _) = render(legacy[0].value.as_ref().unwrap().value.as_ref());
        let back = round_trip(&legacy).unwrap();
        assert_eq!(
            back[0].value.as_ref().unwrap().value,
            Some(Value::StringValue(text.unwrap()))
        );
        assert!(
            parse(Some("[1"), Some("array")).is_err(),
            "other bad JSON is still an error"
        );
        // Arrays cost 3 JSON levels a level: 42 parse, 43 do not.
        let arrays = vec![kv("v", Some(nested(42, "array")))];
        assert_eq!(round_trip(&arrays).unwrap(), arrays);
        let arrays = vec![kv("v", Some(nested(43, "array")))];
        assert!(matches!(
            round_trip(&arrays).unwrap()[0]
                .value
                .as_ref()
                .unwrap()
                .value,
            Some(Value::StringValue(_))
        ));
    }

    #[test]
    fn clip_cuts_at_characters() {
        assert_eq!(clip("short"), "short");
        assert_eq!(clip(&"é".repeat(150)).chars().count(), 100);
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
            in_column: &|_| Some(Vec::new()),
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
