//! The resources the fake API server knows: where each is served, its kind, its versions, and
//! how an object of one version reads in another (agent-sandbox serves `Sandbox` as `v1beta1`,
//! the storage version, and the deprecated `v1alpha1`).

use serde_json::{json, Value};

/// A resource type the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// `v1` pods.
    Pod,
    /// agent-sandbox `Sandbox` (`agents.x-k8s.io`).
    Sandbox,
    /// `coordination.k8s.io/v1` leases.
    Lease,
}

/// Every resource, in discovery order.
pub const ALL: [Resource; 3] = [Resource::Pod, Resource::Sandbox, Resource::Lease];

impl Resource {
    /// The API group (`""` for the core group).
    pub fn group(self) -> &'static str {
        match self {
            Resource::Pod => "",
            Resource::Sandbox => "agents.x-k8s.io",
            Resource::Lease => "coordination.k8s.io",
        }
    }

    /// The versions served, the storage (preferred) version first.
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            Resource::Pod | Resource::Lease => &["v1"],
            Resource::Sandbox => &["v1beta1", "v1alpha1"],
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Resource::Pod => "pods",
            Resource::Sandbox => "sandboxes",
            Resource::Lease => "leases",
        }
    }

    pub fn singular(self) -> &'static str {
        match self {
            Resource::Pod => "pod",
            Resource::Sandbox => "sandbox",
            Resource::Lease => "lease",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Resource::Pod => "Pod",
            Resource::Sandbox => "Sandbox",
            Resource::Lease => "Lease",
        }
    }

    /// Whether the built-in type is served without `apiVersion`/`kind` on list items (custom
    /// resources keep them, as the real server does).
    pub fn builtin(self) -> bool {
        !matches!(self, Resource::Sandbox)
    }

    /// `group/version`, or `version` in the core group.
    pub fn api_version(self, version: &str) -> String {
        match self.group() {
            "" => version.to_owned(),
            group => format!("{group}/{version}"),
        }
    }

    /// The resource served at `group`/`version`/`plural`.
    pub fn at(group: &str, version: &str, plural: &str) -> Option<Resource> {
        ALL.into_iter()
            .find(|r| r.group() == group && r.plural() == plural && r.versions().contains(&version))
    }

    /// The resource of an object, from its `apiVersion` and `kind`.
    pub fn of(object: &Value) -> Option<Resource> {
        let api_version = object["apiVersion"].as_str()?;
        let kind = object["kind"].as_str()?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        ALL.into_iter()
            .find(|r| r.group() == group && r.kind() == kind && r.versions().contains(&version))
    }

    /// `object` (stored in the storage version) as served in `version`, with its type set.
    pub fn convert(self, mut object: Value, version: &str) -> Value {
        object["apiVersion"] = json!(self.api_version(version));
        object["kind"] = json!(self.kind());
        if self == Resource::Sandbox && version == "v1alpha1" {
            // v1beta1 `spec.operatingMode: Running|Suspended` is v1alpha1 `spec.replicas: 1|0`.
            if let Some(spec) = object["spec"].as_object_mut() {
                let mode = spec.remove("operatingMode");
                let replicas =
                    i32::from(mode.as_ref().and_then(Value::as_str) != Some("Suspended"));
                spec.insert("replicas".into(), json!(replicas));
            }
        }
        object
    }

    /// `object` received in `version`, in the storage version.
    pub fn to_storage(self, object: Value) -> Value {
        let mut object = self.convert(object, self.versions()[0]);
        if self == Resource::Sandbox {
            if let Some(spec) = object["spec"].as_object_mut() {
                if let Some(replicas) = spec.remove("replicas") {
                    let mode = if replicas.as_i64() == Some(0) {
                        "Suspended"
                    } else {
                        "Running"
                    };
                    spec.insert("operatingMode".into(), json!(mode));
                }
            }
        }
        object
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandboxes_read_in_both_versions() {
        let stored = json!({"apiVersion": "agents.x-k8s.io/v1beta1", "kind": "Sandbox",
            "spec": {"operatingMode": "Suspended"}});
        assert_eq!(Resource::of(&stored), Some(Resource::Sandbox));
        let old = Resource::Sandbox.convert(stored.clone(), "v1alpha1");
        assert_eq!(old["apiVersion"], "agents.x-k8s.io/v1alpha1");
        assert_eq!(old["spec"], json!({"replicas": 0}));
        assert_eq!(Resource::Sandbox.to_storage(old), stored);
        assert_eq!(
            Resource::at("agents.x-k8s.io", "v1alpha1", "sandboxes"),
            Some(Resource::Sandbox)
        );
        assert_eq!(Resource::at("", "v1", "pods"), Some(Resource::Pod));
        assert_eq!(Resource::at("", "v2", "pods"), None);
    }
}
