#!/usr/bin/env python3
"""A run still in progress, exported as it goes, for tests of live views.

Usage:
    live_run.py --endpoint http://HOST:PORT/v1/traces [--tenant T]

Starts an agent run "invoke_agent live-agent" at the current time, exports two finished tool
calls under it while the root is still open, prints {"trace_id": ..., "phase": "open"} and waits
for a line on stdin; then exports a third tool call, ends the root, prints {"phase": "done"} and
exits. With the OpenTelemetry Python SDK and its OTLP/HTTP protobuf exporter (tenant in the
X-Scope-OrgID header).
"""

from __future__ import annotations

import argparse
import json
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--tenant", default="default")
    args = parser.parse_args()

    provider = TracerProvider(resource=Resource.create({"service.name": "live-bot"}))
    exporter = OTLPSpanExporter(endpoint=args.endpoint, headers={"X-Scope-OrgID": args.tenant})
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("cairn-tests")

    def tool_call(n: int) -> None:
        with tracer.start_as_current_span(f"execute_tool step_{n}") as span:
            span.set_attribute("gen_ai.operation.name", "execute_tool")
            span.set_attribute("gen_ai.tool.name", f"step_{n}")
            span.set_attribute("gen_ai.tool.call.id", f"call_live_{n}")
            span.set_attribute("gen_ai.agent.name", "live-agent")

    root = tracer.start_span("invoke_agent live-agent")
    root.set_attribute("gen_ai.operation.name", "invoke_agent")
    root.set_attribute("gen_ai.agent.name", "live-agent")
    trace_id = format(root.get_span_context().trace_id, "032x")
    with trace.use_span(root, end_on_exit=False):
        tool_call(1)
        tool_call(2)
        print(json.dumps({"trace_id": trace_id, "phase": "open"}), flush=True)
        sys.stdin.readline()
        tool_call(3)
    root.end()
    provider.shutdown()
    print(json.dumps({"trace_id": trace_id, "phase": "done"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
