// The browser-test harness: a real `cairn serve` with the Python fixtures in it, and Debian's
// Chromium driven by playwright-core.
//
// `tests/run.mjs` starts one server and sends the fixtures once for the whole run (see
// `shared()`); each `*.test.mjs` file, which node:test runs in a process of its own, launches its
// own browser. Run a single file with `node --test tests/x.test.mjs` and `shared()` starts a
// server for that process alone.
//
// Environment:
//   CAIRN_BIN           the cairn binary (else $CARGO_TARGET_DIR/debug/cairn, else the
//                       workspace's target/debug/cairn)
//   CAIRN_TEST_PYTHON   Python with the OpenTelemetry SDK (else /var/cache/cairn/venv/bin/python,
//                       else python3)
//   CAIRN_UI_CHROMIUM   the browser (else /usr/bin/chromium)
//   CAIRN_UI_KEEP=1     keep the server's temporary directory (store, log) after the run

import { execFile, spawn } from "node:child_process";
import { accessSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
/** The ui/app directory. */
export const appDir = resolve(here, "..");
/** The repository root. */
export const repoDir = resolve(here, "../../..");
/** Where `screenshot()` writes. */
export const screensDir = join(appDir, "test-results", "screens");

/** The environment variable through which `run.mjs` hands its server to the test processes. */
const SHARED_ENV = "CAIRN_UI_SHARED";

/**
 * A running `cairn serve`.
 * @typedef {object} Cairn
 * @property {string} api        query API and UI base URL, e.g. http://127.0.0.1:41234
 * @property {string} otlpHttp   OTLP/HTTP base URL (POST `${otlpHttp}/v1/traces`)
 * @property {string} otlpGrpc   OTLP/gRPC address, host:port
 * @property {string} dir        temporary directory holding the store, the log and the ready file
 * @property {string} logFile    the server's stdout and stderr
 * @property {(signal: NodeJS.Signals) => void} signal  sends the server a signal (SIGHUP: re-read files)
 * @property {() => Promise<void>} stop  stops the server (SIGTERM, then SIGKILL) and removes `dir`
 */

/**
 * The ids printed by tests/python/lineage_runs.py.
 * @typedef {object} LineageIds
 * @property {Record<string, string>} traces  label (a01…a05) -> trace id
 * @property {Record<string, string>} spans   label (a01.1…) -> span id
 */

/**
 * The summary printed by tests/python/big_run.py.
 * @typedef {object} BigRun
 * @property {string} trace_id
 * @property {number} spans
 * @property {string} large_payload_span
 * @property {number} large_payload_bytes
 * @property {Record<string, string>} sample_spans  label (root, error, handoff, …) -> span id
 * @property {Record<string, number>} counts        agents, chats, tools, handoffs, approvals, errors
 * @property {number} max_agent_depth
 * @property {number} max_span_depth
 * @property {string} start  RFC 3339
 * @property {string} end    RFC 3339
 */

/**
 * What `sendFixtures()` sent, by tenant.
 * @typedef {object} Fixtures
 * @property {LineageIds} lineage  tenant `default`: runs a01…a05 (2026-11-20)
 * @property {BigRun} big          tenant `default`: one run of 10,000 spans (2026-11-21 09:05)
 * @property {BigRun} other        tenant `other`: one run of 50 spans, invisible to `default`
 * @property {Record<string, number>} expectedSpans  tenant -> spans it holds
 * @property {Record<string, number>} timings  ms: lineage, other, big (each script's own run),
 *                                             send (all three, in parallel), visible (until queryable)
 */

/**
 * The server and data every test of a run shares.
 * @typedef {object} Shared
 * @property {Pick<Cairn, "api" | "otlpHttp" | "otlpGrpc" | "dir" | "logFile">} cairn
 * @property {Fixtures} fixtures
 * @property {Record<string, number>} timings  ms: start (server ready), plus those of the fixtures
 */

// --- the server ----------------------------------------------------------------------------

/** The cairn binary: CAIRN_BIN, else $CARGO_TARGET_DIR/debug/cairn, else target/debug/cairn. */
export function cairnBinary() {
  const candidates = process.env["CAIRN_BIN"]
    ? [process.env["CAIRN_BIN"]]
    : [
        ...(process.env["CARGO_TARGET_DIR"] ? [join(process.env["CARGO_TARGET_DIR"], "debug", "cairn")] : []),
        join(repoDir, "target", "debug", "cairn"),
      ];
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK);
      return resolve(path);
    } catch {
      // try the next one
    }
  }
  throw new Error(`no cairn binary at ${candidates.join(" or ")}: run \`cargo build\` or set CAIRN_BIN`);
}

