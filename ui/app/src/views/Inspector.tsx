// The step inspector: what the step was (model, tool, sandbox, cost), what it saw and produced
// (payloads, large ones loaded only when opened), the policy in force and what changed in it,
// its approval, the data it touched, links to other runs, and why it happened.

import { useState, type ReactNode } from "react";
import { get, type Payload, type Row, type StepDetail, type WhyAnswer } from "../lib/api";
import type { Crumb } from "../lib/router";
import { canonical, lineDiff } from "../lib/diff";
import { bytes, cell, cost, count, duration, shortId, time } from "../lib/format";
import { useApi } from "../lib/hooks";
import { ErrorBox, Json, Link, Loading, OpBadge, Status } from "../lib/ui";
import { Messages } from "./Messages";

const FIELD_LABEL: Record<string, string> = {
  system_instructions: "System instructions",
  input_messages: "Messages the model saw",
  output_messages: "Model output",
  tool_definitions: "Tools offered",
  tool_arguments: "Tool arguments",
  tool_result: "Tool result",
  policy_document: "Policy document",
};
const FIELD_ORDER = ["input_messages", "output_messages", "tool_arguments", "tool_result", "system_instructions", "tool_definitions"];

export interface InspectorProps {
  traceId: string;
  spanId: string;
  /** Selects another step of this run. */
  onSelect: (spanId: string) => void;
  /** Breadcrumbs to carry when following a link to another run. */
  crumbs: Crumb[];
}

