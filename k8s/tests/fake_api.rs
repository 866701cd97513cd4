//! The fake API server through kube's own client and watcher: discovery, the recorded objects,
//! selectors, pages, watches that resume, re-list after 410 Gone, bookmarks, and the server going
//! down and coming back.

use std::time::Duration;

use cairn_k8s::fake::{FakeApiServer, Fault, Resource};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use kube::Api;
use serde_json::json;

fn pod(name: &str, node: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "agents", "labels": {"app": "agent"}},
        "spec": {"nodeName": node, "containers": [{"name": "agent", "image": "agent:1"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1"}
    })
}

#[tokio::test]
async fn fake_discovery_and_recorded_objects() {
    let server = FakeApiServer::start().await.unwrap();
    assert_eq!(server.seed_fixtures(), 6);
    let client = server.client().await;
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let group = discovery
        .get("agents.x-k8s.io")
        .expect("agent-sandbox group");
    assert_eq!(group.preferred_version_or_latest(), "v1beta1");
    assert!(discovery.has_group("coordination.k8s.io"));

    // Sandbox pods by their label; their placement as recorded.
    let pods: Api<Pod> = Api::all(client.clone());
    let sandboxed = pods
        .list(&ListParams::default().labels("agents.x-k8s.io/sandbox-name-hash"))
        .await
        .unwrap();
    let names: Vec<_> = sandboxed
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["code-agent-7f9c2", "research-pool-9qz7w"]);
    let spec = sandboxed.items[0].spec.as_ref().unwrap();
    assert_eq!(spec.runtime_class_name.as_deref(), Some("gvisor"));
    assert_eq!(spec.service_account_name.as_deref(), Some("code-agent"));
    let owner = &sandboxed.items[0]
        .metadata
        .owner_references
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Sandbox", Some(true))
    );
    let status = sandboxed.items[1].status.as_ref().unwrap();
    assert_eq!(status.pod_ips.as_ref().unwrap().len(), 2);

    // Field selectors: by node, by name, by namespace.
    let on_node = pods
        .list(&ListParams::default().fields("spec.nodeName=gke-agents-pool-1-5c8d2e1f-x7q2"))
        .await
        .unwrap();
    assert_eq!(on_node.items.len(), 2);
    let one = pods
        .list(&ListParams::default().fields("metadata.namespace=default,metadata.name!=x"))
        .await
        .unwrap();
    assert_eq!(
        one.items[0].metadata.name.as_deref(),
        Some("web-frontend-6d9f7b8c4-kx2lp")
    );

    // Sandboxes in both served versions.
    for (version, field) in [("v1beta1", "operatingMode"), ("v1alpha1", "replicas")] {
        let gvk = GroupVersionKind::gvk("agents.x-k8s.io", version, "Sandbox");
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "agents", &ApiResource::from_gvk(&gvk));
        let sandbox = api.get("code-agent-7f9c2").await.unwrap();
        assert!(sandbox.data["spec"].get(field).is_some(), "{version}");
        assert_eq!(
            sandbox.data["status"]["selector"],
            "agents.x-k8s.io/sandbox-name-hash=e92c1554"
        );
    }
    let missing = pods.get_opt("nope").await;
    assert!(matches!(missing, Ok(None)), "{missing:?}");
}

#[tokio::test]
async fn fake_pages_are_a_consistent_snapshot() {
    let server = FakeApiServer::start().await.unwrap();
    for i in 0..7 {
        server.apply(pod(&format!("p{i}"), "n1"));
    }
    let api: Api<Pod> = Api::namespaced(server.client().await, "agents");
    let first = api.list(&ListParams::default().limit(3)).await.unwrap();
    let rv = first.metadata.resource_version.clone();
    assert_eq!(first.items.len(), 3);
    // Changes after the first page do not show in the next ones.
    server.apply(pod("p9", "n1"));
    let mut all = first.items;
    let mut token = first.metadata.continue_;
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = api
            .list(&ListParams::default().limit(3).continue_token(&t))
            .await
            .unwrap();
        assert_eq!(page.metadata.resource_version, rv);
        all.extend(page.items);
        token = page.metadata.continue_;
    }
    assert_eq!(all.len(), 7);
    // A token outlives no compaction.
    let first = api.list(&ListParams::default().limit(3)).await.unwrap();
    server.compact_history();
    let gone = api
        .list(
            &ListParams::default()
                .limit(3)
                .continue_token(&first.metadata.continue_.unwrap()),
        )
        .await
        .unwrap_err();
    assert!(matches!(gone, kube::Error::Api(s) if s.code == 410));
}

