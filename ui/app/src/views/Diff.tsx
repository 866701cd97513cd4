// Two runs side by side: their decision paths aligned step by step (gaps where one run has a step
// the other has not), the first divergence marked, per-step deltas of duration, tokens and cost,
// and the inputs and outputs of a pair compared line by line.

import { useState, type FormEvent } from "react";
import { get, type DiffAnswer, type ReplayAnswer, type ReplayStep } from "../lib/api";
import { canonical, lineDiff } from "../lib/diff";
import { cost, duration, shortId } from "../lib/format";
import { useApi } from "../lib/hooks";
import { navigate, useLocation } from "../lib/router";
import { ErrorBox, Link, Loading, OpBadge } from "../lib/ui";

/** Steps of each decision path shown (the API's largest page). */
const PATH_LIMIT = 1000;

interface Pair {
  left: number | null;
  right: number | null;
  same: boolean;
}

export default function Diff() {
  const { query } = useLocation();
  const left = query.get("left") ?? "";
  const right = query.get("right") ?? "";
  const ready = left && right;
  const data = useApi(ready ? `${left}/${right}` : null, async (signal) => {
    const [diff, l, r] = await Promise.all([
      get<DiffAnswer>("/diff", { left, right }, signal),
      get<ReplayAnswer>(`/runs/${left}/replay`, { limit: PATH_LIMIT }, signal),
      get<ReplayAnswer>(`/runs/${right}/replay`, { limit: PATH_LIMIT }, signal),
    ]);
    return { diff, l: l.steps, r: r.steps };
  });
  const [open, setOpen] = useState<number | null>(null);

  let pairs: Pair[] = [];
  if (data.data) {
    const { diff, l, r } = data.data;
    pairs =
      diff.aligned ??
      Array.from({ length: Math.max(l.length, r.length) }, (_, i) => ({
        left: i < l.length ? i : null,
        right: i < r.length ? i : null,
        same: diff.first_divergence ? i < diff.first_divergence.index : true,
      }));
  }
  const firstDiff = pairs.findIndex((p) => !p.same);

  return (
    <div className="page diff-page" data-testid="diff">
      <div className="page-head">
        <h1>Compare two runs</h1>
      </div>
      <DiffForm left={left} right={right} />
      <ErrorBox error={data.error} />
      {data.loading && <Loading what="both runs" />}
      {data.data && (
        <>
          <p className={data.data.diff.identical ? "ok-note" : "warn-note"} data-testid="diff-summary">
            {data.data.diff.identical
              ? "The decision paths are identical."
              : firstDiff >= 0
                ? `The runs diverge at aligned step ${firstDiff + 1}${data.data.diff.first_divergence?.fields?.length ? ` (${data.data.diff.first_divergence.fields.join(", ")})` : ""}.`
                : "The runs differ."}
          </p>
          <table className="grid diff-table">
            <thead>
              <tr>
                <th>#</th>
                <th>
                  <Link to={`/runs/${left}`}>Left · run {shortId(left)}</Link>
                </th>
                <th>
                  <Link to={`/runs/${right}`}>Right · run {shortId(right)}</Link>
                </th>
                <th className="num">Δ duration</th>
                <th className="num">Δ tokens</th>
                <th className="num">Δ cost</th>
              </tr>
            </thead>
            <tbody>
              {pairs.map((p, k) => {
                const a = p.left !== null ? data.data!.l[p.left] : undefined;
                const b = p.right !== null ? data.data!.r[p.right] : undefined;
                return (
                  <DiffRow key={k} k={k} left={p.left} right={p.right} a={a} b={b} same={p.same} first={k === firstDiff} open={open === k} onToggle={() => setOpen(open === k ? null : k)} />
                );
              })}
            </tbody>
          </table>
        </>
      )}
    </div>
  );
}

function DiffForm({ left, right }: { left: string; right: string }) {
  const [l, setL] = useState(left);
  const [r, setR] = useState(right);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    navigate(`/diff?left=${encodeURIComponent(l.trim())}&right=${encodeURIComponent(r.trim())}`);
  };
  return (
    <form className="filters" onSubmit={submit}>
      <label>
        Left run (trace id)
        <input value={l} onChange={(e) => setL(e.target.value)} data-testid="diff-left" className="mono id-input" />
      </label>
      <label>
        Right run (trace id)
        <input value={r} onChange={(e) => setR(e.target.value)} data-testid="diff-right" className="mono id-input" />
      </label>
      <div className="filter-actions">
        <button type="submit" data-testid="diff-go">
          Compare
        </button>
      </div>
    </form>
  );
}

function delta(a: number | undefined, b: number | undefined, f: (v: number) => string): string {
  if (a === undefined || b === undefined) return "";
  const d = b - a;
  if (d === 0) return "=";
  return `${d > 0 ? "+" : "−"}${f(Math.abs(d))}`;
}

function tokens(s: ReplayStep | undefined): number | undefined {
  if (!s || (s.input_tokens === undefined && s.output_tokens === undefined)) return undefined;
  return (s.input_tokens ?? 0) + (s.output_tokens ?? 0);
}

function Missing({ index }: { index: number | null }) {
  return index === null ? (
    <span className="muted">— no step —</span>
  ) : (
    <span className="muted">step {index + 1} (past the first {PATH_LIMIT} shown)</span>
  );
}

function DiffRow(props: { k: number; left: number | null; right: number | null; a?: ReplayStep; b?: ReplayStep; same: boolean; first: boolean; open: boolean; onToggle: () => void }) {
  const { a, b } = props;
  const cls = [props.same ? "" : "changed", props.first ? "first-divergence" : "", !a || !b ? "gap" : ""].join(" ");
  return (
    <>
      <tr className={cls} onClick={props.onToggle} data-testid="diff-row" data-diverged={props.first} data-same={props.same}>
        <td className="muted">{props.k + 1}</td>
        <td>{a ? <StepCell s={a} /> : <Missing index={props.left} />}</td>
        <td>{b ? <StepCell s={b} /> : <Missing index={props.right} />}</td>
        <td className="num">{delta(a?.duration_ns, b?.duration_ns, (v) => duration(v))}</td>
        <td className="num">{delta(tokens(a), tokens(b), (v) => String(v))}</td>
        <td className="num">{delta(a?.cost, b?.cost, (v) => cost(v))}</td>
      </tr>
      {props.open && (
        <tr className="diff-detail">
          <td />
          <td colSpan={5}>
            {(["input", "output"] as const).map((f) => (
              <div key={f}>
                <h4>{f}</h4>
                <pre className="diff">
                  {lineDiff(canonical(a?.[f] ?? {}), canonical(b?.[f] ?? {})).map((l, j) => (
                    <div key={j} className={`diff-${l.op === "+" ? "add" : l.op === "-" ? "del" : "same"}`}>
                      {l.op} {l.text}
                    </div>
                  ))}
                </pre>
              </div>
            ))}
          </td>
        </tr>
      )}
    </>
  );
}

function StepCell({ s }: { s: ReplayStep }) {
  return (
    <span>
      <OpBadge operation={s.operation} /> {s.name} {s.agent_name && <span className="muted small">· {s.agent_name}</span>}
    </span>
  );
}
