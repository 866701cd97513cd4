//! The pod cache's data: pods by uid, IP and name, with deleted pods kept for a while for the
//! spans they exported last, within a bound on the number of pods.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_normalize::placement::{Placement, PodKeys};

use super::extract::PodRecord;
use crate::config::Association;

struct Entry {
    record: Arc<PodRecord>,
    deleted_at: Option<Instant>,
}

/// What an agent-sandbox `Sandbox` adds to the placement of its pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxInfo {
    pub template: Option<String>,
}

/// Pods by uid, with lookups by IP and by (namespace, name).
pub struct Index {
    pods: HashMap<String, Entry>,
    by_ip: HashMap<IpAddr, String>,
    by_name: HashMap<(String, String), String>,
    sandboxes: HashMap<(String, String), SandboxInfo>,
    max_pods: usize,
    deleted_ttl: Duration,
}

impl Index {
    pub fn new(max_pods: usize, deleted_ttl: Duration) -> Self {
        Self {
            pods: HashMap::new(),
            by_ip: HashMap::new(),
            by_name: HashMap::new(),
            sandboxes: HashMap::new(),
            max_pods: max_pods.max(1),
            deleted_ttl,
        }
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Adds or updates a live pod; its IPs and name now point to it (a reused IP moves to the
    /// newer pod). Returns false when the cache is full of live pods and it was not added.
    pub fn apply(&mut self, record: PodRecord, now: Instant) -> bool {
        if !self.pods.contains_key(&record.uid) && self.pods.len() >= self.max_pods {
            self.expire(now);
            self.evict_deleted();
            if self.pods.len() >= self.max_pods {
                return false;
            }
        }
        for ip in &record.ips {
            self.by_ip.insert(*ip, record.uid.clone());
        }
        self.by_name.insert(
            (record.namespace.clone(), record.name.clone()),
            record.uid.clone(),
        );
        self.pods.insert(
            record.uid.clone(),
            Entry {
                record: Arc::new(record),
                deleted_at: None,
            },
        );
        true
    }

    /// Marks a pod deleted: still found until `deleted_ttl` has passed, unless its IP or name
    /// goes to a newer pod.
    pub fn delete(&mut self, uid: &str, now: Instant) {
        if let Some(entry) = self.pods.get_mut(uid) {
            entry.deleted_at.get_or_insert(now);
        }
    }

    /// Replaces the live set with `records` (a complete list): pods not in it are deleted now.
    pub fn replace(&mut self, records: Vec<PodRecord>, now: Instant) -> usize {
        let listed: HashSet<String> = records.iter().map(|r| r.uid.clone()).collect();
        let gone: Vec<String> = self
            .pods
            .iter()
            .filter(|(uid, e)| e.deleted_at.is_none() && !listed.contains(*uid))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in gone {
            self.delete(&uid, now);
        }
        records
            .into_iter()
            .filter(|r| !self.apply(r.clone(), now))
            .count()
    }

    /// Forgets deleted pods older than the time they are kept for.
    pub fn expire(&mut self, now: Instant) {
        let ttl = self.deleted_ttl;
        let old: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, e)| e.deleted_at.is_some_and(|at| now.duration_since(at) >= ttl))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in old {
            self.forget(&uid);
        }
    }

    /// Forgets the longest-deleted pods until the cache is below its bound.
    fn evict_deleted(&mut self) {
        let mut deleted: Vec<(Instant, String)> = self
            .pods
            .iter()
            .filter_map(|(uid, e)| e.deleted_at.map(|at| (at, uid.clone())))
            .collect();
        deleted.sort();
        let excess = (self.pods.len() + 1).saturating_sub(self.max_pods);
        for (_, uid) in deleted.into_iter().take(excess.max(1)) {
            self.forget(&uid);
        }
    }

    fn forget(&mut self, uid: &str) {
        let Some(entry) = self.pods.remove(uid) else {
            return;
        };
        let r = &entry.record;
        for ip in &r.ips {
            if self.by_ip.get(ip).is_some_and(|u| u == uid) {
                self.by_ip.remove(ip);
            }
        }
        let name = (r.namespace.clone(), r.name.clone());
        if self.by_name.get(&name).is_some_and(|u| u == uid) {
            self.by_name.remove(&name);
        }
    }

    /// Records what a `Sandbox` says (or, with `None`, that it is gone).
    pub fn sandbox(&mut self, namespace: String, name: String, info: Option<SandboxInfo>) {
        match info {
            Some(info) => self.sandboxes.insert((namespace, name), info),
            None => self.sandboxes.remove(&(namespace, name)),
        };
    }

