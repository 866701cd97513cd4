//! The fake server's objects: one global resourceVersion bumped by every write, the event
//! history watches resume from (a bounded window; older resourceVersions are "too old", 410),
//! the live event feed, and the snapshots behind `continue` tokens.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::resource::Resource;

/// Where an object lives: its resource, namespace and name.
pub type Key = (Resource, String, String);

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches replay it.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub resource: Resource,
    pub namespace: String,
    pub kind: EventType,
    /// The object after the change (for a deletion: its last state, at the deletion's version).
    pub object: Value,
    /// The object before a modification (selectors turn it into ADDED or DELETED).
    pub previous: Option<Value>,
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    NotFound,
    AlreadyExists,
    /// `metadata.resourceVersion` of the update is not the stored one.
    Conflict,
    Invalid(String),
}

/// A list snapshot whose rest a `continue` token returns.
struct Page {
    items: Vec<Value>,
    rv: u64,
}

/// Events a watch must replay, then the live feed.
pub struct Resumed {
    pub replay: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Arc<Event>>,
    pub rv: u64,
}

pub struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Event>>,
    /// Events up to this resourceVersion are forgotten: a watch from before it gets 410.
    compacted: u64,
    history_limit: usize,
    feed: broadcast::Sender<Arc<Event>>,
    pages: HashMap<String, Page>,
    next_id: u64,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            // Starts where a young cluster would, not at zero ("0" means "any" to clients).
            rv: 1000,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            compacted: 1000,
            history_limit: 10_000,
            feed: broadcast::channel(4096).0,
            pages: HashMap::new(),
            next_id: 1,
        }
    }
}

fn name_of(object: &Value) -> Result<String, WriteError> {
    object["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| WriteError::Invalid("metadata.name: Required value".into()))
}

impl Store {
    /// The current global resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// The objects of `resource` (in `namespace` when given), in (namespace, name) order.
    pub fn list(&self, resource: Resource, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((r, ns, _), _)| *r == resource && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Creates or replaces `object` unconditionally (the test API's way in).
    pub fn apply(&mut self, resource: Resource, mut object: Value) -> Result<Value, WriteError> {
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
        }
        let key = (resource, namespace.clone(), name_of(&object)?);
        if self.objects.contains_key(&key) {
            self.replace(&key, object)
        } else {
            self.create(resource, &namespace, object)
        }
    }

    /// Creates `object` in `namespace`.
    pub fn create(
        &mut self,
        resource: Resource,
        namespace: &str,
        mut object: Value,
    ) -> Result<Value, WriteError> {
        let key = (resource, namespace.to_owned(), name_of(&object)?);
        if self.objects.contains_key(&key) {
            return Err(WriteError::AlreadyExists);
        }
        let id = self.next_id;
        self.next_id += 1;
        let meta = &mut object["metadata"];
        meta["namespace"] = json!(namespace);
        if meta["uid"].as_str().is_none() {
            meta["uid"] = json!(format!("00000000-0000-4000-8000-{id:012x}"));
        }
        if meta["creationTimestamp"].as_str().is_none() {
            meta["creationTimestamp"] =
                json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        Ok(self.commit(key, EventType::Added, object, None))
    }

    /// Replaces the object at `key`; a `metadata.resourceVersion` in `object` must be the
    /// stored one (optimistic concurrency), none replaces unconditionally.
    pub fn replace(&mut self, key: &Key, mut object: Value) -> Result<Value, WriteError> {
        let current = self.objects.get(key).ok_or(WriteError::NotFound)?;
        if name_of(&object)? != key.2 {
            return Err(WriteError::Invalid(
                "metadata.name: does not match the path".into(),
            ));
        }
        let expected = object["metadata"]["resourceVersion"].as_str();
        if expected.is_some_and(|rv| {
            !rv.is_empty() && Some(rv) != current["metadata"]["resourceVersion"].as_str()
        }) {
            return Err(WriteError::Conflict);
        }
        let meta = &mut object["metadata"];
        meta["namespace"] = json!(key.1);
        for field in ["uid", "creationTimestamp"] {
            meta[field] = current["metadata"][field].clone();
        }
        let previous = current.clone();
        Ok(self.commit(key.clone(), EventType::Modified, object, Some(previous)))
    }

    /// Deletes the object at `key`; returns its last state.
    pub fn delete(&mut self, key: &Key) -> Result<Value, WriteError> {
        let object = self.objects.get(key).cloned().ok_or(WriteError::NotFound)?;
        Ok(self.commit(key.clone(), EventType::Deleted, object, None))
    }

    fn commit(
        &mut self,
        key: Key,
        kind: EventType,
        mut object: Value,
        previous: Option<Value>,
    ) -> Value {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        if kind == EventType::Deleted {
            self.objects.remove(&key);
        } else {
            self.objects.insert(key.clone(), object.clone());
        }
        let event = Arc::new(Event {
            rv: self.rv,
            resource: key.0,
            namespace: key.1,
            kind,
            object: object.clone(),
            previous,
        });
        self.history.push_back(Arc::clone(&event));
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // Nobody watching is fine.
        let _ = self.feed.send(event);
        object
    }

    /// The events after `rv` and the live feed from there; `None` when events after `rv` are
    /// no longer all retained (the watch must get 410 Gone).
    pub fn resume(&self, rv: u64) -> Option<Resumed> {
        if rv < self.compacted {
            return None;
        }
        Some(Resumed {
            replay: self.history.iter().filter(|e| e.rv > rv).cloned().collect(),
            live: self.feed.subscribe(),
            rv: self.rv,
        })
    }

    /// The live feed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.feed.subscribe()
    }

    /// The oldest resourceVersion a watch may still resume from.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Forgets every event so far (and every list snapshot): watches from an older
    /// resourceVersion get 410 Gone, as after an etcd compaction.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
        self.pages.clear();
    }

    /// Keeps at most `events` events of history.
    pub fn set_history_limit(&mut self, events: usize) {
        self.history_limit = events;
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
    }

    /// Keeps the rest of a paginated list; returns its `continue` token.
    pub fn save_page(&mut self, items: Vec<Value>, rv: u64) -> String {
        let token = format!("fake-continue-{}", self.next_id);
        self.next_id += 1;
        self.pages.insert(token.clone(), Page { items, rv });
        token
    }

    /// The rest of a paginated list and its resourceVersion; `None` once forgotten (410).
    pub fn take_page(&mut self, token: &str) -> Option<(Vec<Value>, u64)> {
        self.pages.remove(token).map(|p| (p.items, p.rv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "a"}})
    }

    #[test]
    fn writes_bump_one_version_and_feed_history() {
        let mut store = Store::default();
        let start = store.rv();
        let a = store.apply(Resource::Pod, pod("a")).unwrap();
        assert_eq!(
            a["metadata"]["resourceVersion"],
            json!((start + 1).to_string())
        );
        let key = (Resource::Pod, "a".to_owned(), "a".to_owned());
        let mut stale = a.clone();
        store.apply(Resource::Pod, pod("a")).unwrap();
        stale["metadata"]["labels"] = json!({"x": "y"});
        assert_eq!(store.replace(&key, stale), Err(WriteError::Conflict));
        assert_eq!(
            store.create(Resource::Pod, "a", pod("a")),
            Err(WriteError::AlreadyExists)
        );
        store.delete(&key).unwrap();
        let resumed = store.resume(start).unwrap();
        let kinds: Vec<_> = resumed.replay.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EventType::Added, EventType::Modified, EventType::Deleted]
        );
        store.compact();
        assert!(store.resume(start).is_none());
        assert!(store.resume(store.rv()).is_some());
    }
}
