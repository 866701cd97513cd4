//! Hashing files already in the store (adoption, verification, compaction outputs streamed to
//! the store): read as a stream, hashed in blocks on the blocking pool, never on the IO runtime,
//! a bounded number of files at once.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::FileRecord;
use crate::{Error, Result};

/// Bytes collected before a block is hashed.
const BLOCK: usize = 8 << 20;

/// The record of the object at `path` as it is now; `Ok(None)` when it is absent.
pub async fn hash_object(store: &dyn ObjectStore, path: &Path) -> Result<Option<FileRecord>> {
    let got = match store.get(path).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut stream = got.into_stream();
    let mut hasher = blake3::Hasher::new();
    let mut block: Vec<u8> = Vec::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.try_next().await? {
        size += chunk.len() as u64;
        block.extend_from_slice(&chunk);
        if block.len() >= BLOCK {
            let full = std::mem::take(&mut block);
            hasher = hash_block(hasher, full).await?;
        }
    }
    let hasher = hash_block(hasher, block).await?;
    Ok(Some(FileRecord {
        path: path.to_string(),
        size,
        blake3: hasher.finalize().to_hex().to_string(),
    }))
}

async fn hash_block(mut hasher: blake3::Hasher, block: Vec<u8>) -> Result<blake3::Hasher> {
    if block.is_empty() {
        return Ok(hasher);
    }
    tokio::task::spawn_blocking(move || {
        hasher.update(&block);
        hasher
    })
    .await
    .map_err(|e| Error::Internal(format!("hashing task failed: {e}")))
}

/// The records of `paths` (in their order; `None` for an absent one), `parallel` at a time.
pub async fn hash_objects(
    store: &Arc<dyn ObjectStore>,
    paths: Vec<Path>,
    parallel: usize,
) -> Result<Vec<(Path, Option<FileRecord>)>> {
    futures::stream::iter(paths)
        .map(|path| {
            let store = Arc::clone(store);
            async move {
                let record = hash_object(store.as_ref(), &path).await?;
                Ok::<_, Error>((path, record))
            }
        })
        .buffered(parallel.max(1))
        .try_collect()
        .await
}
