// Access tokens in the UI: a server of its own with `--auth-tokens`, tokens made with
// `cairn token create`, and the fixtures exported with ingest tokens. The sign-in screen, refused
// tokens (unknown, ingest), a tenant-bound read token's runs, a session that survives a reload
// and ends with Sign out or when the token is revoked, an admin token choosing the tenant. The
// shared server (auth off) never shows the sign-in screen.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { cairnCommand, launchBrowser, problems, runPython, screenshot, shared, spanCount, startCairn } from "./harness.mjs";

/** Answers these tests provoke on purpose: refused tokens. */
const REFUSALS = [/HTTP 401: /, /HTTP 403: /, /console error: Failed to load resource: the server responded with a status of 40[13]/];

const ctx = /** @type {{
  dir: string,
  file: string,
  cairn: import("./harness.mjs").Cairn,
  browser: import("./harness.mjs").TestBrowser,
  tokens: { acmeRead: string, betaRead: string, acmeIngest: string, betaIngest: string, admin: string, toRevoke: string },
  acme: Record<string, string>,
  beta: string,
}} */ ({});

/**
 * A new token from `cairn token create`, printed once on stdout.
 * @param {string} tenant
 * @param {string} role
 * @param {string} name
 */
async function createToken(tenant, role, name) {
  const out = (await cairnCommand(["token", "create", "--auth-tokens", ctx.file, "--tenant", tenant, "--role", role, "--name", name])).trim();
  assert.match(out, /^cairn_[0-9a-f]{16}_[0-9a-f]{64}$/, `cairn token create printed ${JSON.stringify(out)}`);
  return out;
}

/** The id of a token, which `cairn token revoke` takes. */
const tokenId = (/** @type {string} */ token) => token.slice("cairn_".length, "cairn_".length + 16);

before(async () => {
  ctx.dir = mkdtempSync(join(tmpdir(), "cairn-ui-auth-"));
  ctx.file = join(ctx.dir, "tokens.toml");
  ctx.tokens = {
    acmeRead: await createToken("acme", "read", "acme reader"),
    betaRead: await createToken("beta", "read", "beta reader"),
    acmeIngest: await createToken("acme", "ingest", "acme agents"),
    betaIngest: await createToken("beta", "ingest", "beta agents"),
    admin: await createToken("acme", "admin", "operator"),
    toRevoke: await createToken("acme", "read", "to revoke"),
  };
  ctx.cairn = await startCairn({ extraArgs: ["--auth-tokens", ctx.file] });
  const endpoint = `${ctx.cairn.otlpHttp}/v1/traces`;
  const bearer = (/** @type {string} */ token) => ({ OTEL_EXPORTER_OTLP_HEADERS: `Authorization=Bearer%20${token}` });
  const [lineage, beta] = await Promise.all([
    runPython("lineage_runs.py", ["--endpoint", endpoint, "--tenant", "acme"], bearer(ctx.tokens.acmeIngest)),
    runPython("big_run.py", ["--endpoint", endpoint, "--tenant", "beta", "--spans", "50", "--run", "2"], bearer(ctx.tokens.betaIngest)),
  ]);
  ctx.acme = lineage.out.traces;
  ctx.beta = beta.out.trace_id;
  const want = { acme: Object.keys(lineage.out.spans).length, beta: beta.out.spans };
  for (const [tenant, n] of Object.entries(want)) {
    const token = tenant === "acme" ? ctx.tokens.acmeRead : ctx.tokens.betaRead;
    const deadline = Date.now() + 60_000;
    while ((await spanCount(ctx.cairn, tenant, token)) !== n) {
      if (Date.now() > deadline) throw new Error(`tenant ${tenant}: spans not queryable`);
      await new Promise((done) => setTimeout(done, 100));
    }
  }
  ctx.browser = await launchBrowser();
});

after(async () => {
  await ctx.browser?.close();
  await ctx.cairn?.stop();
  rmSync(ctx.dir, { recursive: true, force: true });
});

/**
 * Pastes `token` into the sign-in screen and submits it.
 * @param {import("playwright-core").Page} page
 * @param {string} token
 * @param {{ remember?: boolean }} [options]
 */
