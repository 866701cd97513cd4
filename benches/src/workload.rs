//! A realistic, deterministic agent workload as OTLP export requests.
//!
//! Each run is one trace with its own resource (Kubernetes pod, sandbox, policy snapshot and
//! document): a root agent that takes 2–4 model turns, each turn resending the whole growing
//! conversation (OpenTelemetry GenAI JSON messages of 0.5–8 KB) and requesting one tool call,
//! whose arguments, result and data reads or writes are recorded; gated tools get an approval
//! span first (granted nine times in ten); about one tool call in ten fails and is retried with a
//! `retry_of` link; every other run hands off to a sub-agent with its own turns. Text is drawn
//! from a 4,000-word pseudo-vocabulary. Everything is a function of the seed and the run number,
//! so requests can be generated in parallel and in any order. Optionally
//! ([`Workload::with_secrets`]) the first user message of every Nth run carries an email
//! address, a card number and an API key, for redaction to find.

use std::sync::Arc;

use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_normalize::otlp::common::v1::{any_value::Value, AnyValue, ArrayValue, KeyValue};
use cairn_normalize::otlp::resource::v1::Resource;
use cairn_normalize::otlp::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};

/// Start of the workload's time line: 2026-11-28T00:00:00Z.
pub const EPOCH_NANOS: u64 = 1_764_288_000_000_000_000;

const AGENTS: &[&str] = &["support", "research", "coder", "ops", "billing"];
const MODELS: &[(&str, &str, &str)] = &[
    ("gpt-4o", "gpt-4o-2024-08-06", "openai"),
    ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai"),
    ("claude-sonnet-4", "claude-sonnet-4-20250514", "anthropic"),
    ("gemini-2.5-pro", "gemini-2.5-pro", "gcp.gemini"),
];
/// (tool, gated by policy, data access: None, Some(false) read, Some(true) write)
const TOOLS: &[(&str, bool, Option<bool>)] = &[
    ("search", false, Some(false)),
    ("read_file", false, Some(false)),
    ("run_sql", false, Some(true)),
    ("http_get", false, None),
    ("issue_refund", true, Some(true)),
    ("send_email", true, None),
];
const POLICY: &str = r#"{"version":3,"requires_approval":["issue_refund","send_email"],"deny":["shell"],"limits":{"max_tool_calls":50,"max_cost_usd":5}}"#;

/// SplitMix64: a well-mixed 64-bit value of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A deterministic pseudo-random sequence (xorshift64).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(mix(seed) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}

fn int(key: &str, v: i64) -> KeyValue {
    kv(key, Value::IntValue(v))
}

fn list(key: &str, values: Vec<String>) -> KeyValue {
    kv(
        key,
        Value::ArrayValue(ArrayValue {
            values: values
                .into_iter()
                .map(|v| AnyValue {
                    value: Some(Value::StringValue(v)),
                })
                .collect(),
        }),
    )
}

/// The generator: a seed and the vocabulary drawn from it. Cheap to clone and share.
#[derive(Clone)]
pub struct Workload {
    seed: u64,
    vocab: Arc<Vec<String>>,
    secrets_every: u64,
}

/// Builds the spans of one trace.
struct Trace<'a> {
    workload: &'a Workload,
    rng: Rng,
    trace_id: Vec<u8>,
    run: u64,
    next_span: u64,
    spans: Vec<Span>,
}

impl<'a> Trace<'a> {
    fn span_id(&mut self) -> Vec<u8> {
        self.next_span += 1;
        mix(self.workload.seed ^ (self.run << 20) ^ self.next_span)
            .to_be_bytes()
            .to_vec()
    }

