#!/usr/bin/env python3
"""Bytes on disk per span for an agent workload sent with the Python OpenTelemetry SDK.

Usage: bytes_per_span.py --grpc HOST:PORT --store DIR [--runs N] [--seed S]

Sends N agent runs (a planner invoking several model turns and tool calls, with multi-turn
messages, tool arguments and results as attributes), waits for every export to be acknowledged,
then prints spans, OTLP protobuf bytes, Parquet bytes and the ratios. Deterministic by seed.
"""

import argparse
import os
import random
import sys
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

WORDS = "the agent plans a search then reads files writes a summary and asks for approval".split()


class Measure(SpanExporter):
    """Counts OTLP bytes and failures, then forwards."""

    def __init__(self, inner):
        self.inner, self.spans, self.otlp_bytes, self.failures = inner, 0, 0, 0

    def export(self, spans):
        self.spans += len(spans)
        self.otlp_bytes += encode_spans(spans).ByteSize()
        result = self.inner.export(spans)
        if result != SpanExportResult.SUCCESS:
            self.failures += 1
        return result

    def shutdown(self):
        self.inner.shutdown()


def text(rng, lo, hi):
    n = rng.randint(lo, hi) // 6
    return " ".join(rng.choice(WORDS) for _ in range(n))


def run(tracer, rng, i):
    history = [{"role": "system", "content": text(rng, 500, 2000)}]
    with tracer.start_as_current_span("invoke_agent planner", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
        "gen_ai.conversation.id": f"conv-{i}"}):
        for turn in range(rng.randint(3, 6)):
            history.append({"role": "user", "content": text(rng, 500, 4000)})
            with tracer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT, attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.provider.name": "openai",
                "gen_ai.usage.input_tokens": rng.randint(500, 8000),
                "gen_ai.usage.output_tokens": rng.randint(20, 800),
                "gen_ai.input.messages": repr(history),
                "gen_ai.output.messages": text(rng, 200, 2000)}):
                pass
            with tracer.start_as_current_span("execute_tool search", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                "gen_ai.tool.call.id": f"call_{i}_{turn}",
                "gen_ai.tool.call.arguments": text(rng, 50, 300),
                "gen_ai.tool.call.result": text(rng, 500, 8000)}):
                pass


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grpc", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    rng = random.Random(a.seed)
    measure = Measure(OTLPSpanExporter(endpoint=f"http://{a.grpc}", insecure=True))
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-agent"}))
    provider.add_span_processor(BatchSpanProcessor(measure, max_export_batch_size=512, max_queue_size=1 << 20))
    tracer = provider.get_tracer("bench")
    start = time.time()
    for i in range(a.runs):
        run(tracer, rng, i)
    provider.force_flush()
    provider.shutdown()
    elapsed = time.time() - start
    parquet = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(a.store)
                  for f in fs if f.endswith(".parquet"))
    files = sum(1 for _, _, fs in os.walk(a.store) for f in fs if f.endswith(".parquet"))
    print(f"spans {measure.spans}  failures {measure.failures}  seconds {elapsed:.1f}")
    print(f"otlp bytes/span {measure.otlp_bytes / measure.spans:.0f}")
    print(f"parquet bytes/span {parquet / measure.spans:.0f}  ({files} files)")
    print(f"parquet/otlp {parquet / measure.otlp_bytes:.3f}")
    return 1 if measure.failures else 0


if __name__ == "__main__":
    sys.exit(main())
