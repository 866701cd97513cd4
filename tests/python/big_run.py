#!/usr/bin/env python3
"""Send one large, deterministic multi-agent run to an OTLP/HTTP endpoint.

Usage:
    big_run.py --endpoint http://HOST:PORT/v1/traces [--tenant T] [--spans N] [--run R]

One trace of exactly N spans (default 10000; at least 20), made with the OpenTelemetry Python
SDK and exported with its OTLP/HTTP protobuf exporter in batches of 256 spans (tenant in the
X-Scope-OrgID header). The attributes follow tests/python/lineage_runs.py, whose helpers make
them: a root `invoke_agent planner` hands off to sub-agents (`execute_tool transfer_to_X`
parenting `invoke_agent X`) nested up to 6 agents deep; each agent runs `chat <model>` turns that
ask for tool calls in their output messages, then the `execute_tool <name>` spans of those calls
(call ids, arguments, results, agent_trail.data.read / .written); a few calls of tools that need
an approval get an `approval <tool>` span first (granted, denied, requested or timed_out); a few
tool calls fail (status ERROR, error.type), most of them retried by a span linked `retry_of`.
Exactly one tool span (`large_payload_span`) carries a result of about 300 KB of JSON.

The shape is drawn from a random generator seeded with R and N, so the same arguments always
give the same spans: ids, attributes and times. The trace id is 0…0b<R, 2 digits>
(0…0b01 for run 1); the span ids are 00b<R, 2 digits><preorder position, 11 digits> (the root
is 00b0100000000001), so sorting them sorts the spans in the order they ran. Times are in
milliseconds: the root starts at 2026-11-21T09:05:00Z and ends 40 minutes later, inside the
09:00 hour; every span starts after the one before it in preorder.

After a successful export one JSON object goes to stdout:
    {"trace_id": ..., "spans": N, "large_payload_span": ..., "large_payload_bytes": ...,
     "sample_spans": {"root": ..., "first_chat": ..., "error": ..., "retry": ...,
                      "approval": ..., "approved_tool": ..., "handoff": ..., "sub_agent": ...,
                      "deepest_agent": ..., "last_chat": ..., ...},
     "counts": {"agents": ..., "chats": ..., "tools": ... (hand-offs included), "handoffs": ...,
                "approvals": ..., "errors": ...},
     "max_agent_depth": ..., "max_span_depth": ..., "start": ..., "end": ...}
Exits 1 if any export fails.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import (Link, NonRecordingSpan, SpanContext, SpanKind, Status,
                                 StatusCode, TraceFlags)

from lineage_runs import (
    TENANT_HEADER,
    CheckedExporter,
    QueuedIdGenerator,
    agent,
    answered,
    approval,
    dumps,
    invoke_agent,
    policy,
    text,
    tool,
)

BASE = datetime(2026, 11, 21, 9, tzinfo=timezone.utc)
BASE_NS = int(BASE.timestamp()) * 1_000_000_000
ROOT_START_MS = 5 * 60 * 1000  # 09:05
RUN_LENGTH_MS = 40 * 60 * 1000  # to 09:45
MIN_SPANS = 20
MAX_AGENT_DEPTH = 6  # the planner is depth 1
MIN_SUB_AGENT = 6  # spans of the smallest sub-agent, its invoke_agent span included
BATCH = 256  # spans per export request

RESOURCE = Resource({
    "service.name": "planner-bot",
    "agent_trail.sandbox.id": "sbx-big",
    "k8s.namespace.name": "agents",
    "k8s.pod.name": "planner-bot-5c8d",
    **policy("v3", ["deploy_change", "delete_records", "send_email"]),
})

# request model -> (provider, response model)
MODELS = {
    "gpt-4o": ("openai", "gpt-4o-2024-08-06"),
    "gpt-4o-mini": ("openai", "gpt-4o-mini-2024-07-18"),
    "gpt-4.1": ("openai", "gpt-4.1-2025-04-14"),
    "gpt-4.1-mini": ("openai", "gpt-4.1-mini-2025-04-14"),
    "o4-mini": ("openai", "o4-mini-2025-04-16"),
    "claude-sonnet-4": ("anthropic", "claude-sonnet-4-20250514"),
}
SUB_AGENTS = ["researcher", "coder", "reviewer", "tester", "analyst", "writer", "fetcher",
              "summarizer", "critic", "archivist", "scheduler", "translator"]
SENSITIVE = ["deploy_change", "delete_records", "send_email"]
TABLES = ["orders", "customers", "invoices", "events", "tickets"]
FILES = ["src/app.py", "src/models.py", "src/api/routes.py", "README.md", "tests/test_api.py",
         "docs/plan.md", "config/deploy.yaml"]
SERVICES = ["checkout", "search", "billing", "notifications"]


def tool_call(rng: random.Random, name: str) -> tuple[dict, dict, list[str], list[str]]:
    """Arguments, result, data read and data written of one call of tool `name`."""
    if name == "web_search":
        q = rng.choice(["flaky checkout tests", "p99 latency regression", "billing retries",
                        "parquet row groups", "oauth token refresh"])
        hits = [{"title": f"{q} ({i})", "url": f"https://docs.example.com/{q.replace(' ', '-')}/{i}"}
                for i in range(3)]
        return {"query": q}, {"results": hits}, ["https://search.example.com"], []
    if name == "fetch_url":
        url = f"https://docs.example.com/page/{rng.randrange(1000)}"
        return {"url": url}, {"status": 200, "bytes": rng.randrange(2000, 90000),
                              "text": "Lorem ipsum " * rng.randrange(1, 8)}, [url], []
    if name == "read_file":
        path = rng.choice(FILES)
        return ({"path": path}, {"path": path, "lines": rng.randrange(20, 900),
                                 "content": f"# {path}\n" + "x = 1\n" * rng.randrange(1, 6)},
                [f"file:///repo/{path}"], [])
    if name == "write_file":
        path = rng.choice(FILES)
        return ({"path": path, "content": "def handler():\n    return 42\n"},
                {"ok": True, "bytes": rng.randrange(100, 5000)}, [], [f"file:///repo/{path}"])
    if name == "run_tests":
        suite = rng.choice(["unit", "integration", "e2e"])
        return ({"suite": suite}, {"passed": rng.randrange(50, 400), "failed": rng.randrange(0, 3)},
                ["file:///repo/tests"], [])
    if name == "query_db":
        table = rng.choice(TABLES)
        rows = [{"id": rng.randrange(10**6), "total": rng.randrange(10, 9000)} for _ in range(3)]
        return ({"sql": f"SELECT id, total FROM {table} ORDER BY total DESC LIMIT 3"},
                {"rows": rows}, [f"postgres://db/warehouse/{table}"], [])
    if name == "create_ticket":
        title = rng.choice(["Fix flaky test", "Raise timeout", "Add index", "Update docs"])
        return ({"title": title}, {"ticket": f"ENG-{rng.randrange(100, 9999)}"}, [],
                ["https://tickets.example.com/ENG"])
    if name == "deploy_change":
        service = rng.choice(SERVICES)
        return ({"service": service, "version": f"1.{rng.randrange(40)}.{rng.randrange(9)}"},
                {"rollout": f"ro-{rng.randrange(10**5)}", "status": "started"}, [],
                [f"k8s://prod/{service}"])
    if name == "delete_records":
        table = rng.choice(TABLES)
        return ({"table": table, "where": "created_at < '2020-01-01'"},
                {"deleted": rng.randrange(1, 500)}, [], [f"postgres://db/warehouse/{table}"])
    if name == "send_email":
        return ({"to": "team@example.com", "subject": "Status update", "body": "All done."},
                {"message_id": f"msg-{rng.randrange(10**6)}"}, [], ["mailto:team@example.com"])
    raise ValueError(name)


PLAIN_TOOLS = ["web_search", "fetch_url", "read_file", "write_file", "run_tests", "query_db",
               "create_ticket"]
PLAIN_WEIGHTS = [4, 3, 5, 2, 2, 3, 1]


def large_payload(rng: random.Random) -> dict:
    """The one big tool result: about 300 KB of JSON rows."""
    rows = []
    size = 0
    while size < 300_000:
        row = {"id": len(rows) + 1, "customer": f"cust-{rng.randrange(10**5):05d}",
               "amount": rng.randrange(100, 100_000) / 100, "currency": "EUR",
               "status": rng.choice(["paid", "open", "refunded", "void"]),
               "note": rng.choice(["", "priority", "manual review", "split shipment"])}
        rows.append(row)
        size += len(dumps(row)) + 1
    return {"table": "invoices", "exported_rows": len(rows), "rows": rows}


@dataclass
class Planned:
    """One span of the plan: times in abstract units until `scale` turns them into ms."""

    name: str
    parent: int | None
    attributes: dict
    start: float
    end: float = 0.0
    depth: int = 0
    error: str | None = None
    links: list[tuple[int, str]] = field(default_factory=list)


class Plan:
    """Lays out the spans of one run in preorder, which is also the order in which they ran."""

    def __init__(self, total: int, run: int) -> None:
        self.rng = random.Random(f"cairn big run {run} of {total} spans")
        self.run = run
        self.spans: list[Planned] = []
        self.clock = 0.0
        self.calls = 0
        self.approvals = 0
        self.agent_ids: dict[str, int] = {}
        self.samples: dict[str, int] = {}
        self.large: int | None = None
        self.large_bytes = 0
        self.max_agent_depth = 0
        self.agent("planner", 1, None, total, "Plan and ship the Q4 checkout fixes.",
                   prologue=True)
        if len(self.spans) != total:
            raise AssertionError(f"planned {len(self.spans)} spans, not {total}")

    # -- spans ------------------------------------------------------------------------------

    def add(self, name: str, parent: int | None, attributes: dict, duration: float | None, *,
            error: str | None = None, links: list[tuple[int, str]] | None = None) -> int:
        """A span starting now; with a duration it ends then and the clock moves past it."""
        depth = 0 if parent is None else self.spans[parent].depth + 1
        span = Planned(name, parent, attributes, self.clock, depth=depth, error=error,
                       links=links or [])
        self.spans.append(span)
        if duration is None:
            self.clock += 0.2
        else:
            span.end = self.clock + duration
            self.clock = span.end + 0.2
        return len(self.spans) - 1

    def sample(self, label: str, index: int) -> None:
        self.samples.setdefault(label, index)

    def call_id(self) -> str:
        self.calls += 1
        return f"call_{self.run:02d}_{self.calls:05d}"

    # -- agents -----------------------------------------------------------------------------

    def agent(self, name: str, depth: int, parent: int | None, budget: int, task: str, *,
              prologue: bool = False) -> None:
        """An invoke_agent span and `budget - 1` spans under it."""
        rng = self.rng
        self.agent_ids[name] = self.agent_ids.get(name, 0) + 1
        model = "gpt-4o" if depth == 1 else rng.choice(list(MODELS))
        provider = MODELS[model][0]
        who = agent(name, f"{name}-{self.agent_ids[name]}", f"conv-big-{self.run:02d}")
        attrs = {**invoke_agent(who, "erin-engineer" if depth == 1 else None),
                 "gen_ai.provider.name": provider}
        me = self.add(f"invoke_agent {name}", parent, attrs, None)
        if depth == 1:
            self.sample("root", me)
        else:
            self.sample("sub_agent", me)
        if depth > self.max_agent_depth:
            self.max_agent_depth = depth
            self.samples["deepest_agent"] = me

        ctx = Turns(self, who, model, me, task)
        own = budget - 1 - 1  # less the invoke_agent span and the final reply
        if prologue:
            own -= ctx.prologue()
        # Part of the budget goes to sub-agents, each a hand-off (a chat and a transfer span).
        shares: list[int] = []
        room = own - 2
        if depth < MAX_AGENT_DEPTH and room >= 2 + MIN_SUB_AGENT and (
                room >= 30 or rng.random() < 0.25 or prologue):
            most = max(1, min(4 if depth == 1 else 3, room // (2 + MIN_SUB_AGENT + 4)))
            count = rng.randint(1, most)
            pool = int(room * rng.uniform(0.5, 0.8)) - 2 * count
            count = max(1, min(count, pool // MIN_SUB_AGENT))
            pool = max(pool, MIN_SUB_AGENT * count)
            weights = [rng.uniform(0.5, 1.5) for _ in range(count)]
            spare = pool - MIN_SUB_AGENT * count
            shares = [MIN_SUB_AGENT + int(spare * w / sum(weights)) for w in weights]
            shares[0] += pool - sum(shares)
            own -= sum(shares)
        pending = [(rng.choice(SUB_AGENTS), share) for share in shares]
        if own < 2 * len(pending):
            raise AssertionError("a sub-agent budget left no room for its hand-off")

        while own > 0:
            free = own - 2 * len(pending)
            if pending and (free < 2 or rng.random() < len(pending) / max(1.0, free / 2.4)):
                sub, share = pending.pop(0)
                ctx.handoff(sub, depth + 1, share)
                own -= 2
            elif free == 1:
                ctx.note()
                own -= 1
            else:
                own -= ctx.tool_turn(free)
        ctx.reply()
        self.spans[me].end = self.clock
        self.clock += 0.2


class Turns:
    """The model turns of one agent, and the spans they cause."""

    def __init__(self, plan: Plan, who: dict, model: str, me: int, task: str) -> None:
        self.plan = plan
        self.rng = plan.rng
        self.who = who
        self.model = model
        self.me = me
        self.task = task
        self.prompt = f"You are the {who['gen_ai.agent.name']} agent. Use tools; some need approval."
        self.last_turn: list[dict] = []  # the previous turn's call and answers, replayed

    def chat(self, outputs: list[dict], *, error: str | None = None) -> int:
        rng = self.rng
        provider, response_model = MODELS[self.model]
        inputs = [text("system", self.prompt), text("user", self.task), *self.last_turn]
        attrs = {
            "gen_ai.operation.name": "chat",
            **self.who,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": self.model,
            "gen_ai.response.model": response_model,
            "gen_ai.response.finish_reasons": [m["finish_reason"] for m in outputs],
            "gen_ai.usage.input_tokens": rng.randrange(200, 6000),
            "gen_ai.usage.output_tokens": rng.randrange(10, 600),
            "gen_ai.system_instructions": dumps([{"type": "text", "content": self.prompt}]),
            "gen_ai.input.messages": dumps(inputs),
            "gen_ai.output.messages": dumps(outputs),
        }
        index = self.plan.add(f"chat {self.model}", self.me, attrs, rng.uniform(1.5, 6.0),
                              error=error)
        self.plan.sample("first_chat", index)
        self.plan.samples["last_chat"] = index
        return index

    def ask(self, calls: list[tuple[str, str, dict]]) -> int:
        """A turn asking for tool calls (id, tool, arguments)."""
        parts = [{"type": "tool_call", "id": c, "name": n, "arguments": a} for c, n, a in calls]
        return self.chat([{"role": "assistant", "parts": parts, "finish_reason": "tool_call"}])

    def remember(self, calls: list[tuple[str, str, dict]], answers: list[tuple[str, dict]]) -> None:
        parts = [{"type": "tool_call", "id": c, "name": n, "arguments": a} for c, n, a in calls]
        self.last_turn = [{"role": "assistant", "parts": parts},
                          *[answered(c, r) for c, r in answers]]

    def run_tool(self, name: str, call: str, args: dict, result: dict, read: list[str],
                 written: list[str], *, error: str | None = None,
                 links: list[tuple[int, str]] | None = None) -> int:
        attrs = tool(self.who, name, call, args, None if error else result, read=read,
                     written=written)
        if error:
            attrs["error.type"] = error
        index = self.plan.add(f"execute_tool {name}", self.me, attrs, self.rng.uniform(0.3, 2.0),
                              error=error, links=links)
        if error:
            self.plan.sample("error", index)
        return index

    def approve(self, name: str, call: str, state: str) -> int:
        self.plan.approvals += 1
        approver = self.rng.choice(["dana", "frank", "gita"]) if state in ("granted", "denied") else None
        attrs = approval(self.who, name, call, state, f"apr-b{self.plan.run:02d}-{self.plan.approvals}",
                         approver)
        index = self.plan.add(f"approval {name}", self.me, attrs, self.rng.uniform(3.0, 30.0))
        self.plan.sample(f"approval_{state}", index)
        if state == "granted":
            self.plan.sample("approval", index)
        return index

    # -- turn kinds -------------------------------------------------------------------------

    def prologue(self) -> int:
        """The planner's first turns, the same in every run: a retry, the large payload and an
        approved deployment. Returns the spans it made (8)."""
        rng = self.rng
        first = len(self.plan.spans)
        # 1: a tool call that times out and is retried.
        call = self.plan.call_id()
        args, result, read, written = tool_call(rng, "web_search")
        self.ask([(call, "web_search", args)])
        failed = self.run_tool("web_search", call, args, result, read, written, error="timeout")
        retry = self.run_tool("web_search", call, args, result, read, written,
                              links=[(failed, "retry_of")])
        self.plan.sample("retry", retry)
        self.remember([(call, "web_search", args)], [(call, result)])
        # 2: the one large tool result; the next turn sees only a preview of it.
        call = self.plan.call_id()
        args = {"table": "invoices", "format": "json"}
        result = large_payload(rng)
        self.ask([(call, "export_table", args)])
        self.plan.large = self.run_tool("export_table", call, args, result,
                                        ["postgres://db/warehouse/invoices"],
                                        ["s3://exports/invoices.json"])
        self.plan.large_bytes = len(dumps(result))
        preview = {"exported_rows": result["exported_rows"], "rows": result["rows"][:3],
                   "truncated": True}
        self.remember([(call, "export_table", args)], [(call, preview)])
        # 3: a deployment that needs an approval, granted.
        call = self.plan.call_id()
        args, result, read, written = tool_call(rng, "deploy_change")
        self.ask([(call, "deploy_change", args)])
        self.approve("deploy_change", call, "granted")
        self.plan.sample("approved_tool", self.run_tool("deploy_change", call, args, result, read,
                                                        written))
        self.remember([(call, "deploy_change", args)], [(call, result)])
        return len(self.plan.spans) - first

    def handoff(self, sub: str, depth: int, share: int) -> None:
        """A turn handing off to sub-agent `sub`, whose run takes `share` spans."""
        call = self.plan.call_id()
        args = {"reason": f"{sub}: take over part of the task", "depth": depth}
        self.ask([(call, f"transfer_to_{sub}", args)])
        attrs = {**tool(self.who, f"transfer_to_{sub}", call, args, {"assistant": sub}),
                 "agent_trail.operation": "handoff"}
        # The transfer span ends soon; the sub-agent it starts runs on (as in lineage_runs.py).
        transfer = self.plan.add(f"execute_tool transfer_to_{sub}", self.me, attrs, None)
        self.plan.sample("handoff", transfer)
        self.plan.spans[transfer].end = self.plan.spans[transfer].start + 0.5
        self.plan.agent(sub, depth, transfer, share, f"Take over from the "
                        f"{self.who['gen_ai.agent.name']} agent: {args['reason']}.")
        self.remember([(call, f"transfer_to_{sub}", args)], [(call, {"assistant": sub, "done": True})])

    def note(self) -> None:
        """A turn with a text answer only (a progress note)."""
        self.chat([{**text("assistant", "Progress: still working on it."), "finish_reason": "stop"}])
        self.last_turn = []

    def reply(self) -> None:
        self.chat([{**text("assistant", f"Done: {self.task}"), "finish_reason": "stop"}])

    def tool_turn(self, free: int) -> int:
        """A turn asking for 1 to 3 tool calls, making at most `free` (at least 2) spans."""
        rng = self.rng
        left = free - 1  # the chat span
        wanted = rng.choices([1, 2, 3], [70, 20, 10])[0]
        plan: list[tuple[str, str, str | None]] = []  # (tool, approval state, error)
        for _ in range(wanted):
            if left < 1:
                break
            roll = rng.random()
            if roll < 0.005 and left >= 2:
                state = rng.choices(["granted", "denied", "requested", "timed_out"], [5, 2, 1, 1])[0]
                cost = 2 if state in ("granted", "timed_out") else 1
                plan.append((rng.choice(SENSITIVE), state, None))
            elif roll < 0.0075 and left >= 2:  # a failure, retried
                cost = 2
                plan.append((rng.choices(PLAIN_TOOLS, PLAIN_WEIGHTS)[0], "", "retry"))
            elif roll < 0.0085:  # a failure, not retried
                cost = 1
                plan.append((rng.choices(PLAIN_TOOLS, PLAIN_WEIGHTS)[0], "", "final"))
            else:
                cost = 1
                plan.append((rng.choices(PLAIN_TOOLS, PLAIN_WEIGHTS)[0], "", None))
            left -= cost
        calls = []
        for name, _, _ in plan:
            args, result, read, written = tool_call(rng, name)
            calls.append((self.plan.call_id(), name, args, result, read, written))
        start = len(self.plan.spans)
        self.ask([(c, n, a) for c, n, a, *_ in calls])
        answers = []
        for (call, name, args, result, read, written), (_, state, error) in zip(calls, plan):
            if state:
                self.approve(name, call, state)
                if state in ("denied", "requested"):
                    answers.append((call, {"error": f"approval {state}"}))
                    continue
            if error == "retry":
                failed = self.run_tool(name, call, args, result, read, written,
                                       error=rng.choice(["timeout", "http_503", "rate_limited"]))
                self.plan.sample("retry", self.run_tool(name, call, args, result, read, written,
                                                        links=[(failed, "retry_of")]))
                answers.append((call, result))
            elif error == "final":
                self.run_tool(name, call, args, result, read, written, error="permission_denied")
                answers.append((call, {"error": "permission_denied"}))
            else:
                self.run_tool(name, call, args, result, read, written)
                answers.append((call, result))
        self.remember([(c, n, a) for c, n, a, *_ in calls], answers)
        return len(self.plan.spans) - start


def scale(plan: Plan) -> list[tuple[int, int]]:
    """Each span's (start, end) in ms after BASE: the root over RUN_LENGTH_MS from 09:05."""
    root = plan.spans[0]
    factor = RUN_LENGTH_MS / (root.end - root.start)
    times = [(ROOT_START_MS + round((s.start - root.start) * factor),
              ROOT_START_MS + round((s.end - root.start) * factor)) for s in plan.spans]
    starts = [start for start, _ in times]
    if any(b <= a for a, b in zip(starts, starts[1:])):
        raise AssertionError("two spans start at the same millisecond")
    return times


