use std::io::Read;

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

use super::embedded::{FILES, INDEX};
use super::{accepts_gzip, content_type, placeholder, respond, Asset};

fn get(path: &str) -> Response {
    respond(&Method::GET, path, &HeaderMap::new())
}

fn with(name: header::HeaderName, value: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(name, HeaderValue::from_static(value));
    headers
}

fn header(response: &Response, name: header::HeaderName) -> &str {
    response
        .headers()
        .get(&name)
        .map_or("", |v| v.to_str().expect("ASCII header"))
}

fn body(response: Response) -> Vec<u8> {
    futures::executor::block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .expect("body")
        .to_vec()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}

fn index() -> &'static Asset {
    &FILES[INDEX]
}

#[test]
fn content_types_by_extension() {
    for (path, expected) in [
        ("index.html", "text/html; charset=utf-8"),
        ("assets/index-CNqTGzNY.js", "text/javascript; charset=utf-8"),
        ("assets/worker-x1.mjs", "text/javascript; charset=utf-8"),
        ("assets/index-Bq3.css", "text/css; charset=utf-8"),
        ("assets/logo-1a.svg", "image/svg+xml"),
        ("assets/inter-9z.woff2", "font/woff2"),
        ("assets/map-1.JSON", "application/json"),
        ("favicon.ico", "image/x-icon"),
        ("robots.txt", "text/plain; charset=utf-8"),
        ("assets/blob", "application/octet-stream"),
        ("assets/a.b.unknown", "application/octet-stream"),
    ] {
        assert_eq!(content_type::of(path), expected, "{path}");
    }
    assert!(content_type::compressible("assets/index-1.js"));
    assert!(!content_type::compressible("assets/inter-9z.woff2"));
    assert!(!content_type::compressible("assets/photo.png"));
}

#[test]
fn the_table_is_sorted_and_typed_and_its_gzip_is_the_file() {
    assert_eq!(index().path, "index.html");
    assert_eq!(index().content_type, "text/html; charset=utf-8");
    assert!(
        FILES.windows(2).all(|w| w[0].path < w[1].path),
        "sorted for binary search"
    );
    for file in FILES {
        assert_eq!(
            file.content_type,
            content_type::of(file.path),
            "{}",
            file.path
        );
        assert!(file.etag.starts_with('"') && file.etag.ends_with('"'));
        assert_ne!(file.etag, file.gzip_etag);
        if let Some(gz) = file.gzip {
            assert!(gz.len() < file.raw.len(), "{}", file.path);
            assert_eq!(gunzip(gz), file.raw, "{}", file.path);
        }
    }
    // index.html is always large enough to gain from gzip.
    assert!(index().gzip.is_some());
}

#[test]
fn the_placeholder_says_what_to_do_and_why() {
    let page = placeholder::page("`npm ci` failed:\nnpm ERR! <script>alert(1)</script> & \"q\"");
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("The Cairn web UI was not built"));
    assert!(page.contains("install Node 20.19 or newer and npm"));
    assert!(page.contains("<code>cargo build</code> again"));
    assert!(page.contains("CAIRN_UI_DIST"));
    // The reason is shown as text, never as markup.
    assert!(page.contains("npm ERR! &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;"));
    assert!(!page.contains("<script>"));

    let served = String::from_utf8(body(get("/"))).expect("UTF-8 index.html");
    if super::is_placeholder() {
        assert!(
            served.contains("The Cairn web UI was not built"),
            "{served}"
        );
        assert!(!FILES.iter().any(|f| f.path.starts_with("assets/")));
    } else {
        assert!(!served.contains("was not built"), "{served}");
        assert!(served.contains(r#"<div id="root">"#), "{served}");
    }
}

#[test]
fn every_other_path_is_index_html_not_cached() {
    for path in [
        "/",
        "/runs/00000000000000000000000000000a01",
        "/runs/00000000000000000000000000000a01/replay",
        "/diff",
        "/governance",
        "/api-docs",
        "/assetsx/a.js",
    ] {
        let response = get(path);
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&response, header::CACHE_CONTROL),
            "no-cache",
            "{path}"
        );
        assert_eq!(
            header(&response, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert_eq!(header(&response, header::ETAG), index().etag);
        assert_eq!(
            header(&response, header::CONTENT_LENGTH),
            index().raw.len().to_string()
        );
        assert_eq!(body(response), index().raw, "{path}");
    }
}

#[test]
fn hashed_assets_are_immutable_and_unknown_ones_are_missing() {
    for file in FILES.iter().filter(|f| f.path.starts_with("assets/")) {
        let response = get(&format!("/{}", file.path));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, header::CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header(&response, header::CONTENT_TYPE), file.content_type);
        assert_eq!(body(response), file.raw);
    }
    for path in [
        "/assets/x.js",
        "/assets/",
        "/assets/../index.html",
        "/assets/%2e%2e/index.html",
        "/assets//index.html",
    ] {
        let response = get(path);
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            String::from_utf8(body(response)).unwrap(),
            format!("no such asset: {path}\n")
        );
    }
}

