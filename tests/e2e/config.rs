//! The config file as users write it: its settings take effect in a running role, flags and
//! variables override it, a mistake stops the start with the file and key named, and
//! `cairn config` shows where each value came from.

use std::process::Command;

use prost::Message;

use crate::bad_input::{post, request, span, PB};
use crate::harness::{temp_dir, Cairn};

fn cairn(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    // Only the settings the test gives.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CAIRN_") {
            command.env_remove(name);
        }
    }
    let out = command
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run cairn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_file_configures_a_running_collector() {
    let dir = temp_dir();
    let file = dir.path().join("cairn.toml");
    std::fs::write(
        &file,
        "max_message_size = \"2KiB\"\nmax_hours_per_request = 3\n",
    )
    .unwrap();
    let path = file.display().to_string();
    let cairn = Cairn::start(&["--config", &path]);
    let small = request(vec![span([3; 16], 1, "fits")]).encode_to_vec();
    assert_eq!(post(&cairn, PB, None, small).await.0, 200);
    let (status, _, _) = post(&cairn, PB, None, vec![0x0a; 4 << 10]).await;
    assert_eq!(status, 413, "the file's 2KiB limit applies");

    // A flag overrides the file.
    let cairn = Cairn::start(&["--config", &path, "--max-message-size", "1MiB"]);
    let (status, _, _) = post(&cairn, PB, None, vec![0x0a; 4 << 10]).await;
    assert_eq!(
        status, 400,
        "read (and refused as malformed), not refused as too large"
    );
}

#[test]
fn mistakes_in_the_file_stop_the_start() {
    let dir = temp_dir();
    let file = dir.path().join("cairn.toml");
    let path = file.display().to_string();
    for (text, expected) in [
        (
            "flush_intervall = \"1s\"",
            "unknown key `flush_intervall`, did you mean `flush_interval`?",
        ),
        (
            "query_memory = \"lots\"",
            "query_memory: \"lots\": not a size such as 16MiB",
        ),
        (
            "ack = \"sometimes\"",
            "ack: \"sometimes\": not one of wal, stored",
        ),
        ("store = [", "config file"),
    ] {
        std::fs::write(&file, text).unwrap();
        let (ok, _, stderr) = cairn(&["serve", "--config", &path, "--store", "memory://"], &[]);
        assert!(!ok, "{text}");
        assert!(stderr.contains(expected), "{text}: {stderr}");
        assert!(stderr.contains(&path), "{stderr}");
    }
    let (ok, _, stderr) = cairn(&["serve", "--config", "/nonexistent/cairn.toml"], &[]);
    assert!(
        !ok && stderr.contains("/nonexistent/cairn.toml"),
        "{stderr}"
    );
}

#[test]
fn cairn_config_shows_each_value_and_its_origin() {
    let dir = temp_dir();
    let file = dir.path().join("cairn.toml");
    std::fs::write(&file, "flush_size = \"1MiB\"\nquery_timeout = \"5s\"\n").unwrap();
    let path = file.display().to_string();
    let (ok, stdout, stderr) = cairn(
        &["config", "--flush-interval", "3s"],
        &[("CAIRN_CONFIG", &path), ("CAIRN_QUERY_TIMEOUT", "9s")],
    );
    assert!(ok, "{stderr}");
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} in\n{stdout}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("flush_interval"), "flush_interval = \"3s\" # flag");
    assert_eq!(
        line("flush_size"),
        format!("flush_size = \"1MiB\" # file {path}")
    );
    assert_eq!(
        line("query_timeout"),
        "query_timeout = \"9s\" # environment CAIRN_QUERY_TIMEOUT"
    );
    assert_eq!(
        line("max_message_size"),
        "max_message_size = \"16MiB\" # default"
    );

    // What it prints is a config file that starts Cairn with the same settings.
    let printed = dir.path().join("printed.toml");
    std::fs::write(&printed, &stdout).unwrap();
    let printed = printed.display().to_string();
    let (ok, again, stderr) = cairn(&["config", "--config", &printed], &[]);
    assert!(ok, "{stderr}");
    assert!(again.contains("flush_interval = \"3s\""), "{again}");
    assert!(again.contains("query_timeout = \"9s\""), "{again}");
}

#[test]
fn the_readme_lists_every_setting_with_its_default() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    // `| --flag | CAIRN_FLAG | key | default |` rows, by key.
    let rows: Vec<Vec<&str>> = readme
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    let (ok, stdout, stderr) = cairn(&["config"], &[]);
    assert!(ok, "{stderr}");
    let mut keys = Vec::new();
    for line in stdout.lines().filter(|l| !l.starts_with("# Settings")) {
        let unset = line.starts_with("# ");
        let line = line.trim_start_matches("# ");
        let (key, rest) = line.split_once(" =").unwrap();
        let value = rest.split(" # ").next().unwrap().trim().trim_matches('"');
        let row = rows
            .iter()
            .find(|r| r[2] == format!("`{key}`"))
            .unwrap_or_else(|| panic!("README has no row for `{key}`"));
        let flag = format!("`--{}`", key.replace('_', "-"));
        assert_eq!(row[0], flag, "{key}");
        assert_eq!(row[1], format!("`CAIRN_{}`", key.to_uppercase()), "{key}");
        if unset {
            assert!(row[3].starts_with("none"), "{key}: {}", row[3]);
        } else if key != "spill_dir" {
            assert!(
                row[3].starts_with(&format!("`{value}`")),
                "README says {} for `{key}`, the default is {value}",
                row[3]
            );
        }
        keys.push(format!("`{key}`"));
    }
    for row in rows.iter().filter(|r| r[2] != "—") {
        assert!(
            keys.contains(&row[2].to_string()),
            "README row {} is no setting",
            row[2]
        );
    }
}
