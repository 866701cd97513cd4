//! The token file: TOML, one `[[token]]` table per token, written by `cairn token` (or by hand)
//! and only read by the servers.
//!
//! ```toml
//! [[token]]
//! id = "3f2a9c0d4e5b6a71"          # the id part of the token, unique
//! tenant = "acme"                  # the tenant it reads or writes (admin: its default)
//! role = "ingest"                  # ingest | read | admin
//! name = "ci exporter"             # optional label
//! created = "2026-12-01T10:00:00Z"
//! expires = "2027-01-01T00:00:00Z" # optional
//! revoked = "2026-12-02T09:00:00Z" # optional: kept, so the file shows what was revoked when
//! hash = "$argon2id$v=19$m=19456,t=2,p=1$…"
//! ```
//!
//! Writes go to a temporary file in the same directory, renamed over the file (so readers see
//! the old or the new file, never half of one), readable by its owner only. An edit (read,
//! change, write) holds an exclusive lock of `<file>.lock` beside it ([`TokenFile::lock`]), so
//! two edits at once never lose one: the rename replaces the file, not the lock file.

use std::collections::HashMap;
use std::path::Path;

use cairn_schema::tenant::Tenant;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AuthError, Result, Role};

/// One token's entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    #[serde(with = "tenant_text")]
    pub tenant: Tenant,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub created: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<DateTime<Utc>>,
    /// The argon2id hash of the whole token, PHC string format.
    pub hash: String,
}

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    #[serde(default, rename = "token")]
    pub tokens: Vec<Entry>,
}

/// The exclusive lock of an edit of the token file, held until dropped.
#[derive(Debug)]
pub struct EditLock {
    _file: std::fs::File,
}

const HEADER: &str =
    "# Cairn API tokens, managed with `cairn token create|list|revoke`. Only argon2id\n\
# hashes are kept; the servers re-read this file on SIGHUP and when it changes.\n\n";

impl TokenFile {
    /// Reads and checks the file (ids unique, hashes in the PHC format).
    pub fn load(path: &Path) -> Result<Self> {
        let fail = |message: String| AuthError::TokenFile {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        Self::parse(&text).map_err(fail)
    }

    /// A missing file is an empty one (for `cairn token create` of the first token).
    pub fn load_or_empty(path: &Path) -> Result<Self> {
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Self::default())
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: TokenFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut seen = HashMap::new();
        for entry in &file.tokens {
            if seen.insert(entry.id.as_str(), ()).is_some() {
                return Err(format!("token id {} appears twice", entry.id));
            }
            if argon2::password_hash::PasswordHash::new(&entry.hash).is_err() {
                return Err(format!(
                    "token {}: hash is not an argon2 PHC string",
                    entry.id
                ));
            }
        }
        Ok(file)
    }

    /// Waits for, and takes, the exclusive lock that edits of the file at `path` hold from
    /// before they read it until after they wrote it: `<path>.lock`, created if missing. The
    /// lock is released when the returned guard is dropped (or the process ends).
    pub fn lock(path: &Path) -> Result<EditLock> {
        let mut name = path.as_os_str().to_owned();
        name.push(".lock");
        let lock_path = std::path::PathBuf::from(name);
        let fail = |message: String| AuthError::TokenFile {
            path: lock_path.display().to_string(),
            message,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&lock_path).map_err(|e| fail(e.to_string()))?;
        file.lock().map_err(|e| fail(e.to_string()))?;
        Ok(EditLock { _file: file })
    }

    /// Writes the file atomically, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<()> {
        let fail = |message: String| AuthError::TokenFile {
            path: path.display().to_string(),
            message,
        };
        let text = toml::to_string(self).map_err(|e| fail(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut out = options.open(&tmp).map_err(|e| fail(e.to_string()))?;
            out.write_all(HEADER.as_bytes())
                .and_then(|()| out.write_all(text.as_bytes()))
                .and_then(|()| out.sync_all())
                .map_err(|e| fail(e.to_string()))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| fail(e.to_string()))
    }
}

mod tenant_text {
    use cairn_schema::tenant::Tenant;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tenant: &Tenant, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tenant.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tenant, D::Error> {
        let text = String::deserialize(d)?;
        Tenant::new(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Token;

    #[test]
    fn the_file_round_trips_and_refuses_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        let token = Token::generate();
        let file = TokenFile {
            tokens: vec![Entry {
                id: token.id().to_owned(),
                tenant: Tenant::new("acme").unwrap(),
                role: Role::Read,
                name: Some("grafana".into()),
                created: Utc::now(),
                expires: None,
                revoked: None,
                hash: token.hash().unwrap(),
            }],
        };
        file.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(token.reveal()));
        assert!(text.contains("role = \"read\""), "{text}");
        assert_eq!(TokenFile::load(&path).unwrap().tokens, file.tokens);
        let twice = format!("{text}\n{}", &text[text.find("[[token]]").unwrap()..]);
        assert!(TokenFile::parse(&twice)
            .unwrap_err()
            .contains("appears twice"));
        let bad_role = text.replace("\"read\"", "\"root\"");
        assert!(TokenFile::parse(&bad_role).is_err());
        let bad_tenant = text.replace("\"acme\"", "\"../x\"");
        assert!(TokenFile::parse(&bad_tenant).is_err());
        assert!(TokenFile::parse("[[token]]\nid = 1").is_err());
    }
}
