#!/usr/bin/env python3
"""Re-run a recorded agent run offline, with its model, tools and approvals served by Cairn.

    replay_offline.py (--bundle FILE | --cairn URL --run TRACE_ID) --trace-id 32HEX
                      --endpoint http://HOST:4318/v1/traces [--tenant T]

`run_agent` is an ordinary tool-calling agent loop. Here its model, tools and human approvals are
served from a replay bundle (GET /api/v1/runs/{trace_id}/replay/bundle, or a saved copy) and it is
traced as usual, so the re-run is a new trace (--trace-id) to compare with the recorded one:
    GET /api/v1/diff?left=<recorded trace id>&right=<--trace-id>   ->   "identical": true
A step the bundle cannot serve is a divergence: it is reported on stderr, the steps before it are
exported, and the exit status is 3. Once every recorded step is served, a request for one more
model turn ends the re-run where the recorded run ended. Exit status 1: no bundle or the export
failed; 2: bad arguments. On success stdout gets {"trace_id": "<32 hex>", "steps": <n>}, n the
decision steps (model calls, tool calls, approvals) exported.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict, deque, namedtuple
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

TENANT_HEADER = "X-Scope-OrgID"
# The agent: the triage agent of tests/python/lineage_runs.py. Put yours here.
SERVICE, AGENT = "support-bot", "triage"
INSTRUCTIONS = "You are the triage agent of the shop's support desk. Use tools; refunds need approval."

tracer = trace.get_tracer("cairn.examples.replay_offline")


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def text(role: str, content: str) -> dict:
    return {"role": role, "parts": [{"type": "text", "content": content}]}


def record(name: str, started: int, attributes: dict, *, kind=SpanKind.INTERNAL,
           error: str | None = None) -> None:
    """Records a step that has just happened as a span from `started` (ns) to now, so a step
    the replay could not serve leaves no span."""
    span = tracer.start_span(name, kind=kind, start_time=started,
                             attributes={k: v for k, v in attributes.items() if v is not None})
    span.set_status(Status(StatusCode.ERROR, error) if error else Status(StatusCode.OK))
    span.end()


# --- the agent -----------------------------------------------------------------------------


class ToolError(Exception):
    """A tool failed; the model is told so."""


def run_agent(model, tools, approvals, user_message: str) -> str:
    """Asks the model, runs the tools it calls (approved first where the policy says so), and
    loops until the model answers without tool calls. Returns that answer."""
    messages = [text("system", INSTRUCTIONS), text("user", user_message)]
    while True:
        started = time.time_ns()
        reply = model.complete(AGENT, messages)
        record(f"chat {reply.request_model}", started, {
            "gen_ai.operation.name": "chat",
            "gen_ai.agent.name": AGENT,
            "gen_ai.request.model": reply.request_model,
            "gen_ai.response.model": reply.response_model,
            "gen_ai.response.finish_reasons": [m.get("finish_reason", "") for m in reply.messages],
            "gen_ai.system_instructions": dumps([{"type": "text", "content": INSTRUCTIONS}]),
            "gen_ai.input.messages": dumps(messages),
            "gen_ai.output.messages": dumps(reply.messages),
        }, kind=SpanKind.CLIENT)
        # An output message carries a finish_reason; as input to the next turn it does not.
        messages += [{k: v for k, v in m.items() if k != "finish_reason"} for m in reply.messages]
        calls = [p for m in reply.messages for p in m["parts"] if p["type"] == "tool_call"]
        if not calls:
            return "".join(p.get("content", "") for m in reply.messages for p in m["parts"])
        for call in calls:
            response = run_tool(tools, approvals, call)
            messages.append({"role": "tool", "parts": [
                {"type": "tool_call_response", "id": call["id"], "response": response}]})


def run_tool(tools, approvals, call: dict):
    """Runs one tool call, after its approval where needed; returns what the model is told."""
    name, call_id, args = call["name"], call["id"], call["arguments"]
    if isinstance(args, str):  # some providers send arguments as JSON text
        args = json.loads(args)
    who = {"gen_ai.agent.name": AGENT, "gen_ai.tool.name": name, "gen_ai.tool.call.id": call_id}
    if approvals.required(name):
        started = time.time_ns()
        decision = approvals.decide(name, call_id)
        record(f"approval {name}", started, {
            "agent_trail.operation": "approval", **who,
            "agent_trail.approval.state": decision.state,
            "agent_trail.approval.approver.id": decision.approver})
        if decision.state != "granted":
            return {"error": f"approval {decision.state}"}
    attributes = {"gen_ai.operation.name": "execute_tool", **who, "gen_ai.tool.type": "function",
                  "gen_ai.tool.call.arguments": dumps(args)}
    started = time.time_ns()
    try:
        result = tools.call(name, args)
    except ToolError as error:
        record(f"execute_tool {name}", started, attributes, error=str(error))
        return {"error": str(error)}
    record(f"execute_tool {name}", started,
           {**attributes, "gen_ai.tool.call.result": None if result is None else dumps(result)})
    return result


# --- serving it from a replay bundle -------------------------------------------------------


class Divergence(Exception):
    """The re-run asked for something the recorded run did not do."""


class EndOfRecording(Exception):
    """The re-run asked for another model turn after every recorded step was served."""


class Recording:
    """A bundle's entries queued by key, so entries with equal keys are served in recorded order."""

    KINDS = ("model_calls", "tool_results", "approvals")

    def __init__(self, bundle: dict):
        if bundle.get("format") != "cairn.replay.bundle/1":
            raise SystemExit(f"not a replay bundle: format {bundle.get('format')!r}")
        self.bundle, self.queues = bundle, {kind: defaultdict(deque) for kind in self.KINDS}
        for kind in self.KINDS:
            for entry in bundle.get(kind) or []:
                self.queues[kind][entry["key"]].append(entry)

    def take(self, kind: str, key: str) -> dict:
        if self.queues[kind].get(key):
            return self.queues[kind][key].popleft()
        if kind == "model_calls" and not self.unserved():
            raise EndOfRecording(key)
        unserved = f"; not yet served: {self.unserved()}" if self.unserved() else ""
        raise Divergence(f"no recorded {kind} entry {key!r}{unserved}")

    def unserved(self) -> list[str]:
        return [key for queues in self.queues.values() for key, queue in queues.items() for _ in queue]


