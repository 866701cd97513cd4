//! The write-ahead log: an export is acknowledged once its spans are durable on local disk.
//!
//! One writer thread appends records to the current segment (`<id>.wal`), syncs once for every
//! group of appends waiting (group commit), answers the exports, and forwards their spans to the
//! batcher in order. When the batcher asks for a flush, the writer seals the segment and sends a
//! `Sealed` marker after its last record; the batcher writes everything before the marker as the
//! segment's Parquet files, under names derived from the collector id and the segment id, and
//! only then deletes the segment. On start, segments left behind are replayed into the same file
//! names, so a crash at any point neither loses an acknowledged span nor stores it twice.
//!
//! Record: `len: u32 LE | crc32(payload): u32 LE | payload`, payload = `tenant_len: u16 LE |
//! tenant | ExportTraceServiceRequest protobuf`; when the top bit of `tenant_len` is set, the
//! tenant is followed by `placements_len: u32 LE | placements` (JSON, one entry per resource:
//! what the Kubernetes API said at ingest, so a replay stores exactly what was acknowledged).
//! A torn or corrupt tail ends a segment.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_normalize::placement::{Placement, Placements};
use cairn_schema::tenant::Tenant;
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use crate::messages::{Item, Pending, WriteError};
use crate::{Error, Result};

/// Appends waiting for the writer.
const QUEUE_DEPTH: usize = 4096;
/// Appends written per sync at most.
const GROUP: usize = 1024;

/// A request to the writer thread.
pub enum Command {
    Append {
        tenant: Tenant,
        request: Vec<u8>,
        /// The placements' JSON, when any resource has one.
        placements: Option<Vec<u8>>,
        pending: Pending,
        reply: oneshot::Sender<Result<(), WriteError>>,
    },
    Rotate,
}

/// The ingest side's handle: appends.
#[derive(Clone)]
pub struct WalSender {
    tx: mpsc::Sender<Command>,
}

/// The batcher's handle: asks for rotations, releases flushed segments. Holds no strong sender,
/// so the writer stops once every ingest handle is gone.
#[derive(Clone)]
pub struct WalControl {
    tx: mpsc::WeakSender<Command>,
    dir: PathBuf,
    pub collector_id: String,
}

impl WalSender {
    /// Appends `request` (already validated) with the placements of its resources, and waits
    /// until it is durable.
    pub async fn append(
        &self,
        tenant: Tenant,
        request: Vec<u8>,
        placements: &Placements,
        pending: Pending,
    ) -> Result<()> {
        let (reply, wait) = oneshot::channel();
        let placements = placements_json(placements)?;
        self.tx
            .try_send(Command::Append {
                tenant,
                request,
                placements,
                pending,
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    Error::Overloaded("write-ahead log queue is full, retry later".into())
                }
                mpsc::error::TrySendError::Closed(_) => Error::ShuttingDown,
            })?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Write(e)),
            Err(_) => Err(Error::ShuttingDown),
        }
    }
}

impl WalControl {
    /// Asks the writer to seal the current segment (a `Sealed` item follows its last record).
    pub fn rotate(&self) {
        if let Some(tx) = self.tx.upgrade() {
            let _ = tx.try_send(Command::Rotate);
        }
    }