def export(plan: Plan, endpoint: str, tenant: str | None) -> bool:
    times = scale(plan)
    ids = QueuedIdGenerator()
    unlimited = SpanLimits.UNSET
    limits = SpanLimits(max_attributes=128, max_events=128, max_links=128,
                        max_attribute_length=unlimited, max_span_attribute_length=unlimited)
    exporter = CheckedExporter(endpoint=endpoint,
                               headers={TENANT_HEADER: tenant} if tenant else None, timeout=30)
    provider = TracerProvider(sampler=ALWAYS_ON, resource=RESOURCE, id_generator=ids,
                              span_limits=limits)
    provider.add_span_processor(BatchSpanProcessor(
        exporter, max_queue_size=max(len(plan.spans), BATCH), max_export_batch_size=BATCH,
        schedule_delay_millis=60_000))
    tracer = provider.get_tracer("cairn.big_run", "1.0.0")
    trace_id = int(trace_id_hex(plan.run), 16)
    flags = TraceFlags(TraceFlags.SAMPLED)

    def context_of(index: int) -> SpanContext:
        return SpanContext(trace_id, int(span_id_hex(plan.run, index), 16), False, flags)

    for index, (span, (start, end)) in enumerate(zip(plan.spans, times)):
        if span.parent is None:
            ids.trace_ids.append(trace_id)
            context = Context()
        else:
            context = trace.set_span_in_context(NonRecordingSpan(context_of(span.parent)))
        ids.span_ids.append(int(span_id_hex(plan.run, index), 16))
        is_model_call = span.attributes.get("gen_ai.operation.name") == "chat"
        sdk_span = tracer.start_span(
            span.name, context=context,
            kind=SpanKind.CLIENT if is_model_call else SpanKind.INTERNAL,
            attributes=span.attributes,
            links=[Link(context_of(target), {"agent_trail.link.kind": kind})
                   for target, kind in span.links],
            start_time=BASE_NS + start * 1_000_000)
        if ids.trace_ids or ids.span_ids:
            raise RuntimeError(f"span {index}: the SDK did not use the queued ids")
        sdk_span.set_status(Status(StatusCode.ERROR, span.error) if span.error
                            else Status(StatusCode.OK))
        sdk_span.end(end_time=BASE_NS + end * 1_000_000)

    flushed = provider.force_flush(timeout_millis=120_000)
    provider.shutdown()
    if not flushed or exporter.failed or exporter.sent != len(plan.spans):
        print(f"export failed: flushed={flushed}, {exporter.failed} of {exporter.sent} sent spans "
              f"failed, {len(plan.spans)} made", file=sys.stderr)
        return False
    return True


