//! Compaction behind a lease: a closed gate changes nothing; a merge whose inputs another
//! compactor committed meanwhile is abandoned uncommitted, so readers see each entry once.

use std::time::Duration;

use cairn_schema::layout::Dataset;
use cairn_schema::tenant::Tenant;
use cairn_schema::trace_index;
use cairn_store::file_format::Effort;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::sync::watch;
use tokio::time::Instant;

use super::*;
use crate::reindex::tests::entries;

/// A store holding three small trace index files of tenant `t`.
async fn store() -> (Arc<dyn ObjectStore>, Tenant) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let tenant = Tenant::new("t").unwrap();
    for f in 0..3 {
        let hour = 490_000 + f;
        let (bytes, _) = cairn_store::parquet::encode_trace_index(
            &[entries(f as usize * 10, 10, hour)],
            Effort::Ingest,
        )
        .unwrap();
        let path = trace_index::dir(&tenant).join(trace_index::reindex_name(hour).as_str());
        store.put(&path, PutPayload::from(bytes)).await.unwrap();
    }
    (store, tenant)
}

fn config() -> CompactionConfig {
    CompactionConfig {
        compaction_min_files: 2,
        ..CompactionConfig::default()
    }
}

/// A compactor behind a lease, and the lease's sender (open for a minute).
fn leased(store: &Arc<dyn ObjectStore>) -> (Compactor, watch::Sender<Option<Instant>>) {
    let (tx, rx) = watch::channel(Some(Instant::now() + Duration::from_secs(60)));
    let compactor = Compactor::new(Arc::clone(store), config()).with_gate(Gate::lease(rx));
    (compactor, tx)
}

async fn names(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    let mut names: Vec<String> = store
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    names.sort();
    names
}

#[tokio::test]
async fn a_closed_gate_changes_nothing() {
    let (store, _) = store().await;
    let (compactor, lease) = leased(&store);
    lease.send_replace(None);
    let before = names(&store).await;
    let report = compactor.pass().await;
    assert_eq!((report.merges, report.failures), (0, 0));
    assert_eq!(names(&store).await, before);
    // Leading again: the same pass merges.
    lease.send_replace(Some(Instant::now() + Duration::from_secs(60)));
    assert_eq!(compactor.pass().await.merges, 1);
}

#[tokio::test]
async fn a_merge_of_inputs_committed_meanwhile_by_another_compactor_is_abandoned() {
    let (store, tenant) = store().await;
    let prefix = trace_index::dir(&tenant);
    let (a, _lease_a) = leased(&store);
    let (b, _lease_b) = leased(&store);
    // Both list the same files; a commits a merge of them first.
    let seen_by_a = a.classify(&prefix).await.unwrap();
    let seen_by_b = b.classify(&prefix).await.unwrap();
    a.merge(
        Dataset::TraceIndex,
        &prefix,
        &seen_by_a,
        &seen_by_a.visible,
        None,
    )
    .await
    .unwrap();
    let late = b
        .merge(
            Dataset::TraceIndex,
            &prefix,
            &seen_by_b,
            &seen_by_b.visible,
            None,
        )
        .await;
    assert!(matches!(late, Err(Error::Superseded)), "{late:?}");
    // Readers see a's output alone; b's stays uncommitted, garbage after the grace period.
    let after = a.classify(&prefix).await.unwrap();
    assert_eq!(after.visible.len(), 1);
    assert_eq!(after.uncommitted.len(), 1);
    assert_eq!(after.manifests.len(), 1);
}

#[tokio::test]
async fn no_commit_starts_once_leadership_ended() {
    let (store, tenant) = store().await;
    let prefix = trace_index::dir(&tenant);
    let (a, lease) = leased(&store);
    let files = a.classify(&prefix).await.unwrap();
    // Ended before a merge: nothing is written.
    lease.send_replace(Some(Instant::now()));
    let before = names(&store).await;
    let result = a
        .merge(Dataset::TraceIndex, &prefix, &files, &files.visible, None)
        .await;
    assert!(matches!(result, Err(Error::NotLeader)), "{result:?}");
    assert_eq!(names(&store).await, before);
    // Ended between a merge and its commit (the leadership is read at the commit itself).
    let (_, manifest) = compaction::new_output();
    let result = a
        .commit(
            prefix.clone().join(manifest.as_str()),
            PutPayload::from("{}"),
        )
        .await;
    assert!(matches!(result, Err(Error::NotLeader)), "{result:?}");
    assert_eq!(names(&store).await, before);
}
