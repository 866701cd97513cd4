"""Peak memory of the collector against its budget under sustained overload, side by side with
the binary from before.

For each `--max-buffer-size` budget, `cairn-bench load` sends the agent workload in export
requests of 4 to 15 MiB (`--runs-per-request` 100 and 350; about 44 KB per run) over 16 and
over 64 connections, each connection sending as fast as it is answered and retrying what is
refused: the offered load is what the clients can push, many times what the server sustains.
The server's peak RSS (VmHWM from `/proc`) is read by `cairn-bench load` when it ends, and put
beside the budget: the goal is peak RSS at most the budget plus 200 MiB. Both binaries serve
the same loads in alternating order, on fresh directories.

    python benches/memory_budget.py --cairn target/release/cairn --bench target/release/cairn-bench \\
        --baseline /path/to/cairn-before [--budgets 64,128,256,512] [--spans 60000]
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

from load_compare import cairn_load

MIB = 1 << 20


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cairn", required=True)
    ap.add_argument("--bench", required=True, help="the cairn-bench binary")
    ap.add_argument("--baseline", help="a cairn binary from before, run beside it")
    ap.add_argument("--budgets", default="64,128,256,512", help="--max-buffer-size values, in MiB")
    ap.add_argument("--connections", default="16,64")
    ap.add_argument("--runs-per-request", default="100,350", help="4 and 15 MiB requests")
    ap.add_argument("--protocol", default="grpc", choices=["grpc", "http"])
    ap.add_argument("--spans", type=int, default=60_000)
    ap.add_argument("--out", help="append every report as a JSON line here")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cairn-memory-bench-")
    report = args.out or os.path.join(work, "reports.jsonl")
    binaries = [("new", args.cairn)] + ([("baseline", args.baseline)] if args.baseline else [])

    rows, failures = [], []
    for budget in (int(b) for b in args.budgets.split(",")):
        for connections in (int(c) for c in args.connections.split(",")):
            for runs in (int(r) for r in args.runs_per_request.split(",")):
                # Alternate which binary goes first, so neither always meets a warmer page cache.
                order = binaries if (budget + connections + runs) % 2 == 0 else binaries[::-1]
                for name, binary in order:
                    label = f"{name}-{budget}m-{connections}c-{runs}r"
                    try:
                        row = cairn_load(binary, args.bench, args.protocol, args.spans, connections, work,
                                         report, extra=["--max-buffer-size", f"{budget}MiB"], label=label,
                                         bench_extra=["--runs-per-request", str(runs)])
                    except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
                        failures.append(f"{label}: {e} (see {work}/{label}.log)")
                        print(label, "failed:", e, flush=True)
                        continue
                    row.update(binary=name, budget_mib=budget, runs_per_request=runs)
                    rows.append(row)
                    shutil.rmtree(os.path.join(work, label), ignore_errors=True)
                    print(label, json.dumps({k: row.get(k) for k in (
                        "peak_rss_bytes", "refusals", "visible_spans", "accepted_otlp_mb_per_second")}),
                        flush=True)
                    time.sleep(1)

    for r in rows:
        if r["visible_spans"] < r["spans"]:
            failures.append(f"{r['label']}: {r['visible_spans']} spans visible of {r['spans']} sent")

    print()
    print("| budget | connections | request | binary | peak RSS | over the budget | goal (budget + 200 MiB) | refusals | MB/s accepted |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rss = (r.get("peak_rss_bytes") or 0) / MIB
        size = r["otlp_bytes"] / max(r["requests"], 1) / MIB
        print(f"| {r['budget_mib']} MiB | {r['connections']} | {size:.1f} MiB | {r['binary']} | {rss:,.0f} MiB "
              f"| {rss - r['budget_mib']:+,.0f} MiB | {'met' if rss <= r['budget_mib'] + 200 else 'missed'} "
              f"| {r['refusals']:,} | {r['accepted_otlp_mb_per_second']:.1f} |")
    print(f"\nreports: {report}")
    if failures:
        print("\nFAILED:\n" + "\n".join(failures))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
