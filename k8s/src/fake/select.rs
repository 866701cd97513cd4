//! Label and field selectors, as the API server reads them from `labelSelector` and
//! `fieldSelector`: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)` for labels;
//! `path=v`, `path==v`, `path!=v` for fields, where the path is any dotted field of the object
//! (`spec.nodeName`, `metadata.name`, `metadata.namespace`, `status.phase`, …).

use serde_json::Value;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
    /// Field selectors look up dotted paths; label selectors look up `metadata.labels`.
    fields: bool,
}

/// Splits `text` at the commas outside parentheses.
fn split_top(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// The values of a set, `(a, b)`.
fn set(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("not a set: {text}"))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

impl Selector {
    /// Parses a `labelSelector`.
    pub fn labels(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in split_top(text) {
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::Absent(key.trim().to_owned())
            } else if let Some((key, rest)) = part.split_once(" notin ") {
                Requirement::NotIn(key.trim().to_owned(), set(rest)?)
            } else if let Some((key, rest)) = part.split_once(" in ") {
                Requirement::In(key.trim().to_owned(), set(rest)?)
            } else {
                match Self::comparison(part) {
                    Some(r) => r,
                    None => Requirement::Exists(part.to_owned()),
                }
            };
            requirements.push(requirement);
        }
        Ok(Self {
            requirements,
            fields: false,
        })
    }

    /// Parses a `fieldSelector`.
    pub fn fields(text: &str) -> Result<Self, String> {
        let requirements = split_top(text)
            .into_iter()
            .map(|part| {
                Self::comparison(part).ok_or_else(|| format!("invalid field selector: {part}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            requirements,
            fields: true,
        })
    }

    fn comparison(part: &str) -> Option<Requirement> {
        let pair = |(k, v): (&str, &str)| (k.trim().to_owned(), v.trim().to_owned());
        if let Some((k, v)) = part.split_once("!=").map(pair) {
            Some(Requirement::NotEquals(k, v))
        } else if let Some((k, v)) = part.split_once("==").map(pair) {
            Some(Requirement::Equals(k, v))
        } else {
            part.split_once('=')
                .map(pair)
                .map(|(k, v)| Requirement::Equals(k, v))
        }
    }

    /// The value `key` names in `object`, as text.
    fn value(&self, object: &Value, key: &str) -> Option<String> {
        let found = if self.fields {
            key.split('.').try_fold(object, |v, part| v.get(part))
        } else {
            object["metadata"]["labels"].get(key)
        };
        match found? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// Whether `object` satisfies every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|r| match r {
            // A field that is absent reads as the empty string, as the real server does.
            Requirement::Equals(k, v) => {
                self.value(object, k)
                    .or_else(|| self.fields.then(String::new))
                    .as_ref()
                    == Some(v)
            }
            Requirement::NotEquals(k, v) => self.value(object, k).as_ref() != Some(v),
            Requirement::In(k, vs) => self.value(object, k).is_some_and(|x| vs.contains(&x)),
            Requirement::NotIn(k, vs) => self.value(object, k).is_none_or(|x| !vs.contains(&x)),
            Requirement::Exists(k) => self.value(object, k).is_some(),
            Requirement::Absent(k) => self.value(object, k).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn label_selectors() {
        let pod = json!({"metadata": {"labels": {"app": "agent", "tier": "sandbox"}}});
        let yes = |s: &str| Selector::labels(s).unwrap().matches(&pod);
        assert!(yes("app=agent"));
        assert!(yes("app==agent,tier"));
        assert!(yes("app in (agent, web),!missing"));
        assert!(yes("tier notin (web)"));
        assert!(yes("missing notin (web)"));
        assert!(yes(""));
        assert!(!yes("app!=agent"));
        assert!(!yes("app=agent,tier=web"));
        assert!(!yes("missing"));
        assert!(!yes("!app"));
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "a", "namespace": "agents"},
            "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}});
        let yes = |s: &str| Selector::fields(s).unwrap().matches(&pod);
        assert!(yes("spec.nodeName=node-1"));
        assert!(yes("metadata.name==a,metadata.namespace=agents"));
        assert!(yes("status.phase!=Pending"));
        assert!(!yes("spec.nodeName=node-2"));
        // An unscheduled pod has no node: `spec.nodeName=` selects it.
        let pending = json!({"spec": {}});
        assert!(Selector::fields("spec.nodeName=")
            .unwrap()
            .matches(&pending));
        assert!(Selector::fields("spec.nodeName").is_err());
    }
}
