//! The optional TOML config file: each key names a setting, and its value becomes that
//! setting's default, below flags and environment variables.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, Command};

use crate::ConfigError;

/// The file named by `--config PATH` (or `--config=PATH`) in `args`, else by `CAIRN_CONFIG`.
///
/// Read before the command line is parsed, since the file supplies defaults to that parse.
pub fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut words = args.iter().skip(1).take_while(|a| a.as_os_str() != "--");
    while let Some(word) = words.next() {
        let word = word.to_string_lossy();
        if word == "--config" {
            return words.next().map(PathBuf::from);
        }
        if let Some(path) = word.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("CAIRN_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The settings a config file gives, by key, each as the text a flag would carry.
#[derive(Debug, Clone)]
pub struct FileLayer {
    path: PathBuf,
    values: BTreeMap<String, Vec<String>>,
}

/// Whether `arg` is a setting a file may give: it takes a value, has a `--flag`, and is not
/// one of `per_invocation` (such as the file's own path).
pub(crate) fn is_setting(arg: &Arg, per_invocation: &[&str]) -> bool {
    arg.get_action().takes_values()
        && arg.get_long().is_some()
        && !per_invocation.contains(&arg.get_id().as_str())
}

/// Every setting of `command` and its subcommands, by key.
fn settings<'a>(command: &'a Command, per_invocation: &[&str]) -> BTreeMap<&'a str, &'a Arg> {
    let mut all = BTreeMap::new();
    for cmd in std::iter::once(command).chain(command.get_subcommands()) {
        for arg in cmd.get_arguments() {
            if is_setting(arg, per_invocation) {
                all.insert(arg.get_id().as_str(), arg);
            }
        }
    }
    all
}

impl FileLayer {
    /// Reads `path`, refusing keys that are no setting of `command` (a typo never passes
    /// silently) and values that are tables.
    pub fn load(
        path: &Path,
        command: &Command,
        per_invocation: &[&str],
    ) -> Result<Self, ConfigError> {
        let read = |message: String| ConfigError::Read {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| read(e.to_string()))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| read(e.to_string()))?;
        let known = settings(command, per_invocation);
        let mut values = BTreeMap::new();
        for (key, value) in table {
            if !known.contains_key(key.as_str()) {
                let closest = known
                    .keys()
                    .map(|k| (strsim::jaro_winkler(k, &key), *k))
                    .filter(|(score, _)| *score > 0.8)
                    .max_by(|a, b| a.0.total_cmp(&b.0));
                return Err(ConfigError::UnknownKey {
                    path: path.to_owned(),
                    hint: closest.map_or(String::new(), |(_, k)| format!(", did you mean `{k}`?")),
                    key,
                });
            }
            let texts = texts(&value).ok_or_else(|| ConfigError::Value {
                path: path.to_owned(),
                key: key.clone(),
                message: format!("{value} is not a string, number, boolean or list of them"),
            })?;
            values.insert(key, texts);
        }
        Ok(Self {
            path: path.to_owned(),
            values,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file gives the setting `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// `command` with each setting the file gives, in it or any subcommand, defaulting to the
    /// file's value. Each value is first read by the setting's own parser, so a bad one is
    /// reported with the file and key rather than as a flag the user never typed.
    pub fn apply(&self, command: Command) -> Result<Command, ConfigError> {
        for cmd in std::iter::once(&command).chain(command.get_subcommands()) {
            for arg in cmd.get_arguments() {
                if let Some(texts) = self.values.get(arg.get_id().as_str()) {
                    self.check(arg, texts)?;
                }
            }
        }
        let set = |arg: Arg| match self.values.get(arg.get_id().as_str()) {
            Some(texts) if arg.get_action().takes_values() => {
                arg.default_values(texts.iter().cloned())
            }
            _ => arg,
        };
        Ok(command
            .mut_args(set)
            .mut_subcommands(|cmd| cmd.mut_args(set)))
    }

    fn check(&self, arg: &Arg, texts: &[String]) -> Result<(), ConfigError> {
        if texts.len() > 1 && arg.get_value_delimiter().is_none() {
            return Err(self.value_error(arg, "takes one value, not a list".into()));
        }
        let long = arg.get_long().expect("settings have a long name");
        // The setting alone, read as if given on the command line.
        let probe = Command::new("file")
            .no_binary_name(true)
            .arg(arg.clone().env(None).default_value(None).required(false));
        for text in texts {
            if let Err(e) = probe
                .clone()
                .try_get_matches_from([format!("--{long}={text}")])
            {
                return Err(self.value_error(arg, format!("{text:?}: {}", reason(&e))));
            }
        }
        Ok(())
    }

    fn value_error(&self, arg: &Arg, message: String) -> ConfigError {
        ConfigError::Value {
            path: self.path.clone(),
            key: arg.get_id().to_string(),
            message,
        }
    }
}

/// Why a value parser refused a value, without the flag and usage text clap adds.
fn reason(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    if let Some(source) = std::error::Error::source(e) {
        return source.to_string();
    }
    match e.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(valid)) => format!("not one of {}", valid.join(", ")),
        _ => e.kind().to_string(),
    }
}

/// The text of a TOML value as a flag would carry it, or none for a table.
fn texts(value: &toml::Value) -> Option<Vec<String>> {
    let scalar = |v: &toml::Value| match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
    };
    match value {
        toml::Value::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}
