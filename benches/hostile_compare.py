#!/usr/bin/env python3
"""Hostile requests against two Cairn binaries side by side, in one run.

Each binary is started with `cairn serve` on a fresh store and free loopback ports, and gets the
same requests:

- SQL whose parse backtracks exponentially (`SELECT NOT + NOT + ... )`, at two depths, and the
  1.1 KB input the SQL fuzz target saved), timed to the answer or to the client's give-up;
- a connection that sends nothing, and one that trickles its request head a byte a second,
  each watched for 15 s: closed by the server, or still holding a connection slot;
- whether the query port serves its own metrics.

    python benches/hostile_compare.py --old /path/to/old/cairn --new target/debug/cairn

Only the standard library is used.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZ_INPUT = os.path.join(HERE, "..", "fuzz", "regressions", "sql", "timeout-guard-parse")
GIVE_UP = 60.0
WATCH = 15.0


def start(binary, workdir):
    ready = os.path.join(workdir, "ready.json")
    proc = subprocess.Popen(
        [binary, "serve", "--store", os.path.join(workdir, "data"),
         "--otlp-grpc-addr", "127.0.0.1:0", "--otlp-http-addr", "127.0.0.1:0",
         "--http-addr", "127.0.0.1:0", "--pg-addr", "off", "--ready-file", ready],
        env={**os.environ, "CAIRN_WAL_DIR": os.path.join(workdir, "wal"), "CAIRN_LOG": "warn"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not os.path.exists(ready):
        if proc.poll() is not None or time.time() > deadline:
            sys.exit(f"{binary} did not start")
        time.sleep(0.1)
    time.sleep(0.2)
    with open(ready) as f:
        return proc, json.load(f)["http"]


def sql(http, text):
    body = json.dumps({"sql": text}).encode()
    req = urllib.request.Request(f"http://{http}/api/v1/sql", data=body,
                                 headers={"content-type": "application/json"})
    started = time.time()
    try:
        with urllib.request.urlopen(req, timeout=GIVE_UP) as resp:
            status = resp.status
    except urllib.error.HTTPError as e:
        status = e.code
    except (TimeoutError, socket.timeout, urllib.error.URLError):
        return f"no answer after {GIVE_UP:.0f} s"
    return f"{status} in {time.time() - started:.2f} s"


def watch(http, trickle):
    host, port = http.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.settimeout(1.0)
    started = time.time()
    head = b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: "
    sent = 0
    while time.time() - started < WATCH:
        try:
            if trickle:
                s.send(head[sent:sent + 1] if sent < len(head) else b"a")
                sent += 1
            if s.recv(1) == b"":
                return f"closed by the server after {time.time() - started:.1f} s"
        except socket.timeout:
            continue
        except OSError:
            return f"closed by the server after {time.time() - started:.1f} s"
    s.close()
    return f"still open after {WATCH:.0f} s"


def metrics(http):
    try:
        with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        return "served, with query metrics" if "cairn_query_requests" in text else "served"
    except urllib.error.HTTPError as e:
        return f"{e.code}"


def run(binary):
    with tempfile.TemporaryDirectory() as workdir:
        proc, http = start(binary, workdir)
        try:
            with open(FUZZ_INPUT) as f:
                fuzz_sql = f.read()
            results = {}
            for depth in (16, 20):
                results[f"SQL NOT+ x{depth}"] = sql(http, "SELECT " + "NOT + " * depth + ")")
            results["silent connection"] = watch(http, trickle=False)
            results["trickling head"] = watch(http, trickle=True)
            results["/metrics on the query port"] = metrics(http)
            # Last: on a binary without the bound, this parse keeps a thread busy long after
            # the client gave up.
            results["SQL fuzz input (1.1 KB)"] = sql(http, fuzz_sql)
            return results
        finally:
            proc.kill()
            proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True)
    parser.add_argument("--new", required=True)
    args = parser.parse_args()
    old, new = run(args.old), run(args.new)
    width = max(len(k) for k in old)
    print(f"{'':{width}}  {'old':34}  new")
    for key in old:
        print(f"{key:{width}}  {old[key]:34}  {new[key]}")


if __name__ == "__main__":
    main()