export function Inspector({ traceId, spanId, onSelect, crumbs }: InspectorProps) {
  const detail = useApi(`${traceId}/${spanId}`, (signal) =>
    get<StepDetail>(`/runs/${traceId}/steps/${spanId}`, undefined, signal),
  );
  const why = useApi(`${traceId}/${spanId}/why`, (signal) =>
    get<WhyAnswer>(`/runs/${traceId}/steps/${spanId}/why`, { payloads: "false" }, signal),
  );
  if (detail.error) return <aside className="inspector"><ErrorBox error={detail.error} /></aside>;
  if (!detail.data) return <aside className="inspector"><Loading what="step" /></aside>;
  const { step, payloads, policy, links, bypass } = detail.data;
  const s = step as Row;
  const str = (k: string) => (typeof s[k] === "string" ? (s[k] as string) : undefined);
  const num = (k: string) => (typeof s[k] === "number" ? (s[k] as number) : undefined);
  const list = (k: string) => (Array.isArray(s[k]) ? (s[k] as string[]) : []);
  const byField = new Map<string, Payload[]>();
  for (const p of payloads) byField.set(p.field, [...(byField.get(p.field) ?? []), p]);

  return (
    <aside className="inspector" data-testid="inspector" data-span-id={spanId}>
      <div className="insp-head">
        <OpBadge operation={str("operation")} />
        <h2 title={str("name")}>{str("name") ?? spanId}</h2>
        <Status value={str("status_code")} />
      </div>
      {str("status_message") && <div className="error small">{str("status_message")}</div>}
      <dl className="facts">
        <Fact label="Started">{time(str("start_time"))}</Fact>
        <Fact label="Duration">{duration(num("duration_ns"))}</Fact>
        <Fact label="Agent">{[str("agent_name"), str("agent_id")].filter(Boolean).join(" · ") || undefined}</Fact>
        <Fact label="Parent agent">{str("parent_agent_name")}</Fact>
        <Fact label="Model">
          {str("request_model") || str("response_model")
            ? `${str("request_model") ?? "?"}${str("response_model") && str("response_model") !== str("request_model") ? ` → ${str("response_model")}` : ""}`
            : undefined}
        </Fact>
        <Fact label="Provider">{str("provider")}</Fact>
        <Fact label="Tokens">
          {num("input_tokens") !== undefined || num("output_tokens") !== undefined
            ? `${count(num("input_tokens") ?? 0)} in · ${count(num("output_tokens") ?? 0)} out`
            : undefined}
        </Fact>
        <Fact label="Cost">{num("cost") !== undefined ? cost(num("cost"), str("cost_currency")) : undefined}</Fact>
        <Fact label="Tool">{str("tool_name") ? `${str("tool_name")}${str("tool_call_id") ? ` (${str("tool_call_id")})` : ""}` : undefined}</Fact>
        <Fact label="Sandbox">{str("sandbox_id")}</Fact>
        <Fact label="Pod">{[str("k8s_namespace"), str("k8s_pod_name")].filter(Boolean).join("/") || undefined}</Fact>
        <Fact label="Workload">{[str("k8s_workload_kind"), str("k8s_workload_name")].filter(Boolean).join(" ") || undefined}</Fact>
        <Fact label="Runtime">{str("k8s_runtime_class")}</Fact>
        <Fact label="Node">{str("k8s_node_name")}</Fact>
        <Fact label="Service account">{str("k8s_service_account")}</Fact>
        <Fact label="Service">{str("service_name")}</Fact>
        <Fact label="Conversation">{str("conversation_id")}</Fact>
        <Fact label="Span">
          <span className="mono">{spanId}</span>
        </Fact>
      </dl>

      {bypass && (
        <div className="bypass-note" data-testid="bypass" role="note">
          <b>Bypass:</b> ran without the approval its policy required ({(bypass.reason ?? "unknown").replaceAll("_", " ")}).
        </div>
      )}

      {str("approval_state") && (
        <Section title="Approval" open>
          <div data-testid="approval">
            <span className={`badge approval-${str("approval_state")}`}>{str("approval_state")}</span>
            {str("approver") && <> by <b>{str("approver")}</b></>}
            {str("approval_request_id") && <span className="muted mono small"> · request {str("approval_request_id")}</span>}
          </div>
        </Section>
      )}

      <Section title="Why" open testid="why">
        {why.error && <ErrorBox error={why.error} />}
        {!why.data && !why.error && <Loading what="why-chain" />}
        {why.data && <WhyChain why={why.data} onSelect={onSelect} traceId={traceId} />}
      </Section>

      {FIELD_ORDER.filter((f) => byField.has(f)).map((f) => (
        <Section key={f} title={FIELD_LABEL[f] ?? f} open={f !== "system_instructions" && f !== "tool_definitions"}>
          {(byField.get(f) ?? []).map((p) => (
            <PayloadView key={p.ref} traceId={traceId} payload={p} />
          ))}
        </Section>
      ))}

      {(list("data_read").length > 0 || list("data_written").length > 0) && (
        <Section title="Data" open>
          {list("data_read").map((u) => (
            <div key={`r${u}`}>
              <span className="badge">read</span> <Link to={`/data?uri=${encodeURIComponent(u)}`}>{u}</Link>
            </div>
          ))}
          {list("data_written").map((u) => (
            <div key={`w${u}`}>
              <span className="badge write">write</span> <Link to={`/data?uri=${encodeURIComponent(u)}`}>{u}</Link>
            </div>
          ))}
        </Section>
      )}

      {(policy?.ref || policy?.hash) && (
        <Section title={`Policy ${policy.ref ?? ""}`} open={false} testid="policy">
          <PolicyView traceId={traceId} policy={policy} />
        </Section>
      )}

      {links && links.length > 0 && (
        <Section title="Other runs" open testid="links">
          {links.map((l, k) => (
            <div key={k} className="link-row">
              <span className={`edge-kind kind-${l.kind}`}>{l.kind.replace("_", " ")}</span>{" "}
              {l.direction === "out" ? "→" : "←"}{" "}
              <Link
                to={`/runs/${l.trace_id}${l.span_id ? `?step=${l.span_id}` : ""}`}
                crumbs={crumbs}
                testid="linked-run"
              >
                run {shortId(l.trace_id)}
                {l.span_id ? ` · step ${shortId(l.span_id)}` : ""}
              </Link>
            </div>
          ))}
        </Section>
      )}
    </aside>
  );
}

function Fact({ label, children }: { label: string; children: ReactNode }) {
  if (children === undefined || children === null || children === "") return null;
  return (
    <>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </>
  );
}

function Section(props: { title: string; open: boolean; children: ReactNode; testid?: string }) {
  return (
    <details className="section" open={props.open} data-testid={props.testid}>
      <summary>{props.title}</summary>
      <div className="section-body">{props.children}</div>
    </details>
  );
}

/** A payload: shown when it came with the step, else loaded when the person asks for it. */
function PayloadView({ traceId, payload }: { traceId: string; payload: Payload }) {
  const [open, setOpen] = useState(false);
  const inline = payload.content !== undefined;
  const loaded = useApi(open && !inline ? `${traceId}/${payload.ref}` : null, (signal) =>
    get<Payload>(`/runs/${traceId}/payloads/${payload.ref}`, undefined, signal),
  );
  const content = inline ? payload.content : loaded.data?.content;
  const isMessages = payload.field.endsWith("_messages");
  return (
    <div className="payload" data-testid="payload" data-ref={payload.ref} data-field={payload.field} data-loaded={content !== undefined}>
      {content !== undefined ? (
        isMessages ? <Messages value={content} /> : <Json value={content} />
      ) : (
        <>
          <button onClick={() => setOpen(true)} disabled={open} data-testid="load-payload">
            {open ? "Loading…" : `Load ${bytes(payload.bytes)}`}
          </button>
          <span className="muted small"> large payloads load when opened</span>
          <ErrorBox error={loaded.error} />
        </>
      )}
    </div>
  );
}

