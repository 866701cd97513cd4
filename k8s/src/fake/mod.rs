//! A fake Kubernetes API server for tests (feature `fake`): the real wire format over plain
//! HTTP on 127.0.0.1, for kube's client, `kubectl` and the `cairn` binary alike.
//!
//! It serves discovery, pods (core `v1`), agent-sandbox `Sandbox` objects
//! (`agents.x-k8s.io/v1beta1` and the deprecated `v1alpha1`) and `coordination.k8s.io/v1`
//! leases: list (selectors, `limit`/`continue` pages), watch (from a resourceVersion, bookmarks,
//! timeouts, 410 Gone past the retained history), get, create, replace (409 Conflict on a stale
//! `metadata.resourceVersion`) and delete, all over one global resourceVersion.
//!
//! Tests drive it through [`FakeApiServer`]: seed objects (the recorded ones in
//! `k8s/tests/fixtures`, [`FakeApiServer::seed_fixtures`]), change them (each change is a watch
//! event), take the server down and up on the same port, make requests slow, hang or fail (for
//! everybody or one user: each kubeconfig written with [`FakeApiServer::write_kubeconfig_as`]
//! authenticates as its own user), cut open watches, forget history, and read back every
//! request and every accepted write.

mod api;
mod discovery;
mod faults;
mod listen;
mod resource;
mod select;
mod store;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use faults::{Fault, RecordedRequest, Verb, Write};
pub use resource::Resource;
pub use select::Selector;

use faults::Faults;
use listen::Listening;
use store::Store;

/// The user of [`FakeApiServer::write_kubeconfig`] and [`FakeApiServer::client`].
pub const DEFAULT_USER: &str = "cairn";

/// State shared by the handlers and the test API.
struct Shared {
    addr: SocketAddr,
    store: Mutex<Store>,
    faults: tokio::sync::watch::Sender<Faults>,
    requests: Mutex<Vec<RecordedRequest>>,
    writes: Mutex<Vec<Write>>,
    /// Cancelled to end every open watch; replaced by a fresh one.
    watches: Mutex<CancellationToken>,
    bookmark_interval: Mutex<Duration>,
}

/// A running fake API server. Stops when dropped.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    listening: tokio::sync::Mutex<Option<Listening>>,
}

/// The directory of the recorded objects (`kubectl get -o json`) tests seed servers with.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

