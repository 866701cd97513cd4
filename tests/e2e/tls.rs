//! TLS on every listener, with real clients: the Python OpenTelemetry SDK exporting over gRPC
//! and HTTP with a CA to check the server against, `curl` on the query API, `psql` with
//! `sslmode=verify-full`; plaintext to a TLS port; client certificates (mTLS) on the OTLP
//! listeners; certificates replaced while the server runs; files that cannot be used at start.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::harness::{python_script, run_python, temp_dir, Cairn};

/// Runs `openssl` with `args`, which must succeed.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A certificate for `subject` with a fresh P-256 key, valid for a day, written to `key` and
/// `cert`: self-signed, or signed as `extra` says.
fn new_certificate(subject: &str, key: &str, cert: &str, extra: &[&str]) {
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        subject,
        "-keyout",
        key,
        "-out",
        cert,
    ];
    args.extend_from_slice(extra);
    openssl(&args);
}

/// A certificate authority of a test, and the certificates it signs, as PEM files.
struct Ca {
    dir: PathBuf,
    name: String,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Self {
        let ca = Self {
            dir: dir.to_path_buf(),
            name: name.to_owned(),
        };
        new_certificate(&format!("/CN={name}"), &ca.file("ca.key"), &ca.pem(), &[]);
        ca
    }

    fn file(&self, file: &str) -> String {
        self.dir
            .join(format!("{}-{file}", self.name))
            .display()
            .to_string()
    }

    /// The CA's own certificate.
    fn pem(&self) -> String {
        self.file("ca.pem")
    }

    /// A certificate it signs for `localhost` and 127.0.0.1 with `usage` (`serverAuth` or
    /// `clientAuth`): (certificate, key).
    fn issue(&self, what: &str, usage: &str) -> (String, String) {
        let (cert, key) = (
            self.file(&format!("{what}.pem")),
            self.file(&format!("{what}.key")),
        );
        new_certificate(
            &format!("/CN=localhost/O={what}"),
            &key,
            &cert,
            &[
                "-CA",
                &self.pem(),
                "-CAkey",
                &self.file("ca.key"),
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                &format!("extendedKeyUsage={usage}"),
            ],
        );
        (cert, key)
    }
}

/// `host:port` of a listener as `localhost:port`, the name its certificate has.
fn localhost(addr: &str) -> String {
    let (_, port) = addr.rsplit_once(':').expect("host:port");
    format!("localhost:{port}")
}

/// `curl` with `args`.
fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl")
}

