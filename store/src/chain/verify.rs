//! Checking a tenant's files against its chain, and adopting the files of a store written
//! before the chain.
//!
//! The chain is read whole: entry objects in sequence, each entry's sequence number against its
//! object's name (re-ordered), each link against the entry before (broken link), each signature
//! and the head's against the public key, and the head against a witnessed head (a chain rolled
//! back to an earlier, validly signed state). Folding the entries gives the live files (a file
//! is live from the entry that writes it until the one that deletes or expires it); every
//! object under the tenant's data directories is then checked against them: present and
//! recorded with the same size and BLAKE3 hash, or it is reported altered, missing or inserted.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use cairn_schema::tenant::Tenant;
use chrono::DateTime;
use ed25519_dalek::VerifyingKey;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::entry::{hash, Entry, FileRecord, Kind, Record, Stored};
use super::hash::hash_objects;
use super::head::Head;
use super::{dir, entry_seq, scope, Chain, HEAD};
use crate::{Error, Result};

/// Where checking starts: earlier entries still count for which files are live, but their links,
/// signatures and files are not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Start {
    #[default]
    Beginning,
    /// At this sequence number.
    Seq(u64),
    /// At the first entry appended at or after this time (RFC 3339).
    Time(String),
}

impl std::str::FromStr for Start {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        if let Ok(seq) = text.parse() {
            return Ok(Start::Seq(seq));
        }
        DateTime::parse_from_rfc3339(text)
            .map(|_| Start::Time(text.to_owned()))
            .map_err(|_| format!("{text:?} is neither a sequence number nor an RFC 3339 time"))
    }
}

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Checks every signature with it; without one, signatures are not checked.
    pub public_key: Option<VerifyingKey>,
    pub start: Start,
    /// A head published earlier: the chain must still hold it.
    pub witness: Option<Head>,
    /// Files read at once.
    pub parallel: usize,
}

/// One finding of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A live file whose size or hash differs from its record.
    Altered {
        recorded: FileRecord,
        seq: u64,
        size: u64,
        blake3: Option<String>,
    },
    /// A live file that is absent.
    Missing { path: String, seq: u64 },
    /// A file (or a chain object) present but never recorded.
    Inserted { path: String },
    /// An entry object holding another sequence number than its name says.
    Reordered { object: String, seq: u64 },
    /// A link, signature or head that does not hold.
    BrokenLink(String),
}

impl Problem {
    /// `altered`, `missing`, `inserted`, `re-ordered` or `broken link`.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Altered { .. } => "altered",
            Problem::Missing { .. } => "missing",
            Problem::Inserted { .. } => "inserted",
            Problem::Reordered { .. } => "re-ordered",
            Problem::BrokenLink(_) => "broken link",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Altered {
                recorded,
                seq,
                size,
                blake3,
            } => {
                write!(f, "altered: {}: ", recorded.path)?;
                match blake3 {
                    Some(h) => write!(f, "blake3 {h}")?,
                    None => write!(f, "{size} bytes")?,
                }
                write!(f, ", entry {seq} recorded ")?;
                match blake3 {
                    Some(_) => write!(f, "blake3 {}", recorded.blake3),
                    None => write!(f, "{} bytes", recorded.size),
                }
            }
            Problem::Missing { path, seq } => {
                write!(f, "missing: {path}: recorded by entry {seq}, absent")
            }
            Problem::Inserted { path } => write!(f, "inserted: {path}: present, never recorded"),
            Problem::Reordered { object, seq } => {
                write!(f, "re-ordered: {object} holds entry {seq}")
            }
            Problem::BrokenLink(what) => write!(f, "broken link: {what}"),
        }
    }
}

/// An entry as read.
#[derive(Debug)]
pub struct ReadEntry {
    /// The sequence number its object's name says.
    pub at: u64,
    pub entry: Entry,
    pub stored: Stored,
    /// BLAKE3 of its stored bytes.
    pub hash: String,
}

/// A tenant's chain as read: entries by their own sequence numbers, the head, and what is wrong
/// with the objects themselves.
#[derive(Debug, Default)]
pub struct ChainRead {
    pub entries: Vec<ReadEntry>,
    pub head: Option<Head>,
    pub problems: Vec<Problem>,
}

