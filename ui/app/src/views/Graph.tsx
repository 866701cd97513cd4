// The lineage graph of a run: its steps and the runs linked to it (retries, async hand-offs,
// resumptions, continuations), with why-edges and approval gates, edges styled by kind.
// Laid out in a Web Worker (layered for small graphs, a tidy tree for large ones); drawn as
// SVG up to a few hundred nodes and on one canvas beyond. Pan by dragging, zoom with the wheel.

import { useEffect, useMemo, useRef, useState, type PointerEvent as ReactPointerEvent, type WheelEvent } from "react";
import { get, type Lineage, type LineageNode } from "../lib/api";
import { LAYERED_MAX, NODE_H, NODE_W, type LayoutEdge, type LayoutRequest, type LayoutResult } from "../lib/layout-types";
import { shortId } from "../lib/format";
import { useApi } from "../lib/hooks";
import { navigate, type Crumb } from "../lib/router";
import { ErrorBox, KIND_COLOR, Loading, opKind } from "../lib/ui";

const MAX_NODES = 20000;
/** A layered layout that takes longer than this gives way to the tree layout. */
const LAYERED_BUDGET_MS = 4000;
const SVG_MAX = 400;
/** Below this zoom, labels cannot be read: start zoomed in and show a minimap instead. */
const READABLE = 0.45;

export const EDGE_STYLE: Record<string, { color: string; dash?: string; label: string }> = {
  child: { color: "#9aa5b4", label: "contains" },
  requested: { color: "#2f6fd0", dash: "6 4", label: "requested (why)" },
  retry_of: { color: "#d9731a", label: "retry of" },
  async_handoff: { color: "#8a4fd0", dash: "8 4", label: "async hand-off" },
  handoff: { color: "#b0509a", label: "hand-off" },
  resumes: { color: "#23915a", dash: "2 4", label: "resumes" },
  continues: { color: "#1a8f99", dash: "2 4", label: "continues" },
  gates: { color: "#c98a12", label: "approval gates" },
  decided_by: { color: "#c98a12", dash: "4 3", label: "decided by" },
};
const OTHER_EDGE = { color: "#6b7785", dash: "3 3", label: "link" };

const NODE_FILL: Record<string, string> = {
  agent: "#efe9fb",
  model: "#e6effc",
  tool: "#e4f4ea",
  approval: "#fbf1dc",
  handoff: "#f8e6f3",
  other: "#eef0f3",
};
const NODE_STROKE = KIND_COLOR;

interface Props {
  traceId: string;
  selected: string | undefined;
  onSelect: (spanId: string) => void;
  crumbs: Crumb[];
}

interface Drawn {
  nodes: LineageNode[];
  edges: { a: number; b: number; kind: string }[];
  layout: LayoutResult;
}

