// A stdio child in a crash loop is restarted a counted, capped number of times whatever else is in
// the user's config: a remote server that is down beside it, or an idle stop of the session's servers.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  afterTool,
  lastUserText,
  startModelServer,
  type ChatRequest,
  type ModelServer,
  type ScriptedReply,
} from "../helpers/model-server.ts";
import {
  ask,
  baseConfig,
  connectUser,
  descendants,
  ROOT,
  startServer,
  testServerEntry,
  until,
  type RunningServer,
  type TestClient,
} from "../helpers/harness.ts";

const CRASHING = path.join(ROOT, "tests/fixtures/crashing-mcp-server.mjs");

/** "CALL <tool> <json>" makes one tool call and then reports its result; anything else is echoed. */
function respond(request: ChatRequest): ScriptedReply {
  if (afterTool(request)) return { content: `RESULT ${String(request.messages.at(-1)?.content)}` };
  const text = lastUserText(request);
  const found = /^CALL (\S+) (.*)$/s.exec(text);
  if (found?.[1] && found[2]) return { toolCalls: [{ name: found[1], arguments: found[2] }] };
  return { content: `echo: ${text}` };
}

async function call(client: TestClient, tool: string, args: unknown = {}): Promise<string> {
  const frame = await ask(client, `CALL ${tool} ${JSON.stringify(args)}`);
  return typeof frame.message === "string" ? frame.message : JSON.stringify(frame);
}

interface ServerInfo {
  name: string;
  state: string;
  restarts: number;
  error?: string;
}
async function mcpServers(running: RunningServer, userId: string): Promise<Record<string, ServerInfo>> {
  const response = await fetch(`${running.url}/sessions/${userId}`);
  assert.equal(response.status, 200);
  const body = (await response.json()) as { mcp_servers: ServerInfo[] };
  return Object.fromEntries(body.mcp_servers.map((info) => [info.name, info]));
}

/** The crashing fixture with its own markers folder: each start of it leaves one file there. */
function crashingChild(): {
  entry: { command: string; args: string[]; sandbox: boolean };
  starts: () => number;
  running: () => number[];
  remove: () => void;
} {
  const markers = mkdtempSync(path.join(tmpdir(), "mcp-crash-markers-"));
  return {
    // Unsandboxed: it counts its starts in a folder of the test's, which a sandbox would not let it write.
    entry: { command: process.execPath, args: [CRASHING, markers], sandbox: false },
    starts: () => readdirSync(markers).filter((name) => name.startsWith("start-")).length,
    // Processes of ours still running this very fixture (its markers folder is on its command line).
    running: () =>
      descendants(process.pid).filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(markers);
        } catch {
          return false;
        }
      }),
    remove: () => rmSync(markers, { recursive: true, force: true }),
  };
}

/** An address where nothing listens: connecting to it is refused. */
async function refusedUrl(): Promise<string> {
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const { port } = listener.address() as net.AddressInfo;
  await new Promise((resolve) => listener.close(resolve));
  return `http://127.0.0.1:${port}/mcp`;
}

/** The error of a child left failed at the cap, as the user reads it. */
const CAPPED = (times: number) =>
  new RegExp(`the server crashed and was restarted ${times} times? \\(limits\\.mcp_max_restarts\\); it is not started again`);

let model: ModelServer;

before(async () => {
  model = await startModelServer({ responder: respond });
});
after(() => model.close());

