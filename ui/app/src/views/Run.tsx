// A run: the waterfall (or the lineage graph) and the step inspector side by side, sharing the
// selected step, which lives in the URL (`?step=`). Search inside the run, keyboard navigation,
// partial loads that say so, and live refresh while the run is still going.

import { lazy, Suspense, useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { download, get, type SearchAnswer, type StepRow, type StepsPage } from "../lib/api";
import { cost, count, duration, shortId, time } from "../lib/format";
import { isTypingTarget, useApi } from "../lib/hooks";
import { navigate, useLocation, withQuery, type Crumb } from "../lib/router";
import { ancestors, buildTree, visibleRows } from "../lib/tree";
import { ErrorBox, Link, Loading, Status } from "../lib/ui";
import { Inspector } from "./Inspector";
import { Waterfall, type TimeWindow } from "./Waterfall";

const Graph = lazy(() => import("./Graph"));
const LIVE_MS = 5000;
/** A run whose last step ended this recently may still be going. */
const RECENT_MS = 5 * 60_000;

export function Run({ traceId }: { traceId: string }) {
  const loc = useLocation();
  const stepParam = loc.query.get("step") ?? undefined;
  const view = loc.query.get("view") === "graph" ? "graph" : "tree";
  const [live, setLive] = useState(false);
  const first = useApi(traceId, (signal) => get<StepsPage>(`/runs/${traceId}/steps`, {}, signal), live ? LIVE_MS : undefined);
  const [more, setMore] = useState<{ steps: StepRow[]; next: number | null; loading: boolean; error?: Error }>({
    steps: [],
    next: null,
    loading: false,
  });
  useEffect(() => setMore({ steps: [], next: null, loading: false }), [traceId]);
  const page = first.data;
  const steps = useMemo(() => (page ? (more.steps.length ? [...page.steps, ...more.steps] : page.steps) : []), [page, more.steps]);
  const nextOffset = more.steps.length ? more.next : (page?.next_offset ?? null);
  const tree = useMemo(() => buildTree(steps), [steps]);
  const run = page?.run ?? null;

  // No step without a parent: the root has not arrived, so the run is still going.
  const rootMissing = tree.roots.length > 0 && tree.roots.every((i) => tree.steps[i]!.parent_span_id);
  useEffect(() => {
    const end = run?.end_time ? Date.parse(run.end_time) : NaN;
    setLive(!!page && (rootMissing || !(Date.now() - end > RECENT_MS)));
  }, [page, run, rootMissing]);

  const loadMore = async () => {
    if (nextOffset === null) return;
    setMore((m) => ({ ...m, loading: true }));
    try {
      const p = await get<StepsPage>(`/runs/${traceId}/steps`, { offset: nextOffset });
      setMore((m) => ({ steps: [...m.steps, ...p.steps], next: p.next_offset, loading: false }));
    } catch (e) {
      setMore((m) => ({ ...m, loading: false, error: e as Error }));
    }
  };

  // Collapsed steps by span id (indexes move when a live refresh inserts steps).
  const [collapsedIds, setCollapsedIds] = useState<Set<string>>(new Set());
  const selected = stepParam !== undefined ? tree.index.get(stepParam) : undefined;
  // Opening a step (a deep link, a search hit, the graph) unfolds its ancestors.
  useEffect(() => {
    if (selected === undefined) return;
    const up = ancestors(tree, selected).map((i) => tree.steps[i]!.span_id);
    setCollapsedIds((c) => (up.some((id) => c.has(id)) ? new Set([...c].filter((id) => !up.includes(id))) : c));
  }, [selected, tree]);
  const collapsed = useMemo(() => {
    const s = new Set<number>();
    for (const id of collapsedIds) {
      const i = tree.index.get(id);
      if (i !== undefined) s.add(i);
    }
    return s;
  }, [collapsedIds, tree]);
  const rows = useMemo(() => visibleRows(tree, collapsed), [tree, collapsed]);
  const [window, setWindow] = useState<TimeWindow | null>(null);

  const select = useCallback(
    (spanId: string | undefined) => navigate(`${loc.path}${withQuery(loc.query, { step: spanId })}`, { replace: true }),
    [loc.path, loc.query],
  );
  const toggle = useCallback(
    (i: number) => {
      const id = tree.steps[i]!.span_id;
      setCollapsedIds((c) => {
        const n = new Set(c);
        if (n.has(id)) n.delete(id);
        else n.add(id);
        return n;
      });
    },
    [tree],
  );

  // Search inside the run.
  const [q, setQ] = useState("");
  const [search, setSearch] = useState<{ q: string; hits: number[]; total: number; at: number; error?: Error } | null>(null);
  const searchBox = useRef<HTMLInputElement>(null);
  const jump = useCallback(
    (hits: number[], at: number) => {
      const i = hits[at];
      if (i !== undefined) select(tree.steps[i]!.span_id);
    },
    [select, tree],
  );
  const runSearch = async (e: FormEvent) => {
    e.preventDefault();
    const text = q.trim();
    if (!text) return setSearch(null);
    if (search && search.q === text && search.hits.length) {
      const at = (search.at + 1) % search.hits.length;
      setSearch({ ...search, at });
      return jump(search.hits, at);
    }
    try {
      const a = await get<SearchAnswer>(`/runs/${traceId}/search`, { q: text });
      const hits = a.hits.map((h) => tree.index.get(h.span_id)).filter((i): i is number => i !== undefined);
      setSearch({ q: text, hits, total: a.total, at: 0 });
      jump(hits, 0);
    } catch (err) {
      setSearch({ q: text, hits: [], total: 0, at: 0, error: err as Error });
    }
  };
  const step = (d: number) => {
    if (!search || !search.hits.length) return;
    const at = (search.at + d + search.hits.length) % search.hits.length;
    setSearch({ ...search, at });
    jump(search.hits, at);
  };
  const hitSet = useMemo(() => new Set(search?.hits ?? []), [search]);

  // Keyboard: j/k or arrows through the rows, Enter/←/→ to fold, / to search.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "/" && !isTypingTarget(e)) {
        e.preventDefault();
        searchBox.current?.focus();
        return;
      }
      if (isTypingTarget(e) || e.metaKey || e.ctrlKey || e.altKey || view !== "tree") return;
      const k = selected === undefined ? -1 : rows.indexOf(selected);
      const go = (n: number) => {
        const i = rows[Math.min(Math.max(n, 0), rows.length - 1)];
        if (i !== undefined) select(tree.steps[i]!.span_id);
      };
      switch (e.key) {
        case "j":
        case "ArrowDown":
          go(k + 1);
          break;
        case "k":
        case "ArrowUp":
          go(k < 0 ? 0 : k - 1);
          break;
        case "Home":
          go(0);
          break;
        case "End":
          go(rows.length - 1);
          break;
        case "Enter":
          if (selected !== undefined && tree.children[selected]!.length) toggle(selected);
          break;
        case "ArrowLeft":
          if (selected === undefined) return;
          if (tree.children[selected]!.length && !collapsed.has(selected)) toggle(selected);
          else if (tree.parent[selected]! >= 0) select(tree.steps[tree.parent[selected]!]!.span_id);
          break;
        case "ArrowRight":
          if (selected !== undefined && collapsed.has(selected)) toggle(selected);
          break;
        default:
          return;
      }
      e.preventDefault();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [rows, selected, select, toggle, tree, collapsed, view]);

  const crumbsHere: Crumb[] = [
    ...loc.crumbs,
    { href: loc.path + withQuery(loc.query, {}), label: run?.root_name ? `${run.root_name} (${shortId(traceId)})` : `run ${shortId(traceId)}` },
  ];
  const deepLinked = useRef(stepParam !== undefined);

  if (first.error) {
    return (
      <div className="page">
        <Breadcrumbs crumbs={loc.crumbs} />
        <h1>Run {traceId}</h1>
        <ErrorBox error={first.error} />
      </div>
    );
  }
  if (!page) return <div className="page"><Loading what="run" /></div>;

  return (
    <div className="run-page" data-testid="run-page" data-trace-id={traceId}>
      <Breadcrumbs crumbs={loc.crumbs} />
      <div className="run-head">
        <div className="run-title">
          <h1>{rootMissing ? "Run in progress (root step not received yet)" : (run?.root_name ?? "Run")}</h1>
          {rootMissing ? <span className="badge status-running">running</span> : <Status value={run?.status} />}
          {live && <span className="live" title="Refreshing every 5 s while the run may still be going">● live</span>}
          <span className="mono muted small">{traceId}</span>
        </div>
        <div className="run-stats">
          <Stat label="Started">{time(run?.start_time)}</Stat>
          <Stat label="Duration">{duration(run?.duration_ns)}</Stat>
          <Stat label="Steps">{count(page.total)}</Stat>
          <Stat label="Model calls">{count(run?.llm_calls)}</Stat>
          <Stat label="Tool calls">{count(run?.tool_calls)}</Stat>
          <Stat label="Tokens">{count((run?.input_tokens ?? 0) + (run?.output_tokens ?? 0))}</Stat>
          <Stat label="Cost">{cost(run?.cost)}</Stat>
          <Stat label="Errors">{count(run?.error_count)}</Stat>
          <Stat label="Agent">{run?.agent_name ?? "—"}</Stat>
          <Stat label="Sandbox">{run?.sandbox_id ?? "—"}</Stat>
          <Stat label="Policy">{run?.policy_ref ?? "—"}</Stat>
        </div>
        <div className="run-actions">
          <Link to={`/runs/${traceId}/replay`} className="button" testid="open-replay">
            Replay
          </Link>
          <Link to={`/diff?left=${traceId}`} className="button secondary">
            Compare with…
          </Link>
          <button
            className="secondary"
            onClick={() => void download(`replay-${traceId}.json`, `/api/v1/runs/${traceId}/replay/bundle`)}
          >
            Download replay bundle
          </button>
        </div>
      </div>
      <div className="run-body">
        <section className="run-main">
          <div className="toolbar">
            <div className="tabs" role="tablist">
              <Link to={`${loc.path}${withQuery(loc.query, { view: undefined })}`} className={view === "tree" ? "active" : ""} testid="tab-tree">
                Timeline
              </Link>
              <Link to={`${loc.path}${withQuery(loc.query, { view: "graph" })}`} className={view === "graph" ? "active" : ""} testid="tab-graph">
                Lineage graph
              </Link>
            </div>
            <form className="run-search" onSubmit={runSearch}>
              <input
                ref={searchBox}
                data-testid="run-search"
                placeholder="Search names, attributes, payloads  ( / )"
                value={q}
                onChange={(e) => setQ(e.target.value)}
                onKeyDown={(e) => {
                  if (e.key === "Escape") (e.target as HTMLInputElement).blur();
                  if (e.key === "Enter" && e.shiftKey) {
                    e.preventDefault();
                    step(-1);
                  }
                }}
              />
              {search && (
                <span className="search-count" data-testid="search-count">
                  {search.error
                    ? search.error.message
                    : search.hits.length
                      ? `${search.at + 1} of ${search.hits.length}`
                      : "no matches"}
                  {search.total > search.hits.length && !search.error ? ` (${search.total} in the run; load more steps to reach the rest)` : ""}
                </span>
              )}
              {search && search.hits.length > 1 && (
                <>
                  <button type="button" className="secondary" onClick={() => step(-1)} data-testid="search-prev" aria-label="Previous match">
                    ↑
                  </button>
                  <button type="button" className="secondary" onClick={() => step(1)} data-testid="search-next" aria-label="Next match">
                    ↓
                  </button>
                </>
              )}
            </form>
          </div>
          {nextOffset !== null && (
            <div className="partial" data-testid="partial-notice">
              Showing {count(steps.length)} of {count(page.total)} steps.{" "}
              <button onClick={() => void loadMore()} disabled={more.loading} data-testid="load-more">
                {more.loading ? "Loading…" : "Load more"}
              </button>
              <ErrorBox error={more.error} />
            </div>
          )}
          {stepParam !== undefined && selected === undefined && (
            <div className="partial">Step {stepParam} is not among the loaded steps of this run.</div>
          )}
          {view === "tree" ? (
            <Waterfall
              tree={tree}
              rows={rows}
              selected={selected}
              centerOnce={deepLinked.current}
              collapsed={collapsed}
              hits={hitSet}
              currentHit={search?.hits[search.at]}
              window={window}
              onWindow={setWindow}
              onSelect={(i) => select(tree.steps[i]!.span_id)}
              onToggle={toggle}
            />
          ) : (
            <Suspense fallback={<Loading what="graph" />}>
              <Graph traceId={traceId} selected={stepParam} onSelect={select} crumbs={crumbsHere} />
            </Suspense>
          )}
        </section>
        {stepParam !== undefined ? (
          <Inspector traceId={traceId} spanId={stepParam} onSelect={select} crumbs={crumbsHere} />
        ) : (
          <aside className="inspector empty-inspector">
            <p>Select a step to see what it saw, what it did, and why.</p>
            <p className="muted small">
              Keys: <kbd>j</kbd>/<kbd>k</kbd> or arrows to move, <kbd>Enter</kbd> to fold, <kbd>/</kbd> to search.
            </p>
          </aside>
        )}
      </div>
    </div>
  );
}

function Stat({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <div className="stat">
      <div className="stat-label">{label}</div>
      <div className="stat-value">{children}</div>
    </div>
  );
}

export function Breadcrumbs({ crumbs }: { crumbs: Crumb[] }) {
  if (!crumbs.length) return null;
  return (
    <nav className="breadcrumbs" data-testid="breadcrumb" aria-label="Runs followed">
      {crumbs.map((c, k) => (
        <span key={k}>
          <Link to={c.href} crumbs={crumbs.slice(0, k)} testid="breadcrumb-item">
            {c.label}
          </Link>
          <span className="sep"> › </span>
        </span>
      ))}
      <span className="muted">this run</span>
    </nav>
  );
}