export default function Graph({ traceId, selected, onSelect, crumbs }: Props) {
  const lineage = useApi(`${traceId}/lineage`, (signal) =>
    get<Lineage>(`/runs/${traceId}/lineage`, { depth: 1, max_nodes: MAX_NODES }, signal),
  );
  const [drawn, setDrawn] = useState<Drawn | null>(null);
  const [layoutError, setLayoutError] = useState<string | null>(null);

  useEffect(() => {
    const data = lineage.data;
    if (!data) return;
    setDrawn(null);
    const nodes = [...data.nodes].sort((x, y) =>
      x.trace_id === y.trace_id ? 0 : x.trace_id === traceId ? -1 : y.trace_id === traceId ? 1 : x.trace_id < y.trace_id ? -1 : 1,
    );
    const index = new Map(nodes.map((n, i) => [`${n.trace_id}:${n.span_id}`, i]));
    const edges: Drawn["edges"] = [];
    const layoutEdges: LayoutEdge[] = [];
    for (const e of data.edges) {
      const a = index.get(`${e.from_trace_id}:${e.from_span_id}`);
      const b = index.get(`${e.to_trace_id}:${e.to_span_id}`);
      if (a === undefined || b === undefined) continue;
      edges.push({ a, b, kind: e.kind });
      layoutEdges.push({ from: String(a), to: String(b), kind: e.kind });
    }
    const req: LayoutRequest = {
      nodes: nodes.map((n, i) => ({ id: String(i), start: Date.parse(n.start_time ?? "") || 0, group: n.trace_id })),
      edges: layoutEdges,
      mode: nodes.length <= LAYERED_MAX ? "layered" : "tree",
    };
    return layoutInWorker(
      req,
      (layout) => setDrawn({ nodes, edges, layout }),
      (message) => setLayoutError(message),
    );
  }, [lineage.data, traceId]);

  const follow = (n: LineageNode) => {
    if (n.trace_id === traceId) onSelect(n.span_id);
    else navigate(`/runs/${n.trace_id}?step=${n.span_id}&view=graph`, { crumbs });
  };

  if (lineage.error) return <ErrorBox error={lineage.error} />;
  if (!lineage.data) return <Loading what="lineage" />;
  const data = lineage.data;
  const kinds = [...new Set(drawn?.edges.map((e) => e.kind) ?? [])].sort();
  return (
    <div className="graph-pane">
      {(data.truncated || data.runs_beyond_bounds > 0 || data.edges_beyond_bounds > 0) && (
        <div className="partial" data-testid="graph-partial">
          Partial graph: {data.nodes.length} steps drawn
          {data.truncated ? ` (the ${MAX_NODES.toLocaleString()}-step budget was reached)` : ""}
          {data.runs_beyond_bounds ? `, ${data.runs_beyond_bounds} linked runs further away not shown` : ""}
          {data.edges_beyond_bounds ? `, ${data.edges_beyond_bounds} edges to steps not shown` : ""}.
        </div>
      )}
      {layoutError && <div className="error">Layout failed: {layoutError}</div>}
      {!drawn ? (
        <Loading what={`layout of ${data.nodes.length.toLocaleString()} steps`} />
      ) : (
        <Canvas drawn={drawn} traceId={traceId} selected={selected} onNode={follow} />
      )}
      <div className="legend">
        {kinds.map((k) => {
          const s = EDGE_STYLE[k] ?? OTHER_EDGE;
          return (
            <span key={k} className="legend-item">
              <svg width="28" height="8">
                <line x1="0" y1="4" x2="28" y2="4" stroke={s.color} strokeWidth="2" strokeDasharray={s.dash} />
              </svg>
              {s.label}
            </span>
          );
        })}
        {data.runs.length > 1 && <span className="legend-item muted">dashed boxes: steps of other runs (click to open)</span>}
      </div>
    </div>
  );
}

interface View {
  x: number;
  y: number;
  k: number;
}

