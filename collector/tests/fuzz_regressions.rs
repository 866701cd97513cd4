//! Inputs the fuzz targets `otlp_protobuf`, `otlp_json` and `wal_record` once crashed on, saved
//! under `fuzz/regressions/<target>/`, replayed in-process through the same functions (the
//! targets' own source files, included here). Inputs named `strict-*` failed only the lossless
//! read-back of `CAIRN_FUZZ_STRICT=1`, which their tests ask for.

use cairn_collector::body::{decode_request, Format};

#[path = "../../fuzz/src/normalise.rs"]
mod normalise;
#[path = "../../fuzz/src/otlp.rs"]
mod otlp;

#[path = "../../fuzz/src/regressions.rs"]
mod regressions;
use regressions::{replay, replay_one};

/// Inputs with a test of their own below.
const SEPARATE: &[&str] = &["strict-duplicate-key-types"];

#[test]
fn otlp_protobuf() {
    replay("otlp_protobuf", SEPARATE, otlp::otlp_protobuf);
}

#[test]
fn otlp_json() {
    replay("otlp_json", SEPARATE, otlp::otlp_json);
}

#[test]
fn wal_record() {
    replay("wal_record", SEPARATE, otlp::wal_record);
}

/// A span with attribute `k` twice, first a string, then an array: the types were recorded per
/// key, so reading back paired the array type with the string value and the trace could not be
/// read. Both values must read back with their own types.
#[test]
fn strict_duplicate_key_types() {
    replay_one("otlp_json", "strict-duplicate-key-types", |data| {
        let request = decode_request(Format::Json, data).expect("decodes");
        normalise::check(&request, true);
    });
}
