//! `cairn-schema`: the contract between Cairn's collector and its query side.
//!
//! Data flow: an OTLP `ExportTraceServiceRequest` is validated and normalised by [`encode`] into
//! Arrow record batches with the [`columns::spans_schema`], one batch per (hour) partition; the
//! collector writes those as Parquet under the [`layout`] paths of an object store opened by
//! [`store`]. The query side reads the same paths and, for the trace API, turns rows back into
//! OTLP with [`decode`]. Attribute values keep their OTLP type ([`attributes`]), so the round
//! trip OTLP → Arrow → OTLP is lossless. Promoted agent columns are filled from a data table of
//! attribute names ([`agent`]); large values go to a content-addressed `payloads` table
//! ([`payload`]) and are referenced from spans. Files are written as [`file_format`] says;
//! compaction replaces small files by large ones under the records of [`compaction`], which
//! readers apply through [`visible`].
//!
//! This crate depends on no other Cairn crate; the collector and the query side depend on it and
//! never on each other.

pub mod agent;
pub mod attributes;
pub mod columns;
pub mod compaction;
pub mod decode;
pub mod encode;
mod error;
pub mod faults;
pub mod file_format;
pub mod ids;
pub mod layout;
pub mod payload;
pub mod store;
pub mod tenant;
pub mod visible;

pub use error::{Error, Result};

/// Re-export of the OTLP protobuf types this crate speaks.
pub use opentelemetry_proto::tonic as otlp;
