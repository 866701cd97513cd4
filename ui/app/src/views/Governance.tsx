// Governance: approval gates and their outcomes, actions that bypassed an approval, and policy
// changes between runs, for a time range.

import { useState, type FormEvent } from "react";
import { get, type Row } from "../lib/api";
import { utcRange } from "../lib/format";
import { useApi } from "../lib/hooks";
import { navigate, useLocation } from "../lib/router";
import { RowsTable } from "../lib/table";
import { Empty, ErrorBox, Link, Loading, TimeRange } from "../lib/ui";

interface Answer {
  approvals: { counts: Record<string, number>; gates: Row[] };
  bypasses: { bypasses: Row[] };
  changes: { changes: Row[] };
}

export default function Governance() {
  const { query } = useLocation();
  const from = query.get("from") ?? "";
  const to = query.get("to") ?? "";
  const state = query.get("state") ?? "";
  const agent = query.get("agent") ?? "";
  const range = utcRange(from, to);
  const answer = useApi(`${from}|${to}|${state}|${agent}`, async (signal): Promise<Answer> => {
    const [approvals, bypasses, changes] = await Promise.all([
      get<Answer["approvals"]>("/governance/approvals", { ...range, state }, signal),
      get<Answer["bypasses"]>("/governance/bypasses", range, signal),
      get<Answer["changes"]>("/governance/policy-changes", { agent }, signal),
    ]);
    return { approvals, bypasses, changes };
  });
  const [form, setForm] = useState({ from, to, state, agent });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(form)) if (v) q.set(k, v);
    navigate(`/governance${q.size ? `?${q}` : ""}`);
  };
  const a = answer.data;
  return (
    <div className="page" data-testid="governance">
      <div className="page-head">
        <h1>Governance</h1>
      </div>
      <form className="filters" onSubmit={submit}>
        <TimeRange from={form.from} to={form.to} onChange={(from, to) => setForm({ ...form, from, to })} />
        <label>
          Gate state
          <select value={form.state} onChange={(e) => setForm({ ...form, state: e.target.value })}>
            <option value="">any</option>
            {["requested", "granted", "denied", "timed_out"].map((s) => (
              <option key={s} value={s}>
                {s.replace("_", " ")}
              </option>
            ))}
          </select>
        </label>
        <label>
          Agent (policy changes)
          <input value={form.agent} onChange={(e) => setForm({ ...form, agent: e.target.value })} placeholder="any" />
        </label>
        <div className="filter-actions">
          <button type="submit">Show</button>
        </div>
      </form>
      <ErrorBox error={answer.error} />
      {answer.loading && !a && <Loading what="governance" />}
      {a && (
        <>
          <h2>Approval gates</h2>
          <div className="counts" data-testid="approval-counts">
            {Object.entries(a.approvals.counts).map(([s, n]) => (
              <span key={s} className={`count-card approval-${s}`}>
                <b>{n}</b> {s.replace("_", " ")}
              </span>
            ))}
            {a.approvals.counts.requested ? (
              <Link to="/?pending=approval" className="button">
                Runs waiting on approval
              </Link>
            ) : null}
          </div>
          {a.approvals.gates.length ? (
            <RowsTable
              rows={a.approvals.gates}
              testid="gates"
              columns={["state", "gate", "tool_name", "agent_name", "requested_at", "decided_at", "approver", "policy_ref", "runs", "trace_id"]}
            />
          ) : (
            <Empty>No approval gates in this range.</Empty>
          )}
          <h2>Bypasses</h2>
          <p className="muted small">Actions the policy required an approval for that ran without a granted one.</p>
          {a.bypasses.bypasses.length ? (
            <RowsTable
              rows={a.bypasses.bypasses}
              testid="bypasses"
              columns={["reason", "tool_name", "agent_name", "start_time", "policy_ref", "sandbox_id", "trace_id"]}
            />
          ) : (
            <Empty>No bypasses in this range.</Empty>
          )}
          <h2>Policy changes</h2>
          {a.changes.changes.length ? (
            <RowsTable
              rows={a.changes.changes}
              testid="policy-changes"
              columns={["agent_name", "changed_at", "previous_policy_ref", "policy_ref", "previous_trace_id", "trace_id"]}
            />
          ) : (
            <Empty>No policy changes.</Empty>
          )}
        </>
      )}
    </div>
  );
}
