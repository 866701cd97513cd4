//! OTLP → Arrow: validates every span and builds one record batch per hour partition.
//!
//! Invalid spans (bad ids, impossible times, attribute values nested too deep to read back) are
//! rejected one by one and counted, as OTLP partial success asks; the valid spans of the same
//! request are kept. [`check`] lists the rules.

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
    TimestampNanosecondBuilder, UInt32Builder,
};
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, Span};

use crate::agent::{conventions, output_columns, promote, Cell, Kind, SpanView};
use crate::attributes::{
    append_types, append_types_tagged, append_values, check_nesting, clip, find_str,
    new_map_builder, AttrMapBuilder,
};
use crate::payload::{extract_span, payloads_batch, Extracted, Payload, Ref};
use crate::placement::Placement;
use crate::{Error, Result};
use cairn_schema::columns::{event_fields, link_fields, new_struct_list_builder, spans_schema};
use cairn_schema::ids::{to_hex, validate};
use cairn_schema::layout::hour_of;

/// How many rejection reasons are quoted in a partial-success message.
const MAX_REASONS: usize = 3;

/// The spans of one hour partition and the payloads they introduce.
#[derive(Debug)]
pub struct Partition {
    /// Hours since the epoch.
    pub hour: i64,
    pub spans: RecordBatch,
    /// Distinct within this request.
    pub payloads: RecordBatch,
}

/// The outcome of encoding one export request.
#[derive(Debug, Default)]
pub struct Encoded {
    /// One entry per hour partition, in hour order.
    pub partitions: Vec<Partition>,
    pub accepted: usize,
    pub rejected: usize,
    /// Up to a few distinct reasons for the rejected spans.
    pub reasons: Vec<String>,
}

impl Encoded {
    /// The OTLP partial-success message, empty when nothing was rejected.
    pub fn rejection_message(&self) -> String {
        if self.rejected == 0 {
            return String::new();
        }
        format!(
            "{} of {} spans rejected: {}",
            self.rejected,
            self.rejected + self.accepted,
            self.reasons.join("; ")
        )
    }
}

/// Validates and normalises every span of `request`.
///
/// Each span is checked on its own ([`check`]); a span that fails is rejected and counted, with
/// its reason quoted in [`Encoded::rejection_message`], and the others are kept. Invalid
/// resource or scope attributes reject every span under them.
pub fn encode(request: &ExportTraceServiceRequest) -> Result<Encoded> {
    encode_within(request, usize::MAX)
}

/// Like [`encode`], keeping the spans of at most `max_hours` distinct hour partitions (the
/// first ones met, in request order); spans of further hours are rejected one by one, so that
/// one request cannot make the collector build and write a partition for every hour there is.
pub fn encode_within(request: &ExportTraceServiceRequest, max_hours: usize) -> Result<Encoded> {
    encode_placed(request, max_hours, &[])
}