impl ChainRead {
    pub fn last_seq(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.entry.seq)
    }

    fn find(&self, seq: u64) -> Option<&ReadEntry> {
        self.entries
            .binary_search_by_key(&seq, |e| e.entry.seq)
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// Reads `tenant`'s chain, `parallel` objects at a time.
pub async fn read_chain(
    store: &Arc<dyn ObjectStore>,
    tenant: &Tenant,
    parallel: usize,
) -> Result<ChainRead> {
    let mut read = ChainRead::default();
    let objects: Vec<_> = store.list(Some(&dir(tenant))).try_collect().await?;
    let mut at_paths = Vec::new();
    for meta in objects {
        let name = meta.location.filename().unwrap_or_default().to_owned();
        if let Some(at) = entry_seq(&name) {
            at_paths.push((at, meta.location));
        } else if name == HEAD {
            let bytes = store.get(&meta.location).await?.bytes().await?;
            match serde_json::from_slice::<Head>(&bytes) {
                Ok(head) => read.head = Some(head),
                Err(e) => read
                    .problems
                    .push(Problem::BrokenLink(format!("head: not a chain head: {e}"))),
            }
        } else {
            read.problems.push(Problem::Inserted {
                path: meta.location.to_string(),
            });
        }
    }
    at_paths.sort();
    let fetched: Vec<(u64, Path, bytes::Bytes)> = futures::stream::iter(at_paths)
        .map(|(at, path)| {
            let store = Arc::clone(store);
            async move {
                let bytes = store.get(&path).await?.bytes().await?;
                Ok::<_, Error>((at, path, bytes))
            }
        })
        .buffered(parallel.max(1))
        .try_collect()
        .await?;
    let mut expected = 1;
    for (at, path, bytes) in fetched {
        for gap in expected..at {
            read.problems
                .push(Problem::BrokenLink(format!("entry {gap} is missing")));
        }
        expected = at + 1;
        match Stored::decode(&bytes) {
            Ok((stored, entry)) => {
                if entry.seq != at {
                    read.problems.push(Problem::Reordered {
                        object: path.to_string(),
                        seq: entry.seq,
                    });
                }
                read.entries.push(ReadEntry {
                    at,
                    entry,
                    stored,
                    hash: hash(&bytes),
                });
            }
            Err(e) => read.problems.push(Problem::BrokenLink(format!(
                "entry {at}: not a chain entry: {e}"
            ))),
        }
    }
    read.entries.sort_by_key(|e| e.entry.seq);
    for pair in read.entries.windows(2) {
        if pair[0].entry.seq == pair[1].entry.seq {
            read.problems.push(Problem::BrokenLink(format!(
                "entry {} is held by two objects",
                pair[0].entry.seq
            )));
        }
    }
    Ok(read)
}

/// The live files after `entries`: path → (record, the entry that wrote it).
pub fn fold(entries: &[ReadEntry]) -> BTreeMap<String, (FileRecord, u64)> {
    let mut live = BTreeMap::new();
    for e in entries {
        match e.entry.kind {
            Kind::Adopt | Kind::Add | Kind::Replace => {
                for f in &e.entry.files {
                    live.insert(f.path.clone(), (f.clone(), e.entry.seq));
                }
            }
            Kind::Delete | Kind::Expire => {
                for p in &e.entry.removed {
                    live.remove(p);
                }
            }
        }
    }
    live
}

/// Every object under `tenant`'s data directories, with its size.
async fn present(store: &Arc<dyn ObjectStore>, tenant: &Tenant) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for prefix in scope(tenant) {
        let objects: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
        out.extend(
            objects
                .into_iter()
                .map(|m| (m.location.to_string(), m.size)),
        );
    }
    Ok(out)
}

/// What a verification found and covered.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<Problem>,
    /// Entries in the chain.
    pub entries: u64,
    /// The first entry checked.
    pub first_checked: u64,
    /// Files live in the chain and checked (present and hashed).
    pub files: usize,
    /// Bytes hashed.
    pub bytes: u64,
    pub head: Option<Head>,
    /// Whether signatures were checked (a public key was given).
    pub signatures_checked: bool,
}

