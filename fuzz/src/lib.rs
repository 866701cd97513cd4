//! Cairn's fuzz targets (`fuzz_targets/`), as functions of the raw input. Each module is also
//! compiled into the owning crate's `fuzz_regressions` test, which replays the inputs saved under
//! `fuzz/regressions/<target>/` through the same function.

pub mod attrs;
pub mod normalise;
pub mod otlp;
#[cfg(feature = "sql")]
pub mod sql;
