//! One chain entry: what it records, how it is stored (the entry's JSON exactly as signed, with
//! the signature beside it) and how its hash is taken (over the stored bytes).

use ed25519_dalek::VerifyingKey;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::keys::{self, Signer};
use crate::{Error, Result};

/// Domain of entry signatures (a head's signature can never pass for an entry's).
const ENTRY_DOMAIN: &[u8] = b"cairn-chain-entry\n";

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Files present before the chain (or written without it), recorded by `cairn chain adopt`.
    Adopt,
    /// Files a flush (or a compaction pass, for run summaries) committed.
    Add,
    /// A compaction: `inputs` superseded (still live until deleted) by the `files` written.
    Replace,
    /// Superseded or abandoned files removed after the grace period.
    Delete,
    /// Files removed by retention under `rule`.
    Expire,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Adopt => "adopt",
            Kind::Add => "add",
            Kind::Replace => "replace",
            Kind::Delete => "delete",
            Kind::Expire => "expire",
        }
    }
}

/// A file as committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub size: u64,
    /// BLAKE3 of the file's bytes, hex.
    pub blake3: String,
}

impl FileRecord {
    /// The record of `bytes` written at `path`.
    pub fn of_bytes(path: &Path, bytes: &[u8]) -> Self {
        Self {
            path: path.to_string(),
            size: bytes.len() as u64,
            blake3: blake3::hash(bytes).to_hex().to_string(),
        }
    }
}

/// What a writer appends: the entry without its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: Kind,
    /// Files written (add, replace, adopt).
    pub files: Vec<FileRecord>,
    /// Paths a replace supersedes.
    pub inputs: Vec<String>,
    /// Paths a delete or an expiry removed.
    pub removed: Vec<String>,
    /// Why files expired, e.g. `older than 30d`.
    pub rule: Option<String>,
}

impl Record {
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            files: Vec::new(),
            inputs: Vec::new(),
            removed: Vec::new(),
            rule: None,
        }
    }

    /// Whether appending it would record nothing.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.inputs.is_empty() && self.removed.is_empty()
    }
}

/// One entry of a tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub tenant: String,
    /// RFC 3339, UTC.
    pub time: String,
    /// Who appended it: `collector:<id>`, `compactor`, `reindex`, `adopt`.
    pub writer: String,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// BLAKE3 (hex) of the previous entry's stored bytes; empty for the first.
    pub prev: String,
}

impl Entry {
    /// Whether `self` records the same thing as `record` by the same writer (its own earlier
    /// append, which answered with an error after all).
    pub fn same_as(&self, writer: &str, record: &Record) -> bool {
        self.writer == writer
            && self.kind == record.kind
            && self.files == record.files
            && self.inputs == record.inputs
            && self.removed == record.removed
            && self.rule == record.rule
    }
}

/// An entry as stored: its JSON exactly as signed, and the signature.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stored {
    pub entry: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Stored {
    /// Encodes `entry`, signed by `key` when there is one.
    pub fn encode(entry: &Entry, key: Option<&Signer>) -> Result<Vec<u8>> {
        let json = serde_json::to_string(entry).map_err(|e| Error::Internal(e.to_string()))?;
        let (key_id, signature) = match key {
            Some(k) => {
                let signature = k.sign(&[ENTRY_DOMAIN, json.as_bytes()].concat());
                (Some(k.id.clone()), Some(hex::encode(signature.to_bytes())))
            }
            None => (None, None),
        };
        let stored = Stored {
            entry: RawValue::from_string(json).map_err(|e| Error::Internal(e.to_string()))?,
            key_id,
            signature,
        };
        serde_json::to_vec(&stored).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Parses stored bytes.
    pub fn decode(bytes: &[u8]) -> std::result::Result<(Self, Entry), String> {
        let stored: Stored = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let entry: Entry = serde_json::from_str(stored.entry.get()).map_err(|e| e.to_string())?;
        Ok((stored, entry))
    }

    /// Whether the entry is signed by `key`: `Err` says why not.
    pub fn check_signature(&self, key: &VerifyingKey) -> std::result::Result<(), &'static str> {
        let message = [ENTRY_DOMAIN, self.entry.get().as_bytes()].concat();
        keys::check_signature(
            key,
            self.key_id.as_deref(),
            self.signature.as_deref(),
            &message,
        )
    }
}

/// BLAKE3 (hex) of stored bytes: what the next entry's `prev` and a head's `entry_hash` hold.
pub fn hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}
