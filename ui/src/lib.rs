//! `cairn-ui`: the web UI, embedded in the binary and served on the query API's port (default
//! 3200) as the fallback of its router.
//!
//! Data flow:
//!
//! ```text
//! ui/app (Vite, React) ── build.rs: npm ci, npm run build ──▶ $OUT_DIR/ui ─┐
//! CAIRN_UI_DIST=<dir> (a UI built elsewhere) ──────────────────────────────┤
//! no npm, or the build failed: a placeholder index.html ──────────────────┘
//!     ── build.rs: gzip (best), hash (ETag), content type ──▶ $OUT_DIR/assets.rs
//!     ── include_bytes! ──▶ FILES ──▶ router(): GET/HEAD of a path no API route matched
//! ```
//!
//! [`router`] answers what the query API's routes do not:
//!
//! - `/assets/…`: the hashed files of the build, cached for a year (`immutable`); an unknown one
//!   is a 404, never `index.html`.
//! - `/api/…`: a JSON 404 `{"error": "no such API endpoint: GET /api/…"}`, the API's error shape.
//! - Any other path: a file at the root of the build (from `ui/app/public`), else `index.html`,
//!   which routes deep links (`/runs/{trace_id}`, `/diff`, …) in the browser; both `no-cache`.
//!
//! Files go out gzipped (`Content-Encoding: gzip`, `Vary: Accept-Encoding`) to clients that
//! accept it, with an ETag (`If-None-Match` gets a 304). Only paths in the embedded table are
//! served: nothing is read from disk at run time. Methods other than GET and HEAD get a 405.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};

#[cfg(test)]
mod content_type;
#[cfg(test)]
mod placeholder;

/// One file of the UI, as `build.rs` embeds it.
struct Asset {
    /// Below the root of the build, with `/` separators: `index.html`, `assets/index-…js`.
    path: &'static str,
    content_type: &'static str,
    /// Quoted, of the raw file and of its gzipped copy.
    etag: &'static str,
    gzip_etag: &'static str,
    raw: &'static [u8],
    /// Gzipped, unless that is not smaller.
    gzip: Option<&'static [u8]>,
}

mod embedded {
    use super::Asset;

    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// Where the hashed files of the build are.
const ASSETS: &str = "assets/";
/// Hashed files never change under their name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `index.html` and the other unhashed files: revalidated (by ETag) on each use.
const NO_CACHE: &str = "no-cache";

/// The UI, for the fallback of the query API's router (`Router::fallback_service`).
pub fn router() -> Router {
    Router::new().fallback(fallback)
}

/// Whether this build holds the placeholder page instead of the UI (`build.rs` could not build
/// it; see `ui/README.md`).
pub fn is_placeholder() -> bool {
    embedded::PLACEHOLDER
}

async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    respond(&method, uri.path(), &headers)
}

/// The answer to `method path` that no API route matched.
fn respond(method: &Method, path: &str, request: &HeaderMap) -> Response {
    if path == "/api" || path.starts_with("/api/") {
        let error = format!("no such API endpoint: {method} {path}");
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": error })),
        )
            .into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let name = path.strip_prefix('/').unwrap_or(path);
    match find(name) {
        Some(file) if name.starts_with(ASSETS) => send(file, IMMUTABLE, method, request),
        Some(file) => send(file, NO_CACHE, method, request),
        None if name.starts_with(ASSETS) => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no such asset: {path}\n"),
        )
            .into_response(),
        None => send(&embedded::FILES[embedded::INDEX], NO_CACHE, method, request),
    }
}

/// The embedded file at `name` (relative, as in the build).
fn find(name: &str) -> Option<&'static Asset> {
    let files = embedded::FILES;
    files
        .binary_search_by(|f| f.path.cmp(name))
        .ok()
        .map(|i| &files[i])
}

/// `file`, gzipped if the client accepts it; a 304 if the client has it already.
fn send(
    file: &'static Asset,
    cache_control: &'static str,
    method: &Method,
    request: &HeaderMap,
) -> Response {
    let gzip = file.gzip.filter(|_| accepts_gzip(request));
    let (bytes, etag) = match gzip {
        Some(bytes) => (bytes, file.gzip_etag),
        None => (file.raw, file.etag),
    };
    let not_modified = not_modified(request, etag);
    let body = if not_modified || method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    headers.insert(header::ETAG, HeaderValue::from_static(etag));
    if file.gzip.is_some() {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if not_modified {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return response;
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if gzip.is_some() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    response
}

/// Whether `Accept-Encoding` admits gzip: `gzip` (or `x-gzip`), else `*`, with a q-value
/// above 0.
fn accepts_gzip(request: &HeaderMap) -> bool {
    let (mut gzip, mut any) = (None, None);
    let codings = request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for coding in codings {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let q = parts
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .map_or(1.0, |q| q.parse::<f32>().unwrap_or(0.0));
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(q > 0.0);
        } else if name == "*" {
            any = Some(q > 0.0);
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// Whether `If-None-Match` names `etag` (weakly: `W/` aside) or is `*`.
fn not_modified(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests;