function Canvas({ drawn, traceId, selected, onNode }: { drawn: Drawn; traceId: string; selected: string | undefined; onNode: (n: LineageNode) => void }) {
  const { nodes, edges, layout } = drawn;
  const box = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [view, setView] = useState<View | null>(null);
  const [size, setSize] = useState({ w: 800, h: 560 });
  const drag = useRef<{ x: number; y: number; moved: boolean } | null>(null);
  const svg = nodes.length <= SVG_MAX;
  const selectedIndex = useMemo(
    () => nodes.findIndex((n) => n.trace_id === traceId && n.span_id === selected),
    [nodes, traceId, selected],
  );

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setSize({ w: el.clientWidth, h: el.clientHeight }));
    ro.observe(el);
    setSize({ w: el.clientWidth, h: el.clientHeight });
    return () => ro.disconnect();
  }, []);

  // The first step of this run (the root, usually).
  const rootIndex = useMemo(() => {
    let best = -1;
    let bestStart = Infinity;
    nodes.forEach((n, i) => {
      const t = Date.parse(n.start_time ?? "");
      if (n.trace_id === traceId && t < bestStart) {
        best = i;
        bestStart = t;
      }
    });
    return best;
  }, [nodes, traceId]);

  // Fit the whole graph when it is readable so; else start at a readable zoom on the selected
  // step (or the run's first step), with the minimap for the rest.
  useEffect(() => {
    const pad = NODE_W / 2 + 10;
    const fit = Math.min(size.w / (layout.width + 2 * pad), size.h / (layout.height + 2 * pad), 1.2);
    const focus = selectedIndex >= 0 ? selectedIndex : rootIndex;
    if (fit < READABLE && focus >= 0) {
      const k = 0.85;
      const fx = layout.xy[2 * focus]!;
      const fy = layout.xy[2 * focus + 1]!;
      setView({ k, x: size.w / 2 - fx * k, y: selectedIndex >= 0 ? size.h / 2 - fy * k : pad - fy * k + NODE_H });
    } else {
      setView({ k: fit, x: (size.w - layout.width * fit) / 2, y: pad * fit });
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps -- only when a new layout arrives
  }, [layout, size.w, size.h]);

  // Canvas drawing for large graphs.
  useEffect(() => {
    if (svg || !view) return;
    const c = canvas.current;
    if (!c) return;
    const frame = requestAnimationFrame(() => drawCanvas(c, size, view, drawn, traceId, selectedIndex));
    return () => cancelAnimationFrame(frame);
  }, [svg, view, size, drawn, traceId, selectedIndex]);

  const onWheel = (e: WheelEvent<HTMLDivElement>) => {
    if (!view) return;
    const r = e.currentTarget.getBoundingClientRect();
    const mx = e.clientX - r.left;
    const my = e.clientY - r.top;
    const k = Math.min(Math.max(view.k * Math.exp(-e.deltaY * 0.0015), 0.02), 4);
    setView({ k, x: mx - ((mx - view.x) / view.k) * k, y: my - ((my - view.y) / view.k) * k });
  };
  const nodeAt = (clientX: number, clientY: number): number => {
    if (!view || !box.current) return -1;
    const r = box.current.getBoundingClientRect();
    const gx = (clientX - r.left - view.x) / view.k;
    const gy = (clientY - r.top - view.y) / view.k;
    const [w, h] = nodeSize(layout, view.k);
    for (let i = 0; i < nodes.length; i++) {
      if (Math.abs(layout.xy[2 * i]! - gx) <= w / 2 && Math.abs(layout.xy[2 * i + 1]! - gy) <= h / 2) return i;
    }
    return -1;
  };
  const onDown = (e: ReactPointerEvent<HTMLDivElement>) => {
    e.currentTarget.setPointerCapture(e.pointerId);
    drag.current = { x: e.clientX, y: e.clientY, moved: false };
  };
  const onMove = (e: ReactPointerEvent<HTMLDivElement>) => {
    const d = drag.current;
    if (!d || !view) return;
    const dx = e.clientX - d.x;
    const dy = e.clientY - d.y;
    if (!d.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    d.moved = true;
    d.x = e.clientX;
    d.y = e.clientY;
    setView({ ...view, x: view.x + dx, y: view.y + dy });
  };
  const onUp = (e: ReactPointerEvent<HTMLDivElement>) => {
    const d = drag.current;
    drag.current = null;
    if (d && !d.moved) {
      const i = nodeAt(e.clientX, e.clientY);
      if (i >= 0) onNode(nodes[i]!);
    }
  };

  return (
    <div
      className="graph"
      ref={box}
      data-testid="graph"
      data-renderer={svg ? "svg" : "canvas"}
      data-layout={layout.mode}
      data-node-count={nodes.length}
      data-edge-count={edges.length}
      data-layout-hash={layout.hash}
      data-layout-ms={Math.round(layout.ms)}
      data-ready={view ? "true" : "false"}
      onWheel={onWheel}
      onPointerDown={onDown}
      onPointerMove={onMove}
      onPointerUp={onUp}
    >
      {svg && view ? (
        <SvgScene drawn={drawn} traceId={traceId} selected={selectedIndex} view={view} size={size} />
      ) : (
        <canvas ref={canvas} data-testid="graph-canvas" style={{ width: size.w, height: size.h }} />
      )}
      {view && layout.width * view.k > size.w * 1.5 && (
        <Minimap drawn={drawn} view={view} size={size} onCenter={(gx, gy) => setView({ ...view, x: size.w / 2 - gx * view.k, y: size.h / 2 - gy * view.k })} />
      )}
      {!svg && selectedIndex >= 0 && <Neighbourhood drawn={drawn} traceId={traceId} selected={selectedIndex} onNode={onNode} />}
      <div className="graph-controls">
        <span className="muted small">
          {nodes.length.toLocaleString()} steps · {edges.length.toLocaleString()} edges · {layout.mode === "layered" ? "layered" : "tree"} layout
        </span>
        <button className="secondary" onClick={() => setView((v) => (v ? { ...v, k: Math.min(v.k * 1.3, 4) } : v))} aria-label="Zoom in">
          +
        </button>
        <button className="secondary" onClick={() => setView((v) => (v ? { ...v, k: Math.max(v.k / 1.3, 0.02) } : v))} aria-label="Zoom out">
          −
        </button>
      </div>
    </div>
  );
}

/** Lays `req` out in a Web Worker, a layered layout giving way to the tree layout past its
 * budget; calls `done` with the result. Returns what cancels it. */
function layoutInWorker(req: LayoutRequest, done: (r: LayoutResult) => void, failed: (message: string) => void): () => void {
  let worker: Worker | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const start = (r: LayoutRequest) => {
    worker?.terminate();
    worker = new Worker(new URL("../lib/layout.worker.ts", import.meta.url), { type: "module" });
    worker.onmessage = (m: MessageEvent<LayoutResult>) => {
      clearTimeout(timer);
      done(m.data);
      worker?.terminate();
    };
    worker.onerror = (err) => failed(err.message || "the layout failed");
    worker.postMessage(r);
    if (r.mode === "layered") timer = setTimeout(() => start({ ...r, mode: "tree" }), LAYERED_BUDGET_MS);
  };
  start(req);
  return () => {
    clearTimeout(timer);
    worker?.terminate();
  };
}

/** Steps shown around the selected one in a large graph. */
const NEIGHBOURHOOD_MAX = 9;
const PANEL = { w: 460, h: 300 };

/** The selected step of a large graph with the steps one edge away, laid out layered. */
function Neighbourhood(props: { drawn: Drawn; traceId: string; selected: number; onNode: (n: LineageNode) => void }) {
  const { drawn, selected } = props;
  const sub = useMemo(() => {
    // Why-edges, links and the parent first, then children, in their order.
    const touching = drawn.edges.filter((e) => e.a === selected || e.b === selected);
    const rank = (e: { a: number; kind: string }) => (e.kind !== "child" ? 0 : e.a === selected ? 2 : 1);
    const ordered = [...touching].sort((x, y) => rank(x) - rank(y));
    const keep = [selected];
    const seen = new Set(keep);
    for (const e of ordered) {
      if (keep.length >= NEIGHBOURHOOD_MAX) break;
      const other = e.a === selected ? e.b : e.a;
      if (!seen.has(other)) {
        seen.add(other);
        keep.push(other);
      }
    }
    const at = new Map(keep.map((i, k) => [i, k]));
    const nodes = keep.map((i) => drawn.nodes[i]!);
    const edges = drawn.edges.flatMap((e) => {
      const a = at.get(e.a);
      const b = at.get(e.b);
      return a !== undefined && b !== undefined ? [{ a, b, kind: e.kind }] : [];
    });
    const neighbours = new Set(touching.map((e) => (e.a === selected ? e.b : e.a))).size;
    return { nodes, edges, more: neighbours + 1 - keep.length };
  }, [drawn, selected]);
  const [layout, setLayout] = useState<LayoutResult | null>(null);
  useEffect(() => {
    setLayout(null);
    return layoutInWorker(
      {
        nodes: sub.nodes.map((n, i) => ({ id: String(i), start: Date.parse(n.start_time ?? "") || 0, group: n.trace_id })),
        edges: sub.edges.map((e) => ({ from: String(e.a), to: String(e.b), kind: e.kind })),
        mode: "layered",
        direction: "LR",
      },
      setLayout,
      () => undefined,
    );
  }, [sub]);
  const stop = (e: { stopPropagation: () => void }) => e.stopPropagation();
  const k = layout ? Math.min(PANEL.w / (layout.width + 20), (PANEL.h - 24) / (layout.height + 20), 1) : 1;
  const height = layout ? Math.min(PANEL.h - 24, layout.height * k + 12) : 60;
  return (
    <div className="neighbourhood" data-testid="neighbourhood" onPointerDown={stop} onPointerUp={stop} onPointerMove={stop} onWheel={stop}>
      <div className="neighbourhood-title">
        The selected step and {sub.nodes.length - 1} of its neighbours{sub.more > 0 ? ` (${sub.more} more: zoom the graph)` : ""}
      </div>
      {layout ? (
        <SvgScene
          drawn={{ nodes: sub.nodes, edges: sub.edges, layout }}
          traceId={props.traceId}
          selected={0}
          view={{ k, x: (PANEL.w - layout.width * k) / 2, y: 4 }}
          size={{ w: PANEL.w, h: height }}
          onNode={props.onNode}
        />
      ) : (
        <Loading what="neighbourhood" />
      )}
    </div>
  );
}

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/** Drawn node size: the full box when zoomed in, a small mark when zoomed out. */
function nodeSize(layout: LayoutResult, k: number): [number, number] {
  if (layout.mode === "layered" || k >= 0.6) return [NODE_W, NODE_H];
  return [Math.max(8 / k, 12), Math.max(6 / k, 8)];
}

/** From the bottom of node a to the top of node b. */
function ends(layout: LayoutResult, a: number, b: number): [number, number, number, number] {
  const x1 = layout.xy[2 * a]!;
  const y1 = layout.xy[2 * a + 1]!;
  const x2 = layout.xy[2 * b]!;
  const y2 = layout.xy[2 * b + 1]!;
  if (layout.direction === "LR") {
    // Ranks left to right: from the facing sides.
    return x2 > x1 ? [x1 + NODE_W / 2, y1, x2 - NODE_W / 2, y2] : [x1 - NODE_W / 2, y1, x2 + NODE_W / 2, y2];
  }
  return y2 > y1 ? [x1, y1 + NODE_H / 2, x2, y2 - NODE_H / 2] : [x1, y1 - NODE_H / 2, x2, y2 + NODE_H / 2];
}

/** A curve between the ends of an edge, leaving and entering along the side it uses. */
function curve([x1, y1, x2, y2]: [number, number, number, number], bend: number, direction: "TB" | "LR"): string {
  if (direction === "LR") {
    const mx = (x1 + x2) / 2;
    return `M${x1},${y1} C${mx},${y1 + bend} ${mx},${y2 + bend} ${x2},${y2}`;
  }
  const my = (y1 + y2) / 2;
  return `M${x1},${y1} C${x1 + bend},${my} ${x2 + bend},${my} ${x2},${y2}`;
}

function drawCanvas(c: HTMLCanvasElement, size: { w: number; h: number }, view: View, drawn: Drawn, traceId: string, selected: number) {
  const { nodes, edges, layout } = drawn;
  const dpr = window.devicePixelRatio || 1;
  c.width = Math.round(size.w * dpr);
  c.height = Math.round(size.h * dpr);
  const g = c.getContext("2d");
  if (!g) return;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, size.w, size.h);
  g.translate(view.x, view.y);
  g.scale(view.k, view.k);
  const [w, h] = nodeSize(layout, view.k);
  // Only what is on screen.
  const x0 = -view.x / view.k - w;
  const y0 = -view.y / view.k - h;
  const x1 = (size.w - view.x) / view.k + w;
  const y1 = (size.h - view.y) / view.k + h;
  const visible = (i: number) => {
    const x = layout.xy[2 * i]!;
    const y = layout.xy[2 * i + 1]!;
    return x >= x0 && x <= x1 && y >= y0 && y <= y1;
  };
  const byKind = new Map<string, number[]>();
  edges.forEach((e, k) => {
    if (!visible(e.a) && !visible(e.b)) return;
    byKind.set(e.kind, [...(byKind.get(e.kind) ?? []), k]);
  });
  g.lineWidth = 1 / Math.max(view.k, 0.25);
  for (const [kind, list] of byKind) {
    const s = EDGE_STYLE[kind] ?? OTHER_EDGE;
    g.strokeStyle = s.color;
    g.setLineDash(s.dash ? s.dash.split(" ").map((v) => Number(v) / Math.max(view.k, 0.25)) : []);
    g.beginPath();
    for (const k of list) {
      const e = edges[k]!;
      const ax = layout.xy[2 * e.a]!;
      const ay = layout.xy[2 * e.a + 1]!;
      const bx = layout.xy[2 * e.b]!;
      const by = layout.xy[2 * e.b + 1]!;
      if (kind === "child" && by > ay) {
        // Down from the parent, along the gap above the child's row, down into the child:
        // steps of one parent share their lines instead of fanning out.
        const bus = by - h / 2 - 14;
        g.moveTo(ax, ay + h / 2);
        g.lineTo(ax, bus);
        g.lineTo(bx, bus);
        g.lineTo(bx, by - h / 2);
      } else {
        g.moveTo(ax, ay);
        g.lineTo(bx, by);
      }
    }
    g.stroke();
  }
  g.setLineDash([]);
  const labels = view.k >= 0.6;
  for (let i = 0; i < nodes.length; i++) {
    if (!visible(i)) continue;
    const n = nodes[i]!;
    const kind = opKind(n.operation);
    const x = layout.xy[2 * i]! - w / 2;
    const y = layout.xy[2 * i + 1]! - h / 2;
    g.fillStyle = n.status_code === "error" ? "#f3b4b4" : labels ? (NODE_FILL[kind] ?? "#eee") : (NODE_STROKE[kind] ?? "#888");
    g.fillRect(x, y, w, h);
    if (labels) {
      g.strokeStyle = NODE_STROKE[kind] ?? "#888";
      g.lineWidth = 1;
      if (n.trace_id !== traceId) g.setLineDash([4, 3]);
      g.strokeRect(x, y, w, h);
      g.setLineDash([]);
      g.fillStyle = "#1d2430";
      g.font = "12px system-ui, sans-serif";
      g.fillText(clip(n.name ?? n.span_id, 26), x + 8, y + 16);
      g.fillStyle = "#5c6675";
      g.font = "11px system-ui, sans-serif";
      g.fillText(n.trace_id !== traceId ? `run ${shortId(n.trace_id)}` : kind, x + 8, y + 30);
    }
  }
  if (selected >= 0) {
    g.strokeStyle = "#111";
    g.lineWidth = 3 / Math.max(view.k, 0.25);
    g.strokeRect(layout.xy[2 * selected]! - w / 2 - 2 / view.k, layout.xy[2 * selected + 1]! - h / 2 - 2 / view.k, w + 4 / view.k, h + 4 / view.k);
  }
}

