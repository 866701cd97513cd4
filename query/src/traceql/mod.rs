//! TraceQL: parsed by a grammar ([`winnow`]) into a query, translated to SQL over `spans`.
//!
//! [`parse`] turns text into a [`ast::Query`]; [`legacy`] turns Tempo's older tag search
//! (`tags=`, `minDuration`, `maxDuration`) into the same query; [`attrs`] maps each attribute
//! onto a column of `spans` or a key of its attribute maps; [`sql`] writes the conditions as SQL
//! with bound parameters; [`search`] finds the matching traces and their spansets, evaluating
//! spanset and structural operators and pipeline stages per trace ([`eval`]); [`metrics`]
//! counts matching spans per step ([`histogram`]: per power-of-two bucket of a value).

pub mod ast;
pub mod attrs;
pub mod eval;
pub mod histogram;
pub mod legacy;
pub mod metrics;
mod parse;
pub mod search;
pub mod sql;

pub use parse::{attribute, duration, parse, MAX_QUERY_LEN};
