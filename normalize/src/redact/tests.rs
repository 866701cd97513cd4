use super::*;
use crate::test_support::kv;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::Event, ResourceSpans, ScopeSpans, Span, Status};

fn request(resource: Vec<KeyValue>, span: Span) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope::default()),
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn text<'a>(attrs: &'a [KeyValue], key: &str) -> &'a str {
    match attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    {
        Some(Value::StringValue(s)) => s,
        other => panic!("{key}: {other:?}"),
    }
}

fn record(span: &Span) -> Vec<String> {
    match span
        .attributes
        .iter()
        .find(|kv| kv.key == REDACTIONS_KEY)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    {
        Some(Value::ArrayValue(a)) => a
            .values
            .iter()
            .map(|v| match &v.value {
                Some(Value::StringValue(s)) => s.clone(),
                other => panic!("{other:?}"),
            })
            .collect(),
        None => Vec::new(),
        other => panic!("{other:?}"),
    }
}

fn redactor(toml: &str) -> Redactor {
    Redactor::new(
        Rules::parse(toml).unwrap(),
        Some(b"a key of at least sixteen bytes"),
    )
}

const RULES: &str = r#"
[[rule]]
name = "email"
preset = "email"

[[rule]]
name = "card"
preset = "credit_card"

[[rule]]
name = "openai"
values = ['sk-[A-Za-z0-9]{20,}']
action = "hash"

[[rule]]
name = "keys"
keys = ["*.api_key", "http.request.header.authorization"]
"#;

