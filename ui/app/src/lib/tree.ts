// The steps of a run as a tree over a flat array: built in O(n) from parent ids, children in
// start order, and flattened to the visible rows (collapsed subtrees left out) for the
// virtualised waterfall. Steps whose parent is not loaded (or is missing from the run) are roots.

import type { StepRow } from "./api";

export interface StepTree {
  steps: StepRow[];
  index: Map<string, number>;
  /** Parent's index, or -1 for a root. */
  parent: Int32Array;
  children: number[][];
  roots: number[];
  depth: Uint16Array;
  /** Earliest start and latest end (ms since the epoch). */
  start: number;
  end: number;
  startMs: Float64Array;
  endMs: Float64Array;
}

export function buildTree(steps: StepRow[]): StepTree {
  const n = steps.length;
  const index = new Map<string, number>();
  steps.forEach((s, i) => index.set(s.span_id, i));
  const parent = new Int32Array(n).fill(-1);
  const children: number[][] = Array.from({ length: n }, () => []);
  const roots: number[] = [];
  const startMs = new Float64Array(n);
  const endMs = new Float64Array(n);
  let start = Infinity;
  let end = -Infinity;
  for (let i = 0; i < n; i++) {
    const s = steps[i]!;
    const a = Date.parse(s.start_time ?? "");
    const b = s.end_time ? Date.parse(s.end_time) : a + (s.duration_ns ?? 0) / 1e6;
    startMs[i] = a;
    endMs[i] = Number.isNaN(b) ? a : b;
    if (!Number.isNaN(a)) start = Math.min(start, a);
    if (!Number.isNaN(b)) end = Math.max(end, b);
    const p = s.parent_span_id ? index.get(s.parent_span_id) : undefined;
    if (p !== undefined && p !== i) {
      parent[i] = p;
      children[p]!.push(i);
    } else roots.push(i);
  }
  // Steps arrive in start order, so children lists are in start order already. A parent loop
  // (a corrupt trace) would leave steps unreachable from a root: make each such step a root.
  const depth = new Uint16Array(n);
  const seen = new Uint8Array(n);
  const stack: number[] = [];
  const visit = (r: number) => {
    stack.push(r);
    seen[r] = 1;
    while (stack.length) {
      const i = stack.pop()!;
      for (const c of children[i]!) {
        if (seen[c]) continue;
        seen[c] = 1;
        depth[c] = Math.min(depth[i]! + 1, 65535);
        stack.push(c);
      }
    }
  };
  roots.forEach(visit);
  for (let i = 0; i < n; i++) {
    if (!seen[i]) {
      const p = parent[i]!;
      if (p >= 0) children[p] = children[p]!.filter((c) => c !== i);
      parent[i] = -1;
      roots.push(i);
      visit(i);
    }
  }
  if (start === Infinity) start = end = 0;
  return { steps, index, parent, children, roots, depth, start, end, startMs, endMs };
}

/** The rows shown: depth-first, children in start order, collapsed subtrees left out. */
export function visibleRows(tree: StepTree, collapsed: Set<number>): number[] {
  const out: number[] = [];
  const stack: number[] = [];
  for (let r = tree.roots.length - 1; r >= 0; r--) stack.push(tree.roots[r]!);
  while (stack.length) {
    const i = stack.pop()!;
    out.push(i);
    if (collapsed.has(i)) continue;
    const c = tree.children[i]!;
    for (let k = c.length - 1; k >= 0; k--) stack.push(c[k]!);
  }
  return out;
}

/** Indexes of the ancestors of `i`, nearest first. */
export function ancestors(tree: StepTree, i: number): number[] {
  const out: number[] = [];
  let p = tree.parent[i]!;
  while (p >= 0 && out.length < 100_000) {
    out.push(p);
    p = tree.parent[p]!;
  }
  return out;
}

/** Number of steps under `i`. */
export function descendants(tree: StepTree, i: number): number {
  let n = 0;
  const stack = [...tree.children[i]!];
  while (stack.length) {
    const c = stack.pop()!;
    n++;
    stack.push(...tree.children[c]!);
  }
  return n;
}
