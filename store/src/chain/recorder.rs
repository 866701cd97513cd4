//! Appending to a tenant's chain from any number of writers sharing a store.
//!
//! Each process remembers the last entry it saw per tenant (found at first use from the head
//! object, then by probing forward). An append is a create-only PUT of the next sequence
//! number; when another writer took that number first, its entry is read, and the append is
//! tried again at the number after. An append that failed after all after reaching the store
//! (an error on the way back) is found as its own entry and not repeated. The head is rewritten
//! after each append, best effort: it only says where the chain ended when it was written.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use cairn_schema::tenant::Tenant;
use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};

use super::entry::{hash, Entry, Kind, Record, Stored};
use super::head::Head;
use super::keys::Signer;
use super::{entry_path, head_path};
use crate::{Error, Result};

/// Entries read back at most when a replayed write checks what was recorded before a crash.
const REPLAY_LOOKBACK: u64 = 256;
/// Entries read at once while looking back.
const REPLAY_BATCH: u64 = 8;

/// The last entry known of a chain.
#[derive(Debug, Clone, Default)]
struct Tail {
    seq: u64,
    hash: String,
}

struct Shared {
    store: Arc<dyn ObjectStore>,
    key: Option<Signer>,
    tails: Mutex<HashMap<Tenant, Arc<tokio::sync::Mutex<Option<Tail>>>>>,
}

/// The chain writer of one process (cheap to clone; clones share what they know of each chain).
#[derive(Clone)]
pub struct Chain {
    shared: Arc<Shared>,
    writer: Arc<str>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chain({}, signed: {})", self.writer, self.is_signed())
    }
}

