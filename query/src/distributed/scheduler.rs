//! `cairn scheduler`: Ballista's scheduler, planning Cairn's tables against the store.
//!
//! Queriers send it optimised logical plans; it decodes Cairn's tables from them
//! ([`super::codec`]), plans them physically against the store as readers see it (the listing
//! of the tenant's partitions, the trace index), cuts the plan into stages and hands their tasks
//! to the executors that registered with it. The scheduler trusts the plans it receives: the
//! tenant of each table is the querier's word (see docs/scale-out.md: only queriers may reach
//! its port).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::{
    ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions,
};
use ballista_core::serde::BallistaCodec;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_grpc_service_with_listener;
use ballista_scheduler::scheduler_server::SchedulerServer;
use cairn_config::parse;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use object_store::ObjectStore;
use tokio_util::sync::CancellationToken;

use super::codec::{LogicalCodec, PhysicalCodec};
use super::jobs::JobMetrics;
use crate::{Error, Result};

/// Memory for the parsed Parquet metadata and statistics the scheduler plans with.
const PLANNING_MEMORY: usize = 1 << 30;

/// Settings of `cairn scheduler`.
#[derive(Debug, Clone, clap::Args)]
pub struct SchedulerArgs {
    /// Address the scheduler listens on, for queriers and executors (gRPC).
    #[arg(long, env = "CAIRN_SCHEDULER_ADDR", default_value = "127.0.0.1:50050")]
    pub scheduler_addr: SocketAddr,
    /// Host name others reach this process by; the listen address's IP by default (in
    /// Kubernetes, the pod's IP or a Service name).
    #[arg(long, env = "CAIRN_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,
    /// An executor not heard from for this long is taken as lost: its tasks, and the stage
    /// outputs it held, run again on the others. Longer than the executors'
    /// `--heartbeat-interval`.
    #[arg(long, env = "CAIRN_EXECUTOR_TIMEOUT", default_value = "60s", value_parser = parse::span)]
    pub executor_timeout: Duration,
    /// Times a task is tried before its query fails.
    #[arg(long, env = "CAIRN_TASK_ATTEMPTS", default_value = "4", value_parser = parse::positive)]
    pub task_attempts: usize,
}

impl Default for SchedulerArgs {
    fn default() -> Self {
        cairn_config::defaults()
    }
}

/// Runs the scheduler over `store` until `shutdown`.
pub async fn run(
    store: Arc<dyn ObjectStore>,
    args: SchedulerArgs,
    shutdown: CancellationToken,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.scheduler_addr)
        .await
        .map_err(|e| Error::BadRequest(format!("cannot listen on {}: {e}", args.scheduler_addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let store: Arc<dyn ObjectStore> = Arc::new(cairn_store::visible::VisibleStore::new(store));
    let runtime = crate::engine::reader_runtime(store, PLANNING_MEMORY, None)?;
    let bounded = super::functions::bounded(&runtime.memory_pool);
    let sessions = Arc::new(move |config: SessionConfig| {
        let mut scalars = ballista_scalar_functions();
        scalars.retain(|f| !bounded.iter().any(|b| b.name() == f.name()));
        scalars.extend(bounded.iter().cloned());
        Ok(SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(Arc::clone(&runtime))
            .with_optimizer_rules(ballista_core::optimizer::ballista_default_optimizer_rules())
            .with_scalar_functions(scalars)
            .with_aggregate_functions(ballista_aggregate_functions())
            .with_window_functions(ballista_window_functions())
            .build())
    });
    let host = (args.advertise_host.clone()).unwrap_or_else(|| addr.ip().to_string());
    let timeout = args.executor_timeout.as_secs().max(1);
    let mut config = SchedulerConfig::default()
        .with_hostname(host)
        .with_port(addr.port())
        .with_override_session_builder(sessions);
    config.bind_host = addr.ip().to_string();
    config.scheduling_policy = TaskSchedulingPolicy::PullStaged;
    config.executor_timeout_seconds = timeout;
    config.expire_dead_executor_interval_seconds = (timeout / 4).max(1);
    config.no_executors_grace_period_seconds = timeout;
    config.task_max_failures = args.task_attempts;
    config.stage_max_failures = args.task_attempts;
    let config = Arc::new(config);
    let ballista = |e: ballista_core::error::BallistaError| Error::Internal(e.to_string());
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(ballista)?;
    let codec = BallistaCodec::<LogicalPlanNode, PhysicalPlanNode>::new(
        Arc::new(LogicalCodec::default()),
        Arc::new(PhysicalCodec::default()),
    );
    let mut scheduler = SchedulerServer::new(
        config.scheduler_endpoint(),
        cluster,
        codec,
        config,
        Arc::new(JobMetrics::init()),
    );
    scheduler.init().await.map_err(ballista)?;
    tracing::info!(%addr, "scheduler listening");
    tokio::select! {
        served = start_grpc_service_with_listener(listener, scheduler) => served.map_err(ballista),
        _ = shutdown.cancelled() => Ok(()),
    }
}
