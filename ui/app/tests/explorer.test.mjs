// The lineage explorer in a real browser, against a real server holding the lineage fixtures
// (tests/python/lineage_runs.py) and a 10,000-span run (tests/python/big_run.py). Each test
// writes screenshots to test-results/screens/ (the UI's review).

import assert from "node:assert/strict";
import { test } from "node:test";
import { getJson, problems, screenshot, suite } from "./harness.mjs";

const ctx = suite();

const A01 = "00000000000000000000000000000a01";
const A02 = "00000000000000000000000000000a02";
const A05 = "00000000000000000000000000000a05";

/** @param {string} path */
const url = (path) => `${ctx.env.cairn.api}${path}`;

/**
 * The span id of a row of the waterfall that is selected, or null.
 * @param {import("playwright-core").Page} page
 */
async function selectedRow(page) {
  return page.locator('[data-testid="step-row"][aria-selected="true"]').getAttribute("data-span-id", { timeout: 5000 });
}

test("runs list → run → step → why → replay → diff, by clicking", async () => {
  const page = await ctx.browser.newPage();
  await page.goto(url("/"));
  const row = page.locator(`[data-testid="run-row"][data-trace-id="${A01}"]`);
  await row.waitFor();
  assert.equal(await page.locator('[data-testid="run-row"]').count(), 6, "five fixture runs and the big run");
  await assert.doesNotReject(row.getByText("error").first().waitFor());
  await screenshot(page, "runs");

  await row.getByRole("link").first().click();
  await page.waitForURL(`**/runs/${A01}`);
  await page.locator('[data-testid="step-row"]').first().waitFor();
  assert.equal(await page.locator('[data-testid="step-row"]').count(), 13);

  // The refund: its arguments, and why it happened (the model turn that asked for it).
  await page.locator('[data-testid="step-row"][data-span-id="000000000000a107"]').click();
  await page.waitForURL(/step=000000000000a107/);
  const inspector = page.locator('[data-testid="inspector"][data-span-id="000000000000a107"]');
  await inspector.waitFor();
  await inspector.getByText("Tool arguments").waitFor();
  assert.match(await inspector.locator('[data-field="tool_arguments"]').innerText(), /"amount": 40/);
  const why = inspector.locator('[data-testid="why"]');
  const requested = why.locator('[data-kind="requested_by"]');
  await requested.waitFor();
  assert.match(await requested.innerText(), /requested by\s+chat gpt-4o/);
  assert.match(await why.locator('[data-kind="approval"]').innerText(), /granted\s+by bob/);
  await screenshot(page, "run-step");

  // Following the why-edge opens the model turn, with the messages it saw, role by role.
  await requested.getByRole("button").click();
  await page.waitForURL(/step=000000000000a105/);
  const turn = page.locator('[data-testid="inspector"][data-span-id="000000000000a105"]');
  await turn.waitFor();
  const messages = turn.locator('[data-field="input_messages"] [data-testid="message"]');
  await messages.first().waitFor();
  assert.deepEqual(
    (await messages.locator(".role").allInnerTexts()).map((r) => r.toLowerCase()),
    ["system", "user", "assistant", "tool"],
  );
  assert.match(await messages.nth(1).innerText(), /Refund order A-1/);
  assert.equal(await selectedRow(page), "000000000000a105");
  await screenshot(page, "run-model-turn");

  // Replay, one step at a time.
  await page.getByTestId("open-replay").click();
  await page.waitForURL(`**/runs/${A01}/replay`);
  const current = page.getByTestId("replay-step");
  await current.waitFor();
  assert.equal(await current.getAttribute("data-index"), "0");
  assert.equal(await current.getAttribute("data-span-id"), "000000000000a102");
  await page.getByTestId("replay-next").click();
  await page.waitForFunction(() => document.querySelector('[data-testid="replay-step"]')?.getAttribute("data-index") === "1");
  assert.match(await current.innerText(), /lookup_order/);
  await screenshot(page, "replay");
  const download = page.waitForEvent("download");
  await page.getByTestId("replay-download").click();
  const bundle = await download;
  assert.match(bundle.suggestedFilename(), /^replay-0+a01\.json$/);

  // Diff against the re-run: aligned steps, the first divergence marked.
  await page.goto(url(`/runs/${A01}`));
  await page.getByText("Compare with…").click();
  await page.waitForURL(/\/diff\?left=/);
  await page.getByTestId("diff-right").fill(A05);
  await page.getByTestId("diff-go").click();
  await page.waitForURL(/right=0+a05/);
  const first = page.locator('[data-testid="diff-row"][data-diverged="true"]');
  await first.waitFor();
  assert.equal(await page.locator('[data-testid="diff-row"][data-diverged="true"]').count(), 1);
  assert.match(await page.getByTestId("diff-summary").innerText(), /diverge/);
  assert.match(await first.innerText(), /chat gpt-4o/);
  await screenshot(page, "diff");
  assert.deepEqual(problems(page), []);
  await page.close();
});

