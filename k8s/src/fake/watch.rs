//! `?watch=true`: newline-delimited `{"type": ..., "object": ...}` events from a
//! resourceVersion, as the real server streams them. A watch from an unset or `"0"` version
//! (or with `sendInitialEvents=true`) first gets the current objects as ADDED; one from a
//! version older than the retained history gets an ERROR event with a 410 `Status`
//! ("Expired"). Selectors turn a modification into ADDED or DELETED when the object starts or
//! stops matching. `allowWatchBookmarks` brings a BOOKMARK every bookmark interval, and
//! `timeoutSeconds` ends the stream; so do [`super::FakeApiServer::drop_watches`], a stopped
//! server, and a client that goes away.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::api::{status, streaming};
use super::faults::RecordedRequest;
use super::resource::Resource;
use super::select::Selector;
use super::store::{Event, EventType};
use super::Shared;

/// What one watch asked for.
struct Spec {
    resource: Resource,
    version: String,
    namespace: Option<String>,
    labels: Selector,
    fields: Selector,
    from: Option<u64>,
    bookmarks: bool,
    initial_events: bool,
    timeout: Option<Duration>,
}

impl Spec {
    fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// The event this watch sees of `event`, if any.
    fn view(&self, event: &Event) -> Option<(&'static str, Value)> {
        if event.resource != self.resource
            || self
                .namespace
                .as_ref()
                .is_some_and(|ns| *ns != event.namespace)
        {
            return None;
        }
        let now = self.matches(&event.object);
        let kind = match event.kind {
            EventType::Modified => {
                let before = event.previous.as_ref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => EventType::Modified,
                    (false, true) => EventType::Added,
                    (true, false) => EventType::Deleted,
                    (false, false) => return None,
                }
            }
            kind => {
                if !now {
                    return None;
                }
                kind
            }
        };
        Some((kind.as_str(), event.object.clone()))
    }

    fn line(&self, kind: &str, object: Value) -> Bytes {
        let object = self.resource.convert(object, &self.version);
        let mut line = json!({"type": kind, "object": object}).to_string();
        line.push('\n');
        Bytes::from(line)
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({
            "kind": self.resource.kind(),
            "apiVersion": self.resource.api_version(&self.version),
            "metadata": metadata,
        });
        let mut line = json!({"type": "BOOKMARK", "object": object}).to_string();
        line.push('\n');
        Bytes::from(line)
    }
}

/// Answers a watch request: the stream starts at once, its events follow.
pub fn stream(
    shared: Arc<Shared>,
    resource: Resource,
    version: &str,
    namespace: Option<&str>,
    query: &RecordedRequest,
) -> Response {
    let selector = |name: &str, parse: fn(&str) -> Result<Selector, String>| {
        parse(query.param(name).unwrap_or_default())
    };
    let (labels, fields) = match (
        selector("labelSelector", Selector::labels),
        selector("fieldSelector", Selector::fields),
    ) {
        (Ok(l), Ok(f)) => (l, f),
        (Err(e), _) | (_, Err(e)) => return status(400, "BadRequest", e),
    };
    let from = match query.param("resourceVersion").filter(|v| !v.is_empty()) {
        None | Some("0") => None,
        Some(v) => match v.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => return status(400, "BadRequest", format!("invalid resourceVersion {v}")),
        },
    };
    let spec = Spec {
        resource,
        version: version.to_owned(),
        namespace: namespace.map(str::to_owned),
        labels,
        fields,
        from,
        bookmarks: query.param("allowWatchBookmarks") == Some("true"),
        initial_events: query.param("sendInitialEvents") == Some("true"),
        timeout: query
            .param("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|t| *t > 0)
            .map(Duration::from_secs),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(produce(shared, spec, tx));
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line), rx))
    });
    streaming(Body::from_stream(body))
}

/// Sends the events of one watch until it ends.
async fn produce(shared: Arc<Shared>, spec: Spec, tx: mpsc::Sender<Bytes>) {
    let dropped = shared.watches.lock().expect("watches").clone();
    let bookmark_every = *shared.bookmark_interval.lock().expect("bookmark interval");
    let start = {
        let store = shared.store.lock().expect("store");
        match spec.from {
            Some(rv) if !spec.initial_events => match store.resume(rv) {
                Some(resumed) => {
                    let replay: Vec<Bytes> = resumed
                        .replay
                        .iter()
                        .filter_map(|e| spec.view(e))
                        .map(|(kind, object)| spec.line(kind, object))
                        .collect();
                    Ok((replay, resumed.live, resumed.rv))
                }
                None => {
                    let gone = json!({
                        "type": "ERROR",
                        "object": {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "metadata": {},
                            "status": "Failure",
                            "message": format!("too old resource version: {rv} ({})", store.compacted()),
                            "reason": "Expired",
                            "code": 410,
                        },
                    });
                    Err(Bytes::from(format!("{gone}\n")))
                }
            },
            _ => {
                let mut initial: Vec<Bytes> = store
                    .list(spec.resource, spec.namespace.as_deref())
                    .into_iter()
                    .filter(|o| spec.matches(o))
                    .map(|o| spec.line("ADDED", o))
                    .collect();
                if spec.initial_events {
                    initial.push(spec.bookmark(store.rv(), true));
                }
                Ok((initial, store.subscribe(), store.rv()))
            }
        }
    };
    let (first, mut live, mut seen) = match start {
        Ok(start) => start,
        Err(gone) => {
            let _ = tx.send(gone).await;
            return;
        }
    };
    for line in first {
        if tx.send(line).await.is_err() {
            return;
        }
    }
    let timeout = tokio::time::sleep(spec.timeout.unwrap_or(Duration::MAX / 4));
    tokio::pin!(timeout);
    let mut bookmarks = tokio::time::interval(bookmark_every);
    bookmarks.tick().await;
    loop {
        let line = tokio::select! {
            // Ends before delivering anything more once asked to.
            biased;
            _ = dropped.cancelled() => return,
            _ = &mut timeout => return,
            _ = tx.closed() => return,
            _ = bookmarks.tick(), if spec.bookmarks => spec.bookmark(seen, false),
            event = live.recv() => match event {
                Ok(event) if event.rv > seen => {
                    seen = event.rv;
                    match spec.view(&event) {
                        Some((kind, object)) => spec.line(kind, object),
                        None => continue,
                    }
                }
                Ok(_) => continue,
                // Too slow a reader: end the stream, the client watches again from its last
                // version.
                Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(line).await.is_err() {
            return;
        }
    }
}
