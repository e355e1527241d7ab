// Sessions outlive sockets, users are isolated (history and workspace), children get a minimal
// environment, the sweep frees children.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { startModelServer, lastUserText, toolDirective, type ModelServer, type ChatRequest } from "../helpers/model-server.ts";
import {
  alive,
  ask,
  baseConfig,
  connect,
  connectUser,
  filesystemEntry,
  startServer,
  testServerEntry,
  until,
  type RunningServer,
} from "../helpers/harness.ts";

let model: ModelServer;
let running: RunningServer;
let workspaceRoot: string;

interface SessionInfoBody {
  session_id: string;
  message_count: number;
  open_sockets: number;
  mcp_servers: { name: string; state: string; tools: number; pid?: number; error?: string }[];
}

async function sessionInfo(server: RunningServer, userId: string): Promise<SessionInfoBody> {
  const response = await fetch(`${server.url}/sessions/${userId}`);
  assert.equal(response.status, 200);
  return (await response.json()) as SessionInfoBody;
}

/** Scripted model: "CALL <tool> <json>" makes one tool call, then reports its result. */
function toolDirectives(request: ChatRequest) {
  return toolDirective(request) ?? { content: `echo: ${lastUserText(request)}` };
}

before(async () => {
  model = await startModelServer({ responder: toolDirectives });
  running = await startServer({
    // The test server unsandboxed: its pid (a tool's answer) is compared with the one /sessions reports.
    config: baseConfig(model.baseUrl, {
      filesystem: filesystemEntry,
      test: { ...testServerEntry, env: { FIXTURE_VAR: "set-by-config" }, sandbox: false },
    }),
    secrets: { openai: { api_key: "sk-test-session-secret" } },
  });
  workspaceRoot = path.join(running.configDir, "workspace");
});
after(async () => {
  await running.close();
  await model.close();
});

test("a disconnect does not end the session: reconnecting gets the same session_id and history", async () => {
  const first = await connectUser(running, "returning");
  await ask(first.client, "my name is Ada");
  await first.client.close();
  const second = await connectUser(running, "returning");
  assert.equal(second.welcome.session_id, first.welcome.session_id);
  await ask(second.client, "what is my name?");
  const contents = model.requests.at(-1)?.messages.map((m) => m.content);
  assert.ok(contents?.includes("my name is Ada"), "the model sees the turn from before the reconnect");
  await second.client.close();
});

test("several sockets of one user share the session; an answer goes only to the socket that asked", async () => {
  const a = await connectUser(running, "two_tabs");
  const b = await connectUser(running, "two_tabs");
  assert.equal(a.welcome.session_id, b.welcome.session_id);
  assert.equal((await sessionInfo(running, "two_tabs")).open_sockets, 2);
  assert.equal((await ask(a.client, "from a")).message, "echo: from a");
  assert.equal((await ask(b.client, "from b")).message, "echo: from b");
  // b received exactly its own answer: a's answer never reached it.
  assert.equal(b.client.frames.length, 2);
  assert.equal(a.client.frames.length, 2);
  await a.client.close();
  await b.client.close();
});

test("concurrent first connections of one user create exactly one session and one set of MCP children", async () => {
  const clients = await Promise.all(Array.from({ length: 8 }, () => connect(running.wsUrl("stampede"))));
  const welcomes = await Promise.all(clients.map((client) => client.next()));
  assert.equal(new Set(welcomes.map((w) => w.session_id)).size, 1);
  const sessions = (await (await fetch(`${running.url}/sessions`)).json()) as { active_sessions: string[] };
  assert.equal(sessions.active_sessions.filter((id) => id === "stampede").length, 1);
  // One process per server: ask the test server its pid through a tool (the first turn starts the
  // servers) and compare with the one reported.
  const reply = await ask(clients[0]!, "CALL test_pid {}");
  await until(async () => (await sessionInfo(running, "stampede")).mcp_servers.every((s) => s.state === "ready"), "servers ready");
  const info = await sessionInfo(running, "stampede");
  assert.equal(info.mcp_servers.length, 2);
  assert.equal(reply.message, `RESULT ${info.mcp_servers.find((s) => s.name === "test")?.pid}`);
  await Promise.all(clients.map((client) => client.close()));
});

test("a tool call writes a file into the user's own workspace", async () => {
  const { client } = await connectUser(running, "writer");
  const target = path.join(workspaceRoot, "writer", "notes.txt");
  const reply = await ask(client, `CALL filesystem_write_file ${JSON.stringify({ path: target, content: "hello from writer" })}`);
  assert.match(String(reply.message), /^RESULT .*(Successfully|wrote)/i);
  assert.equal(readFileSync(target, "utf8"), "hello from writer");
  await client.close();
});

