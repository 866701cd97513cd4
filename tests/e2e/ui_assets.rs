//! The web UI on the query API's port: `index.html` for every page of the single-page app (deep
//! links included), its hashed assets cached for good and gzipped on request, unknown assets
//! and API paths as 404s, and the API, `/metrics` and `/health` beside it — on `cairn serve`
//! and `cairn query` alike.
//!
//! Needs the real UI in the binary: `build.rs` builds it with npm (or takes `CAIRN_UI_DIST`);
//! with the placeholder page (no npm) these tests fail and say so.

use std::io::Read;

use reqwest::{Method, Response, StatusCode};

use crate::harness::{client, temp_dir, Cairn};

/// Deep links of the app's pages, each answered with `index.html`.
const PAGES: &[&str] = &[
    "/runs/00000000000000000000000000000a01?step=000000000000a107",
    "/runs/00000000000000000000000000000a01/replay",
    "/diff?a=00000000000000000000000000000a01&b=00000000000000000000000000000a02",
    "/data",
    "/governance",
    "/costs",
    "/sql",
];

async fn request(cairn: &Cairn, method: Method, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = client().request(method, format!("http://{}{path}", cairn.http));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("ASCII header").to_owned())
        .unwrap_or_default()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

/// `GET /`: index.html as HTML, revalidated on each use.
async fn index_html(cairn: &Cairn) -> String {
    let response = request(cairn, Method::GET, "/", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "content-type"),
        "text/html; charset=utf-8"
    );
    assert_eq!(header(&response, "cache-control"), "no-cache");
    let html = response.text().await.expect("index.html");
    assert!(
        !html.contains("web UI was not built"),
        "the binary holds the placeholder page, not the UI: build with npm on PATH or CAIRN_UI_DIST (ui/README.md)\n{html}"
    );
    assert!(html.contains(r#"<div id="root">"#), "{html}");
    html
}

/// The path of the script index.html loads (`/assets/index-<hash>.js`).
fn script_of(html: &str) -> String {
    html.split("src=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|src| src.starts_with("/assets/") && src.ends_with(".js"))
        .unwrap_or_else(|| panic!("index.html loads no /assets/*.js: {html}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn ui_assets_deep_links_get_index_html() {
    let cairn = Cairn::start(&[]);
    let html = index_html(&cairn).await;
    for page in PAGES {
        let response = request(&cairn, Method::GET, page, &[]).await;
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8",
            "{page}"
        );
        assert_eq!(header(&response, "cache-control"), "no-cache", "{page}");
        assert_eq!(response.text().await.unwrap(), html, "{page}");
    }

    // Gzipped on request, to the same page.
    let gz = request(
        &cairn,
        Method::GET,
        PAGES[0],
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(header(&gz, "content-encoding"), "gzip");
    assert_eq!(header(&gz, "vary"), "accept-encoding");
    assert_eq!(gunzip(&gz.bytes().await.unwrap()), html.as_bytes());

    // HEAD: the headers of GET, no body.
    let head = request(&cairn, Method::HEAD, PAGES[1], &[]).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&head, "content-length"), html.len().to_string());
    assert!(head.bytes().await.unwrap().is_empty());

    // Only GET and HEAD.
    for path in ["/", PAGES[0]] {
        let post = request(&cairn, Method::POST, path, &[]).await;
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(header(&post, "allow"), "GET, HEAD");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ui_assets_are_immutable_and_gzipped() {
    let cairn = Cairn::start(&[]);
    let script = script_of(&index_html(&cairn).await);

    let plain = request(&cairn, Method::GET, &script, &[]).await;
    assert_eq!(plain.status(), StatusCode::OK, "{script}");
    assert_eq!(
        header(&plain, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        header(&plain, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&plain, "content-encoding"), "");
    assert_eq!(header(&plain, "x-content-type-options"), "nosniff");
    let etag = header(&plain, "etag");
    assert!(etag.starts_with('"') && etag.len() > 2, "{etag:?}");
    let js = plain.bytes().await.unwrap();
    assert!(js.len() > 1000, "a script of {} bytes", js.len());
    // React's bundle, not an HTML page.
    assert!(!js.starts_with(b"<"));
    assert!(String::from_utf8_lossy(&js).contains("createRoot"));

    let gz = request(
        &cairn,
        Method::GET,
        &script,
        &[("accept-encoding", "gzip, br")],
    )
    .await;
    assert_eq!(gz.status(), StatusCode::OK);
    assert_eq!(header(&gz, "content-encoding"), "gzip");
    assert_eq!(header(&gz, "vary"), "accept-encoding");
    assert_eq!(
        header(&gz, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    let gz_etag = header(&gz, "etag");
    assert_ne!(gz_etag, etag, "each encoding has its own tag");
    let compressed = gz.bytes().await.unwrap();
    assert!(
        compressed.len() < js.len() / 2,
        "{} bytes",
        compressed.len()
    );
    assert_eq!(gunzip(&compressed), js);

    // A client that has it gets a 304.
    let again = request(&cairn, Method::GET, &script, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.unwrap().is_empty());

    // An asset the build does not hold is missing, not the app.
    for missing in ["/assets/x.js", "/assets/index-00000000.css"] {
        let response = request(&cairn, Method::GET, missing, &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
        let text = response.text().await.unwrap();
        assert_eq!(text, format!("no such asset: {missing}\n"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ui_assets_leave_the_api_alone() {
    let cairn = Cairn::start(&[]);
    let (status, body) = cairn.get(None, "/api/v1/nope").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        serde_json::json!({ "error": "no such API endpoint: GET /api/v1/nope" })
    );
    let post = request(&cairn, Method::POST, "/api/v2/sql", &[]).await;
    assert_eq!(post.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&post, "content-type"), "application/json");
    let body: serde_json::Value = post.json().await.unwrap();
    assert_eq!(body["error"], "no such API endpoint: POST /api/v2/sql");

    // The API's own routes answer as before.
    assert!(cairn.healthy().await);
    let health = request(&cairn, Method::GET, "/health", &[]).await;
    assert_eq!(health.text().await.unwrap(), "ok");
    let metrics = request(&cairn, Method::GET, "/metrics", &[]).await;
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(header(&metrics, "content-type").starts_with("text/plain"));
    assert!(metrics
        .text()
        .await
        .unwrap()
        .contains("cairn_query_requests_total"));
    assert_eq!(cairn.count(None, "spans").await, 0);
    // A known API path with another method is the API's 405, not the UI's.
    let wrong = request(&cairn, Method::GET, "/api/v1/sql", &[]).await;
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread")]
async fn ui_assets_on_the_query_role() {
    let dir = temp_dir();
    let store = dir.path().join("data").display().to_string();
    let query = Cairn::start_role("query", &store, &[], &[]);
    let html = index_html(&query).await;
    let deep = request(&query, Method::GET, PAGES[0], &[]).await;
    assert_eq!(deep.text().await.unwrap(), html);
    let script = script_of(&html);
    let asset = request(&query, Method::GET, &script, &[]).await;
    assert_eq!(asset.status(), StatusCode::OK);
    assert!(query.healthy().await);
}
