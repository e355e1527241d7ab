// docs/configuration.md against the schema (lib/config.ts, where every default lives): every key
// has a row, and each row shows the schema's default, so the document cannot drift from the code.
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { configDefaults, configKeys } from "../../lib/config.ts";
import { ROOT } from "../helpers/harness.ts";

/** A document's table rows: `| \`key\` | default | meaning |`, by key. */
function tableRows(file: string): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of readFileSync(path.join(ROOT, file), "utf8").split("\n")) {
    const found = /^\| `([^`]+)` \| ([^|]*) \|/.exec(line);
    if (found?.[1]) rows.set(found[1], found[2] ?? "");
  }
  return rows;
}

const rows = tableRows("docs/configuration.md");

test("the schema has keys to check (the walk reads it)", () => {
  const keys = new Map(configKeys());
  assert.ok(keys.size > 50, `${keys.size} keys`);
  assert.equal(keys.get("limits.max_sessions"), 2000);
  assert.equal(keys.get("mcp.servers.<name>.read_timeout_seconds"), 60);
});

test("every config key has a row in docs/configuration.md", () => {
  const missing = configKeys()
    .map(([key]) => key)
    .filter((key) => !rows.has(key));
  assert.deepEqual(missing, [], "add these keys to the table in docs/configuration.md");
});

test("every row of a key with a default shows that default", () => {
  const wrong = configKeys()
    .filter(([key, value]) => value !== undefined && rows.has(key))
    .filter(([key, value]) => {
      const shown = rows.get(key) ?? "";
      const expected = typeof value === "string" ? value : JSON.stringify(value);
      return !shown.includes(expected);
    })
    .map(([key, value]) => `${key}: schema says ${JSON.stringify(value)}, the document says ${rows.get(key)}`);
  assert.deepEqual(wrong, []);
});

test("no row names a key the schema does not have", () => {
  const known = new Set(configKeys().map(([key]) => key));
  // $schema and execution_engine are mcp-agent's own keys, accepted and ignored.
  const extra = [...rows.keys()].filter(
    (key) => !known.has(key) && !["$schema", "execution_engine"].includes(key) && !/^[A-Z_]+$/.test(key),
  );
  assert.deepEqual(extra, []);
});

test("the README's short table shows the schema's defaults and only real keys", () => {
  const keys = new Map(configKeys());
  const readme = tableRows("README.md");
  assert.ok(readme.size >= 5, `${readme.size} rows`);
  for (const [key, shown] of readme) {
    assert.ok(keys.has(key), `README names ${key}, which the schema does not have`);
    const value = keys.get(key);
    if (value !== undefined) assert.ok(shown.includes(typeof value === "string" ? value : JSON.stringify(value)), `${key}: ${shown}`);
  }
});

describe("documentation", () => {
  test("docs/configuration.md lists every key of the schema, the new ones included", () => {
    const doc = readFileSync(path.join(ROOT, "docs/configuration.md"), "utf8");
    const leaves = (value: unknown, prefix: string): string[] =>
      typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length > 0
        ? Object.entries(value).flatMap(([key, child]) => leaves(child, prefix ? `${prefix}.${key}` : key))
        : [prefix];
    // Keys with a default, plus the optional ones this issue added (they have none).
    const keys = [...leaves(configDefaults(), ""), "openai.max_tokens", "openai.user", "agent.max_context_tokens", "limits.tokens_per_day"];
    const missing = keys.filter((key) => !doc.includes(`\`${key}\``));
    assert.deepEqual(missing, [], "keys missing from docs/configuration.md");
    assert.ok(doc.includes("mcp-agent.secrets.yaml"));
  });

  test("docs/protocol.md describes the answer frame's usage; docs/operations.md the metrics; the README stays under 15 KB", () => {
    assert.match(readFileSync(path.join(ROOT, "docs/protocol.md"), "utf8"), /"usage"/);
    assert.match(readFileSync(path.join(ROOT, "docs/operations.md"), "utf8"), /mcp_agent_turns_total/);
    assert.ok(statSync(path.join(ROOT, "README.md")).size <= 15 * 1024);
  });
});
