//! `cairn-query`: the read half of Cairn.
//!
//! Data flow: a request names a tenant; [`engine::QueryEngine::session`] builds a DataFusion
//! session whose only tables are that tenant's — [`catalog::SpansTable`] over the Parquet files
//! under `spans/tenant=<t>/`, pruning hour partitions by the query's `start_time` bounds before
//! listing and row groups by statistics and bloom filters while reading — and the views of
//! [`views`]. [`guard`] admits only read-only statements. Results leave as JSON, CSV, Arrow IPC or
//! a text table ([`format`]); the HTTP API ([`http`]) also serves whole traces as OTLP JSON
//! ([`trace`]) and answers lineage, governance, replay and cost questions ([`api`]) from SQL over
//! the same views. The same SQL is served over the Postgres wire protocol ([`pg`]). Statements
//! that scan more than one machine should are sent to a Ballista cluster ([`distributed`]).

pub mod api;
pub mod bounded;
pub mod catalog;
mod config;
pub mod dialect;
pub mod distributed;
pub mod engine;
mod error;
pub mod format;
pub mod guard;
pub mod http;
pub mod metrics;
pub mod pg;
pub mod policy;
pub mod run_parts;
pub mod server;
mod spill;
pub mod tempo;
pub mod tenant_limits;
pub mod trace;
pub mod traceql;
pub mod views;

pub use config::{DistributeConfig, EngineConfig, Listen, PgConfig, QueryConfig};
pub use engine::QueryEngine;
pub use error::{Error, Result};
pub use server::QueryServer;