/**
 * @param {number} ms
 * @returns {Promise<void>}
 */
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/**
 * The last lines of a file, for error messages.
 * @param {string} path
 * @param {number} [lines]
 */
function tail(path, lines = 30) {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Servers started by this process and not stopped yet, with their directories: at exit, killed
 * and removed whatever happened (a test that never called `stop()`, an uncaught error).
 * @type {Map<import("node:child_process").ChildProcess, () => void>}
 */
const running = new Map();
process.once("exit", () => {
  for (const [child, cleanup] of running) {
    child.kill("SIGKILL");
    cleanup();
  }
});

/**
 * Starts `cairn serve` on free loopback ports with a fresh store and write-ahead log.
 * @param {{ flushInterval?: string, extraArgs?: string[] }} [options]
 * @returns {Promise<Cairn>}
 */
export async function startCairn(options = {}) {
  const bin = cairnBinary();
  const dir = mkdtempSync(join(tmpdir(), "cairn-ui-test-"));
  const readyFile = join(dir, "ready.json");
  const logFile = join(dir, "cairn.log");
  const log = openSync(logFile, "a");
  /** @type {NodeJS.ProcessEnv} */
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("CAIRN_")) env[key] = value; // no CAIRN_CONFIG or other setting leaks in
  }
  env["CAIRN_LOG"] = process.env["CAIRN_UI_SERVER_LOG"] ?? "info";
  env["NO_COLOR"] = "1";
  const args = [
    "serve",
    "--store", join(dir, "store"),
    "--wal-dir", join(dir, "wal"),
    "--spill-dir", join(dir, "spill"),
    "--ready-file", readyFile,
    "--otlp-grpc-addr", "127.0.0.1:0",
    "--otlp-http-addr", "127.0.0.1:0",
    "--http-addr", "127.0.0.1:0",
    "--pg-addr", "127.0.0.1:0",
    "--flush-interval", options.flushInterval ?? "200ms",
    "--shutdown-timeout", "10s",
    ...(options.extraArgs ?? []),
  ];
  const child = spawn(bin, args, { cwd: dir, env, stdio: ["ignore", log, log] });
  closeSync(log);
  child.unref(); // the process exits when its work is done; `stop()` or the exit hook ends cairn

  let removed = false;
  const cleanup = () => {
    if (removed) return;
    removed = true;
    if (process.env["CAIRN_UI_KEEP"] === "1") {
      process.stderr.write(`# kept the server's directory ${dir}\n`);
    } else {
      rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
    }
  };
  running.set(child, cleanup);
  /** @type {{ code: number | null, signal: NodeJS.Signals | null } | undefined} */
  let exited;
  /** @type {Promise<void>} */
  const exit = new Promise((done) => {
    child.once("exit", (code, signal) => {
      exited = { code, signal };
      running.delete(child);
      done();
    });
  });
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      /** @type {NodeJS.Timeout | undefined} */
      let timer;
      const timedOut = await Promise.race([
        exit.then(() => false),
        new Promise((done) => (timer = setTimeout(done, 15_000, true))),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        child.kill("SIGKILL");
        await exit;
      }
    }
    cleanup();
  };

  /** @type {{ http: string, otlp_http: string, otlp_grpc: string } | null} */
  let ready = null;
  const deadline = Date.now() + 60_000;
  while (ready === null) {
    if (exited) {
      cleanup();
      throw new Error(`cairn serve exited (${JSON.stringify(exited)}) before it was ready:\n${tail(logFile)}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`cairn serve did not write ${readyFile} within 60 s:\n${tail(logFile)}`);
    }
    if (existsSync(readyFile)) {
      try {
        ready = JSON.parse(readFileSync(readyFile, "utf8"));
      } catch {
        // written but not complete yet
      }
    }
    if (ready === null) await sleep(20);
  }
  return {
    api: `http://${ready.http}`,
    otlpHttp: `http://${ready.otlp_http}`,
    otlpGrpc: ready.otlp_grpc,
    dir,
    logFile,
    signal: (name) => void child.kill(name),
    stop,
  };
}

/**
 * Runs `cairn <args>` (a subcommand such as `token create …`) to completion; returns its stdout.
 * @param {string[]} args
 * @returns {Promise<string>}
 */
export function cairnCommand(args) {
  return new Promise((done, fail) => {
    execFile(cairnBinary(), args, { timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) fail(new Error(`cairn ${args.join(" ")} failed: ${error.message}\n${stderr}`));
      else done(stdout);
    });
  });
}

