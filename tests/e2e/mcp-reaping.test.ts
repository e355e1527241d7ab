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
    // Unsandboxed: the child's own pid (a tool's answer) is watched from outside.
    config: baseConfig(model.baseUrl, { test: { ...testServerEntry, sandbox: false } }, { session: { mcp_idle_seconds: 0.3 } }),
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

test("a new session starts its servers on its first turn; a returning one on connect, up to limits.max_warm_sessions", async () => {
  const running = await startServer({
    config: baseConfig(model.baseUrl, { test: testServerEntry }, { limits: { max_warm_sessions: 1 } }),
    secrets: { openai: { api_key: "sk-test" } },
  });
  try {
    // Never chatted: no child on connect; the first turn starts it.
    const lazy = await connectUser(running, "lazy_user");
    assert.equal((await servers(running, "lazy_user"))[0]?.state, "stopped");
    assert.match(String((await ask(lazy.client, "pid")).message), /^RESULT \d+$/);
    assert.equal((await servers(running, "lazy_user"))[0]?.state, "ready");
    await lazy.client.close();
    // Swept from memory, it comes back as a returning user: warmed on connect.
    await running.server.sessions.sweep(Date.now() + 3 * 60 * 60 * 1000);
    const back = await connectUser(running, "lazy_user");
    await until(async () => (await servers(running, "lazy_user"))[0]?.state === "ready", "the returning session warm on connect");
    await back.client.close();
  } finally {
    await running.close();
  }
});
