//! A chain's head: the last entry's sequence number and hash, signed, so that it can be
//! published or written elsewhere and later checked against the chain (a witness).

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::keys::{self, Signer};

/// The head of one tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub tenant: String,
    pub seq: u64,
    /// BLAKE3 (hex) of entry `seq`'s stored bytes.
    pub entry_hash: String,
    /// RFC 3339, UTC: when it was signed.
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Head {
    /// The head naming entry `seq` of hash `entry_hash`, signed by `key` when there is one.
    pub fn new(
        tenant: &str,
        seq: u64,
        entry_hash: String,
        time: String,
        key: Option<&Signer>,
    ) -> Self {
        let mut head = Head {
            tenant: tenant.to_owned(),
            seq,
            entry_hash,
            time,
            key_id: None,
            signature: None,
        };
        if let Some(k) = key {
            head.key_id = Some(k.id.clone());
            head.signature = Some(hex::encode(k.sign(&head.message()).to_bytes()));
        }
        head
    }

    /// What is signed.
    fn message(&self) -> Vec<u8> {
        format!(
            "cairn-chain-head\n{}\n{}\n{}\n{}",
            self.tenant, self.seq, self.entry_hash, self.time
        )
        .into_bytes()
    }

    /// Whether the head is signed by `key`: `Err` says why not.
    pub fn check_signature(&self, key: &VerifyingKey) -> Result<(), &'static str> {
        keys::check_signature(
            key,
            self.key_id.as_deref(),
            self.signature.as_deref(),
            &self.message(),
        )
    }
}
