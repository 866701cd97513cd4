// Data: a resource URI (or a prefix) → every run, agent, sandbox and pod that read or wrote it.

import { useState, type FormEvent } from "react";
import { get, type Row } from "../lib/api";
import { cell, shortId, time, utcRange } from "../lib/format";
import { useApi } from "../lib/hooks";
import { navigate, useLocation } from "../lib/router";
import { Empty, ErrorBox, Link, Loading, TimeRange } from "../lib/ui";

interface DataAnswer {
  runs?: unknown[];
  agents?: unknown[];
  sandboxes?: unknown[];
  pods?: unknown[];
  accesses: Row[];
}

export default function Data() {
  const { query } = useLocation();
  const uri = query.get("uri") ?? "";
  const match = query.get("match") ?? "exact";
  const from = query.get("from") ?? "";
  const to = query.get("to") ?? "";
  const answer = useApi(uri ? `${uri}|${match}|${from}|${to}` : null, (signal) =>
    get<DataAnswer>("/data", { uri, match, ...utcRange(from, to) }, signal),
  );
  const [form, setForm] = useState({ uri, prefix: match === "prefix", from, to });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const q = new URLSearchParams({ uri: form.uri.trim() });
    if (form.prefix) q.set("match", "prefix");
    if (form.from) q.set("from", form.from);
    if (form.to) q.set("to", form.to);
    navigate(`/data?${q}`);
  };
  const a = answer.data;
  return (
    <div className="page" data-testid="data">
      <div className="page-head">
        <h1>Data</h1>
      </div>
      <p className="muted small">Who read or wrote a resource: a table, a bucket object, a file, an API.</p>
      <form className="filters" onSubmit={submit}>
        <label className="wide">
          Resource URI
          <input value={form.uri} onChange={(e) => setForm({ ...form, uri: e.target.value })} placeholder="postgres://db/shop/refunds" data-testid="data-uri" />
        </label>
        <label className="check">
          <input type="checkbox" checked={form.prefix} onChange={(e) => setForm({ ...form, prefix: e.target.checked })} /> every URI under this prefix
        </label>
        <TimeRange from={form.from} to={form.to} onChange={(from, to) => setForm({ ...form, from, to })} />
        <div className="filter-actions">
          <button type="submit" disabled={!form.uri.trim()}>
            Look up
          </button>
        </div>
      </form>
      <ErrorBox error={answer.error} />
      {answer.loading && <Loading what="accesses" />}
      {a && a.accesses.length === 0 && <Empty>Nothing read or wrote {uri} in this tenant{from || to ? " in that time range" : ""}.</Empty>}
      {a && a.accesses.length > 0 && (
        <>
          <div className="cards">
            <Card title="Runs" items={a.runs} run />
            <Card title="Agents" items={a.agents} />
            <Card title="Sandboxes" items={a.sandboxes} />
            <Card title="Pods" items={a.pods} />
          </div>
          <h2>Accesses</h2>
          <table className="grid">
            <thead>
              <tr>
                <th>Time (UTC)</th>
                <th>Access</th>
                <th>URI</th>
                <th>Run · step</th>
                <th>Agent</th>
                <th>Tool</th>
                <th>Sandbox</th>
                <th>Pod</th>
              </tr>
            </thead>
            <tbody>
              {a.accesses.map((r, k) => (
                <tr key={k} data-testid="access-row">
                  <td className="mono small">{time(cell(r.start_time))}</td>
                  <td>
                    <span className={`badge ${r.access === "write" ? "write" : ""}`}>{cell(r.access)}</span>
                  </td>
                  <td className="mono small">{cell(r.uri)}</td>
                  <td>
                    <Link to={`/runs/${cell(r.trace_id)}?step=${cell(r.span_id)}`}>
                      {shortId(cell(r.trace_id))} · {shortId(cell(r.span_id))}
                    </Link>
                  </td>
                  <td>{cell(r.agent_name)}</td>
                  <td>{cell(r.tool_name)}</td>
                  <td>{cell(r.sandbox_id)}</td>
                  <td>{cell(r.k8s_pod_name)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </div>
  );
}

function Card({ title, items, run }: { title: string; items: unknown[] | undefined; run?: boolean }) {
  const list = (items ?? []).map((x) => (typeof x === "object" && x ? cell((x as Row).trace_id ?? (x as Row).name ?? x) : cell(x)));
  return (
    <div className="card">
      <div className="card-title">
        {title} <span className="muted">{list.length}</span>
      </div>
      {list.map((v) => (
        <div key={v} className="mono small">
          {run ? <Link to={`/runs/${v}`}>{shortId(v)}</Link> : v}
        </div>
      ))}
    </div>
  );
}
