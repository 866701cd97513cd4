//! Which files of a partition to merge: runs of small files, in name order (arrival order for
//! the collector's names), cut where the run reaches the target size.

use object_store::ObjectMeta;

/// Groups of `visible` files to merge into one each. `closed` partitions (their hour is over)
/// merge from two small files; open ones wait for `min_files`, so the hour being written is not
/// rewritten at every pass.
pub fn bins(
    visible: &[ObjectMeta],
    target_bytes: u64,
    min_files: usize,
    closed: bool,
) -> Vec<Vec<ObjectMeta>> {
    let small: Vec<&ObjectMeta> = visible
        .iter()
        .filter(|m| m.size < target_bytes / 2)
        .collect();
    let needed = if closed { 2 } else { min_files.max(2) };
    if small.len() < needed {
        return Vec::new();
    }
    let mut bins = Vec::new();
    let mut current: Vec<ObjectMeta> = Vec::new();
    let mut bytes = 0;
    for meta in small {
        current.push(meta.clone());
        bytes += meta.size;
        if bytes >= target_bytes {
            bins.push(std::mem::take(&mut current));
            bytes = 0;
        }
    }
    if current.len() >= 2 {
        bins.push(current);
    }
    bins
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::path::Path;

    fn files(sizes: &[u64]) -> Vec<ObjectMeta> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, size)| ObjectMeta {
                location: Path::from(format!("p/{i:03}.parquet")),
                last_modified: chrono::Utc::now(),
                size: *size,
                e_tag: None,
                version: None,
            })
            .collect()
    }

    fn sizes(bins: &[Vec<ObjectMeta>]) -> Vec<Vec<u64>> {
        bins.iter()
            .map(|b| b.iter().map(|m| m.size).collect())
            .collect()
    }

    #[test]
    fn merges_runs_of_small_files_up_to_the_target() {
        // Large files stay; small ones are cut into bins reaching the target.
        let f = files(&[60, 10, 20, 30, 40, 5, 100]);
        assert_eq!(sizes(&bins(&f, 100, 2, false)), [vec![10, 20, 30, 40]]);
        assert_eq!(sizes(&bins(&f, 100, 6, false)), Vec::<Vec<u64>>::new());
        assert_eq!(
            sizes(&bins(&f, 1000, 2, true)),
            [vec![60, 10, 20, 30, 40, 5, 100]]
        );
        // An open partition waits for enough files.
        assert!(bins(&files(&[1, 2, 3]), 100, 4, false).is_empty());
        assert_eq!(
            sizes(&bins(&files(&[1, 2, 3]), 100, 4, true)),
            [vec![1, 2, 3]]
        );
        // A lone small file is never rewritten.
        assert!(bins(&files(&[1]), 100, 1, true).is_empty());
    }
}
