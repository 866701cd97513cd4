//! A store that fails a fraction of its writes, for proving that no acknowledged span is lost
//! or duplicated when object storage misbehaves. Compiled only with the `faults` feature (the
//! test builds of the workspace turn it on); there, `CAIRN_INJECT_STORE_FAULTS=<fraction>`
//! wraps every store [`crate::open`] opens. Writes (put, multipart
//! upload, copy, delete) fail before reaching the store, or, for every other injected fault,
//! after the store has done them — the worst case for a writer, which must not count a write it
//! did not see succeed. Reads are never failed.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// The variable naming the fraction of writes to fail.
pub const ENV: &str = "CAIRN_INJECT_STORE_FAULTS";

/// Wraps `store` in a [`FaultyStore`] when [`ENV`] names a fraction above 0, seeded by the
/// process id so that each run fails other writes.
pub fn from_env(store: Arc<dyn ObjectStore>) -> crate::Result<Arc<dyn ObjectStore>> {
    let Ok(text) = std::env::var(ENV) else {
        return Ok(store);
    };
    let fraction: f64 = text
        .trim()
        .parse()
        .map_err(|e| crate::Error::InvalidInput(format!("{ENV}={text:?}: {e}")))?;
    if fraction <= 0.0 {
        return Ok(store);
    }
    tracing::warn!(fraction, "injecting object-store write faults");
    Ok(Arc::new(FaultyStore::new(
        store,
        fraction,
        std::process::id().into(),
    )))
}

/// Fails `fraction` of write requests to `inner`.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    threshold: u64,
    counter: AtomicU64,
}

/// The outcome chosen for one write.
enum Fault {
    None,
    Before,
    After,
}

/// SplitMix64: a well-mixed pseudo-random value per request number.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl FaultyStore {
    /// `fraction` in `[0, 1]` of writes fail; `seed` makes the sequence reproducible.
    pub fn new(inner: Arc<dyn ObjectStore>, fraction: f64, seed: u64) -> Self {
        Self {
            inner,
            threshold: (fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64,
            counter: AtomicU64::new(seed),
        }
    }

    fn next(&self) -> Fault {
        let r = mix(self.counter.fetch_add(1, Ordering::Relaxed));
        if r >= self.threshold {
            Fault::None
        } else if r.is_multiple_of(2) {
            Fault::Before
        } else {
            Fault::After
        }
    }

    fn error(what: &str, location: &Path) -> object_store::Error {
        object_store::Error::Generic {
            store: "faulty",
            source: format!("injected fault: {what} {location}").into(),
        }
    }

    async fn write<T, F>(&self, what: &str, location: &Path, op: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        match self.next() {
            Fault::None => op.await,
            Fault::Before => Err(Self::error(what, location)),
            Fault::After => {
                op.await?;
                Err(Self::error(what, location))
            }
        }
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.write(
            "put",
            location,
            self.inner.put_opts(location, payload, opts),
        )
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        if matches!(self.next(), Fault::None) {
            self.inner.put_multipart_opts(location, opts).await
        } else {
            Err(Self::error("multipart upload", location))
        }
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let fail = !matches!(self.next(), Fault::None);
        let deleted = self.inner.delete_stream(locations);
        if fail {
            deleted
                .map(|r| r.and_then(|p| Err(Self::error("delete", &p))))
                .boxed()
        } else {
            deleted
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.write("copy", to, self.inner.copy_opts(from, to, options))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn fails_about_the_fraction_asked() {
        let store = FaultyStore::new(Arc::new(InMemory::new()), 0.3, 7);
        let mut failed = 0;
        for i in 0..1000 {
            let p = Path::from(format!("f{i}"));
            if store.put(&p, PutPayload::from("x")).await.is_err() {
                failed += 1;
            }
        }
        assert!((200..400).contains(&failed), "{failed} of 1000 failed");
        let none = FaultyStore::new(Arc::new(InMemory::new()), 0.0, 7);
        assert!(none
            .put(&Path::from("a"), PutPayload::from("x"))
            .await
            .is_ok());
    }
}
