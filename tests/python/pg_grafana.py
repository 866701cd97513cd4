"""Replays what Grafana's PostgreSQL data source sends to Cairn's Postgres listener, and checks
the answers as Grafana reads them: result sets, type OIDs and `SELECT n` command tags.

Grafana runs every statement with pgx's `PgConn.Exec`, the simple query protocol; libpq's
`PQexec` (psycopg's `pgconn.exec_`) sends the same messages. The query strings are Grafana's:
`public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts` (config page
and query builder) and, with macros expanded as
`pkg/tsdb/grafana-postgresql-datasource/macros.go` expands them, panel queries.

Usage: pg_grafana.py HOST PORT USER [PASSWORD]; the tenant USER must have spans with
`agent_name` set. Prints "ok".
"""

import sys

import psycopg
from psycopg import pq

HOST, PORT, USER = sys.argv[1], sys.argv[2], sys.argv[3]
PASSWORD = sys.argv[4] if len(sys.argv) > 4 else None

TIMESTAMPTZ, INT8, INT4, FLOAT8, TEXT, JSONB, NUMERIC = 1184, 20, 23, 701, 25, 3802, 1700

conn = psycopg.connect(
    host=HOST, port=PORT, user=USER, dbname="cairn", password=PASSWORD, sslmode="disable",
    autocommit=True,
)
pgconn = conn.pgconn


def run(sql):
    """The last result of `sql` by the simple protocol, which must be rows."""
    result = pgconn.exec_(sql.encode())
    assert result.status == pq.ExecStatus.TUPLES_OK, (sql, result.status, result.error_message)
    return result


def rows(result):
    return [
        [None if result.get_value(r, c) is None else result.get_value(r, c).decode()
         for c in range(result.nfields)]
        for r in range(result.ntuples)
    ]


def tag(result):
    return result.command_status.decode()


# Health checks: pgx pings with a comment, lib/pq with an empty statement.
for ping in ("-- ping", ";"):
    result = pgconn.exec_(ping.encode())
    assert result.status == pq.ExecStatus.EMPTY_QUERY, (ping, result.status, result.error_message)

# Config page: version, then TimescaleDB.
result = run("SELECT current_setting('server_version_num')::int/100 as version")
assert rows(result) == [["1600"]], rows(result)
assert tag(result) == "SELECT 1", tag(result)
result = run("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
assert rows(result) == [] and tag(result) == "SELECT 0", (rows(result), tag(result))

# Query builder: datasets (schemas).
result = run("""SELECT schema_name AS "name"
    FROM information_schema.schemata
    WHERE schema_name NOT IN ('information_schema',
                              'pg_catalog',
                              'pg_toast',
                              '_timescaledb_cache',
                              '_timescaledb_catalog',
                              '_timescaledb_internal',
                              '_timescaledb_config',
                              'timescaledb_information',
                              'timescaledb_experimental')
    ORDER BY schema_name""")
assert rows(result) == [["public"]], rows(result)

SEARCH_PATH = """
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )"""

# Tables, no dataset chosen: those on the search path come unqualified.
result = run(f"""SELECT
    CASE WHEN {SEARCH_PATH}
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
    ORDER BY CASE WHEN {SEARCH_PATH} THEN 0 ELSE 1 END, 1""")
tables = [r[0] for r in rows(result)]
assert "spans" in tables and "runs" in tables, tables
assert all("." not in t for t in tables), tables

# Tables of the dataset `public`.
result = run("""SELECT quote_ident(table_name) AS "table"
      FROM information_schema.tables
      WHERE quote_ident(table_schema) = 'public'
      ORDER BY 1""")
assert [r[0] for r in rows(result)] == sorted(tables), rows(result)

# Columns of `spans`, unqualified and qualified, with Postgres type names.
for table in ("spans", "public.spans"):
    result = run(f"""SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('{table}'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('{table}'))[1]
          AND quote_ident(table_name) = (parse_ident('{table}'))[2]
        ELSE quote_ident(table_name) = '{table}'
          AND {SEARCH_PATH}
      END""")
    types = dict(rows(result))
    assert types.get("start_time") == "timestamp with time zone", (table, types)
    assert types.get("name") == "text", types
    assert types.get("duration_ns") == "bigint", types
    assert types.get("attributes") == "jsonb", types
    assert types.get("data_read") == "ARRAY", types

# A time series panel: $__timeGroupAlias(start_time,'1m') and $__timeFilter(start_time).
result = run("""SELECT floor(extract(epoch from start_time)/60)*60 AS "time", agent_name AS metric,
  count(*) AS value
FROM spans
WHERE start_time BETWEEN '2000-01-01T00:00:00Z' AND '2100-01-01T00:00:00Z' AND agent_name IS NOT NULL
GROUP BY 1, 2
ORDER BY 1""")
assert [result.ftype(i) for i in range(3)] == [FLOAT8, TEXT, INT8], [result.ftype(i) for i in range(3)]
assert result.ntuples > 0 and tag(result) == f"SELECT {result.ntuples}", tag(result)

# A table panel: $__time(start_time), nested columns as JSON.
result = run("""SELECT start_time AS "time", name, duration_ns / 1e6 AS ms, attributes
FROM spans
WHERE start_time BETWEEN '2000-01-01T00:00:00Z' AND '2100-01-01T00:00:00Z'
ORDER BY 1 LIMIT 3""")
assert [result.ftype(i) for i in range(4)] == [TIMESTAMPTZ, TEXT, FLOAT8, JSONB], \
    [result.ftype(i) for i in range(4)]
first = rows(result)[0]
assert first[0].endswith("+00") and first[0][:2] in ("19", "20"), first
assert first[3].startswith("{"), first
assert tag(result) == "SELECT 3", tag(result)

# A template variable.
result = run("SELECT DISTINCT agent_name AS __text, agent_name AS __value FROM spans "
             "WHERE agent_name IS NOT NULL ORDER BY 1")
assert result.ntuples > 0 and tag(result) == f"SELECT {result.ntuples}"

# Two statements in one string: two results (psycopg keeps the last).
result = run("SELECT 1 AS a; SELECT 2 AS a")
assert rows(result) == [["2"]], rows(result)

print("ok")
