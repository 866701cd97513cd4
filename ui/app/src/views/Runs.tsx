// The runs list: filters (all in the URL), a page of runs newest first, markers for errors,
// approvals and bypasses, live refresh of the newest page.

import { useMemo, useState, type FormEvent } from "react";
import { get, type RunRow, type RunsPage } from "../lib/api";
import { cost, count, duration, shortId, time, utc } from "../lib/format";
import { useApi } from "../lib/hooks";
import { navigate, useLocation, withQuery } from "../lib/router";
import { Empty, ErrorBox, Link, Status, TimeRange } from "../lib/ui";

/** Filters the API takes, as (parameter, label, placeholder). */
const TEXT_FILTERS: [string, string, string][] = [
  ["agent", "Agent", "triage"],
  ["tool", "Tool", "issue_refund"],
  ["model", "Model", "gpt-4o"],
  ["sandbox", "Sandbox", "sbx-1"],
  ["pod", "Pod", "support-bot-7d9f"],
  ["data", "Data URI", "postgres://db/shop/refunds"],
];
const SELECTS: [string, string, string[]][] = [
  ["status", "Status", ["ok", "error", "unset"]],
  ["approval", "Approval", ["requested", "granted", "denied", "timed_out"]],
];
const API_KEYS = ["agent", "tool", "model", "sandbox", "pod", "data", "status", "approval", "from", "to", "cursor", "pending"];
const PAGE = 50;

type SortKey = "start" | "duration" | "steps" | "tokens" | "cost";
const SORTS: Record<SortKey, (r: RunRow) => number> = {
  start: (r) => Date.parse(r.start_time ?? "") || 0,
  duration: (r) => r.duration_ns ?? 0,
  steps: (r) => r.span_count ?? 0,
  tokens: (r) => (r.input_tokens ?? 0) + (r.output_tokens ?? 0),
  cost: (r) => r.cost ?? 0,
};

export function Runs() {
  const { query } = useLocation();
  const params = useMemo(() => {
    const p: Record<string, string> = {};
    for (const k of API_KEYS) {
      const v = query.get(k);
      if (v) p[k] = k === "from" || k === "to" ? utc(v) : v;
    }
    for (const [k, v] of query) if (k.startsWith("attr.") && v) p[k] = v;
    return p;
  }, [query]);
  const key = JSON.stringify(params);
  const live = !params.cursor && !params.to;
  const runs = useApi(key, (signal) => get<RunsPage>("/runs", { ...params, limit: PAGE }, signal), live ? 5000 : undefined);
  const sort = (query.get("sort") ?? "start") as SortKey;
  const desc = query.get("order") !== "asc";
  const rows = useMemo(() => {
    const list = [...(runs.data?.runs ?? [])];
    const f = SORTS[sort] ?? SORTS.start;
    list.sort((a, b) => (desc ? f(b) - f(a) : f(a) - f(b)));
    return list;
  }, [runs.data, sort, desc]);

  const setSort = (k: SortKey) =>
    navigate(`/${withQuery(query, { sort: k === "start" ? undefined : k, order: sort === k && desc ? "asc" : undefined })}`, {
      replace: true,
    });
  const header = (k: SortKey, label: string) => (
    <th className="num sortable" onClick={() => setSort(k)} aria-sort={sort === k ? (desc ? "descending" : "ascending") : "none"}>
      {label}
      {sort === k ? (desc ? " ▾" : " ▴") : ""}
    </th>
  );

  return (
    <div className="page runs-page">
      <div className="page-head">
        <h1>Runs</h1>
        {live && <span className="live" title="The newest runs refresh every 5 s">● live</span>}
        <div className="spacer" />
        <Link
          to={params.pending ? "/" : "/?pending=approval"}
          className={`button ${params.pending ? "on" : ""}`}
          testid="pending-approvals"
        >
          {params.pending ? "Show all runs" : "Waiting on approval"}
        </Link>
      </div>
      <Filters query={query} />
      <ErrorBox error={runs.error} />
      {runs.data && rows.length === 0 && <Empty>No runs match these filters.</Empty>}
      {rows.length > 0 && (
        <table className="grid runs" data-testid="runs-table">
          <thead>
            <tr>
              <th>Status</th>
              <th>Run</th>
              <th>Agent</th>
              <th className="sortable" onClick={() => setSort("start")}>
                Started (UTC){sort === "start" ? (desc ? " ▾" : " ▴") : ""}
              </th>
              {header("duration", "Duration")}
              {header("steps", "Steps")}
              {header("tokens", "Tokens")}
              {header("cost", "Cost")}
              <th>Approvals</th>
              <th>Sandbox</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <RunLine key={r.trace_id} run={r} />
            ))}
          </tbody>
        </table>
      )}
      <div className="pager">
        {runs.loading && !runs.data && <span className="muted">Loading runs…</span>}
        {params.cursor && (
          <Link to={`/${withQuery(query, { cursor: undefined })}`} className="button">
            ⇤ Newest
          </Link>
        )}
        {runs.data?.next_cursor && (
          <Link to={`/${withQuery(query, { cursor: runs.data.next_cursor })}`} className="button" testid="next-page">
            Older runs →
          </Link>
        )}
        {runs.data && (
          <span className="muted">
            {rows.length} runs on this page{sort !== "start" ? " (sorted within the page)" : ""}
          </span>
        )}
      </div>
    </div>
  );
}

