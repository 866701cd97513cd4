// Access tokens. With `--auth-tokens` on the server, every API request needs one: the UI keeps it
// in sessionStorage (this tab, until it closes) or, when the user asks to be remembered on this
// device, in localStorage (this browser, until sign-out), and `api.ts` sends it as
// `Authorization: Bearer`. A 401 from any request ends the session and brings up the sign-in
// screen with the server's reason. With auth off nothing here changes a request: no answer is
// ever a 401, so the sign-in screen never shows.

import { useSyncExternalStore } from "react";

/** Whom a token stands for, as `GET /api/v1/whoami` answers. */
export interface Principal {
  /** The tenant the token is bound to (an admin's reads every tenant; null: not said). */
  tenant: string | null;
  role: "read" | "ingest" | "admin" | null;
}

export interface AuthState {
  /** The token requests carry, if any. */
  token: string | null;
  /** Whom the token stands for: known once checked, null before (or with no token). */
  principal: Principal | null;
  /** A token is stored but not checked yet (on load). */
  checking: boolean;
  /** The server asked for a token: the sign-in screen shows. */
  required: boolean;
  /** Why the sign-in screen shows: a refused or ended session (null: none given). */
  reason: string | null;
}

const KEY = "cairn.token";

function stored(): string | null {
  try {
    return sessionStorage.getItem(KEY) ?? localStorage.getItem(KEY);
  } catch {
    return null; // storage disabled: tokens last as long as the page
  }
}

function store(token: string | null, remember: boolean): void {
  try {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
    if (token !== null) (remember ? localStorage : sessionStorage).setItem(KEY, token);
  } catch {
    // storage disabled or full: the session lasts as long as the page
  }
}

const initial = stored();
let state: AuthState = { token: initial, principal: null, checking: initial !== null, required: false, reason: null };
const listeners = new Set<() => void>();

function set(next: Partial<AuthState>): void {
  state = { ...state, ...next };
  for (const l of listeners) l();
}

function subscribe(l: () => void): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

export function useAuth(): AuthState {
  return useSyncExternalStore(subscribe, () => state);
}

/** The token requests carry now. */
export function currentToken(): string | null {
  return state.token;
}

/** Whom the current token stands for (null: no token, or not checked yet). */
export function currentPrincipal(): Principal | null {
  return state.principal;
}

/** A checked token: kept (sessionStorage, or localStorage with `remember`) and used from now on. */
export function signedIn(token: string, principal: Principal, remember: boolean): void {
  store(token, remember);
  set({ token, principal, checking: false, required: false, reason: null });
}

/** The stored token checked on load and still good. */
export function confirmed(principal: Principal): void {
  set({ principal, checking: false });
}

/** Forgets the token and shows the sign-in screen, saying `reason`. */
export function signOut(reason: string | null): void {
  store(null, false);
  set({ token: null, principal: null, checking: false, required: true, reason });
}

/**
 * A request sent with `token` (null: none) was answered 401 with `message`. Ends the session of
 * that token; an answer to a token already replaced changes nothing.
 */
export function refused(token: string | null, message: string): void {
  if (token !== state.token) return;
  if (token === null) {
    if (!state.required) set({ required: true, checking: false });
    return;
  }
  signOut(`The server no longer accepts your access token: ${message}. Sign in again.`);
}

// Signed out in another tab of this browser (a remembered token removed): here too.
window.addEventListener("storage", (e) => {
  if (e.key === KEY && e.storageArea === localStorage && e.newValue === null && state.token !== null && e.oldValue === state.token) {
    signOut("You signed out in another tab.");
  }
});
