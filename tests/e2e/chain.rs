//! The tamper-evident chain against the real binary: a store written, compacted and expired
//! verifies clean, and each way of tampering with it afterwards is reported exactly, with a
//! non-zero exit: an altered byte, a deleted file, a foreign file, swapped entries, an edited
//! entry, a forged head, and a rollback to an earlier (validly signed) state caught by a
//! witnessed head. Two collectors appending to one store at once leave one consistent chain;
//! the same holds on an S3-compatible server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::compaction::{export, HOUR_NANOS, SPANS_PER_EXPORT};
use crate::harness::{parquet_files, temp_dir, Cairn};
use crate::s3::{s3_env, start_s3};

/// `cairn <args>`: (exit code, stdout lines, stderr).
fn cairn(args: &[&str], envs: &[(&str, &str)]) -> (i32, Vec<String>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .envs(envs.iter().copied())
        .env("CAIRN_LOG", "warn")
        .output()
        .expect("run cairn");
    let stdout = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    (
        out.status.code().unwrap_or(-1),
        stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `cairn verify` of tenant `default` with the public key: (exit code, stdout lines).
fn verify(store: &str, public: &str, extra: &[&str], envs: &[(&str, &str)]) -> (i32, Vec<String>) {
    let mut args = vec![
        "verify",
        "--store",
        store,
        "--tenant",
        "default",
        "--public-key",
        public,
    ];
    args.extend(extra);
    let (code, lines, _) = cairn(&args, envs);
    (code, lines)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The entries of a local store's chain of tenant `default`, in object order.
fn entries(store: &Path) -> Vec<Value> {
    let dir = store.join("_chain/tenant=default");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "head.json")
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            serde_json::from_slice::<Value>(&std::fs::read(p).unwrap()).unwrap()["entry"].clone()
        })
        .collect()
}

fn entry_file(store: &Path, seq: u64) -> PathBuf {
    store.join(format!("_chain/tenant=default/{seq:020}.json"))
}

/// The last entry recording `path`: (seq, blake3).
fn recorded(store: &Path, path: &str) -> (u64, String) {
    entries(store)
        .iter()
        .rev()
        .find_map(|e| {
            let f = e["files"].as_array()?.iter().find(|f| f["path"] == path)?;
            Some((e["seq"].as_u64()?, f["blake3"].as_str()?.to_owned()))
        })
        .unwrap_or_else(|| panic!("{path} is not recorded"))
}

