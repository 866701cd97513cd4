// Small shared pieces: links inside the app, status badges, errors, JSON blocks.

import type { MouseEvent, ReactNode } from "react";
import { href as appHref, navigate, type Crumb } from "./router";
import { ApiError } from "./api";
import { signOut, useAuth } from "./auth";

export function Link(props: {
  to: string;
  children: ReactNode;
  className?: string;
  crumbs?: Crumb[];
  title?: string;
  testid?: string;
}) {
  const target = appHref(props.to);
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(props.to, props.crumbs ? { crumbs: props.crumbs } : {});
  };
  return (
    <a href={target} onClick={onClick} className={props.className} title={props.title} data-testid={props.testid}>
      {props.children}
    </a>
  );
}

export function Status({ value }: { value: string | undefined }) {
  const v = value ?? "unset";
  return <span className={`badge status-${v}`}>{v}</span>;
}

export function ErrorBox({ error }: { error: Error | undefined }) {
  if (!error) return null;
  if (error instanceof ApiError && error.status === 403) return <Denied message={error.message} />;
  const notFound = error instanceof ApiError && error.status === 404;
  return (
    <div className="error" role="alert" data-testid="error">
      {notFound ? "Not found: " : "Error: "}
      {error.message}
    </div>
  );
}

/** A 403: what the server refused (its message names the role or tenant), and with a token, whose. */
function Denied({ message }: { message: string }) {
  const { token, principal } = useAuth();
  return (
    <div className="error denied-inline" role="alert" data-testid="error">
      <strong>Not allowed:</strong> {message}
      {token !== null && (
        <div className="small">
          {principal?.role ? `Signed in with a ${principal.role} token` : "Signed in with a token"}
          {principal?.tenant ? ` for tenant ${principal.tenant}. ` : ". "}
          <button className="link" onClick={() => signOut(null)} data-testid="other-token">
            Sign in with another token
          </button>
        </div>
      )}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return <div className="loading">Loading {what}…</div>;
}

export function Json({ value }: { value: unknown }) {
  const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  return <pre className="json">{text}</pre>;
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

const OPS: Record<string, string> = {
  agent_invoke: "agent",
  llm_call: "model",
  tool_call: "tool",
  approval: "approval",
  handoff: "handoff",
};

/** A short label of a step's operation, and the CSS class that colours it. */
export function opKind(operation: string | undefined): string {
  return (operation && OPS[operation]) ?? "other";
}

/** The colour of each kind of step (bars, dots, graph nodes). */
export const KIND_COLOR: Record<string, string> = {
  agent: "#7c5cc4",
  model: "#2f6fd0",
  tool: "#23915a",
  approval: "#c98a12",
  handoff: "#b0509a",
  other: "#7a8594",
};

/** A time range of two `datetime-local` inputs read as UTC (see `utc` in lib/format). */
export function TimeRange(props: { from: string; to: string; onChange: (from: string, to: string) => void }) {
  return (
    <>
      <label>
        From (UTC)
        <input type="datetime-local" name="from" value={props.from} onChange={(e) => props.onChange(e.target.value, props.to)} />
      </label>
      <label>
        To (UTC)
        <input type="datetime-local" name="to" value={props.to} onChange={(e) => props.onChange(props.from, e.target.value)} />
      </label>
    </>
  );
}

export function OpBadge({ operation }: { operation: string | undefined }) {
  const k = opKind(operation);
  return <span className={`op op-${k}`}>{k}</span>;
}
