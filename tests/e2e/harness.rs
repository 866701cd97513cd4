//! Starts `cairn serve` as a child process on free loopback ports and talks to its APIs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running Cairn.
pub struct Cairn {
    child: Child,
    pub grpc: String,
    pub otlp_http: String,
    pub http: String,
    /// The Postgres wire listener (empty when off or for roles without a query API).
    pub pg: String,
    /// Where this process serves `/metrics`.
    pub metrics: String,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh temporary directory.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

impl Cairn {
    /// `cairn serve` on a fresh local store.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_with_env(extra, &[])
    }

    /// `cairn serve` on a fresh local store, with extra environment.
    pub fn start_with_env(extra: &[&str], envs: &[(&str, &str)]) -> Self {
        let dir = temp_dir();
        let store = dir.path().join("data").display().to_string();
        let mut cairn = Self::start_on(&store, extra, envs);
        cairn._dir = Some(dir);
        cairn
    }

    /// `cairn serve` on `store`, with extra flags and environment. Exports are acknowledged once
    /// stored unless `extra` says `--ack wal`; compaction is off unless it says `--compaction on`; the write-ahead log lives beside a local store
    /// (so that it survives restarts), else in the temporary directory.
    pub fn start_on(store: &str, extra: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::start_role("serve", store, extra, envs)
    }

