//! `cairn-normalize`: OTLP ↔ Arrow, the one place that understands what agents send.
//!
//! Data flow: an OTLP `ExportTraceServiceRequest` is validated and normalised by [`encode`] into
//! Arrow record batches of the span schema (`cairn_schema::columns`), one batch per hour
//! partition. Attribute values keep their OTLP type ([`attributes`]), so the round trip
//! OTLP → Arrow → OTLP through [`decode`] is lossless. The promoted agent columns are filled
//! from a data table of attribute names and rules ([`agent`], the bundled `conventions.toml`,
//! which must fill exactly the columns the schema declares); large values go to the
//! content-addressed `payloads` table ([`payload`]) and are referenced from spans, and restored
//! on read. Where the spans ran is filled from the Kubernetes API where they do not say it
//! ([`placement`]).
//! Secrets and personal data are masked or hashed by [`redact`] before any of this, on the
//! decoded request.
//!
//! Pure computation: no I/O, no async. The collector normalises on ingest; the query side
//! decodes for the trace API.

pub mod agent;
pub mod attributes;
pub mod decode;
pub mod encode;
mod error;
pub mod payload;
pub mod placement;
pub mod redact;
#[cfg(test)]
mod test_support;

pub use error::{Error, Result};

/// Re-export of the OTLP protobuf types this crate speaks.
pub use opentelemetry_proto::tonic as otlp;
