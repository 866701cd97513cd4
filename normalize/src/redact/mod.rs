//! Redaction at ingest: rules that mask or hash secrets and personal data in an export request
//! before anything is written (the write-ahead log included) or extracted as a payload.
//!
//! Data flow: the collector decodes a request, then [`Redactor::apply`] walks its resource,
//! scope, span, event and link attributes, span names and status messages. Attribute keys are
//! tested against every rule's key globs in one pass (a [`regex::RegexSet`]); a rule that names
//! keys and no values replaces the whole value. String values, also inside arrays, maps and JSON
//! text such as `gen_ai.input.messages`, are tested against every value regex in one pass, and
//! each match is replaced. Since payloads are extracted from those values afterwards, a redacted
//! payload is stored (and deduplicated) by its redacted content. Each span whose data lost
//! something carries the reserved attribute [`REDACTIONS_KEY`]: `rule@location` entries, which
//! normalisation promotes into the `redactions` column. A client cannot forge that record: the
//! attribute is always dropped from what clients send.

mod presets;
mod rules;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, ArrayValue, KeyValue};
use prost::Message;

pub use presets::{names as preset_names, Preset, PRESETS};
pub use rules::{glob_regex, luhn, Action, Check, Rules};

/// The span attribute holding a span's redaction record.
pub const REDACTIONS_KEY: &str = "cairn.redactions";

/// What one [`Redactor::apply`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Whether the request changed (something redacted, or a forged record dropped).
    pub changed: bool,
    /// Values replaced, by rule name (only rules that replaced something).
    pub counts: Vec<(String, u64)>,
}

/// Applies compiled rules with the hashing key.
#[derive(Debug)]
pub struct Redactor {
    rules: Rules,
    key: Option<[u8; 32]>,
}

/// Entries and counts gathered while walking one request.
struct Found<'a> {
    counts: &'a mut [u64],
    entries: Vec<String>,
}

impl Found<'_> {
    fn record(&mut self, rule: &str, location: &str) {
        let entry = format!("{rule}@{location}");
        if !self.entries.contains(&entry) {
            self.entries.push(entry);
        }
    }
}

impl Redactor {
    /// A redactor of `rules`; `key` (any secret bytes, at least 16) keys the hashes of the
    /// `hash` action. Without a key the hashes are plain BLAKE3, which anyone can recompute for
    /// a guessed value.
    pub fn new(rules: Rules, key: Option<&[u8]>) -> Self {
        Self {
            rules,
            key: key.map(|k| blake3::derive_key("cairn redaction hash key v1", k)),
        }
    }

