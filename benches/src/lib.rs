//! Cairn's measuring instruments.
//!
//! - [`workload`]: a deterministic, realistic agent workload as OTLP export requests.
//! - [`load`]: the end-to-end load bench. Pre-encoded requests go to a running server over
//!   OTLP/gRPC or OTLP/HTTP from N concurrent connections ([`send`]); the server's span count
//!   ([`visible`]) is followed until every acknowledged span is queryable; CPU, memory and
//!   stored bytes are read from `/proc` and the store ([`process`]). A server that asks for
//!   tokens or speaks TLS is reached with [`access`].
//! - [`generate`]: writes a large store directly, with the collector's own encoders, for the
//!   query suite (`benches/query_suite.py`).
//!
//! The criterion micro-benchmarks of each ingest stage are in `benches/ingest.rs`.

pub mod access;
mod error;
pub mod generate;
pub mod load;
pub mod naive;
pub mod process;
pub mod send;
pub mod visible;
pub mod workload;

pub use error::{Error, Result};
