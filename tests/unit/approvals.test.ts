// lib/session/approvals.ts without a server: which tool calls wait for a person.
import { test } from "node:test";
import assert from "node:assert/strict";
import { requiresApproval } from "../../lib/session/approvals.ts";
import { loadConfig } from "../../lib/config.ts";

test("require_approval: never (default), always, or a list of tool names", () => {
  assert.equal(requiresApproval("never", "write_file"), false);
  assert.equal(requiresApproval("always", "read_file"), true);
  assert.equal(requiresApproval(["write_file", "move_file"], "write_file"), true);
  assert.equal(requiresApproval(["write_file"], "read_file"), false);
  const shipped = loadConfig("mcp_agent.config.yaml", {});
  assert.equal(shipped.mcp.servers.fetch?.require_approval, "never", "seed clients are unaffected by default");
});
