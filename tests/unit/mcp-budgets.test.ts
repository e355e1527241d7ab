// Budgets on what an MCP server sends (a stdio line, elicitation strings, the notification rate)
// and the bounded label sets of /metrics: each against the real module, a real child for stdio.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ProcessGroupStdioTransport } from "../../lib/mcp/stdio-transport.ts";
import { elicitationFields } from "../../lib/mcp/elicitation.ts";
import { cutLogData, RateBucket } from "../../lib/mcp/budgets.ts";
import { BoundedLabels, Metrics } from "../../lib/metrics/metrics.ts";

test("a stdio line past its cap fails the waiting call and stops the child, naming limits.mcp_max_message_bytes", async () => {
  // Answers our request with a line of 5 MB.
  const script =
    "process.stdin.once('data', () => process.stdout.write('x'.repeat(5 * 1024 * 1024) + '\\n')); setInterval(() => {}, 1000);";
  const transport = new ProcessGroupStdioTransport({ command: process.execPath, args: ["-e", script], env: {}, maxLineBytes: 1024 * 1024 });
  const errors: string[] = [];
  const closed = new Promise<void>((resolve) => (transport.onclose = resolve));
  transport.onerror = (error) => errors.push(error.message);
  const messages: unknown[] = [];
  transport.onmessage = (message) => messages.push(message);
  await transport.start();
  await transport.send({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "big" } });
  await closed;
  const text = "the MCP server sent a message larger than 1048576 bytes (limits.mcp_max_message_bytes)";
  assert.deepEqual(errors, [text]);
  assert.deepEqual(messages, [{ jsonrpc: "2.0", id: 7, error: { code: -32603, message: text } }]);
});

test("every string of an elicitation form is cut, and a form past its budget is refused naming the key", () => {
  const big = "b".repeat(10_000);
  const parsed = elicitationFields({
    type: "object",
    properties: {
      pick: { type: "string", title: big, description: big, default: big, enum: [big, "short"], enumNames: [big, "Short"] },
      many: { type: "array", items: { anyOf: [{ const: big, title: big }] }, default: [big] },
    },
  });
  assert.ok(parsed.ok);
  const longest = Math.max(
    ...JSON.stringify(parsed.fields)
      .match(/"[^"]*"/g)!
      .map((text) => text.length - 2),
  );
  assert.equal(longest, 500);
  const options = Array.from({ length: 150 }, (_, n) => ({ const: `${n}${big}`, title: `${n}${big}` }));
  const refused = elicitationFields({ type: "object", properties: { pick: { type: "string", oneOf: options } } });
  assert.equal(refused.ok, false);
  assert.match(refused.ok ? "" : refused.error, /at most 64000 \(limits\.mcp_max_elicitation_chars\)/);
  const long = elicitationFields({ type: "object", properties: { [big]: { type: "string" } } });
  assert.deepEqual(long, { ok: false, error: "a field name is 10000 characters; at most 200" });
});

test("notifications pass at their burst, then at their rate; log data is cut", () => {
  const bucket = new RateBucket(10, 5);
  const passed = Array.from({ length: 20 }, () => bucket.take(1000)).filter(Boolean).length;
  assert.equal(passed, 5);
  assert.equal(bucket.take(1100), true, "one more after a tenth of a second at 10 per second");
  assert.equal(bucket.take(1100), false);
  assert.equal(cutLogData("short", 10), "short");
  assert.equal(cutLogData({ a: "x".repeat(100) }, 10), '{"a":"xxxx… [cut: 108 characters]');
});

test("metric labels: invented tools are one label, and every label set is bounded", async () => {
  const labels = new BoundedLabels(3);
  assert.deepEqual(
    ["a", "b", "c", "d", "a", "x".repeat(500)].map((value) => labels.of(value)),
    ["a", "b", "c", "other", "a", "other"],
  );
  const metrics = new Metrics({ liveSessions: () => 0, storedSessions: async () => 0, openSockets: () => 0, mcpServerStates: () => [] });
  for (let n = 0; n < 2000; n++) metrics.toolCall("", `invented_${n}_${"n".repeat(100)}`, "error");
  for (let n = 0; n < 2000; n++) metrics.toolCall("hostile", `tool_${n}`, "ok");
  const text = await metrics.scrape();
  assert.match(text, /mcp_agent_tool_calls_total\{server="unknown",tool="unknown",outcome="error"\} 2000/);
  assert.doesNotMatch(text, /invented_/);
  const series = text.split("\n").filter((line) => line.startsWith("mcp_agent_tool_calls_total{")).length;
  assert.ok(series <= 502, `${series} series`);
  assert.match(text, /server="other",tool="other",outcome="ok"\} 1500/);
});
