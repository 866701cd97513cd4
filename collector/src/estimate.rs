//! How much memory an export request will take once decoded, found without decoding it.
//!
//! A few bytes on the wire can become hundreds in memory (an empty span is 2 bytes of protobuf
//! or 3 of JSON, and a whole `Span` struct once decoded), so the admission rule charges this
//! estimate before the decoder allocates anything. Both walkers follow the OTLP trace schema
//! without recursion and count the messages the decoder would build; the estimate is the input
//! length (an upper bound for every string and byte field copied out of it) plus twice the
//! struct size of every message (vectors grow by doubling). A walk stops as soon as the
//! estimate passes `limit`.

use std::mem::size_of;

use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_normalize::otlp::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use cairn_normalize::otlp::resource::v1::Resource;
use cairn_normalize::otlp::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Nesting deeper than this is refused, as the protobuf decoder refuses it.
const MAX_DEPTH: usize = 100;

/// The outcome of a walk.
#[derive(Debug, PartialEq, Eq)]
pub enum Estimate {
    /// Bytes the decoded request will take.
    Bytes(usize),
    /// The estimate passed the limit; the walk stopped there.
    Exceeds(usize),
    /// The input is not a well-formed request.
    Invalid(String),
}

/// The OTLP trace messages that own memory once decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Request,
    ResourceSpans,
    Resource,
    EntityRef,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

impl Kind {
    fn size(self) -> usize {
        match self {
            Kind::Request => size_of::<ExportTraceServiceRequest>(),
            Kind::ResourceSpans => size_of::<ResourceSpans>(),
            Kind::Resource => size_of::<Resource>(),
            Kind::EntityRef => size_of::<EntityRef>(),
            Kind::ScopeSpans => size_of::<ScopeSpans>(),
            Kind::Scope => size_of::<InstrumentationScope>(),
            Kind::Span => size_of::<Span>(),
            Kind::Event => size_of::<span::Event>(),
            Kind::Link => size_of::<span::Link>(),
            Kind::Status => size_of::<Status>(),
            Kind::KeyValue => size_of::<KeyValue>(),
            Kind::AnyValue => size_of::<AnyValue>(),
            Kind::ArrayValue => size_of::<ArrayValue>(),
            Kind::KeyValueList => size_of::<KeyValueList>(),
        }
    }

    /// The message kind of protobuf field `number`, if it is a message field.
    fn field(self, number: u64) -> Option<Kind> {
        Some(match (self, number) {
            (Kind::Request, 1) => Kind::ResourceSpans,
            (Kind::ResourceSpans, 1) => Kind::Resource,
            (Kind::ResourceSpans, 2) => Kind::ScopeSpans,
            (Kind::Resource, 1) => Kind::KeyValue,
            (Kind::Resource, 3) => Kind::EntityRef,
            (Kind::ScopeSpans, 1) => Kind::Scope,
            (Kind::ScopeSpans, 2) => Kind::Span,
            (Kind::Scope, 3) => Kind::KeyValue,
            (Kind::Span, 9) => Kind::KeyValue,
            (Kind::Span, 11) => Kind::Event,
            (Kind::Span, 13) => Kind::Link,
            (Kind::Span, 15) => Kind::Status,
            (Kind::Event, 3) => Kind::KeyValue,
            (Kind::Link, 4) => Kind::KeyValue,
            (Kind::KeyValue, 2) => Kind::AnyValue,
            (Kind::AnyValue, 5) => Kind::ArrayValue,
            (Kind::AnyValue, 6) => Kind::KeyValueList,
            (Kind::ArrayValue, 1) => Kind::AnyValue,
            (Kind::KeyValueList, 1) => Kind::KeyValue,
            _ => return None,
        })
    }

    /// The message kind of JSON member `key` (camelCase or snake_case), if it holds messages.
    fn member(self, key: &str) -> Option<Kind> {
        let norm: String = key
            .chars()
            .filter(|c| *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Some(match (self, norm.as_str()) {
            (Kind::Request, "resourcespans") => Kind::ResourceSpans,
            (Kind::ResourceSpans, "resource") => Kind::Resource,
            (Kind::ResourceSpans, "scopespans") => Kind::ScopeSpans,
            (Kind::Resource, "attributes") => Kind::KeyValue,
            (Kind::Resource, "entityrefs") => Kind::EntityRef,
            (Kind::ScopeSpans, "scope") => Kind::Scope,
            (Kind::ScopeSpans, "spans") => Kind::Span,
            (Kind::Scope, "attributes") => Kind::KeyValue,
            (Kind::Span, "attributes") => Kind::KeyValue,
            (Kind::Span, "events") => Kind::Event,
            (Kind::Span, "links") => Kind::Link,
            (Kind::Span, "status") => Kind::Status,
            (Kind::Event, "attributes") => Kind::KeyValue,
            (Kind::Link, "attributes") => Kind::KeyValue,
            (Kind::KeyValue, "value") => Kind::AnyValue,
            (Kind::AnyValue, "arrayvalue") => Kind::ArrayValue,
            (Kind::AnyValue, "kvlistvalue") => Kind::KeyValueList,
            (Kind::ArrayValue, "values") => Kind::AnyValue,
            (Kind::KeyValueList, "values") => Kind::KeyValue,
            _ => return None,
        })
    }
}

/// Running total of a walk.
struct Tally {
    bytes: usize,
    limit: usize,
}

impl Tally {
    fn new(input: usize, limit: usize) -> Self {
        Self {
            bytes: input.saturating_add(2 * Kind::Request.size()),
            limit,
        }
    }