/// Now, as stored in entries and heads.
pub(crate) fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Chain {
    /// Records into `store`'s chains, signing with `key` when there is one.
    pub fn new(store: Arc<dyn ObjectStore>, key: Option<Signer>) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                key,
                tails: Mutex::default(),
            }),
            writer: Arc::from("cairn"),
        }
    }

    /// The same chains, appended to under the name `writer`.
    pub fn with_writer(&self, writer: impl Into<String>) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            writer: Arc::from(writer.into()),
        }
    }

    pub fn is_signed(&self) -> bool {
        self.shared.key.is_some()
    }

    fn tail_of(&self, tenant: &Tenant) -> Arc<tokio::sync::Mutex<Option<Tail>>> {
        let mut tails = self.shared.tails.lock().expect("chain tails");
        Arc::clone(tails.entry(tenant.clone()).or_default())
    }

    /// Appends `record` to `tenant`'s chain; returns its sequence number (`None` when it
    /// records nothing).
    pub async fn append(&self, tenant: &Tenant, record: Record) -> Result<Option<u64>> {
        if record.is_empty() {
            return Ok(None);
        }
        let store = self.shared.store.as_ref();
        let tail = self.tail_of(tenant);
        let mut tail = tail.lock().await;
        let mut last = match tail.take() {
            Some(t) => t,
            None => discover(store, tenant).await?,
        };
        let result = loop {
            let entry = Entry {
                seq: last.seq + 1,
                tenant: tenant.to_string(),
                time: now(),
                writer: self.writer.to_string(),
                kind: record.kind,
                files: record.files.clone(),
                inputs: record.inputs.clone(),
                removed: record.removed.clone(),
                rule: record.rule.clone(),
                prev: last.hash.clone(),
            };
            let bytes = Stored::encode(&entry, self.shared.key.as_ref())?;
            let path = entry_path(tenant, entry.seq);
            let put = store
                .put_opts(
                    &path,
                    PutPayload::from(bytes.clone()),
                    PutMode::Create.into(),
                )
                .await;
            match put {
                Ok(_) => {
                    last = Tail {
                        seq: entry.seq,
                        hash: hash(&bytes),
                    };
                    break Ok(entry.seq);
                }
                Err(object_store::Error::AlreadyExists { .. }) => {
                    let theirs = store.get(&path).await?.bytes().await?;
                    last = Tail {
                        seq: entry.seq,
                        hash: hash(&theirs),
                    };
                    if Stored::decode(&theirs).is_ok_and(|(_, e)| e.same_as(&self.writer, &record))
                    {
                        break Ok(entry.seq);
                    }
                }
                Err(e) => break Err(Error::from(e)),
            }
        };
        *tail = Some(last.clone());
        let seq = result?;
        let head = Head::new(
            tenant.as_str(),
            last.seq,
            last.hash,
            now(),
            self.shared.key.as_ref(),
        );
        let json = serde_json::to_vec(&head).map_err(|e| Error::Internal(e.to_string()))?;
        if let Err(e) = store.put(&head_path(tenant), PutPayload::from(json)).await {
            tracing::warn!(error = %e, %tenant, "writing the chain head failed; the next append writes it");
        }
        Ok(Some(seq))
    }

    /// Appends the files of `record` (an `add`) that the last entries, back to `since` (RFC
    /// 3339), do not already record with the same hash: a write-ahead-log segment written again
    /// after a crash rewrites the same names, often with the same bytes.
    pub async fn append_replayed(
        &self,
        tenant: &Tenant,
        mut record: Record,
        since: &str,
    ) -> Result<Option<u64>> {
        let store = &self.shared.store;
        let last = discover(store.as_ref(), tenant).await?;
        let first = last.seq.saturating_sub(REPLAY_LOOKBACK) + 1;
        let mut recorded: HashSet<(String, String)> = HashSet::new();
        let mut settled: HashSet<String> = HashSet::new();
        // Newest first, a batch at a time, until an entry older than `since`.
        let mut upper = last.seq;
        'batches: while upper >= first {
            let lower = upper.saturating_sub(REPLAY_BATCH - 1).max(first);
            let batch: Vec<Option<Entry>> = futures::stream::iter((lower..=upper).rev())
                .map(|seq| {
                    let store = Arc::clone(store);
                    let path = entry_path(tenant, seq);
                    async move {
                        let bytes = store.get(&path).await.ok()?.bytes().await.ok()?;
                        Stored::decode(&bytes).ok().map(|(_, e)| e)
                    }
                })
                .buffered(REPLAY_BATCH as usize)
                .collect()
                .await;
            for entry in batch.into_iter().flatten() {
                if entry.time.as_str() < since {
                    break 'batches;
                }
                // A path's latest record decides.
                for f in &entry.files {
                    if settled.insert(f.path.clone()) {
                        recorded.insert((f.path.clone(), f.blake3.clone()));
                    }
                }
                for p in entry.removed.iter() {
                    settled.insert(p.clone());
                }
            }
            upper = lower - 1;
        }
        record
            .files
            .retain(|f| !recorded.contains(&(f.path.clone(), f.blake3.clone())));
        debug_assert_eq!(record.kind, Kind::Add);
        self.append(tenant, record).await
    }
}

/// The last entry of `tenant`'s chain: from the head's hint, then probing forward.
async fn discover(store: &dyn ObjectStore, tenant: &Tenant) -> Result<Tail> {
    let hint = match store.get(&head_path(tenant)).await {
        Ok(got) => serde_json::from_slice::<Head>(&got.bytes().await?)
            .map(|h| h.seq)
            .unwrap_or(0),
        Err(object_store::Error::NotFound { .. }) => 0,
        Err(e) => return Err(e.into()),
    };
    let mut last = Tail::default();
    if hint > 0 {
        match store.get(&entry_path(tenant, hint)).await {
            Ok(got) => {
                last = Tail {
                    seq: hint,
                    hash: hash(&got.bytes().await?),
                }
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    loop {
        match store.get(&entry_path(tenant, last.seq + 1)).await {
            Ok(got) => {
                last = Tail {
                    seq: last.seq + 1,
                    hash: hash(&got.bytes().await?),
                }
            }
            Err(object_store::Error::NotFound { .. }) => return Ok(last),
            Err(e) => return Err(e.into()),
        }
    }
}
