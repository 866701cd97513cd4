//! What Cairn keeps of a pod: the placement fields, its addresses and containers; nothing else
//! of the object stays in memory.

use std::net::IpAddr;

use cairn_normalize::placement::Placement;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::config::KubeConfig;

/// The API group of agent-sandbox resources (kubernetes-sigs/agent-sandbox).
pub const SANDBOX_GROUP: &str = "agents.x-k8s.io";

/// One pod as the cache holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRecord {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// Pod IPs, unless the pod uses the node's network (its IP is then the node's, shared).
    pub ips: Vec<IpAddr>,
    /// (name, runtime id without the `containerd://` scheme) of each app container.
    pub containers: Vec<(String, Option<String>)>,
    /// Everything but the container, which depends on which one sent the spans.
    pub placement: Placement,
    /// The agent-sandbox `Sandbox` owning the pod, if any: its name.
    pub sandbox_owner: Option<String>,
}

/// Which of `keys` (exact, or prefixes ending in `*`) `key` is selected by.
fn selected(keys: &[String], key: &str) -> bool {
    keys.iter().any(|k| match k.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => k == key,
    })
}

/// The workload a pod belongs to, from its controlling owner: a ReplicaSet made by a Deployment
/// (named `<deployment>-<pod-template-hash>`) counts as that Deployment.
fn workload(owner: &OwnerReference, template_hash: Option<&String>) -> (String, String) {
    if owner.kind == "ReplicaSet" {
        if let Some(deployment) = template_hash
            .and_then(|hash| owner.name.strip_suffix(hash.as_str()))
            .and_then(|rest| rest.strip_suffix('-'))
            .filter(|d| !d.is_empty())
        {
            return ("Deployment".to_owned(), deployment.to_owned());
        }
    }
    (owner.kind.clone(), owner.name.clone())
}

/// Strips the runtime scheme of a container id (`containerd://abc` → `abc`).
pub fn bare_container_id(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, rest)| rest)
}