/// The checks of the chain itself from `first` on: links, signatures, tenant, head, witness.
fn check_links(
    read: &ChainRead,
    tenant: &Tenant,
    first: u64,
    options: &VerifyOptions,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let broken = |p: &mut Vec<Problem>, text: String| p.push(Problem::BrokenLink(text));
    for e in read.entries.iter().filter(|e| e.entry.seq >= first) {
        let seq = e.entry.seq;
        let prev = if seq == 1 {
            Some(String::new())
        } else {
            read.find(seq - 1).map(|p| p.hash.clone())
        };
        if prev.is_some_and(|p| p != e.entry.prev) {
            broken(
                &mut problems,
                format!("entry {seq}: its previous hash is not entry {}'s", seq - 1),
            );
        }
        if e.entry.tenant != tenant.as_str() {
            broken(
                &mut problems,
                format!("entry {seq}: of tenant {:?}", e.entry.tenant),
            );
        }
        if let Some(key) = &options.public_key {
            if let Err(why) = e.stored.check_signature(key) {
                broken(&mut problems, format!("entry {seq}: {why}"));
            }
        }
    }
    let last = read.last_seq();
    match &read.head {
        Some(head) => {
            if let Some(key) = &options.public_key {
                if let Err(why) = head.check_signature(key) {
                    broken(&mut problems, format!("head: {why}"));
                }
            }
            if head.tenant != tenant.as_str() {
                broken(&mut problems, format!("head: of tenant {:?}", head.tenant));
            }
            match read.find(head.seq) {
                None => broken(
                    &mut problems,
                    format!(
                        "head names entry {} but the chain ends at entry {last}",
                        head.seq
                    ),
                ),
                Some(e) if e.hash != head.entry_hash => broken(
                    &mut problems,
                    format!("head names entry {} with another hash", head.seq),
                ),
                Some(_) => {}
            }
        }
        None if last > 0 => broken(&mut problems, "head is missing".to_owned()),
        None => {}
    }
    if let Some(w) = &options.witness {
        if let Some(key) = &options.public_key {
            if let Err(why) = w.check_signature(key) {
                broken(&mut problems, format!("witness: {why}"));
            }
        }
        if w.tenant != tenant.as_str() {
            broken(&mut problems, format!("witness: of tenant {:?}", w.tenant));
        }
        match read.find(w.seq) {
            None => broken(
                &mut problems,
                format!(
                    "the chain ends at entry {last}, before the witnessed head (entry {})",
                    w.seq
                ),
            ),
            Some(e) if e.hash != w.entry_hash => broken(
                &mut problems,
                format!("entry {} differs from the witnessed head", w.seq),
            ),
            Some(_) => {}
        }
        if let Some(head) = read.head.as_ref().filter(|h| h.seq < w.seq) {
            broken(
                &mut problems,
                format!(
                    "head (entry {}) is older than the witnessed head (entry {})",
                    head.seq, w.seq
                ),
            );
        }
    }
    problems
}

/// The first sequence number to check.
fn first_checked(read: &ChainRead, start: &Start) -> u64 {
    match start {
        Start::Beginning => 1,
        Start::Seq(seq) => (*seq).max(1),
        Start::Time(text) => {
            let at = DateTime::parse_from_rfc3339(text).ok();
            read.entries
                .iter()
                .find(|e| {
                    DateTime::parse_from_rfc3339(&e.entry.time)
                        .ok()
                        .zip(at)
                        .is_some_and(|(t, at)| t >= at)
                })
                .map_or(read.last_seq() + 1, |e| e.entry.seq)
        }
    }
}