Completion = namedtuple("Completion", "request_model response_model messages")
Decision = namedtuple("Decision", "state approver")  # state: granted, denied, timed_out, …


class BundleModel:
    """Answers an agent's n-th model call with the recorded `<agent>#<n>`."""

    def __init__(self, recording: Recording):
        self.recording, self.turns = recording, Counter()

    def complete(self, agent: str, messages: list[dict]) -> Completion:
        self.turns[agent] += 1
        key = f"{agent}#{self.turns[agent]}"
        call = self.recording.take("model_calls", key)
        if messages != call["input_messages"]:  # served anyway; the diff shows how
            print(f"replay: the input of model call {key} differs from the recording", file=sys.stderr)
        return Completion(call["request_model"], call.get("response_model"), call["output_messages"])


class BundleTools:
    """Returns the recorded result of `<tool>:<canonical JSON of the arguments>`."""

    def __init__(self, recording: Recording):
        self.recording = recording

    def call(self, name: str, args) -> object:
        canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        entry = self.recording.take("tool_results", f"{name}:{canonical}")
        if entry["status"] == "error":
            raise ToolError(entry.get("error") or "tool error")
        return entry["result"]


class BundleApprovals:
    """Recorded human decisions by `<tool>:<call id>`. The tools that need one: those the
    recorded policy document names, or, with no document, those with a recorded decision."""

    def __init__(self, recording: Recording):
        self.recording = recording
        document = (recording.bundle.get("policy") or {}).get("document")
        document = json.loads(document) if isinstance(document, str) else document
        self.gated = set(document["requires_approval"] if document and "requires_approval" in document
                         else (a["tool"] for a in recording.bundle["approvals"]))

    def required(self, tool: str) -> bool:
        return tool in self.gated

    def decide(self, tool: str, call_id: str) -> Decision:
        entry = self.recording.take("approvals", f"{tool}:{call_id}")
        return Decision(entry["state"], entry.get("approver"))


