//! Hostile exports against the real binary: each gets a clear refusal or partial success, the
//! process stays up and within its budget (peak RSS growth is printed, not asserted), a normal
//! query still answers, and nothing acknowledged before or after is lost.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use bytes::Bytes;
use cairn_bench::send::{Client, Protocol};

use crate::bad_input::{gzip, post, request, span, stored_names, RpcStatus, JSON, PB};
use crate::harness::Cairn;

fn peak_mib(cairn: &Cairn) -> u64 {
    cairn_bench::process::peak_rss(cairn.pid()).unwrap_or(0) >> 20
}

/// Sends one normal span named `name` and checks it is acknowledged in full.
async fn send_ok(cairn: &Cairn, name: &str, id: u8) {
    let body = request(vec![span([0x42; 16], id, name)]).encode_to_vec();
    let (status, _, reply) = post(cairn, PB, None, body).await;
    assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&reply));
    let reply = ExportTraceServiceResponse::decode(&reply[..]).unwrap();
    assert_eq!(reply.partial_success, None, "{name}");
}

/// The server answers a normal query, and every acknowledged span is stored once.
async fn still_whole(cairn: &mut Cairn, acknowledged: &[&str]) {
    assert!(cairn.alive(), "the process died");
    assert!(cairn.healthy().await);
    let mut names = stored_names(cairn).await;
    names.retain(|n| acknowledged.contains(&n.as_str()));
    let mut want: Vec<String> = acknowledged.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want);
}

fn refusal(body: &[u8]) -> String {
    RpcStatus::decode(body)
        .map(|s| s.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned())
}

/// `spans` empty spans as an OTLP/JSON body.
fn empty_spans_json(spans: usize) -> Vec<u8> {
    let mut out = br#"{"resourceSpans":[{"scopeSpans":[{"spans":["#.to_vec();
    for i in 0..spans {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"]}]}]}");
    out
}

