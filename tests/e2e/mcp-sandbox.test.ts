// A hostile stdio server in bubblewrap: it tries to read another user's workspace, the database,
// the secrets file, our server's environment; to write outside its folders; to fork and allocate
// without end; to reach a local port with the network off. Each attempt fails, the server keeps
// answering, and another user's session is untouched. A server with `sandbox: false` shows the
// same attempts succeed without the sandbox, so the tests can fail.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { findExecutable, externalSkip } from "../helpers/external.ts";
import { startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";
import {
  alive,
  ask,
  baseConfig,
  connectUser,
  descendants,
  readLog,
  ROOT,
  startServer,
  until,
  type RunningServer,
  type TestClient,
} from "../helpers/harness.ts";

const BWRAP = findExecutable("BWRAP_PATH", ["/usr/bin/bwrap", "bwrap"]);
const skip = externalSkip("bwrap", BWRAP, "bubblewrap");

const HOSTILE = path.join(ROOT, "tests/fixtures/hostile-mcp-server.mjs");
const API_KEY = "sk-sandbox-test-SECRET-0123456789";
const hostile = (extra: Record<string, unknown> = {}) => ({ command: process.execPath, args: [HOSTILE], ...extra });

let model: ModelServer;
let running: RunningServer;
/** Files another user, and our server, keep: the sandboxed child must not see any of them. */
let bobSecret: string;
let database: string;
let secretsFile: string;
let configFile: string;

before(async () => {
  if (skip) return;
  model = await startModelServer({ responder: (request) => toolDirective(request) ?? { content: `echo: ${request.messages.length}` } });
  const config = baseConfig(model.baseUrl, {
    jail: hostile({ network: false, limits: { processes: 64, memory_mb: 256 } }),
    online: hostile({ network: true }),
    burner: hostile({ limits: { cpu_seconds: 1 } }),
    open: hostile({ sandbox: false }),
  });
  running = await startServer({
    secrets: { openai: { api_key: API_KEY } },
    config: {
      ...config,
      mcp: { ...config.mcp, sandbox: "required", bwrap_path: BWRAP },
      limits: { messages_per_minute: 6000, message_burst: 200 },
    },
  });
  bobSecret = path.join(running.configDir, "workspace/bob/diary.txt");
  mkdirSync(path.dirname(bobSecret), { recursive: true, mode: 0o700 });
  writeFileSync(bobSecret, "bob's secret diary");
  database = path.join(running.configDir, "data/sessions.db");
  secretsFile = path.join(running.configDir, "mcp_agent.secrets.yaml");
  configFile = path.join(running.configDir, "mcp_agent.config.yaml");
});

after(async () => {
  await running?.close();
  await model?.close();
});

async function call(client: TestClient, tool: string, args: unknown = {}): Promise<string> {
  const frame = await ask(client, `CALL ${tool} ${JSON.stringify(args)}`);
  return String(frame.message ?? JSON.stringify(frame)).replace(/^RESULT /, "");
}

async function serverInfo(user: string, name: string): Promise<{ state: string; error?: string; restarts: number; pid?: number }> {
  const body = (await (await fetch(`${running.url}/sessions/${user}`)).json()) as {
    mcp_servers: { name: string; state: string; error?: string; restarts: number; pid?: number }[];
  };
  const info = body.mcp_servers.find((server) => server.name === name);
  assert.ok(info, `${name} in /sessions/${user}`);
  return info;
}

test("without the sandbox (sandbox: false) the same child reads another user's files and the secrets", { skip }, async () => {
  const { client } = await connectUser(running, "mallory");
  try {
    assert.match(await call(client, "open_read", { path: bobSecret }), /^OK bob's secret diary/);
    assert.match(await call(client, "open_read", { path: secretsFile }), new RegExp(`^OK openai`));
  } finally {
    await client.close();
  }
});

test("in the sandbox another user's workspace, the database, the config, the secrets and the logs are not there", { skip }, async () => {
  const { client } = await connectUser(running, "alice");
  try {
    for (const file of [bobSecret, database, secretsFile, configFile, running.logPath]) {
      assert.equal(await call(client, "jail_read", { path: file }), "DENIED ENOENT", file);
    }
    // The workspace root holds only alice's own folder; the data folder only her private one.
    assert.equal(await call(client, "jail_list", { path: path.join(running.configDir, "workspace") }), "OK alice");
    assert.equal(await call(client, "jail_list", { path: path.join(running.configDir, "data") }), "OK users");
    assert.equal(await call(client, "jail_list", { path: running.configDir }), "OK data,workspace");
    assert.equal(await call(client, "jail_read", { path: "/etc/shadow" }), "DENIED ENOENT");
    assert.equal(await call(client, "jail_read", { path: "/root/.npmrc" }), "DENIED ENOENT");
  } finally {
    await client.close();
  }
});

test("in the sandbox /proc shows only the child's own processes: our server's environment is out of reach", { skip }, async () => {
  const { client } = await connectUser(running, "alice");
  try {
    const seen = JSON.parse(await call(client, "jail_whoami")) as { pid: number; pids: string[] };
    assert.ok(seen.pids.length <= 3, `pids: ${seen.pids.join(",")}`);
    assert.ok(seen.pid < 10, `its own pid inside: ${seen.pid}`);
    const environ = await call(client, "jail_read", { path: `/proc/${process.pid}/environ` });
    assert.ok(!environ.includes(API_KEY) && environ.startsWith("DENIED"), environ);
    // Outside the sandbox the same read works (our test process is the server's process here).
    assert.match(await call(client, "open_read", { path: `/proc/${process.pid}/environ` }), /^OK /);
  } finally {
    await client.close();
  }
});

test("in the sandbox only the user's workspace and the server's private folder are writable", { skip }, async () => {
  const { client } = await connectUser(running, "alice");
  try {
    const own = path.join(running.configDir, "data/users/alice/servers/jail");
    assert.equal(
      await call(client, "jail_write", { path: path.join(running.configDir, "workspace/alice/note.txt"), text: "mine" }),
      "OK written",
    );
    assert.equal(await call(client, "jail_write", { path: path.join(own, "state.json"), text: "{}" }), "OK written");
    for (const target of ["/usr/evil", "/etc/evil", "/evil", path.join(ROOT, "node_modules/evil"), HOSTILE]) {
      assert.match(await call(client, "jail_write", { path: target, text: "x" }), /^DENIED (EROFS|EACCES|ENOENT|EPERM)/, target);
    }
    assert.match(await call(client, "jail_write", { path: bobSecret, text: "overwritten" }), /^DENIED/);
    assert.match(await call(client, "jail_write", { path: database, text: "x" }), /^DENIED/);
  } finally {
    await client.close();
  }
});

test("a fork bomb and an endless allocation fail inside the child; it and other users carry on", { skip }, async () => {
  const { client } = await connectUser(running, "alice");
  const bob = (await connectUser(running, "bob")).client;
  try {
    const bomb = await call(client, "jail_forkbomb", { n: 5000 });
    const started = Number(/^STARTED (\d+) FAILED (\S+)/.exec(bomb)?.[1] ?? "NaN");
    assert.match(bomb, /FAILED EAGAIN/, bomb);
    assert.ok(started < 64, bomb);
    const memory = await call(client, "jail_allocate", { mb: 8192 });
    const reached = Number(/^ALLOCATED (\d+)/.exec(memory)?.[1] ?? "NaN");
    assert.ok(reached < 256 && !memory.endsWith("FAILED none"), memory);
    // The same child still answers, and bob's session never noticed.
    assert.equal(await call(client, "jail_read", { path: "/nonexistent" }), "DENIED ENOENT");
    assert.equal((await serverInfo("alice", "jail")).restarts, 0);
    assert.match(await call(bob, "jail_write", { path: path.join(running.configDir, "workspace/bob/ok.txt"), text: "fine" }), /^OK/);
  } finally {
    await client.close();
    await bob.close();
  }
});

test("with network: false the child cannot connect to a local port; with network: true it can", { skip }, async () => {
  const { client } = await connectUser(running, "alice");
  try {
    const port = Number(new URL(model.baseUrl).port);
    assert.match(await call(client, "jail_connect", { host: "127.0.0.1", port }), /^DENIED (ECONNREFUSED|ENETUNREACH)/);
    assert.equal(await call(client, "online_connect", { host: "127.0.0.1", port }), "OK connected");
  } finally {
    await client.close();
  }
});

test("a child over its CPU time is stopped; the user reads why, and the restart rules apply", { skip }, async () => {
  const { client } = await connectUser(running, "alice");
  try {
    const burnt = await call(client, "burner_burn");
    assert.match(burnt, /CPU time.*mcp\.servers\.burner\.limits\.cpu_seconds/, burnt);
    const info = await serverInfo("alice", "burner");
    assert.equal(info.state, "exited");
    assert.match(String(info.error), /cpu_seconds/);
    // The next call starts it again at once (the first crash), as for any crash.
    assert.equal(await call(client, "burner_read", { path: "/nonexistent" }), "DENIED ENOENT");
    assert.equal((await serverInfo("alice", "burner")).restarts, 1);
  } finally {
    await client.close();
  }
});

test("the start says the children run in bubblewrap", { skip }, async () => {
  await until(() => readLog(running.logPath).some((line) => line.event === "mcp_sandbox"), "the mcp_sandbox log line");
});

test("a sandboxed child ends with its session, with what it started, even out of its process group", { skip }, async () => {
  const config = baseConfig(model.baseUrl, { jail: hostile() });
  const swept = await startServer({
    secrets: { openai: { api_key: API_KEY } },
    config: {
      ...config,
      mcp: { ...config.mcp, sandbox: "required", bwrap_path: BWRAP },
      session: { idle_timeout_seconds: 0.3, sweep_interval_seconds: 0.1 },
    },
  });
  try {
    const { client } = await connectUser(swept, "alice");
    const frame = await ask(client, `CALL jail_escape {}`);
    assert.match(String(frame.message), /^RESULT OK \d+/);
    const body = (await (await fetch(`${swept.url}/sessions/alice`)).json()) as { mcp_servers: { name: string; pid?: number }[] };
    const leader = body.mcp_servers.find((server) => server.name === "jail")?.pid ?? 0;
    const all = [leader, ...descendants(leader)];
    assert.ok(all.length >= 4, `bwrap, its init, the server and the escaped process: ${all.join(",")}`);
    await client.close();
    await until(() => swept.server.sessions.get("alice") === undefined, "the idle session to be swept");
    await until(() => all.every((pid) => !alive(pid)), "every process of the sandbox to be gone");
  } finally {
    await swept.close();
  }
});