impl FakeApiServer {
    /// Starts an empty server on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().expect("address")).await
    }

    /// Starts an empty server on `addr`.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = listen::bind(addr).await?;
        let shared = Arc::new(Shared {
            addr: listener.local_addr()?,
            store: Mutex::default(),
            faults: tokio::sync::watch::Sender::new(Faults::default()),
            requests: Mutex::default(),
            writes: Mutex::default(),
            watches: Mutex::default(),
            bookmark_interval: Mutex::new(Duration::from_secs(1)),
        });
        let listening = Listening::start(listener, router(&shared));
        Ok(Self {
            shared,
            listening: tokio::sync::Mutex::new(Some(listening)),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Takes the server down: the port refuses connections, open ones (watches, requests in
    /// flight) are cut. Objects and history are kept.
    pub async fn stop(&self) {
        if let Some(l) = self.listening.lock().await.take() {
            l.stop().await;
        }
    }

    /// Brings a stopped server back on the same port.
    pub async fn restart(&self) -> std::io::Result<()> {
        let mut listening = self.listening.lock().await;
        if listening.is_none() {
            let listener = listen::bind(self.shared.addr).await?;
            *listening = Some(Listening::start(listener, router(&self.shared)));
        }
        Ok(())
    }

    /// Creates or replaces `object` (its resource from `apiVersion` and `kind`); returns it as
    /// stored, with its new resourceVersion. Watches see ADDED or MODIFIED.
    pub fn apply(&self, object: Value) -> Value {
        let resource = Resource::of(&object).unwrap_or_else(|| {
            panic!(
                "not an object the fake serves: {} {}",
                object["apiVersion"], object["kind"]
            )
        });
        let object = resource.to_storage(object);
        self.store()
            .apply(resource, object)
            .unwrap_or_else(|e| panic!("cannot store the object: {e:?}"))
    }

    /// Deletes an object; returns its last state, `None` when there was none. Watches see
    /// DELETED.
    pub fn delete(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        self.store()
            .delete(&(resource, namespace.to_owned(), name.to_owned()))
            .ok()
    }

    /// The stored object (in its storage version), if any.
    pub fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        self.store()
            .get(&(resource, namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every stored object of `resource`.
    pub fn list(&self, resource: Resource) -> Vec<Value> {
        self.store().list(resource, None)
    }

    /// Applies every `*.json` object of `dir`, in name order; returns how many.
    pub fn seed_dir(&self, dir: &Path) -> std::io::Result<usize> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        for path in &paths {
            let text = std::fs::read_to_string(path)?;
            let object: Value = serde_json::from_str(&text).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
            self.apply(object);
        }
        Ok(paths.len())
    }

    /// Applies the recorded objects of [`fixtures_dir`].
    pub fn seed_fixtures(&self) -> usize {
        self.seed_dir(&fixtures_dir()).expect("fixtures")
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store().rv()
    }

    /// Forgets the event history: watches from any earlier resourceVersion (and `continue`
    /// tokens) get 410 Gone.
    pub fn compact_history(&self) {
        self.store().compact();
    }

    /// Keeps only the last `events` events: watches from before them get 410 Gone.
    pub fn set_history_limit(&self, events: usize) {
        self.store().set_history_limit(events);
    }

    /// Ends every open watch stream (clients watch again from their last resourceVersion).
    pub fn drop_watches(&self) {
        let mut watches = self.shared.watches.lock().expect("watches");
        watches.cancel();
        *watches = CancellationToken::new();
    }

    /// How often watches that allow bookmarks get one (default 1 s); for watches started
    /// after the call.
    pub fn set_bookmark_interval(&self, every: Duration) {
        *self
            .shared
            .bookmark_interval
            .lock()
            .expect("bookmark interval") = every;
    }

    /// The fault every request meets (unless its user has one of its own).
    pub fn set_fault(&self, fault: Fault) {
        self.shared.faults.send_modify(|f| f.all = fault);
    }

    /// The fault the requests of `user` meet.
    pub fn set_user_fault(&self, user: &str, fault: Fault) {
        self.shared.faults.send_modify(|f| {
            f.users.insert(user.to_owned(), fault);
        });
    }

    /// Lifts every fault (hung requests go on).
    pub fn clear_faults(&self) {
        self.shared.faults.send_replace(Faults::default());
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().expect("requests").clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.requests.lock().expect("requests").clear();
    }

    /// Every accepted write so far, in order.
    pub fn writes(&self) -> Vec<Write> {
        self.shared.writes.lock().expect("writes").clone()
    }

    /// A kubeconfig naming this server, authenticating as [`DEFAULT_USER`].
    pub fn kubeconfig(&self) -> String {
        self.kubeconfig_as(DEFAULT_USER)
    }

    /// A kubeconfig naming this server, authenticating as `user` (a bearer token the server
    /// records with each request and faults can single out).
    pub fn kubeconfig_as(&self, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: {user}\n    namespace: default\n\
             current-context: fake\nusers:\n- name: {user}\n  user:\n    token: {user}\n",
            url = self.url()
        )
    }

    /// Writes [`Self::kubeconfig`] to `path` (for `cairn --kubeconfig` / `KUBECONFIG`).
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Writes [`Self::kubeconfig_as`] to `path`.
    pub fn write_kubeconfig_as(&self, path: &Path, user: &str) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_as(user))
    }

    /// A kube client of this server, as [`DEFAULT_USER`].
    pub async fn client(&self) -> kube::Client {
        self.client_as(DEFAULT_USER).await
    }

    /// A kube client of this server, as `user`.
    pub async fn client_as(&self, user: &str) -> kube::Client {
        let file =
            kube::config::Kubeconfig::from_yaml(&self.kubeconfig_as(user)).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
            .await
            .expect("client configuration");
        kube::Client::try_from(config).expect("client")
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().expect("store")
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Ok(listening) = self.listening.try_lock() {
            if let Some(l) = listening.as_ref() {
                l.cancel();
            }
        }
        self.drop_watches();
    }
}

fn router(shared: &Arc<Shared>) -> Router {
    Router::new()
        .fallback(api::handle)
        .with_state(Arc::clone(shared))
}
