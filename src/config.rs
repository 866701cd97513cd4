//! Resolved settings: flag or environment variable, else config file, else default.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cairn_collector::CollectorConfig;
use cairn_compactor::{CompactionConfig, Retention};
use cairn_query::QueryConfig;
use serde::Deserialize;

use crate::cli::{ServeArgs, StoreArgs};

/// The config file. Unknown keys are an error, so a typo never passes silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub store: Option<String>,
    pub log: Option<String>,
    pub otlp_grpc_addr: Option<String>,
    pub otlp_http_addr: Option<String>,
    pub http_addr: Option<String>,
    pub metrics_addr: Option<String>,
    pub max_connections: Option<String>,
    pub max_concurrent_requests: Option<String>,
    pub request_timeout: Option<String>,
    pub max_hours_per_request: Option<String>,
    pub max_flush_partitions: Option<String>,
    pub max_message_size: Option<String>,
    pub flush_interval: Option<String>,
    pub flush_size: Option<String>,
    pub max_buffer_size: Option<String>,
    pub query_memory: Option<String>,
    pub query_timeout: Option<String>,
    pub spill_dir: Option<String>,
    pub spill_size: Option<String>,
    pub prices: Option<std::path::PathBuf>,
    pub self_traces: Option<String>,
    pub ack: Option<String>,
    pub wal_dir: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub compaction: Option<String>,
    pub compaction_interval: Option<String>,
    pub compaction_target_size: Option<String>,
    pub compaction_min_files: Option<String>,
    pub compaction_grace: Option<String>,
    pub compaction_memory: Option<String>,
    pub retention: Option<String>,
    pub tenant_retention: Option<String>,
    pub approval_required: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("{key}: {message}")]
    Value { key: &'static str, message: String },
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let err = |message: String| ConfigError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| err(e.to_string()))
    }
}

/// Everything `serve`, `collector` and `query` need.
#[derive(Debug)]
pub struct Settings {
    pub store: String,
    /// User price table file, if any.
    pub prices: Option<std::path::PathBuf>,
    /// Where Cairn's own traces go, if anywhere.
    pub self_traces: Option<String>,
    pub log: String,
    pub collector: CollectorConfig,
    pub query: QueryConfig,
    /// Where the compactor alone serves `/metrics`.
    pub metrics_addr: SocketAddr,
    /// Compaction and retention, unless turned off.
    pub compaction: Option<CompactionConfig>,
}

fn pick(flag: &Option<String>, file: &Option<String>) -> Option<String> {
    flag.clone().or_else(|| file.clone())
}

fn parse_addr(
    key: &'static str,
    value: Option<String>,
    default: SocketAddr,
) -> Result<SocketAddr, ConfigError> {
    value.map_or(Ok(default), |v| {
        v.parse().map_err(|e| ConfigError::Value {
            key,
            message: format!("{v:?} is not host:port: {e}"),
        })
    })
}

/// A positive whole number.
fn count(key: &'static str, value: Option<String>, default: usize) -> Result<usize, ConfigError> {
    value.map_or(Ok(default), |v| {
        v.trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError::Value {
                key,
                message: format!("{v:?} is not a positive whole number"),
            })
    })
}

/// Parses sizes such as `16MiB`, `512KB`, `1gib` or a plain number of bytes.
pub fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn size(key: &'static str, value: Option<String>, default: usize) -> Result<usize, ConfigError> {
    value.map_or(Ok(default), |v| {
        parse_size(&v)
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError::Value {
                key,
                message: format!("{v:?} is not a size such as 16MiB"),
            })
    })
}

fn duration(
    key: &'static str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    value.map_or(Ok(default), |v| {
        humantime::parse_duration(&v)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| ConfigError::Value {
                key,
                message: format!("{v:?} is not a duration such as 500ms or 2s"),
            })
    })
}

/// The write-ahead log directory, or none when exports are acknowledged once stored.
fn wal_dir(
    args: &ServeArgs,
    file: &FileConfig,
    default: Option<std::path::PathBuf>,
) -> Result<Option<std::path::PathBuf>, ConfigError> {
    match pick(&args.ack, &file.ack).as_deref() {
        None | Some("wal") => Ok(pick(&args.wal_dir, &file.wal_dir)
            .map(std::path::PathBuf::from)
            .or(default)),
        Some("stored") => Ok(None),
        Some(other) => Err(ConfigError::Value {
            key: "ack",
            message: format!("{other:?} is not wal or stored"),
        }),
    }
}

