#!/usr/bin/env python3
"""Send deterministic multi-agent "agent trail" fixtures to an OTLP/HTTP endpoint.

Usage:
    lineage_runs.py --endpoint http://HOST:PORT/v1/traces [--tenant T]

Five traces of a support bot, made with the OpenTelemetry Python SDK and exported with its
OTLP/HTTP protobuf exporter (tenant in the X-Scope-OrgID header). Every trace id, span id,
parent, link, attribute and timestamp is fixed. Times below are seconds after
BASE = 2026-11-20T10:00:00Z. After a successful export one JSON object goes to stdout:
    {"traces": {"a01": "<32 hex>", ...}, "spans": {"a01.1": "<16 hex>", "a01.8b": ..., ...}}
Exits 1 if any export fails.

Span ids are 000000000000a<trace><span>, e.g. a01.8b is 000000000000a18b. a05 keeps the numbers
of the a01 spans it mirrors (it has no a05.3), so the two runs line up by label.

| trace | trace id                         | service, policy           | story                        |
|-------|----------------------------------|---------------------------|------------------------------|
| a01   | 00000000000000000000000000000a01 | support-bot, policy-v1    | run 1 of triage, conv-42     |
| a02   | 00000000000000000000000000000a02 | billing-worker, policy-v1 | async ledger post            |
| a03   | 00000000000000000000000000000a03 | support-bot, policy-v1    | conv-42 resumed (human)      |
| a04   | 00000000000000000000000000000a04 | support-bot, policy-v2    | run 2 of triage, conv-77     |
| a05   | 00000000000000000000000000000a05 | support-bot, policy-v1    | re-run of a01, conv-42-rerun |

| span   | span id          | parent | name                              | time        | notes                   |
|--------|------------------|--------|-----------------------------------|-------------|-------------------------|
| a01.1  | 000000000000a101 | -      | invoke_agent triage               | 0-60        | user alice-customer     |
| a01.2  | 000000000000a102 | a01.1  | chat gpt-4o                       | 1-3         | asks call_lookup        |
| a01.3  | 000000000000a103 | a01.1  | execute_tool lookup_order         | 3-4         | ERROR timeout           |
| a01.4  | 000000000000a104 | a01.1  | execute_tool lookup_order         | 4-5         | retry_of -> a01.3       |
| a01.5  | 000000000000a105 | a01.1  | chat gpt-4o                       | 5-7         | asks call_refund (40)   |
| a01.6  | 000000000000a106 | a01.1  | approval issue_refund             | 7-20        | granted, bob, apr-1     |
| a01.7  | 000000000000a107 | a01.1  | execute_tool issue_refund         | 20-21       | call_refund             |
| a01.8  | 000000000000a108 | a01.1  | chat gpt-4o                       | 21-23       | asks call_handoff       |
| a01.8b | 000000000000a18b | a01.1  | execute_tool transfer_to_notifier | 23-23.5     | handoff                 |
| a01.9  | 000000000000a109 | a01.8b | invoke_agent notifier             | 23.2-40     | sub-agent notifier-1    |
| a01.10 | 000000000000a110 | a01.9  | chat gpt-4o-mini                  | 24-25       | asks call_email         |
| a01.11 | 000000000000a111 | a01.9  | execute_tool send_email           | 25-26       | call_email              |
| a01.12 | 000000000000a112 | a01.1  | approval delete_customer          | 30-31       | requested, apr-2        |
| a02.1  | 000000000000a201 | -      | invoke_agent ledger               | 45-50       | async_handoff -> a01.7  |
| a02.2  | 000000000000a202 | a02.1  | execute_tool post_ledger          | 46-47       | call_ledger             |
| a03.1  | 000000000000a301 | -      | invoke_agent triage               | 3600-3610   | resumes -> a01.12       |
| a03.2  | 000000000000a302 | a03.1  | approval delete_customer          | 3601-3602   | denied, carol, apr-2    |
| a03.3  | 000000000000a303 | a03.1  | chat gpt-4o                       | 3603-3605   | text reply only         |
| a04.1  | 000000000000a401 | -      | invoke_agent triage               | 7200-7230   |                         |
| a04.2  | 000000000000a402 | a04.1  | chat gpt-4o                       | 7201-7203   | asks call_refund2       |
| a04.3  | 000000000000a403 | a04.1  | execute_tool issue_refund         | 7203-7204   | no approval (bypass)    |
| a04.4  | 000000000000a404 | a04.1  | chat gpt-4o                       | 7204-7206   | asks call_email2        |
| a04.5  | 000000000000a405 | a04.1  | approval send_email               | 7206-7216   | timed_out, apr-3        |
| a04.6  | 000000000000a406 | a04.1  | execute_tool send_email           | 7216-7217   | runs anyway (bypass)    |
| a05.1  | 000000000000a501 | -      | invoke_agent triage               | 10800-10830 |                         |
| a05.2  | 000000000000a502 | a05.1  | chat gpt-4o                       | 10801-10803 | same bytes as a01.2     |
| a05.4  | 000000000000a504 | a05.1  | execute_tool lookup_order         | 10803-10804 | same result as a01.4    |
| a05.5  | 000000000000a505 | a05.1  | chat gpt-4o                       | 10804-10806 | asks call_refund (400)  |
| a05.6  | 000000000000a506 | a05.1  | approval issue_refund             | 10806-10815 | granted, bob, apr-4     |
| a05.7  | 000000000000a507 | a05.1  | execute_tool issue_refund         | 10815-10816 | call_refund             |
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timezone

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

TENANT_HEADER = "X-Scope-OrgID"
BASE_NS = int(datetime(2026, 11, 20, 10, tzinfo=timezone.utc).timestamp()) * 1_000_000_000


def at(seconds: float) -> int:
    """Nanoseconds since the epoch, `seconds` after BASE (millisecond resolution)."""
    return BASE_NS + round(seconds * 1000) * 1_000_000


def dumps(value) -> str:
    """The one JSON text form of every payload, so equal values give equal bytes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def trace_id_hex(label: str) -> str:  # "a01" or "a01.3" -> 00000000000000000000000000000a01
    return label.split(".")[0].rjust(32, "0")


