//! Query results as JSON rows, CSV, Arrow IPC stream or a text table.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::engine::QueryResult;
use crate::{Error, Result};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Arrow,
    Table,
}

impl Format {
    pub const ARROW_MIME: &'static str = "application/vnd.apache.arrow.stream";

    /// The format an HTTP `Accept` header asks for (JSON unless CSV or Arrow is preferred).
    pub fn from_accept(accept: Option<&str>) -> Self {
        let accept = accept.unwrap_or("").to_ascii_lowercase();
        for part in accept.split(',') {
            match part.split(';').next().unwrap_or("").trim() {
                "text/csv" => return Format::Csv,
                Self::ARROW_MIME => return Format::Arrow,
                "application/json" => return Format::Json,
                _ => {}
            }
        }
        Format::Json
    }

    /// Parses a CLI `--format` value.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "arrow" => Ok(Format::Arrow),
            "table" => Ok(Format::Table),
            other => Err(Error::BadRequest(format!(
                "unknown format {other:?}: use table, json, csv or arrow"
            ))),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => Self::ARROW_MIME,
            Format::Table => "text/plain; charset=utf-8",
        }
    }
}

/// Encodes `result` in `format`.
pub fn encode(result: &QueryResult, format: Format) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match format {
        Format::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut out);
            for batch in &result.batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            if out.is_empty() {
                out.extend_from_slice(b"[]");
            }
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            if result.batches.is_empty() {
                let empty = RecordBatch::new_empty(Arc::clone(&result.schema));
                writer.write(&flatten_nested(&empty)?)?;
            }
            for batch in &result.batches {
                writer.write(&flatten_nested(batch)?)?;
            }
        }
        Format::Arrow => {
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, &result.schema)?;
            for batch in &result.batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        Format::Table => {
            let table = if result.batches.is_empty() {
                arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(Arc::clone(
                    &result.schema,
                ))])?
            } else {
                arrow::util::pretty::pretty_format_batches(&result.batches)?
            };
            out.extend_from_slice(table.to_string().as_bytes());
            out.push(b'\n');
        }
    }
    Ok(out)
}

/// Renders list, struct and map columns as text, which CSV cannot hold otherwise.
fn flatten_nested(batch: &RecordBatch) -> Result<RecordBatch> {
    let nested = |t: &DataType| t.is_nested();
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| nested(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default().with_null("");
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if nested(field.data_type()) {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            let mut b = StringBuilder::new();
            for i in 0..column.len() {
                b.append_value(formatter.value(i).to_string());
            }
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(b.finish()));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
        }
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        assert_eq!(Format::from_accept(None), Format::Json);
        assert_eq!(Format::from_accept(Some("text/csv")), Format::Csv);
        assert_eq!(
            Format::from_accept(Some("application/vnd.apache.arrow.stream")),
            Format::Arrow
        );
        assert_eq!(Format::from_accept(Some("*/*")), Format::Json);
        assert!(Format::from_name("xml").is_err());
    }
}