    /// Counts one message; false once the limit is passed.
    fn add(&mut self, kind: Kind) -> bool {
        self.bytes = self.bytes.saturating_add(2 * kind.size());
        self.bytes <= self.limit
    }

    fn result(&self) -> Estimate {
        if self.bytes > self.limit {
            Estimate::Exceeds(self.bytes)
        } else {
            Estimate::Bytes(self.bytes)
        }
    }
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Skips a varint (wire type 0), 64-bit (1) or 32-bit (5) field at `pos`.
fn skip_scalar(wire: u64, buf: &[u8], pos: &mut usize) -> Result<(), &'static str> {
    match wire {
        0 => varint(buf, pos).map(drop).ok_or("truncated varint")?,
        1 => *pos += 8,
        _ => *pos += 4,
    }
    if *pos > buf.len() {
        return Err("truncated fixed-size field");
    }
    Ok(())
}

/// Reads the length of a length-delimited field at `pos`; returns where the field ends.
fn delimited_end(buf: &[u8], pos: &mut usize) -> Result<usize, &'static str> {
    let len = varint(buf, pos).ok_or("truncated length")?;
    usize::try_from(len)
        .ok()
        .and_then(|l| pos.checked_add(l))
        .filter(|&e| e <= buf.len())
        .ok_or("length past the end of the message")
}

/// Skips a group (wire types 3 … 4) of field `number` whose start key was just read: no OTLP
/// field is a group, but a decoder skips one in an unknown field, and so does the estimate.
/// Groups nest at most as deep as messages.
fn skip_group(number: u64, buf: &[u8], pos: &mut usize, depth: usize) -> Result<(), &'static str> {
    let mut open = vec![number];
    while let Some(&innermost) = open.last() {
        if depth + open.len() > MAX_DEPTH {
            return Err("groups nested too deeply");
        }
        let key = varint(buf, pos).ok_or("truncated group")?;
        let (field, wire) = (key >> 3, key & 7);
        if field == 0 {
            return Err("field number 0");
        }
        match wire {
            0 | 1 | 5 => skip_scalar(wire, buf, pos)?,
            2 => *pos = delimited_end(buf, pos)?,
            3 => open.push(field),
            4 if field == innermost => {
                open.pop();
            }
            4 => return Err("group ends with another field number"),
            _ => return Err("unsupported wire type"),
        }
    }
    Ok(())
}

/// Estimates a protobuf `ExportTraceServiceRequest`.
pub fn protobuf(bytes: &[u8], limit: usize) -> Estimate {
    let mut tally = Tally::new(bytes.len(), limit);
    if tally.bytes > limit {
        return tally.result();
    }
    // Messages still to walk: (kind, body, depth).
    let mut stack: Vec<(Kind, &[u8], usize)> = vec![(Kind::Request, bytes, 0)];
    let invalid = |m: &str| Estimate::Invalid(format!("protobuf body is invalid: {m}"));
    while let Some((kind, body, depth)) = stack.pop() {
        let mut pos = 0;
        while pos < body.len() {
            let Some(key) = varint(body, &mut pos) else {
                return invalid("truncated field key");
            };
            let (number, wire) = (key >> 3, key & 7);
            if number == 0 {
                return invalid("field number 0");
            }
            match wire {
                0 | 1 | 5 => {
                    if let Err(m) = skip_scalar(wire, body, &mut pos) {
                        return invalid(m);
                    }
                }
                3 => {
                    if let Err(m) = skip_group(number, body, &mut pos, depth) {
                        return invalid(m);
                    }
                }
                2 => {
                    let end = match delimited_end(body, &mut pos) {
                        Ok(end) => end,
                        Err(m) => return invalid(m),
                    };
                    if let Some(child) = kind.field(number) {
                        if depth + 1 > MAX_DEPTH {
                            return invalid("messages nested too deeply");
                        }
                        if !tally.add(child) {
                            return tally.result();
                        }
                        stack.push((child, &body[pos..end], depth + 1));
                    }
                    pos = end;
                }
                _ => return invalid("unsupported wire type"),
            }
        }
    }
    tally.result()
}