function RunLine({ run }: { run: RunRow }) {
  const approvals = Object.entries(run.approvals ?? {});
  const inProgress = run.root_missing === true;
  return (
    <tr data-testid="run-row" data-trace-id={run.trace_id} onClick={() => navigate(`/runs/${run.trace_id}`)}>
      <td>
        {inProgress ? <span className="badge status-running">running</span> : <Status value={run.status} />}
        {run.error_count ? <span className="muted small"> {run.error_count} err</span> : null}
      </td>
      <td className="run-name">
        <Link to={`/runs/${run.trace_id}`}>{inProgress ? `${run.root_name ?? "run"} …` : (run.root_name ?? "(unnamed)")}</Link>
        <div className="muted mono small">{shortId(run.trace_id)}</div>
      </td>
      <td>{run.agent_name ?? run.service_name ?? "—"}</td>
      <td className="mono small">{time(run.start_time)}</td>
      <td className="num">{duration(run.duration_ns)}</td>
      <td className="num">{count(run.span_count)}</td>
      <td className="num" title={`${run.input_tokens ?? 0} in / ${run.output_tokens ?? 0} out`}>
        {count((run.input_tokens ?? 0) + (run.output_tokens ?? 0))}
      </td>
      <td className="num">{cost(run.cost)}</td>
      <td>
        {approvals.map(([state, n]) => (
          <span key={state} className={`badge approval-${state}`} title={`${n} approval step(s) ${state}`}>
            {state.replace("_", " ")} {n}
          </span>
        ))}
        {run.bypasses ? (
          <span className="badge bypass" title="Actions that needed an approval and ran without one">
            bypass {run.bypasses}
          </span>
        ) : null}
      </td>
      <td className="mono small">{run.sandbox_id ?? "—"}</td>
    </tr>
  );
}

function Filters({ query }: { query: URLSearchParams }) {
  const initial = () => {
    const f: Record<string, string> = {};
    for (const [k, v] of query) f[k] = v;
    const attr = [...query.keys()].find((k) => k.startsWith("attr."));
    f.attr_key = attr ? attr.slice(5) : "";
    f.attr_value = attr ? (query.get(attr) ?? "") : "";
    return f;
  };
  const [form, setForm] = useState<Record<string, string>>(initial);
  const set = (k: string, v: string) => setForm((f) => ({ ...f, [k]: v }));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const k of [...TEXT_FILTERS.map((t) => t[0]), ...SELECTS.map((s) => s[0]), "from", "to", "pending"]) {
      const v = form[k]?.trim();
      if (v) q.set(k, v);
    }
    if (form.attr_key?.trim()) q.set(`attr.${form.attr_key.trim()}`, form.attr_value ?? "");
    navigate(`/${withQuery(q, {})}`);
  };
  const clear = () => {
    setForm({ attr_key: "", attr_value: "" });
    navigate("/");
  };
  return (
    <form className="filters" onSubmit={submit} data-testid="run-filters">
      {TEXT_FILTERS.map(([k, label, ph]) => (
        <label key={k}>
          {label}
          <input value={form[k] ?? ""} placeholder={`e.g. ${ph}`} onChange={(e) => set(k, e.target.value)} name={k} />
        </label>
      ))}
      {SELECTS.map(([k, label, options]) => (
        <label key={k}>
          {label}
          <select value={form[k] ?? ""} onChange={(e) => set(k, e.target.value)} name={k}>
            <option value="">any</option>
            {options.map((o) => (
              <option key={o} value={o}>
                {o.replace("_", " ")}
              </option>
            ))}
          </select>
        </label>
      ))}
      <label>
        Attribute
        <span className="pair">
          <input value={form.attr_key ?? ""} placeholder="key" onChange={(e) => set("attr_key", e.target.value)} name="attr_key" />
          <input value={form.attr_value ?? ""} placeholder="value" onChange={(e) => set("attr_value", e.target.value)} name="attr_value" />
        </span>
      </label>
      <TimeRange from={form.from ?? ""} to={form.to ?? ""} onChange={(from, to) => setForm((f) => ({ ...f, from, to }))} />
      <div className="filter-actions">
        <button type="submit" data-testid="apply-filters">
          Search
        </button>
        <button type="button" className="secondary" onClick={clear}>
          Clear
        </button>
      </div>
    </form>
  );
}
