// Cost: tokens and cost by agent, model, run, day or hour, as a bar chart and a table.

import { get, type Row } from "../lib/api";
import { cell, cost, count, shortId, utcRange } from "../lib/format";
import { useApi } from "../lib/hooks";
import { navigate, useLocation, withQuery } from "../lib/router";
import { Empty, ErrorBox, Link, Loading, TimeRange } from "../lib/ui";

const BY = ["agent", "model", "run", "day", "hour", "tenant"];

export default function Costs() {
  const { query } = useLocation();
  const by = query.get("by") ?? "agent";
  const from = query.get("from") ?? "";
  const to = query.get("to") ?? "";
  const answer = useApi(`${by}|${from}|${to}`, (signal) =>
    get<{ by: string; rows: Row[] }>("/costs", { by, ...utcRange(from, to) }, signal),
  );
  const set = (changes: Record<string, string>) => navigate(`/costs${withQuery(query, changes)}`, { replace: true });
  const rows = answer.data?.rows ?? [];
  const timeline = by === "day" || by === "hour";
  const shown = timeline ? [...rows].sort((a, b) => cell(a.key).localeCompare(cell(b.key))) : rows;
  const max = Math.max(...shown.map((r) => Number(r.cost) || 0), 1e-12);
  const maxTokens = Math.max(...shown.map((r) => (Number(r.input_tokens) || 0) + (Number(r.output_tokens) || 0)), 1);
  return (
    <div className="page" data-testid="costs">
      <div className="page-head">
        <h1>Cost</h1>
      </div>
      <div className="filters">
        <div className="segmented" role="group" aria-label="Group by">
          {BY.map((b) => (
            <button key={b} className={b === by ? "on" : "secondary"} onClick={() => set({ by: b })} data-testid={`costs-by-${b}`}>
              by {b}
            </button>
          ))}
        </div>
        <TimeRange from={from} to={to} onChange={(f, t) => set({ from: f, to: t })} />
      </div>
      <ErrorBox error={answer.error} />
      {answer.loading && !answer.data && <Loading what="costs" />}
      {answer.data && rows.length === 0 && <Empty>No model calls in this range.</Empty>}
      {shown.length > 0 && (
        <div className="chart" data-testid="cost-chart">
          {shown.slice(0, 60).map((r) => {
            const c = Number(r.cost) || 0;
            const t = (Number(r.input_tokens) || 0) + (Number(r.output_tokens) || 0);
            const key = cell(r.key);
            return (
              <div key={key} className="bar-row">
                <div className="bar-key" title={key}>
                  {by === "run" ? <Link to={`/runs/${key}`}>{shortId(key)}</Link> : key || "(none)"}
                </div>
                <div className="bar-track">
                  <div className="bar cost-bar" style={{ width: `${(c / max) * 100}%` }} title={`cost ${cost(c, cell(r.currency) || "USD")}`} />
                  <div className="bar token-bar" style={{ width: `${(t / maxTokens) * 100}%` }} title={`${t} tokens`} />
                </div>
                <div className="bar-value">
                  {cost(c, cell(r.currency) || "USD")} <span className="muted small">· {count(t)} tok</span>
                </div>
              </div>
            );
          })}
          <div className="legend">
            <span className="legend-item">
              <span className="swatch cost-bar" /> cost
            </span>
            <span className="legend-item">
              <span className="swatch token-bar" /> tokens (input + output)
            </span>
            {shown.length > 60 && <span className="muted small">chart shows the first 60 of {shown.length}; the table has all</span>}
          </div>
        </div>
      )}
      {shown.length > 0 && (
        <table className="grid">
          <thead>
            <tr>
              <th>{by}</th>
              <th className="num">Calls</th>
              <th className="num">Input tokens</th>
              <th className="num">Output tokens</th>
              <th className="num">Cost</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((r) => (
              <tr key={cell(r.key)}>
                <td className="mono small">{by === "run" ? <Link to={`/runs/${cell(r.key)}`}>{cell(r.key)}</Link> : cell(r.key)}</td>
                <td className="num">{count(Number(r.calls))}</td>
                <td className="num">{count(Number(r.input_tokens))}</td>
                <td className="num">{count(Number(r.output_tokens))}</td>
                <td className="num">{cost(Number(r.cost), cell(r.currency) || "USD")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
