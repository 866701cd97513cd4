//! Command line: every setting is a `--flag`, a `CAIRN_*` environment variable and, except the
//! few that only make sense per invocation, a key of the optional TOML config file. Each crate
//! declares its own settings (`CollectorConfig`, `QueryConfig`, `CompactionConfig`, `Limits`);
//! the commands here flatten them.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use cairn_collector::CollectorConfig;
use cairn_compactor::CompactionConfig;
use cairn_config::{config_path, ConfigError, FileLayer};
use cairn_query::{EngineConfig, QueryConfig};
use cairn_schema::tenant::Tenant;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Agent trail observability: OTLP in, Parquet in object storage, SQL out"
)]
pub struct Cli {
    /// TOML config file whose keys are the settings' long names with `_` (e.g.
    /// `flush_interval = "2s"`); flags and environment variables override it.
    #[arg(long, env = "CAIRN_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: OTLP receivers, writer, compaction and query API.
    Serve(ServeArgs),
    /// Run only the OTLP receivers and writer.
    Collector(ServeArgs),
    /// Run only the query API.
    Query(ServeArgs),
    /// Run only compaction and retention (one per store; `serve` runs them itself).
    Compact(ServeArgs),
    /// Run one SQL query against the store and print the result.
    Sql(SqlArgs),
    /// Print the settings in force, each with where its value came from, as a config file.
    Config(ServeArgs),
    /// Build the trace index of tenants whose spans were written before it existed.
    Reindex(ReindexArgs),
    /// The tamper-evident chain of committed files: signing key, heads, adoption.
    Chain(crate::chain::ChainArgs),
    /// Check a tenant's files against its chain; report every difference (exit status 1).
    Verify(crate::verify::VerifyArgs),
    /// Create, list and revoke the API tokens of `--auth-tokens`.
    Token(crate::token::TokenArgs),
    /// Run a Ballista scheduler: queriers with `--scheduler` send it their large scans.
    Scheduler(SchedulerCommand),
    /// Run a Ballista executor: runs the scheduler's tasks, reading the store directly.
    Executor(ExecutorCommand),
}

#[derive(Debug, Args, Clone)]
pub struct SchedulerCommand {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where /metrics, /ready and /live are served.
    #[arg(long, env = "CAIRN_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,
    #[command(flatten, next_help_heading = "Scheduler")]
    pub scheduler: cairn_query::distributed::scheduler::SchedulerArgs,
}

#[derive(Debug, Args, Clone)]
pub struct ExecutorCommand {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where /metrics, /ready and /live are served.
    #[arg(long, env = "CAIRN_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,
    #[command(flatten, next_help_heading = "Executor")]
    pub executor: cairn_query::distributed::executor::ExecutorArgs,
}

/// Settings of every command.
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// Where data lives: a directory, file:///path, s3://bucket/prefix (AWS_* variables
    /// configure S3) or memory://
    #[arg(long, env = "CAIRN_STORE", default_value = "./cairn-data")]
    pub store: String,
    /// Log filter, e.g. `info` or `cairn_collector=debug`.
    #[arg(long, env = "CAIRN_LOG", default_value = "info")]
    pub log: String,
}

/// Whether a part runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// TOML price table overlaid on the bundled one, for the derived cost of model calls.
    #[arg(long, env = "CAIRN_PRICES")]
    pub prices: Option<PathBuf>,
    /// Send Cairn's own traces (exports, flushes, queries, compaction passes) to this OTLP/gRPC
    /// endpoint, e.g. http://127.0.0.1:4317 for Cairn itself (tenant `cairn-self`).
    #[arg(long, env = "CAIRN_SELF_TRACES")]
    pub self_traces: Option<String>,
    /// Write the bound addresses as JSON to this file once listening (for scripts and tests).
    #[arg(long, env = "CAIRN_READY_FILE")]
    pub ready_file: Option<PathBuf>,
    #[command(flatten, next_help_heading = "Every listener")]
    pub limits: cairn_net::Limits,
    #[command(flatten, next_help_heading = "TLS (every listener)")]
    pub tls: cairn_net::tls::TlsConfig,
    #[command(flatten, next_help_heading = "Authentication (every listener)")]
    pub auth: cairn_auth::AuthConfig,
    #[command(flatten, next_help_heading = "Collector")]
    pub collector: CollectorConfig,
    #[command(flatten, next_help_heading = "Tamper-evident chain")]
    pub chain: crate::chain::ChainConfig,
    #[command(flatten, next_help_heading = "Kubernetes")]
    pub kube: cairn_k8s::KubeConfig,
    #[command(flatten, next_help_heading = "Query API")]
    pub query: QueryConfig,
    #[command(flatten, next_help_heading = "Compaction and retention")]
    pub compaction: CompactionArgs,
}

