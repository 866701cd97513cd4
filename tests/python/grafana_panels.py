#!/usr/bin/env python3
"""Run every query of Cairn's shipped Grafana dashboards the way Grafana sends it.

Usage:
    grafana_panels.py --datasources FILE --dashboards DIR --pg HOST:PORT --tempo URL
                      --from RFC3339 --to RFC3339 --trace-id HEX [--agent NAME]
    grafana_panels.py --datasources FILE --pg HOST:PORT --tempo URL --save-and-test

The credentials are those of the provisioned data sources in FILE
(deploy/grafana/provisioning/datasources/cairn.yaml), with Grafana's environment variables
(CAIRN_TENANT, CAIRN_TOKEN, …) interpolated as Grafana's provisioning does: `$VAR` and `${VAR}`
from the environment, empty when unset, `$$` a literal `$`. The Tempo data source's HTTP headers
(`httpHeaderNameN` in jsonData, `httpHeaderValueN` in secureJsonData) go with every Tempo
request; the PostgreSQL data source's `user` and secureJsonData `password` log in.

--save-and-test does what Grafana's "Save & test" does for both data sources (Tempo: GET
`/api/echo`; PostgreSQL: log in and `-- ping`) and prints {"tempo": {"status": n, "body": …},
"sql": {"ok": bool, "error": "…"}} without failing on a refusal.

For each panel target of each dashboard in DIR:
  * PostgreSQL targets: Grafana's macros and template variables are expanded as its PostgreSQL
    data source does (grafana/grafana pkg/tsdb/grafana-postgresql-datasource/macros.go: the
    `$__timeFilter`, `$__timeGroup(Alias)`, `$__time`, `$__timeFrom/To` forms; SQL variables
    quoted and comma-joined, the "All" value inserted as written), then the SQL is sent with
    libpq's simple query protocol (psycopg's `pgconn.exec_`), as Grafana's pgx driver does. The
    answer must be one result set with a `SELECT n` command tag; a time-series query must have a
    `time` column of a time type or epoch number and numeric values (Grafana's pgx/sql_engine.go
    uses only `SELECT` results and converts by type OID).
  * Tempo targets: a TraceQL query goes to `/api/search` with Grafana's parameters, a trace id
    to `/api/v2/traces/{id}` with `Accept: application/protobuf`.

Prints one JSON object: {"<dashboard uid>/<panel title>": {"rows": n, "columns": {name: oid},
"first": [the first row's values as text]}
or {"traces": n} or {"bytes": n}, ...}; queries run once per agent choice ("All", and --agent
when given, the latter keyed "<uid>/<title> [agent]"). Exits 1 on the first failing query, naming
it.
"""

import argparse
import datetime as dt
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
import yaml
from psycopg import pq