/// Like [`encode_within`], with the placement of each resource (`placements[i]` for
/// `resource_spans[i]`; missing entries are unknown) filling the placement columns its spans
/// leave empty.
pub fn encode_placed(
    request: &ExportTraceServiceRequest,
    max_hours: usize,
    placements: &[Option<Arc<Placement>>],
) -> Result<Encoded> {
    let mut builders: HashMap<i64, SpanBatchBuilder> = HashMap::new();
    let mut out = Encoded::default();
    let empty_resource = Resource::default();
    let empty_scope = InstrumentationScope::default();
    for (i, rs) in request.resource_spans.iter().enumerate() {
        let placement = placements.get(i).and_then(Option::as_deref);
        let resource = rs.resource.as_ref().unwrap_or(&empty_resource);
        // The same for every span of the resource.
        let placed = crate::placement::columns(&resource.attributes, placement);
        let resource_ok = check_nesting("resource attribute", &resource.attributes);
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref().unwrap_or(&empty_scope);
            let scope_ok = check_nesting("scope attribute", &scope.attributes);
            for span in &ss.spans {
                let context = SpanContext {
                    resource,
                    resource_schema_url: &rs.schema_url,
                    scope,
                    scope_schema_url: &ss.schema_url,
                    placement,
                    placed: &placed,
                };
                let checked = match resource_ok.as_ref().and(scope_ok.as_ref()) {
                    Ok(()) => check(span).map_err(Rejected::Span),
                    Err(e) => Err(Rejected::Context(e)),
                }
                .and_then(|(start, end)| {
                    let hour = hour_of(start);
                    if builders.len() >= max_hours && !builders.contains_key(&hour) {
                        return Err(Rejected::Span(Error::InvalidInput(format!(
                            "the request spans more than {max_hours} distinct hours; send spans of other hours in another request"
                        ))));
                    }
                    Ok((start, end, hour))
                });
                match checked {
                    Ok((start, end, hour)) => {
                        builders
                            .entry(hour)
                            .or_default()
                            .append(span, start, end, &context);
                        out.accepted += 1;
                    }
                    Err(e) => {
                        out.rejected += 1;
                        if out.reasons.len() < MAX_REASONS {
                            let reason = format!("span {:?}: {e}", clip(&span.name));
                            if !out.reasons.contains(&reason) {
                                out.reasons.push(reason);
                            }
                        }
                    }
                }
            }
        }
    }
    let mut partitions = builders
        .into_iter()
        .map(|(hour, mut b)| {
            Ok(Partition {
                hour,
                spans: b.finish()?,
                payloads: payloads_batch(&b.payloads)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    partitions.sort_by_key(|p| p.hour);
    out.partitions = partitions;
    Ok(out)
}

/// Why a span was rejected: its own fault, or its resource's or scope's.
enum Rejected<'a> {
    Span(Error),
    Context(&'a Error),
}

impl std::fmt::Display for Rejected<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Span(e) => e.fmt(f),
            Rejected::Context(e) => e.fmt(f),
        }
    }
}

fn nanos(what: &str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::InvalidInput(format!("{what} {value} is out of range")))
}

/// Validates one span; returns (start, end) in nanoseconds. A span is rejected when:
///
/// - an id is malformed: trace and span ids of the wrong length or all zeroes, likewise a
///   parent span id when present and the ids of every link;
/// - a time cannot be stored: start, end or an event time after 2262-04-11 (beyond signed
///   64-bit nanoseconds): `start_time_unix_nano … is out of range`;
/// - it ends before it starts (OTLP expects `end_time_unix_nano >= start_time_unix_nano`):
///   `end_time_unix_nano END is before start_time_unix_nano START`. An unset end (0) with a set
///   start is such a span; SDKs export spans only once ended, so they never send it. Otherwise
///   zero (unset) times are kept as sent: a start of 0 is stored as the epoch, which is odd but
///   not impossible, and never gives a negative duration;
/// - an attribute of the span, of one of its events or of one of its links nests arrays and
///   key-value lists deeper than [`MAX_VALUE_NESTING`](crate::attributes::MAX_VALUE_NESTING).
///
/// Event times are not compared with the span's: SDKs record events (exceptions, retries)
/// outside a span's bounds, and they are kept as sent.
pub fn check(span: &Span) -> Result<(i64, i64)> {
    validate("trace id", &span.trace_id, 16)?;
    validate("span id", &span.span_id, 8)?;
    if !span.parent_span_id.is_empty() {
        validate("parent span id", &span.parent_span_id, 8)?;
    }
    for link in &span.links {
        validate("link trace id", &link.trace_id, 16)?;
        validate("link span id", &link.span_id, 8)?;
    }
    let start = nanos("start_time_unix_nano", span.start_time_unix_nano)?;
    let end = nanos("end_time_unix_nano", span.end_time_unix_nano)?;
    if end < start {
        return Err(Error::InvalidInput(format!(
            "end_time_unix_nano {end} is before start_time_unix_nano {start}"
        )));
    }
    for event in &span.events {
        nanos("event time_unix_nano", event.time_unix_nano)?;
    }
    check_nesting("attribute", &span.attributes)?;
    for event in &span.events {
        check_nesting("event attribute", &event.attributes)?;
    }
    for link in &span.links {
        check_nesting("link attribute", &link.attributes)?;
    }
    Ok((start, end))
}

/// What a span shares with the others of its resource and scope: borrowed from the request
/// (`'r`), and worked out per resource (`'a`).
struct SpanContext<'a, 'r> {
    resource: &'r Resource,
    resource_schema_url: &'r str,
    scope: &'r InstrumentationScope,
    scope_schema_url: &'r str,
    placement: Option<&'a Placement>,
    /// The resource's [`crate::placement::columns`].
    placed: &'a [Cell],
}

