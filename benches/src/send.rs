//! Sending pre-encoded OTLP export requests, over gRPC or HTTP, one connection per client.
//!
//! Requests are encoded (and for HTTP, optionally gzipped) before the clock starts, so a
//! client's only work is copying bytes to a socket: the server, not the client, is measured.
//! With an access token every request carries `authorization: Bearer`; with trusted
//! authorities ([`Trust`]) `https://` endpoints are reached over TLS.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceResponse;
use http::uri::PathAndQuery;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::access::Trust;
use crate::{Error, Result};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const TENANT_HEADER: &str = "x-scope-orgid";
const AUTHORIZATION: &str = "authorization";

/// The wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OTLP/gRPC (`TraceService/Export`).
    Grpc,
    /// OTLP/HTTP protobuf (`POST /v1/traces`).
    Http,
}

/// What the server said to one request.
pub enum Outcome {
    /// Accepted, with the number of spans it rejected (partial success).
    Accepted { rejected: i64 },
    /// Refused for now (backpressure or unavailable): send again after the delay.
    Retry(Duration),
}

/// A gRPC codec whose requests are already-encoded protobuf.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> std::result::Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = ExportTraceServiceResponse;
    type Error = Status;
    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> std::result::Result<Option<Self::Item>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportTraceServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

/// One client connection.
pub enum Client {
    Grpc {
        grpc: tonic::client::Grpc<Channel>,
        tenant: MetadataValue<Ascii>,
        authorization: Option<MetadataValue<Ascii>>,
    },
    Http {
        client: reqwest::Client,
        url: String,
        tenant: String,
        authorization: Option<String>,
        gzip: bool,
    },
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(20 << attempt.min(5))
}

impl Client {
    /// Connects one client to `endpoint` (`http://host:port`), without credentials.
    pub async fn connect(
        protocol: Protocol,
        endpoint: &str,
        tenant: &str,
        gzip: bool,
    ) -> Result<Client> {
        Client::connect_with(protocol, endpoint, tenant, gzip, None, None).await
    }

    /// Connects one client to `endpoint` (`http://host:port`, or `https://host:port` with
    /// `trust`), sending `authorization` (`Bearer <token>`) with every request when given.
    pub async fn connect_with(
        protocol: Protocol,
        endpoint: &str,
        tenant: &str,
        gzip: bool,
        authorization: Option<&str>,
        trust: Option<&Trust>,
    ) -> Result<Client> {
        match protocol {
            Protocol::Grpc => {
                let target = Endpoint::from_shared(endpoint.to_owned())
                    .map_err(|e| Error::Usage(format!("endpoint {endpoint}: {e}")))?;
                let channel = match trust {
                    Some(trust) => trust.grpc(&target).await?,
                    None => target
                        .connect()
                        .await
                        .map_err(|e| Error::Server(format!("connecting to {endpoint}: {e}")))?,
                };
                let tenant = tenant
                    .parse()
                    .map_err(|e| Error::Usage(format!("tenant: {e}")))?;
                let authorization: Option<MetadataValue<Ascii>> = authorization
                    .map(str::parse)
                    .transpose()
                    .map_err(|e| Error::Usage(format!("token: {e}")))?;
                let mut grpc = tonic::client::Grpc::new(channel)
                    .max_decoding_message_size(usize::MAX)
                    .max_encoding_message_size(usize::MAX);
                if gzip {
                    grpc = grpc.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                Ok(Client::Grpc {
                    grpc,
                    tenant,
                    authorization,
                })
            }
            Protocol::Http => {
                let mut builder = reqwest::Client::builder().pool_max_idle_per_host(1);
                if let Some(trust) = trust {
                    builder = trust.http(builder)?;
                }
                Ok(Client::Http {
                    client: builder.build().map_err(|e| Error::Usage(e.to_string()))?,
                    url: format!("{}/v1/traces", endpoint.trim_end_matches('/')),
                    tenant: tenant.to_owned(),
                    authorization: authorization.map(str::to_owned),
                    gzip,
                })
            }
        }
    }

    /// Sends one encoded request once; `attempt` (from 0) sets the delay before a retry.
    pub async fn send(&mut self, body: Bytes, attempt: u32) -> Result<Outcome> {
        match self {
            Client::Grpc {
                grpc,
                tenant,
                authorization,
            } => {
                grpc.ready()
                    .await
                    .map_err(|e| Error::Server(format!("gRPC channel: {e}")))?;
                let mut request = tonic::Request::new(body);
                request.metadata_mut().insert(TENANT_HEADER, tenant.clone());
                if let Some(authorization) = authorization {
                    request
                        .metadata_mut()
                        .insert(AUTHORIZATION, authorization.clone());
                }
                match grpc
                    .unary(request, PathAndQuery::from_static(EXPORT_PATH), Raw)
                    .await
                {
                    Ok(response) => Ok(Outcome::Accepted {
                        rejected: response
                            .into_inner()
                            .partial_success
                            .map_or(0, |p| p.rejected_spans),
                    }),
                    // OTLP: UNAVAILABLE is retried; RESOURCE_EXHAUSTED only with RetryInfo.
                    Err(status)
                        if status.code() == Code::Unavailable
                            || (status.code() == Code::ResourceExhausted
                                && status.get_details_retry_info().is_some()) =>
                    {
                        Ok(Outcome::Retry(backoff(attempt)))
                    }
                    Err(status) => Err(Error::Server(format!(
                        "export refused: {:?} {}",
                        status.code(),
                        status.message()
                    ))),
                }
            }
            Client::Http {
                client,
                url,
                tenant,
                authorization,
                gzip,
            } => {
                let mut request = client
                    .post(url.as_str())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .header(TENANT_HEADER, tenant.as_str());
                if let Some(authorization) = authorization {
                    request = request.header(http::header::AUTHORIZATION, authorization.as_str());
                }
                if *gzip {
                    request = request.header(http::header::CONTENT_ENCODING, "gzip");
                }
                let response = request
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| Error::Server(format!("POST {url}: {e}")))?;
                let status = response.status();
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| Error::Server(format!("POST {url}: {e}")))?;
                if status.is_success() {
                    let rejected = ExportTraceServiceResponse::decode(body)
                        .ok()
                        .and_then(|r| r.partial_success)
                        .map_or(0, |p| p.rejected_spans);
                    Ok(Outcome::Accepted { rejected })
                } else if status.as_u16() == 429 || status.as_u16() == 503 {
                    Ok(Outcome::Retry(backoff(attempt)))
                } else {
                    Err(Error::Server(format!(
                        "POST {url}: {status}: {}",
                        String::from_utf8_lossy(&body)
                    )))
                }
            }
        }
    }
}
