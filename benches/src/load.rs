//! The end-to-end load bench: pre-encode a workload, send it with N concurrent clients, and
//! follow it until every span is queryable.
//!
//! Reports spans/s accepted (first send to last acknowledgement), spans/s durable and visible
//! (first send to the moment the server's count reaches every acknowledged span), visibility lag
//! (for each count sample, how long ago the span that many acknowledgements in was acknowledged),
//! and, given the server's pid and storage paths, CPU seconds per million spans, peak RSS and
//! bytes stored per span and per OTLP byte.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use serde::Serialize;

use crate::access::Access;
use crate::process::{cpu_seconds, disk_bytes, peak_rss};
use crate::send::{Client, Outcome, Protocol};
use crate::visible::Counter;
use crate::workload::{span_count, Workload};
use crate::{Error, Result};

/// What to send, where, and what to watch.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// OTLP endpoint: `http://127.0.0.1:4317` for gRPC, `http://127.0.0.1:4318` for HTTP.
    #[arg(long, env = "CAIRN_BENCH_ENDPOINT")]
    pub endpoint: String,
    #[arg(long, env = "CAIRN_BENCH_PROTOCOL", value_enum, default_value = "grpc")]
    pub protocol: Protocol,
    /// Spans to send (rounded up to whole requests).
    #[arg(long, env = "CAIRN_BENCH_SPANS", default_value_t = 200_000)]
    pub spans: usize,
    /// Offered load in spans per second: request i is sent no sooner than the spans before it
    /// divided by this after the start (none: as fast as the server answers). For visibility
    /// at a fraction of the saturating load.
    #[arg(long, env = "CAIRN_BENCH_RATE")]
    pub rate: Option<f64>,
    /// Agent runs per export request (about 11 spans each).
    #[arg(long, env = "CAIRN_BENCH_RUNS_PER_REQUEST", default_value_t = 20)]
    pub runs_per_request: u64,
    /// Concurrent clients, each with its own connection.
    #[arg(long, env = "CAIRN_BENCH_CONNECTIONS", default_value_t = 16)]
    pub connections: usize,
    /// Workload seed.
    #[arg(long, env = "CAIRN_BENCH_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Put an email address, a card number and an API key in the first user message of every
    /// Nth run, for redaction rules to find (0: never).
    #[arg(long, env = "CAIRN_BENCH_SECRETS_EVERY", default_value_t = 0)]
    pub secrets_every: u64,
    /// Number of the first run, so that repeated loads into one store do not reuse trace ids.
    #[arg(long, env = "CAIRN_BENCH_FIRST_RUN", default_value_t = 0)]
    pub first_run: u64,
    /// Gzip request bodies: HTTP bodies before the clock starts, gRPC messages as they are sent.
    #[arg(long, env = "CAIRN_BENCH_GZIP")]
    pub gzip: bool,
    /// Tenant (`X-Scope-OrgID`).
    #[arg(long, env = "CAIRN_BENCH_TENANT", default_value = "bench")]
    pub tenant: String,
    /// Cairn query API to count visible spans with (`http://127.0.0.1:3200`).
    #[arg(long, env = "CAIRN_BENCH_QUERY", conflicts_with = "count_command")]
    pub query: Option<String>,
    /// Shell command printing the number of stored spans (for other backends).
    #[arg(long, env = "CAIRN_BENCH_COUNT_COMMAND")]
    pub count_command: Option<String>,
    /// How often to count.
    #[arg(long, env = "CAIRN_BENCH_POLL", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub poll: Duration,
    /// Give up waiting for visibility after this long past the last acknowledgement.
    #[arg(long, env = "CAIRN_BENCH_TIMEOUT", default_value = "300s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// The server's process id, for CPU time and peak memory.
    #[arg(long, env = "CAIRN_BENCH_PID")]
    pub pid: Option<u32>,
    /// Where the server stores data (repeatable): what files under these paths grow by is
    /// counted as stored.
    #[arg(long = "storage", env = "CAIRN_BENCH_STORAGE", value_delimiter = ',')]
    pub storage: Vec<PathBuf>,
    /// Label of this run in the report.
    #[arg(long, env = "CAIRN_BENCH_LABEL", default_value = "cairn")]
    pub label: String,
    /// Also append the report as one JSON line to this file.
    #[arg(long, env = "CAIRN_BENCH_REPORT")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub access: Access,
}

/// The measured outcome of one load.
#[derive(Debug, Serialize)]
pub struct Report {
    pub label: String,
    pub protocol: Protocol,
    pub connections: usize,
    pub requests: usize,
    pub spans: usize,
    pub otlp_bytes: u64,
    pub rejected_spans: i64,
    pub refusals: u64,
    pub send_seconds: f64,
    pub accepted_spans_per_second: f64,
    pub accepted_otlp_mb_per_second: f64,
    pub visible_seconds: Option<f64>,
    pub visible_spans_per_second: Option<f64>,
    pub visible_spans: u64,
    pub lag_p50_seconds: Option<f64>,
    pub lag_max_seconds: Option<f64>,
    pub cpu_seconds: Option<f64>,
    pub cpu_seconds_per_million_spans: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    pub stored_bytes: Option<u64>,
    pub stored_bytes_per_span: Option<f64>,
    pub stored_bytes_per_otlp_byte: Option<f64>,
}