    fn text(&mut self, len: usize) -> String {
        let mut out = String::with_capacity(len + 16);
        while out.len() < len {
            let vocab = &self.workload.vocab;
            out.push_str(&vocab[self.rng.below(vocab.len() as u64) as usize]);
            out.push(if self.rng.chance(12) { '.' } else { ' ' });
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        id: Vec<u8>,
        parent: &[u8],
        name: String,
        kind: span::SpanKind,
        start: u64,
        duration: u64,
        attributes: Vec<KeyValue>,
    ) {
        self.spans.push(Span {
            trace_id: self.trace_id.clone(),
            span_id: id,
            parent_span_id: parent.to_vec(),
            name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration,
            attributes,
            ..Default::default()
        });
    }

    /// An agent invocation of `turns` model turns, each requesting a tool call, starting at
    /// `start`; returns its end time.
    fn agent(
        &mut self,
        agent_id: Vec<u8>,
        parent: &[u8],
        name: &str,
        turns: u64,
        start: u64,
    ) -> u64 {
        let agent_index = self.spans.len();
        self.push(
            agent_id.clone(),
            parent,
            format!("invoke_agent {name}"),
            span::SpanKind::Internal,
            start,
            0,
            vec![
                s("gen_ai.operation.name", "invoke_agent"),
                s("gen_ai.agent.name", name),
                s("gen_ai.agent.id", format!("{name}-{}", self.run % 97)),
                s("gen_ai.conversation.id", format!("conv-{}", self.run / 3)),
                s("agent_trail.user.id", format!("user-{}", self.run % 1000)),
            ],
        );
        let &(model, response_model, provider) = self.rng.pick(MODELS);
        let len = 500 + self.rng.below(1500) as usize;
        let mut first = self.text(len);
        let every = self.workload.secrets_every;
        if every > 0 && self.run.is_multiple_of(every) {
            // An email address, a Luhn-valid test card number and an OpenAI-style key.
            first.push_str(&format!(
                " Reach me at user{}.r{}@example.com, card 4111 1111 1111 1111, key sk-proj-{:024x}.",
                self.run % 1000,
                self.run,
                mix(self.run ^ self.workload.seed)
            ));
        }
        let mut conversation = vec![format!(
            r#"{{"role":"user","parts":[{{"type":"text","content":"{first}"}}]}}"#
        )];
        let system = format!(
            r#"[{{"type":"text","content":"You are the {name} agent. {}"}}]"#,
            self.text(400)
        );
        let mut t = start + 5_000_000;
        for turn in 0..turns {
            let &(tool, gated, access) = self.rng.pick(TOOLS);
            let call = format!("call_{}_{}_{turn}", self.run, self.next_span);
            let args = format!(r#"{{"q":"{}","limit":{}}}"#, self.text(40), 5 + turn);
            let len = 80 + self.rng.below(300) as usize;
            let answer = format!(
                r#"{{"role":"assistant","parts":[{{"type":"text","content":"{}"}},{{"type":"tool_call","id":"{call}","name":"{tool}","arguments":{args}}}]}}"#,
                self.text(len)
            );
            let input: usize = conversation.iter().map(String::len).sum();
            let chat = self.span_id();
            let model_time = 300_000_000 + self.rng.below(2_000_000_000);
            self.push(
                chat,
                &agent_id,
                format!("chat {model}"),
                span::SpanKind::Client,
                t,
                model_time,
                vec![
                    s("gen_ai.operation.name", "chat"),
                    s("gen_ai.request.model", model),
                    s("gen_ai.response.model", response_model),
                    s("gen_ai.provider.name", provider),
                    int("gen_ai.usage.input_tokens", input as i64 / 4),
                    int("gen_ai.usage.output_tokens", answer.len() as i64 / 4),
                    s("gen_ai.system_instructions", system.clone()),
                    s(
                        "gen_ai.input.messages",
                        format!("[{}]", conversation.join(",")),
                    ),
                    s("gen_ai.output.messages", format!("[{answer}]")),
                ],
            );
            t += model_time;
            if gated {
                let approval_time = 1_000_000_000 + self.rng.below(60_000_000_000);
                let state = if self.rng.chance(10) {
                    "denied"
                } else {
                    "granted"
                };
                let id = self.span_id();
                let approver = format!("approver-{}", self.rng.below(12));
                self.push(
                    id,
                    &agent_id,
                    format!("approval {tool}"),
                    span::SpanKind::Internal,
                    t,
                    approval_time,
                    vec![
                        s("agent_trail.operation", "approval"),
                        s("gen_ai.tool.name", tool),
                        s("gen_ai.tool.call.id", call.clone()),
                        s("agent_trail.approval.state", state),
                        s("agent_trail.approval.approver.id", approver),
                    ],
                );
                t += approval_time;
                if state == "denied" {
                    conversation.push(answer);
                    continue;
                }
            }
            let len = 500 + self.rng.below(7500) as usize;
            let result = self.text(len);
            let mut attempt_links = Vec::new();
            let attempts = if self.rng.chance(10) { 2 } else { 1 };
            for attempt in 0..attempts {
                let failed = attempt + 1 < attempts;
                let id = self.span_id();
                let tool_time = 20_000_000 + self.rng.below(800_000_000);
                let mut attributes = vec![
                    s("gen_ai.operation.name", "execute_tool"),
                    s("gen_ai.tool.name", tool),
                    s("gen_ai.tool.call.id", call.clone()),
                    s("gen_ai.tool.call.arguments", args.clone()),
                ];
                if failed {
                    attributes.push(s("error.type", "timeout"));
                } else {
                    attributes.push(s("gen_ai.tool.call.result", result.clone()));
                }
                match access {
                    Some(false) => attributes.push(list(
                        "agent_trail.data.read",
                        vec![format!("s3://kb/docs/{}.md", self.rng.below(5000))],
                    )),
                    Some(true) => attributes.push(list(
                        "agent_trail.data.written",
                        vec![format!(
                            "postgres://billing/orders/{}",
                            self.rng.below(20000)
                        )],
                    )),
                    None => {}
                }
                self.push(
                    id.clone(),
                    &agent_id,
                    format!("execute_tool {tool}"),
                    span::SpanKind::Internal,
                    t,
                    tool_time,
                    attributes,
                );
                let span = self.spans.last_mut().expect("pushed");
                span.links = std::mem::take(&mut attempt_links);
                if failed {
                    span.status = Some(Status {
                        code: status::StatusCode::Error as i32,
                        message: "tool timed out".into(),
                    });
                    attempt_links.push(span::Link {
                        trace_id: self.trace_id.clone(),
                        span_id: id,
                        attributes: vec![s("agent_trail.link.kind", "retry_of")],
                        ..Default::default()
                    });
                }
                t += tool_time;
            }
            conversation.push(answer);
            conversation.push(format!(
                r#"{{"role":"tool","parts":[{{"type":"tool_call_response","id":"{call}","response":"{}"}}]}}"#,
                &result[..result.len().min(4000)]
            ));
        }
        self.spans[agent_index].end_time_unix_nano = t;
        t
    }
}

impl Workload {
    /// The workload of `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let vocab = (0..4000)
            .map(|_| {
                let n = 2 + rng.below(9);
                (0..n)
                    .map(|_| (b'a' + rng.below(26) as u8) as char)
                    .collect()
            })
            .collect();
        Workload {
            seed,
            vocab: Arc::new(vocab),
            secrets_every: 0,
        }
    }

    /// The same workload, with secrets in the first user message of every `every`th run
    /// (0: none). Nothing else changes: the secrets draw nothing from the random sequence.
    pub fn with_secrets(mut self, every: u64) -> Self {
        self.secrets_every = every;
        self
    }

    /// The trace id of run `run`: random-looking, distinct per run.
    pub fn trace_id(&self, run: u64) -> Vec<u8> {
        let hi = mix(self.seed ^ run.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let lo = mix(hi ^ run);
        let mut id = hi.to_be_bytes().to_vec();
        id.extend_from_slice(&lo.to_be_bytes());
        id
    }

    fn trace(&self, run: u64) -> Trace<'_> {
        Trace {
            workload: self,
            rng: Rng::new(self.seed ^ mix(run)),
            trace_id: self.trace_id(run),
            run,
            next_span: 0,
            spans: Vec::new(),
        }
    }

    fn resource(&self, run: u64, agent: &str) -> Resource {
        Resource {
            attributes: vec![
                s("service.name", format!("{agent}-agent")),
                s("k8s.namespace.name", "agents"),
                s("k8s.pod.name", format!("{agent}-agent-{:04x}", run % 64)),
                s("k8s.node.name", format!("node-{}", run % 8)),
                s("agent_trail.sandbox.id", format!("sbx-{run:08x}")),
                s(
                    "agent_trail.policy.snapshot.id",
                    format!("policy-v{}", 3 + run / 100_000),
                ),
                s("agent_trail.policy.document", POLICY),
            ],
            ..Default::default()
        }
    }

    fn resource_spans(&self, run: u64, agent: &str, spans: Vec<Span>) -> ResourceSpans {
        ResourceSpans {
            resource: Some(self.resource(run, agent)),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// The spans of agent run `run`, starting at `start` (Unix nanoseconds).
    pub fn run(&self, run: u64, start: u64) -> ResourceSpans {
        let mut trace = self.trace(run);
        let agent = *trace.rng.pick(AGENTS);
        let turns = 2 + trace.rng.below(3);
        let root = trace.span_id();
        let end = trace.agent(root.clone(), &[], agent, turns, start);
        if trace.rng.chance(2) {
            let sub = *trace.rng.pick(AGENTS);
            let turns = 1 + trace.rng.below(3);
            let id = trace.span_id();
            let end = trace.agent(id, &root, sub, turns, end);
            trace.spans[0].end_time_unix_nano = end;
        }
        self.resource_spans(run, agent, trace.spans)
    }

    /// One export request holding runs `first..first + count`, run `i` starting at
    /// `start + (i - first) * spacing` nanoseconds.
    pub fn request(
        &self,
        first: u64,
        count: u64,
        start: u64,
        spacing: u64,
    ) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: (0..count)
                .map(|i| self.run(first + i, start + i * spacing))
                .collect(),
        }
    }

    /// One run of at least `spans` spans: a root agent handing off to sub-agents of up to 50
    /// turns each, as one request per sub-agent.
    pub fn large_run(&self, run: u64, spans: usize, start: u64) -> Vec<ExportTraceServiceRequest> {
        let mut trace = self.trace(run);
        let root = trace.span_id();
        let mut requests = Vec::new();
        let mut t = start;
        let mut total = 1;
        let mut worker = 0;
        while total < spans {
            worker += 1;
            let id = trace.span_id();
            t = trace.agent(id, &root, &format!("worker-{worker}"), 50, t);
            total += trace.spans.len();
            let part = std::mem::take(&mut trace.spans);
            requests.push(ExportTraceServiceRequest {
                resource_spans: vec![self.resource_spans(run, "orchestrator", part)],
            });
        }
        let root_span = Span {
            trace_id: trace.trace_id.clone(),
            span_id: root,
            name: "invoke_agent orchestrator".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: t,
            attributes: vec![
                s("gen_ai.operation.name", "invoke_agent"),
                s("gen_ai.agent.name", "orchestrator"),
            ],
            ..Default::default()
        };
        requests.push(ExportTraceServiceRequest {
            resource_spans: vec![self.resource_spans(run, "orchestrator", vec![root_span])],
        });
        requests
    }
}

/// Spans in a request.
pub fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn deterministic_and_distinct() {
        let w = Workload::new(7);
        let a = w.request(0, 5, EPOCH_NANOS, 1_000_000_000).encode_to_vec();
        let b = Workload::new(7)
            .request(0, 5, EPOCH_NANOS, 1_000_000_000)
            .encode_to_vec();
        assert_eq!(a, b);
        let c = w.request(5, 5, EPOCH_NANOS, 1_000_000_000).encode_to_vec();
        assert_ne!(a, c);
        assert_ne!(w.trace_id(1), w.trace_id(2));
    }

