// The harness itself: the server, the fixtures, Chromium, and the UI's first page.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { getJson, problems, screenshot, spanCount, sql, suite } from "./harness.mjs";

const ctx = suite();

test("the server holds every fixture span, each tenant only its own", async () => {
  const { cairn, fixtures } = ctx.env;
  assert.equal(await spanCount(cairn, "default"), fixtures.expectedSpans["default"]);
  assert.equal(await spanCount(cairn, "other"), fixtures.expectedSpans["other"]);
  assert.equal(fixtures.big.spans, 10_000);
  const runs = await sql(cairn, "SELECT trace_id, count(*) AS n FROM spans GROUP BY trace_id ORDER BY trace_id");
  assert.equal(runs.length, 6); // a01…a05 and the big run
  assert.ok(runs.some((row) => row["trace_id"] === fixtures.big.trace_id && row["n"] === 10_000));
  assert.ok(!runs.some((row) => row["trace_id"] === fixtures.other.trace_id), "another tenant's run leaks");
  const large = await sql(
    cairn,
    `SELECT tool_name FROM spans WHERE trace_id = '${fixtures.big.trace_id}' AND span_id = '${fixtures.big.large_payload_span}'`,
  );
  assert.deepEqual(large, [{ tool_name: "export_table" }]);
  // Through the API too: each tenant finds its own run and not the other's.
  assert.equal((await getJson(cairn, `/api/v1/traces/${fixtures.other.trace_id}`, "other")).status, 200);
  assert.equal((await getJson(cairn, `/api/v1/traces/${fixtures.other.trace_id}`)).status, 404);
  assert.equal((await getJson(cairn, `/api/v1/traces/${fixtures.big.trace_id}`, "other")).status, 404);
});

test("Chromium launches and renders a page", async () => {
  assert.match(ctx.browser.browser.version(), /^\d+\./);
  const page = await ctx.browser.newPage();
  await page.setContent("<title>blank</title><p>hello</p>");
  assert.equal(await page.textContent("p"), "hello");
  assert.deepEqual(problems(page), []);
  await page.close();
});

test("/ loads with the title Cairn and no errors", async (t) => {
  const { cairn } = ctx.env;
  const index = await fetch(`${cairn.api}/`);
  const type = index.headers.get("content-type") ?? "";
  await index.body?.cancel();
  if (!index.ok || !type.startsWith("text/html")) {
    t.skip("UI not embedded in this binary");
    return;
  }
  const page = await ctx.browser.newPage();
  await page.goto(`${cairn.api}/`, { waitUntil: "networkidle" });
  assert.equal(await page.title(), "Cairn");
  const path = await screenshot(page, "smoke");
  assert.ok(existsSync(path));
  assert.deepEqual(problems(page), []);
  await page.close();
});
