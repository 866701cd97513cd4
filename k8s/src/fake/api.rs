//! The fake server's HTTP side: every request is recorded, meets the fault in force, then is
//! routed by its path as the real server does (discovery, collections, single objects) and
//! answered in the real wire format, errors as `Status` objects.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::faults::{Fault, RecordedRequest, Verb, Write};
use super::resource::Resource;
use super::select::Selector;
use super::store::{Key, WriteError};
use super::{discovery, watch, Shared};

/// The largest request body accepted.
const MAX_BODY: usize = 3 << 20;

/// A `Status` failure answer.
pub fn status(code: u16, reason: &str, message: impl Into<String>) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.into(),
        "reason": reason,
        "code": code,
    });
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(body)).into_response()
}

/// A request refused, answered as a `Status`.
struct Refusal(u16, &'static str, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        status(self.0, self.1, self.2)
    }
}

/// The reason the real server gives with `code`.
fn reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        504 => "Timeout",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    }
}

/// The user a request authenticates as: its bearer token.
fn user(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

/// Waits out the fault `user` meets; `Some(answer)` when the fault answers instead.
async fn meet_fault(shared: &Shared, user: Option<&str>) -> Option<Response> {
    let mut faults = shared.faults.subscribe();
    loop {
        let fault = faults.borrow_and_update().of(user);
        match fault {
            Fault::None => return None,
            Fault::Latency(delay) => {
                tokio::time::sleep(delay).await;
                return None;
            }
            Fault::Fail(code) => {
                return Some(status(code, reason(code), "injected failure"));
            }
            Fault::Hang => {
                if faults.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

pub async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let user = user(&request);
    let query = Query::<Vec<(String, String)>>::try_from_uri(request.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let recorded = RecordedRequest {
        at: std::time::Instant::now(),
        user: user.clone(),
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        query,
    };
    shared
        .requests
        .lock()
        .expect("requests")
        .push(recorded.clone());
    if let Some(answer) = meet_fault(&shared, user.as_deref()).await {
        return answer;
    }
    let method = request.method().clone();
    let body = match to_bytes(request.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return status(400, "BadRequest", format!("reading the body: {e}")),
    };
    let call = Call {
        shared,
        user,
        method,
        query: recorded,
        body: &body,
    };
    let path = call.query.path.clone();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let found = match segments.as_slice() {
        ["version"] => Some(Json(discovery::version()).into_response()),
        ["api"] => {
            Some(Json(discovery::core_versions(&call.shared.addr.to_string())).into_response())
        }
        ["apis"] => Some(Json(discovery::group_list()).into_response()),
        ["api", version] => discovery::resource_list("", version).map(|d| Json(d).into_response()),
        ["apis", group] => discovery::group_document(group).map(|d| Json(d).into_response()),
        ["apis", group, version] => {
            discovery::resource_list(group, version).map(|d| Json(d).into_response())
        }
        ["api", version, rest @ ..] => call.resource("", version, rest),
        ["apis", group, version, rest @ ..] => call.resource(group, version, rest),
        _ => None,
    };
    found.unwrap_or_else(|| {
        status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    })
}

/// One request to a resource path.
struct Call<'a> {
    shared: Arc<Shared>,
    user: Option<String>,
    method: Method,
    query: RecordedRequest,
    body: &'a [u8],
}

impl Call<'_> {
    fn resource(&self, group: &str, version: &str, rest: &[&str]) -> Option<Response> {
        let (namespace, plural, name) = match rest {
            [plural] => (None, *plural, None),
            ["namespaces", ns, plural] => (Some(*ns), *plural, None),
            ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
            _ => return None,
        };
        let resource = Resource::at(group, version, plural)?;
        Some(match (name, &self.method) {
            (None, &Method::GET) if self.query.is_watch() => watch::stream(
                Arc::clone(&self.shared),
                resource,
                version,
                namespace,
                &self.query,
            ),
            (None, &Method::GET) => self.list(resource, version, namespace),
            (None, &Method::POST) => match namespace {
                Some(ns) => self.create(resource, version, ns),
                None => status(405, "MethodNotAllowed", "create needs a namespace"),
            },
            (Some(name), method) => {
                let key: Key = (
                    resource,
                    namespace.unwrap_or_default().to_owned(),
                    name.to_owned(),
                );
                match *method {
                    Method::GET => self.get(resource, version, &key),
                    Method::PUT => self.replace(resource, version, &key),
                    Method::DELETE => self.delete(resource, version, &key),
                    _ => status(
                        405,
                        "MethodNotAllowed",
                        format!("{method} is not supported by the fake"),
                    ),
                }
            }
            (None, method) => status(
                405,
                "MethodNotAllowed",
                format!("{method} is not supported by the fake"),
            ),
        })
    }

    fn selectors(&self) -> Result<(Selector, Selector), Refusal> {
        let labels = Selector::labels(self.query.param("labelSelector").unwrap_or_default())
            .map_err(|e| Refusal(400, "BadRequest", e))?;
        let fields = Selector::fields(self.query.param("fieldSelector").unwrap_or_default())
            .map_err(|e| Refusal(400, "BadRequest", e))?;
        Ok((labels, fields))
    }

    fn list(&self, resource: Resource, version: &str, namespace: Option<&str>) -> Response {
        let (labels, fields) = match self.selectors() {
            Ok(s) => s,
            Err(refusal) => return refusal.into_response(),
        };
        let mut store = self.shared.store.lock().expect("store");
        let (items, rv) = match self.query.param("continue").filter(|c| !c.is_empty()) {
            Some(token) => match store.take_page(token) {
                Some(page) => page,
                None => {
                    return status(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    )
                }
            },
            None => {
                let exact = self.query.param("resourceVersionMatch") == Some("Exact");
                let asked = self.query.param("resourceVersion").and_then(|v| v.parse::<u64>().ok());
                if exact && asked.is_some_and(|rv| rv < store.compacted()) {
                    return status(410, "Expired", "too old resource version");
                }
                let items = store
                    .list(resource, namespace)
                    .into_iter()
                    .filter(|o| labels.matches(o) && fields.matches(o))
                    .collect();
                (items, store.rv())
            }
        };
        let limit = self
            .query
            .param("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0);
        let (page, rest) = match limit {
            Some(limit) if items.len() > limit => {
                let mut items = items;
                let rest = items.split_off(limit);
                (items, rest)
            }
            _ => (items, Vec::new()),
        };
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if !rest.is_empty() {
            metadata["remainingItemCount"] = json!(rest.len());
            metadata["continue"] = json!(store.save_page(rest, rv));
        }
        drop(store);
        let items: Vec<Value> = page
            .into_iter()
            .map(|o| {
                let mut o = resource.convert(o, version);
                if resource.builtin() {
                    if let Some(map) = o.as_object_mut() {
                        map.remove("apiVersion");
                        map.remove("kind");
                    }
                }
                o
            })
            .collect();
        Json(json!({
            "apiVersion": resource.api_version(version),
            "kind": format!("{}List", resource.kind()),
            "metadata": metadata,
            "items": items,
        }))
        .into_response()
    }

    fn get(&self, resource: Resource, version: &str, key: &Key) -> Response {
        let store = self.shared.store.lock().expect("store");
        match store.get(key) {
            Some(o) => Json(resource.convert(o.clone(), version)).into_response(),
            None => not_found(resource, &key.2),
        }
    }

    fn object(&self, resource: Resource, version: &str) -> Result<Value, Refusal> {
        let mut object: Value = serde_json::from_slice(self.body)
            .map_err(|e| Refusal(400, "BadRequest", format!("the body is not an object: {e}")))?;
        if !object.is_object() {
            return Err(Refusal(
                400,
                "BadRequest",
                "the body is not an object".into(),
            ));
        }
        if object.get("apiVersion").is_none() {
            object["apiVersion"] = json!(resource.api_version(version));
            object["kind"] = json!(resource.kind());
        }
        if Resource::of(&object) != Some(resource) {
            return Err(Refusal(
                400,
                "BadRequest",
                "apiVersion and kind do not match the path".into(),
            ));
        }
        Ok(resource.to_storage(object))
    }

    fn create(&self, resource: Resource, version: &str, namespace: &str) -> Response {
        let object = match self.object(resource, version) {
            Ok(o) => o,
            Err(refusal) => return refusal.into_response(),
        };
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let result = self
            .shared
            .store
            .lock()
            .expect("store")
            .create(resource, namespace, object);
        self.answer(resource, version, &name, Verb::Create, result)
    }

    fn replace(&self, resource: Resource, version: &str, key: &Key) -> Response {
        let object = match self.object(resource, version) {
            Ok(o) => o,
            Err(refusal) => return refusal.into_response(),
        };
        let result = self
            .shared
            .store
            .lock()
            .expect("store")
            .replace(key, object);
        self.answer(resource, version, &key.2, Verb::Update, result)
    }

    fn delete(&self, resource: Resource, version: &str, key: &Key) -> Response {
        let result = self.shared.store.lock().expect("store").delete(key);
        self.answer(resource, version, &key.2, Verb::Delete, result)
    }

    /// Records an accepted write and answers with the object; answers a refusal as the real
    /// server words it.
    fn answer(
        &self,
        resource: Resource,
        version: &str,
        name: &str,
        verb: Verb,
        result: Result<Value, WriteError>,
    ) -> Response {
        let what = format!("{}.{}", resource.plural(), resource.group());
        let what = what.trim_end_matches('.');
        match result {
            Ok(object) => {
                self.shared.writes.lock().expect("writes").push(Write {
                    at: std::time::Instant::now(),
                    user: self.user.clone(),
                    verb,
                    resource,
                    object: object.clone(),
                });
                let code = if verb == Verb::Create {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                (code, Json(resource.convert(object, version))).into_response()
            }
            Err(WriteError::NotFound) => not_found(resource, name),
            Err(WriteError::AlreadyExists) => {
                status(409, "AlreadyExists", format!("{what} \"{name}\" already exists"))
            }
            Err(WriteError::Conflict) => status(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on {what} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
            ),
            Err(WriteError::Invalid(e)) => status(422, "Invalid", format!("{what} \"{name}\" is invalid: {e}")),
        }
    }
}

fn not_found(resource: Resource, name: &str) -> Response {
    let what = format!("{}.{}", resource.plural(), resource.group());
    status(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", what.trim_end_matches('.')),
    )
}

/// An empty 200 answer with a JSON content type, for bodies streamed after it.
pub fn streaming(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
