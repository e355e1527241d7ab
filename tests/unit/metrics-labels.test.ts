// The metrics' label sets are bounded whatever a model or an MCP server names: a made-up tool is
// one "unknown" series, and past a bound per server new tool names share the label "other".
import { test } from "node:test";
import assert from "node:assert/strict";
import { Metrics } from "../../lib/metrics/metrics.ts";

const sources = { liveSessions: () => 0, storedSessions: async () => 0, openSockets: () => 0, mcpServerStates: () => [] };
const toolSeries = (text: string) => text.split("\n").filter((line) => line.startsWith("mcp_agent_tool_calls_total{"));

test("tools a model invents are one series; endless tool names stay a bounded set of series", async () => {
  const metrics = new Metrics(sources);
  for (let n = 0; n < 5000; n++) metrics.toolCall("", `invented_tool_${n}_${"x".repeat(200)}`, "error");
  let series = toolSeries(await metrics.scrape());
  assert.deepEqual(series, ['mcp_agent_tool_calls_total{server="unknown",tool="unknown",outcome="error"} 5000']);

  // A hostile MCP server listing thousands of tools (with long names): at most 200 of its own, then "other".
  for (let n = 0; n < 3000; n++) metrics.toolCall("hostile", `tool_${n}_${"y".repeat(500)}`, "ok");
  metrics.toolCall("filesystem", "read_file", "ok");
  series = toolSeries(await metrics.scrape());
  assert.equal(series.filter((line) => line.includes('server="hostile"')).length, 201);
  assert.ok(
    series.every((line) => line.length < 300),
    "labels are cut",
  );
  assert.ok(series.some((line) => line.includes('server="hostile",tool="other"')));
  assert.ok(
    series.some((line) => line.includes('server="filesystem",tool="read_file"')),
    "another server keeps its own labels",
  );
  // Endless server names (user-added servers, say): at most 100 labels, then "other".
  for (let n = 0; n < 300; n++) metrics.toolCall(`server${n}`, "t", "ok");
  assert.ok(toolSeries(await metrics.scrape()).some((line) => line.includes('server="other",tool="t"')));
});