/// Estimates an OTLP/JSON `ExportTraceServiceRequest`.
pub fn json(bytes: &[u8], limit: usize) -> Estimate {
    let mut tally = Tally::new(bytes.len(), limit);
    if tally.bytes > limit {
        return tally.result();
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let walked = Message {
        kind: Kind::Request,
        tally: &mut tally,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match walked {
        Ok(()) => tally.result(),
        Err(_) if tally.bytes > tally.limit => tally.result(),
        Err(e) => Estimate::Invalid(format!("JSON body is invalid: {e}")),
    }
}

/// One JSON value that holds a message of `kind`: an object (counted when met), or `null`.
struct Message<'t> {
    kind: Kind,
    tally: &'t mut Tally,
}

/// One JSON member that holds messages of `kind`: an array of them, one, or `null`.
struct Member<'t> {
    kind: Kind,
    tally: &'t mut Tally,
}

const OVER_LIMIT: &str = "estimate over the limit";

impl<'de> DeserializeSeed<'de> for Message<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Message<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an OTLP message object")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.kind != Kind::Request && !self.tally.add(self.kind) {
            return Err(serde::de::Error::custom(OVER_LIMIT));
        }
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.kind.member(&key) {
                Some(kind) => map.next_value_seed(Member {
                    kind,
                    tally: &mut *self.tally,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Member<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Member<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "OTLP messages")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Message {
                kind: self.kind,
                tally: &mut *self.tally,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        Message {
            kind: self.kind,
            tally: self.tally,
        }
        .visit_map(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn request(spans: usize) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(); spans],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn bytes(e: Estimate) -> usize {
        match e {
            Estimate::Bytes(b) | Estimate::Exceeds(b) => b,
            Estimate::Invalid(m) => panic!("{m}"),
        }
    }

    #[test]
    fn empty_spans_cost_their_structs() {
        let req = request(1000);
        let pb = req.encode_to_vec();
        let js = serde_json::to_vec(&req).unwrap();
        for (estimate, input) in [
            (bytes(protobuf(&pb, usize::MAX)), pb.len()),
            (bytes(json(&js, usize::MAX)), js.len()),
        ] {
            assert!(estimate >= input + 1000 * size_of::<Span>(), "{estimate}");
            assert!(estimate <= input + 2 * 1000 * size_of::<Span>() + 4096);
        }
    }

    #[test]
    fn walks_stop_at_the_limit() {
        let pb = request(100_000).encode_to_vec();
        assert!(matches!(protobuf(&pb, 1 << 20), Estimate::Exceeds(_)));
        let js = serde_json::to_vec(&request(100_000)).unwrap();
        assert!(matches!(json(&js, 1 << 20), Estimate::Exceeds(_)));
    }

    #[test]
    fn nested_values_are_counted_and_bounded() {
        let mut value = AnyValue::default();
        for _ in 0..30 {
            value = AnyValue {
                value: Some(
                    cairn_normalize::otlp::common::v1::any_value::Value::ArrayValue(ArrayValue {
                        values: vec![value],
                    }),
                ),
            };
        }
        let mut req = request(1);
        req.resource_spans[0].scope_spans[0].spans[0].attributes = vec![KeyValue {
            key: "deep".into(),
            value: Some(value),
            ..Default::default()
        }];
        let pb = req.encode_to_vec();
        assert!(bytes(protobuf(&pb, usize::MAX)) > 60 * size_of::<AnyValue>());
        let js = serde_json::to_vec(&req).unwrap();
        assert!(bytes(json(&js, usize::MAX)) > 60 * size_of::<AnyValue>());
    }

    /// Groups in unknown fields are skipped, as the decoder skips them; a group that does not
    /// end, or ends as another field, is malformed for both.
    #[test]
    fn unknown_groups_are_skipped_as_the_decoder_does() {
        // Field 14 as a group holding a varint and a nested group, then an empty request.
        let grouped = [0x73, 0x08, 0x01, 0x7b, 0x7c, 0x74];
        assert!(ExportTraceServiceRequest::decode(&grouped[..]).is_ok());
        assert_eq!(
            protobuf(&grouped, 1 << 20),
            Estimate::Bytes(grouped.len() + 2 * Kind::Request.size())
        );
        for bad in [&[0x73, 0x08, 0x01][..], &[0x73, 0x7c][..], &[0x74][..]] {
            assert!(ExportTraceServiceRequest::decode(bad).is_err());
            assert!(matches!(protobuf(bad, 1 << 20), Estimate::Invalid(_)));
        }
    }

    #[test]
    fn malformed_input_is_invalid() {
        assert!(matches!(
            protobuf(&[0x0a, 0xff, 0xff], 1 << 20),
            Estimate::Invalid(_)
        ));
        assert!(matches!(
            protobuf(&[0x0a, 0x05, 0x00], 1 << 20),
            Estimate::Invalid(_)
        ));
        assert!(matches!(json(b"{", 1 << 20), Estimate::Invalid(_)));
        assert!(matches!(
            json(b"{\"resourceSpans\": 3}", 1 << 20),
            Estimate::Invalid(_)
        ));
        assert_eq!(
            json(b"{\"unknown\": [1, {\"a\": 2}]}", 1 << 20),
            Estimate::Bytes(26 + 2 * Kind::Request.size())
        );
    }
}
