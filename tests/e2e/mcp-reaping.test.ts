// Idle MCP reaping and lazy starts beyond limits.max_warm_sessions.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startModelServer, lastUserText, afterTool, type ModelServer } from "../helpers/model-server.ts";
import { alive, ask, baseConfig, connectUser, startServer, testServerEntry, until, type RunningServer } from "../helpers/harness.ts";

let model: ModelServer;

before(async () => {
  model = await startModelServer({
    responder: (request) =>
      afterTool(request)
        ? { content: `RESULT ${String(request.messages.at(-1)?.content)}` }
        : lastUserText(request) === "pid"
          ? { toolCalls: [{ name: "test_pid", arguments: {} }] }
          : { content: `echo: ${lastUserText(request)}` },
  });
});
after(() => model.close());

async function servers(running: RunningServer, userId: string): Promise<{ state: string; pid?: number }[]> {
  const body = (await (await fetch(`${running.url}/sessions/${userId}`)).json()) as { mcp_servers: { state: string; pid?: number }[] };
  return body.mcp_servers;
}

test("a session whose tools are idle stops its children and starts them again on its next turn, history kept", async () => {
  const running = await startServer({
    config: baseConfig(model.baseUrl, { test: testServerEntry }, { session: { mcp_idle_seconds: 0.3 } }),
    secrets: { openai: { api_key: "sk-test" } },
  });
  try {
    const { client, welcome } = await connectUser(running, "reaped");
    const firstPid = Number(String((await ask(client, "pid")).message).replace("RESULT ", ""));
    assert.ok(alive(firstPid));
    await until(() => !alive(firstPid), "idle child stopped", 10_000);
    assert.equal((await servers(running, "reaped"))[0]?.state, "stopped");
    const again = await ask(client, "pid");
    const secondPid = Number(String(again.message).replace("RESULT ", ""));
    assert.notEqual(secondPid, firstPid);
    assert.ok(alive(secondPid));
    assert.equal(again.session_id, welcome.session_id);
    const contents = model.requests.at(-1)?.messages.map((m) => m.content);
    assert.ok(contents?.includes(`RESULT ${firstPid}`), "the turn before the stop is still in the history");
    await client.close();
  } finally {
    await running.close();
  }
});

test("beyond limits.max_warm_sessions, a new session starts its servers on its first turn instead of on connect", async () => {
  const running = await startServer({
    config: baseConfig(model.baseUrl, { test: testServerEntry }, { limits: { max_warm_sessions: 1 } }),
    secrets: { openai: { api_key: "sk-test" } },
  });
  try {
    const warm = await connectUser(running, "warm_user");
    await until(async () => (await servers(running, "warm_user"))[0]?.state === "ready", "first session warm");
    const lazy = await connectUser(running, "lazy_user");
    assert.equal((await servers(running, "lazy_user"))[0]?.state, "stopped");
    assert.match(String((await ask(lazy.client, "pid")).message), /^RESULT \d+$/);
    assert.equal((await servers(running, "lazy_user"))[0]?.state, "ready");
    await warm.client.close();
    await lazy.client.close();
  } finally {
    await running.close();
  }
});