    /// No rules: only forged records are dropped.
    pub fn none() -> Self {
        Self::new(Rules::none(), None)
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Redacts `request` in place.
    pub fn apply(&self, request: &mut ExportTraceServiceRequest) -> Report {
        let mut report = Report::default();
        for rs in &mut request.resource_spans {
            for ss in &mut rs.scope_spans {
                for span in &mut ss.spans {
                    let before = span.attributes.len();
                    span.attributes.retain(|kv| kv.key != REDACTIONS_KEY);
                    report.changed |= span.attributes.len() != before;
                }
            }
        }
        if self.rules.is_empty() {
            return report;
        }
        let mut counts = vec![0u64; self.rules.rules.len()];
        for rs in &mut request.resource_spans {
            let mut found = Found {
                counts: &mut counts,
                entries: Vec::new(),
            };
            if let Some(resource) = &mut rs.resource {
                self.attributes(&mut resource.attributes, "resource", &mut found);
            }
            let resource_entries = std::mem::take(&mut found.entries);
            for ss in &mut rs.scope_spans {
                found.entries = resource_entries.clone();
                if let Some(scope) = &mut ss.scope {
                    self.attributes(&mut scope.attributes, "scope", &mut found);
                }
                let scope_entries = std::mem::take(&mut found.entries);
                for span in &mut ss.spans {
                    found.entries = scope_entries.clone();
                    self.text(&mut span.name, None, "name", &mut found);
                    if let Some(status) = &mut span.status {
                        self.text(&mut status.message, None, "status_message", &mut found);
                    }
                    self.attributes(&mut span.attributes, "attribute", &mut found);
                    for event in &mut span.events {
                        let place = format!("event:{}", event.name);
                        self.attributes(&mut event.attributes, &place, &mut found);
                    }
                    for link in &mut span.links {
                        self.attributes(&mut link.attributes, "link", &mut found);
                    }
                    let entries = std::mem::take(&mut found.entries);
                    if !entries.is_empty() {
                        span.attributes.push(record_attribute(entries));
                        report.changed = true;
                    }
                }
            }
        }
        report.counts = (self.rules.rules.iter().zip(counts))
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.name.clone(), n))
            .collect();
        report
    }

    /// The replacement of `matched` under rule `rule`.
    fn replacement(&self, rule: usize, matched: &[u8]) -> String {
        let rule = &self.rules.rules[rule];
        match rule.action {
            Action::Mask => format!("[REDACTED:{}]", rule.name),
            Action::Hash => {
                let hash = match &self.key {
                    Some(key) => blake3::keyed_hash(key, matched),
                    None => blake3::hash(matched),
                };
                let hex = hash.to_hex();
                format!("[HASHED:{}:{}]", rule.name, &hex[..32])
            }
        }
    }

    /// Redacts each attribute of `attrs`, recording locations as `<place>:<key>`.
    fn attributes(&self, attrs: &mut [KeyValue], place: &str, found: &mut Found<'_>) {
        for kv in attrs {
            let Some(value) = kv.value.as_mut() else {
                continue;
            };
            let key_rules: Vec<usize> = self
                .rules
                .keys
                .matches(&kv.key)
                .into_iter()
                .map(|i| self.rules.key_rule[i])
                .collect();
            let location = || format!("{place}:{}", kv.key);
            // A rule naming the key and no values takes the whole value.
            if let Some(&whole) = key_rules
                .iter()
                .find(|&&r| self.rules.rules[r].value_patterns.is_empty())
            {
                if value.value.is_some() {
                    let bytes = match &value.value {
                        Some(Value::StringValue(s)) => s.as_bytes().to_vec(),
                        _ => value.encode_to_vec(),
                    };
                    value.value = Some(Value::StringValue(self.replacement(whole, &bytes)));
                    found.counts[whole] += 1;
                    found.record(&self.rules.rules[whole].name, &location());
                }
                continue;
            }
            self.any_value(value, &key_rules, &location, found);
        }
    }

    fn any_value(
        &self,
        value: &mut AnyValue,
        key_rules: &[usize],
        location: &dyn Fn() -> String,
        found: &mut Found<'_>,
    ) {
        match &mut value.value {
            Some(Value::StringValue(s)) => {
                self.text(s, Some(key_rules), &location(), found);
            }
            Some(Value::ArrayValue(a)) => {
                for v in &mut a.values {
                    self.any_value(v, key_rules, location, found);
                }
            }
            Some(Value::KvlistValue(kvs)) => {
                for kv in &mut kvs.values {
                    if let Some(v) = kv.value.as_mut() {
                        self.any_value(v, key_rules, location, found);
                    }
                }
            }
            _ => {}
        }
    }

    /// Replaces every value-regex match in `text`. Rules that name keys apply only when the
    /// value's key matched them (`key_rules`); `None` (names, status messages) means no key.
    fn text(
        &self,
        text: &mut String,
        key_rules: Option<&[usize]>,
        location: &str,
        found: &mut Found<'_>,
    ) {
        let matched = self.rules.values.matches(text);
        if !matched.matched_any() {
            return;
        }
        for pattern in matched.into_iter() {
            let rule = self.rules.value_rule[pattern];
            let r = &self.rules.rules[rule];
            if r.has_keys && !key_rules.is_some_and(|k| k.contains(&rule)) {
                continue;
            }
            let mut replaced = 0u64;
            let out =
                self.rules.value_regexes[pattern].replace_all(text, |caps: &regex::Captures| {
                    let m = &caps[0];
                    if r.check == Some(Check::Luhn) && !luhn(m) {
                        return m.to_owned();
                    }
                    replaced += 1;
                    self.replacement(rule, m.as_bytes())
                });
            if replaced > 0 {
                *text = out.into_owned();
                found.counts[rule] += replaced;
                found.record(&r.name, location);
            }
        }
    }
}

/// The [`REDACTIONS_KEY`] attribute holding `entries`.
fn record_attribute(entries: Vec<String>) -> KeyValue {
    let values = entries
        .into_iter()
        .map(|e| AnyValue {
            value: Some(Value::StringValue(e)),
        })
        .collect();
    KeyValue {
        key: REDACTIONS_KEY.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::ArrayValue(ArrayValue { values })),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