/// Verifies `tenant`'s files against its chain.
pub async fn verify(
    store: &Arc<dyn ObjectStore>,
    tenant: &Tenant,
    options: &VerifyOptions,
) -> Result<Report> {
    let read = read_chain(store, tenant, options.parallel).await?;
    let first = first_checked(&read, &options.start);
    let mut problems = read.problems.clone();
    problems.extend(check_links(&read, tenant, first, options));
    let live = fold(&read.entries);
    let present = present(store, tenant).await?;
    let mut files = Vec::new();
    let mut to_hash = Vec::new();
    for (path, &size) in &present {
        match live.get(path) {
            None => files.push(Problem::Inserted { path: path.clone() }),
            Some((_, seq)) if *seq < first => {}
            Some((recorded, seq)) if recorded.size != size => files.push(Problem::Altered {
                recorded: recorded.clone(),
                seq: *seq,
                size,
                blake3: None,
            }),
            Some(_) => to_hash.push(Path::from(path.as_str())),
        }
    }
    for (path, (_, seq)) in &live {
        if *seq >= first && !present.contains_key(path) {
            files.push(Problem::Missing {
                path: path.clone(),
                seq: *seq,
            });
        }
    }
    let checked = to_hash.len();
    let mut bytes = 0;
    for (path, found) in hash_objects(store, to_hash, options.parallel).await? {
        let (recorded, seq) = &live[path.as_ref()];
        match found {
            None => files.push(Problem::Missing {
                path: path.to_string(),
                seq: *seq,
            }),
            Some(found) => {
                bytes += found.size;
                if found.blake3 != recorded.blake3 || found.size != recorded.size {
                    files.push(Problem::Altered {
                        recorded: recorded.clone(),
                        seq: *seq,
                        size: found.size,
                        blake3: Some(found.blake3),
                    });
                }
            }
        }
    }
    files.sort_by(|a, b| problem_path(a).cmp(problem_path(b)));
    problems.extend(files);
    Ok(Report {
        problems,
        entries: read.last_seq(),
        first_checked: first,
        files: checked,
        bytes,
        head: read.head,
        signatures_checked: options.public_key.is_some(),
    })
}

fn problem_path(p: &Problem) -> &str {
    match p {
        Problem::Altered { recorded, .. } => &recorded.path,
        Problem::Missing { path, .. } | Problem::Inserted { path } => path,
        Problem::Reordered { object, .. } => object,
        Problem::BrokenLink(text) => text,
    }
}

/// Records the files of `tenant` present in the store but not live in its chain as one `adopt`
/// entry; returns its sequence number (none when there was nothing to adopt), the files and
/// their bytes.
pub async fn adopt(
    store: &Arc<dyn ObjectStore>,
    chain: &Chain,
    tenant: &Tenant,
    parallel: usize,
) -> Result<(Option<u64>, usize, u64)> {
    let read = read_chain(store, tenant, parallel).await?;
    let live = fold(&read.entries);
    let unrecorded: Vec<Path> = present(store, tenant)
        .await?
        .into_keys()
        .filter(|p| !live.contains_key(p))
        .map(Path::from)
        .collect();
    let mut record = Record::new(Kind::Adopt);
    for (_, found) in hash_objects(store, unrecorded, parallel).await? {
        record.files.extend(found);
    }
    let files = record.files.len();
    let bytes = record.files.iter().map(|f| f.size).sum();
    let seq = chain.append(tenant, record).await?;
    Ok((seq, files, bytes))
}

/// The tenants with a chain or with data in `store`.
pub async fn tenants(store: &Arc<dyn ObjectStore>) -> Result<Vec<Tenant>> {
    let mut all: HashMap<String, Tenant> = HashMap::new();
    let prefixes = [
        super::PREFIX,
        cairn_schema::layout::Dataset::Spans.prefix(),
        cairn_schema::layout::Dataset::Payloads.prefix(),
        cairn_schema::layout::Dataset::TraceIndex.prefix(),
    ];
    for prefix in prefixes {
        let listing = store.list_with_delimiter(Some(&Path::from(prefix))).await?;
        for p in listing.common_prefixes {
            if let Some(t) = p
                .filename()
                .and_then(|n| n.strip_prefix("tenant="))
                .and_then(|n| Tenant::new(n).ok())
            {
                all.insert(t.to_string(), t);
            }
        }
    }
    let mut out: Vec<Tenant> = all.into_values().collect();
    out.sort();
    Ok(out)
}