    /// The pod that sent a resource with `keys` over a connection from `peer`, trying the
    /// associations in `order`: its placement, and which association found it.
    pub fn find(
        &self,
        keys: &PodKeys,
        peer: Option<IpAddr>,
        order: &[Association],
    ) -> Option<(Placement, Association)> {
        let found = order.iter().find_map(|&how| {
            let uid = match how {
                Association::PodUid => keys.uid.as_ref()?,
                Association::PodIp => self.by_ip.get(keys.ip.as_ref()?)?,
                Association::PodName => self
                    .by_name
                    .get(&(keys.namespace.clone()?, keys.name.clone()?))?,
                Association::Peer => self.by_ip.get(peer.as_ref()?)?,
            };
            self.pods.get(uid).map(|e| (e, how))
        });
        let (entry, how) = found?;
        let record = &entry.record;
        let mut placement = record.placement.clone();
        placement.container_name = record
            .container(keys.container_name.as_deref(), keys.container_id.as_deref())
            .map(str::to_owned);
        if let Some(owner) = &record.sandbox_owner {
            if let Some(info) = self
                .sandboxes
                .get(&(record.namespace.clone(), owner.clone()))
            {
                placement.sandbox_template.clone_from(&info.template);
            }
        }
        Some((placement, how))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(uid: &str, ip: &str, name: &str) -> PodRecord {
        PodRecord {
            uid: uid.into(),
            namespace: "ns".into(),
            name: name.into(),
            ips: vec![ip.parse().unwrap()],
            containers: vec![("main".into(), Some("cid".into()))],
            placement: Placement {
                pod_uid: Some(uid.into()),
                pod_name: Some(name.into()),
                ..Placement::default()
            },
            sandbox_owner: None,
        }
    }

    const ALL: &[Association] = &[
        Association::PodUid,
        Association::PodIp,
        Association::PodName,
        Association::Peer,
    ];

    fn uid_of(index: &Index, keys: &PodKeys, peer: Option<&str>) -> Option<String> {
        index
            .find(keys, peer.map(|p| p.parse().unwrap()), ALL)
            .and_then(|(p, _)| p.pod_uid)
    }

    #[test]
    fn found_by_uid_then_ip_then_name_then_peer() {
        let now = Instant::now();
        let mut index = Index::new(10, Duration::from_secs(60));
        index.apply(record("u1", "10.0.0.1", "a"), now);
        index.apply(record("u2", "10.0.0.2", "b"), now);
        let keys = |uid: Option<&str>, ip: Option<&str>| PodKeys {
            uid: uid.map(Into::into),
            ip: ip.map(|i| i.parse().unwrap()),
            ..PodKeys::default()
        };
        assert_eq!(
            uid_of(&index, &keys(Some("u1"), Some("10.0.0.2")), None).as_deref(),
            Some("u1")
        );
        assert_eq!(
            uid_of(&index, &keys(Some("nope"), Some("10.0.0.2")), None).as_deref(),
            Some("u2")
        );
        let by_name = PodKeys {
            namespace: Some("ns".into()),
            name: Some("a".into()),
            ..PodKeys::default()
        };
        assert_eq!(uid_of(&index, &by_name, None).as_deref(), Some("u1"));
        assert_eq!(
            uid_of(&index, &PodKeys::default(), Some("10.0.0.2")).as_deref(),
            Some("u2")
        );
        assert_eq!(uid_of(&index, &PodKeys::default(), Some("10.9.9.9")), None);
        // Only the configured associations are tried.
        let found = index.find(
            &PodKeys::default(),
            Some("10.0.0.2".parse().unwrap()),
            &[Association::PodUid],
        );
        assert!(found.is_none());
        // The only container is the sender's.
        let (p, how) = index.find(&keys(Some("u1"), None), None, ALL).unwrap();
        assert_eq!(
            (p.container_name.as_deref(), how),
            (Some("main"), Association::PodUid)
        );
    }

    #[test]
    fn deleted_pods_stay_for_late_spans_and_give_way() {
        let t0 = Instant::now();
        let mut index = Index::new(2, Duration::from_secs(60));
        index.apply(record("u1", "10.0.0.1", "a"), t0);
        index.delete("u1", t0);
        let ip = PodKeys::default();
        assert_eq!(uid_of(&index, &ip, Some("10.0.0.1")).as_deref(), Some("u1"));
        // A new pod with the same IP takes it over.
        index.apply(record("u3", "10.0.0.1", "c"), t0);
        assert_eq!(uid_of(&index, &ip, Some("10.0.0.1")).as_deref(), Some("u3"));
        // Full: the deleted pod is forgotten first to make room.
        assert!(index.apply(record("u4", "10.0.0.4", "d"), t0));
        assert_eq!(index.len(), 2);
        assert!(
            !index.apply(record("u5", "10.0.0.5", "e"), t0),
            "full of live pods"
        );
        // Expiry.
        index.delete("u4", t0);
        index.expire(t0 + Duration::from_secs(61));
        assert_eq!(index.len(), 1);
        assert_eq!(uid_of(&index, &ip, Some("10.0.0.4")), None);
        assert_eq!(uid_of(&index, &ip, Some("10.0.0.1")).as_deref(), Some("u3"));
    }

    #[test]
    fn a_relist_deletes_what_it_no_longer_lists() {
        let t0 = Instant::now();
        let mut index = Index::new(10, Duration::from_secs(1));
        index.apply(record("u1", "10.0.0.1", "a"), t0);
        index.apply(record("u2", "10.0.0.2", "b"), t0);
        index.replace(vec![record("u2", "10.0.0.2", "b")], t0);
        index.expire(t0 + Duration::from_secs(2));
        assert_eq!(index.len(), 1);
        assert_eq!(
            uid_of(&index, &PodKeys::default(), Some("10.0.0.2")).as_deref(),
            Some("u2")
        );
    }
}
