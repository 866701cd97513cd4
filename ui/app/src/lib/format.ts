// How numbers, times and ids are shown.

export function duration(ns: number | undefined | null): string {
  if (ns === undefined || ns === null) return "—";
  const ms = ns / 1e6;
  if (ms < 1) return `${(ns / 1e3).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s % 60)}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function cost(v: number | undefined | null, currency = "USD"): string {
  if (v === undefined || v === null) return "—";
  const sym = currency === "USD" ? "$" : `${currency} `;
  if (v === 0) return `${sym}0`;
  if (v < 0.0001) return `${sym}${v.toPrecision(2)}`;
  if (v < 0.01) return `${sym}${v.toFixed(4)}`;
  return `${sym}${v.toFixed(2)}`;
}

export function count(v: number | undefined | null): string {
  if (v === undefined || v === null) return "—";
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  return v.toLocaleString("en-US");
}

export function time(iso: string | undefined | null): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, "").slice(0, 19);
}

/** Milliseconds since the epoch of an RFC 3339 time (NaN if absent). */
export function ms(iso: string | undefined | null): number {
  return iso ? Date.parse(iso) : NaN;
}

export function shortId(id: string | undefined | null): string {
  if (!id) return "—";
  const trimmed = id.replace(/^0+/, "");
  return trimmed.length <= 12 ? trimmed || "0" : `${id.slice(0, 8)}…${id.slice(-4)}`;
}

export function bytes(n: number | undefined | null): string {
  if (n === undefined || n === null) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** A value of an arbitrary row, as text. */
export function cell(v: unknown): string {
  if (v === undefined || v === null) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

/** A `datetime-local` value read as UTC, as RFC 3339 (other values pass as typed). */
export function utc(v: string): string {
  return /^\d{4}-\d\d-\d\dT\d\d:\d\d$/.test(v) ? `${v}:00Z` : v;
}

/** A time range of the UI's `datetime-local` inputs as the API takes it (empty stays empty). */
export function utcRange(from: string, to: string): { from: string; to: string } {
  return { from: from && utc(from), to: to && utc(to) };
}
