// The run as a tree of steps with timeline bars: a virtualised list (only the rows on screen are
// in the DOM, whatever the run's size), an overview strip of the whole run drawn on one canvas,
// and a time window chosen by dragging on the strip.

import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useLayoutEffect, useRef, useState, type CSSProperties, type PointerEvent } from "react";
import { duration, cost } from "../lib/format";
import { visibleRows, type StepTree } from "../lib/tree";
import { KIND_COLOR, opKind } from "../lib/ui";

const ROW = 26;
/** Up to this many steps the overview draws a row per step; beyond, activity over time. */
const ROWS_MAX = 400;

export interface TimeWindow {
  from: number;
  to: number;
}

export interface WaterfallProps {
  tree: StepTree;
  rows: number[];
  selected: number | undefined;
  /** Scroll the selected row to the middle once (a deep link), then only keep it in view. */
  centerOnce: boolean;
  collapsed: Set<number>;
  hits: Set<number>;
  currentHit: number | undefined;
  window: TimeWindow | null;
  onWindow: (w: TimeWindow | null) => void;
  onSelect: (i: number) => void;
  onToggle: (i: number) => void;
}

const COLORS = KIND_COLOR;

function barColor(tree: StepTree, i: number): string {
  const s = tree.steps[i]!;
  if (s.status_code === "error") return "#cf3b3b";
  return COLORS[opKind(s.operation)] ?? COLORS.other!;
}

