//! The crate graph the architecture allows, checked against `cargo metadata`: each crate may
//! depend only on the Cairn crates listed for it (the storage contract on none), and the
//! contract stays small. A new crate must be added here, with its allowed edges, to pass.

use std::collections::BTreeMap;
use std::process::Command;

/// Each workspace crate and the Cairn crates it may depend on (normal and build dependencies;
/// tests may use more).
const ALLOWED: &[(&str, &[&str])] = &[
    ("cairn-config", &[]),
    ("cairn-schema", &[]),
    ("cairn-telemetry", &[]),
    ("cairn-ui", &[]),
    ("cairn-net", &["cairn-config", "cairn-telemetry"]),
    (
        "cairn-auth",
        &[
            "cairn-config",
            "cairn-schema",
            "cairn-telemetry",
            "cairn-net",
        ],
    ),
    ("cairn-normalize", &["cairn-schema"]),
    (
        "cairn-k8s",
        &["cairn-config", "cairn-normalize", "cairn-telemetry"],
    ),
    ("cairn-store", &["cairn-schema", "cairn-telemetry"]),
    (
        "cairn-collector",
        &[
            "cairn-schema",
            "cairn-normalize",
            "cairn-store",
            "cairn-telemetry",
            "cairn-net",
            "cairn-auth",
            "cairn-config",
        ],
    ),
    (
        "cairn-query",
        &[
            "cairn-schema",
            "cairn-normalize",
            "cairn-store",
            "cairn-telemetry",
            "cairn-net",
            "cairn-auth",
            "cairn-config",
            "cairn-ui",
        ],
    ),
    (
        "cairn-compactor",
        &[
            "cairn-schema",
            "cairn-normalize",
            "cairn-store",
            "cairn-telemetry",
            "cairn-config",
        ],
    ),
    (
        "cairn-bench",
        &[
            "cairn-schema",
            "cairn-normalize",
            "cairn-store",
            "cairn-collector",
        ],
    ),
    (
        "cairn",
        &[
            "cairn-config",
            "cairn-schema",
            "cairn-normalize",
            "cairn-store",
            "cairn-telemetry",
            "cairn-net",
            "cairn-collector",
            "cairn-query",
            "cairn-compactor",
            "cairn-k8s",
            "cairn-auth",
        ],
    ),
];

/// What the storage contract may depend on at all.
const CONTRACT_DEPENDENCIES: &[&str] = &[
    "arrow",
    "object_store",
    "serde",
    "thiserror",
    "hex",
    "chrono",
    "uuid",
];

/// The standard output of `cargo <args>` run in the workspace.
fn cargo(args: &[&str]) -> Vec<u8> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn metadata() -> serde_json::Value {
    let out = cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]);
    serde_json::from_slice(&out).expect("metadata JSON")
}

/// Each workspace package's normal and build dependencies: name → (dependency, its entry).
fn dependencies(meta: &serde_json::Value) -> BTreeMap<String, Vec<serde_json::Value>> {
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .cloned()
                .collect();
            (p["name"].as_str().expect("name").to_owned(), deps)
        })
        .collect()
}

#[test]
fn crates_depend_only_as_the_architecture_allows() {
    let deps = dependencies(&metadata());
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (package, deps) in &deps {
        let Some(may) = allowed.get(package.as_str()) else {
            wrong.push(format!("{package}: not in the architecture table"));
            continue;
        };
        for dep in deps {
            let name = dep["name"].as_str().expect("dependency name");
            if name.starts_with("cairn") && !may.contains(&name) {
                wrong.push(format!("{package} → {name}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "edges the architecture does not allow: {wrong:?}"
    );
    assert_eq!(
        deps.len(),
        ALLOWED.len(),
        "a crate of the table is gone: {:?}",
        deps.keys()
    );
}

#[test]
fn the_contract_stays_small() {
    let deps = dependencies(&metadata());
    for dep in &deps["cairn-schema"] {
        let name = dep["name"].as_str().expect("dependency name");
        assert!(
            CONTRACT_DEPENDENCIES.contains(&name),
            "cairn-schema depends on {name}"
        );
        if name == "object_store" {
            // The path type only: no client of any cloud.
            assert_eq!(dep["uses_default_features"], false, "{dep}");
            assert_eq!(dep["features"], serde_json::json!([]), "{dep}");
        }
    }
}

/// Every dependency with its features, as `cargo tree` resolves them for `packages`.
fn resolved(packages: &[&str]) -> Vec<String> {
    let mut args = vec![
        "tree",
        "--offline",
        "-e",
        "normal,build",
        "--prefix",
        "none",
    ];
    args.extend(["-f", "{p} [{f}]"]);
    args.extend(packages);
    let out = cargo(&args);
    let mut lines: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("cairn"))
        .map(|l| {
            l.replace(" (*)", "")
                .replace(" (proc-macro)", "")
                .split(" (/")
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

/// `cargo run --release -- serve` (the binary alone) resolves every dependency with the same
/// features as `cargo build --release --workspace` (the benches): one set of artifacts serves
/// both, instead of DataFusion and the object-store client compiling twice.
#[test]
fn the_binary_alone_builds_with_the_workspace_features() {
    let alone = resolved(&["-p", "cairn"]);
    let workspace = resolved(&["--workspace"]);
    let only_workspace: Vec<_> = workspace.iter().filter(|l| !alone.contains(l)).collect();
    let only_alone: Vec<_> = alone.iter().filter(|l| !workspace.contains(l)).collect();
    assert!(
        only_workspace.is_empty() && only_alone.is_empty(),
        "features differ: with the whole workspace {only_workspace:?}, with the binary alone {only_alone:?}"
    );
}