impl PodRecord {
    /// The record of `pod`, `None` without a uid (never the case for stored pods).
    pub fn of(pod: &Pod, config: &KubeConfig) -> Option<Self> {
        let meta = &pod.metadata;
        let uid = meta.uid.clone()?;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
        let mut ips: Vec<IpAddr> = Vec::new();
        if !host_network {
            let listed = status
                .and_then(|s| s.pod_ips.as_ref())
                .into_iter()
                .flatten()
                .map(|ip| ip.ip.as_str());
            for ip in status
                .and_then(|s| s.pod_ip.as_deref())
                .into_iter()
                .chain(listed)
            {
                if let Ok(ip) = ip.parse() {
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
            }
        }
        let statuses = status.and_then(|s| s.container_statuses.as_ref());
        let containers = spec
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let id = statuses
                    .into_iter()
                    .flatten()
                    .find(|s| s.name == c.name)
                    .and_then(|s| s.container_id.as_deref())
                    .map(|id| bare_container_id(id).to_owned());
                (c.name.clone(), id)
            })
            .collect();
        let labels = meta.labels.as_ref();
        let annotations = meta.annotations.as_ref();
        let controller = meta
            .owner_references
            .as_ref()
            .and_then(|o| o.iter().find(|o| o.controller == Some(true)).or(o.first()));
        let (workload_kind, workload_name) = controller
            .map(|o| workload(o, labels.and_then(|l| l.get("pod-template-hash"))))
            .unzip();
        let sandbox_owner = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.kind == "Sandbox" && o.api_version.starts_with(SANDBOX_GROUP))
            .map(|o| o.name.clone());
        // The sandbox id from a label or annotation the operator named, in order.
        let sandbox_id = config.kube_sandbox_keys.iter().find_map(|key| {
            labels
                .and_then(|l| l.get(key))
                .or_else(|| annotations.and_then(|a| a.get(key)))
                .filter(|v| !v.is_empty())
                .cloned()
        });
        let mut picked: Vec<String> = labels
            .into_iter()
            .flatten()
            .filter(|(k, _)| selected(&config.kube_labels, k))
            .chain(
                annotations
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| selected(&config.kube_annotations, k)),
            )
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        picked.sort();
        picked.dedup();
        let sandboxed = sandbox_owner.is_some() || sandbox_id.is_some();
        let placement = Placement {
            namespace: Some(namespace.clone()).filter(|n| !n.is_empty()),
            pod_name: Some(name.clone()).filter(|n| !n.is_empty()),
            pod_uid: Some(uid.clone()),
            node_name: spec.and_then(|s| s.node_name.clone()),
            service_account: spec.and_then(|s| s.service_account_name.clone()),
            container_name: None,
            runtime_class: spec.and_then(|s| s.runtime_class_name.clone()),
            workload_kind,
            workload_name,
            sandbox_id: sandbox_owner.clone().or(sandbox_id),
            sandbox_template: None,
            sandbox_provider: sandboxed.then(|| "agent-sandbox".to_owned()),
            labels: picked,
        };
        Some(Self {
            uid,
            namespace,
            name,
            ips,
            containers,
            placement,
            sandbox_owner,
        })
    }

    /// The container that sent spans, from the name or runtime id they carry, or the only one.
    pub fn container(&self, name: Option<&str>, id: Option<&str>) -> Option<&str> {
        if let Some(name) = name {
            return self
                .containers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(n, _)| n.as_str());
        }
        if let Some(id) = id.map(bare_container_id) {
            if let Some((n, _)) = self
                .containers
                .iter()
                .find(|(_, c)| c.as_deref() == Some(id))
            {
                return Some(n);
            }
        }
        match self.containers.as_slice() {
            [(only, _)] => Some(only),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_deployment_pod_in_gvisor() {
        let config = KubeConfig {
            kube_labels: vec!["team".into(), "app.kubernetes.io/*".into()],
            kube_annotations: vec!["agents.example.com/owner".into()],
            ..KubeConfig::default()
        };
        let p = pod(serde_json::json!({
            "metadata": {
                "name": "support-7d9f8-abcde", "namespace": "agents", "uid": "u-1",
                "labels": {"team": "care", "pod-template-hash": "7d9f8", "app.kubernetes.io/name": "support", "other": "x"},
                "annotations": {"agents.example.com/owner": "ana", "ignored": "y"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "support-7d9f8", "uid": "rs", "controller": true}]
            },
            "spec": {"nodeName": "node-a", "serviceAccountName": "support-sa", "runtimeClassName": "gvisor",
                     "containers": [{"name": "agent"}, {"name": "proxy"}]},
            "status": {"podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}],
                       "containerStatuses": [{"name": "agent", "containerID": "containerd://c-agent", "image": "i", "imageID": "", "ready": true, "restartCount": 0}]}
        }));
        let r = PodRecord::of(&p, &config).unwrap();
        assert_eq!(
            r.ips,
            vec![
                "10.0.0.7".parse::<IpAddr>().unwrap(),
                "fd00::7".parse().unwrap()
            ]
        );
        assert_eq!(r.placement.workload_kind.as_deref(), Some("Deployment"));
        assert_eq!(r.placement.workload_name.as_deref(), Some("support"));
        assert_eq!(r.placement.runtime_class.as_deref(), Some("gvisor"));
        assert_eq!(r.placement.service_account.as_deref(), Some("support-sa"));
        assert_eq!(
            r.placement.labels,
            vec![
                "agents.example.com/owner=ana",
                "app.kubernetes.io/name=support",
                "team=care"
            ]
        );
        assert_eq!(r.placement.sandbox_id, None);
        assert_eq!(
            r.container(None, Some("containerd://c-agent")),
            Some("agent")
        );
        assert_eq!(r.container(Some("proxy"), None), Some("proxy"));
        assert_eq!(r.container(Some("nope"), None), None);
        assert_eq!(r.container(None, None), None, "two containers: unknown");
    }

    #[test]
    fn sandboxes_and_host_network() {
        let config = KubeConfig::default();
        let p = pod(serde_json::json!({
            "metadata": {
                "name": "sbx-1", "namespace": "agents", "uid": "u-2",
                "labels": {"agents.x-k8s.io/sandbox-name-hash": "h123"},
                "ownerReferences": [{"apiVersion": "agents.x-k8s.io/v1alpha1", "kind": "Sandbox", "name": "research-sbx", "uid": "s", "controller": true}]
            },
            "spec": {"hostNetwork": true, "containers": [{"name": "main"}]},
            "status": {"podIP": "192.168.1.5"}
        }));
        let r = PodRecord::of(&p, &config).unwrap();
        assert!(r.ips.is_empty(), "the node's address names no pod");
        assert_eq!(r.placement.sandbox_id.as_deref(), Some("research-sbx"));
        assert_eq!(
            r.placement.sandbox_provider.as_deref(),
            Some("agent-sandbox")
        );
        assert_eq!(r.placement.workload_kind.as_deref(), Some("Sandbox"));
        assert_eq!(r.container(None, None), Some("main"));
        let mut unowned = p.clone();
        unowned.metadata.owner_references = None;
        let r = PodRecord::of(&unowned, &config).unwrap();
        assert_eq!(
            r.placement.sandbox_id.as_deref(),
            Some("h123"),
            "from the label"
        );
        assert_eq!(r.placement.workload_kind, None);
    }
}
