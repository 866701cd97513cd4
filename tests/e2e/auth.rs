//! Authentication attacked as a user with bad intent would: another tenant's token, a token of
//! the wrong role, a header naming another tenant, duplicate headers, expired and revoked
//! tokens, brute-force logins, over OTLP/HTTP, OTLP/gRPC (raw and the Python SDK), the query
//! API and the Postgres wire (psql). Each gets its documented answer, the server stays up, every
//! span acknowledged is queryable, and no token shows in the server's log.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use serde_json::{json, Value};

use crate::bad_input::{request, span};
use crate::harness::{client, metric_at, python_script, run_python, temp_dir};

/// `cairn serve` with its output kept in a file, so tests can read its log.
struct Server {
    child: Child,
    http: String,
    otlp_http: String,
    grpc: String,
    pg: String,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let ready = dir.join(format!("ready-{}.json", extra.len()));
        let log = dir.join("cairn.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.arg("serve");
        if !extra.contains(&"--http-addr") {
            cmd.args(["--http-addr", "127.0.0.1:0"]);
        }
        let mut child = cmd
            .arg("--store")
            .arg(dir.join("data"))
            .args(["--otlp-grpc-addr", "127.0.0.1:0"])
            .args(["--otlp-http-addr", "127.0.0.1:0"])
            .args(["--pg-addr", "127.0.0.1:0"])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .env("CAIRN_LOG", "debug")
            .env("CAIRN_FLUSH_INTERVAL", "200ms")
            .env("CAIRN_ACK", "stored")
            .env("CAIRN_COMPACTION", "off")
            .env("CAIRN_WAL_DIR", dir.join("wal"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn cairn");
        let deadline = Instant::now() + Duration::from_secs(30);
        let addrs: Value = loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "cairn exited early ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if let Some(v) = std::fs::read_to_string(&ready)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
            {
                break v;
            }
            assert!(Instant::now() < deadline, "cairn did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        };
        let get = |k: &str| addrs[k].as_str().unwrap_or_default().to_owned();
        Self {
            http: get("http"),
            otlp_http: get("otlp_http"),
            grpc: get("otlp_grpc"),
            pg: get("pg"),
            log,
            child,
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The log so far, without its colours.
    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap();
        let mut plain = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find('\x1b') {
            plain.push_str(&rest[..at]);
            rest = &rest[at..];
            rest = rest.find('m').map_or("", |end| &rest[end + 1..]);
        }
        plain.push_str(rest);
        plain
    }

    /// `cairn_<name>` summed over lines with `labels`, from the OTLP/HTTP port's `/metrics`.
    async fn metric(&self, name: &str, labels: &str) -> f64 {
        metric_at(&self.otlp_http, name, labels).await
    }

    /// An OTLP/JSON export of one span named `name`: (status, headers, body).
    async fn export(&self, token: Option<&str>, tenant: Option<&str>, name: &str) -> Answer {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let trace = format!("{:032x}", now ^ 0x5a5a);
        let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": trace, "spanId": "00f067aa0ba902b7", "name": name,
            "startTimeUnixNano": now.to_string(), "endTimeUnixNano": (now + 1000).to_string(),
        }]}]}]});
        let req = with(
            client()
                .post(format!("http://{}/v1/traces", self.otlp_http))
                .header("content-type", "application/json")
                .body(body.to_string()),
            token,
            tenant,
        );
        answer(req).await
    }

    async fn sql(&self, token: Option<&str>, tenant: Option<&str>, sql: &str) -> Answer {
        let req = client()
            .post(format!("http://{}/api/v1/sql", self.http))
            .json(&json!({ "sql": sql }));
        answer(with(req, token, tenant)).await
    }

    /// `GET /api/v1/whoami` with `token`, naming `tenant`.
    async fn whoami(&self, token: Option<&str>, tenant: Option<&str>) -> Answer {
        let req = client().get(format!("http://{}/api/v1/whoami", self.http));
        answer(with(req, token, tenant)).await
    }

    /// The names of `tenant`'s spans, read with `token`.
    async fn names(&self, token: &str, tenant: Option<&str>) -> Vec<String> {
        let a = self
            .sql(Some(token), tenant, "SELECT name FROM spans ORDER BY name")
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    /// Asserts the status and the error message (`error` of the query API, `message` of
    /// OTLP's `google.rpc.Status`).
    fn refused(&self, status: u16, message: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        let text = self.body["error"]
            .as_str()
            .or_else(|| self.body["message"].as_str());
        assert_eq!(text, Some(message), "{}", self.body);
        let challenge = self
            .headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap());
        assert_eq!(
            challenge,
            (status == 401).then_some("Bearer realm=\"cairn\"")
        );
    }
}