function WhyChain({ why, onSelect, traceId }: { why: WhyAnswer; onSelect: (s: string) => void; traceId: string }) {
  const req = why.requested_by;
  const step = why.step;
  const ancestors = why.ancestors ?? [];
  const stepLink = (r: Row) => {
    const id = cell(r.span_id);
    const other = r.trace_id && r.trace_id !== traceId ? cell(r.trace_id) : null;
    return other ? (
      <Link to={`/runs/${other}?step=${id}`}>{cell(r.name) || id}</Link>
    ) : (
      <button className="link" onClick={() => onSelect(id)}>
        {cell(r.name) || id}
      </button>
    );
  };
  return (
    <ol className="why">
      {req ? (
        <li data-testid="why-item" data-kind="requested_by">
          <span className="edge-kind kind-requested">requested by</span> {stepLink(req)}
          {Array.isArray(req.requested_tool_names) && (
            <span className="muted small"> (asked for {(req.requested_tool_names as string[]).join(", ")})</span>
          )}
        </li>
      ) : step?.operation === "llm_call" ? null : (
        <li className="muted small">No model turn asked for this step (no matching tool call request).</li>
      )}
      {(why.approvals ?? []).map((a, k) => (
        <li key={`a${k}`} data-testid="why-item" data-kind="approval">
          <span className="edge-kind kind-gates">approval</span> {stepLink(a)}{" "}
          <span className={`badge approval-${cell(a.approval_state)}`}>{cell(a.approval_state)}</span>
          {a.approver ? <> by {cell(a.approver)}</> : null}
        </li>
      ))}
      {ancestors.map((a, k) => (
        <li key={`p${k}`} data-testid="why-item" data-kind="ancestor">
          <span className="edge-kind kind-child">{k === 0 ? "inside" : "in"}</span> {stepLink(a)}
          {a.agent_name ? <span className="muted small"> · {cell(a.agent_name)}</span> : null}
        </li>
      ))}
      {why.ancestor_cycle && <li className="error small">The parent links loop; the chain stops before repeating.</li>}
    </ol>
  );
}

function PolicyView({ traceId, policy }: { traceId: string; policy: NonNullable<StepDetail["policy"]> }) {
  const [open, setOpen] = useState(false);
  const prev = policy.previous ?? null;
  const doc = useApi(open && policy.document_ref ? `${traceId}/${policy.document_ref}` : null, (signal) =>
    get<Payload>(`/runs/${traceId}/payloads/${policy.document_ref}`, undefined, signal),
  );
  const prevDoc = useApi(
    open && prev?.document_ref && prev.trace_id ? `${prev.trace_id}/${prev.document_ref}` : null,
    (signal) => get<Payload>(`/runs/${prev!.trace_id}/payloads/${prev!.document_ref}`, undefined, signal),
  );
  return (
    <div>
      <div>
        <b>{policy.ref ?? "—"}</b> <span className="mono small muted">{policy.hash}</span>
      </div>
      {prev ? (
        <div className="small">
          Changed from <b>{prev.ref ?? "?"}</b> <span className="mono muted">{prev.hash}</span>
          {prev.trace_id && (
            <>
              {" "}
              (in force in run <Link to={`/runs/${prev.trace_id}`}>{shortId(prev.trace_id)}</Link>)
            </>
          )}
        </div>
      ) : (
        <div className="small muted">Same policy as this agent's previous run.</div>
      )}
      {policy.document_ref && !open && (
        <button onClick={() => setOpen(true)} data-testid="show-policy">
          {prev?.document_ref ? "Show the document and what changed" : "Show the document"}
        </button>
      )}
      {open && (doc.loading || prevDoc.loading) && <Loading what="policy" />}
      <ErrorBox error={doc.error ?? prevDoc.error} />
      {doc.data && prevDoc.data ? (
        <pre className="diff" data-testid="policy-diff">
          {lineDiff(canonical(prevDoc.data.content), canonical(doc.data.content)).map((l, k) => (
            <div key={k} className={`diff-${l.op === "+" ? "add" : l.op === "-" ? "del" : "same"}`}>
              {l.op} {l.text}
            </div>
          ))}
        </pre>
      ) : (
        doc.data && <Json value={doc.data.content} />
      )}
    </div>
  );
}
