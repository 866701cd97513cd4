//! The effective configuration: every setting's value and where it came from.

use std::fmt;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

use crate::file::is_setting;
use crate::FileLayer;

/// Where a setting's value came from, in order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag,
    /// The environment variable of that name.
    Env(String),
    File(PathBuf),
    Default,
    /// No value and no default: the feature it configures is off.
    Unset,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag => f.write_str("flag"),
            Self::Env(name) => write!(f, "environment {name}"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Default => f.write_str("default"),
            Self::Unset => f.write_str("unset"),
        }
    }
}

/// One setting as in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The config file key.
    pub key: String,
    /// Its values as written (several for a list).
    pub values: Vec<String>,
    pub origin: Origin,
}

impl fmt::Display for Setting {
    /// A line of a TOML config file, with the origin as a comment; an unset setting is
    /// commented out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = match self.values.as_slice() {
            [] => String::new(),
            [one] => toml_text(one),
            many => format!(
                "[{}]",
                many.iter()
                    .map(|v| toml_text(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let line = if self.origin == Origin::Unset {
            format!("# {} =", self.key)
        } else {
            format!("{} = {value}", self.key)
        };
        write!(f, "{line:<48} # {}", self.origin)
    }
}

/// `text` as a TOML value: a number stays one, anything else is a quoted string.
fn toml_text(text: &str) -> String {
    if text.parse::<i64>().is_ok() {
        text.to_owned()
    } else {
        toml::Value::String(text.to_owned()).to_string()
    }
}

/// Every setting of `command` as `matches` resolved it, in the order of `--help`.
pub fn effective(
    command: &Command,
    matches: &ArgMatches,
    file: Option<&FileLayer>,
    per_invocation: &[&str],
) -> Vec<Setting> {
    command
        .get_arguments()
        .filter(|arg| is_setting(arg, per_invocation))
        .map(|arg| {
            let key = arg.get_id().as_str();
            let values: Vec<String> = matches
                .get_raw(key)
                .into_iter()
                .flatten()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let origin = match matches.value_source(key) {
                Some(ValueSource::CommandLine) => Origin::Flag,
                Some(ValueSource::EnvVariable) => Origin::Env(
                    arg.get_env()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
                Some(_) => match file {
                    Some(file) if file.contains(key) => Origin::File(file.path().to_owned()),
                    _ => Origin::Default,
                },
                None => Origin::Unset,
            };
            Setting {
                key: key.to_owned(),
                values,
                origin,
            }
        })
        .collect()
}