#[test]
fn gzip_when_accepted() {
    let response = respond(
        &Method::GET,
        "/runs/x",
        &with(header::ACCEPT_ENCODING, "br, gzip;q=0.8"),
    );
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, header::CONTENT_ENCODING), "gzip");
    assert_eq!(header(&response, header::VARY), "accept-encoding");
    assert_eq!(header(&response, header::ETAG), index().gzip_etag);
    let gz = body(response);
    assert_eq!(Some(gz.as_slice()), index().gzip);
    assert_eq!(gunzip(&gz), index().raw);

    let plain = respond(
        &Method::GET,
        "/",
        &with(header::ACCEPT_ENCODING, "gzip;q=0"),
    );
    assert_eq!(header(&plain, header::CONTENT_ENCODING), "");
    assert_eq!(header(&plain, header::VARY), "accept-encoding");
    assert_eq!(body(plain), index().raw);
}

#[test]
fn accept_encoding() {
    for (value, gzip) in [
        ("gzip", true),
        ("GZIP", true),
        ("deflate, x-gzip", true),
        ("br;q=1.0, gzip;q=0.5", true),
        ("*", true),
        ("gzip;q=0", false),
        ("gzip; q=0.000", false),
        ("*;q=0", false),
        ("gzip;q=0, *", false),
        ("identity", false),
        ("br", false),
        ("", false),
    ] {
        assert_eq!(
            accepts_gzip(&with(header::ACCEPT_ENCODING, value)),
            gzip,
            "{value}"
        );
    }
    assert!(!accepts_gzip(&HeaderMap::new()));
}

#[test]
fn if_none_match_is_a_304() {
    for tag in [index().etag, "*"] {
        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, HeaderValue::from_static(tag));
        let response = respond(&Method::GET, "/", &request);
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{tag}");
        assert_eq!(header(&response, header::ETAG), index().etag);
        assert!(body(response).is_empty());
    }
    let weak = format!("\"other\", W/{}", index().gzip_etag);
    let mut request = with(header::ACCEPT_ENCODING, "gzip");
    request.insert(header::IF_NONE_MATCH, weak.parse().unwrap());
    assert_eq!(
        respond(&Method::GET, "/", &request).status(),
        StatusCode::NOT_MODIFIED
    );
    // The tag of the other encoding does not match.
    let response = respond(&Method::GET, "/", &request_with_tag(index().etag, "gzip"));
    assert_eq!(response.status(), StatusCode::OK);
}

fn request_with_tag(tag: &'static str, encoding: &'static str) -> HeaderMap {
    let mut request = with(header::ACCEPT_ENCODING, encoding);
    request.insert(header::IF_NONE_MATCH, HeaderValue::from_static(tag));
    request
}

#[test]
fn head_has_the_headers_without_the_body() {
    let response = respond(&Method::HEAD, "/diff", &HeaderMap::new());
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, header::CONTENT_LENGTH),
        index().raw.len().to_string()
    );
    assert_eq!(
        header(&response, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert!(body(response).is_empty());
}

#[test]
fn unknown_api_paths_are_json_404s() {
    for (method, path) in [
        (Method::GET, "/api/v1/nope"),
        (Method::POST, "/api/v2/sql"),
        (Method::GET, "/api"),
    ] {
        let response = respond(&method, path, &HeaderMap::new());
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(header(&response, header::CONTENT_TYPE), "application/json");
        let json: serde_json::Value = serde_json::from_slice(&body(response)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "error": format!("no such API endpoint: {method} {path}") })
        );
    }
}

#[test]
fn other_methods_are_not_allowed() {
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        for path in ["/", "/runs/x", "/assets/x.js"] {
            let response = respond(&method, path, &HeaderMap::new());
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(header(&response, header::ALLOW), "GET, HEAD");
        }
    }
}
