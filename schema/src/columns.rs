//! The `spans` schema: one row per span, core OTLP columns kept losslessly plus promoted agent
//! columns. [`SCHEMA_VERSION`] is written into every file's metadata.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayBuilder, ListBuilder, MapBuilder, StringBuilder, StructBuilder};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// Version of the span schema; bumped on any change to columns or their meaning.
pub const SCHEMA_VERSION: &str = "5";
/// File metadata key holding [`SCHEMA_VERSION`].
pub const SCHEMA_VERSION_KEY: &str = "cairn.schema_version";

/// Column names, used by both sides of the store.
pub mod col {
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    pub const PARENT_SPAN_ID: &str = "parent_span_id";
    pub const TRACE_STATE: &str = "trace_state";
    pub const FLAGS: &str = "flags";
    pub const NAME: &str = "name";
    pub const KIND: &str = "kind";
    pub const START_TIME: &str = "start_time";
    pub const END_TIME: &str = "end_time";
    pub const DURATION_NS: &str = "duration_ns";
    pub const STATUS_CODE: &str = "status_code";
    pub const STATUS_MESSAGE: &str = "status_message";
    pub const SERVICE_NAME: &str = "service_name";
    pub const ATTRIBUTES: &str = "attributes";
    pub const ATTRIBUTE_TYPES: &str = "attribute_types";
    pub const DROPPED_ATTRIBUTES_COUNT: &str = "dropped_attributes_count";
    pub const EVENTS: &str = "events";
    pub const DROPPED_EVENTS_COUNT: &str = "dropped_events_count";
    pub const LINKS: &str = "links";
    pub const DROPPED_LINKS_COUNT: &str = "dropped_links_count";
    pub const RESOURCE_ATTRIBUTES: &str = "resource_attributes";
    pub const RESOURCE_ATTRIBUTE_TYPES: &str = "resource_attribute_types";
    pub const RESOURCE_DROPPED_ATTRIBUTES_COUNT: &str = "resource_dropped_attributes_count";
    pub const RESOURCE_SCHEMA_URL: &str = "resource_schema_url";
    pub const SCOPE_NAME: &str = "scope_name";
    pub const SCOPE_VERSION: &str = "scope_version";
    pub const SCOPE_ATTRIBUTES: &str = "scope_attributes";
    pub const SCOPE_ATTRIBUTE_TYPES: &str = "scope_attribute_types";
    pub const SCOPE_DROPPED_ATTRIBUTES_COUNT: &str = "scope_dropped_attributes_count";
    pub const SCOPE_SCHEMA_URL: &str = "scope_schema_url";
}

/// Builder of an attribute map column (`attributes`, `attribute_types`, …): text keys, text
/// values.
pub type AttrMapBuilder = MapBuilder<StringBuilder, StringBuilder>;

/// A new, empty attribute map builder.
pub fn new_map_builder() -> AttrMapBuilder {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

/// `Timestamp(ns, "UTC")`.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// The type of an attribute map column.
pub fn map_type() -> DataType {
    new_map_builder().finish().data_type().clone()
}

/// Fields of one element of the `events` list.
pub fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new("time", timestamp_type(), false),
        Field::new("name", DataType::Utf8, false),
        Field::new("attributes", map_type(), false),
        Field::new("attribute_types", map_type(), false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
}

/// Fields of one element of the `links` list.
pub fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("trace_state", DataType::Utf8, true),
        Field::new("flags", DataType::UInt32, false),
        Field::new("attributes", map_type(), false),
        Field::new("attribute_types", map_type(), false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
}

/// An empty list-of-struct builder for `fields` with explicitly typed child builders.
pub fn new_struct_list_builder(fields: Fields) -> ListBuilder<StructBuilder> {
    let builders: Vec<Box<dyn ArrayBuilder>> = fields
        .iter()
        .map(|f| -> Box<dyn ArrayBuilder> {
            match f.data_type() {
                DataType::Map(..) => Box::new(new_map_builder()),
                DataType::Timestamp(..) => {
                    Box::new(arrow::array::TimestampNanosecondBuilder::new().with_timezone("UTC"))
                }
                other => arrow::array::make_builder(other, 0),
            }
        })
        .collect();
    let item = Field::new("item", DataType::Struct(fields.clone()), false);
    ListBuilder::new(StructBuilder::new(fields, builders)).with_field(Arc::new(item))
}

fn list_type(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(fields),
        false,
    )))
}

static SPANS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use col::*;
    let s = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let u32f = |name: &str| Field::new(name, DataType::UInt32, false);
    let map = |name: &str| Field::new(name, map_type(), false);
    let mut fields = vec![
        s(TRACE_ID, false),
        s(SPAN_ID, false),
        s(PARENT_SPAN_ID, true),
        s(TRACE_STATE, true),
        u32f(FLAGS),
        s(NAME, false),
        s(KIND, false),
        Field::new(START_TIME, timestamp_type(), false),
        Field::new(END_TIME, timestamp_type(), false),
        Field::new(DURATION_NS, DataType::Int64, false),
        s(STATUS_CODE, false),
        s(STATUS_MESSAGE, true),
        s(SERVICE_NAME, true),
        map(ATTRIBUTES),
        map(ATTRIBUTE_TYPES),
        u32f(DROPPED_ATTRIBUTES_COUNT),
        Field::new(EVENTS, list_type(event_fields()), false),
        u32f(DROPPED_EVENTS_COUNT),
        Field::new(LINKS, list_type(link_fields()), false),
        u32f(DROPPED_LINKS_COUNT),
        map(RESOURCE_ATTRIBUTES),
        map(RESOURCE_ATTRIBUTE_TYPES),
        u32f(RESOURCE_DROPPED_ATTRIBUTES_COUNT),
        s(RESOURCE_SCHEMA_URL, true),
        s(SCOPE_NAME, true),
        s(SCOPE_VERSION, true),
        map(SCOPE_ATTRIBUTES),
        map(SCOPE_ATTRIBUTE_TYPES),
        u32f(SCOPE_DROPPED_ATTRIBUTES_COUNT),
        s(SCOPE_SCHEMA_URL, true),
    ];
    fields.extend(crate::promoted::fields());
    fields.extend(crate::promoted::ref_fields());
    let metadata = [(SCHEMA_VERSION_KEY.to_owned(), SCHEMA_VERSION.to_owned())].into();
    Arc::new(Schema::new_with_metadata(fields, metadata))
});

/// The Arrow schema of the `spans` table.
pub fn spans_schema() -> SchemaRef {
    SPANS_SCHEMA.clone()
}

static PAYLOADS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("hash", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("content", DataType::Utf8, false),
    ]))
});

/// Schema of the `payloads` table: one row per distinct payload, keyed by the hash of its
/// content.
pub fn payloads_schema() -> SchemaRef {
    PAYLOADS_SCHEMA.clone()
}
