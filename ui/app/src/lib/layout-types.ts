// What the layout worker (lib/layout.worker.ts) is asked and answers; kept apart from the
// layout code so the page does not load the layout library.

/** Graphs up to this many nodes get a layered layout; larger ones a tidy tree. */
export const LAYERED_MAX = 300;
export const NODE_W = 180;
export const NODE_H = 38;

export interface LayoutNode {
  id: string;
  /** Start time (ms), for ordering. */
  start: number;
  group: string;
}

export interface LayoutEdge {
  from: string;
  to: string;
  kind: string;
}

export interface LayoutRequest {
  nodes: LayoutNode[];
  edges: LayoutEdge[];
  mode: "layered" | "tree";
  /** Layered layouts: ranks top to bottom (default) or left to right. */
  direction?: "TB" | "LR";
}

export interface LayoutResult {
  mode: "layered" | "tree";
  /** Which way ranks run: edges leave and enter nodes on that axis. */
  direction: "TB" | "LR";
  /** x, y of each node's centre, in the order of the request's nodes. */
  xy: Float64Array;
  width: number;
  height: number;
  hash: string;
  ms: number;
}
