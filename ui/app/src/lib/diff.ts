// Line diff by longest common subsequence (for policy documents and payloads: small texts).

export interface DiffLine {
  op: " " | "+" | "-";
  text: string;
}

/** The lines of `b` against `a`; past `limit` lines on a side, a plain before/after listing. */
export function lineDiff(a: string, b: string, limit = 2000): DiffLine[] {
  const x = a.split("\n");
  const y = b.split("\n");
  if (x.length > limit || y.length > limit) {
    return [...x.map((text) => ({ op: "-" as const, text })), ...y.map((text) => ({ op: "+" as const, text }))];
  }
  const m = x.length;
  const n = y.length;
  const len: Uint16Array[] = Array.from({ length: m + 1 }, () => new Uint16Array(n + 1));
  for (let i = m - 1; i >= 0; i--) {
    for (let j = n - 1; j >= 0; j--) {
      len[i]![j] = x[i] === y[j] ? len[i + 1]![j + 1]! + 1 : Math.max(len[i + 1]![j]!, len[i]![j + 1]!);
    }
  }
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < m && j < n) {
    if (x[i] === y[j]) {
      out.push({ op: " ", text: x[i]! });
      i++;
      j++;
    } else if (len[i + 1]![j]! >= len[i]![j + 1]!) out.push({ op: "-", text: x[i++]! });
    else out.push({ op: "+", text: y[j++]! });
  }
  while (i < m) out.push({ op: "-", text: x[i++]! });
  while (j < n) out.push({ op: "+", text: y[j++]! });
  return out;
}

/** Pretty JSON with object keys sorted, so equal documents print equally. */
export function canonical(v: unknown): string {
  const sort = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(sort);
    if (x && typeof x === "object") {
      return Object.fromEntries(
        Object.keys(x as object)
          .sort()
          .map((k) => [k, sort((x as Record<string, unknown>)[k])]),
      );
    }
    return x;
  };
  return typeof v === "string" ? v : JSON.stringify(sort(v), null, 2);
}
