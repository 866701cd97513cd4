"""Latency of the lineage API on one large run.

Sends one agent run of N spans (default 10,000: a root agent, sub-agents of 100 steps each,
alternating model turns and the tool calls they request, with messages and tool results) over
OTLP/HTTP protobuf with the OpenTelemetry Python SDK, waits until every span is visible, then
times the run trail, the trail with payloads, the lineage graph, the replay and a why-chain,
each several times, and prints the median and the slowest.

    python benches/large_run.py --otlp http://127.0.0.1:4318 --api http://127.0.0.1:3200 [--spans 10000]
"""

import argparse
import json
import statistics
import time
import urllib.request

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def get(url, tenant):
    req = urllib.request.Request(url, headers={"X-Scope-OrgID": tenant})
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())


def sql(api, tenant, query):
    req = urllib.request.Request(
        f"{api}/api/v1/sql",
        data=json.dumps({"sql": query}).encode(),
        headers={"X-Scope-OrgID": tenant, "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())


def send(otlp, tenant, spans):
    provider = TracerProvider(resource=Resource.create({"service.name": "large-run"}))
    exporter = OTLPSpanExporter(endpoint=f"{otlp}/v1/traces", headers={"X-Scope-OrgID": tenant})
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=1 << 20, max_export_batch_size=512))
    tracer = provider.get_tracer("large-run")
    sent = 0
    with tracer.start_as_current_span(
        "invoke_agent root", attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "root"}
    ) as root:
        sent += 1
        trace_id = format(root.get_span_context().trace_id, "032x")
        agent = 0
        while sent < spans:
            agent += 1
            name = f"worker-{agent}"
            with tracer.start_as_current_span(
                f"invoke_agent {name}",
                attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name},
            ):
                sent += 1
                for turn in range(50):
                    if sent + 2 > spans:
                        break
                    call = f"call_{agent}_{turn}"
                    out = [{"role": "assistant", "parts": [
                        {"type": "tool_call", "id": call, "name": "search", "arguments": {"q": f"item {turn}"}}]}]
                    inp = [{"role": "user", "parts": [{"type": "text", "content": f"task {agent}: step {turn} " * 20}]}]
                    with tracer.start_as_current_span("chat gpt-4o", attributes={
                        "gen_ai.operation.name": "chat", "gen_ai.agent.name": name,
                        "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 500,
                        "gen_ai.usage.output_tokens": 40, "gen_ai.input.messages": json.dumps(inp),
                        "gen_ai.output.messages": json.dumps(out)}):
                        pass
                    with tracer.start_as_current_span("execute_tool search", attributes={
                        "gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": name,
                        "gen_ai.tool.name": "search", "gen_ai.tool.call.id": call,
                        "gen_ai.tool.call.arguments": json.dumps({"q": f"item {turn}"}),
                        "gen_ai.tool.call.result": json.dumps({"hits": [f"doc-{agent}-{turn}-{i}" for i in range(20)]}),
                        "agent_trail.data.read": [f"s3://kb/{agent}/{turn}.md"]}) as tool:
                        if turn == 0:
                            why = (format(tool.get_span_context().span_id, "016x"))
                    sent += 2
    provider.force_flush()
    provider.shutdown()
    return trace_id, sent, why


def timed(label, fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        answer = fn()
        times.append(time.perf_counter() - start)
    print(f"{label:<28} median {statistics.median(times) * 1000:8.1f} ms   max {max(times) * 1000:8.1f} ms")
    return answer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--otlp", default="http://127.0.0.1:4318")
    p.add_argument("--api", default="http://127.0.0.1:3200")
    p.add_argument("--tenant", default="bench-large-run")
    p.add_argument("--spans", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    trace_id, sent, why = send(a.otlp, a.tenant, a.spans)
    deadline = time.time() + 120
    while True:
        n = sql(a.api, a.tenant, f"SELECT count(*) AS n FROM spans WHERE trace_id = '{trace_id}'")[0]["n"]
        if n == sent or time.time() > deadline:
            break
        time.sleep(0.5)
    print(f"run {trace_id}: {n} of {sent} spans visible")
    base = f"{a.api}/api/v1/runs/{trace_id}"
    trail = timed("trail", lambda: get(base, a.tenant), a.repeat)
    timed("trail with payloads", lambda: get(f"{base}?payloads=true", a.tenant), a.repeat)
    graph = timed("lineage (depth 2)", lambda: get(f"{base}/lineage?max_nodes=20000", a.tenant), a.repeat)
    timed("replay, first page of 100 steps", lambda: get(f"{base}/replay", a.tenant), a.repeat)
    timed("replay, the last page", lambda: get(f"{base}/replay?offset={max(sent - 100, 0)}", a.tenant), a.repeat)
    timed("why-chain of one step", lambda: get(f"{base}/steps/{why}/why", a.tenant), a.repeat)
    print(f"trail roots {len(trail['steps'])}, lineage nodes {len(graph['nodes'])}, edges {len(graph['edges'])}")


if __name__ == "__main__":
    main()
