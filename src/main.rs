//! `cairn`: the one binary, with roles.
//!
//! `cairn serve` runs the OTLP receivers, the Parquet writer, compaction and the query API in one
//! process on a local data directory by default; `cairn collector`, `cairn query` and
//! `cairn compact` run the parts alone (they share nothing but the object store); `cairn sql`
//! runs one query against the store and prints it; `cairn config` prints the settings in force;
//! `cairn reindex` builds the trace index and run summaries of a store written before they existed;
//! `cairn scheduler` and `cairn executor` run a Ballista cluster that queriers send large scans to.
//! Settings come from flags, `CAIRN_*` environment variables and an optional TOML file, in that
//! order of precedence (see [`cli`]).

mod chain;
mod cli;
mod lease;
mod memory;
mod supervise;
mod token;
mod verify;

use std::io::Write;
use std::process::ExitCode;

use cairn_collector::CollectorServer;
use cairn_compactor::Compactor;
use cairn_query::format::Format;
use cairn_query::{QueryEngine, QueryServer};
use cairn_schema::tenant::Tenant;
use tokio_util::sync::CancellationToken;

use crate::cli::{
    Command, ExecutorCommand, ReindexArgs, SchedulerCommand, ServeArgs, SqlArgs, Switch,
};
use crate::supervise::{supervise, BoxError, Role as Part};

/// jemalloc with one arena per CPU, freed pages returned within a second by its background
/// thread: the collector's memory budget (`--max-buffer-size`) bounds what is allocated, and
/// this keeps what the process holds close to it. Per-thread heaps (mimalloc, glibc's default
/// arenas) each kept freed pages of the threads that decode and flush, holding twice the budget
/// and more after a burst (`benches/memory_budget.py`). `_RJEM_MALLOC_CONF` overrides these
/// settings.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read when it starts. The one item of the binary that is not safe
/// code: jemalloc finds its settings by this exported symbol name, which nothing else defines.
#[allow(non_upper_case_globals, unsafe_code)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] =
    b"percpu_arena:percpu,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    All,
    Collector,
    Query,
    Compactor,
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = match cli::parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Config(_) = &parsed.cli.command {
        print!("{}", cli::print_config(&parsed));
        return ExitCode::SUCCESS;
    }
    if let Command::Token(args) = parsed.cli.command {
        return match token::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match parsed.cli.command {
            Command::Serve(args) => serve(Role::All, args).await,
            Command::Collector(args) => serve(Role::Collector, args).await,
            Command::Query(args) => serve(Role::Query, args).await,
            Command::Compact(args) => serve(Role::Compactor, args).await,
            Command::Sql(args) => sql(args).await,
            Command::Config(_) => Ok(()),
            Command::Reindex(args) => reindex(args).await,
            Command::Chain(args) => chain::run(args).await,
            Command::Verify(args) => verify::run(args).await,
            Command::Token(_) => Ok(()),
            Command::Scheduler(args) => scheduler(args).await,
            Command::Executor(args) => executor(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Cancels `token` on SIGINT or SIGTERM.
fn on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down: draining buffered spans");
        token.cancel();
    });
}

