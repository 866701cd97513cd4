//! How each Arrow type goes over the Postgres wire, and the Postgres name clients see for it.
//!
//! Data flow: a result's columns are sent as arrow-pg encodes them ([`Wire::Native`]), except
//! maps, structs and lists of those, which become `jsonb` ([`Wire::Json`], text, or in the
//! binary format the same text after `jsonb`'s version byte), and untyped `NULL`s and types
//! arrow-pg cannot encode, which become their display text ([`Wire::Text`]). The catalog
//! ([`super::catalog`]) names column types with [`pg_name`], from the same decision, so that a
//! column is described as what it is sent as.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;

use crate::{Error, Result};

/// How a column of one Arrow type is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// As arrow-pg encodes it.
    Native,
    /// As JSON text, typed `jsonb`.
    Json,
    /// As its display text, typed `text`.
    Text,
}

pub fn wire(data_type: &DataType) -> Wire {
    match data_type {
        DataType::Map(..) | DataType::Struct(_) => Wire::Json,
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::FixedSizeList(item, _)
        | DataType::ListView(item)
        | DataType::LargeListView(item)
            if item.data_type().is_nested() =>
        {
            Wire::Json
        }
        DataType::Dictionary(_, value) => wire(value),
        // An untyped `NULL` or parameter: `text`, as Postgres resolves an `unknown` column.
        DataType::Null => Wire::Text,
        other if into_pg_type(other).is_ok() => Wire::Native,
        _ => Wire::Text,
    }
}

/// The name Postgres gives a column of this type in `information_schema.columns.data_type`.
pub fn pg_name(data_type: &DataType) -> &'static str {
    match wire(data_type) {
        Wire::Json => return "jsonb",
        Wire::Text => return "text",
        Wire::Native => {}
    }
    match data_type {
        DataType::Boolean => "boolean",
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        DataType::Int64 | DataType::UInt32 => "bigint",
        DataType::UInt64 | DataType::Decimal128(..) => "numeric",
        DataType::Float16 | DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
        DataType::Timestamp(_, None) => "timestamp without time zone",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Time32(_) | DataType::Time64(_) => "time without time zone",
        DataType::Interval(_) | DataType::Duration(_) => "interval",
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "bytea",
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::ListView(_)
        | DataType::LargeListView(_) => "ARRAY",
        DataType::Dictionary(_, value) => pg_name(value),
        _ => "text",
    }
}

/// `pg_name` of a type given as DataFusion's `information_schema` writes it (its display);
/// the text itself when it is not one.
pub fn pg_name_of_display(text: &str) -> String {
    match text.parse::<DataType>() {
        Ok(data_type) => pg_name(&data_type).to_owned(),
        Err(_) => text.to_owned(),
    }
}

/// The schema `schema`'s rows are sent with: JSON and text columns become strings.
pub fn wire_schema(schema: &Schema) -> (SchemaRef, Vec<Wire>) {
    let wires: Vec<Wire> = schema
        .fields()
        .iter()
        .map(|f| wire(f.data_type()))
        .collect();
    let fields: Vec<Field> = (schema.fields().iter().zip(&wires))
        .map(|(field, wire)| match wire {
            Wire::Native => field.as_ref().clone(),
            Wire::Json | Wire::Text => Field::new(field.name(), DataType::Utf8, true),
        })
        .collect();
    (Arc::new(Schema::new(fields)), wires)
}

/// The version byte that starts a `jsonb` value in the binary format.
const JSONB_VERSION: u8 = 1;

