// Runs the browser tests: starts one `cairn serve` and sends the fixtures (harness.mjs), runs
// every tests/*.test.mjs with node:test, one file at a time, and prints the spec reporter's output
// followed by exactly one line `N passed, N failed[, N skipped]`. Exits 1 if anything failed.
//
// Usage: node tests/run.mjs [--grep PATTERN] [FILE…]   (`npm test -- …` passes the same)

import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { run } from "node:test";
import { spec } from "node:test/reporters";
import { parseArgs } from "node:util";
import { appDir, handOver, startShared } from "./harness.mjs";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { grep: { type: "string", short: "g" } },
});
const testsDir = join(appDir, "tests");
const files = positionals.length
  ? positionals.map((file) => resolve(file))
  : readdirSync(testsDir)
      .filter((name) => name.endsWith(".test.mjs"))
      .sort()
      .map((name) => join(testsDir, name));

/**
 * @param {number} passed
 * @param {number} failed
 * @param {number} skipped
 */
function summary(passed, failed, skipped) {
  process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`);
}

/** @param {number} ms */
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

/** @type {(() => Promise<void>) | null} */
let stopServer = null;
for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: stopping the server\n`);
    void (stopServer ?? (() => Promise.resolve()))().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  });
}

let setup;
try {
  setup = await startShared();
} catch (error) {
  process.stdout.write(`✖ setup: the server or its fixtures failed\n  ${String(error instanceof Error ? error.stack : error).replaceAll("\n", "\n  ")}\n`);
  summary(0, 1, 0);
  process.exit(1);
}
stopServer = setup.stop;
const { cairn, fixtures, timings } = setup.shared;
handOver(setup.shared);
process.stdout.write(
  `# cairn serve ready in ${seconds(timings["start"] ?? 0)} (${cairn.api}); fixtures sent in ` +
    `${seconds(timings["send"] ?? 0)} (10k-span run ${seconds(timings["big"] ?? 0)}, ` +
    `lineage ${seconds(timings["lineage"] ?? 0)}), queryable ${seconds(timings["visible"] ?? 0)} later; ` +
    `spans: ${Object.entries(fixtures.expectedSpans).map(([t, n]) => `${t} ${n}`).join(", ")}\n`,
);

let passed = 0;
let failed = 0;
let skipped = 0;
/** Files with a failed suite (a failed hook, say) and the number of failed tests in each. */
const failedSuites = new Set();
/** @type {Map<string, number>} */
const failedTests = new Map();
const stream = run({
  files,
  concurrency: 1,
  timeout: 10 * 60_000,
  ...(values.grep ? { testNamePatterns: values.grep } : {}),
});
stream.on("test:pass", (data) => {
  if (data.details.type === "suite") return;
  if (data.skip !== undefined || data.todo !== undefined) skipped++;
  else passed++;
});
stream.on("test:fail", (data) => {
  const file = data.file ?? "";
  if (data.details.type === "suite") {
    failedSuites.add(file);
    return;
  }
  if (data.todo !== undefined) {
    skipped++;
    return;
  }
  failed++;
  failedTests.set(file, (failedTests.get(file) ?? 0) + 1);
});
try {
  for await (const chunk of stream.compose(new spec())) process.stdout.write(chunk);
} finally {
  await setup.stop();
}
for (const file of failedSuites) {
  if (!failedTests.get(file)) failed++; // a suite failed with no test failing: count it once
}
summary(passed, failed, skipped);
process.exitCode = failed > 0 || passed + skipped === 0 ? 1 : 0;
