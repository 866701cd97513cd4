//! The store as readers must see it: listings hide what compaction superseded and outputs it has
//! not yet committed (see [`cairn_schema::compaction`]), and show a run summary only beside the
//! span file it summarises. Everything else passes straight through.
//!
//! Manifests are immutable, so each is read once and kept (bounded; forgotten wholesale when
//! full).

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
        for (_, objects) in by_dir {
            let files = self.partition(objects).await?;
            out.extend(files.visible);
            out.extend(files.summaries);
        }
        Ok(out)
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
