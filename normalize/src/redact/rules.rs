//! The redaction rules file: TOML `[[rule]]` entries, each a preset or its own key globs and
//! value regexes, compiled into one [`RegexSet`] for keys and one for values so that a value is
//! tested against every rule in a single pass.

use regex::{Regex, RegexSet};
use serde::Deserialize;

use super::presets;

/// What a rule does to what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Replaces the match with `[REDACTED:<rule>]`.
    #[default]
    Mask,
    /// Replaces the match with `[HASHED:<rule>:<hex>]`, a keyed BLAKE3 hash of it: equal values
    /// stay equal (joinable), and without the key they cannot be recovered by hashing guesses.
    Hash,
}

/// A check a value match must also pass to be redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// The digits of the match pass the Luhn checksum (payment card numbers).
    Luhn,
}

/// One `[[rule]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default)]
    preset: Option<String>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    action: Option<Action>,
    #[serde(default)]
    check: Option<Check>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub action: Action,
    pub check: Option<Check>,
    /// Whether the rule names attribute keys: then its value patterns (if any) apply only under
    /// those keys, and without value patterns the whole value is replaced.
    pub has_keys: bool,
    /// Indices of its value patterns in [`Rules::values`].
    pub value_patterns: Vec<usize>,
}

/// Every rule of a file, compiled.
#[derive(Debug)]
pub struct Rules {
    pub rules: Vec<Rule>,
    /// Key globs of every rule, as anchored regexes.
    pub keys: RegexSet,
    /// The rule of each entry of [`Self::keys`].
    pub key_rule: Vec<usize>,
    /// Value regexes of every rule.
    pub values: RegexSet,
    /// The same regexes one by one, to find where they match.
    pub value_regexes: Vec<Regex>,
    /// The rule of each entry of [`Self::values`].
    pub value_rule: Vec<usize>,
}

/// `*` matches any run of characters (dots included), `?` one character; the rest is literal.
pub fn glob_regex(glob: &str) -> String {
    let mut out = String::from("^");
    let mut literal = String::new();
    for c in glob.chars() {
        match c {
            '*' | '?' => {
                out.push_str(&regex::escape(&literal));
                literal.clear();
                out.push_str(if c == '*' { ".*" } else { "." });
            }
            c => literal.push(c),
        }
    }
    out.push_str(&regex::escape(&literal));
    out.push('$');
    out
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl Rules {
    /// No rules: nothing is redacted.
    pub fn none() -> Self {
        Self::compile(Vec::new()).expect("no patterns")
    }

    /// Parses and compiles a rules file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| e.to_string())?;
        Self::compile(raw.rule)
    }

    fn compile(raw: Vec<RawRule>) -> Result<Self, String> {
        let mut rules = Vec::with_capacity(raw.len());
        let (mut keys, mut key_rule) = (Vec::new(), Vec::new());
        let (mut values, mut value_rule) = (Vec::new(), Vec::new());
        let mut names = std::collections::HashSet::new();
        for (index, r) in raw.into_iter().enumerate() {
            if !valid_name(&r.name) {
                return Err(format!(
                    "rule {:?}: a name is 1 to 64 letters, digits, '_', '-' or '.'",
                    r.name
                ));
            }
            if !names.insert(r.name.clone()) {
                return Err(format!("rule {:?} is defined twice", r.name));
            }
            let preset = match &r.preset {
                Some(p) => Some(presets::find(p).ok_or_else(|| {
                    format!(
                        "rule {:?}: unknown preset {p:?} (known: {})",
                        r.name,
                        presets::names().join(", ")
                    )
                })?),
                None => None,
            };
            let mut rule_keys: Vec<String> = r.keys.clone();
            let mut rule_values: Vec<String> = r.values.clone();
            let mut check = r.check;
            if let Some(p) = preset {
                rule_keys.extend(p.keys.iter().map(|s| (*s).to_owned()));
                rule_values.extend(p.values.iter().map(|s| (*s).to_owned()));
                check = check.or(p.check);
            }
            if rule_keys.is_empty() && rule_values.is_empty() {
                return Err(format!(
                    "rule {:?}: give a preset, keys or values to match",
                    r.name
                ));
            }
            for k in &rule_keys {
                keys.push(glob_regex(k));
                key_rule.push(index);
            }
            let mut value_patterns = Vec::new();
            for v in &rule_values {
                Regex::new(v).map_err(|e| format!("rule {:?}: {e}", r.name))?;
                value_patterns.push(values.len());
                values.push(v.clone());
                value_rule.push(index);
            }
            rules.push(Rule {
                name: r.name,
                action: r.action.unwrap_or_default(),
                check,
                has_keys: !rule_keys.is_empty(),
                value_patterns,
            });
        }
        let value_regexes = values
            .iter()
            .map(|v| Regex::new(v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            rules,
            keys: RegexSet::new(&keys).map_err(|e| e.to_string())?,
            key_rule,
            values: RegexSet::new(&values).map_err(|e| e.to_string())?,
            value_regexes,
            value_rule,
        })
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule names, for metrics.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }
}

/// Whether the digits of `text` (spaces and dashes allowed between them) pass the Luhn check.
pub fn luhn(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 12 || digits.len() > 19 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if !i.is_multiple_of(2) {
                let d = d * 2;
                if d > 9 {
                    d - 9
                } else {
                    d
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}
