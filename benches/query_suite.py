"""Query latency on a large generated store, Cairn side by side with DuckDB on the same files.

Serves a store written by `cairn-bench generate` with `cairn query`, and runs each query of the
suite through Cairn's HTTP API (the lineage API calls, and SQL through `POST /api/v1/sql`) and,
where the SQL is portable, the same SQL text through DuckDB over the same Parquet span files.

Cold: the OS page cache is dropped (when permitted) and a fresh server process (a fresh DuckDB
connection) answers the query once. Warm: after one unmeasured run, the query is repeated with a
different parameter each time (another trace id, agent pod, data URI). Latency is wall time at the
client, including the answer's transfer; p50 and p95 are reported.

    cairn-bench generate --store /var/tmp/cairn-10m > /var/tmp/cairn-10m.json
    python benches/query_suite.py --cairn target/release/cairn --store /var/tmp/cairn-10m \
        --summary /var/tmp/cairn-10m.json [--warm 20 --cold 3 --out results.json] [--hide-index]

`--hide-index` runs the same binary as if the store had been written before the trace index
(every lookup lists every hour): the baseline the index is measured against.

`--clients N --seconds S` then runs the selected API answers (by id and run-scoped: what a
person opening runs waits for) from N clients at once for S seconds, each client cycling through
them with a new parameter each time, and reports p50 and p95 per answer and the answers per
second.

Needs `duckdb` from PyPI.
"""

import argparse
import itertools
import json
import threading
import os
import socket
import statistics
import subprocess
import time
import urllib.parse
import urllib.request

