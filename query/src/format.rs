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
    let mut encoder = Encoder::new(Arc::clone(&result.schema), format)?;
    for batch in &result.batches {
        encoder.write(batch)?;
    }
    encoder.finish()
}

/// Encodes batches one at a time, so that a result need not be held whole before it is encoded
/// and the output's size can be watched as it grows.
pub struct Encoder {
    schema: SchemaRef,
    state: State,
}

enum State {
    Json(arrow::json::ArrayWriter<Vec<u8>>),
    Csv {
        out: Vec<u8>,
        header: bool,
    },
    Arrow(arrow::ipc::writer::StreamWriter<Vec<u8>>),
    /// A text table needs every row to size its columns.
    Table(Vec<RecordBatch>),
}

impl Encoder {
    pub fn new(schema: SchemaRef, format: Format) -> Result<Self> {
        let state = match format {
            Format::Json => State::Json(arrow::json::ArrayWriter::new(Vec::new())),
            Format::Csv => State::Csv {
                out: Vec::new(),
                header: false,
            },
            Format::Arrow => State::Arrow(arrow::ipc::writer::StreamWriter::try_new(
                Vec::new(),
                &schema,
            )?),
            Format::Table => State::Table(Vec::new()),
        };
        Ok(Self { schema, state })
    }

    /// Appends `batch`.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match &mut self.state {
            State::Json(writer) => writer.write(batch)?,
            State::Csv { out, header } => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(!*header)
                    .build(out);
                writer.write(&flatten_nested(batch)?)?;
                *header = true;
            }
            State::Arrow(writer) => writer.write(batch)?,
            State::Table(batches) => batches.push(batch.clone()),
        }
        Ok(())
    }

    /// Memory the output so far takes, in bytes.
    pub fn size(&self) -> usize {
        match &self.state {
            State::Json(writer) => writer.get_ref().capacity(),
            State::Csv { out, .. } => out.capacity(),
            State::Arrow(writer) => writer.get_ref().capacity(),
            State::Table(batches) => batches.iter().map(|b| b.get_array_memory_size()).sum(),
        }
    }

    /// The whole output.
    pub fn finish(self) -> Result<Vec<u8>> {
        Ok(match self.state {
            State::Json(mut writer) => {
                writer.finish()?;
                let mut out = writer.into_inner();
                if out.is_empty() {
                    out.extend_from_slice(b"[]");
                }
                out
            }
            State::Csv { mut out, header } => {
                if !header {
                    let empty = RecordBatch::new_empty(Arc::clone(&self.schema));
                    let mut writer = arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(&mut out);
                    writer.write(&flatten_nested(&empty)?)?;
                }
                out
            }
            State::Arrow(mut writer) => {
                writer.finish()?;
                writer.into_inner()?
            }
            State::Table(batches) => {
                let table = if batches.is_empty() {
                    arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(
                        Arc::clone(&self.schema),
                    )])?
                } else {
                    arrow::util::pretty::pretty_format_batches(&batches)?
                };
                let mut out = table.to_string().into_bytes();
                out.push(b'\n');
                out
            }
        })
    }
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

    fn batches() -> QueryResult {
        let schema: SchemaRef =
            Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = |v: Vec<i64>| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(arrow::array::Int64Array::from(v)) as ArrayRef],
            )
            .unwrap()
        };
        QueryResult {
            schema: Arc::clone(&schema),
            batches: vec![batch(vec![1, 2]), batch(vec![3])],
        }
    }

    #[test]
    fn encodes_batch_by_batch() {
        let result = batches();
        let text = |f| String::from_utf8(encode(&result, f).unwrap()).unwrap();
        assert_eq!(text(Format::Json), r#"[{"n":1},{"n":2},{"n":3}]"#);
        assert_eq!(text(Format::Csv), "n\n1\n2\n3\n");
        assert!(text(Format::Table).contains("| 3 |"));
        let ipc = encode(&result, Format::Arrow).unwrap();
        let reader =
            arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None).unwrap();
        assert_eq!(reader.map(|b| b.unwrap().num_rows()).sum::<usize>(), 3);
        let empty = QueryResult {
            schema: result.schema,
            batches: Vec::new(),
        };
        assert_eq!(encode(&empty, Format::Json).unwrap(), b"[]");
        assert_eq!(encode(&empty, Format::Csv).unwrap(), b"n\n");
        let mut encoder = Encoder::new(Arc::clone(&empty.schema), Format::Json).unwrap();
        assert_eq!(encoder.size(), 0);
        encoder.write(&batches().batches[0]).unwrap();
        assert!(encoder.size() >= 15);
    }
}
