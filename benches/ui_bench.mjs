// The lineage explorer in headless Chromium against a running Cairn: for one run (by default the
// largest of the store), time to the first painted steps of the run page, time until the lineage
// graph is drawn, frame times while scrolling the waterfall, and the gzip size of the page's
// initial assets; beside them, the API requests the page makes, timed alone.
//
//   node benches/ui_bench.mjs --base http://127.0.0.1:3200 [--trace ID] [--tenant T] [--runs 5] [--out f.json]
//
// Uses playwright-core from ui/app/node_modules and Debian's /usr/bin/chromium.

import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { parseArgs } from "node:util";

const require = createRequire(new URL("../ui/app/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const { values: opt } = parseArgs({
  options: {
    base: { type: "string", default: "http://127.0.0.1:3200" },
    trace: { type: "string" },
    tenant: { type: "string", default: "default" },
    runs: { type: "string", default: "5" },
    out: { type: "string" },
  },
});
const base = opt.base;
const runs = Number(opt.runs);
const headers = { "X-Scope-OrgID": opt.tenant };

async function sql(statement) {
  const res = await fetch(`${base}/api/v1/sql`, { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify({ sql: statement }) });
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return res.json();
}

async function timed(path) {
  const t0 = performance.now();
  const res = await fetch(`${base}${path}`, { headers: { ...headers, "Accept-Encoding": "gzip" } });
  const body = await res.arrayBuffer();
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return { ms: performance.now() - t0, bytes: body.byteLength };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN;
};

const trace = opt.trace ?? (await sql("SELECT trace_id, span_count FROM runs ORDER BY span_count DESC LIMIT 1"))[0].trace_id;
const spans = (await sql(`SELECT span_count FROM runs WHERE trace_id = '${trace}'`))[0]?.span_count;
console.log(`run ${trace} (${spans} steps)`);

// The initial assets: index.html and what it references, gzip-compressed.
const index = await (await fetch(`${base}/`)).text();
const assets = [...index.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
let gz = gzipSync(Buffer.from(index)).length;
for (const a of assets) gz += gzipSync(Buffer.from(await (await fetch(`${base}${a}`)).arrayBuffer()), { level: 9 }).length;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--enable-unsafe-swiftshader"],
});
const tenantQ = opt.tenant === "default" ? "" : `tenant=${opt.tenant}`;
const url = (path, q = "") => `${base}${path}${q || tenantQ ? `?${[q, tenantQ].filter(Boolean).join("&")}` : ""}`;

const result = { trace, spans, initial_gzip_bytes: gz, first_rows_ms: [], graph_ms: [], frame_ms: [], dom_rows: [], api: {} };
for (let i = 0; i < runs; i++) {
  // A fresh page each time (a new context: no cache of the previous load's answers).
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await ctx.newPage();
  const t0 = Date.now();
  await page.goto(url(`/runs/${trace}`));
  await page.waitForSelector('[data-testid="step-row"]', { timeout: 120_000 });
  result.first_rows_ms.push(Date.now() - t0);
  result.dom_rows.push(await page.locator('[data-testid="step-row"]').count());

  // Scroll the waterfall for 3 s, one step per frame, recording frame intervals.
  const frames = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const el = document.querySelector('[data-testid="waterfall-rows"]');
        const times = [];
        const end = performance.now() + 3000;
        const tick = (t) => {
          times.push(t);
          el.scrollTop += 120;
          if (t < end) requestAnimationFrame(tick);
          else resolve(times.slice(1).map((x, k) => x - times[k]));
        };
        requestAnimationFrame(tick);
      }),
  );
  result.frame_ms.push(...frames);
  await ctx.close();

  const ctx2 = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page2 = await ctx2.newPage();
  const t1 = Date.now();
  await page2.goto(url(`/runs/${trace}`, "view=graph"));
  await page2.waitForSelector('[data-testid="graph"][data-ready="true"]', { timeout: 120_000 });
  await page2.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  result.graph_ms.push(Date.now() - t1);
  await ctx2.close();
}
await browser.close();

for (const [name, path] of [
  ["steps (run page)", `/api/v1/runs/${trace}/steps`],
  ["trail (full rows, nested)", `/api/v1/runs/${trace}`],
  ["lineage (graph)", `/api/v1/runs/${trace}/lineage?depth=1&max_nodes=20000`],
]) {
  const t = [];
  let bytes = 0;
  for (let i = 0; i < runs; i++) {
    const r = await timed(path);
    t.push(r.ms);
    bytes = r.bytes;
  }
  result.api[name] = { p50_ms: median(t), bytes };
}

const fps = 1000 / median(result.frame_ms);
const summary = {
  "run page, first steps painted (p50)": `${median(result.first_rows_ms).toFixed(0)} ms (target ≤ 1000)`,
  "graph drawn (p50)": `${median(result.graph_ms).toFixed(0)} ms (target ≤ 2000)`,
  "scrolling frame time p50 / p95": `${median(result.frame_ms).toFixed(1)} / ${pct(result.frame_ms, 0.95).toFixed(1)} ms = ${fps.toFixed(0)} fps (target ≥ 50)`,
  "step rows in the DOM": `${Math.max(...result.dom_rows)} of ${spans}`,
  "initial assets, gzip": `${(gz / 1024).toFixed(0)} KB (target ≤ 400)`,
};
for (const [k, v] of Object.entries(summary)) console.log(`${k.padEnd(40)} ${v}`);
for (const [k, v] of Object.entries(result.api)) console.log(`API ${k.padEnd(36)} ${v.p50_ms.toFixed(0)} ms, ${(v.bytes / 1024).toFixed(0)} KB`);
if (opt.out) writeFileSync(opt.out, JSON.stringify({ ...result, summary }, null, 2));
