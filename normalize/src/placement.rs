//! Where a span ran, as far as its resource says and the Kubernetes API adds.
//!
//! A [`Locate`] implementation (the Kubernetes pod cache) answers, for each resource of an
//! export, with the [`Placement`] of the pod that sent it, found by the [`PodKeys`] the resource
//! carries or the connection's peer address. Normalisation fills a placement column from it only
//! when the span's own attributes leave that column empty, with `_src` = [`K8S_API`]: what a span
//! carries is never overwritten. The [`cairn_schema::promoted::PLACEMENT`] columns are also
//! filled from the resource where it says them ([`columns`]).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use serde::{Deserialize, Serialize};

use crate::agent::Cell;

/// `<column>_src` of values that came from the Kubernetes API.
pub const K8S_API: &str = "k8s_api";

/// What the Kubernetes API says about the pod (and container) that sent a resource's spans.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Placement {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_class: Option<String>,
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `Job`, `CronJob`, `ReplicaSet`, `Sandbox`, ….
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox_template: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox_provider: Option<String>,
    /// Selected labels and annotations as `key=value`, sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

impl Placement {
    /// The promoted text columns of [`cairn_schema::promoted::COPIED`] it can fill, with values.
    pub fn copied(&self) -> [(&'static str, Option<&str>); 9] {
        [
            ("k8s_namespace", self.namespace.as_deref()),
            ("k8s_pod_name", self.pod_name.as_deref()),
            ("k8s_pod_uid", self.pod_uid.as_deref()),
            ("k8s_node_name", self.node_name.as_deref()),
            ("k8s_container_name", self.container_name.as_deref()),
            ("k8s_service_account", self.service_account.as_deref()),
            ("sandbox_id", self.sandbox_id.as_deref()),
            ("sandbox_template", self.sandbox_template.as_deref()),
            ("sandbox_provider", self.sandbox_provider.as_deref()),
        ]
    }
}

/// The placements of an export's resources, in `resource_spans` order (`None`: nothing known).
pub type Placements = Vec<Option<Arc<Placement>>>;

/// What a resource says about the pod that sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PodKeys {
    pub uid: Option<String>,
    pub ip: Option<IpAddr>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub container_name: Option<String>,
    pub container_id: Option<String>,
}

fn text<'a>(resource: &'a [KeyValue], key: &str) -> Option<&'a str> {
    resource.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) if !s.trim().is_empty() => Some(s.trim()),
            _ => None,
        }
    })
}

impl PodKeys {
    /// The keys a resource's attributes hold (`k8s.pod.uid`, `k8s.pod.ip`, `k8s.namespace.name`
    /// with `k8s.pod.name`, `k8s.container.name`, `container.id`).
    pub fn of(resource: &[KeyValue]) -> Self {
        let owned = |key: &str| text(resource, key).map(str::to_owned);
        Self {
            uid: owned("k8s.pod.uid"),
            ip: text(resource, "k8s.pod.ip").and_then(|ip| ip.parse().ok()),
            namespace: owned("k8s.namespace.name"),
            name: owned("k8s.pod.name"),
            container_name: owned("k8s.container.name"),
            container_id: owned("container.id"),
        }
    }
}

/// Finds the placement of each resource of an export.
pub trait Locate: Send + Sync {
    /// One answer per element of `keys`; `peer` is the address the export came from. May wait
    /// (boundedly) for a pod the source has not seen yet; never fails: unknown is `None`.
    fn locate<'a>(
        &'a self,
        keys: Vec<PodKeys>,
        peer: Option<IpAddr>,
    ) -> Pin<Box<dyn Future<Output = Placements> + Send + 'a>>;
}

/// Resource attributes naming a pod's workload, and its kind, in precedence order.
const WORKLOADS: &[(&str, &str)] = &[
    ("k8s.deployment.name", "Deployment"),
    ("k8s.statefulset.name", "StatefulSet"),
    ("k8s.daemonset.name", "DaemonSet"),
    ("k8s.cronjob.name", "CronJob"),
    ("k8s.job.name", "Job"),
    ("k8s.replicaset.name", "ReplicaSet"),
];

/// Prefixes of resource attributes holding pod labels and annotations (the OpenTelemetry
/// Collector's k8sattributes processor writes them).
const LABEL_PREFIXES: &[&str] = &[
    "k8s.pod.label.",
    "k8s.pod.labels.",
    "k8s.pod.annotation.",
    "k8s.pod.annotations.",
];

