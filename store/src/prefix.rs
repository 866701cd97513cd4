//! A store rooted at a prefix of another (`s3://bucket/prefix`).
//!
//! object_store 0.13's `PrefixStore` answers reads with the inner store's location in their
//! metadata, prefix included, while its listings strip it (apache/arrow-rs-object-store#664,
//! fixed in 0.14). DataFusion keeps a file it is given by path only if the `head` of it names
//! that path, so through a bare `PrefixStore` every table built from file paths — compaction's
//! merges, the run summaries, the `runs` view — would silently read nothing. Here a read answers
//! with the location it was asked for.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// `inner` seen from under `prefix`.
#[derive(Debug)]
pub struct Prefixed {
    inner: PrefixStore<Arc<dyn ObjectStore>>,
}

impl Prefixed {
    pub fn new(inner: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Self {
            inner: PrefixStore::new(inner, prefix),
        }
    }
}

impl fmt::Display for Prefixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl ObjectStore for Prefixed {
    async fn put_opts(&self, at: &Path, payload: PutPayload, o: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(at, payload, o).await
    }

    async fn put_multipart_opts(
        &self,
        at: &Path,
        o: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(at, o).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let mut got = self.inner.get_opts(location, options).await?;
        got.meta.location = location.clone();
        Ok(got)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, o).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    use super::*;

    #[tokio::test]
    async fn reads_name_the_location_asked_for() {
        let root: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let store = Prefixed::new(Arc::clone(&root), "cluster");
        let at = Path::from("spans/tenant=a/hour=1/f.parquet");
        store.put(&at, PutPayload::from_static(b"x")).await.unwrap();
        assert_eq!(store.head(&at).await.unwrap().location, at);
        assert_eq!(store.get(&at).await.unwrap().meta.location, at);
        let listed: Vec<Path> = futures::StreamExt::collect::<Vec<_>>(store.list(None))
            .await
            .into_iter()
            .map(|m| m.unwrap().location)
            .collect();
        assert_eq!(listed, vec![at.clone()]);
        // Where it really is.
        let inner = Path::from("cluster/spans/tenant=a/hour=1/f.parquet");
        assert!(root.head(&inner).await.is_ok());
    }
}