/// Text form of a span kind.
pub fn kind_name(kind: i32) -> String {
    match span::SpanKind::try_from(kind) {
        Ok(k) => k
            .as_str_name()
            .trim_start_matches("SPAN_KIND_")
            .to_ascii_lowercase(),
        Err(_) => kind.to_string(),
    }
}

/// Text form of a status code.
pub fn status_name(code: i32) -> String {
    match status::StatusCode::try_from(code) {
        Ok(c) => c
            .as_str_name()
            .trim_start_matches("STATUS_CODE_")
            .to_ascii_lowercase(),
        Err(_) => code.to_string(),
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

enum RefBuilder {
    One(StringBuilder),
    List(ListBuilder<StringBuilder>),
}

enum PromotedBuilder {
    Text(StringBuilder),
    Integer(Int64Builder),
    Float(Float64Builder),
    TextList(ListBuilder<StringBuilder>),
}

/// Column builders for one batch of spans of request `'r`, in schema order.
struct SpanBatchBuilder<'r> {
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent_span_id: StringBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    name: StringBuilder,
    kind: StringBuilder,
    start_time: TimestampNanosecondBuilder,
    end_time: TimestampNanosecondBuilder,
    duration_ns: Int64Builder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    service_name: StringBuilder,
    attributes: AttrMapBuilder,
    attribute_types: AttrMapBuilder,
    dropped_attributes_count: UInt32Builder,
    events: ListBuilder<StructBuilder>,
    dropped_events_count: UInt32Builder,
    links: ListBuilder<StructBuilder>,
    dropped_links_count: UInt32Builder,
    resource_attributes: AttrMapBuilder,
    resource_attribute_types: AttrMapBuilder,
    resource_dropped_attributes_count: UInt32Builder,
    resource_schema_url: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attributes: AttrMapBuilder,
    scope_attribute_types: AttrMapBuilder,
    scope_dropped_attributes_count: UInt32Builder,
    scope_schema_url: StringBuilder,
    promoted: Vec<PromotedBuilder>,
    refs: Vec<(RefBuilder, StringBuilder)>,
    payloads: Vec<Payload<'r>>,
    seen: crate::payload::Seen<'r>,
}

impl Default for SpanBatchBuilder<'_> {
    fn default() -> Self {
        let ts = || TimestampNanosecondBuilder::new().with_timezone("UTC");
        Self {
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            parent_span_id: StringBuilder::new(),
            trace_state: StringBuilder::new(),
            flags: UInt32Builder::new(),
            name: StringBuilder::new(),
            kind: StringBuilder::new(),
            start_time: ts(),
            end_time: ts(),
            duration_ns: Int64Builder::new(),
            status_code: StringBuilder::new(),
            status_message: StringBuilder::new(),
            service_name: StringBuilder::new(),
            attributes: new_map_builder(),
            attribute_types: new_map_builder(),
            dropped_attributes_count: UInt32Builder::new(),
            events: new_struct_list_builder(event_fields()),
            dropped_events_count: UInt32Builder::new(),
            links: new_struct_list_builder(link_fields()),
            dropped_links_count: UInt32Builder::new(),
            resource_attributes: new_map_builder(),
            resource_attribute_types: new_map_builder(),
            resource_dropped_attributes_count: UInt32Builder::new(),
            resource_schema_url: StringBuilder::new(),
            scope_name: StringBuilder::new(),
            scope_version: StringBuilder::new(),
            scope_attributes: new_map_builder(),
            scope_attribute_types: new_map_builder(),
            scope_dropped_attributes_count: UInt32Builder::new(),
            scope_schema_url: StringBuilder::new(),
            promoted: output_columns()
                .into_iter()
                .map(|(_, kind)| match kind {
                    Kind::Text => PromotedBuilder::Text(StringBuilder::new()),
                    Kind::Integer => PromotedBuilder::Integer(Int64Builder::new()),
                    Kind::Float => PromotedBuilder::Float(Float64Builder::new()),
                    Kind::TextList => {
                        PromotedBuilder::TextList(ListBuilder::new(StringBuilder::new()))
                    }
                })
                .collect(),
            refs: conventions()
                .payload_columns
                .iter()
                .map(|p| {
                    let b = if p.split {
                        RefBuilder::List(ListBuilder::new(StringBuilder::new()))
                    } else {
                        RefBuilder::One(StringBuilder::new())
                    };
                    (b, StringBuilder::new())
                })
                .collect(),
            payloads: Vec::new(),
            seen: Default::default(),
        }
    }
}