test("a deep link to a step opens it on a fresh load and scrolls it into view", async () => {
  const { big } = ctx.env.fixtures;
  const step = big.sample_spans["approval_timed_out"];
  assert.ok(step);
  const page = await ctx.browser.newPage();
  await page.goto(url(`/runs/${big.trace_id}?step=${step}`));
  await page.locator(`[data-testid="inspector"][data-span-id="${step}"]`).waitFor();
  const row = page.locator(`[data-testid="step-row"][data-span-id="${step}"]`);
  await row.waitFor();
  const box = await row.boundingBox();
  const pane = await page.getByTestId("waterfall-rows").boundingBox();
  assert.ok(box && pane, "row and pane are laid out");
  assert.ok(box.y >= pane.y && box.y + box.height <= pane.y + pane.height, "the step's row is on screen");
  assert.equal(await row.getAttribute("aria-selected"), "true");
  await screenshot(page, "deep-link");
  assert.deepEqual(problems(page), []);
  await page.close();
});

test("a 10,000-step run: the waterfall keeps few DOM rows, the graph draws the same layout twice", async () => {
  const { big } = ctx.env.fixtures;
  const page = await ctx.browser.newPage();
  await page.goto(url(`/runs/${big.trace_id}`));
  await page.locator('[data-testid="step-row"]').first().waitFor();
  const rows = await page.locator('[data-testid="step-row"]').count();
  assert.ok(rows > 10 && rows < 300, `${rows} step rows in the DOM`);
  // Scrolling to the end brings the last steps, still with few rows in the DOM.
  await page.getByTestId("waterfall-rows").evaluate((el) => (el.scrollTop = el.scrollHeight));
  await page.locator(`[data-testid="step-row"][data-span-id="${big.sample_spans["last_chat"]}"]`).waitFor();
  assert.ok((await page.locator('[data-testid="step-row"]').count()) < 300);
  await screenshot(page, "large-run");

  /** @returns {Promise<Record<string, string | null>>} */
  const drawGraph = async () => {
    await page.goto(url(`/runs/${big.trace_id}?view=graph`));
    const graph = page.locator('[data-testid="graph"][data-ready="true"]');
    await graph.waitFor({ timeout: 60_000 });
    return {
      nodes: await graph.getAttribute("data-node-count"),
      renderer: await graph.getAttribute("data-renderer"),
      hash: await graph.getAttribute("data-layout-hash"),
    };
  };
  const first = await drawGraph();
  assert.ok(Number(first.nodes) >= 10_000, `${first.nodes} nodes`);
  assert.equal(first.renderer, "canvas");
  // The canvas is not blank.
  const inked = await page.getByTestId("graph-canvas").evaluate((c) => {
    const canvas = /** @type {HTMLCanvasElement} */ (c);
    const data = canvas.getContext("2d")?.getImageData(0, 0, canvas.width, canvas.height).data ?? new Uint8ClampedArray();
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if ((data[i] ?? 0) > 0) n++;
    return n;
  });
  assert.ok(inked > 1000, `${inked} pixels drawn`);
  await screenshot(page, "graph-large");
  const second = await drawGraph();
  assert.deepEqual(second, first, "the same run draws the same layout");
  // A selected step of the large graph gets its neighbourhood laid out layered beside it: the
  // tool call with the model turn that asked for it and the approval that gated it.
  const step = big.sample_spans["approved_tool"];
  await page.goto(url(`/runs/${big.trace_id}?view=graph&step=${step}`));
  const near = page.getByTestId("neighbourhood");
  await near.locator(`[data-testid="graph-node"][data-span-id="${step}"]`).waitFor({ timeout: 60_000 });
  assert.ok((await near.locator('[data-testid="graph-node"]').count()) >= 3);
  for (const kind of ["requested", "gates", "child"]) {
    assert.ok((await near.locator(`path[data-kind="${kind}"]`).count()) > 0, `a ${kind} edge around the step`);
  }
  await screenshot(page, "graph-large-neighbourhood");
  assert.deepEqual(problems(page), []);
  await page.close();
});

