//! Every fixture of a real instrumentation (tests/fixtures) goes in over OTLP/HTTP JSON and comes
//! back from the trace API exactly as sent: each span's protobuf encoding, with its resource and
//! scope, is byte for byte the one sent, payload references, promoted columns and all.
//!
//! One normalisation: a status sent empty (`"status": {}`, code unset, no message) comes back
//! absent. OTLP defines the two alike (an unset status is the default), and the stored row keeps
//! `status_code` `UNSET` for both so that queries need no null case.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_normalize::otlp::common::v1::InstrumentationScope;
use cairn_normalize::otlp::resource::v1::Resource;
use cairn_normalize::otlp::trace::v1::{Span, Status};
use prost::Message;

use crate::fixtures::send_json;
use crate::harness::Cairn;

/// Each span with its resource and scope, by span id.
type Encoded = BTreeMap<Vec<u8>, (Span, Resource, InstrumentationScope)>;

fn encoded(request: &ExportTraceServiceRequest) -> Encoded {
    let mut out = Encoded::new();
    for rs in &request.resource_spans {
        let resource = rs.resource.clone().unwrap_or_default();
        for ss in &rs.scope_spans {
            let scope = ss.scope.clone().unwrap_or_default();
            for span in &ss.spans {
                let mut span = span.clone();
                if span.status == Some(Status::default()) {
                    span.status = None;
                }
                let previous = out.insert(
                    span.span_id.clone(),
                    (span, resource.clone(), scope.clone()),
                );
                assert!(previous.is_none(), "a span twice");
            }
        }
    }
    out
}

fn fixtures() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".otlp.json"))
        .map(|p| {
            let name = p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace(".otlp.json", "");
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fixture_comes_back_from_the_trace_api_byte_for_byte() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 10, "fixtures: {}", fixtures.len());
    let cairn = Cairn::start(&[]);
    for (name, body) in &fixtures {
        let tenant = name.replace('_', "-");
        let sent: ExportTraceServiceRequest = serde_json::from_str(body).unwrap();
        let sent = encoded(&sent);
        send_json(&cairn, body.clone(), &tenant).await;
        assert_eq!(
            cairn
                .wait_for_count(Some(&tenant), "spans", sent.len() as i64)
                .await,
            sent.len() as i64,
            "{name}"
        );
        let traces: Vec<String> = cairn
            .sql(Some(&tenant), "SELECT DISTINCT trace_id FROM spans")
            .await
            .into_iter()
            .map(|r| r["trace_id"].as_str().unwrap().to_owned())
            .collect();
        let mut got = Encoded::new();
        for trace_id in &traces {
            let (status, answer) = cairn.trace(Some(&tenant), trace_id).await;
            assert_eq!(status, 200, "{name} {trace_id}: {answer}");
            let answer: ExportTraceServiceRequest = serde_json::from_value(answer).unwrap();
            got.extend(encoded(&answer));
        }
        assert_eq!(
            got.keys().map(hex::encode).collect::<Vec<_>>(),
            sent.keys().map(hex::encode).collect::<Vec<_>>(),
            "{name}: span ids"
        );
        for (id, sent) in &sent {
            let got = &got[id];
            let bytes = |(span, resource, scope): &(Span, Resource, InstrumentationScope)| {
                (
                    span.encode_to_vec(),
                    resource.encode_to_vec(),
                    scope.encode_to_vec(),
                )
            };
            if bytes(got) != bytes(sent) {
                // Show where: the decoded messages side by side.
                assert_eq!(
                    format!("{got:#?}"),
                    format!("{sent:#?}"),
                    "{name}: span {}",
                    hex::encode(id)
                );
                panic!("{name}: span {} differs in encoding only", hex::encode(id));
            }
        }
    }
}
