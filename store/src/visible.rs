//! The store as readers must see it: listings hide what compaction superseded and outputs it has
//! not yet committed (see [`cairn_schema::compaction`]), and show a run summary only beside the
//! span file it summarises. Everything else passes straight through.
//!
//! Manifests are immutable, so each is read once and kept (bounded; forgotten wholesale when
//! full). A manifest is deleted with its output once a later merge has superseded both past
//! the grace period, so one listed a moment ago can be gone when read: the directory is then
//! listed again.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

use cairn_schema::compaction::{self, Manifest, PartitionFiles};

const CACHED_MANIFESTS: usize = 100_000;

/// Listings of one directory again when a manifest it named was gone, before giving up.
const RELISTS: usize = 3;

/// A read view of a store that applies compaction records to listings.
#[derive(Debug, Clone)]
pub struct VisibleStore {
    inner: Arc<dyn ObjectStore>,
    manifests: Arc<Mutex<HashMap<Path, Arc<Manifest>>>>,
}

impl VisibleStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            manifests: Arc::default(),
        }
    }

    /// Reads (or recalls) one manifest.
    async fn manifest(&self, path: &Path) -> Result<Arc<Manifest>> {
        if let Some(m) = self.manifests.lock().expect("manifests").get(path) {
            return Ok(Arc::clone(m));
        }
        let bytes = self.inner.get(path).await?.bytes().await?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| object_store::Error::Generic {
                store: "cairn",
                source: format!("compaction manifest {path}: {e}").into(),
            })?;
        let manifest = Arc::new(manifest);
        let mut cache = self.manifests.lock().expect("manifests");
        if cache.len() >= CACHED_MANIFESTS {
            cache.clear();
        }
        cache.insert(path.clone(), Arc::clone(&manifest));
        Ok(manifest)
    }

    /// Reads the manifests among `objects` and classifies them (one partition directory).
    pub async fn partition(&self, objects: Vec<ObjectMeta>) -> Result<PartitionFiles> {
        let mut manifests = Vec::new();
        for meta in &objects {
            if meta
                .location
                .filename()
                .is_some_and(compaction::is_manifest)
            {
                let m = self.manifest(&meta.location).await?;
                manifests.push((meta.clone(), (*m).clone()));
            }
        }
        Ok(PartitionFiles::classify(objects, manifests))
    }

    /// The visible objects among `objects`, which may span several directories.
    async fn filter(&self, objects: Vec<ObjectMeta>) -> Result<Vec<ObjectMeta>> {
        let mut by_dir: BTreeMap<Path, Vec<ObjectMeta>> = BTreeMap::new();
        for meta in objects {
            by_dir
                .entry(compaction::parent(&meta.location))
                .or_default()
                .push(meta);
        }
        let mut out = Vec::new();
        for (dir, objects) in by_dir {
            let files = self.partition_listed(&dir, objects).await?;
            out.extend(files.visible);
            out.extend(files.summaries);
        }
        Ok(out)
    }

    /// [`Self::partition`] of `objects` listed in `dir`; listed again when one of its
    /// manifests went in the meantime (a few times, then the error).
    async fn partition_listed(
        &self,
        dir: &Path,
        objects: Vec<ObjectMeta>,
    ) -> Result<PartitionFiles> {
        let mut objects = objects;
        let mut relisted = 0;
        loop {
            match self.partition(objects).await {
                Err(object_store::Error::NotFound { .. }) if relisted < RELISTS => {
                    relisted += 1;
                    objects = self.inner.list_with_delimiter(Some(dir)).await?.objects;
                }
                result => return result,
            }
        }
    }
}

impl fmt::Display for VisibleStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Visible({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for VisibleStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let this = self.clone();
        let listing = self.inner.list(prefix);
        stream::once(async move {
            let objects: Vec<ObjectMeta> = listing.try_collect().await?;
            this.filter(objects).await
        })
        .map_ok(|objects| stream::iter(objects.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let listing = self.inner.list_with_delimiter(prefix).await?;
        Ok(ListResult {
            common_prefixes: listing.common_prefixes,
            objects: self.filter(listing.objects).await?,
        })
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn manifest(supersedes: &[&str]) -> PutPayload {
        let m = Manifest {
            supersedes: supersedes.iter().map(|s| (*s).to_owned()).collect(),
            rows: 1,
        };
        PutPayload::from(serde_json::to_vec(&m).unwrap())
    }

    #[tokio::test]
    async fn a_manifest_gone_since_the_listing_is_listed_again() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let dir = Path::from("trace_index/tenant=t");
        let put = |name: &str, payload: PutPayload| {
            let (inner, path) = (Arc::clone(&inner), dir.clone().join(name));
            async move { inner.put(&path, payload).await.unwrap() }
        };
        let (first, second) = (compaction::new_output(), compaction::new_output());
        put("a.parquet", PutPayload::from_static(b"a")).await;
        put(first.0.as_str(), PutPayload::from_static(b"1")).await;
        put(first.1.as_str(), manifest(&["a.parquet"])).await;
        let stale = inner.list_with_delimiter(Some(&dir)).await.unwrap().objects;
        // A second merge supersedes the first; past the grace period both go, manifest last.
        put(second.0.as_str(), PutPayload::from_static(b"2")).await;
        put(
            second.1.as_str(),
            manifest(&["a.parquet", first.0.as_str()]),
        )
        .await;
        for gone in ["a.parquet", first.0.as_str(), first.1.as_str()] {
            inner.delete(&dir.clone().join(gone)).await.unwrap();
        }
        let visible = VisibleStore::new(Arc::clone(&inner));
        let files = visible.partition_listed(&dir, stale).await.unwrap();
        let names: Vec<&str> = files
            .visible
            .iter()
            .filter_map(|m| m.location.filename())
            .collect();
        assert_eq!(names, vec![second.0.as_str()]);
    }
}
