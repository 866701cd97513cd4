// Model messages, role by role: text parts as text, tool calls and their results as JSON.

import { Json } from "../lib/ui";

interface Part {
  type?: string;
  content?: unknown;
  name?: string;
  id?: string;
  arguments?: unknown;
  response?: unknown;
}

interface Message {
  role?: string;
  parts?: Part[];
  content?: unknown;
  finish_reason?: string;
}

function asMessages(v: unknown): Message[] | null {
  if (Array.isArray(v) && v.every((m) => m && typeof m === "object" && ("role" in m || "parts" in m))) return v as Message[];
  if (v && typeof v === "object" && ("role" in v || "parts" in v)) return [v as Message];
  return null;
}

export function Messages({ value }: { value: unknown }) {
  const messages = asMessages(value);
  if (!messages) return <Json value={value} />;
  return (
    <div className="messages">
      {messages.map((m, k) => (
        <div key={k} className={`message role-${m.role ?? "unknown"}`} data-testid="message">
          <div className="role">
            {m.role ?? "message"}
            {m.finish_reason && <span className="muted small"> · finish: {m.finish_reason}</span>}
          </div>
          {(m.parts ?? (m.content !== undefined ? [{ type: "text", content: m.content }] : [])).map((p, j) => (
            <PartView key={j} part={p} />
          ))}
        </div>
      ))}
    </div>
  );
}

function PartView({ part }: { part: Part }) {
  if (part.type === "text" && typeof part.content === "string") return <div className="text">{part.content}</div>;
  if (part.type === "tool_call")
    return (
      <div className="tool-call">
        <span className="muted">calls</span> <b>{part.name}</b> <span className="mono small muted">{part.id}</span>
        <Json value={part.arguments ?? {}} />
      </div>
    );
  if (part.type === "tool_call_response")
    return (
      <div className="tool-call">
        <span className="muted">result of</span> <span className="mono small">{part.id}</span>
        <Json value={part.response ?? null} />
      </div>
    );
  return <Json value={part} />;
}
