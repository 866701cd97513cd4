//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! tonic reads and inflates each message (up to the message size limit) but does not decode
//! it: the service takes the raw protobuf bytes, so that the request is charged to the memory
//! budget by its estimated decoded size before it is decoded, as on OTLP/HTTP. The body is
//! charged as it arrives, before tonic buffers each frame, and gzip messages as they inflate
//! ([`crate::grpc_body`]): a call whose next frame does not fit in the budget is refused then
//! (RESOURCE_EXHAUSTED, retryable), so many connections sending large messages at once hold at
//! most the budget between them.
//!
//! Each call is admitted by [`cairn_auth`] from its `authorization` and `x-scope-orgid`
//! metadata (role ingest or admin with auth on) before its message is read; its principal's
//! tenant is the one written.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use cairn_auth::{Auth, Need, Principal};
use cairn_net::RequestSlots;
use cairn_normalize::otlp::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::body::Format;
use crate::grpc_body::{self, BodyCharge, ChargedBody};
use crate::ingest::{Body, Ingester, Outcome};
use crate::Error;

/// The OTLP response for an outcome: `partial_success` only when spans were rejected.
pub fn response(outcome: Outcome) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (outcome.rejected > 0).then_some(ExportTracePartialSuccess {
            rejected_spans: outcome.rejected as i64,
            error_message: outcome.message,
        }),
    }
}

/// The gRPC trace service.
#[derive(Clone)]
pub struct GrpcTraceService {
    ingester: Ingester,
}

impl GrpcTraceService {
    pub fn new(ingester: Ingester) -> Self {
        Self { ingester }
    }

    async fn handle(&self, request: Request<Bytes>) -> Result<ExportTraceServiceResponse, Error> {
        let tenant = request
            .extensions()
            .get::<Principal>()
            .map(|p| p.tenant.clone())
            .ok_or_else(|| Error::Internal("an export that was not authenticated".into()))?;
        let peer = request.remote_addr().map(|a| a.ip());
        // What reading the body was charged, handed over to the export.
        let charge = request
            .extensions()
            .get::<BodyCharge>()
            .and_then(BodyCharge::take)
            .unwrap_or_else(|| self.ingester.budget().charge());
        let body = Body {
            format: Format::Protobuf,
            encoding: None,
            bytes: request.into_inner(),
        };
        let outcome = self.ingester.export(tenant, peer, body, charge).await?;
        Ok(response(outcome))
    }
}

impl NamedService for GrpcTraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

impl UnaryService<Bytes> for GrpcTraceService {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<ExportTraceServiceResponse>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move {
            service
                .handle(request)
                .await
                .map(Response::new)
                .map_err(|e| {
                    crate::metrics::refused(e.reason());
                    e.into()
                })
        })
    }
}

/// Serves [`GrpcTraceService`] with messages of at most `max_message_bytes`, gzip accepted.
/// Each export takes one of `slots` or is refused at once as retryable.
#[derive(Clone)]
pub struct TraceServer {
    service: GrpcTraceService,
    auth: Auth,
    max_message_bytes: usize,
    slots: RequestSlots,
}

impl TraceServer {
    pub fn new(
        ingester: Ingester,
        auth: Auth,
        max_message_bytes: usize,
        slots: RequestSlots,
    ) -> Self {
        Self {
            service: GrpcTraceService::new(ingester),
            auth,
            max_message_bytes,
            slots,
        }
    }
}

impl NamedService for TraceServer {
    const NAME: &'static str = GrpcTraceService::NAME;
}

impl<B> tower::Service<http::Request<B>> for TraceServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let (service, max) = (self.service.clone(), self.max_message_bytes);
        let auth = self.auth.clone();
        if request.uri().path() != EXPORT_PATH {
            return Box::pin(async move {
                Ok(Status::unimplemented("only TraceService/Export is served").into_http())
            });
        }
        let Some(slot) = self.slots.try_enter() else {
            let refusal = Error::Overloaded(self.slots.refusal());
            crate::metrics::refused(refusal.reason());
            return Box::pin(async move { Ok(Status::from(refusal).into_http()) });
        };
        Box::pin(async move {
            let _slot = slot;
            let peer = request
                .extensions()
                .get::<tonic::transport::server::TcpConnectInfo>()
                .and_then(|info| info.remote_addr())
                .map(|a| a.ip());
            let principal = auth
                .resolve_headers(request.headers(), peer, Need::Ingest)
                .await;
            match principal {
                Ok(principal) => request.extensions_mut().insert(principal),
                Err(refusal) => {
                    crate::metrics::refused(refusal.reason());
                    return Ok(Status::from(refusal).into_http());
                }
            };
            let charge = BodyCharge::new(service.ingester.budget().charge());
            request.extensions_mut().insert(charge.clone());
            let gzip = grpc_body::take_gzip(request.headers_mut());
            let request = request.map(|body| ChargedBody::new(body, charge, gzip, max));
            let mut grpc = Grpc::new(RawRequests)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .apply_max_message_size_config(Some(max), None);
            Ok(grpc.unary(service, request).await)
        })
    }
}

/// Requests as raw bytes, responses as protobuf.
#[derive(Clone, Copy, Default)]
struct RawRequests;

impl Codec for RawRequests {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = RawRequests;
    type Decoder = RawRequests;
    fn encoder(&mut self) -> RawRequests {
        RawRequests
    }
    fn decoder(&mut self) -> RawRequests {
        RawRequests
    }
}

impl Encoder for RawRequests {
    type Item = ExportTraceServiceResponse;
    type Error = Status;
    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

impl Decoder for RawRequests {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
