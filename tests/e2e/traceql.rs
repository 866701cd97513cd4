//! TraceQL through the Tempo API, against answers worked out by hand from
//! `tests/fixtures/tempo/agents.otlp.json` (its README lists the spans) and Tempo's documented
//! semantics: a filter `{ … }` selects the spans it holds for, per trace; structural operators
//! return the spans of their right side; `!=` and the ordering operators hold only where the
//! attribute exists; regular expressions are anchored; metrics bucket spans by start time.
//!
//! Spans are named by trace letter and number (`A3` is `a000000000000003` of trace
//! `a0a0…a1`). Each test collects every wrong answer before failing, so one run lists them all.

use std::collections::{BTreeMap, BTreeSet};

use crate::tempo_api::tempopb::{
    KeyValue, QueryInstantResponse, QueryRangeResponse, SearchResponse, SearchTagValuesResponse,
    SearchTagValuesV2Response, SearchTagsResponse, SearchTagsV2Response, TagValue,
};
use crate::tempo_api::{padded, Tempo, SPANS};

/// Trace letter → span names, as `expect` writes them.
type Matches = BTreeMap<String, BTreeSet<String>>;

/// `"A1 A3 B2"` as matches: `{A: {A1, A3}, B: {B2}}`; `""` is none.
fn expect(spans: &str) -> Matches {
    let mut out = Matches::new();
    for s in spans.split_whitespace() {
        out.entry(s[..1].to_owned())
            .or_default()
            .insert(s.to_owned());
    }
    out
}

/// The short name of a span id (`a000000000000003` → `A3`).
fn span_name(id: &str) -> String {
    let (first, last) = (&id[..1], &id[id.len() - 1..]);
    format!("{}{last}", first.to_uppercase())
}

/// What a search found: every span of every spanset, by trace. With `spss` above the
/// fixture's size, each spanset must list as many spans as it says it matched.
fn found(response: &SearchResponse, all_listed: bool) -> Result<Matches, String> {
    let mut out = Matches::new();
    for trace in &response.traces {
        let id = padded(&trace.trace_id);
        let letter = id.trim_start_matches('0')[..1].to_uppercase();
        let spans = out.entry(letter).or_default();
        for set in &trace.span_sets {
            if all_listed && set.matched as usize != set.spans.len() {
                return Err(format!(
                    "trace {id}: matched {} but lists {}",
                    set.matched,
                    set.spans.len()
                ));
            }
            spans.extend(set.spans.iter().map(|s| span_name(&s.span_id)));
        }
    }
    Ok(out)
}

