//! The Grafana files of `deploy/grafana`: the dashboards are well formed and use only the
//! provisioned data sources, and every panel query runs against a store of known runs the way
//! Grafana sends it (`tests/python/grafana_panels.py`: macros and variables expanded as
//! Grafana's PostgreSQL data source does, SQL over the Postgres wire with libpq's simple query
//! protocol, TraceQL and trace ids over the Tempo API), with the answers the runs of
//! `tests/python/lineage_runs.py` imply. The credentials are those of the provisioned data
//! sources, Grafana's environment interpolated into them: with auth off as without it, and with
//! `--auth-tokens` a read token of the tenant, without which (or with another tenant's, or an
//! ingest token) both data sources are refused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{python, python_script, temp_dir, Cairn};
use crate::lineage::with_lineage_runs;

fn grafana_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana")
}

fn dashboards() -> Vec<Value> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(grafana_dir().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

#[test]
fn dashboards_use_the_provisioned_data_sources_and_fit_the_grid() {
    let provisioned =
        std::fs::read_to_string(grafana_dir().join("provisioning/datasources/cairn.yaml")).unwrap();
    let uids: BTreeSet<&str> = provisioned
        .lines()
        .filter_map(|l| l.trim().strip_prefix("uid: "))
        .collect();
    assert_eq!(uids, BTreeSet::from(["cairn-sql", "cairn-tempo"]));
    let boards = dashboards();
    assert_eq!(boards.len(), 2);
    let mut seen = BTreeSet::new();
    for board in &boards {
        let uid = board["uid"].as_str().unwrap();
        assert!(seen.insert(uid.to_owned()), "duplicate dashboard uid {uid}");
        let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
        let mut ids = BTreeSet::new();
        for panel in board["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap();
            assert!(
                ids.insert(panel["id"].as_u64().unwrap()),
                "{uid}: duplicate panel id"
            );
            let g = &panel["gridPos"];
            let (h, w, x, y) = (
                g["h"].as_u64().unwrap(),
                g["w"].as_u64().unwrap(),
                g["x"].as_u64().unwrap(),
                g["y"].as_u64().unwrap(),
            );
            assert!(
                x + w <= 24 && h > 0 && w > 0,
                "{uid}/{title}: outside the 24 columns"
            );
            for cx in x..x + w {
                for cy in y..y + h {
                    if let Some(other) = cells.insert((cx, cy), title.to_owned()) {
                        panic!("{uid}: panels {other} and {title} overlap");
                    }
                }
            }
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{uid}/{title}: no query");
            for t in targets {
                let ds = t["datasource"]["uid"].as_str().unwrap();
                assert!(
                    uids.contains(ds),
                    "{uid}/{title}: data source {ds} is not provisioned"
                );
                assert_eq!(panel["datasource"]["uid"], t["datasource"]["uid"]);
            }
        }
    }
}

/// Runs `tests/python/grafana_panels.py` with `args` after the provisioned data sources' file
/// and the addresses of `cairn`, in Grafana's environment `env` (CAIRN_TENANT, CAIRN_TOKEN;
/// unset when not given); panics with its output unless it succeeds.
fn grafana_panels(cairn: &Cairn, env: &[(&str, &str)], args: &[&str]) -> Value {
    let datasources = grafana_dir().join("provisioning/datasources/cairn.yaml");
    let tempo = format!("http://{}/tempo", cairn.http);
    let mut cmd = Command::new(python());
    cmd.arg(python_script("grafana_panels.py"))
        .arg("--datasources")
        .arg(&datasources)
        .args(["--pg", &cairn.pg, "--tempo", &tempo])
        .args(args)
        .env_remove("CAIRN_TENANT")
        .env_remove("CAIRN_TOKEN")
        .envs(env.iter().copied());
    let out = cmd.output().expect("run python");
    assert!(
        out.status.success(),
        "{args:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// Every panel of both dashboards, over the runs of `lineage_runs.py` (a01 is `a01`).
fn run_panels(cairn: &Cairn, env: &[(&str, &str)], a01: &str) -> Value {
    let dir = grafana_dir().join("dashboards");
    grafana_panels(
        cairn,
        env,
        &[
            "--dashboards",
            dir.to_str().unwrap(),
            "--from",
            "2026-11-20T00:00:00Z",
            "--to",
            "2026-11-21T00:00:00Z",
            "--trace-id",
            a01,
            "--agent",
            "triage",
        ],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_panel_query_answers_on_known_runs() {
    let (cairn, _, ids) = with_lineage_runs();
    let a01 = ids["traces"]["a01"].as_str().unwrap();
    // Auth off: no token set, so Grafana sends `Authorization: Bearer ` and an empty password.
    let out = run_panels(&cairn, &[("CAIRN_TENANT", "default")], a01);
    check_panels(&out, a01);
    cairn.stop();
}

/// A token for `tenant` with `role` in the token file `file`, as `cairn token create` prints it.
fn create_token(file: &Path, tenant: &str, role: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["token", "create", "--auth-tokens"])
        .arg(file)
        .args(["--tenant", tenant, "--role", role, "--name", "grafana"])
        .output()
        .expect("cairn token create");
    assert!(
        out.status.success(),
        "cairn token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        !token.is_empty() && !token.contains(char::is_whitespace),
        "{token:?}"
    );
    token
}

#[tokio::test(flavor = "multi_thread")]
async fn with_auth_tokens_the_provisioned_token_reads_and_nothing_else_does() {
    let dir = temp_dir();
    let file = dir.path().join("tokens.toml");
    let ingest = create_token(&file, "acme", "ingest");
    let read = create_token(&file, "acme", "read");
    let beta = create_token(&file, "beta", "read");
    let cairn = Cairn::start(&[
        "--approval-required",
        "post_*",
        "--auth-tokens",
        file.to_str().unwrap(),
    ]);
    // The runs of lineage_runs.py in tenant acme, exported with the ingest token (the SDK's
    // OTEL_EXPORTER_OTLP_HEADERS, beside the tenant header the script sends).
    let endpoint = format!("http://{}/v1/traces", cairn.otlp_http);
    let out = Command::new(python())
        .arg(python_script("lineage_runs.py"))
        .args(["--endpoint", &endpoint, "--tenant", "acme"])
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("Authorization=Bearer%20{ingest}"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Value = serde_json::from_slice(&out.stdout).unwrap();
    let a01 = ids["traces"]["a01"].as_str().unwrap();

    // "Save & test" of both data sources, as provisioned with each CAIRN_TOKEN.
    let save_and_test = |env: &[(&str, &str)]| grafana_panels(&cairn, env, &["--save-and-test"]);
    let good = save_and_test(&[("CAIRN_TENANT", "acme"), ("CAIRN_TOKEN", &read)]);
    assert_eq!(good["tempo"]["status"], 200, "{good:#}");
    assert_eq!(good["sql"]["ok"], true, "{good:#}");

    let none = save_and_test(&[("CAIRN_TENANT", "acme")]);
    assert_eq!(none["tempo"]["status"], 401, "{none:#}");
    assert!(
        none["tempo"]["www_authenticate"]
            .as_str()
            .is_some_and(|v| v.starts_with("Bearer")),
        "{none:#}"
    );
    assert_eq!(none["sql"]["ok"], false, "{none:#}");

    // Another tenant's read token, and the ingest token of this one: the token is good, the
    // right is not.
    for (what, token) in [("beta's read token", &beta), ("the ingest token", &ingest)] {
        let refused = save_and_test(&[("CAIRN_TENANT", "acme"), ("CAIRN_TOKEN", token)]);
        assert_eq!(refused["tempo"]["status"], 403, "{what}: {refused:#}");
        assert_eq!(refused["sql"]["ok"], false, "{what}: {refused:#}");
    }
    // beta's token is good for beta's own data sources.
    let own = save_and_test(&[("CAIRN_TENANT", "beta"), ("CAIRN_TOKEN", &beta)]);
    assert_eq!(own["tempo"]["status"], 200, "{own:#}");
    assert_eq!(own["sql"]["ok"], true, "{own:#}");

    // Every panel answers as with auth off.
    let out = run_panels(
        &cairn,
        &[("CAIRN_TENANT", "acme"), ("CAIRN_TOKEN", &read)],
        a01,
    );
    check_panels(&out, a01);
    cairn.stop();
}

/// The answers of every panel on the runs of `lineage_runs.py`.
fn check_panels(out: &Value, a01: &str) {
    let panels = out.as_object().unwrap();
    // Every target of both dashboards ran, twice on the fleet board (all agents, then triage).
    let targets: usize = dashboards()
        .iter()
        .map(|b| {
            let n: usize = b["panels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["targets"].as_array().unwrap().len())
                .sum();
            if b["uid"] == "cairn-fleet" {
                2 * n
            } else {
                n
            }
        })
        .sum();
    assert_eq!(panels.len(), targets, "{out:#}");

    let first = |panel: &str| -> String {
        out[panel]["first"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{panel}: {:#}", out[panel]))
            .to_owned()
    };
    let rows = |panel: &str| {
        out[panel]["rows"]
            .as_u64()
            .unwrap_or_else(|| panic!("{panel}"))
    };

    // Five runs, one with an error step (a01's timed-out lookup); four are the triage agent's.
    assert_eq!(first("cairn-fleet/Runs"), "5");
    assert_eq!(first("cairn-fleet/Runs [triage]"), "4");
    assert_eq!(first("cairn-fleet/Runs with errors"), "1");
    // Gated tool calls without a granted approval: a02's post_ledger (the configured rule),
    // a04's refund and its email after the approval timed out.
    assert_eq!(first("cairn-fleet/Approval bypasses"), "3");
    assert_eq!(first("cairn-fleet/Approval bypasses [triage]"), "2");
    // Every gate was decided.
    assert_eq!(first("cairn-fleet/Waiting on approval"), "0");
    // Triage moved to policy v2 in a04 and back to v1 in a05.
    assert_eq!(rows("cairn-fleet/Policy changes"), 2);
    assert_eq!(rows("cairn-fleet/Recent runs"), 5);
    assert_eq!(rows("cairn-fleet/Recent runs [triage]"), 4);
    // lookup_order, issue_refund, send_email, transfer_to_notifier, post_ledger.
    assert_eq!(rows("cairn-fleet/Top tools"), 5);
    for panel in [
        "cairn-fleet/Runs and errors",
        "cairn-fleet/Approvals by state",
        "cairn-fleet/Tokens by model",
        "cairn-fleet/Cost by agent",
        "cairn-fleet/Tokens and cost by model and agent",
        "cairn-fleet/Runs by sandbox",
        "cairn-fleet/Runs by namespace and pod",
    ] {
        assert!(rows(panel) > 0, "{panel} is empty: {:#}", out[panel]);
    }
    // Time columns are timestamptz or epoch numbers, as Grafana reads them.
    assert_eq!(out["cairn-fleet/Recent runs"]["columns"]["time"], 1184);
    assert_eq!(out["cairn-fleet/Runs and errors"]["columns"]["time"], 701);
    // a04 ran its refund without approval (bypassed is derived, not a state it sent), a03
    // denied the deletion: TraceQL on approval state finds the denial.
    assert!(
        out["cairn-fleet/Runs with a denied or bypassed approval (TraceQL)"]["traces"]
            .as_u64()
            .unwrap()
            >= 1
    );

    // The drill-down of a01: 13 steps, its model and tool calls, two approval steps, the trace.
    assert_eq!(first("cairn-run/Run"), a01);
    assert_eq!(rows("cairn-run/Steps"), 13);
    assert_eq!(rows("cairn-run/Model calls"), 4);
    assert_eq!(rows("cairn-run/Tool calls"), 5);
    assert_eq!(rows("cairn-run/Approvals and bypasses"), 2);
    assert!(out["cairn-run/Trace"]["bytes"].as_u64().unwrap() > 1000);
}