test("the lineage graph of a small run: steps, why-edges, and runs linked to it", async () => {
  const page = await ctx.browser.newPage();
  await page.goto(url(`/runs/${A01}?view=graph&step=000000000000a107`));
  const graph = page.locator('[data-testid="graph"][data-ready="true"]');
  await graph.waitFor();
  assert.equal(await graph.getAttribute("data-renderer"), "svg");
  const traces = new Set(await page.locator('[data-testid="graph-node"]').evaluateAll((ns) => ns.map((n) => n.getAttribute("data-trace-id"))));
  assert.ok(traces.has(A01) && traces.has(A02), `runs drawn: ${[...traces].join(", ")}`);
  for (const kind of ["child", "requested", "retry_of", "async_handoff"]) {
    assert.ok((await page.locator(`[data-testid="graph"] path[data-kind="${kind}"]`).count()) > 0, `an edge of kind ${kind}`);
  }
  const hash = await graph.getAttribute("data-layout-hash");
  await screenshot(page, "graph");
  // Clicking a node selects the step in the inspector.
  await page.locator('[data-testid="graph-node"][data-span-id="000000000000a103"]').click();
  await page.waitForURL(/step=000000000000a103/);
  await page.locator('[data-testid="inspector"][data-span-id="000000000000a103"]').waitFor();
  await page.reload();
  await page.locator('[data-testid="graph"][data-ready="true"]').waitFor();
  assert.equal(await page.getByTestId("graph").getAttribute("data-layout-hash"), hash);
  assert.deepEqual(problems(page), []);
  await page.close();
});

test("search inside a run shows the hit count and jumps; the keyboard moves through steps", async () => {
  const page = await ctx.browser.newPage();
  await page.goto(url(`/runs/${A01}`));
  await page.locator('[data-testid="step-row"]').first().waitFor();

  // `/` focuses the search box; a term found only in payloads (the refund's arguments) counts too.
  await page.keyboard.press("/");
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("data-testid")), "run-search");
  await page.keyboard.type("lookup_order");
  await page.keyboard.press("Enter");
  const count = page.getByTestId("search-count");
  await count.waitFor();
  const text = await count.innerText();
  const m = /^1 of (\d+)/.exec(text);
  assert.ok(m, `hit count shown: ${text}`);
  const total = Number(m[1]);
  assert.ok(total >= 3, `${total} hits`);
  const firstHit = await selectedRow(page);
  await page.getByTestId("search-next").click();
  await page.waitForFunction(() => /^2 of/.test(document.querySelector('[data-testid="search-count"]')?.textContent ?? ""));
  assert.notEqual(await selectedRow(page), firstHit);
  assert.ok((await page.locator('[data-testid="step-row"].hit').count()) >= 2);
  await screenshot(page, "search");

  // Keys work on the rows, not while typing in the box.
  await page.keyboard.press("Escape");
  await page.locator('[data-testid="step-row"]').first().click();
  assert.equal(await selectedRow(page), "000000000000a101");
  await page.keyboard.press("j");
  await page.waitForFunction(() => /step=000000000000a102/.test(location.search));
  await page.keyboard.press("ArrowDown");
  await page.waitForFunction(() => /step=000000000000a103/.test(location.search));
  await page.keyboard.press("k");
  await page.waitForFunction(() => /step=000000000000a102/.test(location.search));
  await page.getByTestId("run-search").focus();
  await page.keyboard.press("j");
  assert.match(page.url(), /step=000000000000a102/, "j typed into the box does not move the selection");
  await page.getByTestId("run-search").blur();
  // Enter on the root folds its 12 descendants away.
  await page.keyboard.press("Home");
  await page.waitForFunction(() => /step=000000000000a101/.test(location.search));
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="step-row"]').length === 1);
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="step-row"]').length === 13);
  assert.deepEqual(problems(page), []);
  await page.close();
});

