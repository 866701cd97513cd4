"""The tamper-evident chain on a large store: `cairn chain adopt` and `cairn verify`.

Copies a store written before the chain existed (never changing the original), records every
file in it with `cairn chain adopt` (signed with a fresh key), then checks every file against
the chain with `cairn verify`. Reports, for each: seconds, bytes hashed per second, peak RSS,
and the size of the chain itself.

    python benches/chain_verify.py --cairn target/release/cairn \\
        --source /var/tmp/cairn-10m-c --copy /var/tmp/cairn-10m-chain --tenant bench
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def run_measured(argv):
    """As `run`, with the child's peak RSS from wait4."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(argv)} failed ({code}):\n{out.decode()}\n{err.decode()}")
    return seconds, usage.ru_maxrss / 1024, out.decode()


def tree_bytes(path):
    total = files = 0
    for root, _, names in os.walk(path):
        for n in names:
            total += os.path.getsize(os.path.join(root, n))
            files += 1
    return total, files


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cairn", required=True, help="the cairn binary")
    ap.add_argument("--source", default="/var/tmp/cairn-10m-c", help="store to copy (left untouched)")
    ap.add_argument("--copy", default="/var/tmp/cairn-10m-chain", help="where the copy goes")
    ap.add_argument("--tenant", default="bench")
    ap.add_argument("--parallel", type=int, default=8, help="files read at once")
    ap.add_argument("--fresh", action="store_true", help="copy again even if --copy exists")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()

    if args.fresh and os.path.exists(args.copy):
        shutil.rmtree(args.copy)
    if not os.path.exists(args.copy):
        subprocess.run(["cp", "-a", "--reflink=auto", args.source, args.copy], check=True)
    # A copy adopted by an earlier run starts over.
    shutil.rmtree(os.path.join(args.copy, "_chain"), ignore_errors=True)
    data_bytes, data_files = tree_bytes(args.copy)

    keys = tempfile.mkdtemp(prefix="cairn-chain-key-")
    key = os.path.join(keys, "chain.pem")
    _, _, public = run_measured([args.cairn, "chain", "keygen", "--out", key])
    public = public.strip()

    env_log = ["--log", "warn"]
    adopt_s, adopt_rss, adopt_out = run_measured(
        [args.cairn, "chain", "adopt", "--store", args.copy, "--tenant", args.tenant,
         "--chain-signing-key", key, "--parallel", str(args.parallel)] + env_log)
    chain_bytes, chain_files = tree_bytes(os.path.join(args.copy, "_chain"))
    verify_s, verify_rss, verify_out = run_measured(
        [args.cairn, "verify", "--store", args.copy, "--tenant", args.tenant, "--public-key", public,
         "--parallel", str(args.parallel), "--json"] + env_log)
    report = json.loads(verify_out)
    if report["problems"]:
        sys.exit(f"verify found problems: {report['problems'][:5]}")
    shutil.rmtree(keys)

    figures = {
        "store_bytes": data_bytes,
        "store_files": data_files,
        "adopt": {"seconds": adopt_s, "peak_rss_mib": adopt_rss, "output": adopt_out.strip()},
        "verify": {"seconds": verify_s, "peak_rss_mib": verify_rss, "files": report["files"],
                   "bytes": report["bytes"], "entries": report["entries"]},
        "chain_bytes": chain_bytes,
        "chain_objects": chain_files,
        "parallel": args.parallel,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=2)
    mb = lambda b: b / 1e6
    print(f"store: {data_files:,} files, {mb(data_bytes):,.0f} MB; chain: {chain_files} objects, {chain_bytes:,} bytes")
    print("| step | seconds | MB hashed/s | peak RSS |")
    print("|---|---|---|---|")
    print(f"| `cairn chain adopt` | {adopt_s:.1f} | {mb(data_bytes) / adopt_s:,.0f} | {adopt_rss:,.0f} MiB |")
    print(f"| `cairn verify` | {verify_s:.1f} | {mb(report['bytes']) / verify_s:,.0f} | {verify_rss:,.0f} MiB |")


if __name__ == "__main__":
    main()