async function signIn(page, token, options = {}) {
  await page.getByTestId("signin").waitFor();
  await page.getByTestId("token-input").fill(token);
  if (options.remember) await page.getByTestId("remember").check();
  await page.getByTestId("sign-in").click();
}

/** @param {import("playwright-core").Page} page */
const storedTokens = (page) =>
  page.evaluate(() => ({ session: sessionStorage.getItem("cairn.token"), local: localStorage.getItem("cairn.token") }));

test("the sign-in screen comes up, and an unknown token is refused with the reason", async () => {
  const page = await ctx.browser.newPage();
  await page.goto(`${ctx.cairn.api}/`);
  await page.getByTestId("signin").waitFor();
  const text = await page.getByTestId("signin").innerText();
  assert.match(text, /cairn token create --tenant <tenant> --role read/);
  await screenshot(page, "auth-signin");

  await signIn(page, `cairn_${"0".repeat(16)}_${"0".repeat(64)}`);
  const error = page.getByTestId("signin-error");
  await error.waitFor();
  assert.match(await error.innerText(), /did not accept this token: invalid token\./);
  assert.deepEqual(await storedTokens(page), { session: null, local: null });
  await screenshot(page, "auth-wrong-token");
  assert.deepEqual(problems(page, REFUSALS), []);
  await page.close();
});

test("an ingest token is refused: it cannot read", async () => {
  const page = await ctx.browser.newPage();
  await page.goto(`${ctx.cairn.api}/`);
  await signIn(page, ctx.tokens.acmeIngest);
  const error = page.getByTestId("signin-error");
  await error.waitFor();
  assert.match(await error.innerText(), /ingest/);
  assert.match(await error.innerText(), /read token/);
  assert.equal(await page.getByTestId("run-row").count(), 0);
  assert.deepEqual(await storedTokens(page), { session: null, local: null });
  await screenshot(page, "auth-ingest-token");
  assert.deepEqual(problems(page, REFUSALS), []);
  await page.close();
});

test("a read token shows its tenant's runs, survives a reload, and Sign out ends it", async () => {
  const page = await ctx.browser.newPage();
  await page.goto(`${ctx.cairn.api}/`);
  await signIn(page, ctx.tokens.acmeRead);
  const rows = page.getByTestId("run-row");
  await rows.first().waitFor();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="run-row"]').length === 5);
  const ids = await rows.evaluateAll((els) => els.map((e) => e.getAttribute("data-trace-id")).sort());
  assert.deepEqual(ids, Object.values(ctx.acme).sort());
  // The tenant box shows the token's tenant and cannot change it; requests name no tenant.
  const tenant = page.getByTestId("tenant-input");
  assert.equal(await tenant.inputValue(), "acme");
  assert.equal(await tenant.getAttribute("readonly"), "");
  assert.match(await page.getByTestId("session-who").innerText(), /read token/);
  assert.deepEqual(await storedTokens(page), { session: ctx.tokens.acmeRead, local: null });
  await screenshot(page, "auth-runs");

  /** @type {Record<string, string>[]} */
  const sent = [];
  page.on("request", (r) => {
    if (r.url().includes("/api/")) sent.push(r.headers());
  });
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="run-row"]').length === 5);
  assert.equal(await page.getByTestId("signin").count(), 0);
  assert.ok(sent.length > 0);
  for (const headers of sent) {
    assert.equal(headers["authorization"], `Bearer ${ctx.tokens.acmeRead}`);
    assert.equal(headers["x-scope-orgid"], undefined);
  }

  // A tab of its own does not share a session kept only for this tab.
  const other = await page.context().newPage();
  await other.goto(`${ctx.cairn.api}/`);
  await other.getByTestId("signin").waitFor();
  await other.close();

  // A link to another tenant's run is said to be one, not shown empty.
  await page.goto(`${ctx.cairn.api}/runs/${ctx.beta}?tenant=beta`);
  const denied = page.getByTestId("denied");
  await denied.waitFor();
  assert.match(await denied.innerText(), /tenant beta.*reads tenant acme only/s);
  await screenshot(page, "auth-other-tenant");

  await page.getByTestId("sign-out").click();
  await page.getByTestId("signin").waitFor();
  assert.match(await page.getByTestId("signin-reason").innerText(), /signed out/);
  assert.deepEqual(await storedTokens(page), { session: null, local: null });
  await page.reload();
  await page.getByTestId("signin").waitFor();
  assert.deepEqual(problems(page, REFUSALS), []);
  await page.close();
});

