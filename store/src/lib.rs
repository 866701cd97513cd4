//! `cairn-store`: Cairn's files in object storage.
//!
//! Data flow: [`open`] turns a URL or a directory into an object store (local directory, S3 or
//! any S3-compatible server, memory); writers encode batches of the span schema as Parquet with
//! the settings of [`file_format`] ([`parquet`]: sorted, deduplicated, zstd) and put them under
//! the `cairn_schema::layout` paths, with the trace index entries of each span file
//! ([`trace_index`]); readers list through [`visible`], which applies the
//! compaction records so that every span is seen exactly once, also while files are replaced.
//! A store under a prefix (`s3://bucket/prefix`) is rooted there by [`prefix`]. Every store is
//! wrapped in [`metered`], which counts requests, bytes and latency per operation. Every
//! committed file is recorded in its tenant's tamper-evident [`chain`]. With the `faults` feature, `faults` fails a fraction of writes, for the
//! resilience tests.

pub mod chain;
mod error;
#[cfg(feature = "faults")]
pub mod faults;
pub mod file_format;
pub mod metered;
mod open;
pub mod parquet;
mod prefix;
pub mod trace_index;
pub mod visible;

pub use error::{Error, Result};
pub use open::open;