/// The request body as sent: gzipped when asked for over HTTP.
fn maybe_gzip(args: &LoadArgs, body: Vec<u8>) -> Vec<u8> {
    if !(args.gzip && args.protocol == Protocol::Http) {
        return body;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&body).expect("in memory");
    gz.finish().expect("in memory")
}

/// Generates and encodes the workload on every core: (body, spans) per request, and the
/// total size of the requests as uncompressed OTLP protobuf.
fn prepare(args: &LoadArgs) -> Result<(Vec<(Bytes, usize)>, u64)> {
    let workload = Workload::new(args.seed).with_secrets(args.secrets_every);
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    // Estimate spans per request from one sample, then size the batch.
    let sample = span_count(&workload.request(args.first_run, args.runs_per_request, start, 0));
    let requests = args.spans.div_ceil(sample.max(1));
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut out: Vec<(usize, Bytes, usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= requests {
                            break mine;
                        }
                        let first = args.first_run + i as u64 * args.runs_per_request;
                        // Runs 10 ms apart, all in the recent past.
                        let request =
                            workload.request(first, args.runs_per_request, start, 10_000_000);
                        let spans = span_count(&request);
                        let body = request.encode_to_vec();
                        let raw = body.len();
                        mine.push((i, Bytes::from(maybe_gzip(args, body)), spans, raw));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("generator thread"))
            .collect()
    });
    out.sort_by_key(|(i, _, _, _)| *i);
    // Top up to at least the requested number of spans.
    let mut total: usize = out.iter().map(|(_, _, s, _)| s).sum();
    while total < args.spans {
        let i = out.len();
        let request = workload.request(
            args.first_run + i as u64 * args.runs_per_request,
            args.runs_per_request,
            start,
            10_000_000,
        );
        let spans = span_count(&request);
        let body = request.encode_to_vec();
        let raw = body.len();
        total += spans;
        out.push((i, Bytes::from(maybe_gzip(args, body)), spans, raw));
    }
    let otlp_bytes = out.iter().map(|(_, _, _, raw)| *raw as u64).sum();
    Ok((
        out.into_iter().map(|(_, b, s, _)| (b, s)).collect(),
        otlp_bytes,
    ))
}