test("a user cannot leave the workspace: other users' files, the config and the secrets stay out of reach", async () => {
  mkdirSync(path.join(workspaceRoot, "victim"), { recursive: true });
  writeFileSync(path.join(workspaceRoot, "victim", "private.txt"), "victim's secret");
  const { client } = await connectUser(running, "intruder");
  const attempts = [
    { path: path.join(workspaceRoot, "victim", "private.txt") },
    { path: path.join(workspaceRoot, "intruder", "..", "victim", "private.txt") },
    { path: "../victim/private.txt" },
    { path: path.join(running.configDir, "mcp_agent.secrets.yaml") },
    { path: path.join(running.configDir, "mcp_agent.config.yaml") },
    { path: "/etc/passwd" },
  ];
  for (const args of attempts) {
    const reply = String((await ask(client, `CALL filesystem_read_text_file ${JSON.stringify(args)}`)).message);
    assert.match(reply, /^RESULT Error: /, `${args.path} must be refused, got ${reply.slice(0, 200)}`);
    assert.doesNotMatch(reply, /victim's secret|sk-test-session-secret|root:x:0/);
  }
  const escape = path.join(workspaceRoot, "victim", "planted.txt");
  const write = String((await ask(client, `CALL filesystem_write_file ${JSON.stringify({ path: escape, content: "x" })}`)).message);
  assert.match(write, /^RESULT Error: /);
  assert.equal(existsSync(escape), false);
  await client.close();
});

test("two users are isolated: each sees only their own files and their own history", async () => {
  const alice = await connectUser(running, "alice");
  const bob = await connectUser(running, "bob");
  await ask(
    alice.client,
    `CALL filesystem_write_file ${JSON.stringify({ path: path.join(workspaceRoot, "alice", "a.txt"), content: "A" })}`,
  );
  await ask(alice.client, "alice's private thought");
  const listing = String(
    (await ask(bob.client, `CALL filesystem_list_directory ${JSON.stringify({ path: path.join(workspaceRoot, "bob") })}`)).message,
  );
  assert.doesNotMatch(listing, /a\.txt/);
  const messages = JSON.stringify(model.requests.at(-1)?.messages);
  assert.doesNotMatch(messages, /alice's private thought/);
  assert.notEqual(alice.welcome.session_id, bob.welcome.session_id);
  await alice.client.close();
  await bob.client.close();
});

test("children get a minimal environment: no API key, no other secrets, plus the entry's env", async () => {
  process.env.SOME_PARENT_SECRET = "parent-secret-value";
  try {
    const { client } = await connectUser(running, "env_checker");
    const reply = String((await ask(client, "CALL test_env {}")).message);
    const env = JSON.parse(reply.replace(/^RESULT /, "")) as Record<string, string>;
    assert.equal(env.FIXTURE_VAR, "set-by-config");
    assert.equal(env.OPENAI_API_KEY, undefined);
    assert.equal(env.SOME_PARENT_SECRET, undefined);
    assert.doesNotMatch(reply, /sk-test-session-secret/);
    assert.ok(
      // The SDK's safe variables, the child's own private folders (HOME is one of them), the entry's env.
      Object.keys(env).every(
        (key) =>
          ["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "TMPDIR", "FIXTURE_VAR"].includes(key) ||
          /^XDG_(CONFIG|DATA|CACHE|STATE)_HOME$/.test(key),
      ),
      Object.keys(env).join(","),
    );
    await client.close();
  } finally {
    delete process.env.SOME_PARENT_SECRET;
  }
});

test("children's stderr goes to our log, not to stdout", async () => {
  const { client } = await connectUser(running, "stderr_user");
  // Servers start with the first turn.
  await ask(client, "hello");
  await until(async () => (await sessionInfo(running, "stderr_user")).mcp_servers.every((s) => s.state === "ready"), "servers ready");
  await client.close();
  await until(
    () => existsSync(running.logPath) && readFileSync(running.logPath, "utf8").includes("test-mcp-server ready"),
    "stderr line in the log",
  );
  const line =
    readFileSync(running.logPath, "utf8")
      .split("\n")
      .find((l) => l.includes("test-mcp-server ready")) ?? "";
  assert.equal(JSON.parse(line).event, "mcp_server_stderr");
});

test("the idle sweep removes sessions with no socket and every child process exits", async () => {
  const sweeping = await startServer({
    config: baseConfig(
      model.baseUrl,
      { filesystem: filesystemEntry, test: testServerEntry },
      {
        session: { idle_timeout_seconds: 0.2, sweep_interval_seconds: 0.1 },
      },
    ),
    secrets: { openai: { api_key: "sk-test" } },
  });
  try {
    const kept = await connectUser(sweeping, "stays_connected");
    const { client } = await connectUser(sweeping, "goes_idle");
    // Servers start with the first turn.
    await ask(client, "hello");
    await until(async () => (await sessionInfo(sweeping, "goes_idle")).mcp_servers.every((s) => s.state === "ready"), "servers ready");
    const pids = (await sessionInfo(sweeping, "goes_idle")).mcp_servers.map((s) => s.pid ?? 0);
    assert.equal(pids.length, 2);
    assert.ok(pids.every((pid) => pid > 0 && alive(pid)));
    await client.close();
    const listed = async () => ((await (await fetch(`${sweeping.url}/sessions`)).json()) as { active_sessions: string[] }).active_sessions;
    await until(async () => !(await listed()).includes("goes_idle"), "session swept");
    // The sweep frees memory and children, not the stored conversation.
    const stored = (await (await fetch(`${sweeping.url}/sessions/goes_idle`)).json()) as { active: boolean; mcp_servers: unknown[] };
    assert.equal(stored.active, false);
    assert.deepEqual(stored.mcp_servers, []);
    await until(() => pids.every((pid) => !alive(pid)), "children gone");
    const sessions = (await (await fetch(`${sweeping.url}/sessions`)).json()) as { active_sessions: string[] };
    assert.deepEqual(sessions.active_sessions, ["stays_connected"], "a session with an open socket is never swept");
    await kept.client.close();
  } finally {
    await sweeping.close();
  }
});