    /// Deletes a segment whose spans are all committed to the object store.
    pub fn release(&self, segment: u64) {
        crate::metrics::metrics().wal_segments_pending.dec();
        let path = segment_path(&self.dir, segment);
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete flushed WAL segment");
        }
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The placements of a request's resources as logged: JSON, `None` when none is known.
pub fn placements_json(placements: &Placements) -> Result<Option<Vec<u8>>> {
    placements
        .iter()
        .any(Option::is_some)
        .then(|| {
            let plain: Vec<Option<&Placement>> = placements.iter().map(Option::as_deref).collect();
            serde_json::to_vec(&plain)
        })
        .transpose()
        .map_err(|e| Error::Internal(format!("encoding placements: {e}")))
}

/// Top bit of `tenant_len`: placements follow the tenant.
const WITH_PLACEMENTS: u16 = 0x8000;

/// One record as it is appended to a segment: `len | crc32(payload) | payload`, payload =
/// `tenant_len: u16 LE | tenant | request`. `tenant` is a valid tenant id in every record the
/// writer appends (at most 128 bytes); any bytes are accepted so that tests can frame invalid ones.
pub fn encode_record(tenant: &[u8], request: &[u8]) -> Vec<u8> {
    encode_placed_record(tenant, None, request)
}

/// Like [`encode_record`], with the placements' JSON between tenant and request.
pub fn encode_placed_record(tenant: &[u8], placements: Option<&[u8]>, request: &[u8]) -> Vec<u8> {
    let extra = placements.map_or(0, |p| 4 + p.len());
    let mut payload = Vec::with_capacity(2 + tenant.len() + extra + request.len());
    let flag = if placements.is_some() {
        WITH_PLACEMENTS
    } else {
        0
    };
    payload.extend_from_slice(&((tenant.len() as u16 & !WITH_PLACEMENTS) | flag).to_le_bytes());
    payload.extend_from_slice(tenant);
    if let Some(p) = placements {
        payload.extend_from_slice(&(p.len() as u32).to_le_bytes());
        payload.extend_from_slice(p);
    }
    payload.extend_from_slice(request);
    let mut record = Vec::with_capacity(8 + payload.len());
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    record.extend_from_slice(&payload);
    record
}

/// One record read back: tenant, request and the placements of its resources.
pub type Record = (Tenant, ExportTraceServiceRequest, Placements);

/// Reads one record's payload, `None` when it is not a valid record.
fn parse_payload(payload: &[u8]) -> Option<Record> {
    let head = u16::from_le_bytes([*payload.first()?, *payload.get(1)?]);
    let tlen = (head & !WITH_PLACEMENTS) as usize;
    let tenant = Tenant::new(std::str::from_utf8(payload.get(2..2 + tlen)?).ok()?).ok()?;
    let mut rest = payload.get(2 + tlen..)?;
    let mut placements = Placements::new();
    if head & WITH_PLACEMENTS != 0 {
        let plen = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let plain: Vec<Option<Placement>> = serde_json::from_slice(rest.get(4..4 + plen)?).ok()?;
        // No placement at all reads as none, however it was written.
        if plain.iter().any(Option::is_some) {
            placements = plain.into_iter().map(|p| p.map(Arc::new)).collect();
        }
        rest = rest.get(4 + plen..)?;
    }
    let request = ExportTraceServiceRequest::decode(rest).ok()?;
    Some((tenant, request, placements))
}

/// Parses the records of a segment's bytes up to the first torn or corrupt one (short header,
/// short payload, checksum mismatch, invalid tenant, undecodable request). Returns the records
/// and the length of the intact prefix they span; anything after it is ignored.
pub fn parse_segment(data: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(header) = data.get(at..at + 8) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let Some(payload) = at
            .checked_add(8 + len)
            .and_then(|end| data.get(at + 8..end))
        else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let parsed = parse_payload(payload);
        match parsed {
            Some(record) => out.push(record),
            None => break,
        }
        at += 8 + len;
    }
    (out, at)
}

/// An opened WAL directory: its collector id and the segments a previous run left behind.
pub struct WalDir {
    pub dir: PathBuf,
    pub collector_id: String,
    /// Segment ids in order.
    pub leftover: Vec<u64>,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!("write-ahead log: {what} {}: {e}", path.display()))
}

