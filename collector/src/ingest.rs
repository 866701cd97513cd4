//! The ingest path shared by both receivers: admit a request body against the memory budget
//! ([`crate::admission`]) and its tenant's limits ([`crate::guards`]), inflate, decode, redact
//! and normalise it off the IO runtime, then either append it to the write-ahead log
//! (acknowledged once durable there) or queue it for the batcher and wait until the spans are in
//! the object store. Redaction runs on the decoded request, so the log, the payloads and the
//! Parquet files only ever hold the redacted content.

use bytes::Bytes;
use std::net::IpAddr;
use std::sync::Arc;

use cairn_normalize::encode::{encode_placed, Encoded};
use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_normalize::placement::{Locate, Placements, PodKeys};
use cairn_normalize::redact::Redactor;
use cairn_schema::tenant::Tenant;
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use tracing::Instrument;

use crate::admission::{Budget, Charge};
use crate::body::{decode_content, Format};
use crate::estimate::{self, Estimate};
use crate::guards::Guards;
use crate::messages::{Item, Pending};
use crate::wal::WalSender;
use crate::{Error, Result};

/// What happened to an export that was not refused outright.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Spans stored.
    pub accepted: usize,
    /// Spans rejected as invalid (OTLP partial success).
    pub rejected: usize,
    /// Why spans were rejected; empty when none were.
    pub message: String,
}

/// Where accepted spans go.
#[derive(Clone)]
pub enum Sink {
    /// Straight to the batcher; the export waits for the object store.
    Batcher(mpsc::Sender<Item>),
    /// Through the write-ahead log; the export waits for the local disk.
    Wal(WalSender),
}

/// How requests are bounded.
#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    /// Memory for requests being read and decoded and spans not yet written.
    pub max_buffer_bytes: usize,
    /// Largest request body, compressed or inflated.
    pub max_message_bytes: usize,
    /// Distinct hour partitions one request may write to.
    pub max_hours_per_request: usize,
}

/// One request body as it arrived.
pub struct Body {
    pub format: Format,
    /// `Content-Encoding`, if any (gRPC bodies arrive inflated).
    pub encoding: Option<String>,
    pub bytes: Bytes,
}

/// A normalised request, with the memory it holds.
struct Normalised {
    encoded: Encoded,
    /// The request as protobuf, for the write-ahead log.
    log_record: Option<Vec<u8>>,
    /// Where its resources' spans ran, for the write-ahead log.
    placements: Placements,
    /// Bytes of the inflated request, counted towards the tenant's storage.
    request_bytes: usize,
}

/// A decoded request and the inflated body it came from.
struct Decoded {
    request: ExportTraceServiceRequest,
    format: Format,
    bytes: Bytes,
    /// Whether redaction changed the request (then `bytes` no longer match it).
    redacted: bool,
}

/// Accepts export requests from the receivers. Cheap to clone.
#[derive(Clone)]
pub struct Ingester {
    sink: Sink,
    budget: Budget,
    limits: IngestLimits,
    locate: Option<Arc<dyn Locate>>,
    guards: Arc<Guards>,
}

impl Ingester {
    /// An ingester feeding `sink` within `limits`; `locate`, when given, finds where each
    /// export's spans ran (the Kubernetes pod cache).
    pub fn new(sink: Sink, limits: IngestLimits, locate: Option<Arc<dyn Locate>>) -> Self {
        Self {
            sink,
            budget: Budget::new(limits.max_buffer_bytes),
            limits,
            locate,
            guards: Arc::new(Guards::off()),
        }
    }

    /// Redacts exports and holds tenants to their limits with `guards`.
    pub fn with_guards(self, guards: Arc<Guards>) -> Self {
        Self { guards, ..self }
    }