def span_id_hex(label: str) -> str:  # "a01.8b" -> 000000000000a18b
    trace_label, span_no = label.split(".")
    return f"a{int(trace_label[1:])}{span_no.rjust(2, '0')}".rjust(16, "0")


# --- resources -----------------------------------------------------------------------------


def policy(version: str, requires_approval: list[str]) -> dict:
    return {
        "agent_trail.policy.snapshot.id": f"policy-{version}",
        "agent_trail.policy.snapshot.hash": f"sha256:{version}",
        "agent_trail.policy.document": dumps(
            {"id": f"policy-{version}", "requires_approval": requires_approval}
        ),
    }


SUPPORT_BOT = {"service.name": "support-bot", "agent_trail.sandbox.id": "sbx-1",
               "k8s.namespace.name": "agents", "k8s.pod.name": "support-bot-7d9f"}
POLICY_V1 = policy("v1", ["issue_refund", "delete_customer"])
POLICY_V2 = policy("v2", ["issue_refund", "delete_customer", "send_email"])
# Resource(...), not Resource.create(...): no SDK version or OTEL_RESOURCE_ATTRIBUTES leak in.
RESOURCES = {
    "support-bot/v1": Resource({**SUPPORT_BOT, **POLICY_V1}),
    "billing-worker/v1": Resource(
        {"service.name": "billing-worker", "agent_trail.sandbox.id": "sbx-2", **POLICY_V1}
    ),
    "support-bot/v2": Resource({**SUPPORT_BOT, **POLICY_V2}),
}
TRACE_RESOURCES = {"a02": "billing-worker/v1", "a04": "support-bot/v2"}  # others: support-bot/v1


# --- ids, providers, export ----------------------------------------------------------------


class QueuedIdGenerator(IdGenerator):
    """Hands out the ids queued for the next span; an empty queue is a bug and raises."""

    def __init__(self) -> None:
        self.trace_ids: deque[int] = deque()
        self.span_ids: deque[int] = deque()

    def generate_trace_id(self) -> int:
        return self.trace_ids.popleft()

    def generate_span_id(self) -> int:
        return self.span_ids.popleft()


class CheckedExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP protobuf exporter, counting what it sent and what failed."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sent = 0
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = super().export(spans)
        except Exception as error:  # an exporter should not raise; count it as a failure
            print(f"exporter raised: {error!r}", file=sys.stderr)
            result = SpanExportResult.FAILURE
        self.sent += len(spans)
        if result is not SpanExportResult.SUCCESS:
            self.failed += len(spans)
        return result


