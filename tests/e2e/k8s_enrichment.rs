//! Pod enrichment from the Kubernetes API: the real binary watching a fake API server (the real
//! wire format: list, watch with resourceVersions and bookmarks, 410 Gone), seeded with recorded
//! pods and agent-sandbox `Sandbox` objects. Spans that say nothing about where they ran get
//! their pod's placement (`_src = k8s_api`), found by pod uid, pod IP, namespace and name, or the
//! connection's peer address; what spans carry is never overwritten; a fresh pod's first export
//! waits for the watch; an unreachable API server never stops ingest.

use std::time::Duration;

use cairn_k8s::fake::{FakeApiServer, Resource};
use opentelemetry::trace::{Tracer, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource as SdkResource;
use serde_json::{json, Value};

use crate::harness::{client, temp_dir, Cairn};

const CODE_AGENT_UID: &str = "275ecb36-5aa8-4c2a-9c47-d8bb681b9aff";
const RESEARCH_IP: &str = "10.52.4.9";
const WEB_UID: &str = "c81f5a3e-9d27-4b60-8e14-2f7a6c0d9b35";

/// A fake API server with the recorded objects, a kubeconfig naming it, and a Cairn watching it
/// with `extra` flags.
struct Cluster {
    api: FakeApiServer,
    cairn: Cairn,
    _dir: tempfile::TempDir,
}

async fn cluster(extra: &[&str]) -> Cluster {
    let api = FakeApiServer::start().await.expect("fake API server");
    api.seed_fixtures();
    let dir = temp_dir();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    let kubeconfig = kubeconfig.display().to_string();
    let mut args = vec![
        "--kube",
        "on",
        "--kubeconfig",
        &kubeconfig,
        "--kube-sandboxes",
        "--kube-labels",
        "app.kubernetes.io/*",
    ];
    args.extend(extra);
    let cairn = Cairn::start(&args);
    Cluster {
        api,
        cairn,
        _dir: dir,
    }
}

/// A pod like the recorded web frontend, named `name` with `uid` and `ip`.
fn pod(name: &str, uid: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "agents", "uid": uid,
            "labels": {"app.kubernetes.io/name": name, "team": "not-selected"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": format!("{name}-job"),
                                 "uid": "j-1", "controller": true}]
        },
        "spec": {"nodeName": "node-b", "serviceAccountName": "runner", "runtimeClassName": "kata",
                 "containers": [{"name": "main", "image": "agent:1"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    })
}

/// One OTLP/JSON export of one span whose resource has `attrs`; returns the HTTP status.
async fn export(cairn: &Cairn, name: &str, attrs: &[(&str, &str)]) -> u16 {
    let attributes: Vec<Value> = attrs
        .iter()
        .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
        .chain([json!({"key": "service.name", "value": {"stringValue": name}})])
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let id: u64 = now ^ 0x9e37_79b9_7f4a_7c15;
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": attributes},
        "scopeSpans": [{"spans": [{
            "traceId": format!("{:016x}{:016x}", id, id.rotate_left(17)),
            "spanId": format!("{:016x}", id.rotate_left(31) | 1),
            "name": name,
            "kind": 1,
            "startTimeUnixNano": (now - 1_000_000).to_string(),
            "endTimeUnixNano": now.to_string(),
        }]}]
    }]});
    client()
        .post(format!("http://{}/v1/traces", cairn.otlp_http))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The placement columns of the span named `name`, once it is stored.