test("following a cross-run edge keeps a breadcrumb, and Back returns", async () => {
  const page = await ctx.browser.newPage();
  await page.goto(url(`/runs/${A01}?step=000000000000a107`));
  const link = page.locator('[data-testid="inspector"] [data-testid="linked-run"]').first();
  await link.waitFor();
  await link.click();
  await page.waitForURL(`**/runs/${A02}**`);
  const crumb = page.locator('[data-testid="breadcrumb-item"]');
  await crumb.first().waitFor();
  assert.match(await crumb.first().innerText(), /invoke_agent triage/);
  await page.locator('[data-testid="step-row"]').first().waitFor();
  await screenshot(page, "cross-run");
  await page.goBack();
  await page.waitForURL(`**/runs/${A01}?step=000000000000a107`);
  await page.locator('[data-testid="inspector"][data-span-id="000000000000a107"]').waitFor();
  // The crumb leads back too.
  await page.goForward();
  await page.waitForURL(`**/runs/${A02}**`);
  await page.locator('[data-testid="breadcrumb-item"]').first().click();
  await page.waitForURL(`**/runs/${A01}?step=000000000000a107`);
  assert.deepEqual(problems(page), []);
  await page.close();
});

test("a large payload is fetched only when opened", async () => {
  const { big } = ctx.env.fixtures;
  const page = await ctx.browser.newPage();
  /** @type {string[]} */
  const payloadRequests = [];
  // The answers about the step itself (the inspector's and the why-chain's), by size.
  /** @type {Record<string, number>} */
  const stepAnswers = {};
  page.on("response", async (response) => {
    if (response.url().includes("/payloads/")) payloadRequests.push(response.url());
    if (response.url().includes(`/steps/${big.large_payload_span}`)) {
      stepAnswers[new URL(response.url()).pathname] = (await response.body()).length;
    }
  });
  await page.goto(url(`/runs/${big.trace_id}?step=${big.large_payload_span}`));
  const payload = page.locator('[data-testid="inspector"] [data-field="tool_result"]');
  await payload.waitFor();
  assert.equal(await payload.getAttribute("data-loaded"), "false");
  await page.waitForLoadState("networkidle");
  assert.deepEqual(payloadRequests, []);
  assert.equal(Object.keys(stepAnswers).length, 2, JSON.stringify(stepAnswers));
  for (const [path, size] of Object.entries(stepAnswers)) {
    assert.ok(size < 50_000, `${path} carried ${size} bytes: the ${big.large_payload_bytes}-byte payload came along`);
  }
  await payload.getByTestId("load-payload").click();
  await page.waitForFunction(
    () => document.querySelector('[data-testid="inspector"] [data-field="tool_result"]')?.getAttribute("data-loaded") === "true",
  );
  assert.equal(payloadRequests.length, 1);
  await screenshot(page, "large-payload");
  assert.deepEqual(problems(page), []);
  await page.close();
});

test("another tenant's run is not reachable", async () => {
  const { other } = ctx.env.fixtures;
  const page = await ctx.browser.newPage();
  await page.goto(url(`/runs/${other.trace_id}`));
  await page.getByTestId("error").waitFor();
  assert.match(await page.getByTestId("error").innerText(), /not found/i);
  assert.equal(await page.locator('[data-testid="step-row"]').count(), 0);
  // Named with its tenant, it opens; a01 is then not reachable from that tenant.
  await page.goto(url(`/runs/${other.trace_id}?tenant=other`));
  await page.locator('[data-testid="step-row"]').first().waitFor();
  await page.goto(url(`/runs/${A01}?tenant=other`));
  await page.getByTestId("error").waitFor();
  // The tenant box switches tenant and starts at its runs.
  await page.goto(url("/"));
  await page.locator('[data-testid="run-row"]').first().waitFor();
  await page.getByTestId("tenant-input").fill("other");
  await page.getByTestId("tenant-input").press("Enter");
  await page.waitForURL(/\?tenant=other$/);
  await page.locator(`[data-testid="run-row"][data-trace-id="${other.trace_id}"]`).waitFor();
  assert.equal(await page.locator('[data-testid="run-row"]').count(), 1);
  assert.deepEqual(problems(page, [/HTTP 404/, /status of 404/]), []);
  await page.close();
});

