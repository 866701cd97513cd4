// Lays out one graph off the main thread (see lib/layout.ts).

import { layout } from "./layout";
import type { LayoutRequest } from "./layout-types";

self.onmessage = (e: MessageEvent<LayoutRequest>) => {
  const result = layout(e.data);
  (self as unknown as Worker).postMessage(result, [result.xy.buffer]);
};