TENANT = "bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drop_caches():
    """Drops the OS page cache; False when not permitted."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


class Cairn:
    """`cairn query` on `store`, with the Postgres wire on `pg_port` when given."""

    def __init__(self, binary, store, memory="2GiB", pg_port=None):
        self.port = free_port()
        pg_addr = f"127.0.0.1:{pg_port}" if pg_port else "off"
        self.proc = subprocess.Popen(
            [binary, "query", "--store", store, "--http-addr", f"127.0.0.1:{self.port}", "--pg-addr", pg_addr,
             "--query-memory", memory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "CAIRN_LOG": "warn"},
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=1):
                    return
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("cairn query did not start")
                time.sleep(0.05)

    def request(self, call):
        kind, arg = call
        if kind == "get":
            req = urllib.request.Request(self.base + arg, headers={"X-Scope-OrgID": TENANT})
        else:
            req = urllib.request.Request(
                f"{self.base}/api/v1/sql", data=json.dumps({"sql": arg}).encode(),
                headers={"X-Scope-OrgID": TENANT, "content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as resp:
            body = resp.read()
        # SQL answers are JSON arrays of rows: their length is compared with DuckDB's.
        return len(json.loads(body)) if kind == "sql" else None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


class Duck:
    def __init__(self, store):
        import duckdb

        self.con = duckdb.connect()
        files = os.path.join(store, "spans", f"tenant={TENANT}", "*", "*.parquet")
        self.con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet('{files}')")

    def request(self, sql):
        return len(self.con.execute(sql).fetchall())


def suite(summary):
    """(name, cairn call for parameter i, portable SQL for parameter i or None)."""
    ids = summary["sample_trace_ids"]
    start = summary["first_hour_start_nanos"] // 10**9
    end = summary["end_nanos"] // 10**9
    agents = ["support", "research", "coder", "ops", "billing"]

    def day(i):
        t0 = start + (i * 86_400) % max(end - start - 86_400, 1)
        fmt = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        return fmt(t0), fmt(t0 + 86_400)

    def pod(i):
        return f"{agents[i % 5]}-agent-{i % 64:04x}"

    def uri(i):
        return f"s3://kb/docs/{(i * 37) % 5000}.md"

    def trace_sql(i):
        return ("SELECT trace_id, span_id, parent_span_id, name, start_time, duration_ns, operation, "
                f"agent_name, tool_name FROM spans WHERE trace_id = '{ids[i % len(ids)]}'")

    def search_sql(i):
        t0, t1 = day(i)
        return ("SELECT trace_id, min(start_time) AS started, count(*) AS spans, "
                "sum(input_tokens) AS input_tokens FROM spans WHERE trace_id IN ("
                f"SELECT trace_id FROM spans WHERE k8s_pod_name = '{pod(i)}' AND tool_name = 'issue_refund' "
                f"AND start_time >= '{t0}' AND start_time < '{t1}') "
                "GROUP BY trace_id ORDER BY started DESC LIMIT 50")

    def search_api(i):
        t0, t1 = day(i)
        q = urllib.parse.urlencode({"pod": pod(i), "tool": "issue_refund", "from": t0, "to": t1,
                                    "limit": 50})
        return ("get", f"/api/v1/runs?{q}")

    tools_by_hour = ("SELECT tool_name, date_trunc('hour', start_time) AS hour, count(*) AS calls "
                     "FROM spans WHERE operation = 'tool_call' "
                     "GROUP BY tool_name, date_trunc('hour', start_time) ORDER BY hour, tool_name")
    tokens_by_agent = ("SELECT k8s_pod_name, request_model, sum(input_tokens) + sum(output_tokens) AS tokens, "
                       "count(*) AS calls FROM spans WHERE operation = 'llm_call' "
                       "GROUP BY k8s_pod_name, request_model ORDER BY tokens DESC LIMIT 10")
    tokens_by_run = ("SELECT trace_id, sum(input_tokens) + sum(output_tokens) AS tokens FROM spans "
                     "WHERE operation = 'llm_call' GROUP BY trace_id ORDER BY tokens DESC LIMIT 10")

    def data_sql(i):
        return (f"SELECT trace_id, span_id, tool_name, start_time FROM spans "
                f"WHERE array_has(data_read, '{uri(i)}') ORDER BY start_time")

    large = summary.get("large_run_trace_id")
    step = summary.get("large_run_step")
    run_queries = [
        ("trail of the 10k-span run (API)", lambda i: ("get", f"/api/v1/runs/{large}"), None),
        ("replay of the 10k-span run, a page of 100 steps (API)",
         lambda i: ("get", f"/api/v1/runs/{large}/replay?offset={(i * 977) % 9000}&limit=100"), None),
        ("why-chain of a step of the 10k-span run (API)",
         lambda i: ("get", f"/api/v1/runs/{large}/steps/{step}/why"), None),
    ] if large and step else []
    return run_queries + [
        ("newest runs, first page of 50 (API)", lambda i: ("get", "/api/v1/runs?limit=50"), None),
        ("trace by id (API, with payloads)", lambda i: ("get", f"/api/v1/traces/{ids[i % len(ids)]}"), None),
        ("trace by id (SQL)", lambda i: ("sql", trace_sql(i)), trace_sql),
        ("run search: pod + tool + day (API)", search_api, None),
        ("run search: pod + tool + day (SQL)", lambda i: ("sql", search_sql(i)), search_sql),
        ("lineage of the 10k-span run (API)",
         lambda i: ("get", f"/api/v1/runs/{large}/lineage"), None) if large else None,
        ("tool calls by tool and hour (SQL)", lambda i: ("sql", tools_by_hour), lambda i: tools_by_hour),
        ("top token consumers: pod x model (SQL)", lambda i: ("sql", tokens_by_agent), lambda i: tokens_by_agent),
        ("top token consumers: runs (SQL)", lambda i: ("sql", tokens_by_run), lambda i: tokens_by_run),
        ("data lineage reverse: who read a URI (API)",
         lambda i: ("get", "/api/v1/data?" + urllib.parse.urlencode({"uri": uri(i)})), None),
        ("data lineage reverse: who read a URI (SQL)", lambda i: ("sql", data_sql(i)), data_sql),
    ]


def concurrent(cairn, queries, clients, seconds):
    """`clients` threads for `seconds`, each cycling through `queries` (Cairn's side), a new
    parameter for each request."""
    times = {name: [] for name, _, _ in queries}
    failed = []
    counter = itertools.count(2000)
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(k):
        for j in itertools.count(k):
            if time.perf_counter() >= deadline:
                return
            name, call, _ = queries[j % len(queries)]
            i = next(counter)
            try:
                t = timed(lambda: cairn.request(call(i)))
            except OSError as e:
                with lock:
                    failed.append(f"{name}: {e}")
                continue
            with lock:
                times[name].append(t)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {"clients": clients, "seconds": elapsed, "times": times,
            "answered": sum(len(v) for v in times.values()), "failed": len(failed),
            "failures": failed[:10]}


def timed(fn, rows=None):
    t = time.perf_counter()
    n = fn()
    elapsed = time.perf_counter() - t
    if rows is not None:
        rows.append(n)
    return elapsed


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cairn", required=True, help="path to the cairn binary")
    ap.add_argument("--store", required=True)
    ap.add_argument("--summary", required=True, help="JSON printed by cairn-bench generate")
    ap.add_argument("--warm", type=int, default=20)
    ap.add_argument("--cold", type=int, default=3)
    ap.add_argument("--memory", default="4GiB", help="cairn --query-memory")
    ap.add_argument("--only", help="run only queries whose name contains this")
    ap.add_argument("--out", help="write results as JSON here")
    ap.add_argument("--clients", type=int, default=0, help="concurrent clients for the mixed run")
    ap.add_argument("--seconds", type=float, default=30, help="length of the mixed run")
    ap.add_argument("--hide-index", action="store_true",
                    help="hide the trace index's completion marker for this run: lookups list every "
                         "hour, as for a store written before the index (the baseline)")
    args = ap.parse_args()
    summary = json.load(open(args.summary))
    marker = os.path.join(args.store, "trace_index", f"tenant={TENANT}", "complete.json")
    hidden = marker + ".hidden"
    if args.hide_index and os.path.exists(marker):
        os.rename(marker, hidden)
    try:
        run(args, summary)
    finally:
        if os.path.exists(hidden):
            os.rename(hidden, marker)


def large_run_step(cairn, large):
    """A tool call of the large run, for the why-chain."""
    req = urllib.request.Request(
        f"{cairn.base}/api/v1/sql",
        data=json.dumps({"sql": f"SELECT span_id FROM spans WHERE trace_id = '{large}' "
                                "AND operation = 'tool_call' ORDER BY start_time LIMIT 1"}).encode(),
        headers={"X-Scope-OrgID": TENANT, "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as resp:
        rows = json.loads(resp.read())
    return rows[0]["span_id"] if rows else None


def run(args, summary):
    if summary.get("large_run_trace_id") and "large_run_step" not in summary:
        probe = Cairn(args.cairn, args.store, args.memory)
        try:
            summary["large_run_step"] = large_run_step(probe, summary["large_run_trace_id"])
        finally:
            probe.stop()
    queries = [q for q in suite(summary) if q and (not args.only or args.only in q[0])]
    results = {name: {"cairn_cold": [], "cairn_warm": [], "duck_cold": [], "duck_warm": [],
                      "cairn_rows": [], "duck_rows": []}
               for name, _, _ in queries}
    dropped = True

    for rep in range(args.cold):
        for name, call, sql in queries:
            dropped &= drop_caches()
            cairn = Cairn(args.cairn, args.store, args.memory)
            try:
                results[name]["cairn_cold"].append(timed(lambda: cairn.request(call(rep))))
            finally:
                cairn.stop()
            if sql:
                dropped &= drop_caches()
                duck = Duck(args.store)
                results[name]["duck_cold"].append(timed(lambda: duck.request(sql(rep))))
                duck.con.close()
            print(f"cold {rep + 1}/{args.cold} {name}", flush=True)

    cairn = Cairn(args.cairn, args.store, args.memory)
    duck = Duck(args.store)
    try:
        for name, call, sql in queries:
            cairn.request(call(1000))
            for i in range(args.warm):
                results[name]["cairn_warm"].append(
                    timed(lambda: cairn.request(call(i)), results[name]["cairn_rows"]))
            if sql:
                duck.request(sql(1000))
                for i in range(args.warm):
                    results[name]["duck_warm"].append(
                        timed(lambda: duck.request(sql(i)), results[name]["duck_rows"]))
            print(f"warm {name}", flush=True)
        api = [q for q in queries if "(API" in q[0]]
        mixed = concurrent(cairn, api, args.clients, args.seconds) if args.clients and api else None
    finally:
        cairn.stop()

    ms = lambda v: f"{v * 1000:,.0f} ms" if v >= 0.1 else f"{v * 1000:.1f} ms"
    print(f"\n{summary['spans']:,} spans, {summary['runs']:,} runs; page cache "
          f"{'dropped' if dropped else 'NOT dropped (no permission)'} before cold runs\n")
    print("| query | Cairn cold p50 | Cairn warm p50 | Cairn warm p95 | DuckDB cold p50 | DuckDB warm p50 | DuckDB warm p95 | warm p50 Cairn / DuckDB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, _, sql in queries:
        r = results[name]
        row = [name, ms(pct(r["cairn_cold"], 50)) if r["cairn_cold"] else "–",
               ms(pct(r["cairn_warm"], 50)), ms(pct(r["cairn_warm"], 95))]
        if sql:
            row += [ms(pct(r["duck_cold"], 50)) if r["duck_cold"] else "–", ms(pct(r["duck_warm"], 50)),
                    ms(pct(r["duck_warm"], 95)), f"{pct(r['cairn_warm'], 50) / pct(r['duck_warm'], 50):.2f}"]
        else:
            row += ["–", "–", "–", "–"]
        print("| " + " | ".join(row) + " |")
    if mixed:
        print(f"\n{args.clients} clients at once for {mixed['seconds']:.0f} s: "
              f"{mixed['answered']} answers, {mixed['answered'] / mixed['seconds']:.1f} per second, "
              f"{mixed['failed']} failed\n")
        print("| query | answers | p50 | p95 |")
        print("|---|---|---|---|")
        for name, times in mixed["times"].items():
            if times:
                print(f"| {name} | {len(times)} | {ms(pct(times, 50))} | {ms(pct(times, 95))} |")
    if args.out:
        json.dump({"summary": summary, "page_cache_dropped": dropped, "results": results,
                   "mixed": mixed},
                  open(args.out, "w"), indent=1)
    # Both engines must have given the same number of rows for every parameter.
    wrong = [name for name, _, sql in queries
             if sql and results[name]["cairn_rows"] != results[name]["duck_rows"]]
    for name in wrong:
        print(f"DIFFERENT ANSWERS for {name}: Cairn rows {results[name]['cairn_rows']}, "
              f"DuckDB rows {results[name]['duck_rows']}")
    if wrong:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
