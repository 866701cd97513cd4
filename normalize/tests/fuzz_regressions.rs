//! Inputs the fuzz target `attributes` once crashed on, saved under
//! `fuzz/regressions/attributes/`, replayed in-process through the same function (the target's
//! own source files, included here).

#[path = "../../fuzz/src/attrs.rs"]
mod attrs;
#[path = "../../fuzz/src/normalise.rs"]
mod normalise;

#[path = "../../fuzz/src/regressions.rs"]
mod regressions;
use regressions::{replay, replay_one};

/// Inputs with a test of their own below.
const SEPARATE: &[&str] = &["unflatten-deep-key-stack-overflow"];

#[test]
fn attributes() {
    replay("attributes", SEPARATE, attrs::attributes_target);
}

/// A span attribute `llm.input_messages.<n>.` followed by about 9,000 path segments: the
/// un-flattening of message attributes recursed once per segment and overflowed the stack. Run
/// on a thread with the 2 MiB stack of the server's workers.
#[test]
fn unflatten_deep_key_stack_overflow() {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            replay_one(
                "attributes",
                "unflatten-deep-key-stack-overflow",
                attrs::attributes_target,
            )
        })
        .expect("thread")
        .join()
        .expect("no panic");
}