// --- the query API -------------------------------------------------------------------------

/**
 * Runs SQL through POST /api/v1/sql as `tenant` (with an access token, if given); throws on an
 * error answer.
 * @param {Pick<Cairn, "api">} cairn
 * @param {string} statement
 * @param {string} [tenant]
 * @param {string} [token]
 * @returns {Promise<Record<string, unknown>[]>}
 */
export async function sql(cairn, statement, tenant = "default", token = undefined) {
  const response = await fetch(`${cairn.api}/api/v1/sql`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-scope-orgid": tenant,
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ sql: statement }),
  });
  const body = await response.text();
  if (!response.ok) throw new Error(`SQL answered ${response.status}: ${body}`);
  return JSON.parse(body);
}

/**
 * GETs an API path (e.g. `/api/v1/runs/…`) as `tenant`; returns the status and the parsed JSON.
 * @param {Pick<Cairn, "api">} cairn
 * @param {string} path
 * @param {string} [tenant]
 * @returns {Promise<{ status: number, body: unknown }>}
 */
export async function getJson(cairn, path, tenant = "default") {
  const response = await fetch(`${cairn.api}${path}`, { headers: { "x-scope-orgid": tenant } });
  const text = await response.text();
  /** @type {unknown} */
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body };
}

/**
 * Spans `tenant` holds (read with `token`, if given).
 * @param {Pick<Cairn, "api">} cairn
 * @param {string} tenant
 * @param {string} [token]
 */
export async function spanCount(cairn, tenant, token = undefined) {
  const rows = await sql(cairn, "SELECT count(*) AS n FROM spans", tenant, token);
  return Number(rows[0]?.["n"] ?? 0);
}

// --- the fixtures --------------------------------------------------------------------------

/** Python with the OpenTelemetry SDK: CAIRN_TEST_PYTHON, else the CI venv, else python3. */
export function python() {
  const ciVenv = "/var/cache/cairn/venv/bin/python";
  return process.env["CAIRN_TEST_PYTHON"] || (existsSync(ciVenv) ? ciVenv : "python3");
}

/**
 * Runs a script of tests/python (with extra environment variables, if given); returns the JSON
 * object it prints and how long it took.
 * @param {string} script
 * @param {string[]} args
 * @param {Record<string, string>} [env]
 * @returns {Promise<{ out: any, ms: number }>}
 */
