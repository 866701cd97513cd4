#!/usr/bin/env python3
"""Compare what Cairn's SQL API returns with the expected.json files written by send_spans.py.

Usage:
    check_sql.py --query http://HOST:PORT EXPECTED.json [EXPECTED.json ...]
                 [--tenant T] [--absent] [--ca CA.pem]

Every span of every file must be returned by `POST /api/v1/sql`, field by field; with
`--absent`, none of them may be visible (e.g. to the wrong tenant). Exits 1 on any mismatch.
Standard library only.
"""

from __future__ import annotations

import argparse
import calendar
import json
import re
import ssl
import sys
import urllib.request

COLUMNS = (
    "trace_id, span_id, parent_span_id, name, kind, "
    "cast(start_time as bigint) as start_time_unix_nano, "
    "cast(end_time as bigint) as end_time_unix_nano, "
    "status_code, status_message, service_name, scope_name, scope_version, "
    "attributes, attribute_types, resource_attributes, resource_attribute_types, events, links"
)
SCALARS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "status_code",
    "status_message",
    "service_name",
    "scope_name",
    "scope_version",
)
ISO = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:Z|\+00:00)$")


# TLS: the CA bundle the query API's certificate is checked against (`--ca`).
SSL_CONTEXT = None


def query(base: str, sql: str, tenant: str | None) -> list[dict]:
    headers = {"Content-Type": "application/json"}
    if tenant:
        headers["X-Scope-OrgID"] = tenant
    request = urllib.request.Request(
        f"{base.rstrip('/')}/api/v1/sql", data=json.dumps({"sql": sql}).encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=30, context=SSL_CONTEXT) as response:
        return json.load(response)


def iso_to_nanos(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 UTC timestamp as Arrow's JSON writer prints it."""
    m = ISO.match(text)
    if not m:
        raise ValueError(f"unexpected timestamp {text!r}")
    y, mo, d, h, mi, s, frac = m.groups()
    seconds = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s)))
    return seconds * 1_000_000_000 + int((frac or "").ljust(9, "0"))


def actual_attributes(values: dict | None, types: dict | None) -> list[dict]:
    """The expected.json attribute form of a pair of value/type maps (strings have no type)."""
    types = types or {}
    return [{"key": k, "value": v, "type": types.get(k, "string")} for k, v in (values or {}).items()]


def normalise(row: dict) -> dict:
    out = {k: row.get(k) for k in SCALARS}
    out["attributes"] = actual_attributes(row.get("attributes"), row.get("attribute_types"))
    out["resource_attributes"] = actual_attributes(
        row.get("resource_attributes"), row.get("resource_attribute_types")
    )
    out["events"] = [
        {
            "name": e.get("name"),
            "time_unix_nano": iso_to_nanos(e["time"]),
            "attributes": actual_attributes(e.get("attributes"), e.get("attribute_types")),
        }
        for e in row.get("events") or []
    ]
    out["links"] = [
        {
            "trace_id": link.get("trace_id"),
            "span_id": link.get("span_id"),
            "attributes": actual_attributes(link.get("attributes"), link.get("attribute_types")),
        }
        for link in row.get("links") or []
    ]
    return out


def diff(path: str, expected, actual, out: list[str]) -> None:
    """Appends one line per differing leaf."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            diff(f"{path}.{key}", expected.get(key), actual.get(key), out)
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            out.append(f"{path}: expected {len(expected)} items, got {len(actual)}")
        for i, (e, a) in enumerate(zip(expected, actual)):
            diff(f"{path}[{i}]", e, a, out)
    elif expected != actual:
        out.append(f"{path}: expected {expected!r}, got {actual!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--query", required=True, help="base URL of the query API")
    parser.add_argument("--tenant", help="sent as X-Scope-OrgID")
    parser.add_argument("--absent", action="store_true", help="expect none of the spans")
    parser.add_argument("--ca", help="PEM CA bundle of an https:// query API's certificate")
    parser.add_argument("expected", nargs="+")
    args = parser.parse_args()
    if args.ca:
        global SSL_CONTEXT
        SSL_CONTEXT = ssl.create_default_context(cafile=args.ca)

    expected = {}
    for path in args.expected:
        with open(path, encoding="utf-8") as f:
            for span in json.load(f):
                expected[span["span_id"]] = span
    trace_ids = sorted({s["trace_id"] for s in expected.values()})
    in_list = ", ".join(f"'{t}'" for t in trace_ids)
    rows = query(
        args.query,
        f"select {COLUMNS} from spans where trace_id in ({in_list}) order by start_time, span_id",
        args.tenant,
    )

    if args.absent:
        if rows:
            print(f"FAIL: {len(rows)} spans visible, expected none", file=sys.stderr)
            return 1
        print(f"ok: none of {len(expected)} spans visible")
        return 0

    problems: list[str] = []
    actual = {row["span_id"]: normalise(row) for row in rows}
    if len(actual) != len(rows):
        problems.append(f"{len(rows) - len(actual)} spans returned more than once")
    for span_id in sorted(set(expected) - set(actual)):
        problems.append(f"span {span_id} ({expected[span_id]['name']}): missing")
    for span_id in sorted(set(actual) - set(expected)):
        problems.append(f"span {span_id}: unexpected")
    for span_id in sorted(set(expected) & set(actual)):
        diff(f"span {span_id} ({expected[span_id]['name']})", expected[span_id], actual[span_id], problems)
    for line in problems:
        print(f"FAIL: {line}", file=sys.stderr)
    print(f"{len(set(expected) & set(actual))} spans compared, {len(problems)} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