export function Waterfall(props: WaterfallProps) {
  const { tree, rows, selected, hits, currentHit } = props;
  const scroller = useRef<HTMLDivElement>(null);
  const from = props.window?.from ?? tree.start;
  const to = props.window?.to ?? tree.end;
  const span = Math.max(to - from, 1);
  const virtual = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW,
    overscan: 12,
  });
  const centered = useRef(false);
  useLayoutEffect(() => {
    if (selected === undefined) return;
    const k = rows.indexOf(selected);
    if (k < 0) return;
    const center = props.centerOnce && !centered.current;
    centered.current = true;
    virtual.scrollToIndex(k, { align: center ? "center" : "auto" });
    // eslint-disable-next-line react-hooks/exhaustive-deps -- scroll when the selection moves
  }, [selected, rows]);

  return (
    <div className="waterfall" data-testid="waterfall">
      <Overview tree={props.tree} window={props.window} onWindow={props.onWindow} />
      <div className="wf-head">
        <div className="wf-name">Step</div>
        <div className="wf-axis">
          {[0, 0.25, 0.5, 0.75, 1].map((f) => (
            <span key={f} style={{ left: `${f * 100}%` }}>
              {f === 0 && from === tree.start ? "0" : duration((from - tree.start + f * span) * 1e6)}
            </span>
          ))}
        </div>
      </div>
      <div className="wf-rows" ref={scroller} tabIndex={-1} data-testid="waterfall-rows">
        <div style={{ height: virtual.getTotalSize(), position: "relative" }}>
          {virtual.getVirtualItems().map((v) => {
            const i = rows[v.index]!;
            const s = tree.steps[i]!;
            const a = tree.startMs[i]!;
            const b = tree.endMs[i]!;
            const left = ((a - from) / span) * 100;
            const width = Math.max(((b - a) / span) * 100, 0.15);
            const kids = tree.children[i]!.length;
            const isCollapsed = props.collapsed.has(i);
            const cls = [
              "wf-row",
              i === selected ? "selected" : "",
              hits.has(i) ? "hit" : "",
              i === currentHit ? "hit-current" : "",
              s.status_code === "error" ? "failed" : "",
            ].join(" ");
            const meta = s.tool_name ?? s.response_model ?? s.request_model ?? s.agent_name ?? "";
            return (
              <div
                key={v.key}
                className={cls}
                style={{ transform: `translateY(${v.start}px)`, height: ROW }}
                data-testid="step-row"
                data-span-id={s.span_id}
                data-depth={tree.depth[i]}
                aria-selected={i === selected}
                role="row"
                onClick={() => props.onSelect(i)}
              >
                <div className="wf-name" style={{ paddingLeft: 6 + Math.min(tree.depth[i]!, 40) * 14 }}>
                  {kids > 0 ? (
                    <button
                      className="caret"
                      aria-label={isCollapsed ? "Expand" : "Collapse"}
                      aria-expanded={!isCollapsed}
                      onClick={(e) => {
                        e.stopPropagation();
                        props.onToggle(i);
                      }}
                    >
                      {isCollapsed ? "▸" : "▾"}
                    </button>
                  ) : (
                    <span className="caret-space" />
                  )}
                  <span className={`dot op-${opKind(s.operation)}`} />
                  <span className="wf-label" title={s.name}>
                    {s.name ?? s.span_id}
                  </span>
                  {isCollapsed && <span className="muted small"> +{kids}</span>}
                  {s.approval_state && <span className={`badge approval-${s.approval_state}`}>{s.approval_state}</span>}
                  {meta && !s.name?.includes(meta) && <span className="muted small wf-meta">{meta}</span>}
                </div>
                <div className="wf-track">
                  {b >= from && a <= to && (
                    <div
                      className="wf-bar"
                      style={{ left: `${Math.max(left, 0)}%`, width: `${Math.min(width, 100 - Math.max(left, 0))}%`, background: barColor(tree, i) }}
                    />
                  )}
                  <span className="wf-dur" style={labelPlace(left, width)}>
                    {duration(s.duration_ns)}
                    {s.cost ? ` · ${cost(s.cost)}` : ""}
                  </span>
                </div>
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}

/** Every step of the run on one canvas, in tree order; drag to pick a time window. */
function Overview(props: { tree: StepTree; window: TimeWindow | null; onWindow: (w: TimeWindow | null) => void }) {
  const { tree } = props;
  const canvas = useRef<HTMLCanvasElement>(null);
  const [drag, setDrag] = useState<{ a: number; b: number } | null>(null);
  const HEIGHT = 44;

  useEffect(() => {
    const c = canvas.current;
    if (!c) return;
    const draw = () => {
      const w = c.clientWidth;
      const dpr = window.devicePixelRatio || 1;
      c.width = Math.round(w * dpr);
      c.height = Math.round(HEIGHT * dpr);
      const g = c.getContext("2d");
      if (!g) return;
      g.scale(dpr, dpr);
      g.clearRect(0, 0, w, HEIGHT);
      const span = Math.max(tree.end - tree.start, 1);
      if (tree.steps.length <= ROWS_MAX) {
        // One thin row per step, in tree order.
        const order = visibleRows(tree, new Set());
        const n = order.length || 1;
        const rowH = Math.max(HEIGHT / n, 0.5);
        for (let k = 0; k < order.length; k++) {
          const i = order[k]!;
          const x = ((tree.startMs[i]! - tree.start) / span) * w;
          const bw = Math.max(((tree.endMs[i]! - tree.startMs[i]!) / span) * w, 1);
          g.fillStyle = barColor(tree, i);
          g.fillRect(x, (k / n) * HEIGHT, bw, rowH);
        }
      } else {
        drawDensity(g, tree, w, HEIGHT, span);
      }
    };
    draw();
    const ro = new ResizeObserver(draw);
    ro.observe(c);
    return () => ro.disconnect();
  }, [tree]);

  const span = Math.max(tree.end - tree.start, 1);
  const fraction = (e: PointerEvent<HTMLDivElement>) => {
    const r = e.currentTarget.getBoundingClientRect();
    return Math.min(Math.max((e.clientX - r.left) / r.width, 0), 1);
  };
  const w = props.window;
  const shade = drag
    ? { left: Math.min(drag.a, drag.b), right: Math.max(drag.a, drag.b) }
    : w
      ? { left: (w.from - tree.start) / span, right: (w.to - tree.start) / span }
      : null;

  return (
    <div className="overview">
      <div
        className="overview-canvas"
        onPointerDown={(e) => {
          e.currentTarget.setPointerCapture(e.pointerId);
          const f = fraction(e);
          setDrag({ a: f, b: f });
        }}
        onPointerMove={(e) => drag && setDrag({ a: drag.a, b: fraction(e) })}
        onPointerUp={() => {
          if (!drag) return;
          const lo = Math.min(drag.a, drag.b);
          const hi = Math.max(drag.a, drag.b);
          setDrag(null);
          if (hi - lo > 0.002) props.onWindow({ from: tree.start + lo * span, to: tree.start + hi * span });
        }}
        title="Drag to zoom to a time range"
      >
        <canvas ref={canvas} data-testid="waterfall-overview" style={{ height: HEIGHT }} />
        {shade && (
          <div className="overview-window" style={{ left: `${shade.left * 100}%`, width: `${(shade.right - shade.left) * 100}%` }} />
        )}
      </div>
      <div className="overview-caption">
        {w ? (
          <>
            Showing {duration((w.to - w.from) * 1e6)} from +{duration((w.from - tree.start) * 1e6)}{" "}
            <button className="link" onClick={() => props.onWindow(null)} data-testid="zoom-reset">
              show the whole run
            </button>
          </>
        ) : (
          <span className="muted">
            {tree.steps.length > ROWS_MAX ? "Steps under way over the whole run" : "Whole run"}, {duration((tree.end - tree.start) * 1e6)} ·
            drag on the strip to zoom
          </span>
        )}
      </div>
    </div>
  );
}

/** Where a bar's label goes: after the bar, or before it when the bar reaches the right edge,
 * or inside it (white) when the bar spans nearly the whole track. */
function labelPlace(left: number, width: number): CSSProperties {
  const end = left + width;
  if (end < 78) return { left: `${Math.max(end, 0)}%` };
  if (left > 22) return { right: `${100 - left}%`, marginRight: 6 };
  return { left: `${Math.max(left, 0)}%`, color: "#fff", fontWeight: 600 };
}

/** Steps under way per pixel column, stacked by kind (errors on top): a condensed timeline. */
function drawDensity(g: CanvasRenderingContext2D, tree: StepTree, w: number, height: number, span: number) {
  const kinds = ["agent", "model", "tool", "approval", "handoff", "other", "error"];
  const cols = Math.max(Math.floor(w), 1);
  const counts = kinds.map(() => new Float32Array(cols));
  const leaf = (i: number) => tree.children[i]!.length === 0;
  for (let i = 0; i < tree.steps.length; i++) {
    // Agents span their whole sub-run: count what they do, not that they are open.
    if (!leaf(i) && opKind(tree.steps[i]!.operation) === "agent") continue;
    const s = tree.steps[i]!;
    const kind = s.status_code === "error" ? 6 : kinds.indexOf(opKind(s.operation));
    const a = Math.floor(((tree.startMs[i]! - tree.start) / span) * (cols - 1));
    const b = Math.max(a, Math.floor(((tree.endMs[i]! - tree.start) / span) * (cols - 1)));
    const row = counts[kind < 0 ? 5 : kind]!;
    for (let x = Math.max(a, 0); x <= Math.min(b, cols - 1); x++) row[x]! += 1;
  }
  let max = 1;
  for (let x = 0; x < cols; x++) {
    let t = 0;
    for (const row of counts) t += row[x]!;
    max = Math.max(max, t);
  }
  for (let x = 0; x < cols; x++) {
    let y = height;
    kinds.forEach((k, j) => {
      const v = counts[j]![x]!;
      if (!v) return;
      const h = (v / max) * (height - 2);
      g.fillStyle = k === "error" ? "#cf3b3b" : (COLORS[k] ?? COLORS.other!);
      g.fillRect(x, y - h, 1, h);
      y -= h;
    });
  }
}
