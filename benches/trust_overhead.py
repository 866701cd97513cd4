"""What access tokens, a signed chain, redaction and TLS cost on ingest, side by side with the
binary from before them.

The same `cairn-bench load` workload (OTLP/gRPC, 16 connections; the first user message of one
run in `--secrets-every` carries an email address, a card number and an OpenAI-style key) is
sent to `cairn serve` on fresh directories, in rounds that alternate:

- `baseline`: a `cairn` binary from before access tokens, TLS, redaction and the chain;
- `default`: the new binary as it starts with no settings (an unsigned chain of every file);
- `signed`: `--chain-signing-key` (every chain entry and head signed with Ed25519);
- `auth`: signed, and `--auth-tokens` (the bench exports with an `ingest` token and counts with
  a `read` token);
- `redact`: auth, and `--redaction-rules` with the `email`, `openai_key` and `credit_card`
  presets (every string value scanned; the runs with secrets masked);
- `tls`: redact, and `--tls-cert`/`--tls-key` on every listener (the bench trusts the CA).

After each load, before the server stops, the spans stored are counted and, through the
`messages` table, the user messages still holding one of the workload's email addresses (with
redaction: none, and the spans carrying a redaction record are counted). After the server
stops, every run of the new binary is checked with `cairn verify` over the store it wrote (with
the public key when signed), timed.

    cargo build --release --workspace
    python benches/trust_overhead.py --cairn target/release/cairn --bench target/release/cairn-bench \\
        --baseline /path/to/cairn-before [--spans 300000] [--rounds 2]
"""

import argparse
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request

from load_compare import cairn_load

