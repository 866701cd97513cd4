//! Compaction records: how a merged file replaces the files it was made from without a reader
//! ever seeing a span twice or missing one.
//!
//! A compaction writes `compacted-<id>.parquet` into the partition, then commits it by writing
//! `compacted-<id>.json`, a [`Manifest`] naming every file the output supersedes. The manifest
//! PUT is the commit point:
//!
//! - a `compacted-*` file counts only once its manifest exists;
//! - any file named in a manifest present in the partition does not count.
//!
//! Whatever moment a reader lists the partition, it therefore sees either the inputs or the
//! output, never both and never neither. Inputs are deleted only after a grace period longer than
//! a query, so a reader that listed before the commit can still open them. A manifest also carries
//! the names superseded by its compacted inputs, so a write-ahead-log segment written again under
//! its old name after a crash stays superseded.

use std::collections::HashSet;

use object_store::{path::Path, ObjectMeta};
use serde::{Deserialize, Serialize};

use crate::run_summary;

/// Name prefix of compaction outputs and their manifests.
pub const OUTPUT_PREFIX: &str = "compacted-";
const PARQUET: &str = ".parquet";
const MANIFEST: &str = ".json";

/// The commit record of one compaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// File names (within the partition) that the output replaces.
    pub supersedes: Vec<String>,
    /// Rows in the output.
    pub rows: u64,
}

/// A new output name and the name of its manifest.
pub fn new_output() -> (String, String) {
    let id = uuid::Uuid::now_v7();
    (
        format!("{OUTPUT_PREFIX}{id}{PARQUET}"),
        format!("{OUTPUT_PREFIX}{id}{MANIFEST}"),
    )
}

/// The manifest name of a compaction output, or `None` if `name` is not one.
pub fn manifest_of(name: &str) -> Option<String> {
    let id = name.strip_prefix(OUTPUT_PREFIX)?.strip_suffix(PARQUET)?;
    Some(format!("{OUTPUT_PREFIX}{id}{MANIFEST}"))
}

/// The output name of a manifest, or `None` if `name` is not a manifest.
pub fn output_of(manifest: &str) -> Option<String> {
    let id = manifest
        .strip_prefix(OUTPUT_PREFIX)?
        .strip_suffix(MANIFEST)?;
    Some(format!("{OUTPUT_PREFIX}{id}{PARQUET}"))
}

/// Whether `name` is a compaction manifest.
pub fn is_manifest(name: &str) -> bool {
    output_of(name).is_some()
}

/// The objects of one partition directory, sorted into what readers see and what compaction may
/// clean up.
#[derive(Debug, Default)]
pub struct PartitionFiles {
    /// Data files readers use, in name order.
    pub visible: Vec<ObjectMeta>,
    /// Manifests present, with what they supersede.
    pub manifests: Vec<(ObjectMeta, Manifest)>,
    /// Data files superseded by a manifest (to delete after the grace period).
    pub superseded: Vec<ObjectMeta>,
    /// Compaction outputs without a manifest: uncommitted, or left by a crash.
    pub uncommitted: Vec<ObjectMeta>,
    /// Run summaries ([`crate::run_summary`]) of visible data files, in name order.
    pub summaries: Vec<ObjectMeta>,
    /// Run summaries of data files that are not visible (superseded, uncommitted or gone).
    pub stale_summaries: Vec<ObjectMeta>,
}