fn with(
    mut req: reqwest::RequestBuilder,
    token: Option<&str>,
    tenant: Option<&str>,
) -> reqwest::RequestBuilder {
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(tenant) = tenant {
        req = req.header("X-Scope-OrgID", tenant);
    }
    req
}

async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// `cairn token <args> --auth-tokens <file>`: its stdout, trimmed (the token, for create).
fn token_cmd(file: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("token")
        .args(args)
        .arg("--auth-tokens")
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn create(file: &Path, tenant: &str, role: &str) -> String {
    let token = token_cmd(file, &["create", "--tenant", tenant, "--role", role]);
    assert!(token.starts_with("cairn_") && token.len() == 87, "{token}");
    token
}

/// Many `cairn token create` at once, each adding to the same file: every token is kept.
#[test]
fn auth_token_creates_at_once_all_count() {
    let dir = temp_dir();
    let file = dir.path().join("tokens.toml");
    let children: Vec<_> = (0..16)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_cairn"))
                .args(["token", "create", "--tenant", "acme", "--role", "read"])
                .args(["--name", &format!("parallel-{i}")])
                .arg("--auth-tokens")
                .arg(&file)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let ids: Vec<String> = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let token = String::from_utf8(out.stdout).unwrap();
            token.trim()["cairn_".len().."cairn_".len() + 16].to_owned()
        })
        .collect();
    let listed = token_cmd(&file, &["list"]);
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), ids.len(), "{listed}");
    for id in &ids {
        assert!(
            rows.iter().any(|row| row.starts_with(id.as_str())),
            "{id} missing:\n{listed}"
        );
    }
}