class Fixture:
    """Emits spans with fixed ids and times, remembering each by label for parents and links."""

    def __init__(self, endpoint: str, tenant: str | None):
        self.ids = QueuedIdGenerator()
        self.exporters: list[CheckedExporter] = []
        self.providers: dict[str, TracerProvider] = {}
        self.spans: dict[str, trace.Span] = {}
        unlimited = SpanLimits.UNSET  # explicit limits, so OTEL_*_LIMIT variables change nothing
        limits = SpanLimits(max_attributes=128, max_events=128, max_links=128,
                            max_attribute_length=unlimited, max_span_attribute_length=unlimited)
        for key, resource in RESOURCES.items():
            headers = {TENANT_HEADER: tenant} if tenant else None
            exporter = CheckedExporter(endpoint=endpoint, headers=headers, timeout=10)
            provider = TracerProvider(sampler=ALWAYS_ON, resource=resource,
                                      id_generator=self.ids, span_limits=limits)
            # A long delay: each provider's spans leave in one request, at force_flush.
            provider.add_span_processor(
                BatchSpanProcessor(exporter, schedule_delay_millis=60_000, max_export_batch_size=512)
            )
            self.exporters.append(exporter)
            self.providers[key] = provider

    def span(self, label: str, name: str, start: float, end: float, attributes: dict, *,
             parent: str | None = None, links: Sequence[tuple[str, str]] = (),
             error: str | None = None) -> None:
        """Start and end span `label` (a root unless `parent` is given).

        `links` are (target label, value of the link attribute agent_trail.link.kind)."""
        trace_label = label.split(".")[0]
        if parent is None:
            self.ids.trace_ids.append(int(trace_id_hex(label), 16))
            context = Context()  # an explicit empty context: a root, whatever is current
        else:
            context = trace.set_span_in_context(self.spans[parent])
        self.ids.span_ids.append(int(span_id_hex(label), 16))
        resource = TRACE_RESOURCES.get(trace_label, "support-bot/v1")
        tracer = self.providers[resource].get_tracer("cairn.lineage_runs", "1.0.0")
        is_model_call = attributes.get("gen_ai.operation.name") == "chat"
        span = tracer.start_span(
            name,
            context=context,
            kind=SpanKind.CLIENT if is_model_call else SpanKind.INTERNAL,
            attributes=attributes,
            links=[Link(self.spans[target].get_span_context(), {"agent_trail.link.kind": kind})
                   for target, kind in links],
            start_time=at(start),
        )
        got = span.get_span_context()
        if (self.ids.trace_ids or self.ids.span_ids
                or format(got.trace_id, "032x") != trace_id_hex(label)
                or format(got.span_id, "016x") != span_id_hex(label)):
            raise RuntimeError(f"{label}: the SDK did not use the queued ids")
        span.set_status(Status(StatusCode.ERROR, error) if error else Status(StatusCode.OK))
        span.end(end_time=at(end))
        self.spans[label] = span

    def finish(self) -> bool:
        """Flush and shut down every provider; True if every span was exported."""
        flushed = all([p.force_flush(timeout_millis=30_000) for p in self.providers.values()])
        for provider in self.providers.values():
            provider.shutdown()
        sent = sum(e.sent for e in self.exporters)
        failed = sum(e.failed for e in self.exporters)
        if not flushed or failed or sent != len(self.spans):
            print(f"export failed: flushed={flushed}, {failed} of {sent} sent spans failed, "
                  f"{len(self.spans)} made", file=sys.stderr)
            return False
        return True

    def ids_json(self) -> dict:
        """{"traces": {"a01": id, …}, "spans": {"a01.1": id, …}}, read back from the spans."""
        traces: dict[str, str] = {}
        spans: dict[str, str] = {}
        for label, span in self.spans.items():
            got = span.get_span_context()
            traces.setdefault(label.split(".")[0], format(got.trace_id, "032x"))
            spans[label] = format(got.span_id, "016x")
        return {"traces": traces, "spans": spans}


# --- GenAI attributes ----------------------------------------------------------------------