/// Runs one load and prints its report.
pub async fn run(args: LoadArgs) -> Result<Report> {
    let trust = args.access.trust()?;
    let counter = match (&args.query, &args.count_command) {
        (Some(url), _) => Some(Counter::sql(
            url,
            &args.tenant,
            args.access.query_bearer(),
            trust.as_ref(),
        )?),
        (None, Some(cmd)) => Some(Counter::Command(cmd.clone())),
        (None, None) => None,
    };
    let baseline = match &counter {
        Some(c) => c.count().await?,
        None => 0,
    };
    eprintln!("generating the workload…");
    let (requests, otlp_bytes) = prepare(&args)?;
    let spans: usize = requests.iter().map(|(_, s)| s).sum();
    eprintln!(
        "{} requests, {spans} spans, {:.1} MB; {} {:?} clients",
        requests.len(),
        requests.iter().map(|(b, _)| b.len()).sum::<usize>() as f64 / 1e6,
        args.connections,
        args.protocol
    );
    let authorization = args.access.export_bearer();
    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        clients.push(
            Client::connect_with(
                args.protocol,
                &args.endpoint,
                &args.tenant,
                args.gzip,
                authorization.as_deref(),
                trust.as_ref(),
            )
            .await?,
        );
    }
    // When each request is due (at `--rate`): the spans before it over the rate.
    let due: Arc<Vec<Duration>> = Arc::new(match args.rate {
        Some(rate) => requests
            .iter()
            .scan(0usize, |before, (_, n)| {
                let at = Duration::from_secs_f64(*before as f64 / rate);
                *before += n;
                Some(at)
            })
            .collect(),
        None => Vec::new(),
    });
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = args.pid.map(cpu_seconds).transpose()?;
    let stored_before: u64 = args.storage.iter().map(|p| disk_bytes(p)).sum();
    let started = Instant::now();

    let poller = counter.map(|counter| {
        let poll = args.poll;
        let target = baseline + spans as u64;
        let timeout = args.timeout;
        let done_sending = Arc::new(tokio::sync::Notify::new());
        let notify = done_sending.clone();
        let task = tokio::spawn(async move {
            let mut samples: Vec<(Duration, u64)> = Vec::new();
            let mut deadline: Option<Instant> = None;
            let mut notified = std::pin::pin!(notify.notified());
            loop {
                let n = counter.count().await?;
                samples.push((started.elapsed(), n.saturating_sub(baseline)));
                if n >= target {
                    return Ok::<_, Error>(samples);
                }
                if deadline.is_some_and(|d| Instant::now() > d) {
                    return Ok(samples);
                }
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = &mut notified, if deadline.is_none() => {
                        deadline = Some(Instant::now() + timeout);
                    }
                }
            }
        });
        (task, done_sending)
    });

    let mut senders = Vec::new();
    for mut client in clients {
        let (requests, next, due) = (requests.clone(), next.clone(), due.clone());
        senders.push(tokio::spawn(async move {
            let mut acks: Vec<(Duration, usize)> = Vec::new();
            let mut refusals = 0u64;
            let mut rejected = 0i64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((body, n)) = requests.get(i) else {
                    return Ok::<_, Error>((acks, refusals, rejected));
                };
                if let Some(at) = due.get(i) {
                    tokio::time::sleep_until((started + *at).into()).await;
                }
                let mut attempt = 0;
                loop {
                    match client.send(body.clone(), attempt).await? {
                        Outcome::Accepted { rejected: r } => {
                            rejected += r;
                            acks.push((started.elapsed(), *n));
                            break;
                        }
                        Outcome::Retry(delay) => {
                            refusals += 1;
                            attempt += 1;
                            tokio::time::sleep(delay).await;
                        }
                    }
                }
            }
        }));
    }
    let mut acks = Vec::new();
    let (mut refusals, mut rejected) = (0, 0);
    for sender in senders {
        let (a, f, r) = sender
            .await
            .map_err(|e| Error::Server(format!("client task: {e}")))??;
        acks.extend(a);
        refusals += f;
        rejected += r;
    }
    let send_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "all {} requests acknowledged in {send_seconds:.2} s",
        requests.len()
    );

    let samples = match poller {
        Some((task, done)) => {
            done.notify_one();
            task.await
                .map_err(|e| Error::Server(format!("counter task: {e}")))??
        }
        None => Vec::new(),
    };
    let cpu = match (args.pid, cpu_before) {
        (Some(pid), Some(before)) => Some(cpu_seconds(pid)? - before),
        _ => None,
    };
    let peak = args.pid.map(peak_rss).transpose()?;
    acks.sort_by_key(|(t, _)| *t);
    let visible_spans = samples.last().map_or(0, |(_, n)| *n);
    let visible_at = samples
        .last()
        .filter(|(_, n)| *n >= spans as u64)
        .map(|(t, _)| t.as_secs_f64());
    let mut lags = lags(&acks, &samples);
    lags.sort_by(f64::total_cmp);
    let stored = (!args.storage.is_empty()).then(|| {
        let after: u64 = args.storage.iter().map(|p| disk_bytes(p)).sum();
        after.saturating_sub(stored_before)
    });
    let per_span = |v: f64| v / spans as f64;
    let report = Report {
        label: args.label.clone(),
        protocol: args.protocol,
        connections: args.connections,
        requests: requests.len(),
        spans,
        otlp_bytes,
        rejected_spans: rejected,
        refusals,
        send_seconds,
        accepted_spans_per_second: spans as f64 / send_seconds,
        accepted_otlp_mb_per_second: otlp_bytes as f64 / 1e6 / send_seconds,
        visible_seconds: visible_at,
        visible_spans_per_second: visible_at.map(|t| spans as f64 / t),
        visible_spans,
        lag_p50_seconds: lags.get(lags.len() / 2).copied(),
        lag_max_seconds: lags.last().copied(),
        cpu_seconds: cpu,
        cpu_seconds_per_million_spans: cpu.map(|c| c / spans as f64 * 1e6),
        peak_rss_bytes: peak,
        stored_bytes: stored,
        stored_bytes_per_span: stored.map(|b| per_span(b as f64)),
        stored_bytes_per_otlp_byte: stored
            .filter(|_| otlp_bytes > 0)
            .map(|b| b as f64 / otlp_bytes as f64),
    };
    let line = serde_json::to_string(&report).expect("serialisable");
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("serialisable")
    );
    if let Some(path) = &args.report {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        writeln!(file, "{line}").map_err(|e| Error::Usage(e.to_string()))?;
    }
    if visible_at.is_none() && !samples.is_empty() {
        return Err(Error::Server(format!(
            "only {visible_spans} of {spans} spans became visible"
        )));
    }
    Ok(report)
}

/// For each count sample (time, visible spans), how long before it the span that brought the
/// acknowledged total to that count was acknowledged.
fn lags(acks: &[(Duration, usize)], samples: &[(Duration, u64)]) -> Vec<f64> {
    let mut cumulative = Vec::with_capacity(acks.len());
    let mut total = 0u64;
    for (t, n) in acks {
        total += *n as u64;
        cumulative.push((*t, total));
    }
    samples
        .iter()
        .filter(|(_, n)| *n > 0)
        .filter_map(|(t, n)| {
            let i = cumulative.partition_point(|(_, c)| c < n);
            let (acked, _) = cumulative.get(i)?;
            Some(t.saturating_sub(*acked).as_secs_f64())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_measured_from_the_acknowledgement() {
        let s = Duration::from_secs;
        let acks = [(s(1), 100), (s(2), 100), (s(3), 100)];
        // 150 visible at 4 s: the 150th span was acknowledged at 2 s.
        let samples = [(s(0), 0), (s(4), 150), (s(5), 300)];
        assert_eq!(lags(&acks, &samples), vec![2.0, 2.0]);
    }
}
