// Runs still in progress: the runs list and the run page update without a reload as the spans
// of a run arrive (tests/python/live_run.py exports a run in two parts, its root last).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { test } from "node:test";
import { problems, python, repoDir, screenshot, suite } from "./harness.mjs";

const ctx = suite();

test("a run in progress shows up and fills in live, on the runs list and on its page", async () => {
  const tenant = "live";
  const child = spawn(python(), [join(repoDir, "tests", "python", "live_run.py"), "--endpoint", `${ctx.env.cairn.otlpHttp}/v1/traces`, "--tenant", tenant], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => /** @type {{ trace_id: string, phase: string }} */ (JSON.parse((await lines.next()).value));
  try {
    const open = await next();
    assert.equal(open.phase, "open");
    const list = await ctx.browser.newPage();
    await list.goto(`${ctx.env.cairn.api}/?tenant=${tenant}`);
    const row = list.locator(`[data-testid="run-row"][data-trace-id="${open.trace_id}"]`);
    await row.waitFor({ timeout: 20_000 });
    assert.match(await row.innerText(), /running/);

    const page = await ctx.browser.newPage();
    await page.goto(`${ctx.env.cairn.api}/runs/${open.trace_id}?tenant=${tenant}`);
    await page.locator('[data-testid="step-row"]').first().waitFor();
    assert.equal(await page.locator('[data-testid="step-row"]').count(), 2);
    assert.match(await page.getByTestId("run-page").innerText(), /root step not received yet/);
    await screenshot(page, "live-open");

    // The rest of the run, its root included: both pages catch up by themselves.
    child.stdin.write("go\n");
    assert.equal((await next()).phase, "done");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="step-row"]').length === 4, undefined, { timeout: 30_000 });
    await page.getByRole("heading", { name: "invoke_agent live-agent" }).waitFor();
    await row.getByText("invoke_agent live-agent").waitFor({ timeout: 30_000 });
    assert.doesNotMatch(await row.innerText(), /running/);
    await screenshot(page, "live-done");
    assert.deepEqual(problems(list), []);
    assert.deepEqual(problems(page), []);
    await list.close();
    await page.close();
  } finally {
    child.kill();
  }
});
