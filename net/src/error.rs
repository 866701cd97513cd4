//! The one error type of `cairn-net`: a setting, or a file it names, that cannot be used.

/// Why a listener cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operator's to fix: a flag, or a certificate or key file it names (which the message
    /// names), is missing, unreadable or inconsistent. Found at startup, it stops the process.
    #[error("{0}")]
    Config(String),
}