fn compaction(
    args: &ServeArgs,
    file: &FileConfig,
) -> Result<Option<CompactionConfig>, ConfigError> {
    match pick(&args.compaction, &file.compaction).as_deref() {
        None | Some("on") => {}
        Some("off") => return Ok(None),
        Some(other) => {
            return Err(ConfigError::Value {
                key: "compaction",
                message: format!("{other:?} is not on or off"),
            })
        }
    }
    let d = CompactionConfig::default();
    let min_files = match pick(&args.compaction_min_files, &file.compaction_min_files) {
        None => d.min_files,
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| *n >= 2)
            .ok_or_else(|| ConfigError::Value {
                key: "compaction_min_files",
                message: format!("{v:?} is not a number of at least 2"),
            })?,
    };
    let retention_value = |key: &'static str, v: String| {
        humantime::parse_duration(&v)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| ConfigError::Value {
                key,
                message: format!("{v:?} is not a duration such as 30d"),
            })
    };
    let mut retention = Retention {
        default: pick(&args.retention, &file.retention)
            .map(|v| retention_value("retention", v))
            .transpose()?,
        ..Retention::default()
    };
    for item in pick(&args.tenant_retention, &file.tenant_retention)
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|s| !s.trim().is_empty())
    {
        let (tenant, age) =
            Retention::parse_override(item).map_err(|message| ConfigError::Value {
                key: "tenant_retention",
                message,
            })?;
        retention.tenants.insert(tenant, age);
    }
    Ok(Some(CompactionConfig {
        interval: duration(
            "compaction_interval",
            pick(&args.compaction_interval, &file.compaction_interval),
            d.interval,
        )?,
        target_bytes: size(
            "compaction_target_size",
            pick(&args.compaction_target_size, &file.compaction_target_size),
            d.target_bytes as usize,
        )? as u64,
        min_files,
        grace: duration(
            "compaction_grace",
            pick(&args.compaction_grace, &file.compaction_grace),
            d.grace,
        )?,
        memory_bytes: size(
            "compaction_memory",
            pick(&args.compaction_memory, &file.compaction_memory),
            d.memory_bytes,
        )?,
        retention,
    }))
}

/// Store location and log filter of any command.
pub fn store_and_log(args: &StoreArgs, file: &FileConfig) -> (String, String) {
    (
        pick(&args.store, &file.store).unwrap_or_else(|| "./cairn-data".into()),
        pick(&args.log, &file.log).unwrap_or_else(|| "info".into()),
    )
}

/// How much longer than the query timeout a request to the query API may take.
const QUERY_REQUEST_MARGIN: Duration = Duration::from_secs(30);

/// Listener limits; `request_timeout` applies to the OTLP listeners.
fn limits(args: &ServeArgs, file: &FileConfig) -> Result<cairn_net::Limits, ConfigError> {
    let d = cairn_net::Limits::default();
    Ok(cairn_net::Limits {
        max_connections: count(
            "max_connections",
            pick(&args.max_connections, &file.max_connections),
            d.max_connections,
        )?,
        max_concurrent_requests: count(
            "max_concurrent_requests",
            pick(&args.max_concurrent_requests, &file.max_concurrent_requests),
            d.max_concurrent_requests,
        )?,
        request_timeout: duration(
            "request_timeout",
            pick(&args.request_timeout, &file.request_timeout),
            d.request_timeout,
        )?,
        head_timeout: d.head_timeout,
    })
}

