//! An object store that counts what it is asked: requests, bytes and latency per operation, in
//! the process's metrics (`cairn_store_requests_total{op,outcome}`,
//! `cairn_store_request_seconds{op}`, `cairn_store_bytes_total{op}`). [`crate::open`] wraps every
//! store in it, so the collector, the compactor and the query side are all counted.
//!
//! A read is timed to its first byte (the body streams afterwards) and counted by the bytes of
//! the range it returns; a listing or a deletion stream is timed until its reader drops it.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use async_trait::async_trait;
use cairn_telemetry::{register, seconds_histogram, Counter, EncodeLabelSet, Family};
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Op {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    op: &'static str,
    outcome: &'static str,
}

struct Metrics {
    requests: Family<Outcome, Counter>,
    seconds: Family<Op, Histogram>,
    bytes: Family<Op, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        requests: Family::default(),
        seconds: Family::new_with_constructor(seconds_histogram),
        bytes: Family::default(),
    };
    register(
        "store_requests",
        "Object-store requests, by operation and outcome",
        m.requests.clone(),
    );
    register(
        "store_request_seconds",
        "Latency of object-store requests (reads to their first byte), by operation",
        m.seconds.clone(),
    );
    register(
        "store_bytes",
        "Bytes written (put) and read (get) from the object store",
        m.bytes.clone(),
    );
    m
});

/// Records one request of `op` that took from `started` and ended with `ok`.
fn record(op: &'static str, started: Instant, ok: bool) {
    let m = &*METRICS;
    m.seconds
        .get_or_create(&Op { op })
        .observe(started.elapsed().as_secs_f64());
    let outcome = if ok { "ok" } else { "error" };
    m.requests.get_or_create(&Outcome { op, outcome }).inc();
}

fn add_bytes(op: &'static str, bytes: u64) {
    METRICS.bytes.get_or_create(&Op { op }).inc_by(bytes);
}

async fn timed<T>(op: &'static str, request: impl Future<Output = Result<T>>) -> Result<T> {
    let started = Instant::now();
    let result = request.await;
    record(op, started, result.is_ok());
    result
}

/// Counts the requests made to `inner`.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        LazyLock::force(&METRICS);
        Self { inner }
    }
}

impl fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// Records one streamed request when dropped: when its stream ends or its reader stops.
struct StreamRecord {
    op: &'static str,
    started: Instant,
    ok: bool,
}

impl StreamRecord {
    fn note<T>(&mut self, item: &Result<T>) {
        self.ok &= item.is_ok();
    }
}

impl Drop for StreamRecord {
    fn drop(&mut self) {
        record(self.op, self.started, self.ok);
    }
}

/// Times a stream of results until it is dropped, counting it once.
fn timed_stream<T: Send + 'static>(
    op: &'static str,
    stream: BoxStream<'static, Result<T>>,
) -> BoxStream<'static, Result<T>> {
    let mut record = StreamRecord {
        op,
        started: Instant::now(),
        ok: true,
    };
    stream
        .map(move |item| {
            record.note(&item);
            item
        })
        .boxed()
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let size = payload.content_length() as u64;
        let result = timed("put", self.inner.put_opts(location, payload, opts)).await;
        if result.is_ok() {
            add_bytes("put", size);
        }
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        timed(
            "put_multipart",
            self.inner.put_multipart_opts(location, opts),
        )
        .await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let result = timed("get", self.inner.get_opts(location, options)).await;
        if let Ok(got) = &result {
            add_bytes("get", got.range.end - got.range.start);
        }
        result
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        timed_stream("delete", self.inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        timed_stream("list", self.inner.list(prefix))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        timed("list", self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        timed("copy", self.inner.copy_opts(from, to, options)).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    use super::*;

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    #[tokio::test]
    async fn counts_requests_bytes_and_failures() {
        let store = MeteredStore::new(Arc::new(InMemory::new()));
        let before = cairn_telemetry::render();
        let path = Path::from("metered/a");
        store.put(&path, PutPayload::from("hello")).await.unwrap();
        assert_eq!(
            store.get(&path).await.unwrap().bytes().await.unwrap(),
            "hello"
        );
        assert!(store.get(&Path::from("metered/missing")).await.is_err());
        let listed: Vec<_> = store.list(Some(&Path::from("metered"))).collect().await;
        assert_eq!(listed.len(), 1);
        let after = cairn_telemetry::render();
        let grew = |series: &str| value(&after, series) - value(&before, series);
        assert_eq!(
            grew(r#"cairn_store_requests_total{op="put",outcome="ok"}"#),
            1.0
        );
        assert_eq!(
            grew(r#"cairn_store_requests_total{op="get",outcome="ok"}"#),
            1.0
        );
        assert_eq!(
            grew(r#"cairn_store_requests_total{op="get",outcome="error"}"#),
            1.0
        );
        assert_eq!(
            grew(r#"cairn_store_requests_total{op="list",outcome="ok"}"#),
            1.0
        );
        assert_eq!(grew(r#"cairn_store_bytes_total{op="put"}"#), 5.0);
        assert_eq!(grew(r#"cairn_store_bytes_total{op="get"}"#), 5.0);
        assert!(after.contains(r#"cairn_store_request_seconds_count{op="put"}"#));
    }
}