async fn serve(role: Role, args: ServeArgs) -> Result<(), BoxError> {
    let _tracing =
        cairn_telemetry::tracing_setup::init(&args.common.log, args.self_traces.as_deref())?;
    let user_prices = match &args.prices {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("price table {}: {e}", path.display()))?,
        ),
        None => None,
    };
    cairn_normalize::agent::prices::install(user_prices.as_deref())
        .map_err(|e| format!("price table: {e}"))?;
    let store = cairn_store::open(&args.common.store)?;
    tracing::info!(store = %args.common.store, "object store opened");
    let shutdown = CancellationToken::new();
    on_signal(shutdown.clone());
    memory::spawn(shutdown.clone());
    // Every listener's authentication, its token file re-read on SIGHUP and when it changes.
    let auth = cairn_auth::Auth::new(&args.auth)?;
    auth.watch(shutdown.clone());
    // Before any listener binds: a TLS file that cannot be used stops the start.
    let tls = cairn_net::tls::ServerTls::load(&args.tls)?;

    // Every file the collector and compactor commit is recorded in its tenant's chain.
    let chain = match role {
        Role::Query => None,
        _ => Some(args.chain.open(&store)?),
    };

    // The compactor's lease (`--compactor-lease kube`), before `args.kube` goes to the pod cache.
    let lease = match (role, args.compaction.switch) {
        (Role::All | Role::Compactor, Switch::On) => {
            lease::start(&args.compaction.lease, &args.kube).await?
        }
        _ => None,
    };
    // Per-tenant limits: the collector's and the query API's, from one file.
    let tenant_limits = args.collector.tenant_limits.clone();
    let collector = match role {
        Role::All | Role::Collector => {
            let server =
                CollectorServer::bind(args.collector, args.limits, store.clone(), chain.clone())
                    .await?
                    .with_tls(tls.clone())
                    .with_auth(auth.clone());
            Some(match pod_cache(args.kube, &shutdown).await? {
                Some(cache) => server.with_locate(cache),
                None => server,
            })
        }
        Role::Query | Role::Compactor => None,
    };
    let compactor = match (role, args.compaction.switch) {
        (Role::All | Role::Compactor, Switch::On) => Some(
            Compactor::new(store.clone(), args.compaction.config)
                .with_gate(lease::gate(lease.as_ref()))
                .with_chain(chain.clone().expect("a chain when writing")),
        ),
        _ => None,
    };
    let query = match role {
        Role::All | Role::Query => Some(
            QueryServer::bind(args.query, args.limits, store, auth.clone())
                .await?
                .with_tls(tls.clone())
                .with_tenant_limits(tenant_limits, &shutdown)?,
        ),
        Role::Collector | Role::Compactor => None,
    };
    // The compactor has no port of its own but this one; the other roles serve /metrics on
    // theirs.
    let metrics_addr = args.compaction.metrics_addr;
    let metrics = match role {
        Role::Compactor => Some(
            tokio::net::TcpListener::bind(metrics_addr)
                .await
                .map_err(|e| format!("cannot listen on {metrics_addr}: {e}"))?,
        ),
        _ => None,
    };
    if query.is_some() {
        cairn_query::metrics::init();
    }
    let listeners: Vec<std::net::SocketAddr> = [
        collector.as_ref().map(|c| c.grpc_addr()),
        collector.as_ref().map(|c| c.http_addr()),
        query.as_ref().map(|q| q.addr()),
        query.as_ref().and_then(|q| q.pg_addr()),
        metrics.as_ref().and_then(|m| m.local_addr().ok()),
    ]
    .into_iter()
    .flatten()
    .collect();
    auth.announce(&listeners);
    if let Some(path) = &args.ready_file {
        let ready = serde_json::json!({
            "otlp_grpc": collector.as_ref().map(|c| c.grpc_addr().to_string()),
            "otlp_http": collector.as_ref().map(|c| c.http_addr().to_string()),
            "http": query.as_ref().map(|q| q.addr().to_string()),
            "pg": query.as_ref().and_then(|q| q.pg_addr()).map(|a| a.to_string()),
            "metrics": metrics
                .as_ref()
                .and_then(|m| m.local_addr().ok())
                .map(|a| a.to_string()),
        });
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, ready.to_string())?;
        std::fs::rename(&tmp, path)?;
    }
    // Every role listens: ready, until shutdown begins (whoever begins it).
    cairn_telemetry::health::set_ready();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            cairn_telemetry::health::set_draining();
        });
    }
    let mut roles = Vec::new();
    if let Some(c) = collector {
        roles.push(Part::new("collector", async {
            c.run(shutdown.clone()).await.map_err(BoxError::from)
        }));
    }
    if let Some(q) = query {
        roles.push(Part::new("query", async {
            q.run(shutdown.clone()).await.map_err(BoxError::from)
        }));
    }
    if let Some(c) = compactor {
        cairn_compactor::metrics::metrics();
        roles.push(Part::new("compactor", async {
            cairn_compactor::run(c, shutdown.clone()).await;
            // Handed over once no commit is in flight any more.
            if let Some(lease) = lease {
                lease.release().await;
            }
            Ok(())
        }));
    }
    if let Some(listener) = metrics {
        use cairn_net::tls::{describe, Listener};
        tracing::info!(addr = %metrics_addr, tls = describe(tls.as_ref(), Listener::Http), "metrics listening");
        let limits = args.limits;
        let stop = shutdown.clone();
        let tls = tls.map(|t| t.acceptor(Listener::Http, limits.head_timeout));
        roles.push(Part::new("metrics", async move {
            cairn_net::serve(
                cairn_net::LimitedListener::new(listener, limits.max_connections).with_tls(tls),
                cairn_telemetry::router(),
                limits,
                stop.cancelled_owned(),
            )
            .await
            .map_err(BoxError::from)
        }));
    }
    supervise(roles, &shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The Kubernetes pod cache, when enrichment is on (`--kube`): started in the background, so
/// that an unreachable API server never delays the collector.
async fn pod_cache(
    config: cairn_k8s::KubeConfig,
    shutdown: &CancellationToken,
) -> Result<Option<std::sync::Arc<cairn_k8s::PodCache>>, BoxError> {
    if !config.enabled() {
        return Ok(None);
    }
    let client = match config.client().await {
        Ok(client) => client,
        Err(e) if config.access == cairn_k8s::Access::Auto => {
            tracing::warn!(error = %e, "running in a pod but the Kubernetes API is not usable; spans are not enriched with pod metadata");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(
        associations = ?config.kube_association,
        namespace = config.kube_namespace.as_deref().unwrap_or("(all)"),
        node = config.kube_node.as_deref().unwrap_or("(all)"),
        "enriching spans with pod metadata from the Kubernetes API"
    );
    Ok(Some(cairn_k8s::PodCache::start(
        client,
        config,
        shutdown.clone(),
    )))
}

async fn sql(args: SqlArgs) -> Result<(), BoxError> {
    let _tracing = cairn_telemetry::tracing_setup::init(&args.common.log, None)?;
    let format = Format::from_name(&args.format)?;
    let tenant = Tenant::new(&args.tenant)?;
    let engine = QueryEngine::new(cairn_store::open(&args.common.store)?, &args.engine)?;
    let result = engine.sql_encoded(&tenant, &args.sql, format).await?;
    let mut out = std::io::stdout().lock();
    out.write_all(&result.bytes)?;
    if format == Format::Json {
        out.write_all(b"\n")?;
    }
    Ok(())
}

async fn scheduler(args: SchedulerCommand) -> Result<(), BoxError> {
    let _tracing = cairn_telemetry::tracing_setup::init(&args.common.log, None)?;
    let store = cairn_store::open(&args.common.store)?;
    let shutdown = CancellationToken::new();
    on_signal(shutdown.clone());
    let health = serve_health(args.metrics_addr, shutdown.clone()).await?;
    let scheduler =
        cairn_query::distributed::scheduler::run(store, args.scheduler, shutdown.clone());
    cairn_telemetry::health::set_ready();
    let result = scheduler.await;
    shutdown.cancel();
    let _ = health.await;
    Ok(result?)
}

/// Runs until SIGTERM or SIGINT, which the executor handles itself: it stops taking tasks and
/// finishes those it runs (meanwhile `/ready` fails).
async fn executor(args: ExecutorCommand) -> Result<(), BoxError> {
    let _tracing = cairn_telemetry::tracing_setup::init(&args.common.log, None)?;
    let store = cairn_store::open(&args.common.store)?;
    let shutdown = CancellationToken::new();
    on_signal(shutdown.clone());
    let health = serve_health(args.metrics_addr, CancellationToken::new()).await?;
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            cairn_telemetry::health::set_draining();
        });
    }
    cairn_telemetry::health::set_ready();
    let result = cairn_query::distributed::executor::run(store, args.executor).await;
    health.abort();
    Ok(result?)
}

