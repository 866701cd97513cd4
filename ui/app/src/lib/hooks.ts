// Loading state for API answers: one request per key, cancelled when the key changes or the
// view goes away, optionally refreshed on an interval (live views).

import { useEffect, useRef, useState } from "react";

export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  /** Loads again (keeps the current data on screen meanwhile). */
  reload: () => void;
}

export function useApi<T>(
  key: string | null,
  load: (signal: AbortSignal) => Promise<T>,
  refreshMs?: number,
): Loaded<T> {
  const [state, setState] = useState<{ key: string | null; data?: T; error?: Error; loading: boolean }>({
    key: null,
    loading: key !== null,
  });
  const [tick, setTick] = useState(0);
  const loader = useRef(load);
  loader.current = load;

  useEffect(() => {
    if (key === null) return;
    const ctrl = new AbortController();
    setState((s) => ({ ...s, key, loading: true, ...(s.key === key ? {} : { data: undefined, error: undefined }) }));
    loader
      .current(ctrl.signal)
      .then((data) => setState({ key, data, loading: false }))
      .catch((e: unknown) => {
        if (ctrl.signal.aborted) return;
        setState((s) => ({ ...s, key, error: e instanceof Error ? e : new Error(String(e)), loading: false }));
      });
    return () => ctrl.abort();
  }, [key, tick]);

  useEffect(() => {
    if (!refreshMs || key === null) return;
    const t = setInterval(() => {
      if (document.visibilityState === "visible") setTick((n) => n + 1);
    }, refreshMs);
    return () => clearInterval(t);
  }, [refreshMs, key]);

  const same = state.key === key;
  return {
    data: same ? state.data : undefined,
    error: same ? state.error : undefined,
    loading: key !== null && (!same || state.loading),
    reload: () => setTick((n) => n + 1),
  };
}

/** True when the key is a plain key press, not typed into a field. */
export function isTypingTarget(e: KeyboardEvent): boolean {
  const t = e.target as HTMLElement | null;
  if (!t) return false;
  const tag = t.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || t.isContentEditable;
}
