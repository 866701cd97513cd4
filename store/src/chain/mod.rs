//! The tamper-evident trail: per tenant, an append-only chain of entries recording every file
//! the collectors and the compactor commit, signed with the operator's Ed25519 key.
//!
//! ```text
//! _chain/tenant=<t>/<seq, 20 digits>.json    one entry (seq 1, 2, …), written once
//! _chain/tenant=<t>/head.json                the latest head: seq, entry hash, time, signature
//! ```
//!
//! Data flow: a writer commits its files (hashing the bytes it already holds), then appends one
//! entry per tenant ([`Chain::append`]): `add` (a collector's flush, a compactor's run
//! summaries), `replace` (a compaction: its inputs, its outputs and its manifest), `delete`
//! (superseded files removed after the grace period), `expire` (retention, with its rule) or
//! `adopt` (files of a store written before the chain, recorded by `cairn chain adopt`). Each
//! entry holds the BLAKE3 hash of the one before, and the entry's own bytes are signed when a
//! key is configured; the head names the last entry and is signed too, so it can be published
//! and later used as a witness against a rolled-back chain. Appends are create-only PUTs: when
//! several writers race for a sequence number, the losers read the winner's entry and retry at
//! the next one. [`verify()`] reads the chain and every file of the tenant and reports each
//! altered, missing, inserted or re-ordered file and each broken link.

mod entry;
mod hash;
mod head;
mod keys;
mod recorder;
mod verify;

#[cfg(test)]
mod tests;

use cairn_schema::layout::Dataset;
use cairn_schema::tenant::Tenant;
use object_store::path::Path;

pub use entry::{hash as digest, Entry, FileRecord, Kind, Record, Stored};
pub use hash::{hash_object, hash_objects};
pub use head::Head;
pub use keys::{generate_key, key_id, load_signing_key, parse_public_key, Signer};
pub use recorder::Chain;
pub use verify::{
    adopt, fold, read_chain, tenants, verify, ChainRead, Problem, ReadEntry, Report, Start,
    VerifyOptions,
};

/// Top-level prefix of every tenant's chain.
pub const PREFIX: &str = "_chain";
const HEAD: &str = "head.json";

/// `_chain/tenant=<t>/`
pub fn dir(tenant: &Tenant) -> Path {
    Path::from(format!("{PREFIX}/tenant={tenant}"))
}

/// The object holding entry `seq` of `tenant`'s chain.
pub fn entry_path(tenant: &Tenant, seq: u64) -> Path {
    dir(tenant).join(format!("{seq:020}.json"))
}

/// The sequence number of an entry object's name, or `None` if `name` is not one.
pub fn entry_seq(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The object holding `tenant`'s head.
pub fn head_path(tenant: &Tenant) -> Path {
    dir(tenant).join(HEAD)
}

/// The directories whose files the chain of `tenant` accounts for.
pub fn scope(tenant: &Tenant) -> Vec<Path> {
    [Dataset::Spans, Dataset::Payloads, Dataset::TraceIndex]
        .into_iter()
        .map(|d| cairn_schema::layout::tenant_prefix(d, tenant))
        .collect()
}
