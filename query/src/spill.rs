//! Where queries spill: one directory per process under `--spill-dir`, and the sweep of the
//! directories a crashed process left behind.
//!
//! DataFusion creates its own temporary directory inside the one it is given and deletes it when
//! the engine is dropped, which a killed process never does: its spill files would stay on disk
//! for good, counted by no limit. Each process therefore spills into `cairn-<pid>`, and at start
//! removes every `cairn-<pid>` whose process is gone (or whose pid is its own: a restarted
//! container reuses pids). Directories of live processes sharing the spill directory are kept.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

const PREFIX: &str = "cairn-";

/// Creates this process's spill directory under `root` after removing the stale ones, and
/// returns it.
pub fn prepare(root: &Path) -> Result<PathBuf> {
    let failed = |what: &str, path: &Path, e: std::io::Error| {
        Error::Internal(format!(
            "cannot {what} the spill directory {}: {e}",
            path.display()
        ))
    };
    std::fs::create_dir_all(root).map_err(|e| failed("create", root, e))?;
    let own = std::process::id();
    let entries = std::fs::read_dir(root).map_err(|e| failed("read", root, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own || !alive(pid) {
            let path = entry.path();
            match std::fs::remove_dir_all(&path) {
                Ok(()) => tracing::info!(path = %path.display(), "removed a stale spill directory"),
                Err(e) => tracing::warn!(path = %path.display(), error = %e,
                    "cannot remove a stale spill directory"),
            }
        }
    }
    let own_dir = root.join(format!("{PREFIX}{own}"));
    std::fs::create_dir_all(&own_dir).map_err(|e| failed("create", &own_dir, e))?;
    Ok(own_dir)
}

/// Whether process `pid` runs. Without `/proc` nothing can be told, so every other process
/// counts as running and its directory is kept.
fn alive(pid: u32) -> bool {
    !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_what_dead_processes_left_and_keeps_the_rest() {
        let root = tempfile::tempdir().unwrap();
        // No process has a pid this high (Linux caps pids at 2^22).
        let dead = root.path().join("cairn-4000000000");
        std::fs::create_dir_all(dead.join("datafusion-x")).unwrap();
        std::fs::write(dead.join("datafusion-x/spill.arrow"), b"rows").unwrap();
        let own_leftover = root.path().join(format!("cairn-{}", std::process::id()));
        std::fs::create_dir_all(own_leftover.join("datafusion-y")).unwrap();
        let live = root.path().join("cairn-1");
        std::fs::create_dir_all(&live).unwrap();
        let foreign = root.path().join("other-file");
        std::fs::write(&foreign, b"not ours").unwrap();

        let dir = prepare(root.path()).unwrap();

        assert_eq!(dir, own_leftover);
        assert!(dir.is_dir());
        assert!(!dir.join("datafusion-y").exists(), "own leftovers kept");
        assert!(!dead.exists(), "a dead process's spill files kept");
        assert!(live.exists(), "pid 1 runs, its directory must stay");
        assert!(foreign.exists());
    }
}
