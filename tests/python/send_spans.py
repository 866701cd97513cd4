#!/usr/bin/env python3
"""Send a small agent run to an OTLP endpoint with the OpenTelemetry Python SDK.

Usage:
    send_spans.py --protocol {grpc,http-protobuf,http-json} --endpoint URL --out expected.json
                  [--tenant T] [--gzip] [--ca CA.pem [--client-cert C.pem --client-key K.pem]]
                  [--timeout SECONDS]

The endpoint is `http://HOST:PORT` for gRPC and `http://HOST:PORT/v1/traces` for HTTP
(`https://` with `--ca`: TLS, the server's certificate checked against that CA, and with
`--client-cert` the exporter presents a client certificate).
After a successful export, the spans exactly as the SDK exported them are written to the
`--out` file, with attribute values rendered the way Cairn stores them as text (see
`render_value`). Exits 1 if the exporter reports a failure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections.abc import Mapping, Sequence

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

PROTOCOLS = ("grpc", "http-protobuf", "http-json")
TENANT_HEADER = "X-Scope-OrgID"


def read_file(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def make_exporter(
    protocol: str, endpoint: str, tenant: str | None, gzip: bool, tls=None, timeout: float = 10
) -> SpanExporter:
    """The SDK's own OTLP span exporter for `protocol`; `tls` holds the `--ca`, `--client-cert`
    and `--client-key` arguments (each may be None)."""
    ca, client_cert, client_key = (tls.ca, tls.client_cert, tls.client_key) if tls else (None,) * 3
    # The parsed arguments also carry `--token`, sent as a bearer token.
    token = getattr(tls, "token", None)
    bearer = {"authorization": f"Bearer {token}"} if token else {}
    if protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        credentials = None
        if ca:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=read_file(ca),
                private_key=read_file(client_key),
                certificate_chain=read_file(client_cert),
            )
        return OTLPSpanExporter(
            endpoint=endpoint,
            insecure=not ca,
            credentials=credentials,
            # gRPC metadata keys must be lowercase.
            headers={**({TENANT_HEADER.lower(): tenant} if tenant else {}), **bearer} or None,
            compression=grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression,
            timeout=timeout,
        )
    headers = {**({TENANT_HEADER: tenant} if tenant else {}), **bearer} or None
    if protocol == "http-protobuf":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(
            endpoint=endpoint,
            headers=headers,
            compression=Compression.Gzip if gzip else Compression.NoCompression,
            timeout=timeout,
            certificate_file=ca,
            client_certificate_file=client_cert,
            client_key_file=client_key,
        )
    if protocol == "http-json":
        from opentelemetry.exporter.otlp.common.http import Compression
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(
            endpoint=endpoint,
            headers=headers,
            compression=Compression.GZIP if gzip else Compression.NONE,
            timeout=10,
        )
    raise ValueError(f"unknown protocol {protocol!r}")


class RecordingExporter(SpanExporter):
    """Delegates to an exporter and records every result and every span it was given."""

    def __init__(self, inner: SpanExporter):
        self.inner = inner
        self.results: list[SpanExportResult] = []
        self.spans: list[ReadableSpan] = []
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as error:  # an exporter should not raise; count it as a failure
            print(f"exporter raised: {error!r}", file=sys.stderr)
            result = SpanExportResult.FAILURE
        with self._lock:
            self.results.append(result)
            self.spans.extend(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def emit_agent_run(provider: TracerProvider) -> None:
    """A root agent span with an LLM call and a failing tool call, all with fixed timestamps."""
    tracer = provider.get_tracer("cairn-e2e", "0.1.0")
    ms = 1_000_000
    t0 = time.time_ns()  # full nanosecond precision, so lossy time handling shows

    root = tracer.start_span(
        "invoke_agent planner",
        kind=SpanKind.INTERNAL,
        start_time=t0,
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "planner",
        },
    )
    parent = trace.set_span_in_context(root)

    llm = tracer.start_span(
        "chat gpt-4o",
        context=parent,
        kind=SpanKind.CLIENT,
        start_time=t0 + 5 * ms,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 345,
            "gen_ai.request.temperature": 0.25,  # exact in binary; same text in Python and Rust
            "gen_ai.request.stream": False,
            "gen_ai.response.finish_reasons": ["stop", "length"],
            "gen_ai.request.stop_sequence_ids": [1, 2, 3],
        },
    )
    llm.add_event(
        "gen_ai.choice",
        attributes={"gen_ai.response.finish_reason": "stop", "index": 0, "score": 1.5},
        timestamp=t0 + 400 * ms,
    )
    llm.set_status(Status(StatusCode.OK))
    llm.end(end_time=t0 + 450 * ms)

    tool = tracer.start_span(
        "execute_tool search",
        context=parent,
        kind=SpanKind.INTERNAL,
        start_time=t0 + 460 * ms,
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "search",
            "gen_ai.tool.call.id": "call_abc123",
        },
        links=[
            Link(
                llm.get_span_context(),
                attributes={"link.reason": "requested_by", "link.ordinal": 1},
            )
        ],
    )
    try:
        raise RuntimeError("search backend unavailable")
    except RuntimeError as error:
        tool.record_exception(error, timestamp=t0 + 500 * ms)
    tool.set_status(Status(StatusCode.ERROR, "tool failed"))
    tool.end(end_time=t0 + 520 * ms)

    root.set_status(Status(StatusCode.OK))
    root.end(end_time=t0 + 600 * ms)


# --- expected.json rendering -------------------------------------------------------------

KIND_NAMES = {
    SpanKind.INTERNAL: "internal",
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}
STATUS_NAMES = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}


def render_double(value: float) -> str:
    """Rust's `f64` Display text, for the values whose text Python can reproduce exactly."""
    if not math.isfinite(value):
        raise ValueError(f"non-finite double {value!r} is not supported")
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))  # Rust prints 1.0 as "1"
    if 1e-4 <= abs(value) < 1e16:
        return repr(value)  # shortest round-trip digits, as Rust uses
    raise ValueError(f"double {value!r} would be printed differently by Rust")