test("governance, costs, data and SQL answer on screen", async () => {
  const page = await ctx.browser.newPage();
  await page.goto(url("/governance"));
  await page.getByTestId("gates").waitFor();
  const counts = /** @type {{ counts: Record<string, number> }} */ ((await getJson(ctx.env.cairn, "/api/v1/governance/approvals")).body).counts;
  assert.ok((counts["denied"] ?? 0) >= 1 && (counts["requested"] ?? 0) >= 1, JSON.stringify(counts));
  const shown = await page.getByTestId("approval-counts").innerText();
  for (const [state, n] of Object.entries(counts)) assert.match(shown, new RegExp(`${n}\\s+${state.replace("_", " ")}`));
  const bypasses = await apiBypasses();
  assert.ok(bypasses >= 2, "a04's two bypasses at least");
  assert.equal(await page.locator('[data-testid="bypasses"] tbody tr').count(), bypasses);
  await screenshot(page, "governance", { fullPage: true });

  await page.goto(url("/costs?by=model"));
  await page.getByTestId("cost-chart").waitFor();
  assert.match(await page.getByTestId("cost-chart").innerText(), /gpt-4o/);
  await screenshot(page, "costs");

  await page.goto(url(`/data?uri=${encodeURIComponent("postgres://db/shop/refunds")}`));
  await page.locator('[data-testid="access-row"]').first().waitFor();
  assert.ok((await page.locator('[data-testid="access-row"]').count()) >= 4);
  await screenshot(page, "data");

  await page.goto(url("/sql"));
  await page.getByTestId("sql-editor").fill("SELECT trace_id, span_count FROM runs ORDER BY span_count DESC");
  await page.getByTestId("sql-run").click();
  await page.getByTestId("sql-result").waitFor();
  assert.match(await page.getByTestId("sql-summary").innerText(), /^6 rows/);
  const download = page.waitForEvent("download");
  await page.getByTestId("sql-csv").click();
  const csv = await download;
  assert.equal(csv.suggestedFilename(), "cairn-query.csv");
  await screenshot(page, "sql");
  assert.deepEqual(problems(page), []);
  await page.close();
});

/** Bypasses of the tenant, from the API (the page must list them all). */
async function apiBypasses() {
  const res = await fetch(url("/api/v1/governance/bypasses"), { headers: { "X-Scope-OrgID": "default" } });
  const body = /** @type {{ bypasses: unknown[] }} */ (await res.json());
  return body.bypasses.length;
}

test("the overview strip zooms the waterfall to a time range; the policy shows what changed", async () => {
  const page = await ctx.browser.newPage();
  await page.goto(url(`/runs/${A01}`));
  const strip = page.getByTestId("waterfall-overview");
  await strip.waitFor();
  const box = await strip.boundingBox();
  assert.ok(box);
  const axis = async () => page.locator(".wf-axis span").allInnerTexts();
  const before = await axis();
  // Drag over the first third of the run (0 s to about 20 s of its minute).
  await page.mouse.move(box.x + 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 3, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await page.getByTestId("zoom-reset").waitFor();
  const zoomed = await axis();
  assert.notDeepEqual(zoomed, before);
  assert.match(zoomed[zoomed.length - 1] ?? "", /^(19|20|21)\.\d s$/, `axis ends near 20 s: ${zoomed.join(" ")}`);
  // The refund at 20 s is at the right edge now; the email at 25 s is off the track.
  await page.getByTestId("zoom-reset").click();
  assert.deepEqual(await axis(), before);

  // Run a04 ran under policy-v2, which changed from policy-v1: the inspector shows the diff.
  await page.goto(url("/runs/00000000000000000000000000000a04?step=000000000000a403"));
  const policy = page.locator('[data-testid="inspector"] [data-testid="policy"]');
  await policy.waitFor();
  // It also ran without the approval policy-v2 requires for refunds.
  assert.match(await page.locator('[data-testid="inspector"] [data-testid="bypass"]').innerText(), /no approval/);
  await policy.locator("summary").click();
  assert.match(await policy.innerText(), /Changed from\s+policy-v1/);
  await policy.getByTestId("show-policy").click();
  const diff = policy.getByTestId("policy-diff");
  await diff.waitFor();
  const added = await diff.locator(".diff-add").allInnerTexts();
  const removed = await diff.locator(".diff-del").allInnerTexts();
  assert.ok(added.some((l) => l.includes("policy-v2")), added.join("\n"));
  assert.ok(removed.some((l) => l.includes("policy-v1")), removed.join("\n"));
  await screenshot(page, "policy-diff");
  assert.deepEqual(problems(page), []);
  await page.close();
});
