//! The tasks an executor runs, stoppable by the scheduler.
//!
//! Executors pull their tasks from the scheduler, and Ballista's pulling executor serves no gRPC
//! of its own: when the scheduler cancels a job (its querier stopped waiting) or a stage is
//! retried, its request to stop the running tasks would find no one, and they would run on,
//! holding their slots, until they ended by themselves. [`Engine`] runs every task registered
//! under its job, stage and task with a token that stops it; [`serve`] answers the scheduler's
//! `CancelTasks` on the executor's `--executor-grpc-addr` by stopping those it names.
//!
//! Stopping drops the task's future, but not what it spawned (the shuffle writer drains the plan
//! in a task of its own), and takes effect only when the task next yields, which an operator that
//! makes many batches of each it reads (a cross join) may never do by itself. So the sources and
//! joins of a task's plan hand their batches on through a [`StopExec`]: each batch spends the
//! task's scheduling budget (a yield point), and once the task is stopped or dropped, the next
//! batch is an error that ends whatever still reads the plan.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};

use ballista_core::serde::protobuf::executor_grpc_server::{ExecutorGrpc, ExecutorGrpcServer};
use ballista_core::serde::protobuf::{
    CancelTasksParams, CancelTasksResult, LaunchMultiTaskParams, LaunchMultiTaskResult,
    LaunchTaskParams, LaunchTaskResult, RemoveJobDataParams, RemoveJobDataResult,
    RuntimeStatsReport, ShuffleWritePartition, StopExecutorParams, StopExecutorResult,
    TaskColumnStats, WindowStateReport,
};
use ballista_core::JobId;
use ballista_executor::execution_engine::{
    DefaultExecutionEngine, ExecutionEngine, QueryStageExecutor,
};
use cairn_telemetry::{register, Counter, Family, Gauge, OutcomeLabel};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::coop::make_cooperative;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    replace_children_if_necessary, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion::prelude::SessionConfig;
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

struct Metrics {
    running: Gauge,
    tasks: Family<OutcomeLabel, Counter>,
    stopped: Counter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        running: Gauge::default(),
        tasks: Family::default(),
        stopped: Counter::default(),
    };
    register(
        "executor_tasks_running",
        "Tasks running on this executor",
        m.running.clone(),
    );
    register(
        "executor_tasks",
        "Tasks this executor ran, by outcome: completed, failed, cancelled",
        m.tasks.clone(),
    );
    register(
        "executor_reads_stopped",
        "Reads of a plan that went on after its task ended or was cancelled, stopped",
        m.stopped.clone(),
    );
    for outcome in ["completed", "failed", "cancelled"] {
        let _ = m.tasks.get_or_create(&OutcomeLabel { outcome });
    }
    m
});

/// A task: its job, stage and task number, unique in the cluster.
type TaskKey = (String, usize, usize);

/// The tasks running on this executor, each with what stops it.
#[derive(Debug, Clone, Default)]
pub struct Running(Arc<Mutex<HashMap<TaskKey, CancellationToken>>>);

impl Running {
    /// Stops the task `key` if it runs here; whether it did.
    fn stop(&self, key: &TaskKey) -> bool {
        let running = self.0.lock().expect("running tasks");
        running.get(key).inspect(|task| task.cancel()).is_some()
    }

    /// Counts `key` running, stopped by `stop`, until the returned guard is dropped.
    fn enter(&self, key: TaskKey, stop: CancellationToken) -> Entered<'_> {
        let mut running = self.0.lock().expect("running tasks");
        running.insert(key.clone(), stop);
        METRICS.running.set(running.len() as i64);
        Entered { running: self, key }
    }
}

/// A task counted in [`Running`] while it lives.
struct Entered<'a> {
    running: &'a Running,
    key: TaskKey,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let mut running = self.running.0.lock().expect("running tasks");
        running.remove(&self.key);
        METRICS.running.set(running.len() as i64);
    }
}

/// Ballista's execution engine, each task's run registered in [`Running`] with what stops it.
pub struct Engine {
    inner: DefaultExecutionEngine,
    running: Running,
}

impl Engine {
    pub fn new(running: Running) -> Self {
        LazyLock::force(&METRICS);
        Self {
            inner: DefaultExecutionEngine::new(),
            running,
        }
    }
}