def otlp_json_value(value) -> dict:
    """One array element in OTLP JSON, as Cairn's serde_json writes it."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if value == int(value) or not 1e-4 <= abs(value) < 1e16:
            raise ValueError(f"double {value!r} in an array would be printed differently by serde_json")
        return {"doubleValue": value}
    raise ValueError(f"unsupported array element {value!r}")


def render_value(value) -> tuple[str, str]:
    """(text, type) of an attribute value as Cairn stores it."""
    if isinstance(value, bool):
        return ("true" if value else "false", "bool")
    if isinstance(value, str):
        return (value, "string")
    if isinstance(value, int):
        return (str(value), "int")
    if isinstance(value, float):
        return (render_double(value), "double")
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        array = {"values": [otlp_json_value(v) for v in value]}
        return (json.dumps(array, separators=(",", ":"), ensure_ascii=False), "array")
    raise ValueError(f"unsupported attribute value {value!r}")


def render_attributes(attributes: Mapping | None) -> list[dict]:
    out = []
    for key, value in (attributes or {}).items():
        text, kind = render_value(value)
        out.append({"key": key, "value": text, "type": kind})
    return out


def span_record(span: ReadableSpan) -> dict:
    ctx = span.get_span_context()
    return {
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "name": span.name,
        "kind": KIND_NAMES[span.kind],
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "status_code": STATUS_NAMES[span.status.status_code],
        # The SDK drops descriptions on non-error statuses; Cairn stores "" as null.
        "status_message": span.status.description or None,
        "service_name": span.resource.attributes.get("service.name"),
        "scope_name": span.instrumentation_scope.name,
        "scope_version": span.instrumentation_scope.version,
        "attributes": render_attributes(span.attributes),
        "resource_attributes": render_attributes(span.resource.attributes),
        "events": [
            {
                "name": event.name,
                "time_unix_nano": event.timestamp,
                "attributes": render_attributes(event.attributes),
            }
            for event in span.events
        ],
        "links": [
            {
                "trace_id": format(link.context.trace_id, "032x"),
                "span_id": format(link.context.span_id, "016x"),
                "attributes": render_attributes(link.attributes),
            }
            for link in span.links
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", required=True, choices=PROTOCOLS)
    parser.add_argument("--endpoint", required=True, help="gRPC: http://HOST:PORT; HTTP: http://HOST:PORT/v1/traces")
    parser.add_argument("--out", required=True, help="where to write the expected spans (JSON)")
    parser.add_argument("--tenant", help=f"sent as the {TENANT_HEADER} header")
    parser.add_argument("--token", help="sent as `authorization: Bearer TOKEN`")
    parser.add_argument("--gzip", action="store_true", help="gzip-compress exports")
    parser.add_argument("--ca", help="TLS: PEM CA bundle the server's certificate is checked against")
    parser.add_argument("--client-cert", help="TLS: PEM client certificate to present (mTLS)")
    parser.add_argument("--client-key", help="TLS: PEM key of --client-cert")
    parser.add_argument("--timeout", type=float, default=10, help="seconds per export attempt")
    args = parser.parse_args()

    resource = Resource.create(
        {
            "service.name": f"py-agent-{args.protocol}",
            "service.version": "1.2.3",
            "deployment.environment.name": "e2e",
            "host.cpu.count": 4,
            "cairn.test.sample_ratio": 0.5,
            "cairn.test.gzip": args.gzip,
        }
    )
    recorder = RecordingExporter(
        make_exporter(args.protocol, args.endpoint, args.tenant, args.gzip, args, args.timeout)
    )
    provider = TracerProvider(resource=resource)
    # A long delay and a large batch: all spans leave in one request, at force_flush.
    provider.add_span_processor(
        BatchSpanProcessor(recorder, schedule_delay_millis=60_000, max_export_batch_size=512)
    )

    emit_agent_run(provider)
    flushed = provider.force_flush(timeout_millis=30_000)
    provider.shutdown()

    failures = [r for r in recorder.results if r is not SpanExportResult.SUCCESS]
    if not flushed or failures or not recorder.spans:
        print(
            f"export failed: flushed={flushed} results={[r.name for r in recorder.results]} "
            f"spans={len(recorder.spans)}",
            file=sys.stderr,
        )
        return 1

    spans = sorted((span_record(s) for s in recorder.spans), key=lambda s: s["start_time_unix_nano"])
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(spans, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"exported {len(spans)} spans via {args.protocol} (trace {spans[0]['trace_id']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
