// The shell: navigation, tenant selector, the session (with auth on), and the view the URL
// names. When the server asks for an access token, the sign-in screen instead.

import { lazy, Suspense, useState, type FormEvent } from "react";
import { signOut, useAuth, type AuthState } from "./lib/auth";
import { navigate, useLocation } from "./lib/router";
import { tenantOf, type TenantView } from "./lib/tenant";
import { Link, Loading } from "./lib/ui";
import { CheckToken, SignIn } from "./views/SignIn";
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
  const auth = useAuth();
  if (auth.required) {
    return (
      <div className="app">
        <header className="top">
          <Brand />
        </header>
        <SignIn reason={auth.reason} />
      </div>
    );
  }
  if (auth.checking && auth.token !== null) {
    return (
      <div className="app">
        <header className="top">
          <Brand />
        </header>
        <CheckToken token={auth.token} />
      </div>
    );
  }
  return <Shell auth={auth} />;
}

function Brand() {
  return (
    <Link to="/" className="brand">
      <svg viewBox="0 0 16 16" width="18" height="18" aria-hidden="true">
        <path d="M2 14h12L8 2z" fill="currentColor" />
      </svg>
      Cairn
    </Link>
  );
}

function Shell({ auth }: { auth: AuthState }) {
  const loc = useLocation();
  const view = tenantOf(loc.query, auth);
  const tenant = view.tenant;
  const section = loc.path === "/" || loc.path.startsWith("/runs") ? "/" : loc.path;
  return (
    <div className="app">
      <header className="top">
        <Brand />
        <nav>
          {NAV.map(([to, label]) => (
            <Link key={to} to={to} className={section === to ? "active" : ""}>
              {label}
            </Link>
          ))}
        </nav>
        {view.fixed ? <TenantFixed view={view} auth={auth} /> : <TenantSelect key={tenant} tenant={tenant} />}
        {auth.token !== null && <Session auth={auth} />}
      </header>
      <main key={tenant}>
        {view.foreign !== null ? (
          <ForeignTenant view={view} />
        ) : (
          <Suspense fallback={<Loading what="view" />}>
            <Route path={loc.path} />
          </Suspense>
        )}
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

/** The tenant of a token bound to one: shown, not changeable. */
function TenantFixed({ view, auth }: { view: TenantView; auth: AuthState }) {
  const role = auth.principal?.role;
  return (
    <div className="tenant" title={`Your access token${role ? ` (${role})` : ""} reads this tenant only`}>
      <label htmlFor="tenant">Tenant</label>
      <input id="tenant" data-testid="tenant-input" value={view.tenant} readOnly aria-readonly="true" />
    </div>
  );
}

/** Who is signed in, and the way out. */
function Session({ auth }: { auth: AuthState }) {
  const role = auth.principal?.role;
  return (
    <div className="session">
      <span className="who" data-testid="session-who" title="The access token this tab uses">
        {role ? `${role} token` : "token"}
      </span>
      <button className="signout" onClick={() => signOut("You signed out.")} data-testid="sign-out">
        Sign out
      </button>
    </div>
  );
}

/** A link naming a tenant the token cannot read: said plainly, nothing requested. */
function ForeignTenant({ view }: { view: TenantView }) {
  return (
    <div className="page">
      <div className="denied" role="alert" data-testid="denied">
        <h2>Not your tenant</h2>
        <p>
          This page is for tenant <code>{view.foreign}</code>, and your access token reads tenant <code>{view.tenant}</code> only.
        </p>
        <div className="signin-actions">
          <button onClick={() => navigate("/", { tenant: "default" })}>Open the runs of {view.tenant}</button>
          <button className="secondary" onClick={() => signOut(`Sign in with a token for tenant ${view.foreign}.`)}>
            Sign in with another token
          </button>
        </div>
      </div>
    </div>
  );
}