/// The cells of [`cairn_schema::promoted::PLACEMENT`] (each followed by its `_src`): from the
/// resource when it says them, otherwise from `placement`.
pub fn columns(resource: &[KeyValue], placement: Option<&Placement>) -> Vec<Cell> {
    let api = |v: Option<&String>| {
        v.map(|v| (Some(v.clone()), Some(K8S_API.to_owned())))
            .unwrap_or((None, None))
    };
    let (runtime, runtime_src) = api(placement.and_then(|p| p.runtime_class.as_ref()));
    let from_resource = WORKLOADS.iter().find_map(|(key, kind)| {
        text(resource, key)
            .map(|name| (kind.to_string(), name.to_owned(), format!("resource:{key}")))
    });
    let (kind, name, workload_src) = match from_resource {
        Some((kind, name, src)) => (Some(kind), Some(name), Some(src)),
        None => match placement.filter(|p| p.workload_name.is_some()) {
            Some(p) => (
                p.workload_kind.clone(),
                p.workload_name.clone(),
                Some(K8S_API.to_owned()),
            ),
            None => (None, None, None),
        },
    };
    let mut labels: Vec<String> = resource
        .iter()
        .filter_map(|kv| {
            let key = LABEL_PREFIXES.iter().find_map(|p| kv.key.strip_prefix(p))?;
            match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(v) => Some(format!("{key}={v}")),
                _ => None,
            }
        })
        .collect();
    let (labels, labels_src) = if !labels.is_empty() {
        labels.sort();
        labels.dedup();
        (Some(labels), Some("resource:k8s.pod.label.*".to_owned()))
    } else {
        match placement.filter(|p| !p.labels.is_empty()) {
            Some(p) => (Some(p.labels.clone()), Some(K8S_API.to_owned())),
            None => (None, None),
        }
    };
    vec![
        Cell::Text(runtime),
        Cell::Text(runtime_src),
        Cell::Text(kind),
        Cell::Text(workload_src.clone()),
        Cell::Text(name),
        Cell::Text(workload_src),
        Cell::TextList(labels),
        Cell::Text(labels_src),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::kv;

    #[test]
    fn keys_come_from_the_resource() {
        let keys = PodKeys::of(&[
            kv("k8s.pod.uid", "u-1"),
            kv("k8s.pod.ip", "10.1.2.3"),
            kv("k8s.pod.name", "agent-0"),
            kv("k8s.namespace.name", "agents"),
        ]);
        assert_eq!(keys.uid.as_deref(), Some("u-1"));
        assert_eq!(keys.ip, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(keys.name.as_deref(), Some("agent-0"));
        assert_eq!(PodKeys::of(&[kv("k8s.pod.ip", "not an ip")]).ip, None);
    }

    #[test]
    fn the_resource_wins_over_the_api() {
        let api = Placement {
            runtime_class: Some("gvisor".into()),
            workload_kind: Some("Deployment".into()),
            workload_name: Some("from-api".into()),
            labels: vec!["team=a".into()],
            ..Placement::default()
        };
        let cells = columns(
            &[
                kv("k8s.statefulset.name", "research"),
                kv("k8s.pod.label.team", "b"),
            ],
            Some(&api),
        );
        assert_eq!(cells[0], Cell::Text(Some("gvisor".into())));
        assert_eq!(cells[1], Cell::Text(Some(K8S_API.into())));
        assert_eq!(cells[2], Cell::Text(Some("StatefulSet".into())));
        assert_eq!(cells[4], Cell::Text(Some("research".into())));
        assert_eq!(
            cells[5],
            Cell::Text(Some("resource:k8s.statefulset.name".into()))
        );
        assert_eq!(cells[6], Cell::TextList(Some(vec!["team=b".into()])));
        let from_api = columns(&[], Some(&api));
        assert_eq!(from_api[4], Cell::Text(Some("from-api".into())));
        assert_eq!(from_api[6], Cell::TextList(Some(vec!["team=a".into()])));
        assert_eq!(from_api[7], Cell::Text(Some(K8S_API.into())));
        assert!(columns(&[], None)
            .iter()
            .all(|c| matches!(c, Cell::Text(None) | Cell::TextList(None))));
    }
}
