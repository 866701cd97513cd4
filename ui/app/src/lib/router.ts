// A small router over the History API: the path and query of the page are the state of every
// view, so a link opens exactly that view on a fresh load. Opening a run pushes an entry;
// selecting a step in it replaces the entry (Back leaves the run, not each click).

import { useSyncExternalStore } from "react";

export interface Location {
  path: string;
  query: URLSearchParams;
  /** Runs followed to get here (cross-run edges), oldest first. */
  crumbs: Crumb[];
}

export interface Crumb {
  href: string;
  label: string;
}

const listeners = new Set<() => void>();
let current = read();

function read(): Location {
  const state = (history.state ?? {}) as { crumbs?: Crumb[] };
  return {
    path: location.pathname,
    query: new URLSearchParams(location.search),
    crumbs: Array.isArray(state.crumbs) ? state.crumbs : [],
  };
}

function changed(): void {
  current = read();
  for (const l of listeners) l();
}

window.addEventListener("popstate", changed);

function subscribe(l: () => void): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

export function useLocation(): Location {
  return useSyncExternalStore(subscribe, () => current);
}

export interface NavigateOptions {
  replace?: boolean;
  /** Breadcrumbs the new entry carries (default: none, or the current ones when replacing). */
  crumbs?: Crumb[];
  /** Switches tenant (`default` drops the parameter); otherwise the page's tenant is kept. */
  tenant?: string;
}

/** Goes to `href` (a path with an optional query) within the app. */
export function navigate(href: string, options: NavigateOptions = {}): void {
  const url = new URL(href, location.origin);
  if (options.tenant !== undefined) {
    if (options.tenant === "default") url.searchParams.delete("tenant");
    else url.searchParams.set("tenant", options.tenant);
  } else {
    const tenant = current.query.get("tenant");
    if (tenant && !url.searchParams.has("tenant")) url.searchParams.set("tenant", tenant);
  }
  const target = url.pathname + url.search;
  const crumbs = options.crumbs ?? (options.replace ? current.crumbs : []);
  if (target === location.pathname + location.search && !options.crumbs) return;
  if (options.replace) history.replaceState({ crumbs }, "", target);
  else history.pushState({ crumbs }, "", target);
  changed();
}

/** `query` with `changes` applied (undefined or "" removes a key), as a query string. */
export function withQuery(
  query: URLSearchParams,
  changes: Record<string, string | number | undefined | null>,
): string {
  const q = new URLSearchParams(query);
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === null || v === "") q.delete(k);
    else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** An href inside the app that keeps the tenant of the page. */
export function href(path: string): string {
  const tenant = current.query.get("tenant");
  if (!tenant) return path;
  const url = new URL(path, location.origin);
  if (!url.searchParams.has("tenant")) url.searchParams.set("tenant", tenant);
  return url.pathname + url.search;
}