fn relative(store: &Path, file: &Path) -> String {
    file.strip_prefix(store)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn hour_text(hour: i64) -> String {
    chrono::DateTime::from_timestamp(hour * 3600, 0)
        .unwrap()
        .format("%Y-%m-%dT%H")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compacted_and_expired_store_verifies_and_every_tampering_is_reported() {
    let dir = temp_dir();
    let store = dir.path().join("data");
    let s = store.display().to_string();
    let key = dir.path().join("chain.pem");
    let key_text = key.display().to_string();
    let (code, out, err) = cairn(&["chain", "keygen", "--out", &key_text], &[]);
    assert_eq!(code, 0, "{err}");
    let public = out[0].clone();
    assert_eq!(public.len(), 64, "{out:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Never overwritten.
    assert_ne!(cairn(&["chain", "keygen", "--out", &key_text], &[]).0, 0);
    let signed = [("CAIRN_CHAIN_SIGNING_KEY", key_text.as_str())];

    // Phase 1: three flushes into an hour that is over, one into an hour past retention.
    let hour = chrono::Utc::now().timestamp_nanos_opt().unwrap() / HOUR_NANOS;
    let cairn1 = Cairn::start_on(&s, &[], &signed);
    for seq in 0..3 {
        cairn1.send_json(export(seq, (hour - 1) * HOUR_NANOS)).await;
    }
    cairn1.send_json(export(3, (hour - 5) * HOUR_NANOS)).await;
    assert!(cairn1.stop());
    let (code, out, err) = cairn(
        &["chain", "head", "--store", &s, "--tenant", "default"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let early_head = out[0].clone();
    let early = dir.path().join("early");
    copy_dir(&store, &early);
    assert_eq!(verify(&s, &public, &[], &[]).0, 0);

    // Phase 2: compaction merges the hour that is over, deletes its inputs after the grace
    // period, and retention expires the old hour's spans.
    let cairn2 = Cairn::start_on(
        &s,
        &[
            "--compaction",
            "on",
            "--compaction-interval",
            "100ms",
            "--compaction-grace",
            "300ms",
            "--compaction-min-files",
            "2",
            "--retention",
            "2h",
        ],
        &signed,
    );
    let spans_dir = store.join(format!("spans/tenant=default/hour={}", hour_text(hour - 1)));
    let old_spans = store.join(format!("spans/tenant=default/hour={}", hour_text(hour - 5)));
    let index_dir = store.join("trace_index/tenant=default");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let merged = |d: &Path| {
            let files = parquet_files(d);
            files.len() == 1
                && files[0]
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("compacted-")
        };
        let stale_runs = std::fs::read_dir(&spans_dir)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "runs")
                })
                .count()
            })
            .unwrap_or(0);
        if merged(&spans_dir)
            && merged(&index_dir)
            && parquet_files(&old_spans).is_empty()
            && stale_runs == 1
        {
            break;
        }
        assert!(Instant::now() < deadline, "compaction did not converge");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Passes with nothing left to do, then a stop between two of them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cairn2.stop());
    let kinds: Vec<String> = entries(&store)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    for kind in ["add", "replace", "delete", "expire"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "no {kind} entry in {kinds:?}"
        );
    }
    let expiry = entries(&store)
        .into_iter()
        .find(|e| e["kind"] == "expire")
        .unwrap();
    assert_eq!(
        expiry["rule"],
        format!("spans hour {} older than 2h", hour_text(hour - 5))
    );
    let (code, out) = verify(&s, &public, &[], &[]);
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0].starts_with(&format!(
            "verified tenant default: entries 1-{} of {}",
            kinds.len(),
            kinds.len()
        )),
        "{out:?}"
    );
    let (_, heads, _) = cairn(&["chain", "head", "--store", &s], &[]);
    let witness = dir.path().join("witness.json");
    std::fs::write(&witness, &heads[0]).unwrap();
    let witness_text = witness.display().to_string();
    let last = kinds.len() as u64;

    // Each tampering on its own copy of the verified store.
    let copy = |name: &str| {
        let to = dir.path().join(name);
        copy_dir(&store, &to);
        to
    };
    let merged_file = parquet_files(&spans_dir)[0].clone();
    let merged_path = relative(&store, &merged_file);

    // An altered byte of a Parquet file.
    let t = copy("altered");
    let file = t.join(&merged_path);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let (seq, hash) = recorded(&t, &merged_path);
    assert_eq!(
        verify(&t.display().to_string(), &public, &[], &[]),
        (
            1,
            vec![format!(
                "altered: {merged_path}: blake3 {}, entry {seq} recorded blake3 {hash}",
                blake3::hash(&bytes).to_hex()
            )]
        )
    );

    // A deleted file.
    let t = copy("deleted");
    std::fs::remove_file(t.join(&merged_path)).unwrap();
    let (seq, _) = recorded(&t, &merged_path);
    assert_eq!(
        verify(&t.display().to_string(), &public, &[], &[]),
        (
            1,
            vec![format!(
                "missing: {merged_path}: recorded by entry {seq}, absent"
            )]
        )
    );

    // A foreign file.
    let t = copy("inserted");
    let foreign = format!(
        "spans/tenant=default/hour={}/zz-foreign.parquet",
        hour_text(hour - 1)
    );
    std::fs::copy(t.join(&merged_path), t.join(&foreign)).unwrap();
    assert_eq!(
        verify(&t.display().to_string(), &public, &[], &[]),
        (
            1,
            vec![format!("inserted: {foreign}: present, never recorded")]
        )
    );

    // Two entries swapped.
    let t = copy("swapped");
    let (a, b) = (entry_file(&t, 1), entry_file(&t, 2));
    let (first, second) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::write(&a, &second).unwrap();
    std::fs::write(&b, &first).unwrap();
    assert_eq!(
        verify(&t.display().to_string(), &public, &[], &[]),
        (
            1,
            vec![
                format!(
                    "re-ordered: _chain/tenant=default/{:020}.json holds entry 2",
                    1
                ),
                format!(
                    "re-ordered: _chain/tenant=default/{:020}.json holds entry 1",
                    2
                ),
            ]
        )
    );

    // An entry edited: its signature and the next entry's link break.
    let t = copy("edited");
    let text = std::fs::read_to_string(entry_file(&t, 1)).unwrap();
    let edited = text.replacen("\"writer\":\"collector", "\"writer\":\"Collector", 1);
    assert_ne!(edited, text);
    std::fs::write(entry_file(&t, 1), edited).unwrap();
    assert_eq!(
        verify(&t.display().to_string(), &public, &[], &[]),
        (
            1,
            vec![
                "broken link: entry 1: bad signature".to_owned(),
                "broken link: entry 2: its previous hash is not entry 1's".to_owned(),
            ]
        )
    );

    // A head forged without the key: naming an earlier entry, with the old signature.
    let t = copy("forged");
    let head_file = t.join("_chain/tenant=default/head.json");
    let mut head: Value = serde_json::from_slice(&std::fs::read(&head_file).unwrap()).unwrap();
    let earlier = std::fs::read(entry_file(&t, 1)).unwrap();
    head["seq"] = json!(1);
    head["entry_hash"] = json!(blake3::hash(&earlier).to_hex().to_string());
    std::fs::write(&head_file, head.to_string()).unwrap();
    assert_eq!(
        verify(&t.display().to_string(), &public, &[], &[]),
        (1, vec!["broken link: head: bad signature".to_owned()])
    );

    // Rolled back whole (files, chain and a validly signed head of the time): consistent in
    // itself, caught only by the witnessed head.
    let early_s = early.display().to_string();
    assert_eq!(verify(&early_s, &public, &[], &[]).0, 0);
    let early_seq = serde_json::from_str::<Value>(&early_head).unwrap()["seq"]
        .as_u64()
        .unwrap();
    assert_eq!(
        verify(&early_s, &public, &["--witness", &witness_text], &[]),
        (
            1,
            vec![
                format!("broken link: the chain ends at entry {early_seq}, before the witnessed head (entry {last})"),
                format!("broken link: head (entry {early_seq}) is older than the witnessed head (entry {last})"),
            ]
        )
    );
    // Another key's view: every signature fails.
    let other = dir.path().join("other.pem");
    let (_, other_public, _) = cairn(
        &["chain", "keygen", "--out", &other.display().to_string()],
        &[],
    );
    let (code, out) = verify(&s, &other_public[0], &[], &[]);
    assert_eq!(code, 1);
    assert_eq!(out.len() as u64, last + 1, "{out:?}");
    assert!(
        out.iter().all(|l| l.ends_with(": signed by another key")),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_collectors_appending_at_once_leave_one_chain() {
    let dir = temp_dir();
    let store = dir.path().join("data");
    let s = store.display().to_string();
    let wal = |n: &str| dir.path().join(n).display().to_string();
    let (wal_a, wal_b) = (wal("wal-a"), wal("wal-b"));
    let a = Cairn::start_role("collector", &s, &["--wal-dir", &wal_a], &[]);
    let b = Cairn::start_role("collector", &s, &["--wal-dir", &wal_b], &[]);
    let hour = chrono::Utc::now().timestamp_nanos_opt().unwrap() / HOUR_NANOS;
    let mut sends = Vec::new();
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    for seq in 0..12 {
        let c = if seq % 2 == 0 { a.clone() } else { b.clone() };
        sends.push(tokio::spawn(async move {
            c.send_json(export(seq, (hour - (seq % 3)) * HOUR_NANOS))
                .await
        }));
    }
    for s in sends {
        s.await.unwrap();
    }
    assert!(std::sync::Arc::into_inner(a).unwrap().stop());
    assert!(std::sync::Arc::into_inner(b).unwrap().stop());
    let all = entries(&store);
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>());
    assert!(all.len() >= 2, "{all:?}");
    let (code, out, err) = cairn(&["verify", "--store", &s, "--tenant", "default"], &[]);
    assert_eq!(code, 0, "{out:?} {err}");
    assert!(out[0].contains("signatures not checked"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chain_holds_on_an_s3_compatible_server() {
    let s3 = start_s3();
    let env = s3_env(s3.port);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = temp_dir();
    let key = dir.path().join("chain.pem").display().to_string();
    let (_, public, _) = cairn(&["chain", "keygen", "--out", &key], &[]);
    let mut signed = env.clone();
    signed.push(("CAIRN_CHAIN_SIGNING_KEY", key.as_str()));
    let store = "s3://traces/cairn";
    let c = Cairn::start_on(store, &[], &signed);
    let hour = chrono::Utc::now().timestamp_nanos_opt().unwrap() / HOUR_NANOS;
    for seq in 0..3 {
        c.send_json(export(seq, hour * HOUR_NANOS)).await;
    }
    assert!(c.stop());
    let (code, out) = verify(store, &public[0], &[], &env);
    assert_eq!(code, 0, "{out:?}");
    // A byte altered behind the server's back.
    let root = s3.root.path().join("traces/cairn");
    let file = parquet_files(&root.join("spans/tenant=default"))[0].clone();
    let path = relative(&root, &file);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let (code, out) = verify(store, &public[0], &[], &env);
    assert_eq!(code, 1);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0].starts_with(&format!(
            "altered: {path}: blake3 {}",
            blake3::hash(&bytes).to_hex()
        )),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_s3_compatible_server_refuses_a_second_create_of_an_entry() {
    use object_store::{ObjectStore, PutMode, PutPayload};
    let s3 = start_s3();
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("traces")
        .with_access_key_id("cairn-ak")
        .with_secret_access_key("cairn-sk")
        .with_region("us-east-1")
        .with_endpoint(format!("http://127.0.0.1:{}", s3.port))
        .with_allow_http(true)
        .build()
        .unwrap();
    let at = object_store::path::Path::from("_chain/tenant=t/00000000000000000001.json");
    let create = || store.put_opts(&at, PutPayload::from_static(b"{}"), PutMode::Create.into());
    create().await.unwrap();
    let again = create().await;
    assert!(
        matches!(again, Err(object_store::Error::AlreadyExists { .. })),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_write_ahead_log_is_recorded_once() {
    let dir = temp_dir();
    let store = dir.path().join("data");
    let s = store.display().to_string();
    let wal = dir.path().join("data-wal");
    let saved = dir.path().join("saved-wal");
    let hour = chrono::Utc::now().timestamp_nanos_opt().unwrap() / HOUR_NANOS;
    // Acknowledged once in the log; the log kept aside before its segment is written.
    let c = Cairn::start_on(&s, &["--ack", "wal", "--flush-interval", "1h"], &[]);
    for seq in 0..2 {
        c.send_json(export(seq, hour * HOUR_NANOS)).await;
    }
    copy_dir(&wal, &saved);
    c.crash();
    assert!(!store.join("_chain").exists());
    // The next start replays the log into the store and records its files.
    let c = Cairn::start_on(&s, &["--ack", "wal"], &[]);
    assert_eq!(c.count(None, "spans").await, 2 * SPANS_PER_EXPORT);
    assert!(c.stop());
    let before = entries(&store).len();
    assert!(before >= 1);
    // As if that start had crashed after writing the segment, before deleting it: replayed
    // again, the same files with the same bytes are not recorded again.
    std::fs::remove_dir_all(&wal).unwrap();
    copy_dir(&saved, &wal);
    let c = Cairn::start_on(&s, &["--ack", "wal"], &[]);
    assert_eq!(c.count(None, "spans").await, 2 * SPANS_PER_EXPORT);
    assert!(c.stop());
    assert_eq!(entries(&store).len(), before);
    let mut recorded: Vec<String> = entries(&store)
        .iter()
        .flat_map(|e| e["files"].as_array().cloned().unwrap_or_default())
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    let all = recorded.len();
    recorded.sort();
    recorded.dedup();
    assert_eq!(recorded.len(), all, "a file recorded twice");
    let (code, out, err) = cairn(&["verify", "--store", &s, "--tenant", "default"], &[]);
    assert_eq!(code, 0, "{out:?} {err}");
}

/// `cairn reindex` records every file it writes (each hour's index file, the run summaries, the
/// merge of the index, its marker) as its own entries: the store verifies clean after it with
/// no `cairn chain adopt`.
#[tokio::test(flavor = "multi_thread")]
async fn a_reindex_records_what_it_writes() {
    let dir = temp_dir();
    let store = dir.path().join("data");
    let s = store.display().to_string();
    let key = dir.path().join("chain.pem").display().to_string();
    let (code, public, err) = cairn(&["chain", "keygen", "--out", &key], &[]);
    assert_eq!(code, 0, "{err}");
    let signed = [("CAIRN_CHAIN_SIGNING_KEY", key.as_str())];
    let hour = chrono::Utc::now().timestamp_nanos_opt().unwrap() / HOUR_NANOS;
    let c = Cairn::start_on(&s, &[], &signed);
    for seq in 0..3 {
        c.send_json(export(seq, (hour - seq) * HOUR_NANOS)).await;
    }
    assert!(c.stop());
    assert_eq!(verify(&s, &public[0], &[], &[]).0, 0);
    let before = entries(&store).len();

    let (code, out, err) = cairn(&["reindex", "--store", &s, "--force"], &signed);
    assert_eq!(code, 0, "{err}");
    assert!(
        out[0].starts_with("indexed 1 tenant(s): 3 hour partitions"),
        "{out:?}"
    );
    let recorded = &entries(&store)[before..];
    let kinds: Vec<&str> = recorded
        .iter()
        .inspect(|e| assert_eq!(e["writer"], "reindex", "{e}"))
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"add") && kinds.contains(&"replace"),
        "{kinds:?}"
    );
    let recorded_paths: Vec<&str> = recorded
        .iter()
        .flat_map(|e| e["files"].as_array().into_iter().flatten())
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        recorded_paths.contains(&"trace_index/tenant=default/complete.json"),
        "{recorded_paths:?}"
    );
    let (code, out) = verify(&s, &public[0], &[], &[]);
    assert_eq!(code, 0, "{out:?}");
    assert!(out[0].starts_with("verified"), "{out:?}");
}