fn string_attr(key: String, value: &str) -> KeyValue {
    KeyValue {
        key,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// A protobuf field: key, length, bytes.
fn field(number: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 12);
    prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

/// `spans` empty spans as one protobuf export request, written directly (2 bytes a span).
fn empty_spans_protobuf(spans: usize) -> Vec<u8> {
    let scope_spans = [0x12u8, 0x00].repeat(spans);
    field(1, &field(2, &scope_spans))
}

#[tokio::test(flavor = "multi_thread")]
async fn decoding_bombs_are_refused_before_they_take_memory() {
    let mut cairn = Cairn::start(&["--max-buffer-size", "256MiB"]);
    send_ok(&cairn, "before", 1).await;
    let base = peak_mib(&cairn);

    // 8M empty spans: 16 MB of protobuf, kilobytes of gzip, gigabytes once decoded.
    let empty = empty_spans_protobuf(8_000_000);
    let bomb = gzip(&empty);
    println!(
        "protobuf bomb: {} bytes gzip, {} inflated",
        bomb.len(),
        empty.len()
    );
    let started = std::time::Instant::now();
    let (status, retry, body) = post(&cairn, PB, Some("gzip"), bomb).await;
    assert_eq!(status, 413, "{}", refusal(&body));
    assert_eq!(retry, None);
    assert!(
        refusal(&body).contains("decodes to more than"),
        "{}",
        refusal(&body)
    );
    println!(
        "protobuf bomb refused in {:?}; peak RSS +{} MiB",
        started.elapsed(),
        peak_mib(&cairn) - base
    );

    // The same over gRPC (gzip): refused as too large, without a retry hint.
    let mut grpc = Client::connect(
        Protocol::Grpc,
        &format!("http://{}", cairn.grpc),
        "default",
        true,
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let err = match grpc.send(Bytes::from(empty), 0).await {
        Err(cairn_bench::Error::Server(m)) => m,
        Ok(_) => panic!("the gRPC bomb was accepted or retried"),
        Err(e) => panic!("{e}"),
    };
    assert!(
        err.contains("ResourceExhausted") && err.contains("decodes to more than"),
        "{err}"
    );
    println!(
        "gRPC bomb refused in {:?}; peak RSS +{} MiB",
        started.elapsed(),
        peak_mib(&cairn) - base
    );

    // 5M empty spans as JSON (15 MB): refused the same way.
    let json = gzip(&empty_spans_json(5_000_000));
    let started = std::time::Instant::now();
    let (status, _, body) = post(&cairn, JSON, Some("gzip"), json).await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    println!(
        "JSON bomb refused in {:?}; peak RSS +{} MiB",
        started.elapsed(),
        peak_mib(&cairn) - base
    );

    send_ok(&cairn, "after", 2).await;
    still_whole(&mut cairn, &["before", "after"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hour_fan_out_is_bounded() {
    let mut cairn = Cairn::start(&["--max-hours-per-request", "24"]);
    send_ok(&cairn, "before", 1).await;
    let base = peak_mib(&cairn);
    // 3,000 spans, each in its own hour.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let hour = 3_600_000_000_000u64;
    let spans: Vec<Span> = (0..3000u64)
        .map(|i| {
            let mut s = span([0x43; 16], 0, &format!("hour-{i}"));
            s.span_id = (i + 1).to_be_bytes().to_vec();
            s.start_time_unix_nano = now - i * hour;
            s.end_time_unix_nano = s.start_time_unix_nano + 1000;
            s
        })
        .collect();
    let (status, _, body) = post(&cairn, PB, None, request(spans).encode_to_vec()).await;
    assert_eq!(status, 200);
    let partial = ExportTraceServiceResponse::decode(&body[..])
        .unwrap()
        .partial_success
        .expect("partial success");
    assert_eq!(partial.rejected_spans, 3000 - 24);
    assert!(
        partial
            .error_message
            .contains("more than 24 distinct hours"),
        "{}",
        partial.error_message
    );
    println!(
        "peak RSS after 3,000 hours in one request: +{} MiB",
        peak_mib(&cairn) - base
    );
    let kept = cairn
        .wait_for_count(None, "spans WHERE name LIKE 'hour-%'", 24)
        .await;
    assert_eq!(kept, 24);
    let names = cairn
        .sql(
            None,
            "SELECT name FROM spans WHERE name LIKE 'hour-%' ORDER BY start_time DESC",
        )
        .await;
    let names: Vec<&str> = names.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let first: Vec<String> = (0..24).map(|i| format!("hour-{i}")).collect();
    assert_eq!(names, first, "the first 24 hours met are kept");
    send_ok(&cairn, "after", 2).await;
    still_whole(&mut cairn, &["before", "after"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_attributes_and_times() {
    let mut cairn = Cairn::start(&[]);
    send_ok(&cairn, "before", 1).await;
    let base = peak_mib(&cairn);

    // One key of 20,000 path segments under a message prefix.
    let deep_key = format!("llm.input_messages.0.{}content", "a.".repeat(20_000));
    let mut deep = span([0x44; 16], 1, "deep-key");
    deep.attributes.push(string_attr(deep_key.clone(), "x"));
    // 16 keys of 2,000 `1023.` segments.
    let mut wide = span([0x44; 16], 2, "wide-index");
    for i in 0..16 {
        wide.attributes.push(string_attr(
            format!("llm.input_messages.{i}.{}content", "1023.".repeat(2000)),
            "x",
        ));
    }
    // Start after end.
    let mut backwards = span([0x44; 16], 3, "backwards");
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1_000_000;
    // A list nested 46 deep.
    let mut value = AnyValue {
        value: Some(any_value::Value::IntValue(1)),
    };
    for _ in 0..46 {
        value = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    let mut nested = span([0x44; 16], 4, "nested");
    nested.attributes.push(KeyValue {
        key: "nested".into(),
        value: Some(value),
        ..Default::default()
    });
    // Duplicate keys of different types, strings first.
    let mut dup = span([0x44; 16], 5, "duplicates");
    dup.attributes = vec![
        string_attr("dup".into(), "1"),
        KeyValue {
            key: "dup".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(1)),
            }),
            ..Default::default()
        },
    ];
    let body = request(vec![deep, wide, backwards, nested, dup.clone()]).encode_to_vec();
    let (status, _, reply) = post(&cairn, PB, None, body).await;
    assert_eq!(status, 200, "{}", refusal(&reply));
    let partial = ExportTraceServiceResponse::decode(&reply[..])
        .unwrap()
        .partial_success
        .expect("partial success");
    println!(
        "peak RSS after hostile attributes: +{} MiB; {}",
        peak_mib(&cairn) - base,
        partial.error_message
    );
    // Impossible times and unreadable nesting are rejected one by one, with their reasons.
    assert_eq!(partial.rejected_spans, 2, "{}", partial.error_message);
    assert!(partial.error_message.contains("backwards"));
    assert!(partial.error_message.contains("nested"));

    // Every accepted span reads back, exactly as sent.
    let (status, trace) = cairn.trace(None, &hex::encode([0x44; 16])).await;
    assert_eq!(status, 200, "{trace}");
    let spans: Vec<&serde_json::Value> = trace["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let mut names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["deep-key", "duplicates", "wide-index"]);
    let dup_back = spans.iter().find(|s| s["name"] == "duplicates").unwrap();
    assert_eq!(
        dup_back["attributes"],
        serde_json::json!([
            {"key": "dup", "value": {"stringValue": "1"}},
            {"key": "dup", "value": {"intValue": "1"}}
        ])
    );
    let deep_back = spans.iter().find(|s| s["name"] == "deep-key").unwrap();
    assert_eq!(deep_back["attributes"][0]["key"], deep_key.as_str());

    send_ok(&cairn, "after", 2).await;
    still_whole(
        &mut cairn,
        &["before", "after", "deep-key", "wide-index", "duplicates"],
    )
    .await;
}

/// Sends `head` and then nothing; returns the status line the server answers with.
fn stalled_request(addr: &str, head: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_and_connection_floods_are_bounded() {
    let mut cairn = Cairn::start(&[
        "--request-timeout",
        "1s",
        "--max-connections",
        "4",
        "--max-concurrent-requests",
        "2",
    ]);
    send_ok(&cairn, "before", 1).await;

    // A body that never comes is cut at the request timeout, retryably.
    let addr = cairn.otlp_http.clone();
    let head = "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: 1000\r\n\r\n";
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || stalled_request(&addr, head))
        .await
        .unwrap();
    assert!(status.contains("503"), "{status}");
    println!("stalled body answered after {:?}", started.elapsed());

    // Two stalled bodies hold both request slots: a third export is refused at once, retryably.
    let stalled: Vec<_> = (0..2)
        .map(|_| {
            let addr = cairn.otlp_http.clone();
            std::thread::spawn(move || stalled_request(&addr, head))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = request(vec![span([0x45; 16], 9, "refused")]).encode_to_vec();
    let (status, retry, _) = post(&cairn, PB, None, body).await;
    assert_eq!(status, 503);
    assert_eq!(retry.as_deref(), Some("1"));
    for s in stalled {
        assert!(s.join().unwrap().contains("503"));
    }

    // Idle connections beyond the cap wait rather than exhaust the process; once they close,
    // exports go through again.
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&cairn.otlp_http).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = {
        let addr = cairn.otlp_http.clone();
        std::thread::spawn(move || {
            stalled_request(
                &addr,
                "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a fifth connection was served");
    drop(idle);
    assert!(waiting.join().unwrap().contains("200"));

    send_ok(&cairn, "after", 2).await;
    still_whole(&mut cairn, &["before", "after"]).await;
}
