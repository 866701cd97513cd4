//! The Postgres wire listener, driven by real Postgres clients: psql and libpq through psycopg
//! (replaying Grafana's PostgreSQL data source), with a password and TLS, and its failure paths:
//! writes, syntax errors, the memory and time limits, another tenant's rows, garbage bytes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::agent_run::{send_agent_runs, Transport};
use crate::harness::{python_script, run_python, temp_dir, Cairn};

/// psql's exit status, stdout and stderr for `args` as `user` against `addr`, with extra
/// environment (`PGPASSWORD`, `PGSSLMODE` …). Errors are printed with their SQLSTATE.
fn psql(addr: &str, user: &str, args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let out = Command::new("psql")
        .args(["-X", "-h", host, "-p", port, "-U", user, "-d", "cairn"])
        .args(["-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose"])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD")
        .envs(envs.iter().copied())
        .output()
        .expect("run psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// psql's output for `sql`, which must succeed.
pub(crate) fn query(addr: &str, user: &str, sql: &str) -> String {
    let (ok, stdout, stderr) = psql(addr, user, &["-c", sql], &[]);
    assert!(ok, "{sql}: {stderr}");
    stdout
}

/// The error psql prints for `sql`, which must fail.
fn refusal(addr: &str, user: &str, sql: &str) -> String {
    let (ok, stdout, stderr) = psql(addr, user, &["-c", sql], &[]);
    assert!(!ok, "{sql} answered: {stdout}");
    stderr
}

#[tokio::test(flavor = "multi_thread")]
async fn grafana_and_psql_over_the_postgres_wire() {
    let cairn = Cairn::start(&["--query-memory", "96MiB", "--query-timeout", "3s"]);
    send_agent_runs(
        &cairn,
        Transport::HttpProtobuf { gzip: false },
        Some("acme"),
        "acme-svc",
        2,
    )
    .await;
    send_agent_runs(
        &cairn,
        Transport::HttpProtobuf { gzip: false },
        Some("globex"),
        "globex-svc",
        1,
    )
    .await;
    assert!(cairn.wait_for_count(Some("acme"), "spans", 1).await > 0);
    assert!(cairn.wait_for_count(Some("globex"), "spans", 1).await > 0);
    let pg = cairn.pg.as_str();
    let (host, port) = pg.rsplit_once(':').unwrap();

    // Grafana's data source, replayed with libpq's simple protocol.
    let script = python_script("pg_grafana.py");
    let out = run_python(&[script.to_str().unwrap(), host, port, "acme"]);
    assert_eq!(out.trim(), "ok");

    // psql's catalog commands and a query.
    let tables = query(pg, "acme", r"\dt");
    assert!(
        tables.contains("spans") && tables.contains("payloads"),
        "{tables}"
    );
    let views = query(pg, "acme", r"\dv");
    assert!(
        views.contains("runs") && views.contains("tool_calls"),
        "{views}"
    );
    let spans = query(pg, "acme", r"\d spans");
    assert!(
        spans.contains("start_time") && spans.contains("timestamp with time zone"),
        "{spans}"
    );
    let services = query(
        pg,
        "acme",
        "SELECT DISTINCT service_name FROM spans ORDER BY 1",
    );
    assert!(
        services.contains("acme-svc") && services.contains("(1 row)"),
        "{services}"
    );
    // The tenant may also be named by a startup option.
    let (ok, globex, stderr) = psql(
        pg,
        "grafana",
        &["-c", "SELECT DISTINCT service_name FROM spans"],
        &[("PGOPTIONS", "-c cairn.tenant=globex")],
    );
    assert!(ok, "{stderr}");
    assert!(
        globex.contains("globex-svc") && !globex.contains("acme-svc"),
        "{globex}"
    );
    // Another tenant's rows are invisible, whatever the statement.
    let isolated = query(
        pg,
        "globex",
        "SELECT count(*) AS n FROM spans WHERE service_name = 'acme-svc' \
         UNION ALL SELECT count(*) FROM runs WHERE service_name = 'acme-svc'",
    );
    assert_eq!(isolated.matches(" 0\n").count(), 2, "{isolated}");
    // A union whose text columns run as another string type than its schema says (a typed
    // NULL beside a column) is sent as the schema says.
    let union = query(
        pg,
        "acme",
        "SELECT service_name AS s, name AS n FROM spans WHERE service_name = 'acme-svc' \
         UNION ALL SELECT 'none', CAST(NULL AS VARCHAR) ORDER BY 1 LIMIT 2",
    );
    assert!(
        union.contains("acme-svc") && union.contains("(2 rows)"),
        "{union}"
    );
    // Without a certificate, TLS is declined (`N`): `prefer` goes on in the clear.
    let (ok, _, stderr) = psql(pg, "acme", &["-c", "SELECT 1"], &[("PGSSLMODE", "require")]);
    assert!(!ok && stderr.contains("does not support SSL"), "{stderr}");
    let invalid = refusal(pg, "no/such tenant", "SELECT 1");
    assert!(
        invalid.contains("\"no/such tenant\" is not a tenant"),
        "{invalid}"
    );

    // Writes are refused as in a read-only transaction; settings of the engine too.
    for write in [
        "INSERT INTO spans (name) VALUES ('x')",
        "CREATE TABLE t (a INT)",
        "COPY spans TO '/tmp/cairn-pg-copy'",
        "DROP TABLE spans",
        "SET datafusion.execution.target_partitions = 1",
    ] {
        let e = refusal(pg, "acme", write);
        assert!(e.contains("ERROR:  25006"), "{write}: {e}");
    }
    assert!(!std::path::Path::new("/tmp/cairn-pg-copy").exists());
    let e = refusal(pg, "acme", "SELEC 1");
    assert!(e.contains("ERROR:  42601"), "{e}");
    // What clients send around queries is accepted.
    let session = query(
        pg,
        "acme",
        "BEGIN; SET extra_float_digits = 3; SET application_name = 'x'; SHOW search_path; COMMIT",
    );
    assert!(session.contains("public"), "{session}");

    // The engine's limits hold: memory, then time.
    let e = refusal(
        pg,
        "acme",
        "SELECT value FROM generate_series(1, 100000000)",
    );
    assert!(
        e.contains("ERROR:  53000") && e.contains("query memory"),
        "{e}"
    );
    let e = refusal(
        pg,
        "acme",
        "SELECT count(*) FROM generate_series(1, 1000000) a, generate_series(1, 1000000) b",
    );
    assert!(
        e.contains("ERROR:  57014") && e.contains("query timeout"),
        "{e}"
    );
    // A statement too large to plan is refused before any parser builds it.
    let deep = format!("SELECT {}1", "1+".repeat(60_000));
    let e = refusal(pg, "acme", &deep);
    assert!(e.contains("ERROR:  42601"), "{}", &e[..e.len().min(300)]);

    // Garbage on the socket ends that connection only.
    for garbage in [
        b"\x00\x00\x00\x08\x04\xd2\x16\x2fGET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0xff; 4096],
        b"\x7f\xff\xff\xff\x00\x03\x00\x00".to_vec(),
    ] {
        let mut socket = TcpStream::connect(pg).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let _ = socket.write_all(&garbage);
        let mut sink = Vec::new();
        let _ = socket.read_to_end(&mut sink);
    }
    let after = query(pg, "acme", "SELECT 41 + 1 AS answer");
    assert!(after.contains("42"), "{after}");
    assert!(cairn.healthy().await);
    assert!(cairn.stop(), "clean shutdown with the Postgres listener");
}

#[tokio::test(flavor = "multi_thread")]
async fn password_and_tls() {
    let dir = temp_dir();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let cairn = Cairn::start_with_env(
        &["--pg-tls-cert", &cert, "--pg-tls-key", &key],
        &[("CAIRN_PG_PASSWORD", "s3cret")],
    );
    let pg = cairn.pg.as_str();
    let sql = ["-c", "SELECT 7 AS seven"];

    // psql prints no SQLSTATE for a refused connection; the words are Postgres's for 28P01.
    let (ok, _, stderr) = psql(pg, "acme", &sql, &[("PGPASSWORD", "wrong")]);
    assert!(!ok, "{stderr}");
    let words = "FATAL:  password authentication failed for user \"acme\"";
    assert!(stderr.contains(words), "{stderr}");
    let (ok, _, stderr) = psql(pg, "acme", &sql, &[("PGSSLMODE", "disable")]);
    assert!(!ok, "no password given: {stderr}");
    for mode in ["require", "disable"] {
        let (ok, stdout, stderr) = psql(
            pg,
            "acme",
            &sql,
            &[("PGPASSWORD", "s3cret"), ("PGSSLMODE", mode)],
        );
        assert!(ok && stdout.contains(" 7"), "{mode}: {stderr}");
    }
    // The Grafana replay with a password.
    let (host, port) = pg.rsplit_once(':').unwrap();
    let script = python_script("pg_grafana.py");
    send_agent_runs(
        &cairn,
        Transport::HttpProtobuf { gzip: false },
        Some("acme"),
        "svc",
        1,
    )
    .await;
    cairn.wait_for_count(Some("acme"), "spans", 1).await;
    let out = run_python(&[script.to_str().unwrap(), host, port, "acme", "s3cret"]);
    assert_eq!(out.trim(), "ok");
    assert!(cairn.stop());

    // Without a password, only loopback clients may be trusted.
    let refused = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "query",
            "--store",
            "memory://",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args(["--pg-addr", "0.0.0.0:0"])
        .env_remove("CAIRN_PG_PASSWORD")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("--pg-password"), "{stderr}");
    // And the listener can be turned off.
    let off = Cairn::start(&["--pg-addr", "off"]);
    assert!(off.pg.is_empty());
}
