//! What a compaction pass does and how often.

use std::time::Duration;

use crate::Retention;

#[derive(Debug, Clone)]
pub struct CompactionConfig {
    /// Time between passes.
    pub interval: Duration,
    /// Size merged files aim for; files of at least half of it are left alone.
    pub target_bytes: u64,
    /// Small files a partition still being written must have before they are merged; a
    /// partition whose hour has passed is merged from two.
    pub min_files: usize,
    /// How long superseded files stay readable after a merge commits; longer than any query.
    pub grace: Duration,
    /// Memory one merge may use before its sort spills to disk.
    pub memory_bytes: usize,
    /// How long each tenant's data is kept.
    pub retention: Retention,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            target_bytes: 128 << 20,
            min_files: 16,
            grace: Duration::from_secs(300),
            memory_bytes: 512 << 20,
            retention: Retention::default(),
        }
    }
}