impl PartitionFiles {
    /// Classifies the objects of one partition; `manifests` are the parsed manifests among them.
    pub fn classify(objects: Vec<ObjectMeta>, manifests: Vec<(ObjectMeta, Manifest)>) -> Self {
        let superseded_names: HashSet<&str> = manifests
            .iter()
            .flat_map(|(_, m)| m.supersedes.iter().map(String::as_str))
            .collect();
        let committed: HashSet<String> = manifests
            .iter()
            .filter_map(|(meta, _)| output_of(meta.location.filename()?))
            .collect();
        let mut out = PartitionFiles::default();
        let mut summaries = Vec::new();
        for meta in objects {
            let Some(name) = meta.location.filename() else {
                continue;
            };
            if name.ends_with(run_summary::SUFFIX) {
                summaries.push(meta);
                continue;
            }
            if !name.ends_with(PARQUET) {
                continue;
            }
            if superseded_names.contains(name) {
                out.superseded.push(meta);
            } else if name.starts_with(OUTPUT_PREFIX) && !committed.contains(name) {
                out.uncommitted.push(meta);
            } else {
                out.visible.push(meta);
            }
        }
        out.visible.sort_by(|a, b| a.location.cmp(&b.location));
        let visible: HashSet<&str> = out
            .visible
            .iter()
            .filter_map(|m| m.location.filename())
            .collect();
        let (mut current, stale): (Vec<_>, Vec<_>) = summaries.into_iter().partition(|m| {
            (m.location.filename())
                .and_then(run_summary::data_of)
                .is_some_and(|data| visible.contains(data.as_str()))
        });
        current.sort_by(|a, b| a.location.cmp(&b.location));
        out.summaries = current;
        out.stale_summaries = stale;
        out.manifests = manifests;
        out
    }

    /// The visible data files without a run summary.
    pub fn unsummarised(&self) -> Vec<&ObjectMeta> {
        run_summary::unsummarised(&self.visible, &self.summaries)
    }
}

/// The directory holding `path`.
pub fn parent(path: &Path) -> Path {
    let parts: Vec<_> = path.parts().collect();
    Path::from_iter(parts[..parts.len().saturating_sub(1)].iter().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            location: Path::from(format!("spans/tenant=t/hour=2026-11-28T03/{name}")),
            last_modified: chrono::Utc::now(),
            size: 1,
            e_tag: None,
            version: None,
        }
    }

    fn names(v: &[ObjectMeta]) -> Vec<&str> {
        v.iter().map(|m| m.location.filename().unwrap()).collect()
    }

    #[test]
    fn a_reader_sees_inputs_or_output_never_both() {
        let (out, manifest) = new_output();
        let inputs = ["a.parquet", "b.parquet"];
        let m = Manifest {
            supersedes: inputs.iter().map(|s| s.to_string()).collect(),
            rows: 2,
        };
        // Output written, not committed: inputs only.
        let p = PartitionFiles::classify(
            vec![meta("a.parquet"), meta("b.parquet"), meta(&out)],
            vec![],
        );
        assert_eq!(names(&p.visible), inputs);
        assert_eq!(names(&p.uncommitted), [out.as_str()]);
        // Committed: output only.
        let listing = vec![
            meta("a.parquet"),
            meta("b.parquet"),
            meta(&out),
            meta(&manifest),
            meta("c.parquet"),
        ];
        let p = PartitionFiles::classify(listing, vec![(meta(&manifest), m.clone())]);
        assert_eq!(names(&p.visible), ["c.parquet", out.as_str()]);
        assert_eq!(names(&p.superseded), inputs);
        // An input written again after its deletion stays superseded.
        let p = PartitionFiles::classify(
            vec![meta(&out), meta("a.parquet")],
            vec![(meta(&manifest), m)],
        );
        assert_eq!(names(&p.visible), [out.as_str()]);
        assert_eq!(manifest_of(&out).as_deref(), Some(manifest.as_str()));
        assert!(is_manifest(&manifest) && !is_manifest(&out));
        // A summary counts with its data file.
        let summary = |n: &str| meta(&run_summary::summary_of(n).unwrap());
        let p = PartitionFiles::classify(
            vec![
                meta("a.parquet"),
                summary("a.parquet"),
                meta(&out),
                summary(&out),
                meta("c.parquet"),
                summary("d.parquet"),
            ],
            vec![],
        );
        assert_eq!(names(&p.summaries), ["a.runs"]);
        assert_eq!(names(&p.stale_summaries).len(), 2);
        assert_eq!(
            names(&p.unsummarised().into_iter().cloned().collect::<Vec<_>>()),
            ["c.parquet"]
        );
        assert_eq!(
            parent(&meta("x").location).as_ref(),
            "spans/tenant=t/hour=2026-11-28T03"
        );
    }
}