async fn placement(cairn: &Cairn, name: &str) -> Value {
    let sql = format!(
        "SELECT k8s_namespace, k8s_namespace_src, k8s_pod_name, k8s_pod_name_src, k8s_pod_uid, \
         k8s_node_name, k8s_node_name_src, k8s_service_account, k8s_container_name, \
         k8s_runtime_class, k8s_runtime_class_src, k8s_workload_kind, k8s_workload_name, \
         k8s_workload_name_src, k8s_labels, sandbox_id, sandbox_id_src, sandbox_template, \
         sandbox_provider, resource_attributes FROM spans WHERE name = '{name}'"
    );
    for _ in 0..100 {
        let rows = cairn.sql(None, &sql).await;
        if let Some(row) = rows.into_iter().next() {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("span {name} was not stored");
}

/// Waits until `/metrics` shows `name{labels}` at `want`.
async fn metric_reaches(cairn: &Cairn, name: &str, labels: &str, want: f64) {
    for _ in 0..200 {
        if cairn.metric(name, labels).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{name}{{{labels}}} is {}, not {want}",
        cairn.metric(name, labels).await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_get_their_pod_by_uid_ip_name_and_peer() {
    let c = cluster(&[]).await;
    // A pod whose IP is the loopback address the test exports from.
    c.api.apply(pod("local-agent", "u-local", "127.0.0.1"));
    metric_reaches(&c.cairn, "cairn_k8s_pods", "", 4.0).await;

    assert_eq!(
        export(&c.cairn, "by-uid", &[("k8s.pod.uid", CODE_AGENT_UID)]).await,
        200
    );
    assert_eq!(
        export(&c.cairn, "by-ip", &[("k8s.pod.ip", RESEARCH_IP)]).await,
        200
    );
    assert_eq!(
        export(
            &c.cairn,
            "by-name",
            &[
                ("k8s.namespace.name", "default"),
                ("k8s.pod.name", "web-frontend-6d9f7b8c4-kx2lp"),
            ],
        )
        .await,
        200
    );
    // What the span carries stays: its own pod name and node, the rest from the API.
    assert_eq!(
        export(
            &c.cairn,
            "reported",
            &[
                ("k8s.pod.uid", WEB_UID),
                ("k8s.pod.name", "as-reported"),
                ("k8s.deployment.name", "frontend-reported"),
            ],
        )
        .await,
        200
    );

    // The real Rust OTLP exporter over gRPC, with no placement at all: found by its address.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("http://{}", c.cairn.grpc))
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            SdkResource::builder_empty()
                .with_attributes([KeyValue::new("service.name", "peer")])
                .build(),
        )
        .build();
    provider.tracer("k8s-e2e").in_span("by-peer", |_| {});
    provider.force_flush().unwrap();
    provider.shutdown().unwrap();

    let code = placement(&c.cairn, "by-uid").await;
    assert_eq!(code["k8s_namespace"], "agents");
    assert_eq!(code["k8s_namespace_src"], "k8s_api");
    assert_eq!(code["k8s_pod_name"], "code-agent-7f9c2");
    assert_eq!(code["k8s_pod_name_src"], "k8s_api");
    assert_eq!(code["k8s_node_name"], "gke-agents-pool-1-5c8d2e1f-x7q2");
    assert_eq!(code["k8s_service_account"], "code-agent");
    assert_eq!(code["k8s_container_name"], "agent");
    assert_eq!(code["k8s_runtime_class"], "gvisor");
    assert_eq!(code["k8s_runtime_class_src"], "k8s_api");
    assert_eq!(code["k8s_workload_kind"], "Sandbox");
    assert_eq!(code["k8s_workload_name"], "code-agent-7f9c2");
    assert_eq!(code["sandbox_id"], "code-agent-7f9c2");
    assert_eq!(code["sandbox_id_src"], "k8s_api");
    assert_eq!(code["sandbox_provider"], "agent-sandbox");
    assert_eq!(
        code["k8s_labels"],
        json!([
            "app.kubernetes.io/component=agent",
            "app.kubernetes.io/name=code-agent",
            "app.kubernetes.io/version=1.4.2"
        ])
    );
    // The raw resource attributes are the ones the agent sent, nothing added.
    assert!(
        code["resource_attributes"].get("k8s.pod.name").is_none(),
        "{}",
        code["resource_attributes"]
    );

    let research = placement(&c.cairn, "by-ip").await;
    assert_eq!(research["k8s_pod_name"], "research-pool-9qz7w");
    assert_eq!(research["sandbox_id"], "research-agent-x4k2p");
    // From the `Sandbox` object the watch of sandboxes delivered.
    assert_eq!(research["sandbox_template"], "research-agent");

    let web = placement(&c.cairn, "by-name").await;
    assert_eq!(web["k8s_pod_uid"], WEB_UID);
    assert_eq!(web["k8s_workload_kind"], "Deployment");
    assert_eq!(web["k8s_workload_name"], "web-frontend");
    assert_eq!(web["sandbox_id"], Value::Null, "not a sandbox");
    assert_eq!(web["k8s_runtime_class"], Value::Null);

    let reported = placement(&c.cairn, "reported").await;
    assert_eq!(reported["k8s_pod_name"], "as-reported");
    assert_eq!(reported["k8s_pod_name_src"], "resource:k8s.pod.name");
    assert_eq!(reported["k8s_workload_name"], "frontend-reported");
    assert_eq!(
        reported["k8s_workload_name_src"],
        "resource:k8s.deployment.name"
    );
    assert_eq!(reported["k8s_node_name"], "gke-agents-pool-1-5c8d2e1f-x7q2");
    assert_eq!(reported["k8s_node_name_src"], "k8s_api");

    let peer = placement(&c.cairn, "by-peer").await;
    assert_eq!(peer["k8s_pod_name"], "local-agent");
    assert_eq!(peer["k8s_runtime_class"], "kata");
    assert_eq!(peer["k8s_workload_kind"], "Job");
    assert_eq!(
        peer["k8s_labels"],
        json!(["app.kubernetes.io/name=local-agent"])
    );

    for (by, n) in [
        ("pod_uid", 2.0),
        ("pod_ip", 1.0),
        ("pod_name", 1.0),
        ("peer", 1.0),
    ] {
        assert_eq!(
            c.cairn
                .metric(
                    "cairn_k8s_resources_enriched_total",
                    &format!("by=\"{by}\"")
                )
                .await,
            n,
            "{by}"
        );
    }

    // The watch: a list, then a watch from the list's resourceVersion with bookmarks.
    let requests = c.api.requests();
    let pods: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/api/v1/pods")
        .collect();
    assert!(pods[0].param("watch").is_none(), "{pods:?}");
    let watch = pods
        .iter()
        .find(|r| r.param("watch") == Some("true"))
        .expect("a pod watch");
    assert_eq!(watch.param("allowWatchBookmarks"), Some("true"));
    assert!(watch.param("resourceVersion").is_some_and(|rv| rv != "0"));
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/apis/agents.x-k8s.io/v1beta1/sandboxes"),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_created_after_its_first_spans() {
    let c = cluster(&["--kube-pod-wait", "5s", "--kube-association", "pod-uid"]).await;
    metric_reaches(&c.cairn, "cairn_k8s_pods", "", 3.0).await;

    // The export arrives first; the watch delivers the pod while it waits.
    let export_first = export(&c.cairn, "fresh", &[("k8s.pod.uid", "u-fresh")]);
    let create_later = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.api.apply(pod("fresh-agent", "u-fresh", "10.9.0.1"));
    };
    let (status, ()) = tokio::join!(export_first, create_later);
    assert_eq!(status, 200);
    let fresh = placement(&c.cairn, "fresh").await;
    assert_eq!(fresh["k8s_pod_name"], "fresh-agent");
    assert_eq!(fresh["k8s_pod_name_src"], "k8s_api");
    assert_eq!(
        c.cairn.metric("cairn_k8s_pod_waits_found_total", "").await,
        1.0
    );

    // A pod that never comes: stored unenriched after the wait, and its key is not waited for
    // a second time.
    assert_eq!(
        export(&c.cairn, "ghost-1", &[("k8s.pod.uid", "u-ghost")]).await,
        200
    );
    assert_eq!(
        export(&c.cairn, "ghost-2", &[("k8s.pod.uid", "u-ghost")]).await,
        200
    );
    let ghost = placement(&c.cairn, "ghost-2").await;
    assert_eq!(ghost["k8s_pod_name"], Value::Null);
    assert_eq!(ghost["k8s_pod_uid"], "u-ghost", "what the span said stays");
    assert_eq!(c.cairn.metric("cairn_k8s_pod_waits_total", "").await, 2.0);
    assert_eq!(
        c.cairn
            .metric(
                "cairn_k8s_resources_unenriched_total",
                "reason=\"unknown_pod\""
            )
            .await,
        2.0
    );
    // Spans naming no pod at all never wait.
    assert_eq!(export(&c.cairn, "nowhere", &[]).await, 200);
    assert_eq!(c.cairn.metric("cairn_k8s_pod_waits_total", "").await, 2.0);
    assert_eq!(
        c.cairn
            .metric(
                "cairn_k8s_resources_unenriched_total",
                "reason=\"no_pod_keys\""
            )
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_goes_on_while_the_api_server_is_down() {
    let c = cluster(&["--kube-pod-wait", "30s"]).await;
    metric_reaches(&c.cairn, "cairn_k8s_pods", "", 3.0).await;
    metric_reaches(&c.cairn, "cairn_k8s_api_up", "", 1.0).await;

    c.api.stop().await;
    metric_reaches(&c.cairn, "cairn_k8s_api_up", "", 0.0).await;
    // A pod the cache holds is still found; an unknown one does not wait 30 s for a watch
    // that cannot deliver it.
    let started = std::time::Instant::now();
    assert_eq!(
        export(&c.cairn, "cached", &[("k8s.pod.uid", CODE_AGENT_UID)]).await,
        200
    );
    assert_eq!(
        export(&c.cairn, "unknown", &[("k8s.pod.uid", "u-new")]).await,
        200
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "an export waited for an unreachable API server"
    );
    assert_eq!(
        placement(&c.cairn, "cached").await["k8s_runtime_class"],
        "gvisor"
    );
    assert_eq!(
        placement(&c.cairn, "unknown").await["k8s_pod_name"],
        Value::Null
    );
    assert_eq!(
        c.cairn
            .metric(
                "cairn_k8s_resources_unenriched_total",
                "reason=\"api_unavailable\""
            )
            .await,
        1.0
    );

    // Back: the watch resumes and a pod created since is found.
    c.api.restart().await.unwrap();
    c.api.apply(pod("after-outage", "u-after", "10.9.0.2"));
    metric_reaches(&c.cairn, "cairn_k8s_api_up", "", 1.0).await;
    assert_eq!(
        export(&c.cairn, "after", &[("k8s.pod.uid", "u-after")]).await,
        200
    );
    assert_eq!(
        placement(&c.cairn, "after").await["k8s_pod_name"],
        "after-outage"
    );
    assert!(c.cairn.metric("cairn_k8s_watch_errors_total", "").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_watch_relists_and_forgets_deleted_pods_later() {
    let c = cluster(&[
        "--kube-association",
        "pod-uid",
        "--kube-deleted-ttl",
        "1s",
        "--kube-pod-wait",
        "0s",
    ])
    .await;
    metric_reaches(&c.cairn, "cairn_k8s_relists_total", "", 1.0).await;

    // While the API server is away a pod goes and one comes, and the history is forgotten: the
    // watch resumes from its old version, gets 410 Gone, and lists again.
    c.api.stop().await;
    c.api
        .delete(Resource::Pod, "default", "web-frontend-6d9f7b8c4-kx2lp");
    c.api.apply(pod("after-relist", "u-relist", "10.9.0.3"));
    c.api.compact_history();
    c.api.restart().await.unwrap();
    metric_reaches(&c.cairn, "cairn_k8s_relists_total", "", 2.0).await;
    assert_eq!(
        export(&c.cairn, "relisted", &[("k8s.pod.uid", "u-relist")]).await,
        200
    );
    assert_eq!(
        placement(&c.cairn, "relisted").await["k8s_pod_name"],
        "after-relist"
    );
    // The deleted pod is forgotten once its time is up.
    metric_reaches(&c.cairn, "cairn_k8s_pods", "", 3.0).await;
    assert_eq!(
        export(&c.cairn, "gone", &[("k8s.pod.uid", WEB_UID)]).await,
        200
    );
    assert_eq!(
        placement(&c.cairn, "gone").await["k8s_pod_name"],
        Value::Null
    );
    let lists = c
        .api
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/pods" && r.param("watch").is_none())
        .count();
    assert_eq!(lists, 2, "one list at start, one after 410 Gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_node_and_one_namespace() {
    let c = cluster(&[
        "--kube-node",
        "gke-agents-pool-1-5c8d2e1f-m3n8",
        "--kube-namespace",
        "agents",
    ])
    .await;
    // Only the research agent runs on that node.
    metric_reaches(&c.cairn, "cairn_k8s_pods", "", 1.0).await;
    let requests = c.api.requests();
    let list = requests
        .iter()
        .find(|r| r.path == "/api/v1/namespaces/agents/pods")
        .expect("a namespaced list");
    assert_eq!(
        list.param("fieldSelector"),
        Some("spec.nodeName=gke-agents-pool-1-5c8d2e1f-m3n8")
    );
    assert!(requests.iter().all(|r| r.path != "/api/v1/pods"));
}

/// What the API said at ingest is in the write-ahead log: a replay after a crash stores the
/// same placement, even with the API out of reach.
#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_log_keeps_the_placement() {
    let api = FakeApiServer::start().await.unwrap();
    api.seed_fixtures();
    let dir = temp_dir();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    let store = dir.path().join("data").display().to_string();
    let cairn = Cairn::start_on(
        &store,
        &[
            "--kube",
            "on",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--ack",
            "wal",
            "--flush-interval",
            "1h",
        ],
        &[],
    );
    metric_reaches(&cairn, "cairn_k8s_pods", "", 3.0).await;
    assert_eq!(
        export(&cairn, "logged", &[("k8s.pod.uid", CODE_AGENT_UID)]).await,
        200
    );
    cairn.crash();
    drop(api);
    let cairn = Cairn::start_on(&store, &["--kube", "off", "--ack", "wal"], &[]);
    let row = placement(&cairn, "logged").await;
    assert_eq!(row["k8s_pod_name"], "code-agent-7f9c2");
    assert_eq!(row["k8s_pod_name_src"], "k8s_api");
    assert_eq!(row["k8s_runtime_class"], "gvisor");
}