def trace_id_hex(run: int) -> str:
    return f"b{run:02d}".rjust(32, "0")


def span_id_hex(run: int, index: int) -> str:
    return f"00b{run:02d}{index + 1:011d}"


def summary(plan: Plan) -> dict:
    times = scale(plan)
    spans = plan.spans

    def iso(ms: int) -> str:
        return datetime.fromtimestamp((BASE_NS // 1_000_000 + ms) / 1000, timezone.utc) \
            .isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def op(s: Planned) -> str:
        return s.attributes.get("gen_ai.operation.name") or s.attributes.get("agent_trail.operation", "")

    assert plan.large is not None
    return {
        "trace_id": trace_id_hex(plan.run),
        "spans": len(spans),
        "large_payload_span": span_id_hex(plan.run, plan.large),
        "large_payload_bytes": plan.large_bytes,
        "sample_spans": {k: span_id_hex(plan.run, v) for k, v in sorted(plan.samples.items())},
        "counts": {
            "agents": sum(op(s) == "invoke_agent" for s in spans),
            "chats": sum(op(s) == "chat" for s in spans),
            "tools": sum(op(s) == "execute_tool" for s in spans),
            "handoffs": sum(s.attributes.get("agent_trail.operation") == "handoff" for s in spans),
            "approvals": sum(op(s) == "approval" for s in spans),
            "errors": sum(s.error is not None for s in spans),
        },
        "max_agent_depth": plan.max_agent_depth,
        "max_span_depth": max(s.depth for s in spans),
        "start": iso(times[0][0]),
        "end": iso(times[0][1]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True,
                        help="OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces")
    parser.add_argument("--tenant", help=f"sent as the {TENANT_HEADER} header")
    parser.add_argument("--spans", type=int, default=10_000,
                        help=f"spans in the run (default 10000, at least {MIN_SPANS})")
    parser.add_argument("--run", type=int, default=1, choices=range(1, 100), metavar="1-99",
                        help="run number: the trace id and the random shape (default 1)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the summary without sending anything")
    args = parser.parse_args()
    if args.spans < MIN_SPANS:
        parser.error(f"--spans must be at least {MIN_SPANS}")

    plan = Plan(args.spans, args.run)
    if not args.dry_run and not export(plan, args.endpoint, args.tenant):
        return 1
    print(json.dumps(summary(plan)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
