//! Hostile runs against the lineage, trail and trace APIs: a parent chain 10,000 deep, a child
//! that starts before its parent, a parent cycle, a why-chain 30,000 deep, a span linking 150
//! unknown traces and a span with 20,000 payload references, each in a tenant of its own. Each
//! answer must be complete and correct, and the server must stay up and answer a normal query
//! afterwards with every span still there. Durations are printed, not asserted.

use std::collections::HashMap;
use std::time::Instant;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value;

use crate::harness::{client, Cairn};

fn trace(n: u8) -> [u8; 16] {
    let mut t = [0u8; 16];
    t[0] = 0x4f;
    t[15] = n;
    t
}

fn span_id(n: u64) -> [u8; 8] {
    (n + 1).to_be_bytes()
}

fn hex_id(b: &[u8]) -> String {
    hex::encode(b)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

pub(crate) fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// A span of `trace` with id `id`, parent `parent`, starting `start` ns after `base`.
fn span(trace: [u8; 16], id: u64, parent: Option<u64>, base: u64, start: u64) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: span_id(id).to_vec(),
        parent_span_id: parent.map(|p| span_id(p).to_vec()).unwrap_or_default(),
        name: format!("step-{id}"),
        start_time_unix_nano: base + start,
        end_time_unix_nano: base + start + 500,
        ..Default::default()
    }
}

/// A parent chain: span `i` is the child of span `i - 1`, one microsecond later.
fn chain(trace: [u8; 16], n: u64, base: u64) -> Vec<Span> {
    (0..n)
        .map(|i| span(trace, i, i.checked_sub(1), base, i * 1000))
        .collect()
}

/// Sends `spans` over OTLP/HTTP protobuf as `tenant`, `per_request` at a time.
async fn send(cairn: &Cairn, tenant: &str, spans: Vec<Span>, per_request: usize) {
    let mut spans = spans.into_iter().peekable();
    while spans.peek().is_some() {
        let batch: Vec<Span> = spans.by_ref().take(per_request).collect();
        let body = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![text("service.name", "hostile-api")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: batch,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let resp = client()
            .post(format!("http://{}/v1/traces", cairn.otlp_http))
            .header("content-type", "application/x-protobuf")
            .header("X-Scope-OrgID", tenant)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "export");
    }
}

/// `GET path` as `tenant`: (status, JSON body), and prints how long it took.
async fn get(cairn: &Cairn, tenant: &str, path: &str) -> (u16, Value) {
    let started = Instant::now();
    let resp = client()
        .get(format!("http://{}{path}", cairn.http))
        .header("X-Scope-OrgID", tenant)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    println!("GET {path}: {status} in {:?}", started.elapsed());
    (status, body)
}

