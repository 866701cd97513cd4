#!/usr/bin/env python3
"""Bytes on disk per span for an agent workload sent with the Python OpenTelemetry SDK.

Usage: bytes_per_span.py --grpc HOST:PORT --store DIR [--runs N] [--seed S] [--pause SECONDS]

Sends N agent runs (a planner invoking several model turns and tool calls; each turn resends the
whole conversation in `gen_ai.input.messages`, as the OpenTelemetry GenAI conventions do), waits
for every export to be acknowledged, then prints spans, OTLP protobuf bytes, Parquet bytes (span
and payload files) and the ratios. Deterministic by seed.
"""

import argparse
import json
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

def _vocabulary(seed=7, size=6000):
    """Pseudo-words with an English-like length mix, used with Zipf-like frequencies so that the
    text compresses about as well as prose does (zstd ~3x), not like a tiny repeated vocabulary."""
    r = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    return ["".join(r.choices(letters, weights, k=r.choice([2, 3, 3, 4, 4, 5, 5, 6, 7, 8, 9, 11])))
            for _ in range(size)]


WORDS = _vocabulary()
WORD_WEIGHTS = [1.0 / (rank + 1) for rank in range(len(WORDS))]


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
    return " ".join(rng.choices(WORDS, WORD_WEIGHTS, k=n))


def conversation(tracer, rng, i):
    """One agent run, yielding after each turn (model call plus tool call)."""
    history = [{"role": "system", "parts": [{"type": "text", "content": text(rng, 500, 2000)}]}]
    root = tracer.start_span("invoke_agent planner", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
        "gen_ai.conversation.id": f"conv-{i}"})
    ctx = trace.set_span_in_context(root)
    for turn in range(rng.randint(3, 6)):
        history.append({"role": "user", "parts": [{"type": "text", "content": text(rng, 500, 4000)}]})
        answer = {"role": "assistant", "parts": [{"type": "text", "content": text(rng, 200, 2000)}]}
        tracer.start_span("chat gpt-4o", context=ctx, kind=trace.SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
            "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": rng.randint(500, 8000),
            "gen_ai.usage.output_tokens": rng.randint(20, 800),
            "gen_ai.input.messages": json.dumps(history),
            "gen_ai.output.messages": json.dumps([answer])}).end()
        history.append(answer)
        tracer.start_span("execute_tool search", context=ctx, attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
            "gen_ai.tool.call.id": f"call_{i}_{turn}",
            "gen_ai.tool.call.arguments": text(rng, 50, 300),
            "gen_ai.tool.call.result": text(rng, 500, 8000)}).end()
        yield
    root.end()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grpc", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pause", type=float, default=0.0,
                   help="seconds to wait between turns (all runs advance one turn at a time); "
                        "set above the flush interval to spread each conversation over many files, "
                        "as long-running agents do")
    a = p.parse_args()
    rng = random.Random(a.seed)
    measure = Measure(OTLPSpanExporter(endpoint=f"http://{a.grpc}", insecure=True))
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-agent"}))
    provider.add_span_processor(BatchSpanProcessor(measure, max_export_batch_size=512, max_queue_size=1 << 20))
    tracer = provider.get_tracer("bench")
    start = time.time()
    runs = [conversation(tracer, rng, i) for i in range(a.runs)]
    while runs:
        runs = [r for r in runs if next(r, StopIteration) is not StopIteration]
        if a.pause:
            provider.force_flush()
            time.sleep(a.pause)
    provider.force_flush()
    provider.shutdown()
    elapsed = time.time() - start
    def size(sub):
        root = os.path.join(a.store, sub)
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root)
                   for f in fs if f.endswith(".parquet"))
    spans_bytes, payload_bytes = size("spans"), size("payloads")
    parquet = spans_bytes + payload_bytes
    files = sum(1 for _, _, fs in os.walk(a.store) for f in fs if f.endswith(".parquet"))
    print(f"spans {measure.spans}  failures {measure.failures}  seconds {elapsed:.1f}")
    print(f"otlp bytes/span {measure.otlp_bytes / measure.spans:.0f}")
    print(f"parquet bytes/span {parquet / measure.spans:.0f}  (spans {spans_bytes / measure.spans:.0f}, "
          f"payloads {payload_bytes / measure.spans:.0f}; {files} files)")
    print(f"parquet/otlp {parquet / measure.otlp_bytes:.3f}")
    return 1 if measure.failures else 0


if __name__ == "__main__":
    sys.exit(main())
