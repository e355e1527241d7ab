// A hostile MCP server flooding notifications/message: our log takes at most the budget
// (limits.mcp_log_messages_per_minute, limits.mcp_log_burst), each line's data cut to
// limits.mcp_log_data_chars, the drops counted; the tool call still answers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import path from "node:path";
import { startModelServer, toolDirective } from "../helpers/model-server.ts";
import { ask, baseConfig, connectUser, readLog, ROOT, startServer, until } from "../helpers/harness.ts";

test("a server's log flood is held to the log budget, each line cut, the drops counted", async () => {
  const model = await startModelServer({ responder: (request) => toolDirective(request) ?? { content: "no directive" } });
  const running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { flood: { command: process.execPath, args: [path.join(ROOT, "tests/fixtures/log-flood-server.mjs")] } },
      {
        session: { store: "memory" },
        limits: {
          mcp_log_messages_per_minute: 60,
          mcp_log_burst: 20,
          mcp_log_data_chars: 100,
          messages_per_minute: 6000,
          message_burst: 500,
        },
      },
    ),
    secrets: { openai: { api_key: "sk-test-log-flood" } },
  });
  try {
    const { client } = await connectUser(running, "flooded");
    const answer = await ask(client, `CALL flood_flood ${JSON.stringify({ count: 2000, chars: 20_000 })}`);
    assert.equal(answer.message, "RESULT sent 2000");
    // 2000 messages of 20 KB: about 40 MB unbudgeted; the log got the burst, cut.
    await until(() => readLog(running.logPath).filter((line) => line.event === "mcp_server_log").length >= 20, "the burst to be logged");
    const lines = readLog(running.logPath).filter((line) => line.event === "mcp_server_log");
    assert.ok(lines.length <= 25, `${lines.length} lines`);
    for (const line of lines) assert.ok(String(line.data).length < 200 && String(line.data).includes("limits.mcp_log_data_chars"));
    assert.ok(statSync(running.logPath).size < 1024 * 1024, `${statSync(running.logPath).size} bytes of log`);
    // Lines logged once the bucket refills say how many were dropped before them, naming the key.
    const accounted = () => {
      const logged = readLog(running.logPath).filter((line) => line.event === "mcp_server_log");
      const dropped = logged.reduce(
        (sum, line) => sum + (line.dropped_by === "limits.mcp_log_messages_per_minute" ? Number(line.dropped_before) : 0),
        0,
      );
      return logged.length + dropped;
    };
    await until(async () => {
      await ask(client, `CALL flood_flood ${JSON.stringify({ count: 1, chars: 10 })}`);
      return accounted() >= 2000;
    }, "every message to be logged or counted as dropped");
    await client.close();
  } finally {
    await running.close();
    await model.close();
  }
});