const MINI_W = 220;
const MINI_H = 130;

/** The whole layout small, with the part on screen outlined; a click moves there. */
function Minimap(props: { drawn: Drawn; view: View; size: { w: number; h: number }; onCenter: (x: number, y: number) => void }) {
  const { drawn, view, size } = props;
  const canvas = useRef<HTMLCanvasElement>(null);
  const { layout, nodes } = drawn;
  const scale = Math.min(MINI_W / Math.max(layout.width, 1), MINI_H / Math.max(layout.height, 1));
  useEffect(() => {
    const c = canvas.current;
    const g = c?.getContext("2d");
    if (!c || !g) return;
    const dpr = window.devicePixelRatio || 1;
    c.width = MINI_W * dpr;
    c.height = MINI_H * dpr;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, MINI_W, MINI_H);
    for (let i = 0; i < nodes.length; i++) {
      g.fillStyle = NODE_STROKE[opKind(nodes[i]!.operation)] ?? "#888";
      g.fillRect(layout.xy[2 * i]! * scale, layout.xy[2 * i + 1]! * scale, 1.5, 1.5);
    }
    g.strokeStyle = "#111";
    g.lineWidth = 1.5;
    g.strokeRect((-view.x / view.k) * scale, (-view.y / view.k) * scale, (size.w / view.k) * scale, (size.h / view.k) * scale);
  }, [layout, nodes, scale, view, size]);
  return (
    <canvas
      ref={canvas}
      className="minimap"
      data-testid="graph-minimap"
      style={{ width: MINI_W, height: MINI_H }}
      onPointerDown={(e) => {
        e.stopPropagation();
        const r = e.currentTarget.getBoundingClientRect();
        props.onCenter((e.clientX - r.left) / scale, (e.clientY - r.top) / scale);
      }}
      onPointerUp={(e) => e.stopPropagation()}
      title="The whole graph: click to move there"
    />
  );
}

