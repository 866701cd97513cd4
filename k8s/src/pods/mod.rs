//! The pod cache: fed by a watch on the Kubernetes API ([`watch`]), asked by the collector for
//! the placement of each export's resources ([`Locate`]).
//!
//! A lookup never calls the API server. When a resource names a pod the cache has not seen (a
//! fresh pod's first export usually arrives before the watch event), the export waits for the
//! watch, up to `--kube-pod-wait`, and is stored unenriched if the pod does not show up; keys
//! that waited in vain are remembered for a while so that a sender that is not a pod (or not
//! one the watch covers) costs no wait on every export. While the API server is unreachable
//! nothing waits at all: the cache answers from what it holds and a metric counts the rest.

mod extract;
mod index;
mod watch;

use std::future::Future;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cairn_normalize::placement::{Locate, Placements, PodKeys};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use extract::{PodRecord, SANDBOX_GROUP};
pub use index::{Index, SandboxInfo};

use crate::config::{Association, KubeConfig};
use crate::metrics::{metrics, By, Reason};

/// How long keys whose wait found no pod are not waited for again.
const MISS_MEMORY: Duration = Duration::from_secs(300);
/// Keys remembered as misses at most.
const MISSES: usize = 4096;

/// What the cache knows of the API server.
const STARTING: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Pods known from the Kubernetes API.
pub struct PodCache {
    index: RwLock<Index>,
    /// Woken whenever pods are added.
    changed: Notify,
    api: AtomicU8,
    config: KubeConfig,
    misses: Mutex<lru::LruCache<String, Instant>>,
}

impl PodCache {
    /// An empty cache; [`PodCache::start`] feeds one from the API.
    pub fn new(config: KubeConfig) -> Self {
        Self {
            index: RwLock::new(Index::new(config.kube_max_pods, config.kube_deleted_ttl)),
            changed: Notify::new(),
            api: AtomicU8::new(STARTING),
            misses: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(MISSES).expect("non-zero"),
            )),
            config,
        }
    }

    /// A cache fed by watches on `client` until `shutdown`; returns at once (the first list
    /// arrives in the background).
    pub fn start(
        client: kube::Client,
        config: KubeConfig,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let cache = Arc::new(Self::new(config));
        tokio::spawn(watch::pods(
            client.clone(),
            Arc::clone(&cache),
            shutdown.clone(),
        ));
        if cache.config.kube_sandboxes {
            tokio::spawn(watch::sandboxes(
                client.clone(),
                Arc::clone(&cache),
                shutdown.clone(),
            ));
        }
        tokio::spawn(watch::health(client, Arc::clone(&cache), shutdown));
        cache
    }

    pub fn config(&self) -> &KubeConfig {
        &self.config
    }

    /// Runs `f` on the index for writing, then wakes waiting lookups.
    pub fn update<T>(&self, f: impl FnOnce(&mut Index) -> T) -> T {
        let out = {
            let mut index = self.index.write().expect("pod index");
            let out = f(&mut index);
            metrics().pods.set(index.len() as i64);
            out
        };
        self.changed.notify_waiters();
        out
    }

    /// Notes that the API server answered (`true`) or failed (`false`).
    pub fn api_answered(&self, ok: bool) {
        self.api.store(if ok { UP } else { DOWN }, Ordering::SeqCst);
        metrics().api_up.set(i64::from(ok));
    }

    /// Whether the API server failed the last request.
    pub fn api_down(&self) -> bool {
        self.api.load(Ordering::SeqCst) == DOWN
    }

    fn find_all(
        &self,
        keys: &[PodKeys],
        peer: Option<IpAddr>,
        out: &mut Placements,
        how: &mut [Option<Association>],
    ) {
        let index = self.index.read().expect("pod index");
        for (i, k) in keys.iter().enumerate() {
            if out[i].is_none() {
                if let Some((placement, by)) = index.find(k, peer, &self.config.kube_association) {
                    out[i] = Some(Arc::new(placement));
                    how[i] = Some(by);
                }
            }
        }
    }

    /// The keys of a resource the association would use, as one text (for remembering misses);
    /// `None` when it has none to look up.
    fn miss_key(&self, keys: &PodKeys, peer: Option<IpAddr>) -> Option<String> {
        let mut parts = Vec::new();
        for how in &self.config.kube_association {
            match how {
                Association::PodUid => parts.extend(keys.uid.as_ref().map(|u| format!("uid:{u}"))),
                Association::PodIp => parts.extend(keys.ip.map(|ip| format!("ip:{ip}"))),
                Association::PodName => {
                    if let (Some(ns), Some(n)) = (&keys.namespace, &keys.name) {
                        parts.push(format!("name:{ns}/{n}"));
                    }
                }
                Association::Peer => parts.extend(peer.map(|ip| format!("peer:{ip}"))),
            }
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    async fn locate_all(&self, keys: Vec<PodKeys>, peer: Option<IpAddr>) -> Placements {
        let m = metrics();
        let mut out: Placements = vec![None; keys.len()];
        let mut how = vec![None; keys.len()];
        self.find_all(&keys, peer, &mut out, &mut how);
        let wanted: Vec<(usize, String)> = (0..keys.len())
            .filter(|&i| out[i].is_none())
            .filter_map(|i| self.miss_key(&keys[i], peer).map(|k| (i, k)))
            .collect();
        let now = Instant::now();
        let worth_waiting = {
            let mut misses = self.misses.lock().expect("misses");
            wanted.iter().any(|(_, k)| {
                misses
                    .get(k)
                    .is_none_or(|at| now.duration_since(*at) >= MISS_MEMORY)
            })
        };
        if worth_waiting && !self.api_down() && !self.config.kube_pod_wait.is_zero() {
            m.waits.inc();
            let deadline = tokio::time::Instant::now() + self.config.kube_pod_wait;
            loop {
                let changed = self.changed.notified();
                self.find_all(&keys, peer, &mut out, &mut how);
                if wanted.iter().all(|(i, _)| out[*i].is_some()) || self.api_down() {
                    break;
                }
                if tokio::time::timeout_at(deadline, changed).await.is_err() {
                    self.find_all(&keys, peer, &mut out, &mut how);
                    break;
                }
            }
            if wanted.iter().all(|(i, _)| out[*i].is_some()) {
                m.waits_found.inc();
            }
            let mut misses = self.misses.lock().expect("misses");
            for (i, k) in &wanted {
                if out[*i].is_none() {
                    misses.put(k.clone(), now);
                }
            }
        }
        for (i, placement) in out.iter().enumerate() {
            match (placement, how[i]) {
                (Some(_), Some(by)) => {
                    m.enriched.get_or_create(&By { by: by_name(by) }).inc();
                }
                _ => {
                    let reason = if self.miss_key(&keys[i], peer).is_none() {
                        "no_pod_keys"
                    } else if self.api_down() {
                        "api_unavailable"
                    } else {
                        "unknown_pod"
                    };
                    m.unenriched.get_or_create(&Reason { reason }).inc();
                }
            }
        }
        out
    }
}

fn by_name(how: Association) -> &'static str {
    match how {
        Association::PodUid => "pod_uid",
        Association::PodIp => "pod_ip",
        Association::PodName => "pod_name",
        Association::Peer => "peer",
    }
}

impl Locate for PodCache {
    fn locate<'a>(
        &'a self,
        keys: Vec<PodKeys>,
        peer: Option<IpAddr>,
    ) -> Pin<Box<dyn Future<Output = Placements> + Send + 'a>> {
        Box::pin(self.locate_all(keys, peer))
    }
}