fn append_attrs(values: &mut AttrMapBuilder, types: &mut AttrMapBuilder, attrs: &[KeyValue]) {
    append_values(values, attrs);
    append_types(types, attrs);
}

fn append_extracted(values: &mut AttrMapBuilder, types: &mut AttrMapBuilder, ex: &Extracted) {
    append_values(values, &ex.attributes);
    append_types_tagged(types, &ex.attributes, |i| ex.tag(i));
}

/// Appends one element per item to a list-of-struct builder whose fields `maps` and `maps + 1`
/// hold the item's attribute maps; `fill` writes the other fields.
fn append_struct_list<T>(
    list: &mut ListBuilder<StructBuilder>,
    items: &[T],
    maps: usize,
    attrs: impl Fn(&T) -> &[KeyValue],
    fill: impl Fn(&mut StructBuilder, &T),
) {
    let sb = list.values();
    for item in items {
        fill(sb, item);
        append_values(map_field(sb, maps), attrs(item));
        append_types(map_field(sb, maps + 1), attrs(item));
        sb.append(true);
    }
    list.append(true);
}

fn map_field(sb: &mut StructBuilder, i: usize) -> &mut AttrMapBuilder {
    sb.field_builder::<AttrMapBuilder>(i).expect("map field")
}

fn field<T: arrow::array::ArrayBuilder>(sb: &mut StructBuilder, i: usize) -> &mut T {
    sb.field_builder::<T>(i).expect("field type matches schema")
}