#[test]
fn masks_hashes_and_records_where() {
    let r = redactor(RULES);
    let span = Span {
        name: "mail ann@example.com".into(),
        attributes: vec![
            kv(
                "gen_ai.input.messages",
                r#"[{"role":"user","content":"I am bob@example.org, key sk-abcdefghijklmnopqrstuvwx"}]"#,
            ),
            kv("openai.api_key", "whatever-it-is"),
            kv(
                "order.note",
                "card 4111 1111 1111 1111, ticket 1234567890123",
            ),
            kv(REDACTIONS_KEY, "forged"),
        ],
        events: vec![Event {
            name: "gen_ai.user.message".into(),
            attributes: vec![kv("content", "reach me at carol@example.net")],
            ..Default::default()
        }],
        status: Some(Status {
            message: "failed for dave@example.com".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut req = request(vec![kv("user.email", "eve@example.com")], span);
    let report = r.apply(&mut req);
    assert!(report.changed);
    let rs = &req.resource_spans[0];
    let span = &rs.scope_spans[0].spans[0];
    assert_eq!(
        text(&rs.resource.as_ref().unwrap().attributes, "user.email"),
        "[REDACTED:email]"
    );
    assert_eq!(span.name, "mail [REDACTED:email]");
    assert_eq!(
        span.status.as_ref().unwrap().message,
        "failed for [REDACTED:email]"
    );
    let messages = text(&span.attributes, "gen_ai.input.messages");
    assert!(
        messages.starts_with(
            r#"[{"role":"user","content":"I am [REDACTED:email], key [HASHED:openai:"#
        ),
        "{messages}"
    );
    assert!(
        serde_json::from_str::<serde_json::Value>(messages).is_ok(),
        "still JSON"
    );
    assert_eq!(text(&span.attributes, "openai.api_key"), "[REDACTED:keys]");
    // A Luhn-valid card number is masked, another long number is not.
    assert_eq!(
        text(&span.attributes, "order.note"),
        "card [REDACTED:card], ticket 1234567890123"
    );
    assert_eq!(
        text(&span.events[0].attributes, "content"),
        "reach me at [REDACTED:email]"
    );
    assert_eq!(
        record(span),
        [
            "email@resource:user.email",
            "email@name",
            "email@status_message",
            "email@attribute:gen_ai.input.messages",
            "openai@attribute:gen_ai.input.messages",
            "keys@attribute:openai.api_key",
            "card@attribute:order.note",
            "email@event:gen_ai.user.message:content",
        ]
    );
    let counts: std::collections::HashMap<_, _> = report.counts.into_iter().collect();
    assert_eq!(counts["email"], 5);
    assert_eq!(counts["card"], 1);
    assert_eq!(counts["openai"], 1);
    assert_eq!(counts["keys"], 1);
}

#[test]
fn hashes_are_keyed_and_stable() {
    let hash_of = |key: &[u8]| {
        let r = Redactor::new(
            Rules::parse("[[rule]]\nname = \"e\"\npreset = \"email\"\naction = \"hash\"").unwrap(),
            Some(key),
        );
        let mut req = request(
            vec![],
            Span {
                attributes: vec![kv("a", "x@example.com"), kv("b", "x@example.com")],
                ..Default::default()
            },
        );
        r.apply(&mut req);
        let attrs = &req.resource_spans[0].scope_spans[0].spans[0].attributes;
        assert_eq!(
            text(attrs, "a"),
            text(attrs, "b"),
            "equal values stay joinable"
        );
        text(attrs, "a").to_owned()
    };
    let one = hash_of(b"first key of sixteen bytes");
    assert!(
        one.starts_with("[HASHED:e:") && !one.contains("example"),
        "{one}"
    );
    assert_eq!(one, hash_of(b"first key of sixteen bytes"));
    assert_ne!(one, hash_of(b"other key of sixteen bytes"));
}

#[test]
fn no_rules_or_no_match_change_nothing() {
    let span = Span {
        attributes: vec![kv("k", "nothing secret here")],
        ..Default::default()
    };
    let mut req = request(vec![], span);
    let before = req.clone();
    assert!(!Redactor::none().apply(&mut req).changed);
    assert!(!redactor(RULES).apply(&mut req).changed);
    assert_eq!(req, before);
    // A forged record is dropped even without rules.
    req.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(kv(REDACTIONS_KEY, "x@y"));
    assert!(Redactor::none().apply(&mut req).changed);
    assert_eq!(req, before);
}

#[test]
fn key_rules_with_values_apply_only_under_their_keys() {
    let r = redactor("[[rule]]\nname = \"ids\"\nkeys = [\"user.*\"]\nvalues = ['EMP-[0-9]{4}']");
    let mut req = request(
        vec![],
        Span {
            attributes: vec![kv("user.id", "EMP-1234"), kv("other", "EMP-1234")],
            ..Default::default()
        },
    );
    r.apply(&mut req);
    let attrs = &req.resource_spans[0].scope_spans[0].spans[0].attributes;
    assert_eq!(text(attrs, "user.id"), "[REDACTED:ids]");
    assert_eq!(text(attrs, "other"), "EMP-1234");
}

#[test]
fn presets_match_what_they_name() {
    let cases = [
        ("email", "mail a.b+c@mail.example.co.uk now", true),
        ("email", "not an address: a@b", false),
        ("credit_card", "5500-0000-0000-0004", true),
        ("credit_card", "5500-0000-0000-0005", false),
        ("openai_key", "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx", true),
        ("aws_access_key", "AKIAIOSFODNN7EXAMPLE", true),
        ("aws_access_key", "AKIA-short", false),
        ("github_token", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", true),
        ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", true),
        ("bearer_token", "Authorization: Bearer abcdefghijklmnop1234", true),
    ];
    for (preset, value, redacted) in cases {
        let r = redactor(&format!("[[rule]]\nname = \"p\"\npreset = \"{preset}\""));
        let mut req = request(
            vec![],
            Span {
                attributes: vec![kv("v", value)],
                ..Default::default()
            },
        );
        assert_eq!(r.apply(&mut req).changed, redacted, "{preset}: {value}");
    }
    let r = redactor("[[rule]]\nname = \"s\"\npreset = \"secret_keys\"");
    let mut req = request(
        vec![],
        Span {
            attributes: vec![
                kv("db.password", "hunter2"),
                kv("http.request.header.authorization", "Basic x"),
            ],
            ..Default::default()
        },
    );
    r.apply(&mut req);
    let attrs = &req.resource_spans[0].scope_spans[0].spans[0].attributes;
    assert_eq!(text(attrs, "db.password"), "[REDACTED:s]");
    assert_eq!(
        text(attrs, "http.request.header.authorization"),
        "[REDACTED:s]"
    );
}

#[test]
fn bad_rules_are_refused_with_the_reason() {
    for (toml, says) in [
        ("[[rule]]\nname = \"a\"", "give a preset"),
        (
            "[[rule]]\nname = \"a\"\npreset = \"nope\"",
            "unknown preset",
        ),
        ("[[rule]]\nname = \"a b\"\npreset = \"email\"", "a name is"),
        ("[[rule]]\nname = \"a\"\nvalues = ['(']", "rule \"a\""),
        (
            "[[rule]]\nname = \"a\"\npreset = \"email\"\n[[rule]]\nname = \"a\"\npreset = \"jwt\"",
            "twice",
        ),
        (
            "[[rule]]\nname = \"a\"\npreset = \"email\"\nactoin = \"hash\"",
            "unknown field",
        ),
    ] {
        let e = Rules::parse(toml).unwrap_err();
        assert!(e.contains(says), "{toml}: {e}");
    }
}

#[test]
fn globs_and_luhn() {
    let re = regex::Regex::new(&glob_regex("*.api_key")).unwrap();
    assert!(re.is_match("openai.api_key") && re.is_match("a.b.api_key"));
    assert!(!re.is_match("api_key") && !re.is_match("openai.api_key2"));
    assert!(luhn("4111111111111111") && luhn("4111-1111-1111-1111"));
    assert!(!luhn("4111111111111112") && !luhn("1234"));
}