test("Remember on this device keeps the token for other tabs until Sign out", async () => {
  const page = await ctx.browser.newPage();
  await page.goto(`${ctx.cairn.api}/`);
  await signIn(page, ctx.tokens.betaRead, { remember: true });
  await page.locator(`[data-testid="run-row"][data-trace-id="${ctx.beta}"]`).waitFor();
  assert.deepEqual(await storedTokens(page), { session: null, local: ctx.tokens.betaRead });
  const other = await page.context().newPage();
  await other.goto(`${ctx.cairn.api}/`);
  await other.locator(`[data-testid="run-row"][data-trace-id="${ctx.beta}"]`).waitFor();
  assert.equal(await other.getByTestId("tenant-input").inputValue(), "beta");
  // Signing out in one tab signs the other out too.
  await other.getByTestId("sign-out").click();
  await page.getByTestId("signin").waitFor();
  assert.match(await page.getByTestId("signin-reason").innerText(), /another tab/);
  assert.deepEqual(await storedTokens(page), { session: null, local: null });
  assert.deepEqual(problems(page, REFUSALS), []);
  await other.close();
  await page.close();
});

test("an admin token chooses the tenant", async () => {
  const page = await ctx.browser.newPage();
  await page.goto(`${ctx.cairn.api}/`);
  await signIn(page, ctx.tokens.admin);
  // As with auth off: the tenant `default` (empty on this server) until another is chosen.
  const tenant = page.getByTestId("tenant-input");
  await tenant.waitFor();
  assert.equal(await tenant.inputValue(), "default");
  assert.equal(await tenant.getAttribute("readonly"), null);
  assert.match(await page.getByTestId("session-who").innerText(), /admin token/);
  for (const [name, want] of /** @type {const} */ ([["acme", 5], ["beta", 1]])) {
    await tenant.fill(name);
    await tenant.press("Enter");
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="run-row"]').length === n, want);
  }
  await page.locator(`[data-testid="run-row"][data-trace-id="${ctx.beta}"]`).waitFor();
  assert.equal(new URL(page.url()).searchParams.get("tenant"), "beta");
  assert.deepEqual(problems(page, REFUSALS), []);
  await page.close();
});

test("a revoked token sends the user back to sign in, with the reason", async () => {
  const token = ctx.tokens.toRevoke;
  const page = await ctx.browser.newPage();
  await page.goto(`${ctx.cairn.api}/`);
  await signIn(page, token);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="run-row"]').length === 5);

  await cairnCommand(["token", "revoke", "--auth-tokens", ctx.file, tokenId(token)]);
  ctx.cairn.signal("SIGHUP");
  // The runs list refreshes itself; its next request is refused.
  const reason = page.getByTestId("signin-reason");
  await reason.waitFor({ timeout: 30_000 });
  assert.match(await reason.innerText(), /no longer accepts your access token: token revoked\./);
  assert.deepEqual(await storedTokens(page), { session: null, local: null });
  await screenshot(page, "auth-revoked");
  assert.deepEqual(problems(page, REFUSALS), []);
  await page.close();
});

test("with auth off there is no sign-in screen and no token is sent", async () => {
  const env = await shared();
  const page = await ctx.browser.newPage();
  /** @type {Record<string, string>[]} */
  const sent = [];
  page.on("request", (r) => {
    if (r.url().includes("/api/")) sent.push(r.headers());
  });
  await page.goto(`${env.cairn.api}/`);
  await page.getByTestId("run-row").first().waitFor();
  assert.equal(await page.getByTestId("signin").count(), 0);
  assert.equal(await page.getByTestId("sign-out").count(), 0);
  assert.equal(await page.getByTestId("tenant-input").getAttribute("readonly"), null);
  assert.ok(sent.length > 0);
  for (const headers of sent) {
    assert.equal(headers["authorization"], undefined);
    assert.equal(headers["x-scope-orgid"], "default");
  }
  assert.deepEqual(problems(page), []);
  await page.close();
});