impl<'r> SpanBatchBuilder<'r> {
    fn append(&mut self, span: &'r Span, start: i64, end: i64, ctx: &SpanContext<'_, 'r>) {
        self.trace_id.append_value(to_hex(&span.trace_id));
        self.span_id.append_value(to_hex(&span.span_id));
        self.parent_span_id
            .append_option((!span.parent_span_id.is_empty()).then(|| to_hex(&span.parent_span_id)));
        self.trace_state.append_option(non_empty(&span.trace_state));
        self.flags.append_value(span.flags);
        self.name.append_value(&span.name);
        self.kind.append_value(kind_name(span.kind));
        self.start_time.append_value(start);
        self.end_time.append_value(end);
        self.duration_ns.append_value(end.saturating_sub(start));
        let status = span.status.clone().unwrap_or_default();
        self.status_code.append_value(status_name(status.code));
        self.status_message
            .append_option(non_empty(&status.message));
        self.service_name
            .append_option(find_str(&ctx.resource.attributes, "service.name"));
        let view = SpanView::new(span, &ctx.resource.attributes, ctx.scope);
        let (span_ex, resource_ex, events_ex) =
            extract_span(&view, &mut self.payloads, &mut self.seen);
        append_extracted(&mut self.attributes, &mut self.attribute_types, &span_ex);
        self.dropped_attributes_count
            .append_value(span.dropped_attributes_count);
        // Events keep their attributes with payloads replaced by references.
        let sb = self.events.values();
        for (i, e) in span.events.iter().enumerate() {
            field::<TimestampNanosecondBuilder>(sb, 0).append_value(e.time_unix_nano as i64);
            field::<StringBuilder>(sb, 1).append_value(&e.name);
            let attrs = events_ex.attributes(i, &e.attributes);
            append_values(map_field(sb, 2), attrs);
            append_types_tagged(map_field(sb, 3), attrs, |j| {
                events_ex.tags.get(&(i, j)).copied()
            });
            field::<UInt32Builder>(sb, 4).append_value(e.dropped_attributes_count);
            sb.append(true);
        }
        self.events.append(true);
        self.dropped_events_count
            .append_value(span.dropped_events_count);
        append_struct_list(
            &mut self.links,
            &span.links,
            4,
            |l| &l.attributes,
            |sb, l| {
                field::<StringBuilder>(sb, 0).append_value(to_hex(&l.trace_id));
                field::<StringBuilder>(sb, 1).append_value(to_hex(&l.span_id));
                field::<StringBuilder>(sb, 2).append_option(non_empty(&l.trace_state));
                field::<UInt32Builder>(sb, 3).append_value(l.flags);
                field::<UInt32Builder>(sb, 6).append_value(l.dropped_attributes_count);
            },
        );
        self.dropped_links_count
            .append_value(span.dropped_links_count);
        append_extracted(
            &mut self.resource_attributes,
            &mut self.resource_attribute_types,
            &resource_ex,
        );
        self.resource_dropped_attributes_count
            .append_value(ctx.resource.dropped_attributes_count);
        self.resource_schema_url
            .append_option(non_empty(ctx.resource_schema_url));
        self.scope_name.append_option(non_empty(&ctx.scope.name));
        self.scope_version
            .append_option(non_empty(&ctx.scope.version));
        append_attrs(
            &mut self.scope_attributes,
            &mut self.scope_attribute_types,
            &ctx.scope.attributes,
        );
        self.scope_dropped_attributes_count
            .append_value(ctx.scope.dropped_attributes_count);
        self.scope_schema_url
            .append_option(non_empty(ctx.scope_schema_url));
        for (cell, builder) in promote(&view, ctx.placement, ctx.placed)
            .into_iter()
            .zip(&mut self.promoted)
        {
            match (cell, builder) {
                (Cell::Text(v), PromotedBuilder::Text(b)) => b.append_option(v),
                (Cell::Integer(v), PromotedBuilder::Integer(b)) => b.append_option(v),
                (Cell::Float(v), PromotedBuilder::Float(b)) => b.append_option(v),
                (Cell::TextList(v), PromotedBuilder::TextList(b)) => match v {
                    Some(items) => {
                        b.values().extend(items.into_iter().map(Some));
                        b.append(true);
                    }
                    None => b.append(false),
                },
                _ => unreachable!("promoted cells follow output_columns"),
            }
        }
        for (reference, (builder, src)) in span_ex.refs.into_iter().zip(&mut self.refs) {
            match (reference, builder) {
                (Some((Ref::One(h), from)), RefBuilder::One(b)) => {
                    b.append_value(h);
                    src.append_value(from);
                }
                (Some((Ref::List(hs), from)), RefBuilder::List(b)) => {
                    b.values().extend(hs.into_iter().map(Some));
                    b.append(true);
                    src.append_value(from);
                }
                (Some((Ref::List(hs), from)), RefBuilder::One(b)) => {
                    b.append_value(hs.join(","));
                    src.append_value(from);
                }
                (Some((Ref::One(h), from)), RefBuilder::List(b)) => {
                    b.values().append_value(h);
                    b.append(true);
                    src.append_value(from);
                }
                (None, RefBuilder::One(b)) => {
                    b.append_null();
                    src.append_null();
                }
                (None, RefBuilder::List(b)) => {
                    b.append(false);
                    src.append_null();
                }
            }
        }
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.start_time.finish()),
            Arc::new(self.end_time.finish()),
            Arc::new(self.duration_ns.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            Arc::new(self.service_name.finish()),
            Arc::new(self.attributes.finish()),
            Arc::new(self.attribute_types.finish()),
            Arc::new(self.dropped_attributes_count.finish()),
            Arc::new(self.events.finish()),
            Arc::new(self.dropped_events_count.finish()),
            Arc::new(self.links.finish()),
            Arc::new(self.dropped_links_count.finish()),
            Arc::new(self.resource_attributes.finish()),
            Arc::new(self.resource_attribute_types.finish()),
            Arc::new(self.resource_dropped_attributes_count.finish()),
            Arc::new(self.resource_schema_url.finish()),
            Arc::new(self.scope_name.finish()),
            Arc::new(self.scope_version.finish()),
            Arc::new(self.scope_attributes.finish()),
            Arc::new(self.scope_attribute_types.finish()),
            Arc::new(self.scope_dropped_attributes_count.finish()),
            Arc::new(self.scope_schema_url.finish()),
        ];
        for b in &mut self.promoted {
            columns.push(match b {
                PromotedBuilder::Text(b) => Arc::new(b.finish()),
                PromotedBuilder::Integer(b) => Arc::new(b.finish()),
                PromotedBuilder::Float(b) => Arc::new(b.finish()),
                PromotedBuilder::TextList(b) => Arc::new(b.finish()),
            });
        }
        for (b, src) in &mut self.refs {
            columns.push(match b {
                RefBuilder::One(b) => Arc::new(b.finish()),
                RefBuilder::List(b) => Arc::new(b.finish()),
            });
            columns.push(Arc::new(src.finish()));
        }
        Ok(RecordBatch::try_new(spans_schema(), columns)?)
    }
}
