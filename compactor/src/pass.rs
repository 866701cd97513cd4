//! One compaction pass over the whole store, and the loop that runs a pass every interval.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{label, metrics};
use arrow::array::{Array, AsArray};
use cairn_schema::compaction::{self, Manifest, PartitionFiles};
use cairn_schema::layout::{self, Dataset, HOUR_NANOS};
use cairn_schema::run_summary;
use cairn_schema::tenant::Tenant;
use cairn_schema::trace_index;
use cairn_store::chain::FileRecord;
use cairn_store::visible::VisibleStore;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use tokio_util::sync::CancellationToken;

use crate::record::{age, Recorder};
use crate::{merge, plan, summary, CompactionConfig, Error, Gate, Result};

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub partitions: usize,
    pub merges: usize,
    pub files_merged: usize,
    pub files_deleted: usize,
    pub partitions_dropped: usize,
    /// Run summaries written for span files that were not merged.
    pub summaries: usize,
    pub failures: usize,
}

/// Compacts and expires the files of one store.
///
/// # Several compactors, one at a time
///
/// With a lease ([`Compactor::with_gate`]), compactors of several processes take turns, and a
/// pass stops at the next safe point once leadership ends. What must never happen is two
/// committed merges sharing an input: readers would see both outputs, and the shared input's
/// spans twice. The safe points follow from what each step changes:
///
/// - reading, planning, merging into an uncommitted output, writing a run summary: nothing a
///   reader sees (an uncommitted output is garbage after the grace period; a summary counts
///   only beside a visible data file, whose rows it is computed from). These steps are simply
///   abandoned when leadership ends (`run` drops the pass);
/// - deleting: only files superseded past the grace period, abandoned outputs and orphaned
///   manifests, which any compactor may delete, twice over if need be. Checked before each
///   batch;
/// - the manifest PUT, the commit point: the one step that needs the lease. It starts only
///   while the gate is open, checked immediately before, and then runs to completion as a task
///   of its own even if the pass is dropped (`run` waits for it before it returns, so a
///   released lease is never handed over under an in-flight commit).
///
/// Can a commit still in flight when leadership ends overlap the next leader's pass? The
/// elector leads until the sending of its last renewal plus the renew deadline; the next one
/// takes over no earlier than a whole lease duration after it saw that renewal (a third of the
/// duration later, 5 s by default), then waits a compaction interval before its first pass.
/// A commit started before the deadline lands long before that, unless the store stalls it for
/// longer than all of it (a PUT retried for seconds). For that case a leased compactor checks,
/// right before committing, that every input of its merge is still visible: a late commit of
/// the previous leader that superseded one of them has landed by then, and this merge is
/// abandoned instead. What remains is a commit of the old leader landing in the instant
/// between the new leader's check and its own PUT after having been in flight for more than
/// the whole hand-over — not excluded by construction (object stores offer no conditional
/// write across two keys), but beyond any realistic store latency.
pub struct Compactor {
    raw: Arc<dyn ObjectStore>,
    visible: VisibleStore,
    config: CompactionConfig,
    gate: Gate,
    /// Held (shared) by each commit in flight; taken whole once the loop ends.
    commits: Arc<tokio::sync::RwLock<()>>,
    /// Records merges, deletions and expiries in each tenant's chain.
    recorder: Arc<Recorder>,
}

