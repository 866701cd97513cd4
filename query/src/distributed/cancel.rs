//! Cancels on the cluster the job of a statement the querier stopped reading before it finished
//! (its query timeout passed, its client went away). Ballista's client only stops polling the
//! scheduler when its stream is dropped; the job would go on holding executors' task slots,
//! outside the tenant's limit of concurrent statements, until it ended on its own.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::CancelJobParams;
use ballista_core::JobId;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::protobuf::LogicalPlanNode;
use futures::Stream;

/// How long a cancellation may take to reach the scheduler.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(10);

/// The batches of a statement running on the cluster; dropped before its last batch or its
/// error, it cancels the statement's job.
pub struct Cancelling<S> {
    inner: S,
    /// `http://host:port` of the scheduler.
    scheduler: String,
    /// The plan whose `DistributedQueryExec` learns the job's id once the scheduler took it.
    plan: Arc<dyn ExecutionPlan>,
    ended: bool,
}

impl<S> Cancelling<S> {
    pub fn new(inner: S, scheduler: String, plan: Arc<dyn ExecutionPlan>) -> Self {
        Self {
            inner,
            scheduler,
            plan,
            ended: false,
        }
    }
}

impl<S, T, E> Stream for Cancelling<S>
where
    S: Stream<Item = Result<T, E>> + Unpin,
{
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = Pin::new(&mut self.inner).poll_next(cx);
        // A failed job is over on the cluster already.
        if let Poll::Ready(None | Some(Err(_))) = next {
            self.ended = true;
        }
        next
    }
}

impl<S> Drop for Cancelling<S> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // Dropped before the scheduler answered the submission: there is no job to name.
        let Some(job) = job_of(&self.plan) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(cancel(self.scheduler.clone(), job));
    }
}

/// The job of the distributed query in `plan`, once submitted.
fn job_of(plan: &Arc<dyn ExecutionPlan>) -> Option<JobId> {
    if let Some(query) = plan.downcast_ref::<DistributedQueryExec<LogicalPlanNode>>() {
        return query.job_id();
    }
    plan.children().into_iter().find_map(job_of)
}

/// Asks the scheduler at `url` to cancel `job`: it stops the job's running tasks on the
/// executors and drops its stage outputs.
async fn cancel(url: String, job: JobId) {
    let request = async {
        let mut scheduler = SchedulerGrpcClient::connect(url.clone())
            .await
            .map_err(|e| e.to_string())?;
        let job_id = job.to_string();
        (scheduler.cancel_job(CancelJobParams { job_id }).await).map_err(|e| e.message().to_owned())
    };
    match tokio::time::timeout(CANCEL_TIMEOUT, request).await {
        Ok(Ok(_)) => {
            tracing::info!(%job, scheduler = %url, "cancelled the job of a dropped statement")
        }
        Ok(Err(e)) => {
            tracing::warn!(%job, scheduler = %url, error = %e, "could not cancel the job of a dropped statement")
        }
        Err(_) => {
            tracing::warn!(%job, scheduler = %url, "could not cancel the job of a dropped statement: the scheduler did not answer")
        }
    }
}
