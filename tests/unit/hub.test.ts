// lib/mcp/hub.ts's pure decisions: how a config entry becomes a spawn, and when the built-in fetch
// stands in for the original's `uvx mcp-server-fetch`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadConfig } from "../../lib/config.ts";
import { stdioParamsFor, usesBuiltinFetch } from "../../lib/mcp/hub.ts";

test("the filesystem server gets the user's workspace appended at spawn; the config is never mutated", () => {
  const config = loadConfig("mcp_agent.config.yaml", {});
  const entry = config.mcp.servers.filesystem!;
  const before = [...entry.args];
  const alice = stdioParamsFor("filesystem", entry, "/ws/alice", [process.cwd()], config.configDir);
  const bob = stdioParamsFor("filesystem", entry, "/ws/bob", [process.cwd()], config.configDir);
  assert.equal(alice.args.at(-1), "/ws/alice");
  assert.equal(bob.args.at(-1), "/ws/bob");
  assert.equal(alice.args.filter((arg) => arg.startsWith("/ws/")).length, 1);
  assert.deepEqual(entry.args, before);
  // Other servers are left as configured.
  assert.deepEqual(stdioParamsFor("other", entry, "/ws/alice", [], config.configDir).args, before);
});

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