impl WalDir {
    /// Opens (creating) the directory and its persistent collector id.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
        let id_path = dir.join("collector-id");
        let collector_id = match std::fs::read_to_string(&id_path) {
            Ok(id) if !id.trim().is_empty() => id.trim().to_owned(),
            _ => {
                let id = uuid::Uuid::now_v7().simple().to_string();
                std::fs::write(&id_path, &id).map_err(|e| io("writing", &id_path, e))?;
                id
            }
        };
        let mut leftover: Vec<u64> = std::fs::read_dir(dir)
            .map_err(|e| io("listing", dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".wal")?.parse().ok()
            })
            .collect();
        leftover.sort_unstable();
        Ok(Self {
            dir: dir.to_owned(),
            collector_id,
            leftover,
        })
    }

    /// The records of a leftover segment, up to a torn or corrupt tail.
    pub fn read_segment(&self, id: u64) -> Result<Vec<Record>> {
        let path = segment_path(&self.dir, id);
        let mut data = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(|e| io("reading", &path, e))?;
        let (out, good) = parse_segment(&data);
        if good < data.len() {
            tracing::warn!(path = %path.display(), offset = good, "WAL segment ends with a torn or corrupt record; ignoring the tail");
        }
        Ok(out)
    }

    /// Deletes a replayed segment.
    pub fn remove(&self, id: u64) -> Result<()> {
        let path = segment_path(&self.dir, id);
        std::fs::remove_file(&path).map_err(|e| io("deleting", &path, e))
    }

    /// Starts the writer thread, forwarding appended spans and seal markers to `batcher`.
    pub fn start(self, batcher: mpsc::Sender<Item>) -> Result<(WalSender, WalControl)> {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let control = WalControl {
            tx: tx.downgrade(),
            dir: self.dir.clone(),
            collector_id: self.collector_id.clone(),
        };
        let first = self.leftover.last().map_or(0, |l| l + 1).max(now_micros());
        let writer = Writer::open(self.dir, first, batcher)?;
        std::thread::Builder::new()
            .name("cairn-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::Internal(format!("cannot start the WAL writer: {e}")))?;
        Ok((WalSender { tx }, control))
    }
}

struct Writer {
    dir: PathBuf,
    id: u64,
    file: File,
    /// Bytes of complete records written to the current segment.
    good_len: u64,
    /// Bytes known to be on disk (synced).
    synced_len: u64,
    records: usize,
    batcher: mpsc::Sender<Item>,
}

struct Appended {
    pending: Pending,
    reply: oneshot::Sender<Result<(), WriteError>>,
}

