//! A Parquet sink that hashes the bytes it writes, so that a file compaction writes is
//! recorded in the tamper-evident chain as it was sent to the store, without reading it back.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cairn_store::chain::FileRecord;
use futures::future::BoxFuture;
use object_store::path::Path;
use parquet::arrow::async_writer::AsyncFileWriter;

/// The bytes written so far: their BLAKE3 state and count.
type Digest = Arc<Mutex<(blake3::Hasher, u64)>>;

/// Wraps `inner`, hashing every byte on its way to it.
pub struct HashingWriter<W> {
    inner: W,
    digest: Digest,
}

/// The record of what a [`HashingWriter`] wrote, read once the writer is closed.
pub struct Written {
    path: Path,
    digest: Digest,
}

impl Written {
    /// The file's record: its path, size and BLAKE3 of every byte written.
    pub fn record(&self) -> FileRecord {
        let (hasher, size) = &*self.digest.lock().expect("digest");
        FileRecord {
            path: self.path.to_string(),
            size: *size,
            blake3: hasher.finalize().to_hex().to_string(),
        }
    }
}

impl<W> HashingWriter<W> {
    /// A writer of the file at `path` through `inner`, and the handle to its record.
    pub fn new(inner: W, path: &Path) -> (Self, Written) {
        let digest: Digest = Arc::default();
        let written = Written {
            path: path.clone(),
            digest: Arc::clone(&digest),
        };
        (Self { inner, digest }, written)
    }
}

impl<W: AsyncFileWriter> AsyncFileWriter for HashingWriter<W> {
    fn write(&mut self, bs: Bytes) -> BoxFuture<'_, parquet::errors::Result<()>> {
        {
            let (hasher, size) = &mut *self.digest.lock().expect("digest");
            hasher.update(&bs);
            *size += bs.len() as u64;
        }
        self.inner.write(bs)
    }

    fn complete(&mut self) -> BoxFuture<'_, parquet::errors::Result<()>> {
        self.inner.complete()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch};
    use object_store::buffered::BufWriter;
    use object_store::memory::InMemory;
    use object_store::{ObjectStore, ObjectStoreExt};
    use parquet::arrow::AsyncArrowWriter;

    #[tokio::test]
    async fn the_record_is_of_the_bytes_stored() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("spans/tenant=t/hour=2026-01-01T00/f.parquet");
        let (sink, written) =
            HashingWriter::new(BufWriter::new(Arc::clone(&store), path.clone()), &path);
        let batch = RecordBatch::try_from_iter([(
            "n",
            Arc::new(Int64Array::from_iter_values(0..100_000)) as _,
        )])
        .unwrap();
        let mut writer = AsyncArrowWriter::try_new(sink, batch.schema(), None).unwrap();
        writer.write(&batch).await.unwrap();
        writer.close().await.unwrap();
        let stored = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(written.record(), FileRecord::of_bytes(&path, &stored));
    }
}