SQL_UID, TEMPO_UID = "cairn-sql", "cairn-tempo"
TIME_OIDS = {1184, 1114, 1082, 701, 700, 20, 21, 23, 1700}
NUMERIC_OIDS = {20, 21, 23, 700, 701, 1700}
MACRO = re.compile(r"\$(__[_a-zA-Z0-9]+)\(([^)]*)\)")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(interval: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", interval.strip().strip("'\""))
    if not m:
        raise SystemExit(f"bad interval {interval!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand_macros(sql: str, start: dt.datetime, end: dt.datetime) -> str:
    def one(m: re.Match) -> str:
        name, args = m.group(1), [a.strip() for a in m.group(2).split(",")] if m.group(2).strip() else []
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{rfc3339(start)}' AND '{rfc3339(end)}'"
        if name == "__timeFrom":
            return f"'{rfc3339(start)}'"
        if name == "__timeTo":
            return f"'{rfc3339(end)}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            step = seconds(args[1])
            n = int(step) if step == int(step) else step
            out = f"floor(extract(epoch from {args[0]})/{n})*{n}"
            return out + (' AS "time"' if name == "__timeGroupAlias" else "")
        raise SystemExit(f"macro ${name} is not expanded by this test")

    return MACRO.sub(one, sql)


def expand_vars(text: str, values: dict, sql: bool) -> str:
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            return m.group(0)
        value = values[name]
        if isinstance(value, tuple):  # ("raw", text): the All value, inserted as written
            return value[1]
        if isinstance(value, list):
            return ",".join("'" + v.replace("'", "''") + "'" for v in value) if sql else "|".join(value)
        return value

    text = text.replace("$__interval_ms", str(int(seconds(values["__interval"]) * 1000)))
    text = text.replace("$__interval", values["__interval"])
    return re.sub(r"\$\{(\w+)\}|\$(?!__)(\w+)", one, text)


def interval_for(start: dt.datetime, end: dt.datetime) -> str:
    # Grafana picks $__interval from the range and the panel width; a 24 h range on a half-width
    # panel gives about 1m–5m. The test uses range/300 rounded to a whole minute.
    minutes = max(1, round((end - start).total_seconds() / 300 / 60))
    return f"{minutes}m"


def grafana_env(value):
    """A provisioned value with Grafana's environment interpolation, recursively."""
    if isinstance(value, dict):
        return {k: grafana_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [grafana_env(v) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        return os.environ.get(m.group(1) or m.group(2), "")

    return "$".join(re.sub(r"\$\{(\w+)\}|\$(\w+)", one, part) for part in value.split("$$"))


class DataSources:
    """The credentials of the provisioned data sources, as Grafana sends them."""

    def __init__(self, path: str) -> None:
        found = {d["uid"]: grafana_env(d) for d in yaml.safe_load(Path(path).read_text())["datasources"]}
        tempo, sql = found[TEMPO_UID], found[SQL_UID]
        if tempo["type"] != "tempo" or sql["type"] not in ("grafana-postgresql-datasource", "postgres"):
            raise SystemExit(f"{path}: unexpected data source types {tempo['type']}, {sql['type']}")
        names = {k: v for k, v in tempo.get("jsonData", {}).items() if re.fullmatch(r"httpHeaderName\d+", k)}
        secure = tempo.get("secureJsonData", {})
        self.tempo_headers = {name: secure.get(k.replace("Name", "Value"), "") for k, name in names.items()}
        self.user = sql["user"]
        self.password = sql.get("secureJsonData", {}).get("password", "")
        self.database = sql.get("jsonData", {}).get("database", "")
        self.sslmode = sql.get("jsonData", {}).get("sslmode", "disable")

    def connect(self, pg: str):
        host, port = pg.rsplit(":", 1)
        conn = psycopg.connect(host=host, port=port, user=self.user, password=self.password,
                               dbname=self.database, sslmode=self.sslmode, autocommit=True)
        # Grafana's health check before queries (pgx Ping).
        if conn.pgconn.exec_(b"-- ping").status != pq.ExecStatus.EMPTY_QUERY:
            raise SystemExit("`-- ping` must answer an empty query")
        return conn


def run_sql(conn, sql: str, fmt: str, label: str) -> dict:
    res = conn.pgconn.exec_(sql.encode())
    if res.status != pq.ExecStatus.TUPLES_OK:
        msg = (res.error_message or b"").decode(errors="replace").strip()
        raise SystemExit(f"{label}: query failed ({pq.ExecStatus(res.status).name}): {msg}\n{sql}")
    tag = (res.command_status or b"").decode()
    if not re.fullmatch(r"SELECT \d+", tag):
        raise SystemExit(f"{label}: command tag {tag!r}, Grafana only reads SELECT n")
    columns = {res.fname(i).decode(): res.ftype(i) for i in range(res.nfields)}
    if fmt == "time_series":
        if "time" not in columns or columns["time"] not in TIME_OIDS:
            raise SystemExit(f"{label}: a time series needs a `time` column of a time type: {columns}")
        values = [c for c, oid in columns.items() if c not in ("time", "metric") and oid not in (25, 1043)]
        if not values or any(columns[c] not in NUMERIC_OIDS for c in values):
            raise SystemExit(f"{label}: value columns must be numeric: {columns}")
    if int(tag.split()[1]) != res.ntuples:
        raise SystemExit(f"{label}: tag {tag} but {res.ntuples} rows")
    first = [None if res.get_value(0, i) is None else res.get_value(0, i).decode()
             for i in range(res.nfields)] if res.ntuples else []
    return {"rows": res.ntuples, "columns": columns, "first": first}


def tempo(base: str, path: str, params: dict, headers: dict, accept: str) -> bytes:
    url = base.rstrip("/") + path + ("?" + urllib.parse.urlencode(params) if params else "")
    req = urllib.request.Request(url, headers={**headers, "Accept": accept})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def save_and_test(sources: DataSources, pg: str, base: str) -> dict:
    out = {}
    try:
        out["tempo"] = {"status": 200, "body": tempo(base, "/api/echo", {}, sources.tempo_headers, "*/*").decode()}
    except urllib.error.HTTPError as e:
        out["tempo"] = {"status": e.code, "body": e.read().decode(errors="replace"),
                        "www_authenticate": e.headers.get("WWW-Authenticate")}
    try:
        sources.connect(pg).close()
        out["sql"] = {"ok": True}
    except psycopg.OperationalError as e:
        out["sql"] = {"ok": False, "error": str(e).strip()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    for flag in ("--datasources", "--pg", "--tempo"):
        ap.add_argument(flag, required=True)
    for flag in ("--dashboards", "--from", "--to", "--trace-id", "--agent"):
        ap.add_argument(flag)
    ap.add_argument("--save-and-test", action="store_true")
    args = ap.parse_args()
    sources = DataSources(args.datasources)
    if args.save_and_test:
        json.dump(save_and_test(sources, args.pg, args.tempo), sys.stdout, indent=1, sort_keys=True)
        return
    for flag in ("dashboards", "from", "to", "trace_id"):
        if not getattr(args, flag):
            ap.error(f"--{flag.replace('_', '-')} is required to run the panels")
    start = dt.datetime.fromisoformat(getattr(args, "from").replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(args.to.replace("Z", "+00:00"))
    conn = sources.connect(args.pg)

    out = {}
    for path in sorted(Path(args.dashboards).glob("*.json")):
        board = json.loads(path.read_text())
        base_vars = {"__interval": interval_for(start, end), "trace_id": args.trace_id,
                     "cairn_url": "http://localhost:3200"}
        choices = [("", None)]
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                q = expand_macros(expand_vars(var["query"], base_vars, True), start, end)
                found = run_sql(conn, q, "table", f"{board['uid']} variable {var['name']}")
                if found["rows"] == 0:
                    raise SystemExit(f"{board['uid']}: variable {var['name']} has no values")
                choices = [("", ("raw", var["allValue"]))]
                if args.agent:
                    choices.append((f" [{args.agent}]", [args.agent]))
        for suffix, agent in choices:
            values = dict(base_vars)
            if agent is not None:
                values["agent"] = agent
            for panel in board["panels"]:
                for target in panel.get("targets", []):
                    label = f"{board['uid']}/{panel['title']}{suffix}"
                    uid = target["datasource"]["uid"]
                    if uid == SQL_UID:
                        # Grafana interpolates variables first, then expands macros.
                        sql = expand_macros(expand_vars(target["rawSql"], values, True), start, end)
                        out[label] = run_sql(conn, sql, target.get("format", "time_series"), label)
                    elif uid == TEMPO_UID:
                        query = expand_vars(target["query"], values, False)
                        if re.fullmatch(r"[0-9a-fA-F]+", query):
                            body = tempo(args.tempo, f"/api/v2/traces/{query}", {}, sources.tempo_headers,
                                         "application/protobuf")
                            out[label] = {"bytes": len(body)}
                        else:
                            params = {"q": query, "limit": target.get("limit", 20), "spss": 3,
                                      "start": int(start.timestamp()), "end": int(end.timestamp())}
                            body = json.loads(tempo(args.tempo, "/api/search", params, sources.tempo_headers,
                                                    "application/json"))
                            out[label] = {"traces": len(body.get("traces", []))}
                    else:
                        raise SystemExit(f"{label}: unknown data source {uid}")
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
