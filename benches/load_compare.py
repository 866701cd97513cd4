"""Ingest side by side: Cairn over OTLP/gRPC and OTLP/HTTP, and Arize Phoenix, with the same
workload from `cairn-bench load`, one after the other on the same machine.

Each server starts on a fresh data directory on loopback. `cairn-bench load` sends pre-encoded
requests from N connections and follows the server's span count (Cairn: `SELECT count(*) FROM
spans` over its SQL API; Phoenix: `count(*)` of its `spans` table in its SQLite database) until
every acknowledged span is there, reading the server's CPU time and peak memory from /proc and
what its data directory grew by.

    python benches/load_compare.py --cairn target/release/cairn --bench target/release/cairn-bench \
        [--spans 300000] [--phoenix /var/cache/cairn/phoenix-venv/bin/phoenix --phoenix-spans 5000]

Phoenix: `pip install arize-phoenix` in a virtualenv, pass its `phoenix` executable.
"""

import argparse
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, timeout=120, ca=None):
    """Waits for `url` to answer (over TLS trusting the PEM file `ca` when given)."""
    context = ssl.create_default_context(cafile=ca) if ca else None
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1, context=context):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_bench(bench, args, report):
    cmd = [bench, "load", *args, "--report", report]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(report) as f:
        return json.loads(f.readlines()[-1])


def cairn_load(cairn, bench, protocol, spans, connections, work, report, extra=(), label=None,
               after=None, bench_extra=(), ca=None):
    """Runs `cairn serve` (with `extra` flags) on a fresh directory under load; `after(http_base)`
    is called before the server stops, and its result stored under "after" in the report.
    `bench_extra` goes to `cairn-bench load` (e.g. `--token`); with `ca` (a PEM file, for a
    server given `--tls-cert`) every URL is https and the server is trusted through it."""
    label = label or f"cairn-{protocol}"
    data = os.path.join(work, label)
    grpc, otlp_http, http = free_port(), free_port(), free_port()
    proc = subprocess.Popen(
        [cairn, "serve", "--store", os.path.join(data, "store"), "--wal-dir", os.path.join(data, "wal"),
         "--otlp-grpc-addr", f"127.0.0.1:{grpc}", "--otlp-http-addr", f"127.0.0.1:{otlp_http}",
         "--http-addr", f"127.0.0.1:{http}", "--pg-addr", "off", *extra],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"{label}.log"), "w"),
        env={**os.environ, "CAIRN_LOG": "warn"},
    )
    try:
        scheme = "https" if ca else "http"
        wait_http(f"{scheme}://127.0.0.1:{http}/health", proc, ca=ca)
        endpoint = f"{scheme}://127.0.0.1:{grpc if protocol == 'grpc' else otlp_http}"
        row = run_bench(bench, [
            "--endpoint", endpoint, "--protocol", protocol, "--spans", str(spans),
            "--connections", str(connections), "--query", f"{scheme}://127.0.0.1:{http}",
            "--pid", str(proc.pid), "--storage", os.path.join(data, "store"),
            "--label", label, *(["--ca", ca] if ca else []), *bench_extra,
        ], report)
        if after:
            row["after"] = after(f"{scheme}://127.0.0.1:{http}")
        return row
    finally:
        stop(proc)


def phoenix_load(phoenix, bench, spans, connections, work, report):
    data = os.path.join(work, "phoenix")
    os.makedirs(data)
    port, grpc = free_port(), free_port()
    env = {**os.environ, "PHOENIX_WORKING_DIR": data, "PHOENIX_PORT": str(port), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_GRPC_PORT": str(grpc), "PHOENIX_TELEMETRY_ENABLED": "false"}
    proc = subprocess.Popen([phoenix, "serve"], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, "phoenix.log"), "w"), env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout=300)
        db = os.path.join(data, "phoenix.db")
        return run_bench(bench, [
            "--endpoint", f"http://127.0.0.1:{port}", "--protocol", "http", "--spans", str(spans),
            "--connections", str(connections),
            "--count-command", f"sqlite3 -readonly {db} 'select count(*) from spans' 2>/dev/null || echo 0",
            "--poll", "500ms", "--timeout", "1800s",
            "--pid", str(proc.pid), "--storage", data, "--label", "phoenix",
        ], report)
    finally:
        stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cairn", required=True)
    ap.add_argument("--bench", required=True, help="the cairn-bench binary")
    ap.add_argument("--spans", type=int, default=300_000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--phoenix", help="the phoenix executable of an arize-phoenix install")
    ap.add_argument("--phoenix-spans", type=int, default=5_000)
    ap.add_argument("--phoenix-connections", type=int, default=4)
    ap.add_argument("--out", help="append every report as a JSON line here")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cairn-load-")
    report = args.out or os.path.join(work, "reports.jsonl")
    try:
        rows = [cairn_load(args.cairn, args.bench, p, args.spans, args.connections, work, report)
                for p in ("grpc", "http")]
        if args.phoenix:
            rows.append(phoenix_load(args.phoenix, args.bench, args.phoenix_spans, args.phoenix_connections,
                                     work, report))
    finally:
        if not args.out:
            print(f"reports in {report}")
        shutil.rmtree(os.path.join(work, "cairn-grpc"), ignore_errors=True)
        shutil.rmtree(os.path.join(work, "cairn-http"), ignore_errors=True)

    def f(v, fmt="{:,.0f}"):
        return "–" if v is None else fmt.format(v)

    print("\n| server | spans | OTLP MB | accepted spans/s | accepted MB/s | durable+visible spans/s "
          "| lag p50 / max | CPU s per M spans | peak RSS | stored B/span | stored / OTLP bytes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {r['spans']:,} | {r['otlp_bytes'] / 1e6:,.0f} | {f(r['accepted_spans_per_second'])} "
              f"| {f(r['accepted_otlp_mb_per_second'], '{:,.1f}')} | {f(r['visible_spans_per_second'])} "
              f"| {f(r['lag_p50_seconds'], '{:.2f}')} / {f(r['lag_max_seconds'], '{:.2f}')} s "
              f"| {f(r['cpu_seconds_per_million_spans'])} | {f((r['peak_rss_bytes'] or 0) / 2**20)} MiB "
              f"| {f(r['stored_bytes_per_span'])} | {f(r['stored_bytes_per_otlp_byte'], '{:.3f}')} |")
    if args.phoenix and len(rows) == 3:
        c, p = rows[0], rows[2]
        ratio = lambda a, b: "–" if not a or not b else f"{a / b:,.1f}×"
        print(f"\nCairn gRPC / Phoenix: accepted {ratio(c['accepted_spans_per_second'], p['accepted_spans_per_second'])}, "
              f"durable+visible {ratio(c['visible_spans_per_second'], p['visible_spans_per_second'])}, "
              f"bytes per span {ratio(c['stored_bytes_per_span'], p['stored_bytes_per_span'])}, "
              f"CPU per span {ratio(c['cpu_seconds_per_million_spans'], p['cpu_seconds_per_million_spans'])}")


if __name__ == "__main__":
    main()
