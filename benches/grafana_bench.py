"""What Grafana waits for: the Tempo API and the Postgres wire, side by side with the Cairn API
answer to the same question.

Serves a store written by `cairn-bench generate` with `cairn query` (HTTP and Postgres wire), and
times each Grafana request next to its baseline, the same question asked through Cairn's own
API (`/api/v1/runs`, `/api/v1/traces`, `POST /api/v1/sql`):

- a trace by id as Tempo's protobuf `TraceByIDResponse` vs the OTLP JSON of `/api/v1/traces`;
- TraceQL searches over a day vs the runs search with the same filter;
- a TraceQL metrics query vs the SQL that counts the same;
- a dashboard panel's SQL over the Postgres wire (libpq simple protocol, as Grafana) vs the same
  SQL through `POST /api/v1/sql`;
- tag names and values (no baseline).

Warm: after one unmeasured run, each request is repeated with another day (or trace) each time;
p50 is reported with the ratio to its baseline's p50.

    python benches/grafana_bench.py --cairn target/release/cairn --store /var/tmp/cairn-10m \
        --summary /var/tmp/cairn-10m.json [--warm 7]

Needs `psycopg` from PyPI.
"""

import argparse
import json
import statistics
import time
import urllib.parse
import urllib.request

import psycopg

import query_suite
from query_suite import free_port

TENANT = "bench"
TOOLS = ["search", "run_sql", "read_file"]
AGENTS = ["support", "research", "coder", "ops", "billing"]