/// Serves /metrics, /ready and /live on `addr` until `stop`.
async fn serve_health(
    addr: std::net::SocketAddr,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, BoxError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, "metrics listening");
    let limits = cairn_net::Limits::default();
    Ok(tokio::spawn(async move {
        let listener = cairn_net::LimitedListener::new(listener, limits.max_connections);
        let served = cairn_net::serve(
            listener,
            cairn_telemetry::router(),
            limits,
            stop.cancelled_owned(),
        );
        if let Err(e) = served.await {
            tracing::warn!(error = %e, "metrics listener failed");
        }
    }))
}

async fn reindex(args: ReindexArgs) -> Result<(), BoxError> {
    let _tracing = cairn_telemetry::tracing_setup::init(&args.common.log, None)?;
    let store = cairn_store::open(&args.common.store)?;
    // What it writes is recorded in each tenant's chain, as the compactor's files are.
    let chain = args.chain.open(&store)?;
    let started = std::time::Instant::now();
    let report = cairn_compactor::reindex(
        store,
        &args.tenants,
        args.force,
        args.compaction_memory,
        chain,
    )
    .await?;
    println!(
        "indexed {} tenant(s): {} hour partitions, {} entries, {} run summaries in {:.1?}; {} already complete",
        report.tenants,
        report.hours,
        report.entries,
        report.summaries,
        started.elapsed(),
        report.already_complete
    );
    Ok(())
}
