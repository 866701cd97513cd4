//! SQL over the Postgres wire protocol, for psql, Grafana's PostgreSQL data source and other
//! Postgres clients.
//!
//! Data flow: [`server`] accepts connections on `--pg-addr`; [`auth`] admits each as a tenant
//! (its user name, or the `cairn.tenant` startup option) with SCRAM-SHA-256 when
//! `--pg-password` is set; [`handler`] answers the simple query protocol statement by
//! statement, and [`extended`] the extended one (prepared statements, [`params`]), both through
//! the engine's guard, runtime, timeout and memory, in the tenant's session extended with the
//! Postgres catalog ([`catalog`], [`functions`], [`search_path`]); [`types`] decides how each
//! column is sent and [`rows`] sends it. The protocol itself, authentication exchanges, TLS,
//! `SET`, `SHOW` and transaction statements are pgwire's and datafusion-postgres's.

pub mod auth;
mod catalog;
mod extended;
mod functions;
mod handler;
mod params;
mod rows;
mod search_path;
mod server;
pub mod types;

pub use server::PgServer;