GPT4O, MINI = "gpt-4o", "gpt-4o-mini"
RESPONSE_MODELS = {GPT4O: "gpt-4o-2024-08-06", MINI: "gpt-4o-mini-2024-07-18"}
TRIAGE_PROMPT = "You are the triage agent of the shop's support desk. Use tools; refunds need approval."
NOTIFIER_PROMPT = "You are the notifier agent. Tell customers what happened to their request."
ORDERS, REFUNDS = "postgres://db/shop/orders", "postgres://db/shop/refunds"


def text(role: str, content: str) -> dict:
    return {"role": role, "parts": [{"type": "text", "content": content}]}


def asked(call_id: str, tool_name: str, arguments: dict) -> dict:
    """An assistant message asking for one tool call, as replayed in a later turn's input."""
    part = {"type": "tool_call", "id": call_id, "name": tool_name, "arguments": arguments}
    return {"role": "assistant", "parts": [part]}


def asks(call_id: str, tool_name: str, arguments: dict) -> dict:
    """The same as a model's output message, which carries a finish_reason."""
    return {**asked(call_id, tool_name, arguments), "finish_reason": "tool_call"}


def answered(call_id: str, result: dict) -> dict:
    part = {"type": "tool_call_response", "id": call_id, "response": result}
    return {"role": "tool", "parts": [part]}


def agent(name: str, agent_id: str, conversation: str | None) -> dict:
    """Who acts: stamped on every span of the agent's run."""
    who = {"gen_ai.agent.name": name, "gen_ai.agent.id": agent_id}
    return {**who, "gen_ai.conversation.id": conversation} if conversation else who


def invoke_agent(who: dict, user: str | None = None) -> dict:
    attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "openai", **who}
    return {**attrs, "agent_trail.user.id": user} if user else attrs


def chat(who: dict, inputs: list, outputs: list, tokens: tuple[int, int], *,
         model: str = GPT4O, prompt: str = TRIAGE_PROMPT) -> dict:
    """A model turn: the system prompt, then `inputs`, in; `outputs` out."""
    return {
        "gen_ai.operation.name": "chat",
        **who,
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": RESPONSE_MODELS[model],
        "gen_ai.response.finish_reasons": [m["finish_reason"] for m in outputs],
        "gen_ai.usage.input_tokens": tokens[0],
        "gen_ai.usage.output_tokens": tokens[1],
        "gen_ai.system_instructions": dumps([{"type": "text", "content": prompt}]),
        "gen_ai.input.messages": dumps([text("system", prompt), *inputs]),
        "gen_ai.output.messages": dumps(outputs),
    }


def tool(who: dict, name: str, call_id: str, arguments: dict, result: dict | None = None, *,
         read: list[str] | None = None, written: list[str] | None = None) -> dict:
    attrs = {
        "gen_ai.operation.name": "execute_tool",
        **who,
        "gen_ai.tool.name": name,
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.call.arguments": dumps(arguments),
    }
    if result is not None:
        attrs["gen_ai.tool.call.result"] = dumps(result)
    if read:
        attrs["agent_trail.data.read"] = read
    if written:
        attrs["agent_trail.data.written"] = written
    return attrs


def approval(who: dict, tool_name: str, call_id: str, state: str, request_id: str,
             approver: str | None = None) -> dict:
    attrs = {
        "agent_trail.operation": "approval",
        **who,
        "gen_ai.tool.name": tool_name,
        "gen_ai.tool.call.id": call_id,
        "agent_trail.approval.state": state,
        "agent_trail.approval.request.id": request_id,
    }
    return {**attrs, "agent_trail.approval.approver.id": approver} if approver else attrs


# --- the runs ------------------------------------------------------------------------------

LOOKUP_ARGS = {"order": "A-1"}
LOOKUP_RESULT = {"order": "A-1", "amount": 40}
# Shared by a01 and a05, so their first two turns carry byte-identical messages.
TURN1_INPUT = [text("user", "Refund order A-1")]
TURN1_OUTPUT = [asks("call_lookup", "lookup_order", LOOKUP_ARGS)]
TURN2_INPUT = [*TURN1_INPUT, asked("call_lookup", "lookup_order", LOOKUP_ARGS),
               answered("call_lookup", LOOKUP_RESULT)]


