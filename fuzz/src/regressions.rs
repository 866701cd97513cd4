//! Replaying saved crash inputs in a crate's `fuzz_regressions` test (included there).

use std::path::PathBuf;

/// The saved inputs of `target`, by file name, except those in `separate` (inputs of a known
/// bug that have a test of their own).
pub fn inputs(target: &str, separate: &[&str]) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.is_file())
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).expect("input"))
            })
            .filter(|(name, _)| !separate.contains(&name.as_str()) && !name.starts_with('.'))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Runs every saved input of `target` (but those in `separate`) through `check`.
pub fn replay(target: &str, separate: &[&str], check: impl Fn(&[u8])) {
    for (name, data) in inputs(target, separate) {
        eprintln!("fuzz/regressions/{target}/{name}");
        check(&data);
    }
}

/// Runs one saved input of `target` through `check`.
#[allow(dead_code)]
pub fn replay_one(target: &str, name: &str, check: impl Fn(&[u8])) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target)
        .join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    check(&data);
}
