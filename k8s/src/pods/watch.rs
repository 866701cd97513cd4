//! The watches that feed the pod cache: pods (cluster-wide, one namespace or one node), and
//! agent-sandbox `Sandbox` resources when enabled. kube's watcher lists, then watches from the
//! list's resourceVersion, takes bookmarks, relists when the version has expired (410 Gone) and
//! backs off while the API server fails; a relist replaces the cache's contents only once it is
//! complete, so lookups keep answering from the previous state meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::ResourceExt;
use tokio_util::sync::CancellationToken;

use super::extract::{PodRecord, SANDBOX_GROUP};
use super::index::SandboxInfo;
use super::PodCache;
use crate::metrics::metrics;

/// How often deleted pods past their time are forgotten, and an unreachable API server probed.
const HOUSEKEEPING: Duration = Duration::from_secs(2);

/// The pods to watch: all, one namespace's, and only one node's when configured.
fn pod_watch(client: kube::Client, cache: &PodCache) -> (Api<Pod>, watcher::Config) {
    let config = cache.config();
    let api = match &config.kube_namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let mut watch = watcher::Config::default();
    if let Some(node) = &config.kube_node {
        watch = watch.fields(&format!("spec.nodeName={node}"));
    }
    (api, watch)
}

/// Feeds `cache` from the pod watch until `shutdown`.
pub async fn pods(client: kube::Client, cache: Arc<PodCache>, shutdown: CancellationToken) {
    let (api, config) = pod_watch(client, &cache);
    let mut stream = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    let mut relist: Option<Vec<PodRecord>> = None;
    let m = metrics();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = stream.next() => event,
        };
        let Some(event) = event else { return };
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                m.watch_errors.inc();
                cache.api_answered(false);
                tracing::warn!(error = %e, "Kubernetes pod watch failed; retrying (spans are stored unenriched meanwhile)");
                continue;
            }
        };
        cache.api_answered(true);
        let settings = cache.config();
        let now = Instant::now();
        match event {
            Event::Init => {
                m.relists.inc();
                relist = Some(Vec::new());
            }
            Event::InitApply(pod) => {
                if let (Some(list), Some(record)) = (relist.as_mut(), PodRecord::of(&pod, settings))
                {
                    list.push(record);
                }
            }
            Event::InitDone => {
                let listed = relist.take().unwrap_or_default();
                let count = listed.len();
                let refused = cache.update(|index| index.replace(listed, now));
                tracing::info!(pods = count, "Kubernetes pods listed");
                if refused > 0 {
                    tracing::warn!(
                        refused,
                        max = settings.kube_max_pods,
                        "more live pods than --kube-max-pods; some are not cached"
                    );
                }
            }
            Event::Apply(pod) => {
                if let Some(record) = PodRecord::of(&pod, settings) {
                    if !cache.update(|index| index.apply(record, now)) {
                        tracing::warn!(pod = %pod.name_any(), max = settings.kube_max_pods, "pod cache full; pod not cached");
                    }
                }
            }
            Event::Delete(pod) => {
                if let Some(uid) = pod.uid() {
                    cache.update(|index| index.delete(&uid, now));
                }
            }
        }
    }
}

/// The `Sandbox` resource of agent-sandbox, in its storage version (`v1alpha1` is deprecated).
fn sandbox_resource() -> ApiResource {
    ApiResource {
        group: SANDBOX_GROUP.to_owned(),
        version: "v1beta1".to_owned(),
        api_version: format!("{SANDBOX_GROUP}/v1beta1"),
        kind: "Sandbox".to_owned(),
        plural: "sandboxes".to_owned(),
    }
}

/// What a `Sandbox` says about the template it was made from: the annotation the agent-sandbox
/// extensions set when a `SandboxClaim` (or a warm pool) makes it from a `SandboxTemplate`.
pub fn sandbox_info(sandbox: &DynamicObject) -> SandboxInfo {
    const TEMPLATE_KEYS: &[&str] = &[
        "agents.x-k8s.io/sandbox-template-ref",
        "agents.x-k8s.io/sandbox-template",
    ];
    let template = TEMPLATE_KEYS.iter().find_map(|key| {
        sandbox
            .labels()
            .get(*key)
            .or_else(|| sandbox.annotations().get(*key))
            .cloned()
    });
    SandboxInfo { template }
}

/// Feeds `cache` with agent-sandbox `Sandbox` resources until `shutdown`.
pub async fn sandboxes(client: kube::Client, cache: Arc<PodCache>, shutdown: CancellationToken) {
    let resource = sandbox_resource();
    let api: Api<DynamicObject> = match &cache.config().kube_namespace {
        Some(ns) => Api::namespaced_with(client, ns, &resource),
        None => Api::all_with(client, &resource),
    };
    let mut stream =
        std::pin::pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = stream.next() => event,
        };
        let Some(event) = event else { return };
        match event {
            Ok(Event::Apply(s) | Event::InitApply(s)) => {
                let info = sandbox_info(&s);
                let (ns, name) = (s.namespace().unwrap_or_default(), s.name_any());
                cache.update(|index| index.sandbox(ns, name, Some(info)));
            }
            Ok(Event::Delete(s)) => {
                let (ns, name) = (s.namespace().unwrap_or_default(), s.name_any());
                cache.update(|index| index.sandbox(ns, name, None));
            }
            Ok(Event::Init | Event::InitDone) => {}
            Err(e) => {
                metrics().watch_errors.inc();
                tracing::warn!(error = %e, "Kubernetes sandbox watch failed; retrying");
            }
        }
    }
}

/// Forgets deleted pods past their time, and while the API server is failing probes it so that
/// waiting for fresh pods resumes as soon as it answers again (a resumed watch says nothing
/// until a pod changes).
pub async fn health(client: kube::Client, cache: Arc<PodCache>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(HOUSEKEEPING) => {}
        }
        cache.update(|index| index.expire(Instant::now()));
        if cache.api_down() {
            if let Ok(Ok(_)) = tokio::time::timeout(HOUSEKEEPING, client.apiserver_version()).await
            {
                cache.api_answered(true);
            }
        }
    }
}