def run_a01(f: Fixture) -> None:
    """Run 1 of triage: a retried lookup, an approved refund, a hand-off, a pending approval."""
    who = agent("triage", "triage-1", "conv-42")
    f.span("a01.1", "invoke_agent triage", 0, 60, invoke_agent(who, "alice-customer"))
    f.span("a01.2", "chat gpt-4o", 1, 3, chat(who, TURN1_INPUT, TURN1_OUTPUT, (120, 30)),
           parent="a01.1")
    lookup = tool(who, "lookup_order", "call_lookup", LOOKUP_ARGS, read=[ORDERS])
    f.span("a01.3", "execute_tool lookup_order", 3, 4, {**lookup, "error.type": "timeout"},
           parent="a01.1", error="timeout")
    f.span("a01.4", "execute_tool lookup_order", 4, 5,
           tool(who, "lookup_order", "call_lookup", LOOKUP_ARGS, LOOKUP_RESULT, read=[ORDERS]),
           parent="a01.1", links=[("a01.3", "retry_of")])
    refund_args = {"order": "A-1", "amount": 40}
    f.span("a01.5", "chat gpt-4o", 5, 7,
           chat(who, TURN2_INPUT, [asks("call_refund", "issue_refund", refund_args)], (300, 40)),
           parent="a01.1")
    f.span("a01.6", "approval issue_refund", 7, 20,
           approval(who, "issue_refund", "call_refund", "granted", "apr-1", "bob"), parent="a01.1")
    refund_result = {"refund_id": "rf-1", "status": "issued"}
    f.span("a01.7", "execute_tool issue_refund", 20, 21,
           tool(who, "issue_refund", "call_refund", refund_args, refund_result,
                read=[ORDERS], written=[REFUNDS]), parent="a01.1")
    handoff_args = {"reason": "send the refund confirmation", "order": "A-1"}
    turn3_input = [*TURN2_INPUT, asked("call_refund", "issue_refund", refund_args),
                   answered("call_refund", refund_result)]
    f.span("a01.8", "chat gpt-4o", 21, 23,
           chat(who, turn3_input, [asks("call_handoff", "transfer_to_notifier", handoff_args)],
                (350, 20)), parent="a01.1")
    handoff = tool(who, "transfer_to_notifier", "call_handoff", handoff_args, {"assistant": "notifier"})
    f.span("a01.8b", "execute_tool transfer_to_notifier", 23, 23.5,
           {**handoff, "agent_trail.operation": "handoff"}, parent="a01.1")

    # The sub-agent starts 0.2 s after its hand-off, so ORDER BY start_time has no ties.
    notifier = agent("notifier", "notifier-1", "conv-42")
    f.span("a01.9", "invoke_agent notifier", 23.2, 40, invoke_agent(notifier), parent="a01.8b")
    email_args = {"to": "customer@example.com", "subject": "Your refund for order A-1",
                  "body": "We refunded 40 for order A-1."}
    f.span("a01.10", "chat gpt-4o-mini", 24, 25,
           chat(notifier, [text("user", "Refund rf-1 of 40 for order A-1 was issued; tell the customer.")],
                [asks("call_email", "send_email", email_args)], (80, 15),
                model=MINI, prompt=NOTIFIER_PROMPT), parent="a01.9")
    f.span("a01.11", "execute_tool send_email", 25, 26,
           tool(notifier, "send_email", "call_email", email_args, {"message_id": "msg-1"},
                written=["mailto:customer@example.com"]), parent="a01.9")

    # Asked for here, decided an hour later in a03.
    f.span("a01.12", "approval delete_customer", 30, 31,
           approval(who, "delete_customer", "call_delete", "requested", "apr-2"), parent="a01.1")


def run_a02(f: Fixture) -> None:
    """Async work in billing-worker, linked to the refund that caused it."""
    who = agent("ledger", "ledger-1", None)
    f.span("a02.1", "invoke_agent ledger", 45, 50, invoke_agent(who),
           links=[("a01.7", "async_handoff")])
    f.span("a02.2", "execute_tool post_ledger", 46, 47,
           tool(who, "post_ledger", "call_ledger", {"refund_id": "rf-1", "amount": 40},
                {"entry_id": "le-1"}, read=[REFUNDS], written=["s3://ledger/2026/11/entries.parquet"]),
           parent="a02.1")