# --- main ----------------------------------------------------------------------------------


class FixedTraceId(RandomIdGenerator):
    """Gives the root span the trace id asked for; span ids stay random."""

    def __init__(self, trace_id: int):
        self.trace_id = trace_id

    def generate_trace_id(self) -> int:
        return self.trace_id


class CheckedExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP protobuf exporter, counting what it sent and what failed."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sent = self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        self.sent += len(spans)
        self.failed += 0 if result is SpanExportResult.SUCCESS else len(spans)
        return result


def load_bundle(args) -> dict:
    if args.bundle:
        with open(args.bundle, encoding="utf-8") as file:
            return json.load(file)
    url = f"{args.cairn.rstrip('/')}/api/v1/runs/{args.run}/replay/bundle"
    headers = {TENANT_HEADER: args.tenant} if args.tenant else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return json.load(response)
    except urllib.error.URLError as error:
        raise SystemExit(f"cannot fetch {url}: {error}") from error


def recorded_user_message(bundle: dict) -> str:
    """The (first) user message of the agent's first recorded model call."""
    first = next((c for c in bundle["model_calls"] if c["agent"] == AGENT), {})
    users = [m for m in first.get("input_messages") or [] if m.get("role") == "user"]
    if not users:
        raise SystemExit(f"the bundle has no user message for agent {AGENT!r}")
    return "".join(p.get("content", "") for p in users[0]["parts"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bundle", help="a replay bundle saved as JSON")
    source.add_argument("--cairn", help="Cairn's query API, e.g. http://127.0.0.1:3200 (with --run)")
    parser.add_argument("--run", help="trace id of the recorded run, whose bundle is fetched")
    parser.add_argument("--trace-id", required=True, help="trace id of the re-run (32 hex digits)")
    parser.add_argument("--endpoint", required=True, help="OTLP/HTTP traces URL")
    parser.add_argument("--tenant", help=f"sent as the {TENANT_HEADER} header")
    args = parser.parse_args()
    if args.cairn and not args.run:
        parser.error("--cairn needs --run")
    args.trace_id = args.trace_id.lower()
    if not re.fullmatch(r"[0-9a-f]{32}", args.trace_id) or not int(args.trace_id, 16):
        parser.error("--trace-id: 32 hex digits, not all zero")

    recording = Recording(load_bundle(args))
    policy = recording.bundle.get("policy") or {}  # the policy in force when it was recorded
    resource = {"service.name": SERVICE, "agent_trail.policy.snapshot.id": policy.get("policy_ref"),
                "agent_trail.policy.snapshot.hash": policy.get("policy_hash")}
    exporter = CheckedExporter(endpoint=args.endpoint, timeout=10,
                               headers={TENANT_HEADER: args.tenant} if args.tenant else None)
    provider = TracerProvider(resource=Resource({k: v for k, v in resource.items() if v}),
                              id_generator=FixedTraceId(int(args.trace_id, 16)))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    diverged = None
    with tracer.start_as_current_span(
            f"invoke_agent {AGENT}", context=Context(), record_exception=False,
            set_status_on_exception=False,
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": AGENT}) as root:
        try:
            run_agent(BundleModel(recording), BundleTools(recording), BundleApprovals(recording),
                      recorded_user_message(recording.bundle))
            if recording.unserved():
                raise Divergence(f"the re-run finished early; not served: {recording.unserved()}")
        except EndOfRecording as end:
            print(f"replay: the recording ends before model call {end}; stopping there", file=sys.stderr)
        except Divergence as error:
            diverged = error
        root.set_status(Status(StatusCode.ERROR, f"replay diverged: {diverged}") if diverged
                        else Status(StatusCode.OK))

    flushed = provider.force_flush(30_000)
    provider.shutdown()
    if not flushed or exporter.failed:
        print(f"export failed: flushed={flushed}, {exporter.failed} of {exporter.sent} spans failed",
              file=sys.stderr)
        return 1
    if diverged:
        print(f"replay diverged: {diverged}; the steps before it are in trace {args.trace_id}",
              file=sys.stderr)
        return 3
    print(json.dumps({"trace_id": args.trace_id, "steps": exporter.sent - 1}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
