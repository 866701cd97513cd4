//! `cairn-collector`: the OTLP ingest half of Cairn.
//!
//! Data flow: OTLP/gRPC ([`grpc`], tonic) and OTLP/HTTP ([`http`], axum; protobuf or JSON, gzip)
//! decode an `ExportTraceServiceRequest` ([`body`]) and hand it to the [`ingest::Ingester`], which
//! validates and normalises it into Arrow batches off the IO runtime, reserves room in a bounded
//! memory budget (refusing with a retryable error when full) and queues it for the
//! [`batcher`]. The batcher groups spans by (tenant, hour), and every flush interval sorts each
//! group by (trace id, start time), encodes it as Parquet (`cairn_store::parquet`) and PUTs it to
//! the object store under the [`cairn_schema::layout`] path. The stages pass each other the
//! messages of `messages` (spans waiting, segment markers, typed write errors). With the write-ahead log ([`wal`], the
//! default) an export is acknowledged once durable on local disk and its spans reach the object
//! store at the next flush, exactly once even across crashes; without it, an export is
//! acknowledged only once its Parquet files are committed.

pub mod admission;
mod batcher;
pub mod body;
mod config;
mod error;
pub mod estimate;
mod grpc;
mod grpc_body;
mod guards;
mod http;
pub mod ingest;
mod messages;
mod metrics;
mod server;
pub mod wal;

pub use config::{Ack, CollectorConfig};
pub use error::{Error, Result};
pub use guards::Guards;
pub use server::CollectorServer;
