//! The one error of reading settings; always the user's to fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("config file {path}: unknown key `{key}`{hint}")]
    UnknownKey {
        path: PathBuf,
        key: String,
        /// ", did you mean `…`?" when a known key is close.
        hint: String,
    },
    #[error("config file {path}: {key}: {message}")]
    Value {
        path: PathBuf,
        key: String,
        message: String,
    },
}