def run_a03(f: Fixture) -> None:
    """conv-42 resumed in the next hour: the pending delete is denied."""
    who = agent("triage", "triage-1", "conv-42")
    f.span("a03.1", "invoke_agent triage", 3600, 3610, invoke_agent(who, "alice-customer"),
           links=[("a01.12", "resumes")])
    f.span("a03.2", "approval delete_customer", 3601, 3602,
           approval(who, "delete_customer", "call_delete", "denied", "apr-2", "carol"), parent="a03.1")
    inputs = [text("user", "Also delete my customer account."),
              asked("call_delete", "delete_customer", {"customer": "alice-customer"}),
              answered("call_delete", {"error": "approval denied", "approval_request_id": "apr-2"})]
    reply = {**text("assistant", "I cannot delete the account."), "finish_reason": "stop"}
    f.span("a03.3", "chat gpt-4o", 3603, 3605, chat(who, inputs, [reply], (90, 10)), parent="a03.1")


def run_a04(f: Fixture) -> None:
    """Run 2 of triage under policy-v2: a refund with no approval, an email after a timed-out one."""
    who = agent("triage", "triage-1", "conv-77")
    f.span("a04.1", "invoke_agent triage", 7200, 7230, invoke_agent(who))
    refund_args = {"order": "B-7", "amount": 15}
    turn1_input = [text("user", "Refund order B-7")]
    f.span("a04.2", "chat gpt-4o", 7201, 7203,
           chat(who, turn1_input, [asks("call_refund2", "issue_refund", refund_args)], (110, 25)),
           parent="a04.1")
    refund_result = {"refund_id": "rf-2", "status": "issued"}
    f.span("a04.3", "execute_tool issue_refund", 7203, 7204,  # no approval: a bypass
           tool(who, "issue_refund", "call_refund2", refund_args, refund_result, written=[REFUNDS]),
           parent="a04.1")
    email_args = {"to": "b7@example.com", "subject": "Your refund for order B-7",
                  "body": "We refunded 15 for order B-7."}
    turn2_input = [*turn1_input, asked("call_refund2", "issue_refund", refund_args),
                   answered("call_refund2", refund_result)]
    f.span("a04.4", "chat gpt-4o", 7204, 7206,
           chat(who, turn2_input, [asks("call_email2", "send_email", email_args)], (150, 20)),
           parent="a04.1")
    f.span("a04.5", "approval send_email", 7206, 7216,
           approval(who, "send_email", "call_email2", "timed_out", "apr-3"), parent="a04.1")
    f.span("a04.6", "execute_tool send_email", 7216, 7217,  # runs anyway: timed out, not granted
           tool(who, "send_email", "call_email2", email_args, {"message_id": "msg-2"},
                written=["mailto:b7@example.com"]), parent="a04.1")


def run_a05(f: Fixture) -> None:
    """a01's decision path again, numbered as in a01; turn 2 now refunds 400 instead of 40."""
    who = agent("triage", "triage-1", "conv-42-rerun")
    b = 10800
    f.span("a05.1", "invoke_agent triage", b, b + 30, invoke_agent(who, "alice-customer"))
    f.span("a05.2", "chat gpt-4o", b + 1, b + 3, chat(who, TURN1_INPUT, TURN1_OUTPUT, (120, 30)),
           parent="a05.1")
    f.span("a05.4", "execute_tool lookup_order", b + 3, b + 4,
           tool(who, "lookup_order", "call_lookup", LOOKUP_ARGS, LOOKUP_RESULT, read=[ORDERS]),
           parent="a05.1")
    refund_args = {"order": "A-1", "amount": 400}
    f.span("a05.5", "chat gpt-4o", b + 4, b + 6,
           chat(who, TURN2_INPUT, [asks("call_refund", "issue_refund", refund_args)], (300, 40)),
           parent="a05.1")
    f.span("a05.6", "approval issue_refund", b + 6, b + 15,
           approval(who, "issue_refund", "call_refund", "granted", "apr-4", "bob"), parent="a05.1")
    f.span("a05.7", "execute_tool issue_refund", b + 15, b + 16,
           tool(who, "issue_refund", "call_refund", refund_args, {"refund_id": "rf-3", "status": "issued"},
                read=[ORDERS], written=[REFUNDS]), parent="a05.1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True,
                        help="OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces")
    parser.add_argument("--tenant", help=f"sent as the {TENANT_HEADER} header")
    args = parser.parse_args()

    fixture = Fixture(args.endpoint, args.tenant)
    for run in (run_a01, run_a02, run_a03, run_a04, run_a05):
        run(fixture)
    if not fixture.finish():
        return 1
    print(json.dumps(fixture.ids_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