impl Tempo {
    /// The spans `q` selects (all listed), or what went wrong.
    async fn matches(&self, q: &str, params: &[(&'static str, String)]) -> Result<Matches, String> {
        let mut all = vec![
            ("q", q.to_owned()),
            ("limit", "20".to_owned()),
            ("spss", "100".to_owned()),
        ];
        all.extend(self.window());
        for (k, v) in params {
            all.retain(|(name, _)| name != k);
            all.push((k, v.clone()));
        }
        all.retain(|(_, v)| !v.is_empty());
        let reply = self
            .get(None, "/api/search", &all, Some("application/json"))
            .await;
        if reply.status != 200 {
            return Err(format!("{}: {}", reply.status, reply.text()));
        }
        let response: SearchResponse = reply.strict(q);
        found(&response, true)
    }

    /// Checks each `(query, expected spans)`; fails listing every wrong answer.
    async fn check(&self, cases: &[(&str, &str)]) {
        let mut wrong = Vec::new();
        for (q, want) in cases {
            match self.matches(q, &[]).await {
                Ok(got) if got == expect(want) => {}
                Ok(got) => wrong.push(format!("{q}\n    want {want:?}\n    got  {}", show(&got))),
                Err(e) => wrong.push(format!("{q}\n    want {want:?}\n    got  {e}")),
            }
        }
        assert!(
            wrong.is_empty(),
            "{} wrong answers:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }
}

fn show(m: &Matches) -> String {
    m.values().flatten().cloned().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn traceql_parse_errors() {
    let t = Tempo::start(None).await;
    let mut wrong = Vec::new();
    for q in [
        "{ span.foo = }",
        r#"{ name = "a" "#,
        "{ duration > 5xs }",
        "{ status = purple }",
        r#"{ .a = "x" } | count( > 2"#,
        r#"{ name = "unterminated }"#,
        "{ span.attempt >> 2 }",
    ] {
        let mut params = vec![("q", q.to_owned()), ("limit", "20".to_owned())];
        params.extend(t.window());
        let reply = t
            .get(None, "/api/search", &params, Some("application/json"))
            .await;
        let text = reply.text();
        if reply.status != 400
            || !reply.content_type.starts_with("text/plain")
            || text.trim().is_empty()
        {
            wrong.push(format!(
                "{q}: {} {:?} {text:?}",
                reply.status, reply.content_type
            ));
        }
    }
    // The metrics endpoints refuse bad TraceQL, and a query without a metrics function, the
    // same way.
    for q in ["{ span.foo = }", "{ } | rate(", "{ status = error }"] {
        let mut params = vec![("q", q.to_owned()), ("step", "60s".to_owned())];
        params.extend(t.window());
        for path in ["/api/metrics/query_range", "/api/metrics/query"] {
            let reply = t.get(None, path, &params, None).await;
            if reply.status != 400 || !reply.content_type.starts_with("text/plain") {
                wrong.push(format!("{path} {q}: {} {}", reply.status, reply.text()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn traceql_intrinsics() {
    let t = Tempo::start(None).await;
    t.check(&[
        ("{}", "A1 A2 A3 A4 B1 B2 B3 B4 C1 C2 C3 D1"),
        // name
        (r#"{ name = "execute_tool shell" }"#, "A3 B2"),
        (
            r#"{ name != "execute_tool shell" }"#,
            "A1 A2 A4 B1 B3 B4 C1 C2 C3 D1",
        ),
        (r#"{ name =~ "execute_tool.*" }"#, "A3 B2 B3"),
        (r#"{ name =~ "shell" }"#, ""),
        (r#"{ name =~ ".*shell" }"#, "A3 B2"),
        (r#"{ name !~ ".*tool.*" }"#, "A1 A2 A4 B1 B4 C1 C2 C3 D1"),
        (r#"{ span:name = "exec" }"#, "A4"),
        // status
        ("{ status = error }", "A3 C2"),
        ("{ status = ok }", "A1 B1 B3"),
        ("{ status = unset }", "A2 A4 B2 B4 C1 C3 D1"),
        ("{ status != ok }", "A2 A3 A4 B2 B4 C1 C2 C3 D1"),
        ("{ span:status = error }", "A3 C2"),
        // kind
        ("{ kind = server }", "A1 B1"),
        ("{ kind = client }", "A2 B4 C3"),
        ("{ kind = consumer }", "D1"),
        ("{ kind = internal }", "A3 A4 B2 B3 C1 C2"),
        ("{ kind != internal }", "A1 A2 B1 B4 C3 D1"),
        // duration
        ("{ duration > 600ms }", "A1 B1 B3 B4"),
        ("{ duration >= 600ms }", "A1 B1 B3 B4 C1"),
        ("{ duration < 100ms }", "B2 D1"),
        ("{ duration <= 100ms }", "A4 B2 D1"),
        ("{ duration = 150ms }", "C2"),
        ("{ duration > 1.5s }", "B1"),
        ("{ duration = 5000us }", "D1"),
        ("{ span:duration >= 2s }", "B1"),
        // trace-level intrinsics hold for every span of the trace
        (r#"{ rootName = "Agent workflow" }"#, "C1 C2 C3"),
        (
            r#"{ rootName != "Agent workflow" }"#,
            "A1 A2 A3 A4 B1 B2 B3 B4 D1",
        ),
        (
            r#"{ rootName =~ "invoke_agent.*" }"#,
            "A1 A2 A3 A4 B1 B2 B3 B4",
        ),
        (
            r#"{ rootServiceName = "planner-svc" }"#,
            "A1 A2 A3 A4 B1 B2 B3 B4",
        ),
        (r#"{ rootServiceName =~ "oi-.*" }"#, "C1 C2 C3"),
        (r#"{ trace:rootService = "oi-agent" }"#, "C1 C2 C3"),
        (r#"{ trace:rootName = "orphan job" }"#, "D1"),
        ("{ traceDuration > 1s }", "B1 B2 B3 B4"),
        ("{ traceDuration < 10ms }", "D1"),
        (
            "{ traceDuration >= 600ms && traceDuration <= 900ms }",
            "A1 A2 A3 A4 C1 C2 C3",
        ),
        ("{ trace:duration = 2s }", "B1 B2 B3 B4"),
        // statusMessage
        (r#"{ statusMessage = "timeout" }"#, "C2"),
        (r#"{ statusMessage =~ "exit.*" }"#, "A3"),
        (r#"{ span:statusMessage = "exit status 1" }"#, "A3"),
    ])
    .await;
}

#[tokio::test]
async fn traceql_attributes() {
    let t = Tempo::start(None).await;
    t.check(&[
        // integers
        ("{ span.attempt > 1 }", "B4 C3"),
        ("{ span.attempt >= 1 }", "A2 B4 C3"),
        ("{ span.attempt = 2 }", "C3"),
        ("{ span.attempt != 2 }", "A2 B4"),
        ("{ span.attempt < 3 }", "A2 C3"),
        ("{ span.attempt <= 3 }", "A2 B4 C3"),
        ("{ span.retry.count = 2 }", "A4"),
        // floats, and an integer compared with a float
        ("{ span.score > 0.5 }", "C3"),
        ("{ span.score <= 0.25 }", "A2"),
        ("{ span.attempt > 2.5 }", "B4"),
        // booleans
        ("{ span.cached = true }", "A2"),
        ("{ span.cached = false }", "B4"),
        ("{ span.cached != true }", "B4"),
        // strings and regular expressions (anchored)
        (r#"{ span.target = "/bin/ls" }"#, "A3"),
        (r#"{ span.target != "/bin/ls" }"#, "B2 B3 C2"),
        (r#"{ span.target =~ "/bin/.*" }"#, "A3 B2"),
        (r#"{ span.target !~ "/bin/.*" }"#, "B3 C2"),
        (r#"{ span.target =~ "bin" }"#, ""),
        (r#"{ span.target =~ "docs-index|/bin/cat" }"#, "B2 C2"),
        (r#"{ span.process.command = "ls" }"#, "A4"),
        // resource attributes hold for every span of the resource
        (r#"{ resource.service.name = "oi-agent" }"#, "C1 C2 C3"),
        (
            r#"{ resource.deployment.environment = "prod" }"#,
            "A1 A2 A3 A4",
        ),
        (
            r#"{ resource.deployment.environment != "prod" }"#,
            "B1 B2 B3 B4",
        ),
        (r#"{ resource.host.name = "batch-box" }"#, "D1"),
        // the scope matters; an unscoped name matches either
        (r#"{ span.team = "research" }"#, "B3"),
        (r#"{ resource.team = "research" }"#, "C1 C2 C3"),
        (r#"{ .team = "research" }"#, "B3 C1 C2 C3"),
        (r#"{ .deployment.environment = "staging" }"#, "B1 B2 B3 B4"),
        ("{ .attempt >= 2 }", "B4 C3"),
        (r#"{ span.service.name = "oi-agent" }"#, ""),
        // a missing attribute matches nothing, whatever the operator
        (r#"{ span.nothing.here = "x" }"#, ""),
        (r#"{ span.nothing.here != "x" }"#, ""),
        ("{ span.nothing.here > 1 }", ""),
    ])
    .await;
}

#[tokio::test]
async fn traceql_logic_and_structure() {
    let t = Tempo::start(None).await;
    t.check(&[
        // && and || within one span, with parentheses
        ("{ kind = client && span.cached = true }", "A2"),
        ("{ kind = client && !(span.attempt > 1) }", "A2"),
        ("{ status = error || duration > 1s }", "A3 B1 B4 C2"),
        (
            r#"{ (status = error || kind = server) && resource.service.name = "planner-svc" }"#,
            "A1 A3 B1",
        ),
        (
            r#"{ status = error || (kind = server && resource.deployment.environment = "staging") }"#,
            "A3 B1 C2",
        ),
        // between spansets: both (or either) must match in the trace; the spans of each side
        ("{ status = error } && { kind = server }", "A1 A3"),
        ("{ status = error } || { kind = consumer }", "A3 C2 D1"),
        (r#"{ span.cached = true } && { span.cached = false }"#, ""),
        // structure: the spans of the right side
        (r#"{ kind = server } > { name = "execute_tool shell" }"#, "A3 B2"),
        (r#"{ kind = server } > { name = "exec" }"#, ""),
        (r#"{ kind = server } >> { name = "exec" }"#, "A4"),
        (r#"{ resource.service.name = "oi-agent" } >> { status = error }"#, "C2"),
        (r#"{ name = "exec" } < { kind = internal }"#, "A3"),
        (r#"{ name = "exec" } << { kind = server }"#, "A1"),
        (r#"{ name = "exec" } < { kind = server }"#, ""),
        (r#"{ name = "execute_tool shell" } ~ { }"#, "A2 B3 B4"),
        (r#"{ name = "execute_tool shell" } ~ { kind = client }"#, "A2 B4"),
        (r#"{ kind = server } ~ { }"#, ""),
    ])
    .await;
}

#[tokio::test]
async fn traceql_pipelines() {
    let t = Tempo::start(None).await;
    t.check(&[
        ("{ } | count() > 3", "A1 A2 A3 A4 B1 B2 B3 B4"),
        ("{ } | count() = 1", "D1"),
        ("{ kind = internal } | count() >= 2", "A3 A4 B2 B3 C1 C2"),
        ("{ status = error } | count() > 0", "A3 C2"),
        // averages: A 425 ms, B 987.5 ms, C 333 ms, D 5 ms
        ("{ } | avg(duration) > 500ms", "B1 B2 B3 B4"),
        ("{ } | avg(duration) > 400ms", "A1 A2 A3 A4 B1 B2 B3 B4"),
        ("{ } | max(duration) >= 2s", "B1 B2 B3 B4"),
        ("{ } | min(duration) < 10ms", "D1"),
        ("{ } | sum(duration) > 3s", "B1 B2 B3 B4"),
        ("{ span.attempt > 0 } | avg(span.attempt) >= 2", "B4 C3"),
    ])
    .await;
}

#[tokio::test]
async fn traceql_search_parameters() {
    let t = Tempo::start(None).await;
    let mut wrong = Vec::new();
    let mut want = |what: &str, got: Result<Matches, String>, spans: &str| match got {
        Ok(got) if got == expect(spans) => {}
        other => wrong.push(format!("{what}: want {spans:?}, got {other:?}")),
    };

    // limit: at most that many traces.
    for (limit, n) in [(2, 2), (20, 4)] {
        let r = t.search("{}", &[("limit", limit.to_string())]).await;
        if r.traces.len() != n {
            want(
                &format!("limit={limit}"),
                Err(format!("{} traces", r.traces.len())),
                "",
            );
        }
    }
    // spss: spans listed per spanset, while matched counts them all (A 4, B 4, C 3, D 1).
    for spss in [1usize, 3] {
        let r = t.search("{}", &[("spss", spss.to_string())]).await;
        let mut got = BTreeMap::new();
        for trace in &r.traces {
            let set = &trace.span_sets[0];
            if set.spans.len() != spss.min(set.matched as usize) {
                want(
                    &format!("spss={spss} {}", trace.trace_id),
                    Err(format!("{set:?}")),
                    "",
                );
            }
            got.insert(padded(&trace.trace_id)[..1].to_owned(), set.matched);
        }
        let matched: BTreeMap<String, u32> = [("a", 4), ("b", 4), ("c", 3), ("0", 1)]
            .map(|(k, v)| (k.to_owned(), v))
            .into();
        if got != matched {
            want(&format!("spss={spss} matched"), Err(format!("{got:?}")), "");
        }
    }
    // start/end: only traces in the range (D starts 30 s after the base).
    want(
        "start/end around D",
        t.matches("{}", &t.between(25, 35)).await,
        "D1",
    );
    want(
        "start/end an hour before",
        t.matches("{}", &t.between(-7200, -3600)).await,
        "",
    );
    // The legacy search without q: tags (logfmt), minDuration and maxDuration (of the trace).
    // Its rows are traces: compare the letters of the traces found.
    for (params, traces) in [
        (vec![("minDuration", "1s")], "B"),
        (vec![("maxDuration", "10ms")], "D"),
        (vec![("minDuration", "500ms"), ("maxDuration", "1s")], "AC"),
        (vec![("tags", "team=research")], "BC"),
        (vec![("tags", "service.name=oi-agent")], "C"),
        (vec![("tags", r#"target="/bin/cat""#)], "B"),
    ] {
        let mut all: Vec<(&str, String)> =
            params.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        all.push(("limit", "20".to_owned()));
        all.extend(t.window());
        let reply = t.get(None, "/api/search", &all, None).await;
        let got = if reply.status == 200 {
            found(&reply.strict::<SearchResponse>("legacy search"), false)
                .map(|m| m.into_keys().collect::<String>())
        } else {
            Err(format!("{}: {}", reply.status, reply.text()))
        };
        if got.as_deref() != Ok(traces) {
            want(
                &format!("{params:?}"),
                Err(format!("traces {got:?}")),
                traces,
            );
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn traceql_promoted_names() {
    let t = Tempo::start(None).await;
    t.check(&[
        (
            r#"{ span.gen_ai.tool.name = "shell" && span.agent_trail.approval.state = "bypassed" }"#,
            "A3",
        ),
        (r#"{ span.agent_trail.approval.state = "granted" }"#, "B2"),
        (r#"{ span.agent_trail.approval.state != "granted" }"#, "A3"),
        (r#"{ span.agent_trail.sandbox.id = "sbx-1" }"#, "A3"),
        // The promoted tool name is filled from OpenInference's `tool.name` too.
        (r#"{ span.gen_ai.tool.name = "search_docs" }"#, "C2"),
        (r#"{ span.gen_ai.tool.name =~ "s.*" }"#, "A3 B2 B3 C2"),
        // … and the request model from `llm.model_name`.
        (r#"{ span.gen_ai.request.model = "gpt-4o" }"#, "A2 C3"),
        (r#"{ span.tool.name = "search_docs" }"#, "C2"),
        (r#"{ span.gen_ai.usage.input_tokens > 100 }"#, "A2"),
        (r#"{ span.gen_ai.tool.name = "shell" } | count() > 0"#, "A3 B2"),
    ])
    .await;
}

#[tokio::test]
async fn traceql_tags_and_values() {
    let t = Tempo::start(None).await;
    let mut wrong = Vec::new();
    let mut params = vec![("limit", "5000".to_owned())];
    params.extend(t.window());
    let tags: SearchTagsV2Response = t
        .get(None, "/api/v2/search/tags", &params, None)
        .await
        .strict("tags");
    let scope = |name: &str| -> BTreeSet<&str> {
        tags.scopes
            .iter()
            .filter(|s| s.name == name)
            .flat_map(|s| s.tags.iter().map(String::as_str))
            .collect()
    };
    let mut needs = |scope_name: &str, names: &[&str]| {
        let have = scope(scope_name);
        let missing: Vec<_> = names.iter().filter(|n| !have.contains(**n)).collect();
        if !missing.is_empty() {
            wrong.push(format!("scope {scope_name} lacks {missing:?}: {have:?}"));
        }
    };
    needs(
        "resource",
        &[
            "service.name",
            "deployment.environment",
            "team",
            "host.name",
        ],
    );
    needs(
        "span",
        &[
            "attempt",
            "score",
            "cached",
            "target",
            "team",
            "retry.count",
            "process.command",
            "queue",
            "tool.name",
            "openinference.span.kind",
            "llm.model_name",
            // Cairn's promoted agent columns, searchable by these names
            "gen_ai.tool.name",
            "gen_ai.request.model",
            "agent_trail.approval.state",
            "agent_trail.sandbox.id",
        ],
    );
    needs(
        "intrinsic",
        &[
            "name",
            "status",
            "kind",
            "duration",
            "statusMessage",
            "traceDuration",
            "rootName",
            "rootServiceName",
        ],
    );
    if scope("resource").contains("attempt") || scope("resource").contains("retry.count") {
        wrong.push(format!("attributes listed under the wrong scope: {tags:?}"));
    }
    // scope=resource lists that scope only.
    let mut params = vec![
        ("scope", "resource".to_owned()),
        ("limit", "5000".to_owned()),
    ];
    params.extend(t.window());
    let only: SearchTagsV2Response = t
        .get(None, "/api/v2/search/tags", &params, None)
        .await
        .strict("scope=resource");
    if only.scopes.iter().any(|s| s.name != "resource") || only.scopes.is_empty() {
        wrong.push(format!("scope=resource: {only:?}"));
    }
    let v1: SearchTagsResponse = t
        .get(None, "/api/search/tags", &t.window(), None)
        .await
        .strict("v1 tags");
    for name in ["service.name", "attempt", "team"] {
        if !v1.tag_names.iter().any(|n| n == name) {
            wrong.push(format!("v1 tags lack {name}: {v1:?}"));
        }
    }

    // Values, typed.
    let tv = |kind: &str, values: &[&str]| -> BTreeSet<TagValue> {
        values
            .iter()
            .map(|v| TagValue {
                kind: kind.into(),
                value: (*v).into(),
            })
            .collect()
    };
    let names = [
        "invoke_agent planner",
        "chat gpt-4o",
        "execute_tool shell",
        "exec",
        "execute_tool search_web",
        "chat gpt-4o-mini",
        "Agent workflow",
        "search_docs",
        "ChatCompletion",
        "orphan job",
    ];
    for (tag, q, want) in [
        ("span.attempt", "", tv("int", &["1", "2", "3"])),
        ("span.score", "", tv("float", &["0.25", "0.75"])),
        ("span.cached", "", tv("bool", &["true", "false"])),
        (
            "span.target",
            "",
            tv(
                "string",
                &[
                    "/bin/ls",
                    "/bin/cat",
                    "https://example.com/search",
                    "docs-index",
                ],
            ),
        ),
        (
            "resource.service.name",
            "",
            tv("string", &["planner-svc", "oi-agent"]),
        ),
        ("resource.team", "", tv("string", &["research"])),
        // Tempo lists every status and kind, whatever the spans hold.
        ("status", "", tv("keyword", &["error", "ok", "unset"])),
        (
            "kind",
            "",
            tv(
                "keyword",
                &[
                    "unspecified",
                    "internal",
                    "server",
                    "client",
                    "producer",
                    "consumer",
                ],
            ),
        ),
        ("name", "", tv("string", &names)),
        (
            "span.target",
            r#"{ resource.service.name = "planner-svc" }"#,
            tv(
                "string",
                &["/bin/ls", "/bin/cat", "https://example.com/search"],
            ),
        ),
        (
            "span.attempt",
            "{ kind = client && span.cached = true }",
            tv("int", &["1"]),
        ),
        (
            "resource.service.name",
            "{ status = error }",
            tv("string", &["planner-svc", "oi-agent"]),
        ),
        (
            "span.gen_ai.tool.name",
            "",
            tv("string", &["shell", "search_web", "search_docs"]),
        ),
        (
            "span.agent_trail.approval.state",
            "",
            tv("string", &["bypassed", "granted"]),
        ),
        // A q that does not parse (half-typed) is ignored, as Tempo does.
        (
            "resource.team",
            "{ span.attempt = ",
            tv("string", &["research"]),
        ),
    ] {
        let mut params = t.window();
        if !q.is_empty() {
            params.push(("q", q.to_owned()));
        }
        let path = format!("/api/v2/search/tag/{tag}/values");
        let reply = t.get(None, &path, &params, None).await;
        if reply.status != 200 {
            wrong.push(format!("{tag} q={q:?}: {} {}", reply.status, reply.text()));
            continue;
        }
        let got: SearchTagValuesV2Response = reply.strict(&path);
        let got: BTreeSet<TagValue> = got.tag_values.into_iter().collect();
        if got != want {
            wrong.push(format!(
                "{tag} q={q:?}\n    want {want:?}\n    got  {got:?}"
            ));
        }
    }
    // v1 values: plain strings of an unscoped name.
    for (tag, want) in [
        ("team", vec!["research"]),
        ("service.name", vec!["oi-agent", "planner-svc"]),
    ] {
        let path = format!("/api/search/tag/{tag}/values");
        let got: SearchTagValuesResponse =
            t.get(None, &path, &t.window(), None).await.strict(&path);
        let got: BTreeSet<String> = got.tag_values.into_iter().collect();
        let want: BTreeSet<String> = want.into_iter().map(String::from).collect();
        if got != want {
            wrong.push(format!("v1 {tag}: want {want:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The labels of a series as `key=value` strings, but for the metric's name (`__name__`).
fn labels(labels: &[KeyValue]) -> BTreeSet<String> {
    labels
        .iter()
        .filter(|kv| kv.key != "__name__")
        .map(|kv| {
            let v = &kv.value;
            let value = v
                .string_value
                .clone()
                .or_else(|| v.int_value.clone())
                .or_else(|| v.double_value.map(|d| d.to_string()))
                .or_else(|| v.bool_value.map(|b| b.to_string()))
                .unwrap_or_default();
            format!("{}={value}", kv.key)
        })
        .collect()
}

impl Tempo {
    async fn range(&self, q: &str, step: &str) -> Result<QueryRangeResponse, String> {
        let mut params = vec![("q", q.to_owned()), ("step", step.to_owned())];
        params.extend(self.window());
        let reply = self
            .get(
                None,
                "/api/metrics/query_range",
                &params,
                Some("application/json"),
            )
            .await;
        match reply.status {
            200 => Ok(reply.strict(q)),
            s => Err(format!("{s}: {}", reply.text())),
        }
    }

    async fn instant(&self, q: &str) -> Result<QueryInstantResponse, String> {
        let mut params = vec![("q", q.to_owned())];
        params.extend(self.window());
        let reply = self
            .get(
                None,
                "/api/metrics/query",
                &params,
                Some("application/json"),
            )
            .await;
        match reply.status {
            200 => Ok(reply.strict(q)),
            s => Err(format!("{s}: {}", reply.text())),
        }
    }
}

/// Label set → value of each series' one non-zero sample, which must be stamped with one of
/// `bucket`; what is wrong goes to `wrong`.
fn nonzero(
    q: &str,
    got: Result<QueryRangeResponse, String>,
    bucket: [i64; 2],
    wrong: &mut Vec<String>,
) -> BTreeMap<BTreeSet<String>, f64> {
    let mut out = BTreeMap::new();
    match got {
        Err(e) => wrong.push(format!("{q}: {e}")),
        Ok(r) => {
            for s in &r.series {
                let nonzero: Vec<_> = s
                    .samples
                    .iter()
                    .filter(|p| p.value != 0.0 && !p.value.is_nan())
                    .collect();
                let stamped = nonzero.iter().all(|p| {
                    p.timestamp_ms
                        .parse::<i64>()
                        .is_ok_and(|ms| bucket.contains(&ms))
                });
                if nonzero.len() != 1 || !stamped {
                    wrong.push(format!(
                        "{q}: samples {:?} (want one in {bucket:?})",
                        s.samples
                    ));
                }
                out.insert(labels(&s.labels), nonzero.iter().map(|p| p.value).sum());
            }
        }
    }
    out
}

#[tokio::test]
async fn traceql_metrics() {
    let t = Tempo::start(None).await;
    let mut wrong = Vec::new();
    // Every span starts within [base + 1 s, base + 31 s], one 60 s step whose edges are whole
    // minutes: one non-zero sample per series, stamped with that step's start or end.
    let bucket = [t.base * 1000, (t.base + 60) * 1000];
    let q = "{ } | rate()";
    let got = nonzero(q, t.range(q, "60s").await, bucket, &mut wrong);
    let rates: Vec<f64> = got.values().copied().collect();
    if rates.len() != 1 || (rates[0] - SPANS as f64 / 60.0).abs() > 1e-9 {
        wrong.push(format!(
            "{q}: want one series of {}/60 per second, got {got:?}",
            SPANS
        ));
    }

    let q = "{ kind != consumer } | count_over_time() by (resource.service.name)";
    let got = nonzero(q, t.range(q, "60s").await, bucket, &mut wrong);
    let want: BTreeMap<BTreeSet<String>, f64> = [
        (
            BTreeSet::from(["resource.service.name=planner-svc".to_owned()]),
            8.0,
        ),
        (
            BTreeSet::from(["resource.service.name=oi-agent".to_owned()]),
            3.0,
        ),
    ]
    .into();
    if got != want {
        wrong.push(format!("{q}: want {want:?}, got {got:?}"));
    }

    let q = "{ status = error } | count_over_time()";
    let got = nonzero(q, t.range(q, "1m").await, bucket, &mut wrong);
    if got.values().sum::<f64>() != 2.0 || got.len() != 1 {
        wrong.push(format!("{q}: want one series of 2, got {got:?}"));
    }

    // planner-svc's durations: 50, 100, 300, 400, 700, 900, 1200, 2000 ms. The exact
    // quantiles (interpolated) are 0.55 s and 1.44 s; Tempo's come from power-of-two buckets,
    // so any value within the bucket of the exact one is accepted: p50 in [2^28, 2^30] ns,
    // p90 in [2^30, 2^31] ns.
    let q = r#"{ resource.service.name = "planner-svc" } | quantile_over_time(duration, 0.5, 0.9)"#;
    let got = nonzero(q, t.range(q, "60s").await, bucket, &mut wrong);
    let p = |p: &str| {
        got.iter()
            .find(|(l, _)| l.contains(&format!("p={p}")))
            .map(|(_, v)| *v)
    };
    let ns = |e: i32| 2f64.powi(e) / 1e9;
    match (p("0.5"), p("0.9")) {
        (Some(p50), Some(p90))
            if (ns(28)..=ns(30)).contains(&p50)
                && (ns(30)..=ns(31)).contains(&p90)
                && p50 < p90 => {}
        other => wrong.push(format!("{q}: p50/p90 (seconds) {other:?} from {got:?}")),
    }

    // Instant queries: one value over the whole range (20 minutes).
    for (q, want) in [
        (
            "{ } | count_over_time()",
            vec![(BTreeSet::new(), SPANS as f64)],
        ),
        (
            "{ } | rate()",
            vec![(BTreeSet::new(), SPANS as f64 / 1200.0)],
        ),
        (
            "{ kind != consumer } | count_over_time() by (resource.service.name)",
            vec![
                (
                    BTreeSet::from(["resource.service.name=oi-agent".to_owned()]),
                    3.0,
                ),
                (
                    BTreeSet::from(["resource.service.name=planner-svc".to_owned()]),
                    8.0,
                ),
            ],
        ),
    ] {
        match t.instant(q).await {
            Err(e) => wrong.push(format!("instant {q}: {e}")),
            Ok(r) => {
                let mut got: Vec<(BTreeSet<String>, f64)> = r
                    .series
                    .iter()
                    .map(|s| (labels(&s.labels), s.value))
                    .collect();
                got.sort_by(|a, b| a.0.cmp(&b.0));
                let same = got.len() == want.len()
                    && got.iter().zip(&want).all(|(g, w)| {
                        // A series without `by` may carry no label or a placeholder one.
                        (g.0 == w.0 || w.0.is_empty()) && (g.1 - w.1).abs() < 1e-9
                    });
                if !same {
                    wrong.push(format!("instant {q}: want {want:?}, got {got:?}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// `bucket` → count, as label sets (`__bucket=<upper bound>` after `others`).
fn histogram(others: &[&str], counts: &[(f64, f64)]) -> BTreeMap<BTreeSet<String>, f64> {
    counts
        .iter()
        .map(|(bound, n)| {
            let mut labels: BTreeSet<String> = others.iter().map(|s| s.to_string()).collect();
            labels.insert(format!("__bucket={bound}"));
            (labels, *n)
        })
        .collect()
}

#[tokio::test]
async fn traceql_histogram_over_time() {
    let t = Tempo::start(None).await;
    let mut wrong = Vec::new();
    let bucket = [t.base * 1000, (t.base + 60) * 1000];
    // Tempo's buckets are the smallest power of two ≥ the duration in ns, labelled in seconds:
    // 5 ms → 2^23, 50 ms → 2^26, 100 ms → 2^27, 150 and 250 ms → 2^28, 300 and 400 ms → 2^29,
    // 600, 700 and 900 ms → 2^30, 1.2 and 2 s → 2^31.
    let s = |e: i32| 2f64.powi(e) / 1e9;
    let q = "{ } | histogram_over_time(duration)";
    let reply = t.range(q, "60s").await;
    for s in reply.iter().flat_map(|r| &r.series) {
        // Tempo's bucket label is a double (`{"doubleValue": 0.536870912}`).
        let bounds: Vec<_> = s.labels.iter().filter(|kv| kv.key == "__bucket").collect();
        if bounds.len() != 1 || bounds[0].value.double_value.is_none() {
            wrong.push(format!("{q}: __bucket not one double in {:?}", s.labels));
        }
    }
    let got = nonzero(q, reply, bucket, &mut wrong);
    let want = histogram(
        &[],
        &[
            (s(23), 1.0),
            (s(26), 1.0),
            (s(27), 1.0),
            (s(28), 2.0),
            (s(29), 2.0),
            (s(30), 3.0),
            (s(31), 2.0),
        ],
    );
    if got != want {
        wrong.push(format!("{q}: want {want:?}, got {got:?}"));
    }

    let q = "{ kind != consumer } | histogram_over_time(duration) by (resource.service.name)";
    let got = nonzero(q, t.range(q, "1m").await, bucket, &mut wrong);
    let mut want = histogram(
        &["resource.service.name=planner-svc"],
        &[
            (s(26), 1.0),
            (s(27), 1.0),
            (s(29), 2.0),
            (s(30), 2.0),
            (s(31), 2.0),
        ],
    );
    want.extend(histogram(
        &["resource.service.name=oi-agent"],
        &[(s(28), 2.0), (s(30), 1.0)],
    ));
    if got != want {
        wrong.push(format!("{q}: want {want:?}, got {got:?}"));
    }

    // Integers are bucketed as they are (attempt 1 is below 2: no bucket); doubles are not.
    let q = "{ } | histogram_over_time(span.attempt)";
    let got = nonzero(q, t.range(q, "60s").await, bucket, &mut wrong);
    let want = histogram(&[], &[(2.0, 1.0), (4.0, 1.0)]);
    if got != want {
        wrong.push(format!("{q}: want {want:?}, got {got:?}"));
    }
    let q = "{ } | histogram_over_time(span.score)";
    match t.range(q, "60s").await {
        Ok(r) if r.series.is_empty() => {}
        other => wrong.push(format!("{q}: want no series, got {other:?}")),
    }
    let q = "{ } | histogram_over_time(name)";
    match t.range(q, "60s").await {
        Err(e) if e.starts_with("400: unsupported TraceQL: name is not numeric") => {}
        other => wrong.push(format!("{q}: want 400, got {other:?}")),
    }

    // The instant query: the same counts over the whole range.
    let q = r#"{ resource.service.name = "oi-agent" } | histogram_over_time(duration)"#;
    match t.instant(q).await {
        Err(e) => wrong.push(format!("instant {q}: {e}")),
        Ok(r) => {
            let got: BTreeMap<BTreeSet<String>, f64> = r
                .series
                .iter()
                .map(|s| (labels(&s.labels), s.value))
                .collect();
            let want = histogram(&[], &[(s(28), 2.0), (s(30), 1.0)]);
            if got != want {
                wrong.push(format!("instant {q}: want {want:?}, got {got:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
