//! The page served in place of the UI when `build.rs` could not build it. Shared by `build.rs`,
//! which writes it, and the crate's tests.

/// A readable `index.html` saying that the UI was not built, how to build it, and why it was not
/// (`reason`, the error, shown as text).
pub fn page(reason: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Cairn: the web UI was not built</title>
    <style>
      body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 48rem; margin: 3rem auto; padding: 0 1rem; color: #1f2933; }}
      code, pre {{ font-family: ui-monospace, monospace; font-size: 14px; }}
      pre {{ background: #f1f3f5; padding: 1rem; overflow: auto; white-space: pre-wrap; }}
    </style>
  </head>
  <body>
    <h1>The Cairn web UI was not built</h1>
    <p>
      This Cairn binary was built without its web UI: install Node 20.19 or newer and npm, then
      <code>cargo build</code> again (or set <code>CAIRN_UI_DIST</code> to a directory that holds
      a built UI). See <code>ui/README.md</code>.
    </p>
    <p>
      The query API works without it: <code>POST /api/v1/sql</code>, the <code>/api/v1/…</code>
      endpoints, <a href="/metrics">/metrics</a> and <a href="/health">/health</a>.
    </p>
    <p>Why the UI was not built:</p>
    <pre>{}</pre>
  </body>
</html>
"#,
        escape(reason)
    )
}

/// `text` as HTML text content.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}
