// The shell: navigation, tenant selector, and the view the URL names.

import { lazy, Suspense, useState, type FormEvent } from "react";
import { navigate, useLocation } from "./lib/router";
import { tenantOf } from "./lib/tenant";
import { Link, Loading } from "./lib/ui";
import { Runs } from "./views/Runs";
import { Run } from "./views/Run";

const Replay = lazy(() => import("./views/Replay"));
const Diff = lazy(() => import("./views/Diff"));
const Data = lazy(() => import("./views/Data"));
const Governance = lazy(() => import("./views/Governance"));
const Costs = lazy(() => import("./views/Costs"));
const Sql = lazy(() => import("./views/Sql"));

const NAV: [string, string][] = [
  ["/", "Runs"],
  ["/governance", "Governance"],
  ["/costs", "Costs"],
  ["/data", "Data"],
  ["/diff", "Diff"],
  ["/sql", "SQL"],
];

export function App() {
  const loc = useLocation();
  const tenant = tenantOf(loc.query);
  const section = loc.path === "/" || loc.path.startsWith("/runs") ? "/" : loc.path;
  return (
    <div className="app">
      <header className="top">
        <Link to="/" className="brand">
          <svg viewBox="0 0 16 16" width="18" height="18" aria-hidden="true">
            <path d="M2 14h12L8 2z" fill="currentColor" />
          </svg>
          Cairn
        </Link>
        <nav>
          {NAV.map(([to, label]) => (
            <Link key={to} to={to} className={section === to ? "active" : ""}>
              {label}
            </Link>
          ))}
        </nav>
        <TenantSelect key={tenant} tenant={tenant} />
      </header>
      <main key={tenant}>
        <Suspense fallback={<Loading what="view" />}>
          <Route path={loc.path} />
        </Suspense>
      </main>
    </div>
  );
}

function Route({ path }: { path: string }) {
  const run = /^\/runs\/([^/]+)(\/replay)?\/?$/.exec(path);
  if (run) {
    const id = decodeURIComponent(run[1]!);
    return run[2] ? <Replay traceId={id} /> : <Run traceId={id} />;
  }
  switch (path) {
    case "/":
      return <Runs />;
    case "/diff":
      return <Diff />;
    case "/data":
      return <Data />;
    case "/governance":
      return <Governance />;
    case "/costs":
      return <Costs />;
    case "/sql":
      return <Sql />;
    default:
      return (
        <div className="page">
          <h1>Page not found</h1>
          <p>
            Nothing lives at <code>{path}</code>. <Link to="/">Back to the runs</Link>.
          </p>
        </div>
      );
  }
}

function TenantSelect({ tenant }: { tenant: string }) {
  const [value, setValue] = useState(tenant);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const t = value.trim() || "default";
    // A new tenant starts at its runs: ids of the old tenant mean nothing there.
    navigate("/", { tenant: t });
  };
  return (
    <form className="tenant" onSubmit={submit} title="Every request is scoped to this tenant (X-Scope-OrgID)">
      <label htmlFor="tenant">Tenant</label>
      <input
        id="tenant"
        data-testid="tenant-input"
        value={value}
        onChange={(e) => setValue(e.target.value)}
        spellCheck={false}
      />
    </form>
  );
}