/// kube's watcher lists in pages, watches from the list's version, resumes from its last
/// version when a watch ends, and lists again after 410 Gone.
#[tokio::test]
async fn fake_watcher_resumes_and_relists_after_gone() {
    let server = FakeApiServer::start().await.unwrap();
    for i in 0..3 {
        server.apply(pod(&format!("p{i}"), "n1"));
    }
    let api: Api<Pod> = Api::namespaced(server.client().await, "agents");
    let config = watcher::Config::default().page_size(2).timeout(30);
    let mut events = watcher(api, config).boxed();
    async fn next(
        events: &mut (impl futures::Stream<Item = watcher::Result<watcher::Event<Pod>>> + Unpin),
    ) -> watcher::Event<Pod> {
        tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("an event in time")
            .expect("no watch error")
            .expect("the stream goes on")
    }
    let mut initial = Vec::new();
    loop {
        match next(&mut events).await {
            watcher::Event::Init => {}
            watcher::Event::InitApply(p) => initial.push(p.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(initial, ["p0", "p1", "p2"]);
    let lists: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| !r.is_watch())
        .collect();
    assert_eq!(lists.len(), 2, "two pages");
    assert_eq!(
        lists[1].param("continue").map(|c| !c.is_empty()),
        Some(true)
    );

    let mut modified = pod("p1", "n2");
    modified["metadata"]["labels"]["step"] = json!("1");
    server.apply(modified);
    match next(&mut events).await {
        watcher::Event::Apply(p) => assert_eq!(p.spec.unwrap().node_name.as_deref(), Some("n2")),
        other => panic!("{other:?}"),
    }
    // The watch ends: the watcher resumes from the last version it saw, missing nothing.
    let seen = server.resource_version();
    server.drop_watches();
    server.delete(Resource::Pod, "agents", "p0");
    match next(&mut events).await {
        watcher::Event::Delete(p) => assert_eq!(p.metadata.name.as_deref(), Some("p0")),
        other => panic!("{other:?}"),
    }
    let watches: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.is_watch())
        .collect();
    assert_eq!(watches.len(), 2);
    assert_eq!(
        watches[1].param("resourceVersion"),
        Some(seen.to_string().as_str())
    );
    assert_eq!(watches[1].param("allowWatchBookmarks"), Some("true"));

    // The watch cut, and history compacted past its version before it resumes (its requests
    // held meanwhile): the resumed watch gets 410, the watcher lists again.
    server.set_fault(Fault::Hang);
    server.drop_watches();
    server.apply(pod("p3", "n1"));
    server.compact_history();
    server.clear_faults();
    let mut relisted = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
        {
            Err(watcher::Error::WatchError(e)) => assert_eq!(e.code, 410),
            Ok(watcher::Event::Init) => {}
            Ok(watcher::Event::InitApply(p)) => relisted.push(p.metadata.name.unwrap()),
            Ok(watcher::Event::InitDone) => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(relisted, ["p1", "p2", "p3"]);
}

#[tokio::test]
async fn fake_watch_bookmarks_timeout_and_gone() {
    let server = FakeApiServer::start().await.unwrap();
    server.set_bookmark_interval(Duration::from_millis(200));
    server.apply(pod("p0", "n1"));
    let api: Api<Pod> = Api::namespaced(server.client().await, "agents");
    let rv = server.resource_version().to_string();
    let started = std::time::Instant::now();
    let stream = api
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap();
    let events: Vec<_> = stream.try_collect().await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(events.len() >= 3, "{events:?}");
    assert!(events
        .iter()
        .all(|e| matches!(e, WatchEvent::Bookmark(b) if b.metadata.resource_version == rv)));

    // Selectors apply to events: a pod leaving the selection is DELETED for the watch.
    let selected = api
        .watch(
            &WatchParams::default().fields("spec.nodeName=n1").timeout(2),
            &rv,
        )
        .await
        .unwrap();
    server.apply(pod("p0", "n2"));
    let events: Vec<_> = selected.take(1).try_collect().await.unwrap();
    assert!(
        matches!(&events[0], WatchEvent::Deleted(p) if p.metadata.name.as_deref() == Some("p0"))
    );

    server.compact_history();
    let gone: Vec<_> = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(matches!(&gone[..], [WatchEvent::Error(e)] if e.code == 410 && e.reason == "Expired"));
}

#[tokio::test]
async fn fake_goes_down_comes_back_and_misbehaves_on_demand() {
    let server = FakeApiServer::start().await.unwrap();
    server.apply(pod("p0", "n1"));
    let api: Api<Pod> = Api::namespaced(server.client().await, "agents");
    assert!(api.get("p0").await.is_ok());
    server.stop().await;
    assert!(api.get("p0").await.is_err(), "answered while down");
    server.restart().await.unwrap();
    assert!(api.get("p0").await.is_ok(), "not back on the same port");

    // (kube's client retries 429, 503 and 504 by itself, for minutes: 500 it does not.)
    server.set_fault(Fault::Fail(500));
    let failed = api.get("p0").await.unwrap_err();
    assert!(matches!(failed, kube::Error::Api(s) if s.code == 500));
    server.set_fault(Fault::Latency(Duration::from_millis(300)));
    let started = std::time::Instant::now();
    api.get("p0").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    // One user's requests hang, another's go through.
    server.clear_faults();
    server.set_user_fault("stuck", Fault::Hang);
    let stuck: Api<Pod> = Api::namespaced(server.client_as("stuck").await, "agents");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stuck.get("p0"))
            .await
            .is_err()
    );
    assert!(api.get("p0").await.is_ok());
    let users: Vec<_> = server
        .requests()
        .into_iter()
        .filter_map(|r| r.user)
        .collect();
    assert!(users.contains(&"stuck".to_owned()) && users.contains(&"cairn".to_owned()));
}

#[tokio::test]
async fn fake_writes_with_optimistic_concurrency() {
    let server = FakeApiServer::start().await.unwrap();
    let api: Api<Pod> = Api::namespaced(server.client().await, "agents");
    let created = api
        .create(
            &Default::default(),
            &serde_json::from_value(pod("p0", "n1")).unwrap(),
        )
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("v".into(), "2".into());
    api.replace("p0", &Default::default(), &fresh)
        .await
        .unwrap();
    stale
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("v".into(), "3".into());
    let conflict = api
        .replace("p0", &Default::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(&conflict, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"),
        "{conflict:?}"
    );
    let exists = api
        .create(
            &Default::default(),
            &serde_json::from_value(pod("p0", "n1")).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(exists, kube::Error::Api(s) if s.reason == "AlreadyExists"));
    assert_eq!(server.writes().len(), 2);
}
