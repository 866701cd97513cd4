//! `cairn executor`: a Ballista executor that reads Cairn's store.
//!
//! It registers with the scheduler, runs the tasks it is given — reading the Parquet files the
//! plan names straight from the store, under `cairn://store` — writes each stage's shuffle output
//! to its work directory, and serves those outputs (to other executors, and the last stage's to
//! the querier) over Arrow Flight. Memory is bounded per executor (`--executor-memory`, shared by
//! its task slots); sorts and joins beyond it spill to the work directory, up to `--spill-size`.
//! On SIGTERM it stops taking tasks and finishes those it runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ballista::prelude::SessionConfigExt;
use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::{ConfigProducer, RuntimeProducer};
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use cairn_config::parse;
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};
use datafusion::prelude::SessionConfig;
use object_store::ObjectStore;

use super::codec::{LogicalCodec, PhysicalCodec};
use super::tasks::{Engine, Running};
use crate::{Error, Result};

/// Settings of `cairn executor`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecutorArgs {
    /// The scheduler to register with: `host:port` or `df://host:port`.
    #[arg(long, env = "CAIRN_SCHEDULER", default_value = "127.0.0.1:50050")]
    pub scheduler: String,
    /// Address of the executor's Arrow Flight service (stage outputs, results).
    #[arg(long, env = "CAIRN_EXECUTOR_ADDR", default_value = "127.0.0.1:50051")]
    pub executor_addr: SocketAddr,
    /// Address of the executor's gRPC service (the scheduler's calls).
    #[arg(
        long,
        env = "CAIRN_EXECUTOR_GRPC_ADDR",
        default_value = "127.0.0.1:50052"
    )]
    pub executor_grpc_addr: SocketAddr,
    /// Host name others reach this process by; the listen address's IP by default (in
    /// Kubernetes, the pod's IP).
    #[arg(long, env = "CAIRN_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,
    /// Tasks run at once; the number of cores by default.
    #[arg(long, env = "CAIRN_EXECUTOR_SLOTS", value_parser = parse::positive)]
    pub executor_slots: Option<usize>,
    /// Memory all running tasks may use together; beyond it they spill.
    #[arg(long, env = "CAIRN_EXECUTOR_MEMORY", default_value = "2GiB", value_parser = parse::size)]
    pub executor_memory: usize,
    /// Directory of stage outputs and spills; created if missing.
    #[arg(long, env = "CAIRN_EXECUTOR_WORK_DIR", default_value_os_t = std::env::temp_dir().join("cairn-executor"))]
    pub executor_work_dir: PathBuf,
    /// Disk the tasks may spill to together; beyond it a task fails.
    #[arg(long, env = "CAIRN_SPILL_SIZE", default_value = "10GiB", value_parser = parse::size)]
    pub spill_size: usize,
    /// How often the executor tells the scheduler it is alive; shorter than the scheduler's
    /// `--executor-timeout`.
    #[arg(long, env = "CAIRN_HEARTBEAT_INTERVAL", default_value = "10s", value_parser = parse::span)]
    pub heartbeat_interval: Duration,
}

impl Default for ExecutorArgs {
    fn default() -> Self {
        cairn_config::defaults()
    }
}

/// Runs the executor over `store` until SIGTERM or SIGINT; then it finishes its tasks.
pub async fn run(store: Arc<dyn ObjectStore>, args: ExecutorArgs) -> Result<()> {
    let (scheduler_host, scheduler_port) =
        super::scheduler_endpoint(&args.scheduler).map_err(Error::BadRequest)?;
    let work_dir = &args.executor_work_dir;
    let spill = work_dir.join("spill");
    for dir in [work_dir, &spill] {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::BadRequest(format!("work directory {}: {e}", dir.display())))?;
    }
    // One runtime for every task: the store, the Parquet metadata caches and the spill space
    // are the process's; Ballista gives each task its share of `--executor-memory` on top.
    let runtime =
        crate::engine::reader_runtime(store, args.executor_memory, Some((spill, args.spill_size)))?;
    let runtimes: RuntimeProducer = Arc::new(move |_: &SessionConfig| Ok(Arc::clone(&runtime)));
    // The bounded built-ins charge a pool of the executor's size: the check that a value fits
    // comes before the value exists, whichever task computes it.
    let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(args.executor_memory));
    let configs: ConfigProducer = Arc::new(SessionConfig::new_with_ballista);
    let host = |addr: SocketAddr| {
        args.advertise_host
            .clone()
            .unwrap_or_else(|| addr.ip().to_string())
    };
    // The scheduler stops tasks (of a cancelled job, a retried stage) through this port.
    let grpc = tokio::net::TcpListener::bind(args.executor_grpc_addr)
        .await
        .map_err(|e| {
            Error::BadRequest(format!("cannot listen on {}: {e}", args.executor_grpc_addr))
        })?;
    let running = Running::default();
    let config = ExecutorProcessConfig {
        bind_host: args.executor_addr.ip().to_string(),
        external_host: Some(host(args.executor_addr)),
        port: args.executor_addr.port(),
        grpc_port: args.executor_grpc_addr.port(),
        scheduler_host,
        scheduler_port,
        scheduler_connect_timeout_seconds: 30,
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        vcores: (args.executor_slots)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        work_dir: Some(work_dir.to_string_lossy().into_owned()),
        executor_heartbeat_interval_seconds: args.heartbeat_interval.as_secs().max(1),
        memory_pool_size: Some(args.executor_memory as u64),
        print_thread_info: false,
        override_runtime_producer: Some(runtimes),
        override_function_registry: Some(Arc::new(super::functions::registry(&pool))),
        override_config_producer: Some(configs),
        override_logical_codec: Some(Arc::new(LogicalCodec::default())),
        override_physical_codec: Some(Arc::new(PhysicalCodec::default())),
        override_execution_engine: Some(Arc::new(Engine::new(running.clone()))),
        ..Default::default()
    };
    let cancels = tokio::spawn(async move {
        if let Err(e) = super::tasks::serve(grpc, running).await {
            tracing::warn!(error = %e, "the executor's gRPC listener failed");
        }
    });
    tracing::info!(
        flight = %args.executor_addr,
        grpc = %args.executor_grpc_addr,
        scheduler = %args.scheduler,
        "executor starting"
    );
    let ran = start_executor_process(Arc::new(config)).await;
    cancels.abort();
    ran.map_err(|e| Error::Internal(format!("executor: {e}")))
}