impl Writer {
    fn open(dir: PathBuf, id: u64, batcher: mpsc::Sender<Item>) -> Result<Self> {
        let path = segment_path(&dir, id);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io("creating", &path, e))?;
        Ok(Self {
            dir,
            id,
            file,
            good_len: 0,
            synced_len: 0,
            records: 0,
            batcher,
        })
    }

    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut unsynced: Vec<Appended> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            while group.len() < GROUP {
                match rx.try_recv() {
                    Ok(c) => group.push(c),
                    Err(_) => break,
                }
            }
            for command in group {
                match command {
                    Command::Append {
                        tenant,
                        request,
                        placements,
                        pending,
                        reply,
                    } => match self.write(&tenant, placements.as_deref(), &request) {
                        Ok(()) => unsynced.push(Appended { pending, reply }),
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    },
                    Command::Rotate => {
                        self.commit(&mut unsynced);
                        self.rotate();
                    }
                }
            }
            self.commit(&mut unsynced);
        }
        // Every ingest handle is gone: seal what is left so that it is written out.
        self.commit(&mut unsynced);
        if self.records > 0 {
            self.seal();
        } else {
            let _ = std::fs::remove_file(segment_path(&self.dir, self.id));
        }
    }

    fn write(
        &mut self,
        tenant: &Tenant,
        placements: Option<&[u8]>,
        request: &[u8],
    ) -> Result<(), WriteError> {
        let record = encode_placed_record(tenant.as_str().as_bytes(), placements, request);
        match self.file.write_all(&record) {
            Ok(()) => {
                self.good_len += record.len() as u64;
                self.records += 1;
                crate::metrics::metrics()
                    .wal_bytes
                    .inc_by(record.len() as u64);
                Ok(())
            }
            Err(e) => {
                // Leave no partial record behind (a full disk, say): later records must follow
                // a complete one.
                let _ = self.file.set_len(self.good_len);
                Err(e.into())
            }
        }
    }

    /// Syncs, then answers and forwards every unsynced append.
    fn commit(&mut self, unsynced: &mut Vec<Appended>) {
        if unsynced.is_empty() {
            return;
        }
        let synced = self.file.sync_data().map_err(WriteError::from);
        crate::metrics::metrics().wal_syncs.inc();
        match &synced {
            Ok(()) => self.synced_len = self.good_len,
            Err(_) => {
                // The appends are refused, so they must not be replayed either: cut them off.
                let _ = self.file.set_len(self.synced_len);
                self.good_len = self.synced_len;
            }
        }
        for a in unsynced.drain(..) {
            match &synced {
                Ok(()) => {
                    let _ = a.reply.send(Ok(()));
                    // Durable: written out even if the client has gone away.
                    let _ = self.batcher.blocking_send(Item::Spans(a.pending));
                }
                Err(e) => {
                    let _ = a.reply.send(Err(e.clone()));
                }
            }
        }
    }

    fn seal(&mut self) {
        crate::metrics::metrics().wal_segments_pending.inc();
        let _ = self.batcher.blocking_send(Item::Sealed(self.id));
    }

    /// Seals the current segment and continues in a new one; if no new one can be opened, keeps
    /// appending to the current one unsealed (the batcher asks again).
    fn rotate(&mut self) {
        if self.records == 0 {
            return;
        }
        let next = (self.id + 1).max(now_micros());
        match Writer::open(self.dir.clone(), next, self.batcher.clone()) {
            Ok(w) => {
                self.seal();
                self.id = w.id;
                self.file = w.file;
                self.good_len = 0;
                self.synced_len = 0;
                self.records = 0;
            }
            Err(e) => tracing::error!(error = %e, "cannot open a new WAL segment"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_normalize::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn request(name: &str) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: name.into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn segments_parse_up_to_a_torn_or_corrupt_record() {
        let (a, b) = (request("a").encode_to_vec(), request("b").encode_to_vec());
        let mut segment = encode_record(b"t1", &a);
        segment.extend(encode_record(b"t2", &b));
        let whole = segment.len();
        let (records, good) = parse_segment(&segment);
        assert_eq!(good, whole);
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].0.as_str(), "t2");
        assert_eq!(records[1].1, request("b"));

        // A torn tail, a flipped byte, an invalid tenant: the records before it stand.
        let first = encode_record(b"t1", &a).len();
        for cut in [whole - 1, first + 3] {
            let (records, good) = parse_segment(&segment[..cut]);
            assert_eq!((records.len(), good), (1, first), "cut at {cut}");
        }
        let mut flipped = segment.clone();
        flipped[first + 9] ^= 1;
        assert_eq!(parse_segment(&flipped).1, first);
        let mut bad_tenant = encode_record(b"t1", &a);
        bad_tenant.extend(encode_record(b"../x", &b));
        assert_eq!(parse_segment(&bad_tenant).1, first);
        // A length past the end of the data.
        let mut huge = encode_record(b"t1", &a);
        huge.extend(u32::MAX.to_le_bytes());
        huge.extend([0; 12]);
        assert_eq!(parse_segment(&huge).1, first);
        assert_eq!(parse_segment(&[]), (Vec::new(), 0));
    }

    #[test]
    fn placements_are_logged_with_their_request() {
        let placement = Placement {
            pod_name: Some("agent-0".into()),
            runtime_class: Some("gvisor".into()),
            ..Placement::default()
        };
        let json = serde_json::to_vec(&[None, Some(&placement)]).unwrap();
        let a = request("a").encode_to_vec();
        let mut segment = encode_placed_record(b"t1", Some(&json), &a);
        segment.extend(encode_record(b"t2", &a));
        let (records, good) = parse_segment(&segment);
        assert_eq!(good, segment.len());
        assert_eq!(records[0].1, request("a"));
        assert_eq!(records[0].2, vec![None, Some(Arc::new(placement))]);
        assert!(records[1].2.is_empty());
        // Placements that do not parse make the record corrupt, not silently unplaced.
        let broken = encode_placed_record(b"t1", Some(b"{not json"), &a);
        assert_eq!(parse_segment(&broken), (Vec::new(), 0));
    }
}