impl Settings {
    pub fn resolve(args: &ServeArgs, file: &FileConfig) -> Result<Self, ConfigError> {
        let (store, log) = store_and_log(&args.store, file);
        let c = CollectorConfig::default();
        let q = QueryConfig::default();
        let limits = limits(args, file)?;
        let query_timeout = duration(
            "query_timeout",
            pick(&args.query_timeout, &file.query_timeout),
            q.query_timeout,
        )?;
        Ok(Self {
            store,
            prices: args.prices.clone().or_else(|| file.prices.clone()),
            self_traces: pick(&args.self_traces, &file.self_traces),
            log,
            metrics_addr: parse_addr(
                "metrics_addr",
                pick(&args.metrics_addr, &file.metrics_addr),
                ([127, 0, 0, 1], 9464).into(),
            )?,
            collector: CollectorConfig {
                grpc_addr: parse_addr(
                    "otlp_grpc_addr",
                    pick(&args.otlp_grpc_addr, &file.otlp_grpc_addr),
                    c.grpc_addr,
                )?,
                http_addr: parse_addr(
                    "otlp_http_addr",
                    pick(&args.otlp_http_addr, &file.otlp_http_addr),
                    c.http_addr,
                )?,
                limits,
                max_hours_per_request: count(
                    "max_hours_per_request",
                    pick(&args.max_hours_per_request, &file.max_hours_per_request),
                    c.max_hours_per_request,
                )?,
                max_flush_partitions: count(
                    "max_flush_partitions",
                    pick(&args.max_flush_partitions, &file.max_flush_partitions),
                    c.max_flush_partitions,
                )?,
                max_message_bytes: size(
                    "max_message_size",
                    pick(&args.max_message_size, &file.max_message_size),
                    c.max_message_bytes,
                )?,
                flush_interval: duration(
                    "flush_interval",
                    pick(&args.flush_interval, &file.flush_interval),
                    c.flush_interval,
                )?,
                flush_bytes: size(
                    "flush_size",
                    pick(&args.flush_size, &file.flush_size),
                    c.flush_bytes,
                )?,
                max_buffer_bytes: size(
                    "max_buffer_size",
                    pick(&args.max_buffer_size, &file.max_buffer_size),
                    c.max_buffer_bytes,
                )?,
                wal_dir: wal_dir(args, file, c.wal_dir)?,
                shutdown_timeout: duration(
                    "shutdown_timeout",
                    pick(&args.shutdown_timeout, &file.shutdown_timeout),
                    c.shutdown_timeout,
                )?,
            },
            query: QueryConfig {
                http_addr: parse_addr(
                    "http_addr",
                    pick(&args.http_addr, &file.http_addr),
                    q.http_addr,
                )?,
                limits: cairn_net::Limits {
                    // Longer than any query may run, so that a query's own timeout answers.
                    request_timeout: query_timeout + QUERY_REQUEST_MARGIN,
                    ..limits
                },
                memory_limit: size(
                    "query_memory",
                    pick(&args.query_memory, &file.query_memory),
                    q.memory_limit,
                )?,
                query_timeout,
                spill_dir: pick(&args.spill_dir, &file.spill_dir)
                    .map_or(q.spill_dir, std::path::PathBuf::from),
                spill_limit: size(
                    "spill_size",
                    pick(&args.spill_size, &file.spill_size),
                    q.spill_limit as usize,
                )? as u64,
                approval_rules: pick(&args.approval_required, &file.approval_required)
                    .iter()
                    .flat_map(|v| v.split(','))
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            },
            compaction: compaction(args, file)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Some(16 << 20));
        assert_eq!(parse_size("512 kb"), Some(512 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("1.5GiB"), None);
        assert_eq!(parse_size("lots"), None);
    }

    #[test]
    fn precedence_and_unknown_keys() {
        let file: FileConfig =
            toml::from_str("flush_interval = \"250ms\"\nhttp_addr = \"127.0.0.1:9\"").unwrap();
        let args = ServeArgs {
            http_addr: Some("127.0.0.1:10".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&args, &file).unwrap();
        assert_eq!(s.query.http_addr.port(), 10);
        assert_eq!(s.collector.flush_interval, Duration::from_millis(250));
        assert_eq!(s.store, "./cairn-data");
        assert!(toml::from_str::<FileConfig>("flush_intervall = \"1s\"").is_err());
        let bad = ServeArgs {
            flush_interval: Some("soon".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&bad, &FileConfig::default()).is_err());
    }

    #[test]
    fn query_limits() {
        let d = Settings::resolve(&ServeArgs::default(), &FileConfig::default()).unwrap();
        assert_eq!(d.query.query_timeout, Duration::from_secs(60));
        assert_eq!(d.query.spill_limit, 10 << 30);
        assert!(d.query.spill_dir.ends_with("cairn-spill"));
        let file: FileConfig = toml::from_str(
            "query_timeout = \"2s\"\nspill_dir = \"/var/tmp/spill\"\nspill_size = \"1GiB\"",
        )
        .unwrap();
        let args = ServeArgs {
            query_timeout: Some("500ms".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&args, &file).unwrap();
        assert_eq!(s.query.query_timeout, Duration::from_millis(500));
        assert_eq!(
            s.query.spill_dir,
            std::path::PathBuf::from("/var/tmp/spill")
        );
        assert_eq!(s.query.spill_limit, 1 << 30);
        let bad = ServeArgs {
            query_timeout: Some("0s".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&bad, &FileConfig::default()).is_err());
    }

    #[test]
    fn compaction_and_retention() {
        let file: FileConfig =
            toml::from_str("retention = \"30d\"\ntenant_retention = \"acme=7d, globex=1h\"")
                .unwrap();
        let s = Settings::resolve(&ServeArgs::default(), &file).unwrap();
        let c = s.compaction.unwrap();
        assert_eq!(c.retention.default, Some(Duration::from_secs(30 * 86_400)));
        let acme = cairn_schema::tenant::Tenant::new("acme").unwrap();
        assert_eq!(c.retention.of(&acme), Some(Duration::from_secs(7 * 86_400)));
        let off = ServeArgs {
            compaction: Some("off".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&off, &file).unwrap().compaction.is_none());
        let bad = ServeArgs {
            tenant_retention: Some("acme".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&bad, &file).is_err());
    }
}
