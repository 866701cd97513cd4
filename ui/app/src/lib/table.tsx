// A table of arbitrary rows (SQL results, governance lists): columns from the rows' keys, ids
// that name a run or step made into links.

import { cell, shortId, time } from "./format";
import type { Row } from "./api";
import { Link } from "./ui";

const TRACE_KEYS = new Set(["trace_id", "previous_trace_id", "linked_trace_id", "from_trace_id", "to_trace_id"]);

export function columnsOf(rows: Row[], preferred: string[] = []): string[] {
  const seen = new Set<string>();
  for (const r of rows.slice(0, 200)) for (const k of Object.keys(r)) seen.add(k);
  return [...preferred.filter((k) => seen.has(k)), ...[...seen].filter((k) => !preferred.includes(k))];
}

export function RowsTable({ rows, columns, testid, links = true }: { rows: Row[]; columns?: string[]; testid?: string; links?: boolean }) {
  const cols = columns ?? columnsOf(rows);
  return (
    <div className="table-scroll">
      <table className="grid" data-testid={testid}>
        <thead>
          <tr>
            {cols.map((c) => (
              <th key={c}>{c}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r, k) => (
            <tr key={k}>
              {cols.map((c) => (
                <td key={c} className={typeof r[c] === "number" ? "num" : ""}>
                  <Value row={r} column={c} links={links} />
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Value({ row, column, links }: { row: Row; column: string; links: boolean }) {
  const v = row[column];
  const text = cell(v);
  if (links && TRACE_KEYS.has(column) && typeof v === "string" && /^[0-9a-f]{32}$/.test(v)) {
    const span = column === "trace_id" && typeof row.span_id === "string" ? `?step=${row.span_id}` : "";
    return (
      <Link to={`/runs/${v}${span}`} className="mono" title={v}>
        {shortId(v)}
      </Link>
    );
  }
  if (/(_at|_time)$/.test(column) && typeof v === "string") return <span className="mono small">{time(v)}</span>;
  return <span className={typeof v === "object" && v !== null ? "mono small" : ""}>{text}</span>;
}
