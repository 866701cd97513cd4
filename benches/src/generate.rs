//! Writes a store of generated agent runs directly, for the query suite: the same encoding and
//! Parquet files a collector writes (spans sorted by trace and start time with their bloom
//! filter and page index; payloads deduplicated), one spans file and one payloads file per hour
//! partition, as compaction would leave them, and the trace index entries of each spans file
//! (each payload is stored in the hour of the spans that refer to it, which the entries name).
//! Hours are generated in parallel on every core.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use arrow::array::{AsArray, RecordBatch};
use cairn_normalize::encode::encode;
use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_schema::layout::{format_hour, new_file, Dataset, HOUR_NANOS};
use cairn_schema::tenant::Tenant;
use cairn_store::file_format::Effort;
use cairn_store::parquet::{encode_payloads, encode_span_file};
use prost::Message;
use serde::Serialize;

use crate::naive;
use crate::workload::{span_count, Workload, EPOCH_NANOS};
use crate::{Error, Result};

/// The store to write and its size.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Local directory of the store (what `cairn serve --store` is given).
    #[arg(long, env = "CAIRN_BENCH_STORE")]
    pub store: PathBuf,
    /// Spans to generate, approximately.
    #[arg(long, env = "CAIRN_BENCH_SPANS", default_value_t = 10_000_000)]
    pub spans: u64,
    /// Hours the runs are spread over, ending at 2026-11-28T00:00Z.
    #[arg(long, env = "CAIRN_BENCH_HOURS", default_value_t = 168)]
    pub hours: u64,
    /// Spans of the one large run added in the last hour (0 for none).
    #[arg(long, env = "CAIRN_BENCH_LARGE_RUN", default_value_t = 10_000)]
    pub large_run: usize,
    #[arg(long, env = "CAIRN_BENCH_SEED", default_value_t = 1)]
    pub seed: u64,
    #[arg(long, env = "CAIRN_BENCH_TENANT", default_value = "bench")]
    pub tenant: String,
    /// Also write the naive single-table baseline (see `naive.rs`) under this directory.
    #[arg(long, env = "CAIRN_BENCH_NAIVE")]
    pub naive: Option<PathBuf>,
    /// Agent runs per encoded request.
    #[arg(long, env = "CAIRN_BENCH_RUNS_PER_REQUEST", default_value_t = 20)]
    pub runs_per_request: u64,
}

/// What was written.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub spans: u64,
    pub runs: u64,
    pub otlp_bytes: u64,
    pub span_file_bytes: u64,
    pub payload_file_bytes: u64,
    /// Bytes of the naive single-table baseline, when written.
    pub naive_file_bytes: u64,
    pub files: u64,
    pub first_hour_start_nanos: u64,
    pub end_nanos: u64,
    /// Hex trace id of the large run.
    pub large_run_trace_id: Option<String>,
    /// Hex trace ids of runs spread over the store, for lookups.
    pub sample_trace_ids: Vec<String>,
    pub seconds: f64,
}

#[derive(Default)]
struct Counters {
    spans: AtomicU64,
    otlp: AtomicU64,
    span_bytes: AtomicU64,
    payload_bytes: AtomicU64,
    naive_bytes: AtomicU64,
    files: AtomicU64,
}

fn write_file(store: &Path, path: &object_store::path::Path, bytes: &[u8]) -> Result<()> {
    let file = store.join(path.as_ref());
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Usage(format!("{}: {e}", dir.display())))?;
    }
    std::fs::write(&file, bytes).map_err(|e| Error::Usage(format!("{}: {e}", file.display())))
}

