"""Ingest with pod enrichment from the Kubernetes API against without it, side by side.

The same `cairn-bench load` workload (OTLP/gRPC, 16 connections) is sent to `cairn serve` twice
on fresh directories: with `--kube off`, then with `--kube on` watching the fake Kubernetes API
server (`k8s/examples/fake_apiserver.rs`, the real list/watch wire format) seeded with a pod for
every pod name the workload's resources carry (`k8s.namespace.name` + `k8s.pod.name`, so the
`pod-name` association finds them) plus `--filler-pods` others, as a busy cluster would have.
Each enriched run is checked to have really filled placement from the API (`k8s_pod_uid_src =
'k8s_api'` on every span).

    cargo build --release --workspace
    cargo build --release -p cairn-k8s --features fake --example fake_apiserver
    python benches/k8s_enrichment.py --cairn target/release/cairn --bench target/release/cairn-bench \
        --fake-apiserver target/release/examples/fake_apiserver [--spans 300000] [--filler-pods 5000]
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from load_compare import cairn_load

# The tenant `cairn-bench load` sends as (its default).
TENANT = "bench"
# The agents and pod names of benches/src/workload.rs: `{agent}-agent-{run % 64:04x}`.
AGENTS = ["support", "research", "coder", "ops", "billing"]


def pod(namespace, name, uid, ip, node, owner_kind="ReplicaSet", owner=None):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace, "uid": uid,
            "labels": {"app.kubernetes.io/name": name.rsplit("-", 1)[0], "pod-template-hash": "5d8f7c9b4"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "controller": True,
                                 "name": owner or f"{name.rsplit('-', 1)[0]}-5d8f7c9b4", "uid": f"{uid}-owner"}],
        },
        "spec": {"nodeName": node, "serviceAccountName": "agent", "runtimeClassName": "gvisor",
                 "containers": [{"name": "agent", "image": "registry.example.com/agent:1"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "containerStatuses": [{"name": "agent", "containerID": f"containerd://{uid}",
                                          "image": "registry.example.com/agent:1", "imageID": "",
                                          "ready": True, "restartCount": 0}]},
    }


def seed(directory, filler):
    """Writes the cluster's pods as JSON files; returns how many."""
    n = 0
    for agent in AGENTS:
        for i in range(64):
            name = f"{agent}-agent-{i:04x}"
            obj = pod("agents", name, f"uid-{agent}-{i:04x}", f"10.60.{AGENTS.index(agent)}.{i + 1}",
                      f"node-{i % 8}")
            with open(os.path.join(directory, f"{n:06d}.json"), "w") as f:
                json.dump(obj, f)
            n += 1
    for i in range(filler):
        obj = pod(f"team-{i % 50}", f"svc-{i}-x7k2p", f"uid-filler-{i}", f"10.{100 + i // 65000}.{i // 250 % 256}.{i % 250 + 1}",
                  f"node-{i % 40}")
        with open(os.path.join(directory, f"{n:06d}.json"), "w") as f:
            json.dump(obj, f)
        n += 1
    return n


def sql(http_base, query, tenant):
    req = urllib.request.Request(f"{http_base}/api/v1/sql", data=json.dumps({"sql": query}).encode(),
                                 headers={"content-type": "application/json", "accept": "application/json",
                                          "X-Scope-OrgID": tenant})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def enriched_share(http_base):
    """Spans stored, spans whose pod uid came from the API, distinct pods (tenant of `cairn-bench`)."""
    return sql(http_base, "SELECT count(*) AS spans, count(*) FILTER (WHERE k8s_pod_uid_src = 'k8s_api') "
                          "AS enriched, count(DISTINCT k8s_pod_uid) AS pods FROM spans", TENANT)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cairn", required=True)
    ap.add_argument("--bench", required=True, help="the cairn-bench binary")
    ap.add_argument("--fake-apiserver", required=True, help="the fake_apiserver example binary of cairn-k8s")
    ap.add_argument("--spans", type=int, default=300_000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--filler-pods", type=int, default=5_000)
    ap.add_argument("--rounds", type=int, default=2, help="off/on pairs, alternating")
    ap.add_argument("--baseline", help="a cairn binary from before enrichment existed, run in each round too")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cairn-k8s-bench-")
    pods = os.path.join(work, "pods")
    os.makedirs(pods)
    count = seed(pods, args.filler_pods)
    kubeconfig = os.path.join(work, "kubeconfig")
    api = subprocess.Popen([args.fake_apiserver, "--seed", pods, "--kubeconfig", kubeconfig],
                           stdout=subprocess.PIPE, stderr=open(os.path.join(work, "fake.log"), "w"), text=True)
    rows = []
    try:
        print("fake API server at", api.stdout.readline().strip(), f"with {count:,} pods", flush=True)
        report = os.path.join(work, "reports.jsonl")
        modes = {
            "off": ["--kube", "off"],
            "on": ["--kube", "on", "--kubeconfig", kubeconfig],
        }
        runs = [(mode, args.cairn, extra) for mode, extra in modes.items()]
        if args.baseline:
            runs.insert(0, ("baseline", args.baseline, []))
        for round_ in range(args.rounds):
            for mode, binary, extra in runs:
                label = f"kube-{mode}-{round_}"
                row = cairn_load(binary, args.bench, "grpc", args.spans, args.connections, work, report,
                                 extra=extra, label=label, after=enriched_share)
                row["mode"] = mode
                rows.append(row)
                shutil.rmtree(os.path.join(work, label), ignore_errors=True)
                print(label, json.dumps({k: row[k] for k in ("visible_spans_per_second",
                                                             "cpu_seconds_per_million_spans", "after")}), flush=True)
                time.sleep(2)
    finally:
        api.terminate()
        api.wait()

    for r in rows:
        a = r["after"]
        if a["spans"] < r["spans"]:
            raise SystemExit(f"{r['label']}: {a['spans']} spans stored of {r['spans']} sent")
        if r["mode"] == "on" and a["enriched"] != a["spans"]:
            raise SystemExit(f"{r['label']}: only {a['enriched']} of {a['spans']} spans were enriched")
        if r["mode"] != "on" and a["enriched"]:
            raise SystemExit(f"{r['label']}: spans enriched with --kube off")

    def f(v, fmt="{:,.0f}"):
        return "–" if v is None else fmt.format(v)

    print("\n| run | spans | accepted spans/s | durable+visible spans/s | CPU s per M spans | peak RSS | enriched spans |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {r['spans']:,} | {f(r['accepted_spans_per_second'])} | {f(r['visible_spans_per_second'])} "
              f"| {f(r['cpu_seconds_per_million_spans'])} | {f((r['peak_rss_bytes'] or 0) / 2**20)} MiB "
              f"| {r['after']['enriched']:,} of {r['after']['spans']:,} ({r['after']['pods']} pods) |")

    def mean(mode, key):
        values = [r[key] for r in rows if r["mode"] == mode and r[key]]
        return sum(values) / len(values) if values else None

    for key, what in (("accepted_spans_per_second", "accepted spans/s"),
                      ("visible_spans_per_second", "durable+visible spans/s"),
                      ("cpu_seconds_per_million_spans", "CPU s per M spans"),
                      ("peak_rss_bytes", "peak RSS")):
        for mode in ("on", "off"):
            for base in ("off", "baseline"):
                a, b = mean(mode, key), mean(base, key)
                if a and b and mode != base:
                    print(f"{mode} / {base}, {what}: {a / b:.3f}")


if __name__ == "__main__":
    main()
