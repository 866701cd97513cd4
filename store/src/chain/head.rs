//! A chain's head: the last entry's sequence number and hash, signed, so that it can be
//! published or written elsewhere and later checked against the chain (a witness).

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::keys::{key_id, Signer};

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
        let Some(signature) = &self.signature else {
            return Err("not signed");
        };
        if self.key_id.as_deref() != Some(key_id(key).as_str()) {
            return Err("signed by another key");
        }
        let bytes: [u8; 64] = hex::decode(signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("bad signature")?;
        key.verify(&self.message(), &Signature::from_bytes(&bytes))
            .map_err(|_| "bad signature")
    }
}
