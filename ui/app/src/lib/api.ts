// Requests to Cairn's query API. Every request carries the access token, if any, as
// `Authorization: Bearer` and the selected tenant in `X-Scope-OrgID` (none when a tenant-bound
// token picks the tenant); errors come back as `{"error": "…"}` and are raised as `ApiError` with
// that message. A 401 ends the session (`auth.ts`), which brings up the sign-in screen.

import { currentToken, refused, type Principal } from "./auth";

export type Row = Record<string, unknown>;

export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

let tenant: string | null = "default";

/** The tenant every request is scoped to (null: no header, the token's tenant). */
export function setApiTenant(t: string | null): void {
  tenant = t;
}

function headers(token: string | null, extra?: Record<string, string>): Record<string, string> {
  return {
    ...(tenant !== null ? { "X-Scope-OrgID": tenant } : {}),
    ...(token !== null ? { Authorization: `Bearer ${token}` } : {}),
    ...extra,
  };
}

async function message(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { error?: string };
    if (body.error) return body.error;
  } catch {
    // not JSON: the status line
  }
  return `${res.status} ${res.statusText}`.trim();
}

/** The error of a failed answer to a request sent with `token`; a 401 ends that session. */
async function failure(res: Response, token: string | null): Promise<ApiError> {
  const text = await message(res);
  if (res.status === 401) refused(token, text);
  return new ApiError(res.status, text);
}

/** `fetch` with the token and tenant headers; a failed answer is raised as `ApiError`. */
async function send(url: string, init: RequestInit = {}): Promise<Response> {
  const token = currentToken();
  const res = await fetch(url, { ...init, headers: headers(token, init.headers as Record<string, string> | undefined) });
  if (!res.ok) throw await failure(res, token);
  return res;
}

/**
 * Who `token` stands for: `GET /api/v1/whoami` with it (and no tenant header). Refusals are
 * raised as `ApiError` (401: not accepted; 403: may not read) without touching the current
 * session.
 */
export async function whoami(token: string, signal?: AbortSignal): Promise<Principal> {
  const res = await fetch("/api/v1/whoami", { headers: { Authorization: `Bearer ${token}` }, signal });
  if (!res.ok) throw new ApiError(res.status, await message(res));
  const body = (await res.json()) as Partial<Principal>;
  return { tenant: body.tenant ?? null, role: body.role ?? null };
}

/** GET `path` (under /api/v1) with `params`, as JSON. */
export async function get<T>(
  path: string,
  params?: Record<string, string | number | undefined | null>,
  signal?: AbortSignal,
): Promise<T> {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v !== undefined && v !== null && v !== "") qs.set(k, String(v));
  }
  const q = qs.toString();
  const res = await send(`/api/v1${path}${q ? `?${q}` : ""}`, { signal });
  return (await res.json()) as T;
}

/** Runs `sql`; rows as JSON, or the raw body for another `accept` type. */
export async function sql(statement: string, signal?: AbortSignal): Promise<Row[]> {
  const res = await send("/api/v1/sql", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sql: statement }),
    signal,
  });
  return (await res.json()) as Row[];
}

/** Downloads the answer of `request` as a file called `name`. */
export async function download(name: string, url: string, init?: RequestInit): Promise<void> {
  const res = await send(url, init);
  const blob = await res.blob();
  const href = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}

export async function downloadSqlCsv(statement: string): Promise<void> {
  await download("cairn-query.csv", "/api/v1/sql", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/csv" },
    body: JSON.stringify({ sql: statement }),
  });
}

// Shapes of the answers the UI reads (fields it does not read are left out).

export interface RunRow {
  trace_id: string;
  root_name?: string;
  root_span_id?: string;
  agent_name?: string;
  service_name?: string;
  conversation_id?: string;
  user_id?: string;
  sandbox_id?: string;
  policy_ref?: string;
  start_time?: string;
  end_time?: string;
  duration_ns?: number;
  span_count?: number;
  llm_calls?: number;
  tool_calls?: number;
  error_count?: number;
  input_tokens?: number;
  output_tokens?: number;
  cost?: number;
  status?: string;
  approvals?: Record<string, number>;
  bypasses?: number;
  /** No root step has arrived: the run is still going. */
  root_missing?: boolean;
}

export interface RunsPage {
  runs: RunRow[];
  next_cursor?: string | null;
}

/** A step as the waterfall reads it (flat, in start order). */
export interface StepRow {
  span_id: string;
  parent_span_id?: string;
  name?: string;
  operation?: string;
  start_time?: string;
  end_time?: string;
  duration_ns?: number;
  status_code?: string;
  status_message?: string;
  agent_name?: string;
  tool_name?: string;
  tool_call_id?: string;
  request_model?: string;
  response_model?: string;
  input_tokens?: number;
  output_tokens?: number;
  cost?: number;
  approval_state?: string;
  sandbox_id?: string;
  k8s_pod_name?: string;
  requested_tool_call_ids?: string[];
  data_read?: string[];
  data_written?: string[];
}

export interface StepsPage {
  run: RunRow | null;
  total: number;
  offset: number;
  next_offset: number | null;
  steps: StepRow[];
}

export interface Payload {
  field: string;
  ref: string;
  kind?: string;
  bytes?: number;
  content?: unknown;
}

export interface PolicyRef {
  ref?: string;
  hash?: string;
  document_ref?: string;
  trace_id?: string;
}

export interface StepDetail {
  step: Row & { span_id: string; trace_id?: string };
  payloads: Payload[];
  policy?: (PolicyRef & { previous?: PolicyRef | null }) | null;
  links?: { kind: string; trace_id: string; span_id?: string; direction: "in" | "out" }[];
  /** Set when the step ran without the approval its policy required. */
  bypass?: { reason?: string } | null;
}

export interface WhyAnswer {
  step?: Row;
  requested_by?: Row | null;
  approvals?: Row[];
  approval_gates?: Row[];
  policy?: Row | null;
  ancestors?: Row[];
  ancestor_cycle?: boolean;
}

export interface LineageNode {
  trace_id: string;
  span_id: string;
  name?: string;
  operation?: string;
  agent_name?: string;
  start_time?: string;
  end_time?: string;
  status_code?: string;
}

export interface LineageEdge {
  from_trace_id: string;
  from_span_id: string;
  to_trace_id: string;
  to_span_id: string;
  kind: string;
}

export interface Lineage {
  trace_id: string;
  runs: RunRow[];
  nodes: LineageNode[];
  edges: LineageEdge[];
  edges_beyond_bounds: number;
  runs_beyond_bounds: number;
  truncated: boolean;
}

export interface SearchAnswer {
  q: string;
  total: number;
  hits: { span_id: string; matched: string[] }[];
}

export interface ReplayStep {
  index: number;
  span_id: string;
  parent_span_id?: string;
  name?: string;
  operation?: string;
  agent_name?: string;
  status_code?: string;
  start_time?: string;
  duration_ns?: number;
  input_tokens?: number;
  output_tokens?: number;
  cost?: number;
  input?: Row;
  output?: Row;
  policy_ref?: string;
}

export interface ReplayAnswer {
  trace_id: string;
  steps: ReplayStep[];
  next_offset?: number | null;
}

export interface DiffAnswer {
  identical: boolean;
  /** Steps on each decision path. */
  left_steps: number;
  right_steps: number;
  first_divergence?: { index: number; fields: string[] } | null;
  aligned?: { left: number | null; right: number | null; same: boolean }[];
}
