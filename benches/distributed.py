"""Statements of the query suite run in the querier, and on Ballista with one and with two executors.

Serves a store written by `cairn-bench generate` three ways at once, all on this machine:

- local: `cairn query` alone (every statement runs in it);
- 1 executor: `cairn scheduler`, one `cairn executor` and a `cairn query --scheduler`;
- 2 executors: another scheduler, two executors and a querier.

Each statement goes to every querier with the `/*+ DISTRIBUTED */` hint (the local one has no
scheduler, so it runs there); after one unmeasured run each, the three are timed in turn, the
order rotating each round, so that they share the machine's state alike. The answers must be
the same (rows compared with floating-point sums rounded). Latency is wall time at the client.

    cairn-bench generate --store /var/tmp/cairn-10m > /var/tmp/cairn-10m.json
    python benches/distributed.py --cairn target/release/cairn --store /var/tmp/cairn-10m \
        --summary /var/tmp/cairn-10m.json [--reps 5 --slots 2 --out results.json] \
        [--baseline-cairn old/cairn]

With `--baseline-cairn`, a fourth setup runs two executors, their scheduler and querier from
another build (an earlier commit's), in the same rotation: the cost of a change to the
distributed path, side by side with the build before it.

Idle processes cost nothing; while one configuration runs, the others wait. On a machine of N
cores one executor with N slots already has every core; a second executor on the same cores
adds processes, not cores: what it shows is the cost of the extra exchange, not scale-out.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

TENANT = "bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.05)


class Cluster:
    """A querier, and when `executors` > 0 a scheduler and that many executors it sends to."""

    def __init__(self, binary, store, executors, slots, work):
        self.procs = []
        env = {**os.environ, "CAIRN_LOG": "warn"}
        args = []
        if executors:
            sched = free_port()
            self.spawn([binary, "scheduler", "--store", store, "--scheduler-addr", f"127.0.0.1:{sched}",
                        "--metrics-addr", "127.0.0.1:0"], env)
            wait_port(sched, self.procs[-1], "the scheduler")
            for n in range(executors):
                flight = free_port()
                self.spawn([binary, "executor", "--store", store, "--scheduler", f"127.0.0.1:{sched}",
                            "--executor-addr", f"127.0.0.1:{flight}",
                            "--executor-grpc-addr", f"127.0.0.1:{free_port()}",
                            "--executor-slots", str(slots), "--executor-memory", "2GiB",
                            "--executor-work-dir", os.path.join(work, f"exec-{sched}-{n}"),
                            "--metrics-addr", "127.0.0.1:0"], env)
                wait_port(flight, self.procs[-1], "an executor")
            args = ["--scheduler", f"127.0.0.1:{sched}", "--distribute-partitions", str(executors * slots)]
        self.port = free_port()
        self.spawn([binary, "query", "--store", store, "--http-addr", f"127.0.0.1:{self.port}",
                    "--pg-addr", "off", "--query-memory", "2GiB", "--query-timeout", "10m", *args], env)
        wait_port(self.port, self.procs[-1], "the querier")
        # Executors register with their scheduler after they listen.
        if executors:
            deadline = time.time() + 60
            while True:
                try:
                    self.sql("SELECT count(*) FROM spans WHERE duration_ns < 0")
                    break
                except urllib.error.HTTPError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.5)

    def spawn(self, cmd, env):
        self.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))

    def sql(self, sql):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1/sql",
            data=json.dumps({"sql": f"/*+ DISTRIBUTED */ {sql}"}).encode(),
            headers={"X-Scope-OrgID": TENANT, "content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=900) as resp:
            return json.loads(resp.read())

    def stop(self):
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            p.wait(timeout=120)


def canonical(rows):
    def rounded(v):
        if isinstance(v, float):
            return f"{v:.11e}"
        if isinstance(v, list):
            return [rounded(x) for x in v]
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items()}
        return v
    return sorted(json.dumps(rounded(r), sort_keys=True) for r in rows)


def statements(summary):
    ids = summary["sample_trace_ids"]
    return [
        ("tool calls by tool and hour", "SELECT tool_name, date_trunc('hour', start_time) AS hour, count(*) AS calls "
         "FROM spans WHERE operation = 'tool_call' GROUP BY tool_name, date_trunc('hour', start_time) "
         "ORDER BY hour, tool_name"),
        ("top token consumers: pod x model", "SELECT k8s_pod_name, request_model, "
         "sum(input_tokens) + sum(output_tokens) AS tokens, count(*) AS calls FROM spans "
         "WHERE operation = 'llm_call' GROUP BY k8s_pod_name, request_model ORDER BY tokens DESC LIMIT 10"),
        ("top token consumers: runs", "SELECT trace_id, sum(input_tokens) + sum(output_tokens) AS tokens "
         "FROM spans WHERE operation = 'llm_call' GROUP BY trace_id ORDER BY tokens DESC LIMIT 10"),
        ("distinct runs and agents per hour", "SELECT date_trunc('hour', start_time) AS hour, "
         "count(DISTINCT trace_id) AS runs, count(DISTINCT agent_name) AS agents, sum(duration_ns) AS ns "
         "FROM spans GROUP BY 1 ORDER BY 1"),
        ("small: trace by id", "SELECT trace_id, span_id, parent_span_id, name, start_time, duration_ns "
         f"FROM spans WHERE trace_id = '{ids[0]}'"),
        ("small: a constant", "SELECT 1 AS one"),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cairn", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--slots", type=int, default=os.cpu_count())
    ap.add_argument("--out")
    ap.add_argument("--baseline-cairn", help="another build, run as a fourth setup of two executors")
    a = ap.parse_args()
    with open(a.summary) as f:
        summary = json.load(f)
    work = tempfile.mkdtemp(prefix="cairn-distributed-")
    configs = {}
    try:
        configs["local"] = Cluster(a.cairn, a.store, 0, a.slots, work)
        configs["1 executor"] = Cluster(a.cairn, a.store, 1, a.slots, work)
        configs["2 executors"] = Cluster(a.cairn, a.store, 2, a.slots, work)
        if a.baseline_cairn:
            configs["2 executors, baseline"] = Cluster(a.baseline_cairn, a.store, 2, a.slots, work)
        names = list(configs)
        results = {}
        for title, sql in statements(summary):
            answers = {n: canonical(configs[n].sql(sql)) for n in names}
            same = all(answers[n] == answers["local"] for n in names)
            times = {n: [] for n in names}
            for rep in range(a.reps):
                order = names[rep % len(names):] + names[:rep % len(names)]
                for n in order:
                    t = time.perf_counter()
                    configs[n].sql(sql)
                    times[n].append(time.perf_counter() - t)
            p50 = {n: statistics.median(times[n]) for n in names}
            results[title] = {"p50_s": p50, "times_s": times, "same_answer": same,
                              "rows": len(answers["local"])}
            cells = " | ".join(f"{p50[n] * 1000:,.0f} ms" + ("" if n == "local" else f" ({p50[n] / p50['local']:.2f})")
                               for n in names)
            print(f"| {title} | {cells} |{'' if same else ' ANSWERS DIFFER'}", flush=True)
        if a.out:
            with open(a.out, "w") as f:
                json.dump({"slots": a.slots, "reps": a.reps, "results": results}, f, indent=2)
        if not all(r["same_answer"] for r in results.values()):
            raise SystemExit("answers differ")
    finally:
        for c in configs.values():
            c.stop()


if __name__ == "__main__":
    main()