class Cairn(query_suite.Cairn):
    """`cairn query` with the Postgres wire, and a connection to it as Grafana's data source."""

    def __init__(self, binary, store):
        self.pg_port = free_port()
        super().__init__(binary, store, pg_port=self.pg_port)
        self.pg = psycopg.connect(host="127.0.0.1", port=self.pg_port, user=TENANT,
                                  dbname="cairn", autocommit=True)

    def get(self, path, accept="application/json"):
        req = urllib.request.Request(self.base + path,
                                     headers={"X-Scope-OrgID": TENANT, "Accept": accept})
        with urllib.request.urlopen(req, timeout=600) as resp:
            return resp.read()

    def sql(self, sql):
        req = urllib.request.Request(
            f"{self.base}/api/v1/sql", data=json.dumps({"sql": sql}).encode(),
            headers={"X-Scope-OrgID": TENANT, "content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as resp:
            return resp.read()

    def pg_sql(self, sql):
        res = self.pg.pgconn.exec_(sql.encode())
        if res.status != psycopg.pq.ExecStatus.TUPLES_OK:
            raise RuntimeError((res.error_message or b"").decode())
        return res.ntuples

    def stop(self):
        self.pg.close()
        super().stop()


def pairs(summary):
    """(name, Grafana's request for parameter i, the baseline for parameter i or None)."""
    start = summary["first_hour_start_nanos"] // 10**9
    end = summary["end_nanos"] // 10**9
    ids = summary["sample_trace_ids"]
    large = summary.get("large_run_trace_id")

    def day(i):
        t0 = start + (i * 86_400) % max(end - start - 86_400, 1)
        return t0, t0 + 86_400

    def iso(t):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    def search(q, i, limit=20):
        s, e = day(i)
        return lambda c: c.get("/tempo/api/search?" + urllib.parse.urlencode(
            {"q": q, "limit": limit, "spss": 3, "start": s, "end": e}))

    def runs(params, i):
        s, e = day(i)
        return lambda c: c.get("/api/v1/runs?" + urllib.parse.urlencode(
            {**params, "from": iso(s), "to": iso(e), "limit": 20}))

    def metrics(q, i):
        s, e = day(i)
        return lambda c: c.get("/tempo/api/metrics/query_range?" + urllib.parse.urlencode(
            {"q": q, "start": s, "end": e, "step": "1h"}))

    def counted(i):
        s, e = day(i)
        return (f"SELECT date_bin(INTERVAL '1 hour', start_time) AS t, tool_name, count(*) AS n "
                f"FROM spans WHERE start_time >= '{iso(s)}' AND start_time < '{iso(e)}' "
                f"AND tool_name IS NOT NULL GROUP BY 1, 2 ORDER BY 1")

    def top_tools(i):
        s, e = day(i)
        return (f"SELECT tool_name AS tool, count(*) AS calls, "
                f"count(*) FILTER (WHERE status_code = 'error') AS errors, "
                f"approx_percentile_cont(duration_ns, 0.5) / 1e6 AS p50_ms, "
                f"approx_percentile_cont(duration_ns, 0.95) / 1e6 AS p95_ms FROM tool_calls "
                f"WHERE start_time BETWEEN '{iso(s)}' AND '{iso(e)}' AND tool_name IS NOT NULL "
                f"GROUP BY 1 ORDER BY calls DESC LIMIT 20")

    def runs_over_time(i):
        s, e = day(i)
        return (f"SELECT floor(extract(epoch from start_time)/300)*300 AS \"time\", "
                f"count(*) AS runs FROM runs WHERE start_time BETWEEN '{iso(s)}' AND '{iso(e)}' "
                f"GROUP BY 1 ORDER BY 1")

    out = [
        ("trace by id: Tempo protobuf | /api/v1/traces",
         lambda i: lambda c: c.get(f"/tempo/api/v2/traces/{ids[i % len(ids)]}", "application/protobuf"),
         lambda i: lambda c: c.get(f"/api/v1/traces/{ids[i % len(ids)]}")),
    ]
    if large:
        out.append(("10k-span trace: Tempo protobuf | /api/v1/traces",
                    lambda i: lambda c: c.get(f"/tempo/api/v2/traces/{large}", "application/protobuf"),
                    lambda i: lambda c: c.get(f"/api/v1/traces/{large}")))
    out += [
        ("search {} newest 20, a day | /api/v1/runs",
         lambda i: search("{}", i), lambda i: runs({}, i)),
        ("search a tool, a day | /api/v1/runs?tool=",
         lambda i: search(f'{{ span.gen_ai.tool.name = "{TOOLS[i % 3]}" }}', i),
         lambda i: runs({"tool": TOOLS[i % 3]}, i)),
        ("search an agent's errors, a day | /api/v1/runs?agent=&status=error",
         lambda i: search(f'{{ span.gen_ai.agent.name = "{AGENTS[i % 5]}" && status = error }}', i),
         lambda i: runs({"agent": AGENTS[i % 5], "status": "error"}, i)),
        ("search structural: agent >> failed tool, a day | -",
         lambda i: search('{ span.agent_trail.operation = "agent_invoke" } >> '
                          '{ span.agent_trail.operation = "tool_call" && status = error }', i), None),
        ("metrics rate() by tool, a day, 1h steps | SQL count by hour and tool",
         lambda i: metrics("{ span.gen_ai.tool.name != nil } | rate() by (span.gen_ai.tool.name)", i),
         lambda i: (lambda c, q=counted(i): c.sql(q))),
        ("metrics p50/p95 of tool duration, a day | -",
         lambda i: metrics("{ span.gen_ai.tool.name != nil } | "
                           "quantile_over_time(duration, 0.5, 0.95) by (span.gen_ai.tool.name)", i), None),
        ("panel top tools over the Postgres wire | same SQL over HTTP",
         lambda i: (lambda c, q=top_tools(i): c.pg_sql(q)),
         lambda i: (lambda c, q=top_tools(i): c.sql(q))),
        ("panel runs per 5 min over the Postgres wire | same SQL over HTTP",
         lambda i: (lambda c, q=runs_over_time(i): c.pg_sql(q)),
         lambda i: (lambda c, q=runs_over_time(i): c.sql(q))),
        ("tags, a day | -",
         lambda i: (lambda c, d=day(i): c.get(f"/tempo/api/v2/search/tags?limit=5000&start={d[0]}&end={d[1]}")), None),
        ("tag values gen_ai.tool.name, a day | -",
         lambda i: (lambda c, d=day(i): c.get(
             f"/tempo/api/v2/search/tag/span.gen_ai.tool.name/values?start={d[0]}&end={d[1]}")), None),
    ]
    return out


def timed(cairn, make, n):
    make(n)(cairn)  # unmeasured
    times = []
    for i in range(n):
        call = make(i)
        t0 = time.perf_counter()
        call(cairn)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cairn", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--summary", required=True, help="JSON printed by cairn-bench generate")
    ap.add_argument("--warm", type=int, default=7)
    ap.add_argument("--only")
    ap.add_argument("--out")
    args = ap.parse_args()
    summary = json.load(open(args.summary))
    cairn = Cairn(args.cairn, args.store)
    results = []
    try:
        print(f"{'request | baseline':<72} {'p50 ms':>9} {'base ms':>9} {'ratio':>6}")
        for name, grafana, base in pairs(summary):
            if args.only and args.only not in name:
                continue
            g = timed(cairn, grafana, args.warm)
            b = timed(cairn, base, args.warm) if base else None
            ratio = f"{g / b:6.2f}" if b else "     -"
            print(f"{name:<72} {g:9.1f} {b if b is not None else float('nan'):9.1f} {ratio}", flush=True)
            results.append({"name": name, "p50_ms": g, "baseline_p50_ms": b})
    finally:
        cairn.stop()
    if args.out:
        json.dump({"summary": summary, "results": results}, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
