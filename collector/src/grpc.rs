//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use cairn_schema::otlp::collector::trace::v1::trace_service_server::TraceService;
use cairn_schema::otlp::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use cairn_schema::tenant::{Tenant, TENANT_HEADER};
use tonic::{Request, Response, Status};

use crate::ingest::{Ingester, Outcome};
use crate::Error;

/// The gRPC trace service.
pub struct GrpcTraceService {
    ingester: Ingester,
}

impl GrpcTraceService {
    pub fn new(ingester: Ingester) -> Self {
        Self { ingester }
    }
}

/// The OTLP response for an outcome: `partial_success` only when spans were rejected.
pub fn response(outcome: Outcome) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (outcome.rejected > 0).then_some(ExportTracePartialSuccess {
            rejected_spans: outcome.rejected as i64,
            error_message: outcome.message,
        }),
    }
}

#[tonic::async_trait]
impl TraceService for GrpcTraceService {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.handle(request).await.map_err(|e| {
            crate::metrics::refused(e.reason());
            e.into()
        })
    }
}

impl GrpcTraceService {
    async fn handle(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Error> {
        let header = request.metadata().get(TENANT_HEADER).map(|v| v.as_bytes());
        let tenant = Tenant::from_header_bytes(header)?;
        let outcome = self.ingester.export(tenant, request.into_inner()).await?;
        Ok(Response::new(response(outcome)))
    }
}