    /// The memory budget; receivers charge request bodies to it while reading them.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    pub fn limits(&self) -> IngestLimits {
        self.limits
    }

    /// Stores the valid spans of `body` for `tenant`, sent from `peer`; returns once they are
    /// durable. `charge` already holds what reading the body took.
    pub async fn export(
        &self,
        tenant: Tenant,
        peer: Option<IpAddr>,
        body: Body,
        charge: Charge,
    ) -> Result<Outcome> {
        let format = match body.format {
            Format::Protobuf => "protobuf",
            Format::Json => "json",
        };
        let span = cairn_telemetry::tracing_setup::export_span(format, tenant.as_str());
        self.export_traced(tenant, peer, body, charge)
            .instrument(span)
            .await
    }

    async fn export_traced(
        &self,
        tenant: Tenant,
        peer: Option<IpAddr>,
        body: Body,
        charge: Charge,
    ) -> Result<Outcome> {
        self.guards.admit(&tenant, body.bytes.len())?;
        let with_log = matches!(self.sink, Sink::Wal(_));
        let limits = self.limits;
        let redactor = self.guards.redactor();
        let (normalised, charge) = match &self.locate {
            None => {
                off_runtime(charge, move |charge| {
                    let decoded = decode_body(body, limits, &redactor, charge)?;
                    encode_decoded(decoded, Placements::new(), with_log, limits, charge)
                })
                .await?
            }
            // Decoded first, so that the pods can be looked up (and waited for) between.
            Some(locate) => {
                let (decoded, charge) = off_runtime(charge, move |charge| {
                    decode_body(body, limits, &redactor, charge)
                })
                .await?;
                let decoded = decoded?;
                let keys = decoded
                    .request
                    .resource_spans
                    .iter()
                    .map(|rs| PodKeys::of(rs.resource.as_ref().map_or(&[], |r| &r.attributes)))
                    .collect();
                let placements = locate.locate(keys, peer).await;
                off_runtime(charge, move |charge| {
                    encode_decoded(decoded, placements, with_log, limits, charge)
                })
                .await?
            }
        };
        let normalised = normalised?;
        self.guards
            .admit_spans(&tenant, normalised.encoded.accepted)?;
        let encoded = &normalised.encoded;
        let outcome = Outcome {
            accepted: encoded.accepted,
            rejected: encoded.rejected,
            message: encoded.rejection_message(),
        };
        let m = crate::metrics::metrics();
        m.spans_received
            .inc_by((outcome.accepted + outcome.rejected) as u64);
        m.spans_accepted.inc_by(outcome.accepted as u64);
        m.spans_rejected.inc_by(outcome.rejected as u64);
        tracing::Span::current().record("spans", outcome.accepted);
        if outcome.accepted == 0 {
            return Ok(outcome);
        }
        let request_bytes = normalised.request_bytes;
        self.store(tenant.clone(), normalised, charge).await?;
        self.guards.stored(&tenant, request_bytes);
        Ok(outcome)
    }

    async fn store(&self, tenant: Tenant, normalised: Normalised, charge: Charge) -> Result<()> {
        let Normalised {
            encoded,
            log_record,
            placements,
            ..
        } = normalised;
        let mut pending = Pending {
            tenant: tenant.clone(),
            bytes: charge.bytes(),
            partitions: encoded.partitions,
            permit: charge,
            done: None,
        };
        match &self.sink {
            Sink::Wal(wal) => {
                wal.append(
                    tenant,
                    log_record.expect("encoded for the log"),
                    &placements,
                    pending,
                )
                .await
            }
            Sink::Batcher(tx) => {
                let (done, wait) = oneshot::channel();
                pending.done = Some(done);
                tx.try_send(Item::Spans(pending)).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => {
                        Error::Overloaded("write queue is full, retry later".into())
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
    }
}

/// Runs `work` on the blocking pool with `charge`, and gives the charge back with its result.
async fn off_runtime<T: Send + 'static>(
    mut charge: Charge,
    work: impl FnOnce(&mut Charge) -> T + Send + 'static,
) -> Result<(T, Charge)> {
    tokio::task::spawn_blocking(move || {
        let out = work(&mut charge);
        (out, charge)
    })
    .await
    .map_err(|e| Error::Internal(format!("normaliser task failed: {e}")))
}

/// Inflates, decodes and redacts one body, charging each stage before it allocates.
fn decode_body(
    body: Body,
    limits: IngestLimits,
    redactor: &Redactor,
    charge: &mut Charge,
) -> Result<Decoded> {
    charge.grow_to(body.bytes.len(), "the request body")?;
    let bytes = decode_content(
        body.encoding.as_deref(),
        body.bytes,
        limits.max_message_bytes,
        charge,
    )?;
    let (mut request, decoded_bytes) =
        decode(body.format, &bytes, limits.max_buffer_bytes, charge)?;
    let report = redactor.apply(&mut request);
    Guards::count_redactions(&report.counts);
    // The Arrow batches take about as much as the decoded request.
    charge.grow_by(decoded_bytes, "normalising the request")?;
    Ok(Decoded {
        request,
        format: body.format,
        bytes,
        redacted: report.changed,
    })
}

/// Normalises a decoded request with the placements of its resources; on return `charge` holds
/// exactly what the normalised spans and the log record keep.
fn encode_decoded(
    decoded: Decoded,
    placements: Placements,
    with_log: bool,
    limits: IngestLimits,
    charge: &mut Charge,
) -> Result<Normalised> {
    let Decoded {
        request,
        format,
        bytes,
        redacted,
    } = decoded;
    let encoded = encode_placed(&request, limits.max_hours_per_request, &placements)?;
    let request_bytes = bytes.len();
    // The body as it came, unless redaction changed what it says.
    let log_record = with_log.then(|| match format {
        Format::Protobuf if !redacted => Vec::from(bytes),
        _ => request.encode_to_vec(),
    });
    drop(request);
    let kept: usize = encoded
        .partitions
        .iter()
        .map(|p| flush_charge(&p.spans) + flush_charge(&p.payloads))
        .sum::<usize>()
        + log_record.as_ref().map_or(0, Vec::len);
    charge.set(kept, "the normalised spans")?;
    Ok(Normalised {
        encoded,
        log_record,
        placements,
        request_bytes,
    })
}

/// What flushing Arrow batches copies, per byte of the values they hold: the partition
/// concatenated (1), the columns resolved across its spans, the rows being gathered in sorted
/// order, and the encoded file until it is stored. Peak RSS against the budget under load
/// (`benches/memory_budget.py`) checks it.
const FLUSH_COPIES: f64 = 1.5;

/// The charge of a normalised batch until it is written: its buffers (as allocated) and the
/// copies its flush will make of the values in them, so that a flush never holds memory the
/// budget did not grant (it cannot wait for budget that only its own completion returns).
fn flush_charge(batch: &arrow::array::RecordBatch) -> usize {
    let values: usize = batch
        .columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0))
        .sum();
    batch.get_array_memory_size() + (values as f64 * FLUSH_COPIES) as usize
}

/// Decodes an export request once its estimated decoded size is charged; a request whose
/// estimate passes the whole budget is refused before anything is decoded. Returns the request
/// and its estimated size.
pub fn decode(
    format: Format,
    bytes: &[u8],
    budget_bytes: usize,
    charge: &mut Charge,
) -> Result<(ExportTraceServiceRequest, usize)> {
    let estimate = match format {
        Format::Protobuf => estimate::protobuf(bytes, budget_bytes),
        Format::Json => estimate::json(bytes, budget_bytes),
    };
    let size = match estimate {
        Estimate::Bytes(n) => n,
        Estimate::Exceeds(n) => {
            return Err(Error::TooLarge(format!(
                "the request decodes to more than {n} bytes, more than the collector's whole buffer ({budget_bytes} bytes); send fewer spans per request"
            )))
        }
        Estimate::Invalid(m) => return Err(Error::BadRequest(m)),
    };
    charge.grow_by(size, "decoding the request")?;
    Ok((crate::body::decode_request(format, bytes)?, size))
}
