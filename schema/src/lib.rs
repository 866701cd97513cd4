//! `cairn-schema`: the storage contract between Cairn's writers and readers.
//!
//! What is stored, and where: the Arrow schema of the `spans` and `payloads` tables
//! ([`columns`], with the promoted agent columns of [`promoted`]), the ids and tenants rows are
//! keyed by ([`ids`], [`tenant`]), the object-store paths of hourly partitions ([`layout`]), and
//! the records with which compaction replaces small files by large ones ([`compaction`]), the
//! trace index that finds a trace's partitions by its id ([`trace_index`]), and the run
//! summaries stored beside span files ([`run_summary`]).
//!
//! Data flow around it: `cairn-normalize` turns OTLP into batches of this schema and back;
//! `cairn-store` writes them as Parquet under these paths and shows readers only committed
//! files; the collector, the compactor and the query side meet only here. This crate depends on
//! no other Cairn crate and on little else: Arrow, and object_store for its path type.

pub mod columns;
pub mod compaction;
mod error;
pub mod ids;
pub mod layout;
pub mod promoted;
pub mod run_summary;
pub mod tenant;
pub mod trace_index;

pub use error::{Error, Result};
