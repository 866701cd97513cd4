//! Precedence (flag, variable, file, default), file errors and the effective listing, on a
//! small command built like the binary's.

use std::ffi::OsString;
use std::time::Duration;

use cairn_config::{config_path, defaults, effective, parse, ConfigError, FileLayer, Origin};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Debug, Args, PartialEq)]
struct Block {
    /// A duration.
    #[arg(long, env = "CAIRN_LAYERS_INTERVAL", default_value = "1s", value_parser = parse::span)]
    interval: Duration,
    /// A size.
    #[arg(long, env = "CAIRN_LAYERS_BUFFER", default_value = "64MiB", value_parser = parse::size)]
    buffer: usize,
    /// A list.
    #[arg(long, env = "CAIRN_LAYERS_NAMES", value_delimiter = ',', value_parser = parse::item)]
    names: Vec<String>,
    /// Optional.
    #[arg(long, env = "CAIRN_LAYERS_TARGET")]
    target: Option<String>,
    /// Per invocation only.
    #[arg(long)]
    ready: Option<String>,
}

#[derive(Debug, Parser)]
struct Cli {
    #[arg(long, global = true)]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    Run(Block),
}

const PER_INVOCATION: &[&str] = &["config", "ready"];

fn write(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn run(file: Option<&FileLayer>, args: &[&str]) -> Result<(Block, clap::ArgMatches), String> {
    let mut command = Cli::command();
    if let Some(file) = file {
        command = file.apply(command).map_err(|e| e.to_string())?;
    }
    let matches = command
        .try_get_matches_from(args)
        .map_err(|e| e.to_string())?;
    let Sub::Run(block) = Cli::from_arg_matches(&matches).unwrap().command;
    let (_, sub) = matches.subcommand().unwrap();
    Ok((block, sub.clone()))
}

#[test]
fn flag_beats_variable_beats_file_beats_default() {
    let text = "interval = \"250ms\"\nbuffer = 4096\nnames = [\"a\", \" b\"]\ntarget = \"t\"";
    let f = write(text);
    let file = FileLayer::load(f.path(), &Cli::command(), PER_INVOCATION).unwrap();
    std::env::set_var("CAIRN_LAYERS_BUFFER", "2KiB");
    let (block, matches) = run(Some(&file), &["cli", "run", "--target", "u"]).unwrap();
    std::env::remove_var("CAIRN_LAYERS_BUFFER");
    assert_eq!(block.interval, Duration::from_millis(250));
    assert_eq!(block.buffer, 2048);
    assert_eq!(block.names, ["a", "b"]);
    assert_eq!(block.target.as_deref(), Some("u"));

    let settings = effective(run_command(), &matches, Some(&file), PER_INVOCATION);
    let origin = |key: &str| {
        settings
            .iter()
            .find(|s| s.key == key)
            .unwrap()
            .origin
            .clone()
    };
    assert_eq!(origin("interval"), Origin::File(f.path().to_owned()));
    assert_eq!(origin("buffer"), Origin::Env("CAIRN_LAYERS_BUFFER".into()));
    assert_eq!(origin("target"), Origin::Flag);
    assert!(settings.iter().all(|s| s.key != "ready"), "per-invocation");
    let lines: Vec<String> = settings.iter().map(ToString::to_string).collect();
    assert!(lines[0].starts_with("interval = \"250ms\""), "{lines:?}");
    assert!(lines[2].starts_with("names = [\"a\", \" b\"]"), "{lines:?}");
    // The listing is itself a config file that reads back.
    let round = write(&lines.join("\n"));
    FileLayer::load(round.path(), &Cli::command(), PER_INVOCATION).unwrap();

    let (block, matches) = run(None, &["cli", "run"]).unwrap();
    assert_eq!(block, defaults::<Block>());
    let settings = effective(run_command(), &matches, None, PER_INVOCATION);
    assert_eq!(settings[3].origin, Origin::Unset);
    assert_eq!(settings[3].to_string().split(' ').next(), Some("#"));
}

fn run_command() -> &'static clap::Command {
    Box::leak(Box::new(Cli::command()))
        .find_subcommand("run")
        .unwrap()
}

#[test]
fn defaults_ignore_the_environment() {
    std::env::set_var("CAIRN_LAYERS_INTERVAL", "9s");
    let block = defaults::<Block>();
    std::env::remove_var("CAIRN_LAYERS_INTERVAL");
    assert_eq!(block.interval, Duration::from_secs(1));
    assert_eq!(block.buffer, 64 << 20);
}

#[test]
fn file_errors_name_the_file_and_key() {
    let load = |text: &str| FileLayer::load(write(text).path(), &Cli::command(), PER_INVOCATION);
    match load("intervall = \"1s\"") {
        Err(ConfigError::UnknownKey { key, hint, .. }) => {
            assert_eq!(key, "intervall");
            assert_eq!(hint, ", did you mean `interval`?");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        load("ready = \"x\""),
        Err(ConfigError::UnknownKey { .. })
    ));
    assert!(matches!(
        load("[interval]\na = 1"),
        Err(ConfigError::Value { .. })
    ));
    assert!(matches!(load("interval ="), Err(ConfigError::Read { .. })));

    let file = load("interval = \"soon\"").unwrap();
    let err = file.apply(Cli::command()).unwrap_err().to_string();
    assert!(err.contains("interval: \"soon\": not a duration"), "{err}");
    let file = load("buffer = [\"1KiB\", \"2KiB\"]").unwrap();
    let err = file.apply(Cli::command()).unwrap_err().to_string();
    assert!(err.contains("buffer: takes one value"), "{err}");
    let file = load("names = \"x,y\"").unwrap();
    let (block, _) = run(Some(&file), &["cli", "run"]).unwrap();
    assert_eq!(block.names, ["x", "y"]);
}

#[test]
fn the_file_path_comes_before_parsing() {
    let args = |words: &[&str]| words.iter().map(OsString::from).collect::<Vec<_>>();
    assert_eq!(
        config_path(&args(&["cairn", "serve", "--config", "a.toml"])),
        Some("a.toml".into())
    );
    assert_eq!(
        config_path(&args(&["cairn", "--config=b.toml", "sql", "x"])),
        Some("b.toml".into())
    );
    assert_eq!(
        config_path(&args(&["cairn", "sql", "--", "--config"])),
        None
    );
}