    #[test]
    fn secrets_go_into_every_nth_run_only() {
        let text = |w: &Workload, run| format!("{:?}", w.request(run, 1, EPOCH_NANOS, 0));
        let plain = Workload::new(3);
        let secret = Workload::new(3).with_secrets(4);
        for run in [0, 8] {
            let t = text(&secret, run);
            assert!(t.contains(&format!("r{run}@example.com")), "run {run}");
            assert!(t.contains("4111 1111 1111 1111") && t.contains("sk-proj-"));
            assert!(!text(&plain, run).contains("@example.com"));
        }
        assert_eq!(text(&secret, 5), text(&plain, 5));
    }

    #[test]
    fn runs_are_agent_shaped_and_encode() {
        let w = Workload::new(1);
        let request = w.request(0, 50, EPOCH_NANOS, 1_000_000_000);
        let spans = span_count(&request);
        assert!((300..1000).contains(&spans), "{spans} spans in 50 runs");
        let bytes = request.encoded_len() / spans;
        assert!((1500..8000).contains(&bytes), "{bytes} OTLP bytes per span");
        let encoded = cairn_normalize::encode::encode(&request).expect("encodes");
        assert_eq!(encoded.accepted, spans);
        assert_eq!(encoded.rejected, 0);
    }

    #[test]
    fn large_run_is_one_trace_of_at_least_n_spans() {
        let w = Workload::new(1);
        let requests = w.large_run(9, 1000, EPOCH_NANOS);
        let spans: usize = requests.iter().map(span_count).sum();
        assert!(spans >= 1000);
        let ids: std::collections::HashSet<_> = requests
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.trace_id.clone())
            .collect();
        assert_eq!(ids.len(), 1);
    }
}