#[derive(Debug, Args, Clone)]
pub struct CompactionArgs {
    /// Whether `serve` compacts and expires files.
    #[arg(
        id = "compaction",
        long = "compaction",
        env = "CAIRN_COMPACTION",
        value_enum,
        default_value = "on"
    )]
    pub switch: Switch,
    /// Where `cairn compact` serves /metrics (the other roles serve it on their own ports).
    #[arg(long, env = "CAIRN_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,
    #[command(flatten)]
    pub config: CompactionConfig,
    /// Several compactors of one store take turns through a Kubernetes Lease.
    #[command(flatten)]
    pub lease: cairn_k8s::lease::LeaseConfig,
}

#[derive(Debug, Args, Clone)]
pub struct SqlArgs {
    /// The query (read-only: SELECT, WITH, EXPLAIN, SHOW, DESCRIBE).
    pub sql: String,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Output: table, json, csv or arrow (an Arrow IPC stream).
    #[arg(long, env = "CAIRN_FORMAT", default_value = "table")]
    pub format: String,
    /// Tenant whose rows to query.
    #[arg(long, env = "CAIRN_TENANT", default_value = "default")]
    pub tenant: String,
    #[command(flatten, next_help_heading = "Query engine")]
    pub engine: EngineConfig,
}

#[derive(Debug, Args, Clone)]
pub struct ReindexArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Tenants to index (all tenants with spans when none is given).
    #[arg(long = "tenant", env = "CAIRN_REINDEX_TENANTS", value_delimiter = ',', value_parser = parse_tenant)]
    pub tenants: Vec<Tenant>,
    /// Index tenants whose index is already complete too.
    #[arg(long, env = "CAIRN_REINDEX_FORCE")]
    pub force: bool,
    /// Memory the read of one hour partition may use.
    #[arg(long, env = "CAIRN_COMPACTION_MEMORY", default_value = "512MiB", value_parser = cairn_config::parse::size)]
    pub compaction_memory: usize,
    #[command(flatten, next_help_heading = "Tamper-evident chain")]
    pub chain: crate::chain::ChainConfig,
}

fn parse_tenant(text: &str) -> Result<Tenant, String> {
    Tenant::new(text).map_err(|e| e.to_string())
}

/// Settings that are not config file keys: they name one invocation's input or output.
pub const PER_INVOCATION: &[&str] = &[
    "config",
    "ready_file",
    "format",
    "tenant",
    "tenants",
    "force",
    "out",
    "from",
    "witness",
    "parallel",
    "role",
    "expires",
    "name",
    "id",
];

/// Settings whose values `cairn config` does not print.
pub const SECRETS: &[&str] = &["pg_password"];

/// The command line read over the config file's settings.
pub struct Parsed {
    pub cli: Cli,
    /// What clap matched, for the origin of each value.
    pub matches: ArgMatches,
    pub command: clap::Command,
    pub file: Option<FileLayer>,
}

/// Parses `args`: the config file first (its values become the defaults), then the command
/// line and environment. A usage error exits as clap does.
pub fn parse(args: &[OsString]) -> Result<Parsed, ConfigError> {
    let mut command = Cli::command();
    let file = config_path(args)
        .map(|path| FileLayer::load(&path, &command, PER_INVOCATION))
        .transpose()?;
    if let Some(file) = &file {
        command = file.apply(command)?;
    }
    let matches = command
        .try_get_matches_from_mut(args)
        .unwrap_or_else(|e| e.exit());
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok(Parsed {
        cli,
        matches,
        command,
        file,
    })
}

