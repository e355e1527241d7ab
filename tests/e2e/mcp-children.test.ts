// MCP children that crash, hang, flood or leave grandchildren behind. The hostile filesystem cases
// (against the npm server and the built-in alike) are in filesystem-hostile.test.ts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import {
  startModelServer,
  lastUserText,
  afterTool,
  type ModelServer,
  type ChatRequest,
  type ScriptedReply,
} from "../helpers/model-server.ts";
import {
  alive,
  ask,
  baseConfig,
  connect,
  connectUser,
  descendants,
  filesystemEntry,
  makeConfigDir,
  ROOT,
  spawnServer,
  startServer,
  TEST_MCP_SERVER,
  testServerEntry,
  until,
  type RunningServer,
  type TestClient,
} from "../helpers/harness.ts";

const API_KEY = "sk-hardening-mcp-SECRET-9f8e7d6c5b4a";

/** "CALL <tool> <json>" makes one tool call and then reports its result; anything else is echoed. */
function respond(request: ChatRequest): ScriptedReply {
  if (afterTool(request)) return { content: `RESULT ${String(request.messages.at(-1)?.content)}` };
  const text = lastUserText(request);
  const found = /^CALL (\S+) (.*)$/s.exec(text);
  if (found?.[1] && found[2]) return { toolCalls: [{ name: found[1], arguments: found[2] }] };
  return { content: `echo: ${text}` };
}

const call = async (client: TestClient, tool: string, args: unknown = {}) => {
  const frame = await ask(client, `CALL ${tool} ${JSON.stringify(args)}`);
  return typeof frame.message === "string" ? frame.message : JSON.stringify(frame);
};