export function runPython(script, args, env = {}) {
  const path = join(repoDir, "tests", "python", script);
  const started = Date.now();
  const options = { maxBuffer: 64 << 20, timeout: 300_000, env: { ...process.env, ...env } };
  return new Promise((done, fail) => {
    execFile(python(), [path, ...args], options, (error, stdout, stderr) => {
      if (error) {
        fail(new Error(`${script} ${args.join(" ")} failed: ${error.message}\n${stderr}`));
        return;
      }
      try {
        done({ out: JSON.parse(stdout), ms: Date.now() - started });
      } catch {
        fail(new Error(`${script} printed no JSON: ${stdout}\n${stderr}`));
      }
    });
  });
}

/**
 * Sends the fixtures and waits until every span is queryable:
 * tests/python/lineage_runs.py (tenant `default`), big_run.py --spans 50 --run 2 (tenant
 * `other`), big_run.py (10,000 spans, tenant `default`).
 * @param {Pick<Cairn, "api" | "otlpHttp">} cairn
 * @returns {Promise<Fixtures>}
 */
export async function sendFixtures(cairn) {
  const endpoint = `${cairn.otlpHttp}/v1/traces`;
  const started = Date.now();
  const [lineage, other, big] = await Promise.all([
    runPython("lineage_runs.py", ["--endpoint", endpoint, "--tenant", "default"]),
    runPython("big_run.py", ["--endpoint", endpoint, "--tenant", "other", "--spans", "50", "--run", "2"]),
    runPython("big_run.py", ["--endpoint", endpoint, "--tenant", "default"]),
  ]);
  const sent = Date.now();
  /** @type {Record<string, number>} */
  const expectedSpans = {
    default: Object.keys(lineage.out.spans).length + big.out.spans,
    other: other.out.spans,
  };
  const deadline = Date.now() + 60_000;
  for (const [tenant, want] of Object.entries(expectedSpans)) {
    let got = -1;
    while ((got = await spanCount(cairn, tenant)) !== want) {
      if (Date.now() > deadline) throw new Error(`tenant ${tenant}: ${got} spans queryable, ${want} sent`);
      await sleep(100);
    }
  }
  return {
    lineage: lineage.out,
    big: big.out,
    other: other.out,
    expectedSpans,
    timings: { lineage: lineage.ms, other: other.ms, big: big.ms, send: sent - started, visible: Date.now() - sent },
  };
}

// --- one server for the whole run ----------------------------------------------------------

/** @type {Promise<Shared> | null} */
let sharedPromise = null;

/**
 * The server and fixtures shared by every test: those `run.mjs` started (handed over in the
 * CAIRN_UI_SHARED environment variable), else ones started for this process, stopped at exit.
 * @returns {Promise<Shared>}
 */
export function shared() {
  if (sharedPromise === null) {
    const handed = process.env[SHARED_ENV];
    sharedPromise = handed
      ? Promise.resolve(JSON.parse(handed))
      : startShared().then(({ shared, stop }) => {
          process.once("beforeExit", () => void stop());
          return shared;
        });
  }
  return sharedPromise;
}

/**
 * Starts a server and sends the fixtures; `stop` ends it. Used by `run.mjs` once per run, and
 * by `shared()` when a test file runs on its own (then stopped when the process exits).
 * @returns {Promise<{ shared: Shared, stop: () => Promise<void> }>}
 */
export async function startShared() {
  const started = Date.now();
  const cairn = await startCairn();
  const ready = Date.now();
  try {
    const fixtures = await sendFixtures(cairn);
    const { api, otlpHttp, otlpGrpc, dir, logFile } = cairn;
    return {
      shared: {
        cairn: { api, otlpHttp, otlpGrpc, dir, logFile },
        fixtures,
        timings: { start: ready - started, ...fixtures.timings },
      },
      stop: cairn.stop,
    };
  } catch (error) {
    const log = tail(cairn.logFile);
    await cairn.stop();
    throw new Error(`${error instanceof Error ? error.message : String(error)}\nserver log:\n${log}`, { cause: error });
  }
}

