//! What tests make the fake server do wrong (answer late, never, or with an error; for every
//! client or for one user), and what it records for them to assert on: every request as it
//! arrived, every accepted write.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::resource::Resource;

/// How the server treats requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answers normally.
    #[default]
    None,
    /// Answers after this delay.
    Latency(Duration),
    /// Never answers, until the fault is lifted or the server stops.
    Hang,
    /// Answers with this HTTP status and a `Status` body, without doing anything.
    Fail(u16),
}

/// The faults in force: one for everybody, and overrides per user.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub all: Fault,
    pub users: HashMap<String, Fault>,
}

impl Faults {
    /// The fault a request of `user` meets.
    pub fn of(&self, user: Option<&str>) -> Fault {
        user.and_then(|u| self.users.get(u))
            .copied()
            .unwrap_or(self.all)
    }
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub at: Instant,
    /// The bearer token's user (see [`super::FakeApiServer::write_kubeconfig_as`]).
    pub user: Option<String>,
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether it asked for a watch stream.
    pub fn is_watch(&self) -> bool {
        matches!(self.param("watch"), Some("true" | "1"))
    }

    /// `METHOD path` (with `?watch` for watches), for compact assertions.
    pub fn line(&self) -> String {
        let watch = if self.is_watch() { "?watch" } else { "" };
        format!("{} {}{watch}", self.method, self.path)
    }
}

/// What an accepted write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Create,
    Update,
    Delete,
}

/// One accepted write, with the object as stored.
#[derive(Debug, Clone)]
pub struct Write {
    pub at: Instant,
    pub user: Option<String>,
    pub verb: Verb,
    pub resource: Resource,
    pub object: Value,
}

impl Write {
    /// The resourceVersion the write produced.
    pub fn rv(&self) -> u64 {
        self.object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    }

    /// A lease write's `spec.holderIdentity` (`None` when released).
    pub fn holder(&self) -> Option<&str> {
        self.object["spec"]["holderIdentity"]
            .as_str()
            .filter(|h| !h.is_empty())
    }
}
