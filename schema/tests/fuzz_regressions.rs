//! Inputs the fuzz target `attributes` once crashed on, saved under
//! `fuzz/regressions/attributes/`, replayed in-process through the same function (the target's
//! own source files, included here).

#[path = "../../fuzz/src/attrs.rs"]
mod attrs;
#[path = "../../fuzz/src/normalise.rs"]
mod normalise;

#[path = "../../fuzz/src/regressions.rs"]
mod regressions;
use regressions::replay;

#[test]
fn attributes() {
    replay("attributes", &[], attrs::attributes_target);
}
