//! Malformed and hostile input: each gets the right OTLP status, the server stays up, and
//! nothing that was acknowledged is lost.

use std::io::Write;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use crate::harness::{client, Cairn};

/// `google.rpc.Status` as OTLP/HTTP error bodies carry it.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

pub(crate) fn span(trace: [u8; 16], id: u8, name: &str) -> Span {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    Span {
        trace_id: trace.to_vec(),
        span_id: vec![id; 8],
        name: name.into(),
        start_time_unix_nano: now,
        end_time_unix_nano: now + 1000,
        ..Default::default()
    }
}

pub(crate) fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("bad-input".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub(crate) async fn post(
    cairn: &Cairn,
    content_type: Option<&str>,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, Option<String>, Vec<u8>) {
    let mut req = client()
        .post(format!("http://{}/v1/traces", cairn.otlp_http))
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(enc) = encoding {
        req = req.header("content-encoding", enc);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, resp.bytes().await.unwrap().to_vec())
}

/// Names of every stored span of the default tenant, sorted.
pub(crate) async fn stored_names(cairn: &Cairn) -> Vec<String> {
    cairn
        .sql(None, "SELECT name FROM spans ORDER BY name")
        .await
        .into_iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) const PB: Option<&str> = Some("application/x-protobuf");
pub(crate) const JSON: Option<&str> = Some("application/json");

#[tokio::test(flavor = "multi_thread")]
async fn http_bad_input() {
    let mut cairn = Cairn::start(&["--max-message-size", "1MiB"]);
    let good =
        request(vec![span([7; 16], 1, "good-1"), span([7; 16], 2, "good-2")]).encode_to_vec();
    let (status, _, body) = post(&cairn, PB, None, good.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        ExportTraceServiceResponse::decode(&body[..])
            .unwrap()
            .partial_success,
        None
    );

    // Truncated protobuf: 400 with a google.rpc.Status body (INVALID_ARGUMENT).
    let (status, _, body) = post(&cairn, PB, None, good[..good.len() - 7].to_vec()).await;
    assert_eq!(status, 400);
    let rpc = RpcStatus::decode(&body[..]).expect("rpc status body");
    assert_eq!(rpc.code, 3);
    assert!(rpc.message.contains("protobuf"), "{}", rpc.message);

    // Invalid JSON, empty JSON.
    for body in [
        b"{\"resourceSpans\": [".to_vec(),
        Vec::new(),
        b"[1,2]".to_vec(),
    ] {
        let (status, _, resp) = post(&cairn, JSON, None, body).await;
        assert_eq!(status, 400);
        let v: serde_json::Value = serde_json::from_slice(&resp).expect("JSON status body");
        assert_eq!(v["code"], 3);
    }

    // Wrong and missing content type.
    let (status, _, _) = post(&cairn, Some("text/plain"), None, good.clone()).await;
    assert_eq!(status, 415);
    let (status, _, _) = post(&cairn, None, None, good.clone()).await;
    assert_eq!(status, 415);
    let (status, _, _) = post(&cairn, PB, Some("br"), good.clone()).await;
    assert_eq!(status, 415);

    // Zero-length protobuf is an empty, valid export.
    let (status, _, body) = post(&cairn, PB, None, Vec::new()).await;
    assert_eq!(status, 200);
    assert_eq!(
        ExportTraceServiceResponse::decode(&body[..]).unwrap(),
        ExportTraceServiceResponse::default()
    );

    // Gzip bomb: 64 MiB of zeroes in ~64 KiB; refused, not inflated.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 1 << 20);
    let (status, _, body) = post(&cairn, PB, Some("gzip"), bomb).await;
    assert_eq!(status, 413);
    assert!(RpcStatus::decode(&body[..])
        .unwrap()
        .message
        .contains("inflates"));
    let (status, _, _) = post(&cairn, PB, Some("gzip"), b"not gzip at all".to_vec()).await;
    assert_eq!(status, 400);

    // Oversized body.
    let (status, _, _) = post(&cairn, PB, None, vec![0x0a; 2 << 20]).await;
    assert_eq!(status, 413);

    // Invalid UTF-8 in a string field.
    let mut bad_utf8 = request(vec![span([8; 16], 1, "NAME")]).encode_to_vec();
    let pos = bad_utf8.windows(4).position(|w| w == b"NAME").unwrap();
    bad_utf8[pos] = 0xff;
    let (status, _, _) = post(&cairn, PB, None, bad_utf8).await;
    assert_eq!(status, 400);

    // Invalid ids: partial success, valid spans of the same request kept.
    let mut short = span([9; 16], 1, "short-trace-id");
    short.trace_id.truncate(15);
    let zero = span([0; 16], 2, "zero-trace-id");
    let mut bad_parent = span([9; 16], 3, "bad-parent");
    bad_parent.parent_span_id = vec![1; 3];
    let ok = span([9; 16], 4, "kept");
    let (status, _, body) = post(
        &cairn,
        PB,
        None,
        request(vec![short, zero, bad_parent, ok]).encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let partial = ExportTraceServiceResponse::decode(&body[..])
        .unwrap()
        .partial_success
        .expect("partial success");
    assert_eq!(partial.rejected_spans, 3);
    assert!(
        partial.error_message.contains("3 of 4 spans rejected"),
        "{}",
        partial.error_message
    );

    // JSON with a non-hex trace id is malformed; JSON with a zero id is rejected per span.
    let (status, _, _) = post(&cairn, JSON, None, br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz","spanId":"0102030405060708","name":"j"}]}]}]}"#.to_vec()).await;
    assert_eq!(status, 400);
    let (status, _, body) = post(&cairn, JSON, None, br#"{"resourceSpans":[{"scopeSpans":[{"spans":[
        {"traceId":"00000000000000000000000000000000","spanId":"0102030405060708","name":"zero"},
        {"traceId":"0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A","spanId":"0102030405060708","name":"json-ok","startTimeUnixNano":"1764290000000000000","endTimeUnixNano":1764290000000001000}]}]}]}"#.to_vec()).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], 1);

    // Bad tenant header.
    let resp = client()
        .post(format!("http://{}/v1/traces", cairn.otlp_http))
        .header("content-type", "application/x-protobuf")
        .header("X-Scope-OrgID", "../other")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // Still up, and exactly the acknowledged spans are stored.
    assert!(cairn.alive());
    assert!(cairn.healthy().await);
    assert_eq!(
        stored_names(&cairn).await,
        ["good-1", "good-2", "json-ok", "kept"]
    );

    // Self-metrics count what happened.
    assert_eq!(cairn.metric("cairn_spans_accepted_total", "").await, 4.0);
    assert_eq!(cairn.metric("cairn_spans_rejected_total", "").await, 4.0);
    let refused = |reason: &'static str| cairn.metric("cairn_exports_refused_total", reason);
    assert_eq!(refused("reason=\"bad_request\"").await, 8.0);
    assert_eq!(refused("reason=\"too_large\"").await, 2.0);
    assert_eq!(refused("reason=\"unsupported_media_type\"").await, 3.0);
    assert!(
        cairn
            .metric("cairn_files_written_total", "dataset=\"spans\"")
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_bad_input() {
    let mut cairn = Cairn::start(&["--max-message-size", "1MiB"]);
    let endpoint = format!("http://{}", cairn.grpc);
    let mut grpc = TraceServiceClient::connect(endpoint.clone())
        .await
        .expect("connect");
    let ok = grpc
        .export(request(vec![span([5; 16], 1, "grpc-ok")]))
        .await
        .expect("export");
    assert_eq!(ok.into_inner().partial_success, None);

    let mut bad = span([5; 16], 2, "bad-span-id");
    bad.span_id = vec![0; 8];
    let partial = grpc
        .export(request(vec![bad, span([5; 16], 3, "grpc-kept")]))
        .await
        .expect("export")
        .into_inner()
        .partial_success
        .expect("partial success");
    assert_eq!(partial.rejected_spans, 1);

    // Oversized: refused without retry hints.
    let mut big = span([6; 16], 1, "big");
    big.attributes.push(KeyValue {
        key: "blob".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue("x".repeat(2 << 20))),
        }),
        ..Default::default()
    });
    let err = grpc
        .export(request(vec![big.clone()]))
        .await
        .expect_err("too large");
    assert!(
        matches!(
            err.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{err:?}"
    );

    // Gzip bomb over gRPC: small on the wire, over the limit once inflated.
    let mut gz = TraceServiceClient::connect(endpoint.clone())
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_encoding_message_size(64 << 20);
    let err = gz
        .export(request(vec![big]))
        .await
        .expect_err("bomb refused");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");

    let mut req = tonic::Request::new(request(vec![span([5; 16], 4, "bad-tenant")]));
    req.metadata_mut()
        .insert("x-scope-orgid", "a/b".parse().unwrap());
    let err = grpc.export(req).await.expect_err("bad tenant");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    assert!(cairn.alive());
    assert_eq!(stored_names(&cairn).await, ["grpc-kept", "grpc-ok"]);
}