/** Alive and not a zombie (an orphan whose reaper has not collected it yet has exited). */
function running(pid: number): boolean {
  if (!alive(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

function processGroup(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {
    return "";
  }
}

interface ServerInfo {
  name: string;
  state: string;
  restarts: number;
  pid?: number;
  error?: string;
}
async function mcpServers(server: RunningServer | string, userId: string): Promise<Record<string, ServerInfo>> {
  const url = typeof server === "string" ? server : server.url;
  const response = await fetch(`${url}/sessions/${userId}`);
  assert.equal(response.status, 200);
  const body = (await response.json()) as { mcp_servers: ServerInfo[] };
  return Object.fromEntries(body.mcp_servers.map((info) => [info.name, info]));
}
/** A session's servers start with its first turn: one turn, then they are there. */
async function firstTurn(client: TestClient): Promise<void> {
  assert.equal((await ask(client, "hello")).message, "echo: hello");
}

async function settled(server: RunningServer | string, userId: string, timeoutMs = 15000): Promise<Record<string, ServerInfo>> {
  await until(
    async () => Object.values(await mcpServers(server, userId)).every((info) => info.state !== "starting"),
    `${userId}'s servers to start`,
    timeoutMs,
  );
  return mcpServers(server, userId);
}

let model: ModelServer;
/** The test fixture twice: `test` as is, `timed` with a short read timeout. */
let faults: RunningServer;
/** A stdio entry whose child starts a grandchild; idle sessions are swept quickly. */
let grouped: RunningServer;
/** The real filesystem server. */
let files: RunningServer;

function config(servers: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return baseConfig(model.baseUrl, servers, { ...extra, session: { store: "memory", ...(extra.session as object) } });
}

const GRANDCHILD = `"${process.execPath}" -e "setInterval(() => {}, 1e6)" </dev/null >/dev/null 2>&1 & exec "${process.execPath}" "${TEST_MCP_SERVER}"`;

before(async () => {
  model = await startModelServer({ responder: respond });
  const secrets = { openai: { api_key: API_KEY } };
  [faults, grouped, files] = await Promise.all([
    startServer({
      config: config(
        // Unsandboxed: these tests read pids and process groups from outside (mcp-sandbox.test.ts has the sandboxed ones).
        { test: { ...testServerEntry, sandbox: false }, timed: { ...testServerEntry, read_timeout_seconds: 2, sandbox: false } },
        { limits: { mcp_max_restarts: 1, max_tool_result_chars: 2000 } },
      ),
      secrets,
    }),
    startServer({
      config: config(
        { grouped: { command: "sh", args: ["-c", GRANDCHILD], sandbox: false } },
        { session: { idle_timeout_seconds: 0.3, sweep_interval_seconds: 0.1 } },
      ),
      secrets,
    }),
    startServer({
      config: config({ filesystem: filesystemEntry }, { limits: { messages_per_minute: 6000, message_burst: 100 } }),
      secrets,
    }),
  ]);
});

after(async () => {
  await Promise.all([faults, grouped, files].map((server) => server?.close()));
  await model?.close();
});

// ---- 8. MCP faults ------------------------------------------------------------------------------

test("a child that crashes mid-call is a tool error; the next call starts it again at once, then it is left failed", async () => {
  const { client } = await connectUser(faults, "crasher");
  try {
    await firstTurn(client);
    const timedBefore = (await settled(faults, "crasher")).timed;
    const firstPid = Number((await call(client, "test_pid")).replace(/^RESULT /, ""));
    assert.equal((await mcpServers(faults, "crasher")).test?.pid, firstPid);

    const crashed = await call(client, "test_crash");
    assert.match(crashed, /^RESULT Error: Tool "crash" on MCP server "test" failed: .*closed/i);
    let info = (await mcpServers(faults, "crasher")).test;
    assert.equal(info?.state, "exited");
    assert.equal(info?.restarts, 0);
    assert.match(String(info?.error), /exited/);
    await until(() => !running(firstPid), "the crashed child to be gone");
    // The other server of the session is untouched.
    assert.deepEqual((await mcpServers(faults, "crasher")).timed, timedBefore);

    // After a first crash there is no backoff: the very next call starts it again.
    const secondPid = Number((await call(client, "test_pid")).replace(/^RESULT /, ""));
    assert.ok(secondPid > 0 && secondPid !== firstPid, `restarted as ${secondPid}`);
    info = (await mcpServers(faults, "crasher")).test;
    assert.equal(info?.state, "ready");
    assert.equal(info?.restarts, 1);
    assert.equal(info?.pid, secondPid);

    // limits.mcp_max_restarts is 1: the next crash leaves it failed, with a clear error.
    assert.match(await call(client, "test_crash"), /^RESULT Error: .*closed/i);
    const refused = await call(client, "test_echo", { text: "again" });
    assert.match(
      refused,
      /^RESULT Error: MCP server "test" is not available \(failed: the server crashed and was restarted 1 time \(limits.mcp_max_restarts\); it is not started again\)/,
    );
    info = (await mcpServers(faults, "crasher")).test;
    assert.equal(info?.state, "failed");
    assert.equal(info?.restarts, 1);
    assert.match(String(info?.error), /restarted 1 time \(limits.mcp_max_restarts\); it is not started again/);
    // The session itself goes on.
    assert.equal((await ask(client, "still talking")).message, "echo: still talking");
    assert.deepEqual((await mcpServers(faults, "crasher")).timed, timedBefore, "the session's other server is untouched");
  } finally {
    await client.close();
  }
});

test("a tool call longer than read_timeout_seconds becomes a tool error; the server stays usable", async () => {
  const { client } = await connectUser(faults, "slowpoke");
  try {
    await firstTurn(client);
    assert.equal((await settled(faults, "slowpoke")).timed?.state, "ready");
    const reply = await call(client, "timed_slow", { ms: 30000 });
    assert.match(reply, /^RESULT Error: Tool "slow" on MCP server "timed" failed: .*timed out/i);
    assert.equal(await call(client, "timed_echo", { text: "after" }), "RESULT echo:after");
    assert.equal((await mcpServers(faults, "slowpoke")).timed?.state, "ready");
  } finally {
    await client.close();
  }
});

test("a tool result longer than limits.max_tool_result_chars is cut with a note", async () => {
  const { client } = await connectUser(faults, "flooder");
  try {
    await settled(faults, "flooder");
    await call(client, "test_big", { chars: 5000 });
    const toolMessage = model.requests.at(-1)?.messages.at(-1);
    assert.equal(toolMessage?.role, "tool");
    const content = String(toolMessage?.content);
    assert.ok(content.startsWith("x".repeat(2000)));
    assert.ok(!content.includes("x".repeat(2001)));
    assert.match(content, /\[result cut: 5000 characters, only the first 2000 are shown\]$/);
    // Under the limit: whole.
    await call(client, "test_big", { chars: 1999 });
    assert.equal(model.requests.at(-1)?.messages.at(-1)?.content, "x".repeat(1999));
  } finally {
    await client.close();
  }
});

test("a child leads its own process group; when the session is swept the whole group is killed", async () => {
  const { client } = await connectUser(grouped, "grouper");
  await firstTurn(client);
  const info = (await settled(grouped, "grouper")).grouped;
  assert.equal(info?.state, "ready", info?.error);
  const leader = info?.pid ?? 0;
  assert.ok(leader > 0);
  const kids = descendants(leader);
  assert.ok(kids.length >= 1, "the child started a grandchild");
  assert.equal(processGroup(leader), leader, "the child leads its own group");
  for (const kid of kids) assert.equal(processGroup(kid), leader, `${commandLine(kid)} is in the group`);
  assert.ok(kids.some((kid) => commandLine(kid).includes("setInterval")));
  await client.close();
  await until(() => grouped.server.sessions.get("grouper") === undefined, "the idle session to be swept");
  await until(() => [leader, ...kids].every((pid) => !running(pid)), "every process of the group to be gone");
});

test("SIGKILL of our server leaves no child running (npx and its grandchildren included)", async () => {
  const dir = makeConfigDir({
    config: baseConfig(
      model.baseUrl,
      {
        test: { ...testServerEntry, sandbox: false },
        // Spelled so that it is not resolved to `node <bin>`: a real npx, with sh and node under it
        // (run where it finds the package, unsandboxed so that its processes are ours to see).
        filesystem: { command: "npx", args: ["--no-install", "@modelcontextprotocol/server-filesystem"], cwd: ROOT, sandbox: false },
      },
      { session: { store: "memory" } },
    ),
    secrets: { openai: { api_key: API_KEY } },
  });
  const server = spawnServer(["--port", "0", "--config", path.join(dir, "mcp_agent.config.yaml")]);
  let client: TestClient | undefined;
  try {
    await server.ready;
    client = await connect(`${server.url.replace(/^http/, "ws")}/ws/victim`);
    await client.next();
    await firstTurn(client);
    const servers = await settled(server.url, "victim", 30000);
    assert.equal(servers.test?.state, "ready", servers.test?.error);
    assert.equal(servers.filesystem?.state, "ready", servers.filesystem?.error);
    const serverPid = server.child.pid ?? 0;
    const pids = descendants(serverPid);
    const lines = pids.map((pid) => `${pid} ${commandLine(pid)}`);
    const npx = servers.filesystem?.pid ?? 0;
    assert.match(commandLine(npx), /npm exec|npx/, lines.join("\n"));
    const underNpx = descendants(npx);
    assert.ok(
      underNpx.some((pid) => commandLine(pid).includes("server-filesystem") && !commandLine(pid).includes("npm exec")),
      `npx's grandchild: ${lines.join("\n")}`,
    );
    assert.ok(underNpx.length >= 2, `npx has a child and a grandchild: ${lines.join("\n")}`);
    server.child.kill("SIGKILL");
    await server.exited;
    await until(() => pids.every((pid) => !running(pid)), `every child to exit: ${lines.join("; ")}`, 15000);
  } finally {
    client?.ws.terminate();
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill("SIGKILL");
    await server.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- 10. The filesystem ---------------------------------------------------------------------------