/**
 * Puts `value` in the environment, for test processes started afterwards.
 * @param {Shared} value
 */
export function handOver(value) {
  process.env[SHARED_ENV] = JSON.stringify(value);
}

// --- the browser ---------------------------------------------------------------------------

/** Chromium's flags: those proven on these machines, plus software WebGL. */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--enable-unsafe-swiftshader",
];

/** @type {WeakMap<import("playwright-core").Page, string[]>} */
const pageProblems = new WeakMap();

/**
 * A browser whose pages record their problems (see `problems()`).
 * @typedef {object} TestBrowser
 * @property {import("playwright-core").Browser} browser
 * @property {(options?: import("playwright-core").BrowserContextOptions) => Promise<import("playwright-core").Page>} newPage
 *           a page in a fresh context, 1440×900 unless `options.viewport` says otherwise
 * @property {() => Promise<void>} close
 */

/**
 * Launches headless Chromium (CAIRN_UI_CHROMIUM, else /usr/bin/chromium).
 * @returns {Promise<TestBrowser>}
 */
export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: process.env["CAIRN_UI_CHROMIUM"] || "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
  });
  return {
    browser,
    async newPage(options = {}) {
      const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, ...options });
      const page = await context.newPage();
      /** @type {string[]} */
      const seen = [];
      pageProblems.set(page, seen);
      page.on("console", (message) => {
        if (message.type() === "error") {
          const { url, lineNumber } = message.location();
          seen.push(`console error: ${message.text()}${url ? ` (${url}:${lineNumber})` : ""}`);
        }
      });
      page.on("pageerror", (error) => seen.push(`uncaught: ${error.stack ?? error.message}`));
      page.on("requestfailed", (request) => {
        const failure = request.failure()?.errorText ?? "failed";
        // A request the page itself abandons (navigation, AbortController) is not a failure.
        if (failure !== "net::ERR_ABORTED") seen.push(`request failed: ${request.method()} ${request.url()} (${failure})`);
      });
      page.on("response", (response) => {
        if (response.status() >= 400) {
          seen.push(`HTTP ${response.status()}: ${response.request().method()} ${response.url()}`);
        }
      });
      page.on("close", () => void context.close().catch(() => undefined));
      return page;
    },
    close: () => browser.close(),
  };
}

/**
 * What went wrong on `page` so far: console errors, uncaught exceptions, failed requests and
 * answers with a status of 400 or more. Pass `ignore` for problems a test provokes on purpose.
 * @param {import("playwright-core").Page} page
 * @param {RegExp[]} [ignore]
 * @returns {string[]}
 */
export function problems(page, ignore = []) {
  return (pageProblems.get(page) ?? []).filter((problem) => !ignore.some((pattern) => pattern.test(problem)));
}

/** Forgets the problems recorded on `page` so far.
 * @param {import("playwright-core").Page} page
 */
export function clearProblems(page) {
  pageProblems.get(page)?.splice(0);
}

/**
 * Saves a screenshot of the viewport as test-results/screens/<name>.png; returns its path.
 * @param {import("playwright-core").Page} page
 * @param {string} name
 * @param {{ fullPage?: boolean }} [options]
 */
export async function screenshot(page, name, options = {}) {
  mkdirSync(screensDir, { recursive: true });
  const path = join(screensDir, `${name}.png`);
  await page.screenshot({ path, fullPage: options.fullPage ?? false });
  return path;
}

/**
 * The shared server and a browser for one test file: `before` fills them in, `after` closes the
 * browser.
 * @returns {{ env: Shared, browser: TestBrowser }}
 */
export function suite() {
  const handle = /** @type {{ env: Shared, browser: TestBrowser }} */ ({});
  before(async () => {
    handle.env = await shared();
    handle.browser = await launchBrowser();
  });
  after(async () => {
    await handle.browser?.close();
  });
  return handle;
}
