// Replay: the run's decision path one step at a time (model turns and the actions they led to),
// each with its inputs and outputs; the step lives in the URL (`?i=`); the bundle downloads.

import { useEffect, useMemo, useState } from "react";
import { download, get, type ReplayAnswer, type ReplayStep } from "../lib/api";
import { cost, count, duration, shortId, time } from "../lib/format";
import { isTypingTarget, useApi } from "../lib/hooks";
import { navigate, useLocation, withQuery } from "../lib/router";
import { Empty, ErrorBox, Json, Link, Loading, OpBadge, Status } from "../lib/ui";
import { Messages } from "./Messages";
import { Breadcrumbs } from "./Run";

export default function Replay({ traceId }: { traceId: string }) {
  const loc = useLocation();
  const replay = useApi(`${traceId}/replay`, (signal) => get<ReplayAnswer>(`/runs/${traceId}/replay`, undefined, signal));
  // Later pages of the path, loaded on demand.
  const [more, setMore] = useState<{ steps: ReplayStep[]; next: number | null; loading: boolean; error?: Error }>({
    steps: [],
    next: null,
    loading: false,
  });
  const steps = useMemo(() => [...(replay.data?.steps ?? []), ...more.steps], [replay.data, more.steps]);
  const nextOffset = more.steps.length ? more.next : (replay.data?.next_offset ?? null);
  const loadMore = async () => {
    if (nextOffset === null) return;
    setMore((m) => ({ ...m, loading: true }));
    try {
      const p = await get<ReplayAnswer>(`/runs/${traceId}/replay`, { offset: nextOffset });
      setMore((m) => ({ steps: [...m.steps, ...p.steps], next: p.next_offset ?? null, loading: false }));
    } catch (e) {
      setMore((m) => ({ ...m, loading: false, error: e as Error }));
    }
  };
  const at = Math.min(Math.max(Number(loc.query.get("i") ?? 0) || 0, 0), Math.max(steps.length - 1, 0));
  const go = (i: number) => navigate(`${loc.path}${withQuery(loc.query, { i: i || undefined })}`, { replace: true });

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (isTypingTarget(e) || e.metaKey || e.ctrlKey || e.altKey) return;
      if (e.key === "ArrowRight" || e.key === "j" || e.key === "ArrowDown") go(Math.min(at + 1, steps.length - 1));
      else if (e.key === "ArrowLeft" || e.key === "k" || e.key === "ArrowUp") go(Math.max(at - 1, 0));
      else return;
      e.preventDefault();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  });

  const current: ReplayStep | undefined = steps[at];
  return (
    <div className="page replay-page" data-testid="replay">
      <Breadcrumbs crumbs={loc.crumbs} />
      <div className="page-head">
        <h1>Replay</h1>
        <Link to={`/runs/${traceId}`} className="mono small">
          run {shortId(traceId)}
        </Link>
        <div className="spacer" />
        <button onClick={() => void download(`replay-${traceId}.json`, `/api/v1/runs/${traceId}/replay/bundle`)} data-testid="replay-download">
          Download replay bundle
        </button>
      </div>
      <p className="muted small">
        The decision path: each model turn with what it saw and answered, and each action taken on it, in order. Step with ← → or
        j/k.
      </p>
      <ErrorBox error={replay.error} />
      {replay.loading && !replay.data && <Loading what="decision path" />}
      {replay.data && steps.length === 0 && <Empty>This run has no model turns or actions to replay.</Empty>}
      {current && (
        <div className="replay">
          <ol className="replay-list">
            {steps.map((s, i) => (
              <li key={s.span_id} className={i === at ? "current" : ""} onClick={() => go(i)} data-testid="replay-item">
                <span className="muted small">{i + 1}</span> <OpBadge operation={s.operation} /> {s.name}
              </li>
            ))}
            {nextOffset !== null && (
              <li className="partial" data-testid="replay-partial">
                Showing the first {steps.length} steps.
                <button onClick={() => void loadMore()} disabled={more.loading}>
                  {more.loading ? "Loading…" : "Load more"}
                </button>
              </li>
            )}
            {more.error && (
              <li>
                <ErrorBox error={more.error} />
              </li>
            )}
          </ol>
          <div className="replay-step" data-testid="replay-step" data-index={at} data-span-id={current.span_id}>
            <div className="replay-nav">
              <button onClick={() => go(at - 1)} disabled={at === 0} data-testid="replay-prev">
                ← Previous
              </button>
              <span>
                Step {at + 1} of {steps.length}
                {nextOffset !== null ? "+" : ""}
              </span>
              <button onClick={() => go(at + 1)} disabled={at >= steps.length - 1} data-testid="replay-next">
                Next →
              </button>
            </div>
            <h2>
              <OpBadge operation={current.operation} /> {current.name} <Status value={current.status_code} />
            </h2>
            <div className="muted small">
              {current.agent_name} · {time(current.start_time)} · {duration(current.duration_ns)}
              {current.input_tokens !== undefined && ` · ${count(current.input_tokens)} in / ${count(current.output_tokens)} out`}
              {current.cost !== undefined && ` · ${cost(current.cost)}`} ·{" "}
              <Link to={`/runs/${traceId}?step=${current.span_id}`}>open in the run</Link>
            </div>
            <div className="io">
              <div>
                <h3>Input</h3>
                <StepIo value={current.input} />
              </div>
              <div>
                <h3>Output</h3>
                <StepIo value={current.output} />
              </div>
            </div>
          </div>
        </div>
      )}
    </div>
  );
}

/** A step's input or output: messages role by role, other fields as JSON. */
export function StepIo({ value }: { value: Record<string, unknown> | undefined }) {
  if (!value || Object.keys(value).length === 0) return <div className="muted small">—</div>;
  const { input_messages, output_messages, ...rest } = value;
  return (
    <div>
      {input_messages !== undefined && <Messages value={input_messages} />}
      {output_messages !== undefined && <Messages value={output_messages} />}
      {Object.keys(rest).length > 0 && <Json value={rest} />}
    </div>
  );
}
