// A SQL console over the same API: read-only statements, results as a table, CSV download.
// The statement lives in the URL, so a query can be shared as a link.

import { useState } from "react";
import { downloadSqlCsv, sql, type Row } from "../lib/api";
import { useApi } from "../lib/hooks";
import { navigate, useLocation, withQuery } from "../lib/router";
import { RowsTable } from "../lib/table";
import { Empty, ErrorBox, Loading } from "../lib/ui";

const EXAMPLE = "SELECT trace_id, root_name, span_count, cost FROM runs ORDER BY start_time DESC LIMIT 20";
const SHOWN = 1000;

export default function Sql() {
  const { query } = useLocation();
  const statement = query.get("q") ?? "";
  const [text, setText] = useState(statement || EXAMPLE);
  const [downloadError, setDownloadError] = useState<Error | undefined>();
  const result = useApi(statement ? `sql:${statement}` : null, async (signal) => {
    const t0 = performance.now();
    const rows = await sql(statement, signal);
    return { rows, ms: performance.now() - t0 };
  });
  const run = () => navigate(`/sql${withQuery(query, { q: text.trim() })}`, { replace: statement === text.trim() });
  const rows: Row[] = result.data?.rows ?? [];
  return (
    <div className="page" data-testid="sql">
      <div className="page-head">
        <h1>SQL</h1>
        <span className="muted small">
          Read-only SQL over the views (<code>runs</code>, <code>spans</code>, <code>steps</code>, <code>lineage_edges</code>,
          <code>approval_gates</code>, …), scoped to this tenant. See docs/queries.md.
        </span>
      </div>
      <textarea
        className="sql-editor"
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            run();
          }
        }}
        spellCheck={false}
        rows={6}
        data-testid="sql-editor"
      />
      <div className="toolbar">
        <button onClick={run} data-testid="sql-run">
          Run <span className="muted small">(Ctrl+Enter)</span>
        </button>
        <button
          className="secondary"
          disabled={!text.trim()}
          onClick={() => {
            setDownloadError(undefined);
            downloadSqlCsv(text.trim()).catch((e: Error) => setDownloadError(e));
          }}
          data-testid="sql-csv"
        >
          Download CSV
        </button>
        {result.data && (
          <span className="muted small" data-testid="sql-summary">
            {rows.length.toLocaleString()} rows in {Math.round(result.data.ms)} ms
            {rows.length > SHOWN ? ` · showing the first ${SHOWN}; the CSV has all` : ""}
          </span>
        )}
      </div>
      <ErrorBox error={result.error ?? downloadError} />
      {result.loading && <Loading what="results" />}
      {result.data && rows.length === 0 && <Empty>The query returned no rows.</Empty>}
      {rows.length > 0 && <RowsTable rows={rows.slice(0, SHOWN)} testid="sql-result" />}
    </div>
  );
}