/** A graph as SVG: edges styled by kind, a box per step (dashed for steps of other runs). */
function SvgScene(props: {
  drawn: Drawn;
  traceId: string;
  selected: number;
  view: View;
  size: { w: number; h: number };
  onNode?: (n: LineageNode) => void;
}) {
  const { drawn, traceId, view, size } = props;
  const { nodes, edges, layout } = drawn;
  const selectedIndex = props.selected;
  return (
    <svg width={size.w} height={size.h} role="img" aria-label={`Lineage graph of ${nodes.length} steps`}>
      <defs>
        {Object.entries({ ...EDGE_STYLE, other: OTHER_EDGE }).map(([k, s]) => (
          <marker key={k} id={`arrow-${k}`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" fill={s.color} />
          </marker>
        ))}
      </defs>
      <g transform={`translate(${view.x},${view.y}) scale(${view.k})`}>
        {edges.map((e, k) => {
          const s = EDGE_STYLE[e.kind] ?? OTHER_EDGE;
          const bend = e.kind === "child" ? 0 : 40;
          return (
            <path
              key={k}
              d={curve(ends(layout, e.a, e.b), bend, layout.direction)}
              fill="none"
              stroke={s.color}
              strokeWidth={e.kind === "child" ? 1.2 : 1.8}
              strokeDasharray={s.dash}
              markerEnd={`url(#arrow-${EDGE_STYLE[e.kind] ? e.kind : "other"})`}
              data-kind={e.kind}
            >
              <title>{s.label}</title>
            </path>
          );
        })}
        {nodes.map((n, i) => {
          const kind = opKind(n.operation);
          const other = n.trace_id !== traceId;
          return (
            <g
              key={i}
              transform={`translate(${layout.xy[2 * i]! - NODE_W / 2},${layout.xy[2 * i + 1]! - NODE_H / 2})`}
              className={`gnode ${i === selectedIndex ? "selected" : ""}`}
              data-testid="graph-node"
              data-span-id={n.span_id}
              data-trace-id={n.trace_id}
            >
              <rect
                width={NODE_W}
                height={NODE_H}
                rx="6"
                fill={n.status_code === "error" ? "#fdeaea" : NODE_FILL[kind]}
                stroke={i === selectedIndex ? "#111" : n.status_code === "error" ? "#cf3b3b" : NODE_STROKE[kind]}
                strokeWidth={i === selectedIndex ? 2.5 : 1.2}
                strokeDasharray={other ? "4 3" : undefined}
              />
              <text x="8" y="15" className="gnode-title">
                {clip(n.name ?? n.span_id, 26)}
              </text>
              <text x="8" y="30" className="gnode-sub">
                {other ? `run ${shortId(n.trace_id)}` : clip([kind, n.agent_name].filter(Boolean).join(" · "), 30)}
              </text>
              <title>{`${n.name ?? ""}\n${n.operation ?? ""}${other ? `\nin run ${n.trace_id}` : ""}`}</title>
            </g>
          );
        })}
      </g>
    </svg>
  );
}
