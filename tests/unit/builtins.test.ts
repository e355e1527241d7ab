// lib/mcp/builtins.ts: when the built-in fetch stands in for the original's `uvx mcp-server-fetch`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadConfig } from "../../lib/config.ts";
import { usesBuiltinFetch } from "../../lib/mcp/builtins.ts";

test("the shipped config selects the built-in fetch and keeps the original's command", () => {
  const config = loadConfig("mcp_agent.config.yaml", {});
  const fetch = config.mcp.servers.fetch!;
  assert.equal(fetch.builtin, "fetch");
  assert.equal(fetch.command, "uvx");
  assert.equal(
    usesBuiltinFetch(fetch, () => true),
    "builtin",
  );
});

test("an original uvx entry is left alone when uvx exists", () => {
  const entry = loadConfig("mcp_agent.config.yaml", {}).mcp.servers.fetch!;
  const python = { ...entry, builtin: undefined };
  assert.equal(
    usesBuiltinFetch(python, () => true),
    false,
  );
  assert.equal(
    usesBuiltinFetch(python, () => false),
    "fallback",
  );
});
