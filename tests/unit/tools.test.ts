// Pure decisions: MCP tool names and arguments (lib/mcp/tools.ts), the history cap
// (lib/store/history.ts) and the idle sweep (session.ts idleSessionIds).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseToolArguments } from "../../agent.ts";
import { buildToolCatalog, toolNameFor } from "../../lib/mcp/tools.ts";
import { trimHistory, historyItems, type HistoryEntry } from "../../lib/store/history.ts";
import { idleSessionIds } from "../../session.ts";
import type { ChatMessage } from "../../lib/agent/types.ts";

const VALID = /^[a-zA-Z0-9_-]{1,64}$/;
const schema = { type: "object", properties: {} };

test("tools are named <server>_<tool> as in the original", () => {
  const { tools, routes } = buildToolCatalog([
    { server: "filesystem", tools: [{ name: "read_file", description: "Read a file", inputSchema: schema }] },
    { server: "fetch", tools: [{ name: "fetch", inputSchema: schema }] },
  ]);
  assert.deepEqual(
    tools.map((tool) => tool.function.name),
    ["filesystem_read_file", "fetch_fetch"],
  );
  assert.equal(tools[0]?.function.description, "Read a file");
  assert.deepEqual(tools[0]?.function.parameters, schema);
  assert.deepEqual(routes.get("fetch_fetch"), { server: "fetch", tool: "fetch" });
});

test("names are made valid for OpenAI, deterministically and without collisions", () => {
  const servers = [
    {
      server: "my server",
      tools: [
        { name: "read.file", inputSchema: schema },
        { name: "read file", inputSchema: schema },
      ],
    },
    { server: "a", tools: [{ name: "b_c", inputSchema: schema }] },
    { server: "a_b", tools: [{ name: "c", inputSchema: schema }] },
    {
      server: "x".repeat(40),
      tools: [
        { name: "y".repeat(40), inputSchema: schema },
        { name: `${"y".repeat(40)}z`, inputSchema: schema },
      ],
    },
    { server: "ü", tools: [{ name: "ö", inputSchema: schema }] },
  ];
  const first = buildToolCatalog(servers);
  const names = first.tools.map((tool) => tool.function.name);
  for (const name of names) assert.match(name, VALID);
  assert.equal(new Set(names).size, names.length, `collision in ${names.join(", ")}`);
  assert.deepEqual(
    buildToolCatalog(servers).tools.map((tool) => tool.function.name),
    names,
    "same input, same names",
  );
  // Every name routes back to the tool it was made from.
  const routed = names.map((name) => first.routes.get(name));
  assert.deepEqual(
    routed,
    servers.flatMap(({ server, tools }) => tools.map((tool) => ({ server, tool: tool.name }))),
  );
  assert.equal(toolNameFor("a", "b", new Set()), "a_b");
});

test("tool arguments: JSON objects pass, anything else is explained", () => {
  assert.deepEqual(parseToolArguments('{"path": "a.txt"}'), { ok: true, args: { path: "a.txt" } });
  assert.deepEqual(parseToolArguments(""), { ok: true, args: {} });
  const broken = parseToolArguments("{path: a.txt");
  assert.equal(broken.ok, false);
  assert.match(broken.ok ? "" : broken.error, /not valid JSON/);
  const list = parseToolArguments("[1]");
  assert.match(list.ok ? "" : list.error, /must be a JSON object/);
});

function entry(message: ChatMessage, turnId = "t"): HistoryEntry {
  return { turnId, message };
}

test("the history cap keeps the newest messages and never orphans a tool result", () => {
  const call = { id: "c1", type: "function" as const, function: { name: "x_y", arguments: "{}" } };
  const entries = [
    entry({ role: "user", content: "u1" }),
    entry({ role: "assistant", content: "a1" }),
    entry({ role: "user", content: "u2" }),
    entry({ role: "assistant", content: null, tool_calls: [call] }),
    entry({ role: "tool", tool_call_id: "c1", content: "r" }),
    entry({ role: "assistant", content: "a2" }),
  ];
  assert.equal(trimHistory(entries, 10).length, 6);
  // A cut at 3 would start at the tool result: it moves forward to the next user message instead.
  for (const max of [2, 3, 4]) {
    const kept = trimHistory(entries, max);
    assert.ok(kept.length <= max);
    assert.ok(kept.length === 0 || kept[0]?.message.role === "user", `max ${max} starts with ${kept[0]?.message.role}`);
    assert.ok(!kept.some((e) => e.message.role === "tool") || kept.some((e) => e.message.role === "assistant" && e.message.tool_calls));
  }
  assert.deepEqual(
    trimHistory(entries, 4).map((e) => e.message.content),
    ["u2", null, "r", "a2"],
  );
});

test("history items pair each tool call with its result", () => {
  const call = { id: "c1", type: "function" as const, function: { name: "fs_read", arguments: '{"path":"a"}' } };
  const items = historyItems([
    { turnId: "t1", message: { role: "user", content: "read a" }, status: "ok" },
    { turnId: "t1", message: { role: "assistant", content: null, tool_calls: [call] } },
    {
      turnId: "t1",
      message: { role: "tool", tool_call_id: "c1", content: "hello" },
      tool: { name: "fs_read", server: "fs", tool: "read", ok: true },
    },
    { turnId: "t1", message: { role: "assistant", content: "It says hello" } },
  ]);
  assert.deepEqual(items, [
    { role: "user", turn_id: "t1", content: "read a", status: "ok" },
    {
      role: "tool",
      turn_id: "t1",
      call_id: "c1",
      name: "fs_read",
      server: "fs",
      tool: "read",
      arguments: { path: "a" },
      ok: true,
      preview: "hello",
    },
    { role: "assistant", turn_id: "t1", content: "It says hello" },
  ]);
});

test("the sweep picks sessions with no socket, no running turn, idle longer than the timeout", () => {
  const now = 1_000_000;
  const idle = idleSessionIds(
    [
      { userId: "idle", openSockets: 0, busy: false, lastActivity: now - 5001 },
      { userId: "recent", openSockets: 0, busy: false, lastActivity: now - 4999 },
      { userId: "connected", openSockets: 1, busy: false, lastActivity: now - 99999 },
      { userId: "busy", openSockets: 0, busy: true, lastActivity: now - 99999 },
    ],
    now,
    5000,
  );
  assert.deepEqual(idle, ["idle"]);
});