    /// `cairn <role>` (`serve`, `collector`, `query` or `compact`) on `store`, as
    /// [`Self::start_on`]; the addresses of the ports the role does not open are empty.
    pub fn start_role(role: &str, store: &str, extra: &[&str], envs: &[(&str, &str)]) -> Self {
        let wal_dir = if store.contains("://") {
            std::env::temp_dir()
                .join(format!("cairn-wal-{}-{}", std::process::id(), unique()))
                .display()
                .to_string()
        } else {
            format!("{store}-wal")
        };
        let ready = std::env::temp_dir().join(format!(
            "cairn-ready-{}-{}.json",
            std::process::id(),
            unique()
        ));
        let _ = std::fs::remove_file(&ready);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.args([role, "--store", store]);
        // Free ports unless the test names its own.
        if !extra.contains(&"--otlp-grpc-addr") {
            cmd.args(["--otlp-grpc-addr", "127.0.0.1:0"]);
        }
        if !extra.contains(&"--pg-addr") {
            cmd.args(["--pg-addr", "127.0.0.1:0"]);
        }
        cmd.args(["--otlp-http-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .env("CAIRN_LOG", "info")
            .env("CAIRN_FLUSH_INTERVAL", "200ms")
            .env("CAIRN_ACK", "stored")
            // Tests that compact say so; the others count files.
            .env("CAIRN_COMPACTION", "off")
            .env("CAIRN_WAL_DIR", &wal_dir)
            .stdin(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn cairn");
        let addrs = wait_for_file(&ready, &mut child, Duration::from_secs(30));
        let _ = std::fs::remove_file(&ready);
        let get = |k: &str| addrs[k].as_str().unwrap_or_default().to_owned();
        let (otlp_http, http) = (get("otlp_http"), get("http"));
        let metrics = match role {
            "compact" => get("metrics"),
            "query" => http.clone(),
            _ => otlp_http.clone(),
        };
        Self {
            child,
            grpc: get("otlp_grpc"),
            otlp_http,
            http,
            pg: get("pg"),
            metrics,
            _dir: None,
        }
    }

    /// Sends one OTLP/JSON export over HTTP and asserts that it was accepted.
    pub async fn send_json(&self, body: String) {
        let resp = client()
            .post(format!("http://{}/v1/traces", self.otlp_http))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    }

    /// The value of a counter (summed over labels matching `labels`) on `/metrics`.
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        metric_at(&self.metrics, name, labels).await
    }

    /// Stops with SIGTERM and waits; returns whether it exited cleanly.
    pub fn stop(mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.success();
            }
            if Instant::now() > deadline {
                panic!("cairn did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Is the process still running?
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// `POST /api/v1/sql` as `tenant`: (status, body).
    pub async fn sql_raw(&self, tenant: Option<&str>, sql: &str, accept: &str) -> (u16, Vec<u8>) {
        let mut req = client()
            .post(format!("http://{}/api/v1/sql", self.http))
            .header("accept", accept)
            .json(&serde_json::json!({ "sql": sql }));
        if let Some(t) = tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        let resp = req.send().await.expect("sql request");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.expect("body").to_vec())
    }

    /// Rows of a query that must succeed.
    pub async fn sql(&self, tenant: Option<&str>, sql: &str) -> Vec<Value> {
        let (status, body) = self.sql_raw(tenant, sql, "application/json").await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "{sql}: {text}");
        match serde_json::from_slice(&body).expect("JSON rows") {
            Value::Array(rows) => rows,
            other => panic!("not rows: {other}"),
        }
    }

    /// Waits until `count(*)` of `from_where` reaches `n` (spans acknowledged to the log become
    /// visible at the next flush); returns the last count seen.
    pub async fn wait_for_count(&self, tenant: Option<&str>, from_where: &str, n: i64) -> i64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let c = self.count(tenant, from_where).await;
            if c >= n || Instant::now() > deadline {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `count(*)` of a query's FROM/WHERE.
    pub async fn count(&self, tenant: Option<&str>, from_where: &str) -> i64 {
        let rows = self
            .sql(tenant, &format!("SELECT count(*) AS n FROM {from_where}"))
            .await;
        rows[0]["n"].as_i64().expect("count")
    }

    /// `GET /api/v1/runs/{id}`, the run trail, which must succeed.
    pub async fn run(&self, tenant: Option<&str>, trace_id: &str) -> Value {
        let (status, body) = self.get(tenant, &format!("/api/v1/runs/{trace_id}")).await;
        assert_eq!(status, 200, "run {trace_id}: {body}");
        body
    }

    /// `GET path` of the query API: (status, JSON body or null).
    pub async fn get(&self, tenant: Option<&str>, path: &str) -> (u16, Value) {
        let mut req = client().get(format!("http://{}{path}", self.http));
        if let Some(t) = tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `GET /api/v1/traces/{id}`: (status, JSON body).
    pub async fn trace(&self, tenant: Option<&str>, trace_id: &str) -> (u16, Value) {
        let mut req = client().get(format!("http://{}/api/v1/traces/{trace_id}", self.http));
        if let Some(t) = tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        let resp = req.send().await.expect("trace request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON"))
    }

    pub async fn healthy(&self) -> bool {
        client()
            .get(format!("http://{}/health", self.http))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }
}

impl Drop for Cairn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn wait_for_file(path: &Path, child: &mut Child, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("cairn exited before it was ready: {status}");
        }
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(v) = serde_json::from_str(&text) {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "cairn did not become ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The text `/metrics` of `addr` serves.
pub async fn metrics_text(addr: &str) -> String {
    client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of a metric `name` (summed over lines matching `labels`) on `/metrics` at `addr`.
pub async fn metric_at(addr: &str, name: &str, labels: &str) -> f64 {
    metrics_text(addr)
        .await
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter(|l| l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Every `.parquet` file below `dir`.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    files_ending(dir, "parquet")
}

/// Every file under `dir` (recursively) with the extension `extension`.
pub fn files_ending(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == extension) {
                out.push(p);
            }
        }
    }
    out
}

/// The Python with `tests/python/requirements.txt` installed.
pub fn python() -> PathBuf {
    std::env::var_os("CAIRN_TEST_PYTHON")
        .map(PathBuf::from)
        .expect("CAIRN_TEST_PYTHON must name a Python with tests/python/requirements.txt installed (.ci/run makes one)")
}

/// A script of `tests/python`.
pub fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// Runs Python with `args`; panics with its output unless it succeeds; returns its stdout.
pub fn run_python(args: &[&str]) -> String {
    let out = Command::new(python())
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{args:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The entries of `tenant`'s trace index in the store at `store`, as readers see them: (trace
/// id, hour since the epoch), sorted.
pub async fn index_entries(store: &str, tenant: &str) -> Vec<(String, i64)> {
    index_rows(store, tenant)
        .await
        .into_iter()
        .map(|(id, hour, _)| (id, hour))
        .collect()
}

/// The trace index entries of `tenant` with the payload hours of each (`None`: not known),
/// sorted.
pub async fn index_rows(store: &str, tenant: &str) -> Vec<(String, i64, Option<Vec<i64>>)> {
    use arrow::array::{Array, AsArray};
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let raw = cairn_store::open(store).expect("store");
    let visible = cairn_store::visible::VisibleStore::new(raw.clone());
    let dir = cairn_schema::trace_index::dir(&cairn_schema::tenant::Tenant::new(tenant).unwrap());
    let files: Vec<object_store::ObjectMeta> =
        visible.list(Some(&dir)).try_collect().await.unwrap();
    let mut out = Vec::new();
    for f in files {
        let bytes = raw.get(&f.location).await.unwrap().bytes().await.unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let ids = batch.column(0).as_string::<i32>();
            let hours = batch
                .column(1)
                .as_primitive::<arrow::datatypes::Int64Type>();
            let payloads = batch
                .column_by_name(cairn_schema::trace_index::column::PAYLOAD_HOURS)
                .map(|c| c.as_list::<i32>().clone());
            for i in 0..batch.num_rows() {
                let payload_hours = payloads.as_ref().filter(|p| p.is_valid(i)).map(|p| {
                    p.value(i)
                        .as_primitive::<arrow::datatypes::Int64Type>()
                        .values()
                        .to_vec()
                });
                out.push((ids.value(i).to_owned(), hours.value(i), payload_hours));
            }
        }
    }
    out.sort();
    out
}