/// `cairn config`: every setting of the roles with its value and origin, as a config file.
pub fn print_config(parsed: &Parsed) -> String {
    let (name, matches) = parsed.matches.subcommand().expect("a subcommand");
    let command = parsed
        .command
        .find_subcommand(name)
        .expect("parsed subcommand");
    let origin = parsed
        .file
        .as_ref()
        .map_or(String::new(), |f| format!(", then {}", f.path().display()));
    let mut out =
        format!("# Settings in force: flags, then CAIRN_* variables{origin}, then defaults.\n");
    for mut setting in
        cairn_config::effective(command, matches, parsed.file.as_ref(), PER_INVOCATION)
    {
        if SECRETS.contains(&setting.key.as_str()) && !setting.values.is_empty() {
            setting.values = vec!["(hidden)".to_owned()];
        }
        out.push_str(&setting.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse_with(file: Option<&str>, words: &[&str]) -> Result<Parsed, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.toml");
        let mut args: Vec<OsString> = words.iter().map(OsString::from).collect();
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
            args.extend(["--config".into(), path.clone().into_os_string()]);
        }
        parse(&args)
    }

    fn serve(parsed: Parsed) -> ServeArgs {
        match parsed.cli.command {
            Command::Serve(args) | Command::Config(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_over_file_over_defaults() {
        let file = "flush_interval = \"250ms\"\nhttp_addr = \"127.0.0.1:9\"\nmax_connections = 7";
        let args = serve(
            parse_with(
                Some(file),
                &["cairn", "serve", "--http-addr", "127.0.0.1:10"],
            )
            .unwrap(),
        );
        assert_eq!(args.query.http_addr.port(), 10);
        assert_eq!(
            args.query.pg.pg_addr,
            cairn_query::Listen::At("127.0.0.1:5433".parse().unwrap())
        );
        let off = serve(parse_with(Some("pg_addr = \"off\""), &["cairn", "serve"]).unwrap());
        assert_eq!(off.query.pg.pg_addr, cairn_query::Listen::Off);
        assert_eq!(args.collector.flush_interval, Duration::from_millis(250));
        assert_eq!(args.limits.max_connections, 7);
        assert_eq!(args.common.store, "./cairn-data");
        assert_eq!(args.compaction.switch, Switch::On);
        // Defaults are the crates' own.
        let d = serve(parse_with(None, &["cairn", "serve"]).unwrap());
        assert_eq!(
            d.collector.flush_interval,
            cairn_collector::CollectorConfig::default().flush_interval
        );
        assert_eq!(d.query.engine.query_timeout, Duration::from_secs(60));
    }

    #[test]
    fn the_file_is_checked_key_by_key() {
        let err = |file: &str| {
            parse_with(Some(file), &["cairn", "serve"])
                .err()
                .unwrap()
                .to_string()
        };
        assert!(err("flush_intervall = \"1s\"").contains("did you mean `flush_interval`"));
        assert!(err("ready_file = \"x\"").contains("unknown key `ready_file`"));
        assert!(
            err("flush_interval = \"soon\"").contains("flush_interval: \"soon\": not a duration")
        );
        assert!(err("ack = \"maybe\"").contains("ack: \"maybe\": not one of wal, stored"));
        assert!(err("compaction_min_files = 1").contains("at least 2"));
        assert!(err("tenant_retention = \"acme\"").contains("tenant_retention"));
    }

    #[test]
    fn sql_reads_the_query_settings() {
        let file = "query_memory = \"64MiB\"\nflush_interval = \"2s\"\nspill_size = \"1GiB\"";
        let parsed = parse_with(
            Some(file),
            &["cairn", "sql", "SELECT 1", "--query-timeout", "5s"],
        )
        .unwrap();
        let Command::Sql(args) = parsed.cli.command else {
            panic!()
        };
        assert_eq!(args.engine.query_memory, 64 << 20);
        assert_eq!(args.engine.spill_size, 1 << 30);
        assert_eq!(args.engine.query_timeout, Duration::from_secs(5));
    }

    #[test]
    fn compaction_and_retention() {
        let file = "retention = \"30d\"\ntenant_retention = \"acme=7d, globex=1h\"";
        let args = serve(parse_with(Some(file), &["cairn", "serve"]).unwrap());
        let r = &args.compaction.config.retention;
        assert_eq!(r.retention, Some(Duration::from_secs(30 * 86_400)));
        let acme = cairn_schema::tenant::Tenant::new("acme").unwrap();
        assert_eq!(r.of(&acme), Some(Duration::from_secs(7 * 86_400)));
        let off =
            serve(parse_with(Some(file), &["cairn", "serve", "--compaction", "off"]).unwrap());
        assert_eq!(off.compaction.switch, Switch::Off);
    }

    #[test]
    fn config_lists_every_setting_with_its_origin() {
        let parsed = parse_with(
            Some("flush_size = \"1MiB\"\npg_password = \"s3cret\""),
            &["cairn", "config", "--flush-interval", "3s"],
        )
        .unwrap();
        let text = print_config(&parsed);
        let line = |key: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with(&format!("{key} =")) || l.starts_with(&format!("# {key} ="))
                })
                .unwrap_or_else(|| panic!("{key} missing from\n{text}"))
                .to_owned()
        };
        assert!(line("flush_interval").ends_with("# flag"), "{text}");
        assert!(line("flush_size").contains("\"1MiB\"") && line("flush_size").contains("# file "));
        assert!(line("max_connections").starts_with("max_connections = 1024"));
        assert!(line("max_connections").ends_with("# default"));
        assert!(line("retention").starts_with("# retention ="));
        assert!(!text.contains("ready_file"));
        assert!(line("pg_password").contains("(hidden)") && !text.contains("s3cret"));
        // Every setting of every role is listed.
        for key in [
            "store",
            "otlp_grpc_addr",
            "http_addr",
            "pg_addr",
            "pg_tls_cert",
            "pg_tls_key",
            "tls_cert",
            "tls_key",
            "tls_client_ca",
            "tls_reload_interval",
            "query_memory",
            "compaction",
            "metrics_addr",
            "tenant_retention",
            "request_timeout",
            "self_traces",
        ] {
            line(key);
        }
    }
}