/// A raw HTTP/1.1 request (clients merge repeated headers; this sends them as written).
fn raw_http(addr: &str, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

fn psql(addr: &str, user: &str, password: &str, sql: &str) -> (bool, String) {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new("psql")
        .args([
            "-X", "-h", host, "-p", port, "-U", user, "-d", "cairn", "-At",
        ])
        .args(["-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("run psql");
    let text = String::from_utf8_lossy(if out.status.success() {
        &out.stdout
    } else {
        &out.stderr
    });
    (out.status.success(), text.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_attacks_over_http_and_postgres() {
    let dir = temp_dir();
    let file = dir.path().join("tokens.toml");
    let expired = token_cmd(
        &file,
        &[
            "create",
            "--tenant",
            "acme",
            "--role",
            "read",
            "--expires",
            "1s",
        ],
    );
    let ingest = create(&file, "acme", "ingest");
    let read = create(&file, "acme", "read");
    let globex_ingest = create(&file, "globex", "ingest");
    let globex_read = create(&file, "globex", "read");
    let admin = token_cmd(&file, &["create", "--role", "admin", "--name", "ops"]);
    let doomed = create(&file, "acme", "read");
    // Past its expiry by the time the server reads the file.
    std::thread::sleep(Duration::from_millis(1100));
    let mut server = Server::start(dir.path(), &["--auth-tokens", file.to_str().unwrap()]);

    // OTLP/HTTP: the token's tenant, only for ingest or admin.
    assert_eq!(server.export(Some(&ingest), None, "a1").await.status, 200);
    assert_eq!(
        server
            .export(Some(&ingest), Some("acme"), "a2")
            .await
            .status,
        200
    );
    assert_eq!(
        server.export(Some(&globex_ingest), None, "g1").await.status,
        200
    );
    assert_eq!(
        server
            .export(Some(&admin), Some("globex"), "g2-admin")
            .await
            .status,
        200
    );
    server
        .export(None, None, "x")
        .await
        .refused(401, "missing token: send `Authorization: Bearer <token>`");
    server.export(Some(&read), None, "x").await.refused(
        403,
        "a token of role read may not export spans (needs role ingest or admin)",
    );
    server
        .export(Some(&ingest), Some("globex"), "x")
        .await
        .refused(403, "the token is for tenant \"acme\", not \"globex\"");
    server
        .export(Some(&expired), None, "x")
        .await
        .refused(401, "token expired");

    // The query API: read or admin, of the token's tenant.
    let me = server.whoami(Some(&read), None).await;
    assert_eq!(
        (me.status, me.body),
        (200, json!({"tenant": "acme", "role": "read"}))
    );
    let me = server.whoami(Some(&admin), Some("globex")).await;
    assert_eq!(
        (me.status, me.body),
        (200, json!({"tenant": "globex", "role": "admin"}))
    );
    server
        .whoami(None, None)
        .await
        .refused(401, "missing token: send `Authorization: Bearer <token>`");
    assert_eq!(server.names(&read, None).await, ["a1", "a2"]);
    assert_eq!(server.names(&globex_read, None).await, ["g1", "g2-admin"]);
    let q = "SELECT count(*) AS n FROM spans";
    server
        .sql(None, None, q)
        .await
        .refused(401, "missing token: send `Authorization: Bearer <token>`");
    server.sql(Some(&ingest), None, q).await.refused(
        403,
        "a token of role ingest may not read (needs role read or admin)",
    );
    server
        .sql(Some(&globex_read), Some("acme"), q)
        .await
        .refused(403, "the token is for tenant \"globex\", not \"acme\"");
    server
        .sql(Some(&expired), None, q)
        .await
        .refused(401, "token expired");
    let forged = format!("{}{}", &read[..23], "0".repeat(64));
    server
        .sql(Some(&forged), None, q)
        .await
        .refused(401, "invalid token");
    server
        .sql(Some("hunter2"), None, q)
        .await
        .refused(401, "invalid token");
    for path in [
        "/api/v1/runs",
        "/tempo/api/search",
        "/api/v1/traces/0af7651916cd43dd8448eb211c80319c",
    ] {
        let a = answer(client().get(format!("http://{}{path}", server.http))).await;
        a.refused(401, "missing token: send `Authorization: Bearer <token>`");
    }
    // Open without a token: probes, metrics and the UI's assets.
    for path in ["/ready", "/live", "/metrics", "/health", "/"] {
        let resp = client()
            .get(format!("http://{}{path}", server.http))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    // An admin reads any tenant it names, and its own by default.
    assert_eq!(server.names(&admin, Some("acme")).await, ["a1", "a2"]);
    assert_eq!(
        server.names(&admin, Some("globex")).await,
        ["g1", "g2-admin"]
    );
    assert!(server.names(&admin, None).await.is_empty());

    // Repeated headers, as a proxy that checks one of them would let through: refused.
    let dup_auth = format!(
        "POST /api/v1/sql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {globex_read}\r\n\
         Authorization: Bearer {read}\r\nContent-Type: application/json\r\nContent-Length: 19\r\n\
         Connection: close\r\n\r\n{{\"sql\": \"SELECT 1\"}}"
    );
    let reply = raw_http(&server.http, &dup_auth);
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    assert!(
        reply.ends_with(
            "{\"error\":\"the Authorization header is given more than once; send it once\"}"
        ),
        "{reply}"
    );
    let dup_tenant = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
         X-Scope-OrgID: acme\r\nX-Scope-OrgID: globex\r\nContent-Type: application/json\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    let reply = raw_http(&server.otlp_http, &dup_tenant);
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    assert!(
        reply.ends_with(
            "{\"code\":3,\"message\":\"the X-Scope-OrgID header is given more than once; send it once\"}"
        ),
        "{reply}"
    );

    // Postgres: the password is the token, the user the tenant.
    let pg = server.pg.clone();
    assert_eq!(
        psql(&pg, "acme", &read, "SELECT name FROM spans ORDER BY name"),
        (true, "a1\na2".to_owned())
    );
    assert_eq!(
        psql(&pg, "globex", &admin, "SELECT count(*) FROM spans"),
        (true, "2".to_owned())
    );
    let (ok, err) = psql(&pg, "acme", "wrong", "SELECT 1");
    assert!(!ok);
    assert!(
        err.ends_with("FATAL:  password authentication failed for user \"acme\": invalid token"),
        "{err}"
    );
    let (ok, err) = psql(&pg, "globex", &read, "SELECT 1");
    assert!(!ok);
    assert!(
        err.ends_with("FATAL:  the token is for tenant \"acme\", not \"globex\""),
        "{err}"
    );
    let (ok, err) = psql(&pg, "acme", &ingest, "SELECT 1");
    assert!(!ok);
    assert!(
        err.ends_with("FATAL:  a token of role ingest may not read (needs role read or admin)"),
        "{err}"
    );

    // Revoked while the server runs: it stops working without a signal, and stays listed.
    assert_eq!(server.names(&doomed, None).await, ["a1", "a2"]);
    let id = &doomed[6..22];
    let said = token_cmd(&file, &["revoke", id]);
    assert!(
        said.starts_with(&format!("revoked token {id} at ")),
        "{said}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let revoked = loop {
        let a = server.sql(Some(&doomed), None, q).await;
        if a.status != 200 || Instant::now() > deadline {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    revoked.refused(401, "token revoked");
    let (ok, err) = psql(&pg, "acme", &doomed, "SELECT 1");
    assert!(!ok && err.ends_with("\"acme\": token revoked"), "{err}");
    let listed = token_cmd(&file, &["list"]);
    let row = listed.lines().find(|l| l.starts_with(id)).unwrap();
    assert!(row.contains("acme") && row.contains("read"), "{listed}");
    assert_eq!(row.split_whitespace().count(), 5, "{row}");
    assert!(!listed.contains("argon2") && !listed.contains(&doomed[23..]));

    // A token file that no longer parses keeps the tokens in force.
    std::fs::write(&file, "[[token]]\nid = 1\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.log().contains("token file not re-read") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.log().contains("token file not re-read"));
    assert_eq!(server.names(&read, None).await, ["a1", "a2"]);

    // Still up, nothing acknowledged lost, failures counted, no token in the log.
    assert!(server.alive());
    assert_eq!(server.names(&admin, Some("acme")).await, ["a1", "a2"]);
    assert_eq!(
        server.names(&admin, Some("globex")).await,
        ["g1", "g2-admin"]
    );
    assert!(
        server
            .metric("cairn_auth_failures_total", "reason=\"forbidden\"")
            .await
            >= 6.0
    );
    assert_eq!(
        server
            .metric("cairn_auth_failures_total", "reason=\"revoked\"")
            .await,
        2.0
    );
    let log = server.log();
    assert!(
        log.contains("authentication on: every request needs a bearer token"),
        "{log}"
    );
    for token in [
        &expired,
        &ingest,
        &read,
        &globex_ingest,
        &globex_read,
        &admin,
        &doomed,
    ] {
        assert!(!log.contains(&token[23..]), "a token secret is in the log");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_grpc_raw_and_python_sdk() {
    let dir = temp_dir();
    let file = dir.path().join("tokens.toml");
    let ingest = create(&file, "acme", "ingest");
    let read = create(&file, "acme", "read");
    let mut server = Server::start(dir.path(), &["--auth-tokens", file.to_str().unwrap()]);
    let mut grpc = TraceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let call = |token: Option<&str>, extra: Option<&str>, name: &str| {
        let mut req = tonic::Request::new(request(vec![span([7; 16], name.len() as u8, name)]));
        if let Some(token) = token {
            req.metadata_mut()
                .append("authorization", format!("Bearer {token}").parse().unwrap());
        }
        if let Some(token) = extra {
            req.metadata_mut()
                .append("authorization", format!("Bearer {token}").parse().unwrap());
        }
        req
    };
    grpc.export(call(Some(&ingest), None, "grpc-ok"))
        .await
        .expect("export with an ingest token");
    let refused = |r: Result<_, tonic::Status>| r.expect_err("refused");
    let e = refused(grpc.export(call(None, None, "x")).await);
    assert_eq!(
        (e.code(), e.message()),
        (
            tonic::Code::Unauthenticated,
            "missing token: send `Authorization: Bearer <token>`"
        )
    );
    let e = refused(grpc.export(call(Some(&read), None, "x")).await);
    assert_eq!(
        (e.code(), e.message()),
        (
            tonic::Code::PermissionDenied,
            "a token of role read may not export spans (needs role ingest or admin)"
        )
    );
    let e = refused(grpc.export(call(Some(&ingest), Some(&read), "x")).await);
    assert_eq!(
        (e.code(), e.message()),
        (
            tonic::Code::InvalidArgument,
            "the Authorization header is given more than once; send it once"
        )
    );
    let mut other = call(Some(&ingest), None, "x");
    other
        .metadata_mut()
        .insert("x-scope-orgid", "globex".parse().unwrap());
    let e = refused(grpc.export(other).await);
    assert_eq!(
        (e.code(), e.message()),
        (
            tonic::Code::PermissionDenied,
            "the token is for tenant \"acme\", not \"globex\""
        )
    );

    // The Python SDK's own exporters with `headers=`.
    let send = python_script("send_spans.py");
    for (protocol, endpoint) in [
        ("grpc", format!("http://{}", server.grpc)),
        (
            "http-protobuf",
            format!("http://{}/v1/traces", server.otlp_http),
        ),
    ] {
        let out = dir.path().join(format!("{protocol}.json"));
        run_python(&[
            send.to_str().unwrap(),
            "--protocol",
            protocol,
            "--endpoint",
            &endpoint,
            "--out",
            out.to_str().unwrap(),
            "--token",
            &ingest,
        ]);
    }
    assert!(server.alive());
    let names = server.names(&read, None).await;
    assert_eq!(names.len(), 1 + 2 * 3, "{names:?}");
    assert!(names.contains(&"grpc-ok".to_owned()));
    let log = server.log();
    assert!(!log.contains(&ingest[23..]) && !log.contains(&read[23..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_brute_force_is_rate_limited_then_recovers() {
    let dir = temp_dir();
    let file = dir.path().join("tokens.toml");
    let ingest = create(&file, "acme", "ingest");
    let read = create(&file, "acme", "read");
    let mut server = Server::start(
        dir.path(),
        &[
            "--auth-tokens",
            file.to_str().unwrap(),
            "--auth-attempts-per-minute",
            "5",
        ],
    );
    // A client that logged in before the attack keeps working (its token is verified).
    assert_eq!(
        server.export(Some(&ingest), None, "before").await.status,
        200
    );
    for i in 0..4 {
        let guess = format!("{}{:064x}", &read[..23], i);
        server
            .sql(Some(&guess), None, "SELECT 1")
            .await
            .refused(401, "invalid token");
    }
    let locked = server.sql(Some("cairn_guess"), None, "SELECT 1").await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    let wait: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&wait), "{wait}");
    assert_eq!(
        locked.body["error"],
        format!("too many failed logins from this address; retry in {wait} s")
    );
    let mut grpc = TraceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let mut req = tonic::Request::new(request(vec![span([8; 16], 1, "x")]));
    req.metadata_mut()
        .insert("authorization", "Bearer cairn_guess".parse().unwrap());
    let e = grpc.export(req).await.expect_err("rate limited");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    use tonic_types::StatusExt;
    let retry = e.get_details_retry_info().expect("RetryInfo");
    assert!(retry.retry_delay.is_some_and(|d| d.as_secs() >= 1));
    // Unverified tokens wait too, even valid ones; the verified one does not.
    assert_eq!(server.sql(Some(&read), None, "SELECT 1").await.status, 429);
    assert_eq!(
        server.export(Some(&ingest), None, "during").await.status,
        200
    );
    // Recovery: once a cell refills, the valid token works.
    let deadline = Instant::now() + Duration::from_secs(60);
    let names = loop {
        let a = server
            .sql(Some(&read), None, "SELECT name FROM spans ORDER BY name")
            .await;
        if a.status != 429 || Instant::now() > deadline {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(names.status, 200, "{}", names.body);
    assert_eq!(names.body, json!([{"name": "before"}, {"name": "during"}]));
    assert!(server.alive());
    assert!(server.metric("cairn_auth_rate_limited_total", "").await >= 3.0);
    assert_eq!(
        server
            .metric("cairn_auth_failures_total", "reason=\"invalid\"")
            .await,
        4.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_off_refuses_duplicate_headers_and_warns_on_open_listeners() {
    let dir = temp_dir();
    let mut server = Server::start(dir.path(), &["--http-addr", "0.0.0.0:0"]);
    let port = server.http.rsplit_once(':').unwrap().1.to_owned();
    let http = format!("127.0.0.1:{port}");
    let reply = raw_http(
        &http,
        "POST /api/v1/sql HTTP/1.1\r\nHost: x\r\nX-Scope-OrgID: acme\r\nX-Scope-OrgID: globex\r\n\
         Content-Type: application/json\r\nContent-Length: 19\r\nConnection: close\r\n\r\n\
         {\"sql\": \"SELECT 1\"}",
    );
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    assert!(
        reply.ends_with(
            "{\"error\":\"the X-Scope-OrgID header is given more than once; send it once\"}"
        ),
        "{reply}"
    );
    let mut grpc = TraceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let mut req = tonic::Request::new(request(vec![span([9; 16], 1, "x")]));
    req.metadata_mut()
        .append("x-scope-orgid", "acme".parse().unwrap());
    req.metadata_mut()
        .append("x-scope-orgid", "globex".parse().unwrap());
    let e = grpc.export(req).await.expect_err("duplicate tenant");
    assert_eq!(
        (e.code(), e.message()),
        (
            tonic::Code::InvalidArgument,
            "the X-Scope-OrgID header is given more than once; send it once"
        )
    );
    // One value: as without auth, the tenant it names.
    let mut req = tonic::Request::new(request(vec![span([9; 16], 2, "kept")]));
    req.metadata_mut()
        .insert("x-scope-orgid", "acme".parse().unwrap());
    grpc.export(req).await.expect("export");
    let rows = answer(
        client()
            .post(format!("http://{http}/api/v1/sql"))
            .header("X-Scope-OrgID", "acme")
            .json(&json!({"sql": "SELECT name FROM spans"})),
    )
    .await;
    assert_eq!(rows.body, json!([{"name": "kept"}]));
    assert!(server.alive());
    let log = server.log();
    let warning = log
        .lines()
        .find(|l| l.contains("AUTHENTICATION IS OFF"))
        .unwrap_or_else(|| panic!("no warning in\n{log}"));
    // Only the listener open to other hosts is named.
    assert!(
        warning.ends_with(&format!(" listeners=0.0.0.0:{port}")),
        "{warning}"
    );
}
