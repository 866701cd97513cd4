//! What compaction, retention and `cairn reindex` record in each tenant's tamper-evident chain
//! ([`cairn_store::chain`]): a merge as `replace` (its inputs, then its output, run summary and
//! manifest, hashed as written, so that an upload the store altered is reported by `cairn
//! verify`), run summaries of files not merged as `add`, superseded files deleted after the
//! grace period as `delete`, partitions past retention as `expire` with the rule; the files
//! `cairn reindex` writes (index files, run summaries, the index's marker) as `add`. Each is
//! appended once the store has changed. An append that fails is logged, counted and tried again
//! at the next pass (a reindex tries once more at its end, then fails): the store change it
//! describes has happened.

use std::sync::Mutex;
use std::time::Duration;

use cairn_schema::tenant::Tenant;
use cairn_store::chain::{Chain, FileRecord, Kind, Record};
use object_store::path::Path;

use crate::metrics::metrics;

/// The compactor's chain writer (none: nothing is recorded).
#[derive(Default)]
pub(crate) struct Recorder {
    chain: Option<Chain>,
    /// Appends that failed, retried at the next pass.
    pending: Mutex<Vec<(Tenant, Record)>>,
}

/// The tenant of a path under `<dataset>/tenant=<t>/`.
fn tenant_of(path: &Path) -> Option<Tenant> {
    let segment = path.parts().nth(1)?;
    Tenant::new(segment.as_ref().strip_prefix("tenant=")?).ok()
}

/// A retention as the rule of an expiry: `30d`, `12h`, `90m` or seconds.
pub(crate) fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s > 0 && s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        s if s > 0 && s.is_multiple_of(3_600) => format!("{}h", s / 3_600),
        s if s > 0 && s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl Recorder {
    /// Records as `writer` (`compactor`, `reindex`).
    pub(crate) fn new(chain: Chain, writer: &str) -> Self {
        Self {
            chain: Some(chain.with_writer(writer)),
            pending: Mutex::default(),
        }
    }

    /// Files written as `files` record them (their bytes known): one `add` entry.
    pub(crate) async fn written(&self, tenant: &Tenant, files: Vec<FileRecord>) {
        if files.is_empty() {
            return;
        }
        let mut record = Record::new(Kind::Add);
        record.files = files;
        self.append(tenant.clone(), record).await;
    }

    /// How many records are still not appended (after [`Self::retry`]).
    pub(crate) fn unrecorded(&self) -> usize {
        self.pending.lock().expect("pending records").len()
    }

    /// A merge committed: `inputs` replaced by `outputs` (hashed as written) and its manifest.
    pub(crate) async fn replaced(
        &self,
        inputs: Vec<Path>,
        outputs: Vec<FileRecord>,
        manifest: (&Path, &[u8]),
        rule: Option<String>,
    ) {
        let Some(tenant) = tenant_of(manifest.0) else {
            return;
        };
        if self.chain.is_none() {
            return;
        }
        let mut record = Record::new(Kind::Replace);
        record.inputs = inputs.iter().map(ToString::to_string).collect();
        record.files = outputs;
        record
            .files
            .push(FileRecord::of_bytes(manifest.0, manifest.1));
        record.rule = rule;
        self.append(tenant, record).await;
    }

    /// Files written beside visible ones (run summaries), hashed as written: one `add` entry
    /// for the tenant of their paths.
    pub(crate) async fn added(&self, files: Vec<FileRecord>) {
        let Some(tenant) = files
            .first()
            .and_then(|f| tenant_of(&Path::from(f.path.as_str())))
        else {
            return;
        };
        self.written(&tenant, files).await;
    }

    /// Files deleted: superseded ones after the grace period (`rule` none) or expired ones.
    pub(crate) async fn removed(&self, paths: &[Path], rule: Option<String>) {
        let Some(tenant) = paths.first().and_then(tenant_of) else {
            return;
        };
        let mut record = Record::new(if rule.is_some() {
            Kind::Expire
        } else {
            Kind::Delete
        });
        record.removed = paths.iter().map(ToString::to_string).collect();
        record.rule = rule;
        self.append(tenant, record).await;
    }

    /// Appends what earlier passes failed to.
    pub(crate) async fn retry(&self) {
        let pending = std::mem::take(&mut *self.pending.lock().expect("pending records"));
        for (tenant, record) in pending {
            self.append(tenant, record).await;
        }
    }

    async fn append(&self, tenant: Tenant, record: Record) {
        let Some(chain) = &self.chain else {
            return;
        };
        if let Err(e) = chain.append(&tenant, record.clone()).await {
            metrics().failures.inc();
            tracing::warn!(error = %e, %tenant, kind = record.kind.name(), "recording in the chain failed; retried at the next pass");
            self.pending
                .lock()
                .expect("pending records")
                .push((tenant, record));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_tenants() {
        assert_eq!(age(Duration::from_secs(30 * 86_400)), "30d");
        assert_eq!(age(Duration::from_secs(7_200)), "2h");
        assert_eq!(age(Duration::from_secs(61)), "61s");
        let p = Path::from("spans/tenant=acme/hour=2026-12-01T00/a.parquet");
        assert_eq!(tenant_of(&p).unwrap().as_str(), "acme");
        assert!(tenant_of(&Path::from("spans")).is_none());
    }
}
