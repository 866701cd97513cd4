//! Opening the object store named by a URL or a local directory.
//!
//! - a plain path or `file:///abs/path`: a local directory (created if missing);
//! - `s3://bucket/prefix`: S3 or any S3-compatible server, configured by the usual `AWS_*`
//!   environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//!   `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, …);
//! - `memory://`: an in-process store, for tests.
//!
//! The returned store is rooted at the prefix, so [`cairn_schema::layout`] paths are relative to it.

use std::sync::Arc;

use object_store::{aws::AmazonS3Builder, local::LocalFileSystem, memory::InMemory, ObjectStore};

use crate::{Error, Result};

/// Opens the store at `location`. In a build with the `faults` feature, the store fails the
/// fraction of writes that `CAIRN_INJECT_STORE_FAULTS` says (see [`crate::faults`]).
pub fn open(location: &str) -> Result<Arc<dyn ObjectStore>> {
    let store = open_plain(location)?;
    #[cfg(feature = "faults")]
    let store = crate::faults::from_env(store)?;
    Ok(Arc::new(crate::metered::MeteredStore::new(store)))
}

fn open_plain(location: &str) -> Result<Arc<dyn ObjectStore>> {
    let invalid = |e: String| Error::InvalidInput(format!("store {location:?}: {e}"));
    if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("the bucket name is missing".into()));
        }
        let s3 = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()?;
        return Ok(with_prefix(Arc::new(s3), prefix));
    }
    if location == "memory://" {
        return Ok(Arc::new(InMemory::new()));
    }
    let dir = match location.strip_prefix("file://") {
        Some(path) => path,
        None if location.contains("://") => {
            return Err(invalid(
                "unsupported scheme: use a directory, file://, s3:// or memory://".into(),
            ))
        }
        None => location,
    };
    std::fs::create_dir_all(dir).map_err(|e| invalid(e.to_string()))?;
    let local = LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
    Ok(Arc::new(local))
}

fn with_prefix(store: Arc<dyn ObjectStore>, prefix: &str) -> Arc<dyn ObjectStore> {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        store
    } else {
        Arc::new(crate::prefix::Prefixed::new(store, prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_schemes() {
        assert!(open("gopher://x").is_err());
        assert!(open("s3://").is_err());
        assert!(open("memory://").is_ok());
    }
}