/// `curl` that must succeed; its stdout.
fn curl_ok(args: &[&str]) -> String {
    let out = curl(args);
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The spans of `service` the query API at `https://{http}` counts, through `curl --cacert`.
fn count_over_tls(http: &str, ca: &str, service: &str) -> i64 {
    let body =
        format!(r#"{{"sql":"SELECT count(*) AS n FROM spans WHERE service_name = '{service}'"}}"#);
    let url = format!("https://{}/api/v1/sql", localhost(http));
    let out = curl_ok(&[
        "--cacert",
        ca,
        "-H",
        "content-type: application/json",
        "-d",
        &body,
        &url,
    ]);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("JSON rows");
    rows[0]["n"].as_i64().expect("count")
}

/// Waits until `done` holds (at most 30 s).
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `send_spans.py` with `args`: whether the export succeeded, and what it printed.
fn send_spans(args: &[&str]) -> (bool, String) {
    let script = python_script("send_spans.py");
    let out = Command::new(crate::harness::python())
        .arg(script)
        .args(args)
        // `requests` lets these override the exporter's own CA file.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A counter of the TLS listener's `/metrics`.
fn metric(http: &str, ca: &str, name: &str, labels: &str) -> f64 {
    let text = curl_ok(&[
        "--cacert",
        ca,
        &format!("https://{}/metrics", localhost(http)),
    ]);
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_listener_over_tls_with_real_clients() {
    let dir = temp_dir();
    let ca = Ca::new(dir.path(), "cairn-test-ca");
    let (cert, key) = ca.issue("server", "serverAuth");
    let cairn = Cairn::start(&["--tls-cert", &cert, "--tls-key", &key]);
    let ca_pem = ca.pem();

    // Connections that never start their handshake hold up no one else's.
    let _stalled: Vec<std::net::TcpStream> = [&cairn.grpc, &cairn.otlp_http, &cairn.http]
        .into_iter()
        .map(|addr| std::net::TcpStream::connect(addr.as_str()).unwrap())
        .collect();
    // The Python SDK exports over gRPC and HTTP, checking the server against the CA.
    let mut expected = Vec::new();
    for (protocol, endpoint) in [
        ("grpc", format!("https://{}", localhost(&cairn.grpc))),
        (
            "http-protobuf",
            format!("https://{}/v1/traces", localhost(&cairn.otlp_http)),
        ),
    ] {
        let out = dir
            .path()
            .join(format!("{protocol}.json"))
            .display()
            .to_string();
        let (ok, text) = send_spans(&[
            "--protocol",
            protocol,
            "--endpoint",
            &endpoint,
            "--out",
            &out,
            "--ca",
            &ca_pem,
        ]);
        assert!(ok, "{protocol}: {text}");
        expected.push(out);
    }
    for protocol in ["grpc", "http-protobuf"] {
        let service = format!("py-agent-{protocol}");
        wait_until("spans queryable", || {
            count_over_tls(&cairn.http, &ca_pem, &service) == 3
        });
    }
    // Field by field, read back from the query API over TLS.
    let base = format!("https://{}", localhost(&cairn.http));
    let check = python_script("check_sql.py");
    let mut args = vec![check.to_str().unwrap(), "--query", &base, "--ca", &ca_pem];
    args.extend(expected.iter().map(String::as_str));
    run_python(&args);

    // Plaintext to a TLS port: refused, that connection only.
    for port in [&cairn.http, &cairn.otlp_http] {
        let plain = curl(&[&format!("http://{port}/ready")]);
        assert!(!plain.status.success(), "plaintext answered: {plain:?}");
        let ready = curl_ok(&[
            "--cacert",
            &ca_pem,
            &format!("https://{}/ready", localhost(port)),
        ]);
        assert!(!ready.is_empty());
    }
    let plain_grpc = format!("http://{}", cairn.grpc);
    let out = dir.path().join("plain.json").display().to_string();
    let (ok, text) = send_spans(&[
        "--protocol",
        "grpc",
        "--endpoint",
        &plain_grpc,
        "--out",
        &out,
        "--timeout",
        "3",
    ]);
    assert!(!ok, "a plaintext gRPC export was accepted: {text}");
    // A client that checks against another CA refuses the server.
    let other = Ca::new(dir.path(), "other-ca");
    let wrong = curl(&[
        "--cacert",
        &other.pem(),
        &format!("https://{}/ready", localhost(&cairn.http)),
    ]);
    assert!(!wrong.status.success(), "{wrong:?}");
    let failures = metric(
        &cairn.http,
        &ca_pem,
        "cairn_tls_handshake_failures_total",
        "",
    );
    assert!(failures >= 3.0, "handshake failures counted: {failures}");

    // psql, verifying the certificate and the host name.
    let pg_port = cairn.pg.rsplit_once(':').unwrap().1.to_owned();
    let conninfo = |mode: &str| {
        format!(
            "host=localhost port={pg_port} user=default dbname=cairn sslmode={mode} sslrootcert={ca_pem} connect_timeout=10"
        )
    };
    let psql = |conninfo: String| {
        Command::new("psql")
            .args(["-X", "-At", "-d", &conninfo, "-c"])
            .arg("SELECT count(*) FROM spans")
            .env_remove("PGPASSWORD")
            .output()
            .expect("psql")
    };
    let out = psql(conninfo("verify-full"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.trim() == "6", "{out:?}");
    // Without TLS the Postgres listener refuses with a reason.
    let out = psql(conninfo("disable"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("requires TLS"),
        "{out:?}"
    );

    // Still serving after all of that.
    assert_eq!(count_over_tls(&cairn.http, &ca_pem, "py-agent-grpc"), 3);
    assert!(cairn.stop(), "clean shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn collectors_present_client_certificates() {
    let dir = temp_dir();
    let ca = Ca::new(dir.path(), "cairn-ca");
    let clients = Ca::new(dir.path(), "collectors-ca");
    let strangers = Ca::new(dir.path(), "strangers-ca");
    let (cert, key) = ca.issue("server", "serverAuth");
    let (client_cert, client_key) = clients.issue("collector", "clientAuth");
    let (stranger_cert, stranger_key) = strangers.issue("stranger", "clientAuth");
    let cairn = Cairn::start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-client-ca",
        &clients.pem(),
    ]);
    let ca_pem = ca.pem();

    // OTLP/HTTP: no certificate, or one of another CA, refused; one of the CA accepted.
    let url = format!("https://{}/v1/traces", localhost(&cairn.otlp_http));
    let post = |extra: &[&str]| {
        let mut args = vec![
            "--cacert",
            &ca_pem,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "content-type: application/json",
            "-d",
            "{}",
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args)
    };
    let none = post(&[]);
    assert!(!none.status.success(), "no client certificate: {none:?}");
    let stranger = post(&["--cert", &stranger_cert, "--key", &stranger_key]);
    assert!(
        !stranger.status.success(),
        "another CA's certificate: {stranger:?}"
    );
    let known = post(&["--cert", &client_cert, "--key", &client_key]);
    assert!(known.status.success(), "{known:?}");
    assert_eq!(String::from_utf8_lossy(&known.stdout), "200");

    // OTLP/gRPC with the Python SDK: the same.
    let endpoint = format!("https://{}", localhost(&cairn.grpc));
    let out = dir.path().join("grpc.json").display().to_string();
    let grpc = |extra: &[&str]| {
        let mut args = vec![
            "--protocol",
            "grpc",
            "--endpoint",
            &endpoint,
            "--out",
            &out,
            "--ca",
            &ca_pem,
        ];
        args.extend_from_slice(extra);
        send_spans(&args)
    };
    let (ok, text) = grpc(&["--timeout", "3"]);
    assert!(!ok, "exported without a client certificate: {text}");
    let (ok, text) = grpc(&[
        "--client-cert",
        &stranger_cert,
        "--client-key",
        &stranger_key,
        "--timeout",
        "3",
    ]);
    assert!(!ok, "exported with another CA's certificate: {text}");
    let (ok, text) = grpc(&["--client-cert", &client_cert, "--client-key", &client_key]);
    assert!(ok, "{text}");
    // So did OTLP/HTTP through the SDK.
    let http_out = dir.path().join("http.json").display().to_string();
    let otlp_url = format!("https://{}/v1/traces", localhost(&cairn.otlp_http));
    let (ok, text) = send_spans(&[
        "--protocol",
        "http-protobuf",
        "--endpoint",
        &otlp_url,
        "--out",
        &http_out,
        "--ca",
        &ca_pem,
        "--client-cert",
        &client_cert,
        "--client-key",
        &client_key,
    ]);
    assert!(ok, "{text}");

    // The query API asks for no client certificate.
    wait_until("spans queryable", || {
        count_over_tls(&cairn.http, &ca_pem, "py-agent-grpc") == 3
    });
    assert_eq!(
        count_over_tls(&cairn.http, &ca_pem, "py-agent-http-protobuf"),
        3
    );
    assert!(cairn.stop(), "clean shutdown");
}

/// The certificate and key files Cairn serves, at fixed paths whose content changes.
struct LiveFiles {
    cert: String,
    key: String,
}

impl LiveFiles {
    /// Replaces the files as Kubernetes replaces a mounted Secret's: written aside, then
    /// renamed, the key first.
    fn install(&self, cert: &str, key: &str) {
        for (from, to) in [(key, &self.key), (cert, &self.cert)] {
            let aside = format!("{to}.new");
            std::fs::copy(from, &aside).unwrap();
            std::fs::rename(&aside, to).unwrap();
        }
    }

    /// Installs a new server certificate of `ca`; returns its file.
    fn renew(&self, ca: &Ca) -> String {
        let (cert, key) = ca.issue("server", "serverAuth");
        self.install(&cert, &key);
        cert
    }
}

/// Cairn serving a certificate of the `first` CA from [`LiveFiles`] it checks every
/// `interval`, and a `second` CA to replace it with.
struct Rotation {
    first: Ca,
    second: Ca,
    live: LiveFiles,
    cairn: Cairn,
}

impl Rotation {
    fn start(dir: &Path, interval: &str) -> Self {
        let (first, second) = (Ca::new(dir, "first-ca"), Ca::new(dir, "second-ca"));
        let live = LiveFiles {
            cert: dir.join("tls.crt").display().to_string(),
            key: dir.join("tls.key").display().to_string(),
        };
        live.renew(&first);
        let cairn = Cairn::start(&[
            "--tls-cert",
            &live.cert,
            "--tls-key",
            &live.key,
            "--tls-reload-interval",
            interval,
        ]);
        Self {
            first,
            second,
            live,
            cairn,
        }
    }
}

/// Whether a client trusting only `ca` reaches `/ready` at `addr` over TLS.
fn served_by(addr: &str, ca: &Ca) -> bool {
    let ready = format!("https://{}/ready", localhost(addr));
    curl(&["--cacert", &ca.pem(), &ready]).status.success()
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_reloaded_when_their_files_change() {
    let dir = temp_dir();
    let Rotation {
        first,
        second,
        live,
        cairn,
    } = Rotation::start(dir.path(), "200ms");
    let trusted_by = |ca: &Ca| served_by(&cairn.http, ca);
    assert!(trusted_by(&first) && !trusted_by(&second));

    // A new certificate from another CA: new connections get it.
    let new_cert = live.renew(&second);
    wait_until("the new certificate served", || trusted_by(&second));
    assert!(!trusted_by(&first));
    assert!(
        metric(
            &cairn.http,
            &second.pem(),
            "cairn_tls_reloads_total",
            "outcome=\"ok\""
        ) >= 1.0
    );

    // A key that is not the certificate's: refused, the previous certificate kept.
    let failed = || {
        metric(
            &cairn.http,
            &second.pem(),
            "cairn_tls_reloads_total",
            "outcome=\"failed\"",
        )
    };
    let before = failed();
    let (_, other_key) = first.issue("unrelated", "serverAuth");
    live.install(&new_cert, &other_key);
    wait_until("the bad files noticed", || failed() > before);
    assert!(trusted_by(&second));
    assert!(cairn.stop(), "clean shutdown");
}

#[test]
fn unusable_tls_files_stop_the_start() {
    let dir = temp_dir();
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.issue("server", "serverAuth");
    let (_, other_key) = ca.issue("other", "serverAuth");
    let missing = dir.path().join("missing.pem").display().to_string();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let garbage = garbage.display().to_string();
    let start = |tls: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["serve", "--store", "memory://"])
            .args([
                "--otlp-grpc-addr",
                "127.0.0.1:0",
                "--otlp-http-addr",
                "127.0.0.1:0",
            ])
            .args(["--http-addr", "127.0.0.1:0", "--pg-addr", "127.0.0.1:0"])
            .args(tls)
            .output()
            .expect("run cairn");
        assert!(!out.status.success(), "started with {tls:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let cases: [(&[&str], String); 5] = [
        (
            &["--tls-cert", &missing, "--tls-key", &key],
            format!("--tls-cert {missing}: "),
        ),
        (
            &["--tls-cert", &garbage, "--tls-key", &key],
            format!("--tls-cert {garbage}: no PEM certificate"),
        ),
        (
            &["--tls-cert", &cert, "--tls-key", &other_key],
            format!("--tls-key {other_key}: not the key of the certificate in {cert}"),
        ),
        (
            &["--tls-cert", &cert],
            "--tls-cert and --tls-key are given together".to_owned(),
        ),
        (
            &[
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--tls-client-ca",
                &garbage,
            ],
            format!("--tls-client-ca {garbage}: no PEM certificate"),
        ),
    ];
    for (flags, message) in cases {
        let stderr = start(flags);
        assert!(stderr.contains(&message), "{flags:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_certificate() {
    let dir = temp_dir();
    // Checked only on SIGHUP within the test's time.
    let Rotation {
        first,
        second,
        live,
        cairn,
    } = Rotation::start(dir.path(), "1h");
    let trusted_by = |ca: &Ca| served_by(&cairn.otlp_http, ca);
    assert!(trusted_by(&first));
    live.renew(&second);
    assert!(trusted_by(&first), "reloaded before SIGHUP");
    let hup = Command::new("kill")
        .args(["-HUP", &cairn.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_until("the new certificate served", || trusted_by(&second));
    assert!(cairn.stop(), "SIGHUP does not end the process");
}
