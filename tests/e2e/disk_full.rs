//! The write-ahead log's disk fills up: exports are refused as retryable, nothing is corrupted,
//! and ingest recovers when space returns. Needs root (it mounts a small tmpfs), as CI runs.

use std::process::Command;

use serde_json::json;

use crate::harness::{client, temp_dir, Cairn};

struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(path: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mounting a tmpfs failed: this test needs root");
        Self(path.to_owned())
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount failed");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

async fn export(cairn: &Cairn, n: u32) -> u16 {
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": format!("{:032x}", n + 1),
        "spanId": format!("{:016x}", n + 1),
        "name": format!("span-{n}"),
        "startTimeUnixNano": "1764290000000000000",
        "endTimeUnixNano": "1764290000000001000",
        "attributes": [{"key": "blob", "value": {"stringValue": format!("{n}-{}", "x".repeat(16 * 1024))}}],
    }]}]}]});
    let resp = client()
        .post(format!("http://{}/v1/traces", cairn.otlp_http))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    if status != 200 {
        assert!(
            resp.headers().contains_key("retry-after"),
            "refusals are retryable"
        );
    }
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn wal_disk_full_refuses_then_recovers() {
    let dir = temp_dir();
    let wal = dir.path().join("wal");
    let mount = Mount::tmpfs(&wal, "256k");
    let store = dir.path().join("data").display().to_string();
    let wal_arg = wal.display().to_string();
    let flags = [
        "--ack",
        "wal",
        "--wal-dir",
        &wal_arg,
        "--flush-interval",
        "1h",
    ];
    let mut cairn = Cairn::start_on(&store, &flags, &[]);
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for n in 0..40 {
        match export(&cairn, n).await {
            200 => acked.push(n),
            503 => refused.push(n),
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        !acked.is_empty() && !refused.is_empty(),
        "acked {acked:?}, refused {refused:?}"
    );
    assert!(cairn.alive());
    mount.resize("64m");
    for n in 100..110 {
        assert_eq!(
            export(&cairn, n).await,
            200,
            "ingest recovers when space returns"
        );
        acked.push(n);
    }
    assert!(cairn.stop(), "clean shutdown writes out the log");
    let again = Cairn::start_on(&store, &flags, &[]);
    let rows = again
        .sql(None, "SELECT name FROM spans ORDER BY name")
        .await;
    let mut stored: Vec<String> = rows
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = acked.iter().map(|n| format!("span-{n}")).collect();
    stored.sort();
    expected.sort();
    assert_eq!(
        stored, expected,
        "exactly the acknowledged spans, each once"
    );
}
