//! Inputs the fuzz targets `otlp_protobuf`, `otlp_json` and `wal_record` once crashed on, saved
//! under `fuzz/regressions/<target>/`, replayed in-process through the same functions (the
//! targets' own source files, included here).

#[path = "../../fuzz/src/normalise.rs"]
mod normalise;
#[path = "../../fuzz/src/otlp.rs"]
mod otlp;

#[path = "../../fuzz/src/regressions.rs"]
mod regressions;
use regressions::replay;

#[test]
fn otlp_protobuf() {
    replay("otlp_protobuf", &[], otlp::otlp_protobuf);
}

#[test]
fn otlp_json() {
    replay("otlp_json", &[], otlp::otlp_json);
}

#[test]
fn wal_record() {
    replay("wal_record", &[], otlp::wal_record);
}
