// The tenant the UI shows: `?tenant=` in the URL (kept by every link inside the app, so a link
// names its tenant), else `default`.

import { setApiTenant } from "./api";

export function tenantOf(query: URLSearchParams): string {
  const t = query.get("tenant") || "default";
  setApiTenant(t);
  return t;
}
