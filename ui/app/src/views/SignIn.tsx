// The sign-in screen, shown when the server asks for an access token (a 401): paste a token, it
// is checked (`whoami`) before it is kept, and refusals say why. Also the check of a stored token
// on load.

import { useEffect, useState, type FormEvent } from "react";
import { ApiError, whoami } from "../lib/api";
import { confirmed, signedIn, signOut, type Principal } from "../lib/auth";

const CREATE = "cairn token create --tenant <tenant> --role read";

/** Why a token cannot be used by the UI, or null when it can. */
function unusable(principal: Principal): string | null {
  if (principal.role === "ingest") {
    return `This is an ingest token${principal.tenant ? ` for tenant ${principal.tenant}` : ""}: it sends spans but cannot read them. The UI needs a read token (or an admin token).`;
  }
  return null;
}

/** What to tell the user about a token the server refused. */
function refusal(error: unknown): string {
  if (!(error instanceof ApiError)) {
    return `Could not reach Cairn: ${error instanceof Error ? error.message : String(error)}`;
  }
  switch (error.status) {
    case 401:
      return `The server did not accept this token: ${error.message}. Check that you pasted all of it and that it has not expired or been revoked.`;
    case 403:
      return `The server refused this token: ${error.message}. The UI needs a read token, or an admin token.`;
    case 429:
      return `Sign-ins from this address are paused after too many refused tokens: ${error.message}.`;
    default:
      return `Cairn answered ${error.status}: ${error.message}`;
  }
}

export function SignIn({ reason }: { reason: string | null }) {
  const [token, setToken] = useState("");
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) {
      setError("Paste an access token first.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const principal = await whoami(t);
      const why = unusable(principal);
      if (why) setError(why);
      else signedIn(t, principal, remember);
    } catch (err) {
      setError(refusal(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="signin-wrap">
      <form className="signin" onSubmit={(e) => void submit(e)} data-testid="signin">
        <h1>Sign in to Cairn</h1>
        {reason && (
          <div className="notice" role="status" data-testid="signin-reason">
            {reason}
          </div>
        )}
        <p className="muted">This Cairn server needs an access token, which an operator creates (and sees once) with</p>
        <pre className="cmd">{CREATE}</pre>
        <label className="field">
          Access token
          <input
            type="password"
            autoComplete="off"
            spellCheck={false}
            autoFocus
            value={token}
            onChange={(e) => setToken(e.target.value)}
            placeholder="Paste the token"
            data-testid="token-input"
          />
        </label>
        <label className="check">
          <input type="checkbox" checked={remember} onChange={(e) => setRemember(e.target.checked)} data-testid="remember" />
          <span>
            Remember on this device
            <span className="hint">
              {remember
                ? "Kept in this browser until you sign out. Only on a device that is yours alone."
                : "Forgotten when this tab closes."}
            </span>
          </span>
        </label>
        {error && (
          <div className="error" role="alert" data-testid="signin-error">
            {error}
          </div>
        )}
        <div className="signin-actions">
          <button type="submit" disabled={busy} data-testid="sign-in">
            {busy ? "Checking…" : "Sign in"}
          </button>
        </div>
      </form>
    </div>
  );
}

/** Checks the token kept from an earlier visit before the app uses it. */
export function CheckToken({ token }: { token: string }) {
  const [error, setError] = useState<string | null>(null);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    const ctrl = new AbortController();
    whoami(token, ctrl.signal)
      .then((principal) => {
        const why = unusable(principal);
        if (why) signOut(why);
        else confirmed(principal);
      })
      .catch((err: unknown) => {
        if (ctrl.signal.aborted) return;
        if (err instanceof ApiError && err.status === 401) {
          signOut(`The server no longer accepts your saved access token: ${err.message}. Sign in again.`);
        } else if (err instanceof ApiError && err.status === 403) {
          signOut(`The server refused your saved access token: ${err.message}. Sign in with a read token.`);
        } else {
          setError(refusal(err));
        }
      });
    return () => ctrl.abort();
  }, [token, attempt]);
  return (
    <div className="signin-wrap">
      <div className="signin">
        {error ? (
          <>
            <div className="error" role="alert" data-testid="error">
              {error}
            </div>
            <div className="signin-actions">
              <button onClick={() => (setError(null), setAttempt((n) => n + 1))}>Retry</button>
              <button className="secondary" onClick={() => signOut(null)}>
                Sign out
              </button>
            </div>
          </>
        ) : (
          <div className="loading">Checking your access token…</div>
        )}
      </div>
    </div>
  );
}
