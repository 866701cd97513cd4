//! The chain against an in-memory store: appends from racing writers, and each kind of
//! tampering found by verification.

use std::sync::Arc;

use cairn_schema::tenant::Tenant;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::*;

fn tenant() -> Tenant {
    Tenant::new("acme").unwrap()
}

async fn write(store: &Arc<dyn ObjectStore>, chain: &Chain, name: &str, body: &[u8]) {
    let path = Path::from(format!("spans/tenant=acme/hour=2026-12-01T00/{name}"));
    store
        .put(&path, PutPayload::from(body.to_vec()))
        .await
        .unwrap();
    let mut record = Record::new(Kind::Add);
    record.files.push(FileRecord::of_bytes(&path, body));
    chain.append(&tenant(), record).await.unwrap();
}

async fn lines(store: &Arc<dyn ObjectStore>, options: &VerifyOptions) -> Vec<String> {
    verify(store, &tenant(), options)
        .await
        .unwrap()
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// A fresh in-memory store, a key, a chain signed with it, and options verifying against it.
struct Signed {
    store: Arc<dyn ObjectStore>,
    key: Signer,
    chain: Chain,
    options: VerifyOptions,
}

impl Signed {
    fn new() -> Self {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (_, key) = generate_key().unwrap();
        let chain = Chain::new(Arc::clone(&store), Some(key.clone())).with_writer("t");
        let options = VerifyOptions {
            public_key: Some(key.public_key()),
            parallel: 2,
            ..VerifyOptions::default()
        };
        Self {
            store,
            key,
            chain,
            options,
        }
    }
}

/// The bytes of the object at `path`.
async fn get(store: &Arc<dyn ObjectStore>, path: &Path) -> Vec<u8> {
    store
        .get(path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

/// Writes `bytes` at `path`.
async fn put(store: &Arc<dyn ObjectStore>, path: &Path, bytes: impl Into<PutPayload>) {
    store.put(path, bytes.into()).await.unwrap();
}

/// The chain's head as stored.
async fn head(store: &Arc<dyn ObjectStore>) -> Head {
    serde_json::from_slice(&get(store, &head_path(&tenant())).await).unwrap()
}

#[tokio::test]
async fn racing_writers_leave_one_chain() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let (_, key) = generate_key().unwrap();
    let options = VerifyOptions {
        public_key: Some(key.public_key()),
        parallel: 4,
        ..VerifyOptions::default()
    };
    // Two processes: each its own cache of the chain's end.
    let a = Chain::new(Arc::clone(&store), Some(key.clone())).with_writer("a");
    let b = Chain::new(Arc::clone(&store), Some(key)).with_writer("b");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, chain) = (
            Arc::clone(&store),
            if i % 2 == 0 { a.clone() } else { b.clone() },
        );
        tasks.push(tokio::spawn(async move {
            write(
                &store,
                &chain,
                &format!("{i}.parquet"),
                format!("file {i}").as_bytes(),
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(lines(&store, &options).await, Vec::<String>::new());
    let report = verify(&store, &tenant(), &options).await.unwrap();
    assert_eq!((report.entries, report.files), (8, 8));
}

#[tokio::test]
async fn each_kind_of_tampering_is_reported() {
    let Signed {
        store,
        key,
        chain,
        options,
    } = Signed::new();
    write(&store, &chain, "a.parquet", b"aaaa").await;
    write(&store, &chain, "b.parquet", b"bbbb").await;
    write(&store, &chain, "c.parquet", b"cccc").await;
    assert!(lines(&store, &options).await.is_empty());
    let dir = "spans/tenant=acme/hour=2026-12-01T00";
    // Altered, missing, inserted.
    let a = Path::from(format!("{dir}/a.parquet"));
    put(&store, &a, PutPayload::from_static(b"aaab")).await;
    store
        .delete(&Path::from(format!("{dir}/b.parquet")))
        .await
        .unwrap();
    put(
        &store,
        &Path::from(format!("{dir}/x.parquet")),
        PutPayload::from_static(b"x"),
    )
    .await;
    let found = lines(&store, &options).await;
    let altered = blake3::hash(b"aaab").to_hex().to_string();
    let recorded = blake3::hash(b"aaaa").to_hex().to_string();
    assert_eq!(
        found,
        [
            format!(
                "altered: {dir}/a.parquet: blake3 {altered}, entry 1 recorded blake3 {recorded}"
            ),
            format!("missing: {dir}/b.parquet: recorded by entry 2, absent"),
            format!("inserted: {dir}/x.parquet: present, never recorded"),
        ]
    );
    // `--from 3` checks entry 3's file only (the others still count as recorded).
    let from = VerifyOptions {
        start: Start::Seq(3),
        ..options.clone()
    };
    assert_eq!(lines(&store, &from).await, [found[2].clone()]);
    // From a time after every entry: only what was never recorded.
    let later = VerifyOptions {
        start: "2999-01-01T00:00:00Z".parse().unwrap(),
        ..options.clone()
    };
    assert_eq!(lines(&store, &later).await, [found[2].clone()]);
    let earlier = VerifyOptions {
        start: "2000-01-01T00:00:00+02:00".parse().unwrap(),
        ..options.clone()
    };
    assert_eq!(lines(&store, &earlier).await, found);
    assert!("yesterday".parse::<Start>().is_err());
    // A witnessed head, then the chain rolled back past it.
    let witness = head(&store).await;
    assert_eq!(witness.check_signature(&key.public_key()), Ok(()));
    store.delete(&entry_path(&tenant(), 3)).await.unwrap();
    let witnessed = VerifyOptions {
        witness: Some(witness),
        ..options.clone()
    };
    let found = lines(&store, &witnessed).await;
    assert!(
        found.contains(&"broken link: head names entry 3 but the chain ends at entry 2".to_owned()),
        "{found:?}"
    );
    assert!(
        found.contains(
            &"broken link: the chain ends at entry 2, before the witnessed head (entry 3)"
                .to_owned()
        ),
        "{found:?}"
    );
}

#[tokio::test]
async fn reordered_and_edited_entries_and_forged_heads() {
    let Signed {
        store,
        chain,
        options,
        ..
    } = Signed::new();
    for name in ["a", "b", "c"] {
        write(&store, &chain, &format!("{name}.parquet"), name.as_bytes()).await;
    }
    let entry_at = |seq| entry_path(&tenant(), seq);
    let (one, two) = (
        get(&store, &entry_at(1)).await,
        get(&store, &entry_at(2)).await,
    );
    // Swapped: both objects hold the other's entry.
    put(&store, &entry_at(1), two.clone()).await;
    put(&store, &entry_at(2), one.clone()).await;
    let e = |seq| format!("_chain/tenant=acme/{seq:020}.json");
    assert_eq!(
        lines(&store, &options).await,
        [
            format!("re-ordered: {} holds entry 2", e(1)),
            format!("re-ordered: {} holds entry 1", e(2))
        ]
    );
    put(&store, &entry_at(1), one).await;
    put(&store, &entry_at(2), two.clone()).await;
    // Edited: a file's hash changed in entry 2.
    let edited = String::from_utf8(two.clone()).unwrap().replace(
        &blake3::hash(b"b").to_hex().to_string(),
        blake3::hash(b"B").to_hex().as_str(),
    );
    put(&store, &entry_at(2), edited).await;
    assert_eq!(
        lines(&store, &options).await,
        [
            "broken link: entry 2: bad signature".to_owned(),
            "broken link: entry 3: its previous hash is not entry 2's".to_owned(),
            format!(
                "altered: spans/tenant=acme/hour=2026-12-01T00/b.parquet: blake3 {}, entry 2 recorded blake3 {}",
                blake3::hash(b"b").to_hex(),
                blake3::hash(b"B").to_hex()
            ),
        ]
    );
    put(&store, &entry_at(2), two).await;
    // A head forged without the key.
    let mut forged = head(&store).await;
    forged.seq = 2;
    forged.entry_hash = entry::hash(&get(&store, &entry_at(2)).await);
    put(
        &store,
        &head_path(&tenant()),
        serde_json::to_vec(&forged).unwrap(),
    )
    .await;
    assert_eq!(
        lines(&store, &options).await,
        ["broken link: head: bad signature"]
    );
}

#[tokio::test]
async fn keys_round_trip_and_replayed_files_are_recorded_once() {
    let (pem, key) = generate_key().unwrap();
    let dir = tempfile_dir();
    let path = dir.join("key.pem");
    std::fs::write(&path, pem).unwrap();
    assert_eq!(load_signing_key(&path).unwrap().id, key.id);
    let public = hex::encode(key.public_key().as_bytes());
    assert_eq!(parse_public_key(&public).unwrap(), key.public_key());
    assert!(parse_public_key("abc").is_err());
    std::fs::remove_dir_all(&dir).unwrap();

    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let chain = Chain::new(Arc::clone(&store), None).with_writer("c");
    let since = recorder::now();
    write(&store, &chain, "a.parquet", b"a").await;
    let path = Path::from("spans/tenant=acme/hour=2026-12-01T00/a.parquet");
    let mut again = Record::new(Kind::Add);
    again.files.push(FileRecord::of_bytes(&path, b"a"));
    // A fresh process (no cache) replaying the same bytes records nothing.
    let fresh = Chain::new(Arc::clone(&store), None).with_writer("c");
    assert_eq!(
        fresh
            .append_replayed(&tenant(), again.clone(), &since)
            .await
            .unwrap(),
        None
    );
    again.files[0] = FileRecord::of_bytes(&path, b"a2");
    assert_eq!(
        fresh
            .append_replayed(&tenant(), again, &since)
            .await
            .unwrap(),
        Some(2)
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-chain-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        recorder::now().replace([':', '.'], "")
    )
}
