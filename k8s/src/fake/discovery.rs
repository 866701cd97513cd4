//! Discovery documents (`/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}`,
//! `/apis/{group}/{version}`) for the resources the fake serves, as a 1.33 server answers them.

use serde_json::{json, Value};

use super::resource::{Resource, ALL};

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.4",
        "gitCommit": "74cdb426e7ed7ec2d7d7b8f1b1e6f6d5c2a0b9e3",
        "gitTreeState": "clean",
        "buildDate": "2025-08-12T18:01:29Z",
        "goVersion": "go1.24.5",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`: the core group's versions.
pub fn core_versions(server: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}]
    })
}

fn groups() -> Vec<&'static str> {
    let mut groups: Vec<&str> = ALL
        .iter()
        .map(|r| r.group())
        .filter(|g| !g.is_empty())
        .collect();
    groups.dedup();
    groups
}

fn group(name: &str) -> Option<Value> {
    let resource = ALL.into_iter().find(|r| r.group() == name)?;
    let versions: Vec<Value> = resource
        .versions()
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    Some(json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": versions,
        "preferredVersion": versions[0],
    }))
}

/// `/apis`: every group other than the core one.
pub fn group_list() -> Value {
    let groups: Vec<Value> = groups().into_iter().filter_map(group).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
pub fn group_document(name: &str) -> Option<Value> {
    group(name)
}

fn resource_entry(r: Resource) -> Value {
    let mut entry = json!({
        "name": r.plural(),
        "singularName": r.singular(),
        "namespaced": true,
        "kind": r.kind(),
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
    });
    match r {
        Resource::Pod => {
            entry["shortNames"] = json!(["po"]);
            entry["categories"] = json!(["all"]);
        }
        Resource::Sandbox => entry["shortNames"] = json!(["sandbox"]),
        Resource::Lease => {}
    }
    entry
}

/// `/api/v1` or `/apis/{group}/{version}`: the resources served there.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = ALL
        .into_iter()
        .filter(|r| r.group() == group && r.versions().contains(&version))
        .map(resource_entry)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let group_version = match group {
        "" => version.to_owned(),
        g => format!("{g}/{version}"),
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}