# The tenant `cairn-bench load` sends as (its default).
TENANT = "bench"
REDACTION_RULES = """\
[[rule]]
name = "email"
preset = "email"

[[rule]]
name = "openai_key"
preset = "openai_key"

[[rule]]
name = "credit_card"
preset = "credit_card"
"""


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def certificates(directory):
    """A CA and a server certificate it signs for 127.0.0.1: (ca, cert, key) PEM files."""
    ca, ca_key = os.path.join(directory, "ca.pem"), os.path.join(directory, "ca.key")
    cert, key, csr = (os.path.join(directory, f) for f in ("server.pem", "server.key", "server.csr"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=bench-ca", "-keyout", ca_key, "-out", ca)
    openssl("req", "-new", *ec, "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr)
    ext = os.path.join(directory, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
            "-extfile", ext, "-out", cert)
    return ca, cert, key


def token(cairn, tokens, role):
    out = subprocess.run([cairn, "token", "create", "--auth-tokens", tokens, "--tenant", TENANT,
                          "--role", role], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def sql(http_base, query, token=None, ca=None):
    headers = {"content-type": "application/json", "accept": "application/json", "X-Scope-OrgID": TENANT}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"{http_base}/api/v1/sql", data=json.dumps({"sql": query}).encode(),
                                 headers=headers)
    context = ssl.create_default_context(cafile=ca) if ca else None
    with urllib.request.urlopen(req, timeout=300, context=context) as resp:
        return json.loads(resp.read())


def stored(redacting, token=None, ca=None):
    """What the store holds after a load: spans, user messages with a workload email address,
    and (when redacting) spans with a redaction record."""
    def after(http_base):
        out = sql(http_base, "SELECT count(*) AS spans FROM spans", token, ca)[0]
        out.update(sql(http_base, "SELECT count(*) AS leaked FROM messages "
                                  "WHERE content LIKE '%@example.com%'", token, ca)[0])
        if redacting:
            out.update(sql(http_base, "SELECT count(*) AS redacted FROM spans "
                                      "WHERE redactions IS NOT NULL", token, ca)[0])
        return out
    return after


def verify(cairn, store, public_key=None):
    """`cairn verify` of the store written: seconds and the problems it found (it exits 1 on
    any, which is reported, not raised, so that one bad run does not lose the others)."""
    argv = [cairn, "verify", "--store", store, "--tenant", TENANT, "--json", "--log", "warn"]
    if public_key:
        argv += ["--public-key", public_key]
    started = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.monotonic() - started
    try:
        problems = json.loads(out.stdout)["problems"]
    except (ValueError, KeyError):
        problems = [f"exit {out.returncode}: {out.stderr.strip()[-500:]}"]
    return {"seconds": seconds, "problems": problems}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cairn", required=True)
    ap.add_argument("--bench", required=True, help="the cairn-bench binary")
    ap.add_argument("--baseline", help="a cairn binary from before tokens, TLS, redaction and the chain")
    ap.add_argument("--spans", type=int, default=300_000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--secrets-every", type=int, default=10, help="one run in this many carries secrets")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--modes", default="baseline,default,signed,auth,redact,tls")
    ap.add_argument("--out", help="append every report as a JSON line here")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cairn-trust-bench-")
    report = args.out or os.path.join(work, "reports.jsonl")

    key = os.path.join(work, "chain.pem")
    public_key = subprocess.run([args.cairn, "chain", "keygen", "--out", key], check=True,
                                capture_output=True, text=True).stdout.strip()
    tokens = os.path.join(work, "tokens.toml")
    ingest, read = token(args.cairn, tokens, "ingest"), token(args.cairn, tokens, "read")
    rules = os.path.join(work, "redaction.toml")
    with open(rules, "w") as f:
        f.write(REDACTION_RULES)
    ca, cert, cert_key = certificates(work)

    signed = ["--chain-signing-key", key]
    auth = [*signed, "--auth-tokens", tokens]
    redact = [*auth, "--redaction-rules", rules]
    tls = [*redact, "--tls-cert", cert, "--tls-key", cert_key]
    tokens_args = ["--token", ingest, "--query-token", read]
    # mode: (binary, server flags, bench flags, CA, signed, redacting)
    modes = {
        "baseline": (args.baseline, [], [], None, False, False),
        "default": (args.cairn, [], [], None, False, False),
        "signed": (args.cairn, signed, [], None, True, False),
        "auth": (args.cairn, auth, tokens_args, None, True, False),
        "redact": (args.cairn, redact, tokens_args, None, True, True),
        "tls": (args.cairn, tls, tokens_args, ca, True, True),
    }
    wanted = [m for m in args.modes.split(",") if m != "baseline" or args.baseline]
    rows, failures = [], []
    for round_ in range(args.rounds):
        for mode in wanted:
            binary, extra, bench_extra, mode_ca, is_signed, redacting = modes[mode]
            label = f"{mode}-{round_}"
            try:
                row = cairn_load(binary, args.bench, "grpc", args.spans, args.connections, work, report,
                                 extra=extra, label=label,
                                 after=stored(redacting, read if bench_extra else None, mode_ca),
                                 bench_extra=["--secrets-every", str(args.secrets_every), *bench_extra],
                                 ca=mode_ca)
            except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
                # Reported with the others at the end; the server's log stays in the work directory.
                failures.append(f"{label}: {e} (see {work}/{label}.log)")
                print(label, "failed:", e, flush=True)
                continue
            row["mode"] = mode
            if mode != "baseline":
                row["verify"] = verify(args.cairn, os.path.join(work, label, "store"),
                                       public_key if is_signed else None)
            rows.append(row)
            shutil.rmtree(os.path.join(work, label), ignore_errors=True)
            print(label, json.dumps({k: row.get(k) for k in ("visible_spans_per_second",
                                                             "cpu_seconds_per_million_spans", "after",
                                                             "verify")}), flush=True)
            time.sleep(2)

    for r in rows:
        a = r["after"]
        if a["spans"] < r["spans"]:
            failures.append(f"{r['label']}: {a['spans']} spans stored of {r['spans']} sent")
        redacting = modes[r["mode"]][5]
        if redacting and (a["leaked"] or not a["redacted"]):
            failures.append(f"{r['label']}: {a['leaked']} messages kept an email, {a['redacted']} spans redacted")
        if not redacting and not a["leaked"]:
            failures.append(f"{r['label']}: no secrets stored without redaction: the workload carries none")
        if "verify" in r and r["verify"]["problems"]:
            failures.append(f"{r['label']}: verify found {r['verify']['problems'][:5]}")

    def f(v, fmt="{:,.0f}"):
        return "–" if v is None else fmt.format(v)

    def verified(v):
        if not v:
            return "–"
        what = f"{len(v['problems'])} problems" if v["problems"] else "clean"
        return f"{what}, {v['seconds']:.2f} s"

    print(f"\nreports in {report}")
    print("\n| run | spans | accepted spans/s | durable+visible spans/s | CPU s per M spans | peak RSS "
          "| stored | redacted spans | verify |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {r['spans']:,} | {f(r['accepted_spans_per_second'])} | {f(r['visible_spans_per_second'])} "
              f"| {f(r['cpu_seconds_per_million_spans'])} | {f((r['peak_rss_bytes'] or 0) / 2**20)} MiB "
              f"| {r['after']['spans']:,} | {f(r['after'].get('redacted'))} "
              f"| {verified(r.get('verify'))} |")

    def mean(mode, key):
        values = [r[key] for r in rows if r["mode"] == mode and r[key]]
        return sum(values) / len(values) if values else None

    print("\n| mode | durable+visible spans/s | CPU s per M spans | peak RSS | verify s "
          "| throughput / baseline | CPU / baseline | RSS / baseline |")
    print("|---|---|---|---|---|---|---|---|")
    base = {k: mean("baseline", k) for k in ("visible_spans_per_second", "cpu_seconds_per_million_spans",
                                            "peak_rss_bytes")}
    ratio = lambda a, b: "–" if not a or not b else f"{a / b:.3f}"
    for mode in wanted:
        vis, cpu, rss = (mean(mode, k) for k in ("visible_spans_per_second", "cpu_seconds_per_million_spans",
                                                 "peak_rss_bytes"))
        verifies = [r["verify"]["seconds"] for r in rows if r["mode"] == mode and "verify" in r]
        print(f"| {mode} | {f(vis)} | {f(cpu)} | {f((rss or 0) / 2**20)} MiB "
              f"| {f(sum(verifies) / len(verifies), '{:.2f}') if verifies else '–'} "
              f"| {ratio(vis, base['visible_spans_per_second'])} | {ratio(cpu, base['cpu_seconds_per_million_spans'])} "
              f"| {ratio(rss, base['peak_rss_bytes'])} |")

    if failures:
        raise SystemExit("\n".join(failures))


if __name__ == "__main__":
    main()
