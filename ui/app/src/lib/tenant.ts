// The tenant the UI shows. Without a token, or with an admin token (which reads every tenant):
// `?tenant=` in the URL (kept by every link inside the app, so a link names its tenant), else
// `default`, sent as `X-Scope-OrgID`. With a token bound to one tenant: that tenant, and no
// header at all (the server scopes the request to the token's tenant); a URL naming another
// tenant is reported as such, not sent to be refused.

import { setApiTenant } from "./api";
import type { AuthState } from "./auth";

export interface TenantView {
  /** The tenant shown (a label when the server did not say which one the token reads). */
  tenant: string;
  /** The token decides the tenant: the box shows it and cannot change it. */
  fixed: boolean;
  /** A tenant the URL names that the token cannot read. */
  foreign: string | null;
}

/** The label of a token's tenant when the server did not name it. */
export const TOKEN_TENANT = "the token's tenant";

export function tenantOf(query: URLSearchParams, auth: Pick<AuthState, "token" | "principal">): TenantView {
  const named = query.get("tenant") || null;
  const bound = auth.token !== null && auth.principal?.role !== "admin";
  if (!bound) {
    const t = named ?? "default";
    setApiTenant(t);
    return { tenant: t, fixed: false, foreign: null };
  }
  const own = auth.principal?.tenant ?? null;
  if (own === null) {
    // The server did not say: a tenant the URL names is asked for (and refused if not the token's).
    setApiTenant(named);
    return { tenant: named ?? TOKEN_TENANT, fixed: true, foreign: null };
  }
  setApiTenant(null);
  return { tenant: own, fixed: true, foreign: named !== null && named !== own ? named : null };
}
