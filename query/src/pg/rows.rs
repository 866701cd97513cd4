//! A result's row description and rows, in the formats the client asked for.
//!
//! Data flow: [`fields`] describes the columns of an Arrow schema as [`super::types`] decides
//! they are sent (maps and structs as `jsonb`, …), in text or binary per column; it answers
//! `Describe` from a planned schema and heads every result. [`response`] turns a query's
//! collected batches into those columns and lets arrow-pg encode them row by row.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion_postgres::pgwire;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, QueryResponse};
use pgwire::api::Type;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::types::format::FormatOptions;

use super::types::{self, Wire};
use crate::engine::QueryResult;

/// The columns of `schema` as sent: the schema of the sent batches, how each column is sent,
/// and the row description.
pub struct Fields {
    pub schema: SchemaRef,
    pub wires: Vec<Wire>,
    pub info: Vec<FieldInfo>,
}

pub fn fields(
    schema: &Schema,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
) -> PgWireResult<Fields> {
    let (schema, wires) = types::wire_schema(schema);
    let mut info = arrow_schema_to_pg_fields(&schema, format, options.clone())?;
    for (i, (field, wire)) in info.iter_mut().zip(&wires).enumerate() {
        if *wire == Wire::Json {
            let json = FieldInfo::new(
                field.name().to_owned(),
                None,
                None,
                Type::JSONB,
                format.format_for(i),
            );
            *field = match &options {
                Some(options) => json.with_format_options(Arc::clone(options)),
                None => json,
            };
        }
    }
    Ok(Fields {
        schema,
        wires,
        info,
    })
}

/// The rows of `result`, encoded by arrow-pg in `format`.
pub fn response(
    result: QueryResult,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<QueryResponse> {
    let Fields {
        schema,
        wires,
        info,
    } = fields(&result.schema, format, Some(options))?;
    let batches = (result.batches.iter())
        .map(|batch| types::to_wire(batch, &schema, &wires, |i| format.is_binary(i)))
        .collect::<crate::Result<Vec<_>>>()
        .map_err(|e| PgWireError::UserError(super::handler::error_info(&e)))?;
    let info = Arc::new(info);
    let encoded = Arc::clone(&info);
    let data = batches
        .into_iter()
        .flat_map(move |batch| encode_recordbatch(Arc::clone(&encoded), batch));
    Ok(QueryResponse::new(info, futures::stream::iter(data)))
}