test("with a remote server down beside it, a child that crashes four times is restarted three times (limits.mcp_max_restarts), then stays down", async () => {
  const crashing = crashingChild();
  const running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { down: { transport: "streamable_http", url: await refusedUrl() }, crashy: crashing.entry, test: testServerEntry },
      { session: { store: "memory" }, limits: { mcp_max_restarts: 3, messages_per_minute: 600, message_burst: 100 } },
    ),
    secrets: { openai: { api_key: "sk-test-restarts" } },
  });
  try {
    const { client } = await connectUser(running, "looper");
    // Each turn tries the remote server again (it is down); the crashed child is restarted only by
    // the call to it, counted, after a backoff (0 s, then 1 s, then 2 s).
    for (let crash = 1; crash <= 4; crash++) {
      assert.match(await call(client, "crashy_boom"), /^RESULT Error: Tool "boom" on MCP server "crashy" failed: .*closed/i);
      assert.equal(crashing.starts(), crash, `started ${crash} times by crash ${crash}`);
      const servers = await mcpServers(running, "looper");
      assert.equal(servers.crashy?.state, "exited");
      assert.equal(servers.crashy?.restarts, crash - 1);
      assert.equal(servers.down?.state, "failed");
      assert.equal(await call(client, "test_echo", { text: `between ${crash}` }), `RESULT echo:between ${crash}`);
    }

    // The cap is reached: the next call says so, and the child is not started again.
    const refused = await call(client, "crashy_ping");
    assert.match(refused, /^RESULT Error: MCP server "crashy" is not available \(failed: /);
    assert.match(refused, CAPPED(3));
    for (const message of ["hello", "and again"]) assert.equal((await ask(client, message)).message, `echo: ${message}`);
    assert.equal(await call(client, "test_echo", { text: "still here" }), "RESULT echo:still here");
    const offered = model.requests.at(-1)?.tools?.map((tool) => tool.function.name) ?? [];
    assert.ok(offered.includes("test_echo"), offered.join(", "));
    assert.ok(!offered.includes("crashy_ping"), `a failed server's tools are not offered: ${offered.join(", ")}`);
    assert.match(await call(client, "crashy_ping"), /^RESULT Error: Unknown tool "crashy_ping"/);

    const servers = await mcpServers(running, "looper");
    assert.equal(servers.crashy?.state, "failed");
    assert.equal(servers.crashy?.restarts, 3);
    assert.match(String(servers.crashy?.error), CAPPED(3));
    assert.equal(servers.down?.state, "failed");
    assert.ok(servers.down?.error, "the remote server says why it is down");
    assert.equal(servers.test?.state, "ready");
    assert.equal(crashing.starts(), 4, "four starts: the first and three restarts");
    await until(() => crashing.running().length === 0, "no process of the crashing child to be left");
    await client.close();
  } finally {
    await running.close();
    crashing.remove();
  }
});

test("an idle stop of the session's servers does not start a child left failed at the cap again", async () => {
  const crashing = crashingChild();
  const running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { crashy: crashing.entry, test: testServerEntry },
      { session: { store: "memory", mcp_idle_seconds: 0.3 }, limits: { mcp_max_restarts: 1 } },
    ),
    secrets: { openai: { api_key: "sk-test-restarts-idle" } },
  });
  try {
    const { client } = await connectUser(running, "idler");
    assert.match(await call(client, "crashy_boom"), /closed/i);
    assert.match(await call(client, "crashy_boom"), /closed/i);
    assert.match(await call(client, "crashy_ping"), CAPPED(1));
    assert.equal(crashing.starts(), 2);

    // No turn for a while: the session's servers are stopped to free their processes.
    await until(async () => (await mcpServers(running, "idler")).test?.state === "stopped", "the idle servers to be stopped");
    assert.equal((await mcpServers(running, "idler")).crashy?.state, "failed");
    // The next turn starts the stopped servers again, not the failed one.
    assert.equal(await call(client, "test_echo", { text: "back" }), "RESULT echo:back");
    const servers = await mcpServers(running, "idler");
    assert.equal(servers.crashy?.state, "failed");
    assert.equal(servers.crashy?.restarts, 1);
    assert.match(String(servers.crashy?.error), CAPPED(1));
    assert.equal(crashing.starts(), 2, "not started again");
    await client.close();
  } finally {
    await running.close();
    crashing.remove();
  }
});