/// `batch` with its JSON and text columns turned into strings, as `wires` says; `binary(i)`
/// tells whether column `i` is sent in the binary format, where a `jsonb` value starts with its
/// version byte. A column whose batches come in another type than the statement's schema
/// announced (a `UNION` of text columns may run as `Utf8View` though its schema says `Utf8`) is
/// cast to the announced type, which the row description already told the client.
pub fn to_wire(
    batch: &RecordBatch,
    schema: &SchemaRef,
    wires: &[Wire],
    binary: impl Fn(usize) -> bool,
) -> Result<RecordBatch> {
    let columns = (batch
        .columns()
        .iter()
        .zip(batch.schema().fields())
        .zip(schema.fields())
        .zip(wires)
        .enumerate())
    .map(|(i, (((column, field), announced), wire))| match wire {
        Wire::Native if column.data_type() != announced.data_type() => {
            Ok(arrow::compute::cast(column, announced.data_type())?)
        }
        Wire::Native => Ok(Arc::clone(column)),
        Wire::Json => json_strings(column, field, binary(i)),
        Wire::Text => text_strings(column),
    })
    .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

fn json_strings(column: &ArrayRef, field: &Arc<Field>, binary: bool) -> Result<ArrayRef> {
    let options = arrow::json::writer::EncoderOptions::default();
    let mut encoder = arrow::json::writer::make_encoder(field, column.as_ref(), &options)?;
    let mut out = StringBuilder::new();
    let mut buffer = Vec::new();
    for row in 0..column.len() {
        if column.is_null(row) {
            out.append_null();
            continue;
        }
        buffer.clear();
        if binary {
            buffer.push(JSONB_VERSION);
        }
        encoder.encode(row, &mut buffer);
        out.append_value(String::from_utf8_lossy(&buffer));
    }
    Ok(Arc::new(out.finish()))
}

fn text_strings(column: &ArrayRef) -> Result<ArrayRef> {
    let formatter = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())
        .map_err(|e| Error::Internal(e.to_string()))?;
    let mut out = StringBuilder::new();
    for row in 0..column.len() {
        if column.is_null(row) {
            out.append_null();
        } else {
            out.append_value(formatter.value(row).to_string());
        }
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use arrow::array::{MapBuilder, StringArray};

    use super::*;

    #[test]
    fn postgres_names() {
        let utc = DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, Some("UTC".into()));
        assert_eq!(pg_name(&utc), "timestamp with time zone");
        assert_eq!(
            pg_name_of_display(&utc.to_string()),
            "timestamp with time zone"
        );
        assert_eq!(pg_name(&DataType::Utf8), "text");
        assert_eq!(pg_name(&DataType::Int64), "bigint");
        assert_eq!(pg_name(&DataType::Int32), "integer");
        assert_eq!(pg_name(&DataType::Float64), "double precision");
        assert_eq!(pg_name(&DataType::Boolean), "boolean");
        let text_list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
        assert_eq!(pg_name(&text_list), "ARRAY");
        let mut builder = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        let map = builder.finish().data_type().clone();
        assert_eq!(pg_name(&map), "jsonb");
        assert_eq!(pg_name_of_display(&map.to_string()), "jsonb");
        assert_eq!(pg_name_of_display("no type"), "no type");
    }

    #[test]
    fn maps_are_sent_as_json() {
        let mut builder = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        builder.keys().append_value("k");
        builder.values().append_value("v");
        builder.append(true).unwrap();
        builder.append(false).unwrap();
        let map: ArrayRef = Arc::new(builder.finish());
        let schema = Schema::new(vec![Field::new("attrs", map.data_type().clone(), true)]);
        let batch = RecordBatch::try_new(Arc::new(schema.clone()), vec![map]).unwrap();
        let (wire_schema, wires) = wire_schema(&schema);
        assert_eq!(wires, vec![Wire::Json]);
        let sent = to_wire(&batch, &wire_schema, &wires, |_| false).unwrap();
        let strings = sent
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(strings.value(0), r#"{"k":"v"}"#);
        assert!(strings.is_null(1));
        let binary = to_wire(&batch, &wire_schema, &wires, |_| true).unwrap();
        let strings = binary
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(strings.value(0), "\u{1}{\"k\":\"v\"}");
    }
}