async fn ok(cairn: &Cairn, tenant: &str, path: &str) -> Value {
    let (status, body) = get(cairn, tenant, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// The server is up and answers a normal query: every tenant's spans are all there.
async fn still_up(cairn: &mut Cairn, stored: &[(&str, i64)]) {
    assert!(cairn.alive(), "the process is still running");
    for (tenant, spans) in stored {
        let started = Instant::now();
        assert_eq!(cairn.count(Some(tenant), "spans").await, *spans);
        println!(
            "select count(*) from spans ({tenant}): {:?}",
            started.elapsed()
        );
    }
}

/// Every step of a trail as (span id, parent span id, id of the step it is listed under,
/// level), depth first, without recursion.
fn steps(trail: &Value) -> Vec<(String, Option<String>, Option<String>, usize)> {
    let mut out = Vec::new();
    let roots = trail["steps"].as_array().expect("steps");
    let mut stack: Vec<(&Value, Option<String>, usize)> =
        roots.iter().rev().map(|r| (r, None, 1)).collect();
    while let Some((s, under, level)) = stack.pop() {
        let id = s["span_id"].as_str().unwrap().to_owned();
        if let Some(children) = s.get("children") {
            for c in children.as_array().unwrap().iter().rev() {
                stack.push((c, Some(id.clone()), level + 1));
            }
        }
        out.push((
            id,
            s["parent_span_id"].as_str().map(str::to_owned),
            under,
            level,
        ));
    }
    out
}

/// Each span id once.
fn once(steps: &[(String, Option<String>, Option<String>, usize)], expected: usize) {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for s in steps {
        *count.entry(s.0.as_str()).or_default() += 1;
    }
    assert_eq!(steps.len(), expected, "every step listed");
    assert_eq!(count.len(), expected, "each step once");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_runs_are_answered_completely() {
    let mut cairn = Cairn::start(&[]);
    let base = now() - 60_000_000_000;
    let (deep, early, cycle, deep_why, links, refs) =
        (trace(1), trace(2), trace(3), trace(4), trace(5), trace(6));
    const DEEP: u64 = 10_000;
    const WHY: u64 = 30_000;
    const LINKS: usize = 150;
    const REFS: usize = 20_000;

    // Each hostile run in a tenant of its own, so that each query reads only its run.
    let small_runs = vec![
        // A child starting 1 ms before its parent.
        span(early, 0, None, base, 2_000_000),
        span(early, 1, Some(0), base, 1_000_000),
        // A's parent is B, B's parent is A; C hangs off B.
        span(cycle, 0, Some(1), base, 0),
        span(cycle, 1, Some(0), base, 1000),
        span(cycle, 2, Some(1), base, 2000),
    ];
    let mut linking = span(links, 0, None, base, 0);
    linking.links = (0..LINKS)
        .map(|i| span::Link {
            trace_id: {
                let mut t = [0xee; 16];
                t[15] = i as u8;
                t.to_vec()
            },
            span_id: span_id(i as u64).to_vec(),
            attributes: vec![text("agent_trail.link.kind", "async_handoff")],
            ..Default::default()
        })
        .collect();
    let mut payloads = span(refs, 0, None, base, 0);
    payloads.attributes = (0..REFS)
        .map(|i| text(&format!("llm.prompts.{i}"), &format!("{i:0>140}")))
        .collect();
    let stored: [(&str, i64); 5] = [
        ("small", small_runs.len() as i64),
        ("deep", DEEP as i64),
        ("why", WHY as i64),
        ("links", 1),
        ("refs", 1),
    ];
    let started = Instant::now();
    send(&cairn, "small", small_runs, 5_000).await;
    send(&cairn, "deep", chain(deep, DEEP, base), 5_000).await;
    send(&cairn, "why", chain(deep_why, WHY, base), 5_000).await;
    send(&cairn, "links", vec![linking], 5_000).await;
    send(&cairn, "refs", vec![payloads], 5_000).await;
    for (tenant, n) in stored {
        assert_eq!(cairn.wait_for_count(Some(tenant), "spans", n).await, n);
    }
    println!("stored in {:?}", started.elapsed());

    // A parent chain 10,000 deep: every step once, nested at most `max_depth` levels, the
    // deeper ones under their ancestor at level max_depth - 1, marked, with their real parent.
    let trail = ok(&cairn, "deep", &format!("/api/v1/runs/{}", hex_id(&deep))).await;
    assert_eq!(trail["run"]["span_count"], DEEP);
    let max = trail["tree"]["max_depth"].as_u64().unwrap() as usize;
    assert!(max >= 2);
    assert_eq!(trail["tree"]["beyond_max_depth"], DEEP - max as u64);
    let listed = steps(&trail);
    once(&listed, DEEP as usize);
    let holder = hex_id(&span_id(max as u64 - 2));
    for (i, (id, parent, under, level)) in listed.iter().enumerate() {
        let i = i as u64;
        assert_eq!(*id, hex_id(&span_id(i)), "chain order");
        let real = i.checked_sub(1).map(|p| hex_id(&span_id(p)));
        assert_eq!(*parent, real, "real parent kept");
        if (i as usize) < max {
            assert_eq!((under, *level), (&real, i as usize + 1));
        } else {
            assert_eq!((under.as_deref(), *level), (Some(holder.as_str()), max));
        }
    }
    still_up(&mut cairn, &stored).await;

    // A child that starts before its parent stays under it.
    let trail = ok(&cairn, "small", &format!("/api/v1/runs/{}", hex_id(&early))).await;
    assert_eq!(trail["run"]["span_count"], 2);
    let listed = steps(&trail);
    once(&listed, 2);
    let (p, c) = (hex_id(&span_id(0)), hex_id(&span_id(1)));
    assert_eq!(listed[0].0, p);
    assert_eq!((&listed[1].0, &listed[1].2), (&c, &Some(p.clone())));

    // A parent cycle: broken at its earliest step, which becomes a marked root.
    let trail = ok(&cairn, "small", &format!("/api/v1/runs/{}", hex_id(&cycle))).await;
    let listed = steps(&trail);
    once(&listed, 3);
    let (a, b, c) = (
        hex_id(&span_id(0)),
        hex_id(&span_id(1)),
        hex_id(&span_id(2)),
    );
    assert_eq!(trail["tree"]["parent_cycles"], 1);
    assert_eq!(trail["steps"][0]["span_id"], a.as_str());
    assert_eq!(trail["steps"][0]["parent_cycle"], true);
    assert_eq!(trail["steps"][0]["parent_span_id"], b.as_str());
    assert_eq!(
        listed
            .iter()
            .map(|s| (s.0.clone(), s.2.clone()))
            .collect::<Vec<_>>(),
        [
            (a.clone(), None),
            (b.clone(), Some(a.clone())),
            (c, Some(b.clone()))
        ]
    );
    let why = ok(
        &cairn,
        "small",
        &format!("/api/v1/runs/{}/steps/{b}/why", hex_id(&cycle)),
    )
    .await;
    assert_eq!(why["ancestors"].as_array().unwrap().len(), 1);
    assert_eq!(why["ancestors"][0]["span_id"], a.as_str());
    assert_eq!(why["ancestor_cycle"], true);

    // A why-chain 30,000 deep: every ancestor, nearest first.
    let last = hex_id(&span_id(WHY - 1));
    let why = ok(
        &cairn,
        "why",
        &format!("/api/v1/runs/{}/steps/{last}/why", hex_id(&deep_why)),
    )
    .await;
    let ancestors = why["ancestors"].as_array().unwrap();
    assert_eq!(ancestors.len() as u64, WHY - 1);
    for (k, a) in ancestors.iter().enumerate() {
        assert_eq!(a["span_id"], hex_id(&span_id(WHY - 2 - k as u64)).as_str());
    }
    assert_eq!(why["ancestor_cycle"], false);
    still_up(&mut cairn, &stored).await;

    // 150 links to unknown traces: looked up together, within the bounds.
    let id = hex_id(&links);
    let graph = ok(&cairn, "links", &format!("/api/v1/runs/{id}/lineage")).await;
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(graph["runs"].as_array().unwrap().len(), 1);
    assert_eq!(graph["edges"].as_array().unwrap().len(), 0);
    assert_eq!(graph["edges_beyond_bounds"], LINKS);
    assert_eq!(graph["runs_beyond_bounds"], 0);
    assert_eq!(graph["truncated"], false);
    let near = ok(
        &cairn,
        "links",
        &format!("/api/v1/runs/{id}/lineage?depth=0"),
    )
    .await;
    assert_eq!(near["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(near["runs_beyond_bounds"], LINKS);
    assert_eq!(near["truncated"], false);
    // A budget of 20 nodes looks up at most 20 runs: this one and 19 linked ones.
    let small = ok(
        &cairn,
        "links",
        &format!("/api/v1/runs/{id}/lineage?max_nodes=20"),
    )
    .await;
    assert_eq!(small["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(small["truncated"], true);
    assert_eq!(small["runs_beyond_bounds"], LINKS - 19);
    // A budget of 10 nodes reads at most 100 edges: the graph stops at the first run, with
    // the runs of the edges read beyond it.
    let tiny = ok(
        &cairn,
        "links",
        &format!("/api/v1/runs/{id}/lineage?max_nodes=10"),
    )
    .await;
    assert_eq!(tiny["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(tiny["truncated"], true);
    assert_eq!(tiny["edges_beyond_bounds"], 100);
    assert_eq!(tiny["runs_beyond_bounds"], 100);
    still_up(&mut cairn, &stored).await;

    // 20,000 payload references in one span: read back exactly.
    let (status, body) = {
        let started = Instant::now();
        let r = cairn.trace(Some("refs"), &hex_id(&refs)).await;
        println!(
            "GET /api/v1/traces/{} ({REFS} payload references): {} in {:?}",
            hex_id(&refs),
            r.0,
            started.elapsed()
        );
        r
    };
    assert_eq!(status, 200, "{body}");
    let attrs = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
        .as_array()
        .unwrap();
    assert_eq!(attrs.len(), REFS);
    for (i, kv) in attrs.iter().enumerate() {
        assert_eq!(kv["key"], format!("llm.prompts.{i}"));
        assert_eq!(kv["value"]["stringValue"], format!("{i:0>140}"));
    }
    still_up(&mut cairn, &stored).await;
    assert!(cairn.stop(), "clean shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn parameters_are_typed_and_named_when_wrong() {
    let cairn = Cairn::start(&[]);
    let run = "0af7651916cd43dd8448eb211c80319c";
    for (path, names) in [
        (
            format!("/api/v1/runs/{run}?payload=true"),
            "unknown field `payload`",
        ),
        (format!("/api/v1/runs/{run}?payloads=yes"), "payloads"),
        (format!("/api/v1/runs/{run}/lineage?depth=deep"), "depth"),
        (format!("/api/v1/runs/{run}/replay?limit=0"), "limit=0"),
        (format!("/api/v1/runs/{run}/replay?limit=1000000"), "limit"),
        (format!("/api/v1/runs/{run}/replay?offset=-1"), "offset"),
        (
            format!("/api/v1/runs/{run}/replay?page=2"),
            "unknown field `page`",
        ),
        (format!("/api/v1/runs/{run}/steps?limit=all"), "limit"),
        (format!("/api/v1/runs/{run}/steps?limit=100001"), "limit"),
        (format!("/api/v1/runs/{run}/steps/xyz"), "span id"),
        (format!("/api/v1/runs/{run}/payloads/xyz"), "payload hash"),
        (format!("/api/v1/runs/{run}/search?q="), "q must be"),
        (
            format!("/api/v1/runs/{run}/search?text=x"),
            "unknown field `text`",
        ),
        ("/api/v1/runs?pending=human".to_owned(), "pending"),
        ("/api/v1/runs/not-a-trace".to_owned(), "trace id"),
        (format!("/api/v1/runs/{run}/steps/xyz/why"), "span id"),
        (format!("/api/v1/diff?left={run}&right=zz"), "right"),
        ("/api/v1/data?uri=s3://b&match=fuzzy".to_owned(), "match"),
        (
            "/api/v1/governance/bypasses?from=yesterday".to_owned(),
            "from",
        ),
        (
            "/api/v1/costs?by=run&currency=eur".to_owned(),
            "unknown field `currency`",
        ),
    ] {
        let (status, body) = get(&cairn, "default", &path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(names), "{path}: {error}");
    }
}
