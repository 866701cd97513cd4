// Graph layout, run in a Web Worker (lib/layout.worker.ts) so the page never freezes:
// - up to LAYERED_MAX nodes: a layered (Sugiyama) layout by dagre;
// - above, or when that takes longer than its budget: a compact tree over the parent links
//   (each step over the block of its leaf children, a few columns wide, its other children's
//   subtrees side by side to the right, all in start order), linear in the number of nodes.
// Both are deterministic: inputs are sorted first, so the same run always draws the same picture.

import dagre from "@dagrejs/dagre";

import { NODE_H, NODE_W, type LayoutNode, type LayoutRequest, type LayoutResult } from "./layout-types";

const byStart = (a: LayoutNode, b: LayoutNode) => a.start - b.start || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

export function layout(req: LayoutRequest): LayoutResult {
  const t0 = performance.now();
  const r = req.mode === "layered" ? layered(req) : tree(req);
  const direction = req.mode === "layered" ? (req.direction ?? "TB") : "TB";
  return { ...r, direction, hash: hash(r.xy), ms: performance.now() - t0 };
}

function layered(req: LayoutRequest): Omit<LayoutResult, "hash" | "ms" | "direction"> {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: req.direction ?? "TB", nodesep: 24, ranksep: 56, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  const nodes = [...req.nodes].sort(byStart);
  for (const n of nodes) g.setNode(n.id, { width: NODE_W, height: NODE_H });
  const edges = [...req.edges].sort((a, b) => (a.from + a.to + a.kind < b.from + b.to + b.kind ? -1 : 1));
  edges.forEach((e, k) => {
    if (e.from !== e.to && g.hasNode(e.from) && g.hasNode(e.to)) {
      g.setEdge(e.from, e.to, { weight: e.kind === "child" ? 4 : 1, minlen: 1 }, `e${k}`);
    }
  });
  dagre.layout(g);
  const xy = new Float64Array(req.nodes.length * 2);
  req.nodes.forEach((n, i) => {
    const p = g.node(n.id) as { x: number; y: number } | undefined;
    xy[2 * i] = p?.x ?? 0;
    xy[2 * i + 1] = p?.y ?? 0;
  });
  const info = g.graph() as { width?: number; height?: number };
  return { mode: "layered", xy, width: info.width ?? 0, height: info.height ?? 0 };
}

/** Leaf children of one step are laid out in a block this many columns wide. */
const LEAF_COLUMNS = 6;

function tree(req: LayoutRequest): Omit<LayoutResult, "hash" | "ms" | "direction"> {
  const n = req.nodes.length;
  const order = req.nodes.map((_, i) => i).sort((a, b) => byStart(req.nodes[a]!, req.nodes[b]!));
  const index = new Map(req.nodes.map((node, i) => [node.id, i]));
  const parent = new Int32Array(n).fill(-1);
  for (const e of req.edges) {
    if (e.kind !== "child") continue;
    const a = index.get(e.from);
    const b = index.get(e.to);
    if (a !== undefined && b !== undefined && a !== b && parent[b] === -1) parent[b] = a;
  }
  const children: number[][] = Array.from({ length: n }, () => []);
  const roots: number[] = [];
  for (const i of order) {
    const p = parent[i]!;
    if (p >= 0) children[p]!.push(i);
    else roots.push(i);
  }
  // Roots grouped by run (this run first, as the nodes come), in start order within a group.
  const groups = [...new Set(req.nodes.map((x) => x.group))];
  roots.sort((a, b) => groups.indexOf(req.nodes[a]!.group) - groups.indexOf(req.nodes[b]!.group));

  // Depth-first order from the roots (a parent loop leaves steps unreached: they become roots).
  const seen = new Uint8Array(n);
  const pre: number[] = [];
  const walk = (r: number) => {
    const stack = [r];
    seen[r] = 1;
    while (stack.length) {
      const i = stack.pop()!;
      pre.push(i);
      const c = (children[i] = children[i]!.filter((k) => !seen[k]));
      for (const k of c) seen[k] = 1;
      for (let k = c.length - 1; k >= 0; k--) stack.push(c[k]!);
    }
  };
  roots.forEach(walk);
  for (let i = 0; i < n; i++) {
    if (!seen[i]) {
      roots.push(i);
      walk(i);
    }
  }

  // Each step's subtree is a box: its leaf children in a block of LEAF_COLUMNS columns under it,
  // then its other children's boxes side by side. Widths bottom-up, positions top-down.
  const colW = NODE_W + 16;
  const rowH = NODE_H + 34;
  const leaves = (i: number) => children[i]!.filter((c) => children[c]!.length === 0);
  const inner = (i: number) => children[i]!.filter((c) => children[c]!.length > 0);
  const width = new Float64Array(n);
  for (let k = pre.length - 1; k >= 0; k--) {
    const i = pre[k]!;
    const l = leaves(i).length;
    let w = Math.min(l, LEAF_COLUMNS) * colW;
    for (const c of inner(i)) w += width[c]!;
    width[i] = Math.max(w, colW);
  }
  const xy = new Float64Array(n * 2);
  const left = new Float64Array(n);
  const top = new Float64Array(n);
  let x = 0;
  let bottom = 0;
  for (const r of roots) {
    left[r] = x;
    top[r] = 0;
    x += width[r]! + colW;
  }
  for (const i of pre) {
    const l = leaves(i);
    const cols = Math.min(l.length, LEAF_COLUMNS);
    // Over its own leaf block, at the left of its subtree (centring it over a wide subtree
    // would put it far from the steps it ran).
    xy[2 * i] = left[i]! + (Math.max(cols, 1) * colW) / 2 - 8;
    xy[2 * i + 1] = top[i]! + NODE_H / 2;
    bottom = Math.max(bottom, top[i]! + rowH);
    l.forEach((c, k) => {
      left[c] = left[i]! + (k % cols) * colW;
      top[c] = top[i]! + rowH * (1 + Math.floor(k / cols));
    });
    let cx = left[i]! + cols * colW;
    for (const c of inner(i)) {
      left[c] = cx;
      top[c] = top[i]! + rowH;
      cx += width[c]!;
    }
  }
  return { mode: "tree", xy, width: Math.max(x - colW, colW), height: bottom };
}

/** FNV-1a over the rounded positions: equal hashes, equal pictures. */
function hash(xy: Float64Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < xy.length; i++) {
    let v = Math.round(xy[i]!) | 0;
    for (let b = 0; b < 4; b++) {
      h ^= v & 0xff;
      h = Math.imul(h, 0x01000193);
      v >>>= 8;
    }
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}
