//! How Cairn reaches the Kubernetes API and what it copies from pods: every `--kube*` flag, its
//! `CAIRN_KUBE*` variable and config file key.

use std::path::PathBuf;
use std::time::Duration;

use cairn_config::parse;

use crate::{Error, Result};

/// Whether Cairn talks to the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Access {
    /// Never.
    Off,
    /// In-cluster when running in a pod (`KUBERNETES_SERVICE_HOST` is set), otherwise off.
    Auto,
    /// In-cluster, or from `--kubeconfig` / `KUBECONFIG` / `~/.kube/config`; fails without one.
    On,
}

/// How an export is matched to the pod that sent it, tried in the configured order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Association {
    /// The resource attribute `k8s.pod.uid`.
    PodUid,
    /// The resource attribute `k8s.pod.ip`.
    PodIp,
    /// The resource attributes `k8s.namespace.name` and `k8s.pod.name` together.
    PodName,
    /// The address the export's connection came from (agents sending straight to Cairn, not
    /// through a node-level collector).
    Peer,
}

/// Kubernetes settings of the collector.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeConfig {
    /// Pod enrichment from the Kubernetes API: `off`, `auto` (when running in a pod) or `on`
    /// (in-cluster, else the kubeconfig).
    #[arg(
        id = "kube",
        long = "kube",
        env = "CAIRN_KUBE",
        value_enum,
        default_value = "auto"
    )]
    pub access: Access,
    /// Kubeconfig file used outside a cluster with `--kube on` (default: `KUBECONFIG`, then
    /// `~/.kube/config`).
    #[arg(long, env = "CAIRN_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// How an export is matched to its pod, tried in this order: pod-uid, pod-ip, pod-name
    /// (namespace and name), peer (the connection's address).
    #[arg(
        long,
        env = "CAIRN_KUBE_ASSOCIATION",
        value_enum,
        value_delimiter = ',',
        default_value = "pod-uid,pod-ip,pod-name,peer"
    )]
    pub kube_association: Vec<Association>,
    /// Watch only the pods of this namespace (default: all namespaces).
    #[arg(long, env = "CAIRN_KUBE_NAMESPACE")]
    pub kube_namespace: Option<String>,
    /// Watch only the pods scheduled on this node (a collector per node: set it from
    /// `spec.nodeName`).
    #[arg(long, env = "CAIRN_KUBE_NODE")]
    pub kube_node: Option<String>,
    /// Pod label keys copied into `k8s_labels` (a trailing `*` matches a prefix).
    #[arg(
        long,
        env = "CAIRN_KUBE_LABELS",
        value_delimiter = ',',
        default_value = "app.kubernetes.io/name,app.kubernetes.io/version,app.kubernetes.io/component"
    )]
    pub kube_labels: Vec<String>,
    /// Pod annotation keys copied into `k8s_labels` (a trailing `*` matches a prefix).
    #[arg(long, env = "CAIRN_KUBE_ANNOTATIONS", value_delimiter = ',')]
    pub kube_annotations: Vec<String>,
    /// Pod labels or annotations holding the sandbox id, tried in order.
    #[arg(
        long,
        env = "CAIRN_KUBE_SANDBOX_KEYS",
        value_delimiter = ',',
        default_value = "agents.x-k8s.io/sandbox-name-hash"
    )]
    pub kube_sandbox_keys: Vec<String>,
    /// Also watch agent-sandbox `Sandbox` resources (agents.x-k8s.io) to name the sandbox of
    /// the pods they own.
    #[arg(long, env = "CAIRN_KUBE_SANDBOXES", default_value = "false", default_missing_value = "true", num_args = 0..=1, action = clap::ArgAction::Set)]
    pub kube_sandboxes: bool,
    /// How long an export from a pod the watch has not seen yet waits for it (a fresh pod's
    /// first spans); then it is stored unenriched. Never waits while the API server is
    /// unreachable; `0s` never waits.
    #[arg(long, env = "CAIRN_KUBE_POD_WAIT", default_value = "2s", value_parser = parse::span_or_zero)]
    pub kube_pod_wait: Duration,
    /// How long a deleted pod stays in the cache, for spans exported after it ended.
    #[arg(long, env = "CAIRN_KUBE_DELETED_TTL", default_value = "10m", value_parser = parse::span)]
    pub kube_deleted_ttl: Duration,
    /// Pods kept in the cache at most; beyond it the longest-deleted are forgotten first.
    #[arg(long, env = "CAIRN_KUBE_MAX_PODS", default_value = "100000", value_parser = parse::positive)]
    pub kube_max_pods: usize,
}

impl Default for KubeConfig {
    fn default() -> Self {
        cairn_config::defaults()
    }
}

/// Whether this process runs inside a Kubernetes pod.
pub fn in_cluster() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}

impl KubeConfig {
    /// Whether the API is to be used at all.
    pub fn enabled(&self) -> bool {
        match self.access {
            Access::Off => false,
            Access::Auto => in_cluster(),
            Access::On => true,
        }
    }

    /// A client for the configured API server: in-cluster when running in a pod and no
    /// kubeconfig was named, otherwise from the kubeconfig.
    pub async fn client(&self) -> Result<kube::Client> {
        client(self.kubeconfig.as_deref()).await
    }
}

/// A Kubernetes client: from `kubeconfig` when given, in-cluster when running in a pod, else
/// from `KUBECONFIG` / `~/.kube/config`.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
        }
        None if in_cluster() => kube::Config::incluster()
            .map_err(|e| Error::Config(format!("in-cluster configuration: {e}")))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::Config(format!("no kubeconfig: {e}")))?,
    };
    kube::Client::try_from(config).map_err(Error::Api)
}
