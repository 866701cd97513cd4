//! What a compaction pass does and how often: the `--flag`, `CAIRN_*` variable and config file
//! key of each setting, with its only default.

use std::time::Duration;

use cairn_config::parse;

use crate::Retention;

#[derive(Debug, Clone, clap::Args)]
pub struct CompactionConfig {
    /// Time between compaction passes.
    #[arg(long, env = "CAIRN_COMPACTION_INTERVAL", default_value = "1m", value_parser = parse::span)]
    pub compaction_interval: Duration,
    /// Size compaction merges small files up to; files of at least half of it are left alone.
    #[arg(long, env = "CAIRN_COMPACTION_TARGET_SIZE", default_value = "128MiB", value_parser = parse::size)]
    pub compaction_target_size: usize,
    /// Small files the current hour's partition needs before they are merged; a partition whose
    /// hour has passed is merged from two.
    #[arg(long, env = "CAIRN_COMPACTION_MIN_FILES", default_value = "16", value_parser = at_least_two)]
    pub compaction_min_files: usize,
    /// How long replaced files stay readable after a merge; longer than any query.
    #[arg(long, env = "CAIRN_COMPACTION_GRACE", default_value = "5m", value_parser = parse::span)]
    pub compaction_grace: Duration,
    /// Memory one merge may use before its sort spills to disk.
    #[arg(long, env = "CAIRN_COMPACTION_MEMORY", default_value = "512MiB", value_parser = parse::size)]
    pub compaction_memory: usize,
    #[command(flatten)]
    pub retention: Retention,
}

/// A number of files worth merging.
fn at_least_two(text: &str) -> Result<usize, String> {
    parse::positive(text)
        .ok()
        .filter(|n| *n >= 2)
        .ok_or_else(|| "not a number of at least 2".to_owned())
}

impl Default for CompactionConfig {
    fn default() -> Self {
        cairn_config::defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = CompactionConfig::default();
        assert_eq!(c.compaction_interval, Duration::from_secs(60));
        assert_eq!(c.compaction_target_size, 128 << 20);
        assert_eq!(c.compaction_min_files, 16);
        assert_eq!(c.retention.retention, None);
        assert!(at_least_two("1").is_err());
        assert_eq!(at_least_two("2"), Ok(2));
    }
}
