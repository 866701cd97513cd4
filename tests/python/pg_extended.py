"""Drives Cairn's Postgres listener by the extended query protocol, as psycopg 3 does by default
(`cursor.execute(sql, params)`: Parse, Bind, Describe, Execute, Sync), and checks it answers as
the simple protocol does (psycopg's `ClientCursor` binds the same parameters into the text and
sends it as a simple query).

Usage: pg_extended.py HOST PORT USER FOREIGN_SERVICE; the tenant USER must have spans of one
service with `agent_name` set; FOREIGN_SERVICE is another tenant's service. Prints "ok".
"""

import datetime
import sys

import psycopg
from psycopg import errors

HOST, PORT, USER, FOREIGN = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]

TIMESTAMPTZ, INT8, INT4, INT2, FLOAT8, TEXT, JSONB, BOOL, TEXT_ARRAY = (
    1184, 20, 23, 21, 701, 25, 3802, 16, 1009)

conn = psycopg.connect(
    host=HOST, port=PORT, user=USER, dbname="cairn", sslmode="disable", autocommit=True,
)
simple = psycopg.ClientCursor(conn)


def types(cur):
    return [d.type_code for d in cur.description]


def both(sql, params, binary=False):
    """Runs `sql` with `params` by both protocols; returns the extended cursor's type codes and
    rows after checking they equal the simple protocol's."""
    simple.execute(sql, params)
    expected = (types(simple), simple.fetchall())
    cur = conn.cursor(binary=binary)
    cur.execute(sql, params)
    got = (types(cur), cur.fetchall())
    assert got == expected, (sql, params, binary, got, expected)
    return got


(service,) = conn.execute("SELECT service_name FROM spans LIMIT 1").fetchone()

# Parameters in a filter, text and binary results, every column type spans have.
SPANS = """SELECT span_id, service_name, name, duration_ns, start_time, attributes, data_read,
  duration_ns / 1e6 AS ms, status_code = 'ERROR' AS failed, flags
FROM spans WHERE service_name = %s AND duration_ns > %s ORDER BY span_id"""
for binary in (False, True):
    codes, rows = both(SPANS, (service, 0), binary)
    assert codes[:8] == [TEXT, TEXT, TEXT, INT8, TIMESTAMPTZ, JSONB, TEXT_ARRAY, FLOAT8], codes
    assert codes[8] == BOOL, codes
    assert rows and all(r[1] == service and r[3] > 0 for r in rows), rows
    first = rows[0]
    assert isinstance(first[4], datetime.datetime) and first[4].tzinfo is not None, first
    assert isinstance(first[5], dict), first
    assert all(r[6] is None or isinstance(r[6], list) for r in rows), rows
    _, none = both(SPANS, (service, 10**15), binary)
    assert none == [], none

# Parameter types: int, float, text, timestamptz, bool, NULL; and by position in the output.
since = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
for binary in (False, True):
    codes, rows = both(
        "SELECT count(*) AS n FROM spans WHERE start_time > %s AND duration_ns / 1e6 > %s "
        "AND (%s OR name <> %s) AND %s IS NULL",
        (since, 0.0, True, "x", None), binary)
    assert codes == [INT8] and rows[0][0] > 0, (codes, rows)
    # A parameter alone is typed as the client declares it (psycopg: the smallest integer type
    # that fits), a text one as text: values as the simple protocol's, types as Postgres's.
    cur = conn.cursor(binary=binary)
    cur.execute("SELECT %s AS i, %s AS f, %s AS t, %s AS b, %s AS ts, %s AS n",
                (7, 2.5, "seven", False, since, None))
    assert cur.fetchall() == [(7, 2.5, "seven", False, since, None)], binary
    assert types(cur) == [INT2, FLOAT8, TEXT, BOOL, TIMESTAMPTZ, TEXT], types(cur)
big = conn.execute("SELECT %s::bigint + 1 AS n", (2**40,)).fetchone()
assert big == (2**40 + 1,), big

# Prepared once, executed again with other values.
cur = conn.cursor()
for _ in range(3):
    for n, expected in ((0, True), (10**15, False)):
        cur.execute("SELECT count(*) > 0 FROM spans WHERE service_name = %s AND duration_ns > %s",
                    (service, n), prepare=True)
        assert cur.fetchone() == (expected,), n
assert conn.execute("SELECT %s || 'b' AS s", ("a",), prepare=True).fetchone() == ("ab",)

# A parameter is a value, never SQL, and never reaches another tenant's rows.
for value in (FOREIGN, f"{FOREIGN}' OR '1'='1", "x'; DROP TABLE spans; --"):
    (n,) = conn.execute("SELECT count(*) FROM spans WHERE service_name = %s", (value,)).fetchone()
    assert n == 0, (value, n)
(n,) = conn.execute("SELECT count(*) FROM spans WHERE service_name <> %s", (FOREIGN,)).fetchone()
(total,) = conn.execute("SELECT count(*) FROM spans").fetchone()
assert n == total > 0, (n, total)


def extended(sql, params=None):
    """A cursor that ran `sql` by the extended protocol (psycopg sends a statement without
    parameters as a simple query unless binary results are asked for)."""
    cur = conn.cursor(binary=True)
    cur.execute(sql, params)
    return cur


def refused(sql, params, sqlstate):
    try:
        extended(sql, params)
    except psycopg.Error as e:
        assert e.sqlstate == sqlstate, (sql, e.sqlstate, str(e))
        return
    raise AssertionError(f"{sql} answered")


# Writes are refused as in a read-only transaction; a bad statement fails and the connection
# goes on.
refused("INSERT INTO spans (name) VALUES (%s)", ("x",), "25006")
refused("DROP TABLE spans", None, "25006")
refused("SET datafusion.execution.target_partitions = 1", None, "25006")
refused("SELEC %s", (1,), "42601")
refused("SELECT 1; SELECT 2", None, "42601")
refused("SELECT %s + 1", ("not a number",), "22P02")
assert conn.execute("SELECT %s + 1 AS n", (41,)).fetchone() == (42,)
# A statement too large to plan is refused before any parser builds it.
refused("SELECT " + "1+" * 60_000 + "%s", (1,), "42601")
refused("SELECT " + "(" * 300 + "%s" + ")" * 300, (1,), "42601")
# The engine's limits hold.
refused("SELECT value FROM generate_series(1, 100000000) WHERE value > %s", (0,), "53000")
refused("SELECT count(*) FROM generate_series(1, 1000000) a, generate_series(1, 1000000) b "
        "WHERE a.value > %s", (0,), "57014")

# Session statements and empty statements through Parse.
for sql in ("SET application_name = 'x'", "SET extra_float_digits = 3", "BEGIN", "COMMIT",
            "", ";"):
    extended(sql)
assert extended("SHOW search_path").fetchone()[0].endswith("public")
conn.autocommit = False
with conn.transaction():
    assert conn.execute("SELECT %s AS a", ("in a transaction",)).fetchone() == ("in a transaction",)
conn.autocommit = True

print("ok")
