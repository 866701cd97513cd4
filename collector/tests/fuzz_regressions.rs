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

/// Inputs of bugs not fixed yet, each replayed by its own ignored test below.
const KNOWN: &[&str] = &["strict-duplicate-key-types"];

#[test]
fn otlp_protobuf() {
    replay("otlp_protobuf", KNOWN, otlp::otlp_protobuf);
}

#[test]
fn otlp_json() {
    replay("otlp_json", KNOWN, otlp::otlp_json);
}

#[test]
fn wal_record() {
    replay("wal_record", KNOWN, otlp::wal_record);
}

/// A span with attribute `k` twice, first a string, then an array: `attribute_types` records
/// `k → array`, and reading back pairs that type with the first value, which is not an array
/// (hardening issue, item 11). Accepted, but its trace cannot be read.
#[test]
#[ignore = "duplicate attribute keys of different types do not read back: hardening issue item 11"]
fn strict_duplicate_key_types() {
    replay_one("otlp_json", "strict-duplicate-key-types", |data| {
        let request = decode_request(Format::Json, data).expect("decodes");
        normalise::check(&request, true);
    });
}
