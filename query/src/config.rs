//! Query settings: the `--flag`, `CAIRN_*` variable and config file key of each, with its only
//! default. [`EngineConfig`] is what any query needs (`cairn sql` too); [`QueryConfig`] adds the
//! API's listener and the Postgres wire listener ([`PgConfig`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cairn_config::parse;

use crate::distributed::route::Placement;

/// How much longer than the query timeout a request to the query API may take, so that a
/// query's own timeout is what answers.
const REQUEST_MARGIN: Duration = Duration::from_secs(30);

/// Memory, time and spill space of queries, and the approval rules views apply.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineConfig {
    /// Memory all running queries may use together (results included), a quarter of it kept
    /// for cached Parquet metadata.
    #[arg(long, env = "CAIRN_QUERY_MEMORY", default_value = "2GiB", value_parser = parse::size)]
    pub query_memory: usize,
    /// Wall time a query may run; then it is cancelled and answered 504.
    #[arg(long, env = "CAIRN_QUERY_TIMEOUT", default_value = "60s", value_parser = parse::span)]
    pub query_timeout: Duration,
    /// Directory queries spill to when out of memory; created if missing.
    #[arg(long, env = "CAIRN_SPILL_DIR", default_value_os_t = std::env::temp_dir().join("cairn-spill"))]
    pub spill_dir: PathBuf,
    /// Disk all running queries may spill to together; beyond it a query fails.
    #[arg(long, env = "CAIRN_SPILL_SIZE", default_value = "10GiB", value_parser = parse::size)]
    pub spill_size: usize,
    /// Tools that always need a human approval, whatever the policy in force says, e.g.
    /// `delete_*,issue_refund` (`*` is a wildcard); used by bypass detection.
    #[arg(long, env = "CAIRN_APPROVAL_REQUIRED", value_delimiter = ',', value_parser = parse::item)]
    pub approval_required: Vec<String>,
    /// Queries each tenant may run at once (API, Tempo API, Postgres wire); beyond it a query is
    /// refused as retryable (HTTP 429, SQLSTATE 53400). Per-tenant overrides in the
    /// `--tenant-limits` file. No limit by default.
    #[arg(long, env = "CAIRN_TENANT_MAX_CONCURRENT_QUERIES", value_parser = parse::positive)]
    pub tenant_max_concurrent_queries: Option<usize>,
    #[command(flatten)]
    pub distribute: DistributeConfig,
}

/// Where user SQL runs: here, or on a Ballista cluster (`cairn scheduler`, `cairn executor`).
#[derive(Debug, Clone, clap::Args)]
pub struct DistributeConfig {
    /// Ballista scheduler that runs large scans on executors, e.g. `df://cairn-scheduler:50050`.
    /// Without one, every query runs in this process.
    #[arg(long, env = "CAIRN_SCHEDULER")]
    pub scheduler: Option<String>,
    /// Where user SQL runs when a scheduler is set: `auto` (on the cluster when its scans read
    /// more than `--distribute-above`), `local` or `distributed`. A statement's
    /// `/*+ DISTRIBUTED */` or `/*+ LOCAL */` comment wins. The API's own answers (trails,
    /// lineage, replay) always run here.
    #[arg(long, env = "CAIRN_DISTRIBUTE", value_enum, default_value = "auto")]
    pub distribute: Placement,
    /// Stored bytes a statement's scans must read for `auto` to send it to the cluster.
    #[arg(long, env = "CAIRN_DISTRIBUTE_ABOVE", default_value = "8GiB", value_parser = parse::size)]
    pub distribute_above: usize,
    /// Partitions of each stage of a distributed statement: about the task slots of all
    /// executors together.
    #[arg(long, env = "CAIRN_DISTRIBUTE_PARTITIONS", default_value = "16", value_parser = parse::positive)]
    pub distribute_partitions: usize,
}

/// The query API: its listener and its engine.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryConfig {
    /// Query API listen address.
    #[arg(long, env = "CAIRN_HTTP_ADDR", default_value = "127.0.0.1:3200")]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub engine: EngineConfig,
    #[command(flatten)]
    pub pg: PgConfig,
}

/// The Postgres wire protocol listener (psql, Grafana's PostgreSQL data source).
#[derive(Debug, Clone, clap::Args)]
pub struct PgConfig {
    /// Postgres wire protocol listen address, or `off`.
    #[arg(long, env = "CAIRN_PG_ADDR", default_value = "127.0.0.1:5433", value_parser = listen)]
    pub pg_addr: Listen,
    /// Password every Postgres client must give (SCRAM-SHA-256); without one, clients are
    /// trusted, which is only allowed on a loopback address.
    #[arg(long, env = "CAIRN_PG_PASSWORD", hide_env_values = true)]
    pub pg_password: Option<String>,
    /// PEM certificate chain for TLS on the Postgres listener (with `--pg-tls-key`).
    #[arg(long, env = "CAIRN_PG_TLS_CERT")]
    pub pg_tls_cert: Option<PathBuf>,
    /// PEM private key for TLS on the Postgres listener (with `--pg-tls-cert`).
    #[arg(long, env = "CAIRN_PG_TLS_KEY")]
    pub pg_tls_key: Option<PathBuf>,
}

/// A listener's address, or `off` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    At(SocketAddr),
}

impl Listen {
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::At(addr) => Some(addr),
        }
    }
}

/// `off`, or a socket address such as `127.0.0.1:5433`.
fn listen(text: &str) -> Result<Listen, String> {
    match text.trim() {
        "off" => Ok(Listen::Off),
        addr => addr
            .parse()
            .map(Listen::At)
            .map_err(|_| "not an address such as 127.0.0.1:5433, nor off".to_owned()),
    }
}

impl QueryConfig {
    /// The listener limits of the API given those of every listener: requests may take as
    /// long as a query, and a margin.
    pub fn limits(&self, base: cairn_net::Limits) -> cairn_net::Limits {
        cairn_net::Limits {
            request_timeout: self.engine.query_timeout + REQUEST_MARGIN,
            ..base
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        cairn_config::defaults()
    }
}

impl Default for DistributeConfig {
    fn default() -> Self {
        cairn_config::defaults()
    }
}

impl Default for PgConfig {
    fn default() -> Self {
        cairn_config::defaults()
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        cairn_config::defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_request_limits() {
        let q = QueryConfig::default();
        assert_eq!(q.http_addr.port(), 3200);
        assert_eq!(q.engine.query_timeout, Duration::from_secs(60));
        assert_eq!(q.engine.spill_size, 10 << 30);
        assert!(q.engine.spill_dir.ends_with("cairn-spill"));
        assert!(q.engine.approval_required.is_empty());
        assert!(q.engine.tenant_max_concurrent_queries.is_none());
        assert!(q.engine.distribute.scheduler.is_none());
        assert_eq!(q.engine.distribute.distribute, Placement::Auto);
        assert_eq!(q.engine.distribute.distribute_above, 8 << 30);
        assert_eq!(q.pg.pg_addr, Listen::At("127.0.0.1:5433".parse().unwrap()));
        assert_eq!(listen("off"), Ok(Listen::Off));
        assert!(listen("5433").is_err());
        assert!(q.pg.pg_password.is_none() && q.pg.pg_tls_cert.is_none());
        let limits = q.limits(cairn_net::Limits::default());
        assert_eq!(limits.request_timeout, Duration::from_secs(90));
        assert_eq!(limits.max_connections, 1024);
    }
}