fn name(meta: &ObjectMeta) -> &str {
    meta.location.filename().unwrap_or_default()
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

impl Compactor {
    pub fn new(store: Arc<dyn ObjectStore>, config: CompactionConfig) -> Self {
        Self {
            visible: VisibleStore::new(Arc::clone(&store)),
            raw: store,
            config,
            gate: Gate::always(),
            commits: Arc::default(),
            recorder: Arc::default(),
        }
    }

    /// Records what each pass changes in the tenants' tamper-evident chains.
    pub fn with_chain(mut self, chain: cairn_store::chain::Chain) -> Self {
        self.recorder = Arc::new(Recorder::new(chain, "compactor"));
        self
    }

    /// Records with `recorder` (`cairn reindex`'s own).
    pub(crate) fn with_recorder(mut self, recorder: Arc<Recorder>) -> Self {
        self.recorder = recorder;
        self
    }

    /// Changes the store only while `gate` is open (see the type's documentation).
    pub fn with_gate(mut self, gate: Gate) -> Self {
        self.gate = gate;
        self
    }

    /// `Err(NotLeader)` unless the store may be changed now.
    fn leading(&self) -> Result<()> {
        if self.gate.is_open() {
            Ok(())
        } else {
            Err(Error::NotLeader)
        }
    }

    /// Waits for the commits in flight (started by passes since dropped) to land.
    async fn quiesce(&self) {
        let _all = self.commits.write().await;
    }

    /// Runs one pass over every dataset, tenant and hour partition. Failures are counted and
    /// logged per partition; the rest of the pass goes on.
    #[tracing::instrument(name = "compaction.pass", skip_all)]
    pub async fn pass(&self) -> PassReport {
        let mut report = PassReport::default();
        // One moment for the whole pass: the index drops an hour's entries in the same pass as,
        // and before, retention deletes that hour's spans.
        let now = Utc::now();
        self.recorder.retry().await;
        for dataset in [Dataset::TraceIndex, Dataset::Spans, Dataset::Payloads] {
            let mut files = 0;
            match self.tenants(dataset).await {
                Ok(tenants) => {
                    for tenant in tenants {
                        if !self.gate.is_open() {
                            break;
                        }
                        files += match dataset {
                            Dataset::TraceIndex => self.index(&tenant, now, &mut report).await,
                            _ => self.tenant(dataset, &tenant, now, &mut report).await,
                        };
                    }
                }
                Err(e) => {
                    report.failures += 1;
                    tracing::warn!(error = %e, dataset = dataset.prefix(), "listing tenants failed");
                }
            }
            metrics()
                .store_files
                .get_or_create(&label(dataset))
                .set(files as i64);
        }
        metrics().failures.inc_by(report.failures as u64);
        report
    }

    async fn tenants(&self, dataset: Dataset) -> Result<Vec<Tenant>> {
        let listing = self
            .raw
            .list_with_delimiter(Some(&Path::from(dataset.prefix())))
            .await?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|p| Tenant::new(p.filename()?.strip_prefix("tenant=")?).ok())
            .collect())
    }

    /// One tenant's partitions of a dataset; returns the readable files left.
    async fn tenant(
        &self,
        dataset: Dataset,
        tenant: &Tenant,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> usize {
        let listing = match self
            .raw
            .list_with_delimiter(Some(&layout::tenant_prefix(dataset, tenant)))
            .await
        {
            Ok(l) => l,
            Err(e) => {
                report.failures += 1;
                tracing::warn!(error = %e, %tenant, "listing partitions failed");
                return 0;
            }
        };
        let first_kept = self
            .config
            .retention
            .first_kept_hour(tenant, dataset, nanos(now));
        let mut files = 0;
        for hour in listing
            .common_prefixes
            .iter()
            .filter_map(|p| layout::parse_hour_segment(p.filename()?))
        {
            let result = if first_kept.is_some_and(|first| hour < first) {
                self.drop_partition(dataset, tenant, hour, report).await
            } else {
                self.partition(dataset, tenant, hour, now, report).await
            };
            match result {
                Ok(n) => files += n,
                Err(Error::NotLeader) => break,
                Err(e) => {
                    report.failures += 1;
                    tracing::warn!(error = %e, %tenant, hour = layout::format_hour(hour), dataset = dataset.prefix(), "compaction of a partition failed");
                }
            }
        }
        files
    }

    /// One tenant's trace index: cleans up, then merges small files (and rewrites those holding
    /// entries of hours past retention); returns the readable files left. Failures are counted
    /// and logged.
    async fn index(&self, tenant: &Tenant, now: DateTime<Utc>, report: &mut PassReport) -> usize {
        let prefix = trace_index::dir(tenant);
        let result = async {
            let files = self.classify(&prefix).await?;
            report.partitions += 1;
            report.files_deleted += self
                .delete(Dataset::TraceIndex, self.garbage(&files, now), None)
                .await?;
            let first_kept =
                self.config
                    .retention
                    .first_kept_hour(tenant, Dataset::TraceIndex, nanos(now));
            let mut expired = Vec::new();
            if let Some(first) = first_kept {
                for meta in &files.visible {
                    if self.first_hour(meta).await?.is_some_and(|h| h < first) {
                        expired.push(meta.clone());
                    }
                }
            }
            let mut bins = plan::bins(
                &files.visible,
                self.config.compaction_target_size as u64,
                self.config.compaction_min_files,
                false,
            );
            if !expired.is_empty() {
                // One merge rewrites every file with expired entries, with the small ones.
                let mut bin = expired;
                for meta in bins.into_iter().flatten() {
                    if !bin.iter().any(|m| m.location == meta.location) {
                        bin.push(meta);
                    }
                }
                bins = vec![bin];
            }
            let mut readable = files.visible.len();
            for bin in bins {
                self.merge(Dataset::TraceIndex, &prefix, &files, &bin, first_kept)
                    .await?;
                report.merges += 1;
                report.files_merged += bin.len();
                readable = readable + 1 - bin.len();
            }
            Ok::<_, crate::Error>(readable)
        }
        .await;
        result.unwrap_or_else(|e| {
            if matches!(e, Error::NotLeader) {
                return 0;
            }
            report.failures += 1;
            tracing::warn!(error = %e, %tenant, "compaction of a trace index failed");
            0
        })
    }

    /// Merges every committed file of `tenant`'s trace index into one (after `cairn reindex`).
    pub(crate) async fn merge_index(&self, tenant: &Tenant) -> Result<()> {
        let prefix = trace_index::dir(tenant);
        let files = self.classify(&prefix).await?;
        if files.visible.len() > 1 {
            let bin = files.visible.clone();
            self.merge(Dataset::TraceIndex, &prefix, &files, &bin, None)
                .await?;
        }
        Ok(())
    }

    /// The earliest hour an index file holds entries of (answered from its statistics).
    async fn first_hour(&self, meta: &ObjectMeta) -> Result<Option<i64>> {
        use datafusion::functions_aggregate::expr_fn::min;
        use datafusion::prelude::col;
        let hour = trace_index::column::HOUR;
        let batches = merge::read(
            &self.raw,
            std::slice::from_ref(meta),
            &trace_index::schema(),
            64 << 20,
            1,
        )?
        .aggregate(vec![], vec![min(col(hour)).alias(hour)])?
        .collect()
        .await?;
        Ok(batches
            .first()
            .filter(|b| b.num_rows() > 0)
            .and_then(|b| {
                b.column(0)
                    .as_primitive_opt::<arrow::datatypes::Int64Type>()
                    .cloned()
            })
            .filter(|a| a.is_valid(0))
            .map(|a| a.value(0)))
    }

    async fn classify(&self, prefix: &Path) -> Result<PartitionFiles> {
        let objects = self.raw.list_with_delimiter(Some(prefix)).await?.objects;
        Ok(self.visible.partition(objects).await?)
    }

    fn expired(&self, meta: &ObjectMeta, now: DateTime<Utc>) -> bool {
        now.signed_duration_since(meta.last_modified)
            .to_std()
            .is_ok_and(|age| age > self.config.compaction_grace)
    }

    /// Deletes `paths` in order (a missing one is already gone); returns how many went. They
    /// are recorded as deleted, or as expired under `rule`.
    async fn delete(
        &self,
        dataset: Dataset,
        paths: Vec<Path>,
        rule: Option<String>,
    ) -> Result<usize> {
        if !paths.is_empty() {
            self.leading()?;
        }
        let (raw, recorder) = (Arc::clone(&self.raw), Arc::clone(&self.recorder));
        let (n, result) = self
            .to_completion(async move {
                let mut n = 0;
                let mut result: Result<()> = Ok(());
                for path in &paths {
                    match raw.delete(path).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => n += 1,
                        Err(e) => {
                            result = Err(e.into());
                            break;
                        }
                    }
                }
                recorder.removed(&paths[..n], rule).await;
                (n, result)
            })
            .await?;
        result?;
        metrics()
            .files_deleted
            .get_or_create(&label(dataset))
            .inc_by(n as u64);
        Ok(n)
    }

    /// Cleans up, then merges, one partition; returns its readable files afterwards.
    async fn partition(
        &self,
        dataset: Dataset,
        tenant: &Tenant,
        hour: i64,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<usize> {
        let prefix = layout::hour_prefix(dataset, tenant, hour);
        let files = self.classify(&prefix).await?;
        report.partitions += 1;
        report.files_deleted += self
            .delete(dataset, self.garbage(&files, now), None)
            .await?;

        let closed = (hour + 1) * HOUR_NANOS
            + i64::try_from(self.config.compaction_grace.as_nanos()).unwrap_or(i64::MAX)
            < nanos(now);
        let bins = plan::bins(
            &files.visible,
            self.config.compaction_target_size as u64,
            self.config.compaction_min_files,
            closed,
        );
        let mut readable = files.visible.len();
        for bin in &bins {
            self.merge(dataset, &prefix, &files, bin, None).await?;
            report.merges += 1;
            report.files_merged += bin.len();
            readable = readable + 1 - bin.len();
        }
        if dataset == Dataset::Spans && closed {
            // Span files of an hour that is over and were not merged now (outputs have theirs)
            // get a summary; those of the open hour are summarised when they are merged.
            let merged: HashSet<&Path> = bins.iter().flatten().map(|m| &m.location).collect();
            for meta in files.unsummarised() {
                if !merged.contains(&meta.location)
                    && self.summarise(&meta.location, true).await.is_some()
                {
                    report.summaries += 1;
                }
            }
        }
        metrics().partition_files.observe(readable as f64);
        Ok(readable)
    }

    /// What can go: superseded files whose manifest is past the grace period, uncommitted
    /// outputs past it (left by a crash), and manifests of outputs that are themselves gone or
    /// going. Data files come first.
    fn garbage(&self, files: &PartitionFiles, now: DateTime<Utc>) -> Vec<Path> {
        let released: HashSet<&str> = files
            .manifests
            .iter()
            .filter(|(meta, _)| self.expired(meta, now))
            .flat_map(|(_, m)| m.supersedes.iter().map(String::as_str))
            .collect();
        let mut doomed: Vec<&ObjectMeta> = files
            .superseded
            .iter()
            .filter(|m| released.contains(name(m)))
            .chain(files.uncommitted.iter().filter(|m| self.expired(m, now)))
            .collect();
        let remaining: HashSet<&str> = files
            .visible
            .iter()
            .chain(&files.superseded)
            .map(name)
            .filter(|n| !doomed.iter().any(|d| name(d) == *n))
            .collect();
        doomed.extend(files.manifests.iter().map(|(meta, _)| meta).filter(|meta| {
            compaction::output_of(name(meta)).is_some_and(|out| !remaining.contains(out.as_str()))
        }));
        // Summaries of span files that are gone (or going now): nothing counts them any more.
        let present: HashSet<&str> = remaining
            .iter()
            .copied()
            .chain(files.uncommitted.iter().map(name))
            .collect();
        doomed.extend(files.stale_summaries.iter().filter(|meta| {
            run_summary::data_of(name(meta)).is_none_or(|data| !present.contains(data.as_str()))
        }));
        doomed.into_iter().map(|m| m.location.clone()).collect()
    }

    /// Merges `bin` into one output and commits it with its manifest.
    #[tracing::instrument(name = "compaction.merge", skip_all, fields(dataset = dataset.prefix()))]
    async fn merge(
        &self,
        dataset: Dataset,
        prefix: &Path,
        files: &PartitionFiles,
        bin: &[ObjectMeta],
        first_kept_hour: Option<i64>,
    ) -> Result<()> {
        self.leading()?;
        let (output, manifest_name) = compaction::new_output();
        let started = std::time::Instant::now();
        let output_path = prefix.clone().join(output.as_str());
        let (rows, merged) = merge::merge(
            &self.raw,
            dataset,
            bin,
            &output_path,
            self.config.compaction_memory,
            first_kept_hour,
        )
        .await?;
        // Its run summary before its commit: once the output counts, so does the summary.
        let mut outputs = vec![merged];
        if dataset == Dataset::Spans {
            outputs.extend(self.summarise(&output_path, false).await);
        }
        // The output supersedes its inputs and whatever they superseded.
        let mut supersedes: Vec<String> = bin.iter().map(|m| name(m).to_owned()).collect();
        for meta in bin {
            if let Some(own) = compaction::manifest_of(name(meta)) {
                if let Some((_, m)) = files.manifests.iter().find(|(mm, _)| name(mm) == own) {
                    supersedes.extend(m.supersedes.iter().cloned());
                }
            }
        }
        supersedes.sort();
        supersedes.dedup();
        let manifest = Manifest { supersedes, rows };
        if self.gate.is_lease() {
            self.unchanged(prefix, bin).await?;
        }
        let manifest_path = prefix.clone().join(manifest_name.as_str());
        let manifest_bytes = serde_json::to_vec(&manifest)?;
        self.commit(
            manifest_path.clone(),
            PutPayload::from(manifest_bytes.clone()),
        )
        .await?;
        let rule = first_kept_hour.map(|h| {
            format!(
                "trace index entries before hour {} (retention)",
                layout::format_hour(h)
            )
        });
        let recorder = Arc::clone(&self.recorder);
        let inputs = bin.iter().map(|m| m.location.clone()).collect();
        self.to_completion(async move {
            recorder
                .replaced(inputs, outputs, (&manifest_path, &manifest_bytes), rule)
                .await
        })
        .await?;
        let label = label(dataset);
        metrics().merges.get_or_create(&label).inc();
        metrics()
            .files_merged
            .get_or_create(&label)
            .inc_by(bin.len() as u64);
        tracing::info!(partition = %prefix, inputs = bin.len(), rows, elapsed = ?started.elapsed(), "merged");
        Ok(())
    }

    /// `Err(Superseded)` if an input of `bin` is no longer visible: another compactor
    /// committed a merge of it meanwhile.
    async fn unchanged(&self, prefix: &Path, bin: &[ObjectMeta]) -> Result<()> {
        let now = self.classify(prefix).await?;
        let visible: HashSet<&Path> = now.visible.iter().map(|m| &m.location).collect();
        if bin.iter().all(|m| visible.contains(&m.location)) {
            Ok(())
        } else {
            Err(Error::Superseded)
        }
    }

    /// Writes a manifest, the commit point: only while the gate is open, checked right
    /// before; then to completion, even if the pass is dropped meanwhile.
    async fn commit(&self, manifest: Path, payload: PutPayload) -> Result<()> {
        let in_flight = Arc::clone(&self.commits).read_owned().await;
        self.leading()?;
        let raw = Arc::clone(&self.raw);
        let put = tokio::spawn(async move {
            let _in_flight = in_flight;
            raw.put(&manifest, payload).await
        });
        put.await.map_err(|e| object_store::Error::Generic {
            store: "cairn",
            source: Box::new(e),
        })??;
        Ok(())
    }

    /// Runs `work` (a store change and its record in the chain) to completion even if the pass
    /// is dropped meanwhile; `run` waits for it before it returns.
    async fn to_completion<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        let in_flight = Arc::clone(&self.commits).read_owned().await;
        tokio::spawn(async move {
            let _in_flight = in_flight;
            work.await
        })
        .await
        .map_err(|e| {
            Error::Store(object_store::Error::Generic {
                store: "cairn",
                source: Box::new(e),
            })
        })
    }

    /// Writes the run summary of the span file at `data` (and records it in the chain when
    /// `record`: a merge output's is recorded with the merge); returns its record when it did.
    /// A failure is logged and counted, not fatal: a span file without a summary is aggregated
    /// from its spans by readers, and gets one at a later pass.
    async fn summarise(&self, data: &Path, record: bool) -> Option<FileRecord> {
        if !self.gate.is_open() {
            return None;
        }
        let (raw, recorder) = (Arc::clone(&self.raw), Arc::clone(&self.recorder));
        let memory = self.config.compaction_memory;
        let at = data.clone();
        let written = self
            .to_completion(async move {
                let written = summary::summarise(&raw, &at, memory).await;
                if let (Ok(Some(file)), true) = (&written, record) {
                    recorder.added(vec![file.clone()]).await;
                }
                written
            })
            .await;
        match written.and_then(|w| w) {
            Ok(file) => file,
            Err(e) => {
                metrics().failures.inc();
                tracing::warn!(error = %e, file = %data, "writing a run summary failed");
                None
            }
        }
    }

    /// Deletes a partition past retention: superseded files, then readable ones, then the rest
    /// (manifests last, so no reader ever sees a superseded file next to its replacement).
    async fn drop_partition(
        &self,
        dataset: Dataset,
        tenant: &Tenant,
        hour: i64,
        report: &mut PassReport,
    ) -> Result<usize> {
        let prefix = layout::hour_prefix(dataset, tenant, hour);
        let files = self.classify(&prefix).await?;
        let mut order: Vec<Path> = files
            .superseded
            .iter()
            .chain(&files.visible)
            .chain(&files.uncommitted)
            .map(|m| m.location.clone())
            .collect();
        let known: HashSet<Path> = order.iter().cloned().collect();
        let all = self.raw.list_with_delimiter(Some(&prefix)).await?.objects;
        order.extend(
            all.into_iter()
                .map(|m| m.location)
                .filter(|p| !known.contains(p)),
        );
        let rule = self.config.retention.of(tenant).map(|keep| {
            format!(
                "{} hour {} older than {}",
                dataset.prefix(),
                layout::format_hour(hour),
                age(keep)
            )
        });
        report.files_deleted += self.delete(dataset, order, rule).await?;
        report.partitions_dropped += 1;
        metrics()
            .retention_partitions_deleted
            .get_or_create(&label(dataset))
            .inc();
        tracing::info!(%tenant, hour = layout::format_hour(hour), dataset = dataset.prefix(), "partition past retention deleted");
        Ok(0)
    }
}

/// Runs a pass every interval until `stop` is cancelled, while the compactor's gate is open: a
/// pass in progress when it closes is dropped (see [`Compactor`] for why that is safe). Returns
/// once no commit is in flight.
pub async fn run(compactor: Compactor, stop: CancellationToken) {
    let interval: Duration = compactor.config.compaction_interval;
    let gate = compactor.gate.clone();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = gate.opened() => {}
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = gate.closed() => continue,
            _ = tokio::time::sleep(interval) => {}
        }
        let report = tokio::select! {
            _ = stop.cancelled() => break,
            _ = gate.closed() => {
                tracing::warn!("leadership lost: the compaction pass stopped");
                continue;
            }
            r = compactor.pass() => r,
        };
        if report.merges + report.files_deleted + report.failures > 0 {
            tracing::debug!(?report, "compaction pass");
        }
    }
    compactor.quiesce().await;
}

#[cfg(test)]
mod tests;