impl ExecutionEngine for Engine {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        task_id: usize,
        global_output_partition_ids: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> Result<Arc<dyn QueryStageExecutor>> {
        let stop = CancellationToken::new();
        let inner = self.inner.create_query_stage_exec(
            job_id.clone(),
            stage_id,
            task_id,
            global_output_partition_ids,
            stoppable(plan, &stop)?,
            work_dir,
            config,
        )?;
        Ok(Arc::new(Stoppable {
            inner,
            job: job_id.to_string(),
            stage: stage_id,
            running: self.running.clone(),
            stop,
        }))
    }
}

/// `plan` (a stage's shuffle writer and what it reads) with a [`StopExec`] of `stop` above every
/// operator that makes batches of its own: the sources, and those with several inputs (joins,
/// whose output may outgrow their inputs without bound). Operators of one input pass their
/// input's end on, and stay next to each other for Ballista's walks of a stage's plan.
fn stoppable(
    plan: Arc<dyn ExecutionPlan>,
    stop: &CancellationToken,
) -> Result<Arc<dyn ExecutionPlan>> {
    let children = (plan.children().into_iter().cloned())
        .map(|child| {
            let makes_batches = child.children().len() != 1;
            let child = stoppable(child, stop)?;
            Ok(match makes_batches {
                true => Arc::new(StopExec::new(child, stop.clone())) as Arc<dyn ExecutionPlan>,
                false => child,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    replace_children_if_necessary(plan, children)
}

/// Passes its input's batches on, each a yield point, until its task is stopped.
#[derive(Debug, Clone)]
pub struct StopExec {
    input: Arc<dyn ExecutionPlan>,
    stop: CancellationToken,
}

impl StopExec {
    fn new(input: Arc<dyn ExecutionPlan>, stop: CancellationToken) -> Self {
        Self { input, stop }
    }
}

impl DisplayAs for StopExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StopExec")
    }
}

impl ExecutionPlan for StopExec {
    fn name(&self) -> &str {
        "StopExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(format!(
                "StopExec has one input, not {}",
                children.len()
            )));
        }
        Ok(Arc::new(Self::new(children.remove(0), self.stop.clone())))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = make_cooperative(self.input.execute(partition, context)?);
        let schema = input.schema();
        let stop = self.stop.clone();
        let batches = input.map(move |batch| match stop.is_cancelled() {
            true => {
                METRICS.stopped.inc();
                Err(DataFusionError::Execution(
                    "the task was stopped: its job was cancelled".into(),
                ))
            }
            false => batch,
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// One task's stage, run until it ends or is stopped.
#[derive(Debug)]
struct Stoppable {
    inner: Arc<dyn QueryStageExecutor>,
    job: String,
    stage: usize,
    running: Running,
    /// Stops what still reads the plan once the task ended or was dropped.
    stop: CancellationToken,
}

impl fmt::Display for Stoppable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

#[async_trait::async_trait]
impl QueryStageExecutor for Stoppable {
    async fn execute_query_stage(
        &self,
        task_id: usize,
        context: Arc<TaskContext>,
    ) -> Result<Vec<ShuffleWritePartition>> {
        let key = (self.job.clone(), self.stage, task_id);
        // Ended or dropped, the task stops what still reads its plan.
        let _stop = self.stop.clone().drop_guard();
        let _running = self.running.enter(key, self.stop.clone());
        let done = tokio::select! {
            done = self.inner.execute_query_stage(task_id, context) => Some(done),
            () = self.stop.cancelled() => None,
        };
        let outcome = match &done {
            Some(Ok(_)) => "completed",
            Some(Err(_)) => "failed",
            None => "cancelled",
        };
        METRICS.tasks.get_or_create(&OutcomeLabel { outcome }).inc();
        done.unwrap_or_else(|| {
            Err(DataFusionError::Execution(format!(
                "task {}/{}/{task_id} was cancelled by the scheduler",
                self.job, self.stage
            )))
        })
    }

    fn collect_plan_metrics(&self) -> Vec<MetricsSet> {
        self.inner.collect_plan_metrics()
    }

    fn collect_runtime_stats_reports(&self) -> Vec<RuntimeStatsReport> {
        self.inner.collect_runtime_stats_reports()
    }

    fn collect_window_state_reports(&self) -> Result<Vec<WindowStateReport>> {
        self.inner.collect_window_state_reports()
    }

    fn collect_column_stats(&self) -> Vec<TaskColumnStats> {
        self.inner.collect_column_stats()
    }
}

/// The executor's gRPC service for a pulling executor: cancelling tasks, nothing else.
struct Service {
    running: Running,
}

const PULLS: &str = "this executor pulls its tasks from the scheduler (pull-staged scheduling)";

#[async_trait::async_trait]
impl ExecutorGrpc for Service {
    async fn launch_task(
        &self,
        _: Request<LaunchTaskParams>,
    ) -> Result<Response<LaunchTaskResult>, Status> {
        Err(Status::unimplemented(PULLS))
    }

    async fn launch_multi_task(
        &self,
        _: Request<LaunchMultiTaskParams>,
    ) -> Result<Response<LaunchMultiTaskResult>, Status> {
        Err(Status::unimplemented(PULLS))
    }

    async fn stop_executor(
        &self,
        _: Request<StopExecutorParams>,
    ) -> Result<Response<StopExecutorResult>, Status> {
        Err(Status::unimplemented(
            "an executor stops on SIGTERM, finishing its tasks",
        ))
    }

    async fn cancel_tasks(
        &self,
        request: Request<CancelTasksParams>,
    ) -> Result<Response<CancelTasksResult>, Status> {
        let mut cancelled = false;
        for task in request.into_inner().task_infos {
            let key = (task.job_id, task.stage_id as usize, task.task_id as usize);
            if self.running.stop(&key) {
                tracing::info!(job = %key.0, stage = key.1, task = key.2, "task cancelled");
                cancelled = true;
            }
        }
        Ok(Response::new(CancelTasksResult { cancelled }))
    }

    /// Job data is removed as the scheduler's answers to polls list it.
    async fn remove_job_data(
        &self,
        _: Request<RemoveJobDataParams>,
    ) -> Result<Response<RemoveJobDataResult>, Status> {
        Err(Status::unimplemented(PULLS))
    }
}

/// Serves the scheduler's cancellations of `running` tasks on `listener`, for as long as the
/// executor runs.
pub async fn serve(listener: TcpListener, running: Running) -> std::io::Result<()> {
    let limits = cairn_net::Limits::default();
    let incoming = cairn_net::LimitedListener::new(listener, limits.max_connections);
    tonic::transport::Server::builder()
        .add_service(ExecutorGrpcServer::new(Service { running }))
        .serve_with_incoming(incoming.into_incoming())
        .await
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sources_and_joins_read_until_their_task_is_stopped() {
        use arrow::array::Int64Array;
        use arrow::datatypes::{DataType, Field, Schema};
        use arrow::record_batch::RecordBatch;
        use datafusion::datasource::memory::MemorySourceConfig;
        use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
        use datafusion::physical_plan::displayable;

        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = |n: i64| {
            let column = Arc::new(Int64Array::from(vec![n]));
            RecordBatch::try_new(Arc::clone(&schema), vec![column]).unwrap()
        };
        let batches: Vec<RecordBatch> = (0..4).map(batch).collect();
        let source = MemorySourceConfig::try_new_exec(&[batches], Arc::clone(&schema), None);
        let plan = Arc::new(CoalescePartitionsExec::new(source.unwrap()));
        let stop = CancellationToken::new();
        let plan = stoppable(plan, &stop).unwrap();
        let shown = displayable(plan.as_ref()).indent(false).to_string();
        assert!(
            shown.starts_with("CoalescePartitionsExec\n  StopExec\n    DataSourceExec"),
            "{shown}"
        );
        let mut stream = plan.execute(0, Arc::new(TaskContext::default())).unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap().num_rows(), 1);
        stop.cancel();
        let stopped = stream.next().await.unwrap().unwrap_err();
        assert!(
            stopped.to_string().contains("job was cancelled"),
            "{stopped}"
        );
    }

    #[tokio::test]
    async fn a_cancelled_task_stops_and_says_so() {
        let running = Running::default();
        let key: TaskKey = ("job-1".into(), 2, 3);
        let task = CancellationToken::new();
        running.0.lock().unwrap().insert(key.clone(), task.clone());
        let service = Service {
            running: running.clone(),
        };
        let cancel = |job: &str| {
            Request::new(CancelTasksParams {
                task_infos: vec![ballista_core::serde::protobuf::RunningTaskInfo {
                    task_id: 3,
                    job_id: job.into(),
                    stage_id: 2,
                }],
            })
        };
        let other = service.cancel_tasks(cancel("job-2")).await.unwrap();
        assert!(!other.into_inner().cancelled);
        assert!(
            !task.is_cancelled(),
            "another job's cancellation stopped it"
        );
        let ours = service.cancel_tasks(cancel("job-1")).await.unwrap();
        assert!(ours.into_inner().cancelled);
        assert!(task.is_cancelled(), "the task went on");
        assert_eq!(
            running.0.lock().unwrap().len(),
            1,
            "removal is the task's own"
        );
    }
}