/// Encodes `requests` and writes one payloads file and one spans file per hour partition they
/// touch (payloads first, as a collector does).
fn write_requests(
    args: &GenerateArgs,
    tenant: &Tenant,
    requests: impl Iterator<Item = ExportTraceServiceRequest>,
    counters: &Counters,
) -> Result<()> {
    let store = args.store.as_path();
    let mut hours: BTreeMap<i64, (Vec<RecordBatch>, Vec<RecordBatch>)> = BTreeMap::new();
    let mut naive_hours = BTreeMap::new();
    for request in requests {
        if args.naive.is_some() {
            naive::append(&mut naive_hours, &request);
        }
        counters
            .otlp
            .fetch_add(request.encoded_len() as u64, Ordering::Relaxed);
        counters
            .spans
            .fetch_add(span_count(&request) as u64, Ordering::Relaxed);
        let encoded = encode(&request).map_err(|e| Error::Internal(e.to_string()))?;
        for p in encoded.partitions {
            let entry = hours.entry(p.hour).or_default();
            entry.0.push(p.spans);
            entry.1.push(p.payloads);
        }
    }
    for (hour, (spans, payloads)) in hours {
        let internal = |e: cairn_store::Error| Error::Internal(e.to_string());
        let stored: HashSet<&str> = payloads
            .iter()
            .flat_map(|b| b.column(0).as_string::<i32>().iter().flatten())
            .collect();
        let all = arrow::compute::concat_batches(&cairn_schema::columns::spans_schema(), &spans)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let file = encode_span_file(
            &all,
            hour,
            |h| stored.contains(h).then_some(hour),
            Effort::Compaction,
        )
        .map_err(internal)?;
        let (bytes, _) = encode_payloads(&payloads, Effort::Compaction).map_err(internal)?;
        write_file(store, &new_file(Dataset::Payloads, tenant, hour), &bytes)?;
        counters
            .payload_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let path = new_file(Dataset::Spans, tenant, hour);
        write_file(store, &path, &file.spans)?;
        // Its index entries, as a collector writes them after each span file.
        write_file(
            store,
            &cairn_schema::trace_index::delta_path(tenant, hour, &path),
            &file.index,
        )?;
        counters
            .span_bytes
            .fetch_add(file.spans.len() as u64, Ordering::Relaxed);
        counters.files.fetch_add(2, Ordering::Relaxed);
    }
    if let Some(dir) = &args.naive {
        for (hour, rows) in naive_hours {
            let bytes = naive::encode(rows)?;
            let path = object_store::path::Path::from(format!(
                "hour={}/{}.parquet",
                format_hour(hour),
                counters.files.fetch_add(1, Ordering::Relaxed)
            ));
            write_file(dir, &path, &bytes)?;
            counters
                .naive_bytes
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Generates the store and returns what it holds.
pub fn run(args: &GenerateArgs) -> Result<Summary> {
    let started = std::time::Instant::now();
    let tenant = Tenant::new(&args.tenant).map_err(|e| Error::Usage(e.to_string()))?;
    let workload = Workload::new(args.seed);
    let hours = args.hours.max(1);
    let first_hour = EPOCH_NANOS - hours * HOUR_NANOS as u64;
    // Spans per run, from a sample.
    let sample = span_count(&workload.request(u64::MAX / 2, 200, first_hour, 0)) as f64 / 200.0;
    let runs_per_hour = ((args.spans as f64 / sample / hours as f64).ceil() as u64).max(1);
    let spacing = HOUR_NANOS as u64 / runs_per_hour;
    let counters = Counters::default();
    let next = AtomicU64::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let hour = next.fetch_add(1, Ordering::Relaxed);
                if hour >= hours || failure.lock().expect("lock").is_some() {
                    return;
                }
                let first_run = hour * runs_per_hour;
                let start = first_hour + hour * HOUR_NANOS as u64;
                let requests = (0..runs_per_hour)
                    .step_by(args.runs_per_request as usize)
                    .map(|offset| {
                        let count = args.runs_per_request.min(runs_per_hour - offset);
                        workload.request(
                            first_run + offset,
                            count,
                            start + offset * spacing,
                            spacing,
                        )
                    });
                if let Err(e) = write_requests(args, &tenant, requests, &counters) {
                    *failure.lock().expect("lock") = Some(e);
                    return;
                }
                eprint!("\rhour {}/{hours}", hour + 1);
            });
        }
    });
    eprintln!();
    if let Some(e) = failure.into_inner().expect("lock") {
        return Err(e);
    }
    let runs = runs_per_hour * hours;
    let mut large_run_trace_id = None;
    if args.large_run > 0 {
        let run = runs;
        let start = EPOCH_NANOS - HOUR_NANOS as u64;
        let requests = workload.large_run(run, args.large_run, start);
        write_requests(args, &tenant, requests.into_iter(), &counters)?;
        large_run_trace_id = Some(hex(&workload.trace_id(run)));
    }
    // Every span file has its index entries: the index is complete.
    write_file(
        args.store.as_path(),
        &cairn_schema::trace_index::marker(&tenant),
        b"{}",
    )?;
    let sample_trace_ids = (0..20)
        .map(|i| hex(&workload.trace_id(runs * i / 20 + i)))
        .collect();
    Ok(Summary {
        spans: counters.spans.into_inner(),
        runs,
        otlp_bytes: counters.otlp.into_inner(),
        span_file_bytes: counters.span_bytes.into_inner(),
        payload_file_bytes: counters.payload_bytes.into_inner(),
        naive_file_bytes: counters.naive_bytes.into_inner(),
        files: counters.files.into_inner(),
        first_hour_start_nanos: first_hour,
        end_nanos: EPOCH_NANOS,
        large_run_trace_id,
        sample_trace_ids,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_partitioned_store() {
        let dir = std::env::temp_dir().join(format!("cairn-bench-gen-{}", std::process::id()));
        let summary = run(&GenerateArgs {
            store: dir.clone(),
            spans: 2_000,
            hours: 3,
            large_run: 300,
            seed: 3,
            tenant: "bench".into(),
            runs_per_request: 20,
            naive: Some(dir.join("naive")),
        })
        .unwrap();
        assert!(summary.naive_file_bytes > 0);
        assert!(dir.join("naive").read_dir().unwrap().count() >= 3);
        assert!(summary.spans >= 2_300, "{summary:?}");
        let hours: Vec<_> = std::fs::read_dir(dir.join("spans/tenant=bench"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        // Three hours, plus runs spilling over the last hour's end.
        assert!((3..=4).contains(&hours.len()), "{hours:?}");
        assert!(dir.join("payloads/tenant=bench").is_dir());
        assert_eq!(summary.sample_trace_ids.len(), 20);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
