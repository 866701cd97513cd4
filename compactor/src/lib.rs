//! `cairn-compactor`: keeps the store healthy over time.
//!
//! Data flow: every interval, one pass walks `<dataset>/tenant=*/hour=*` partitions. In each it
//! deletes what earlier compactions superseded once their grace period has passed, then merges
//! runs of small files into files of about the target size ([`merge`]: spans through a
//! DataFusion sort that keeps the (trace id, start time) order and spills to disk within its
//! memory budget; payloads in arrival order, one row per hash) and commits each merge with a
//! manifest ([`cairn_schema::compaction`]), so queries running meanwhile see every span exactly
//! once. Partitions past the tenant's retention are deleted whole ([`retention`]). Each tenant's
//! trace index (`trace_index/tenant=*`, one flat directory) is merged the same way, first, into
//! one entry per (trace, hour), and loses the entries of expired hours before their spans go.
//! Each span file gets its run summary ([`cairn_schema::run_summary`]): a merge output before its
//! manifest commits it, any other span file of an hour that is over in the next pass.
//! [`reindex`] builds the index of a store written before it existed. Only one compactor may run
//! against a store at a time: alone, or taking turns through a lease the binary holds ([`Gate`]).
//! Every merge, deletion and expiry is recorded in the tenant's tamper-evident chain
//! ([`record`]), so that `cairn verify` explains every file that came and went.

mod config;
mod error;
mod gate;
mod hashing;
mod merge;
pub mod metrics;
mod pass;
mod plan;
mod record;
mod reindex;
mod retention;
mod summary;

pub use config::CompactionConfig;
pub use error::{Error, Result};
pub use gate::Gate;
pub use pass::{run, Compactor, PassReport};
pub use reindex::{reindex, ReindexReport};
pub use retention::Retention;
