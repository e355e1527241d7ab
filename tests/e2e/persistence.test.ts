// Conversations that survive restarts in the embedded SQLite store; reset; a failing store.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { startModelServer, lastUserText, afterTool, type ModelServer } from "../helpers/model-server.ts";
import {
  ask,
  baseConfig,
  connect,
  connectUser,
  makeConfigDir,
  spawnServer,
  startServer,
  testServerEntry,
  until,
  type Frame,
  type RunningServer,
} from "../helpers/harness.ts";

let model: ModelServer;

before(async () => {
  model = await startModelServer({
    responder: (request) => {
      const text = lastUserText(request);
      if (text === "HANG") return { hang: true };
      if (text.startsWith("TOOL ") && !afterTool(request))
        return { toolCalls: [{ name: "test_echo", arguments: { text: text.slice(5) } }] };
      return { content: `echo: ${text}` };
    },
  });
});
after(() => model.close());

const secrets = { openai: { api_key: "sk-test-persist" } };

async function history(server: RunningServer, userId: string): Promise<{ welcome: Frame; items: Frame[]; close: () => Promise<void> }> {
  const { client, welcome } = await connectUser(server, userId, "?stream=1");
  client.send({ type: "history" });
  const frame = await client.nextMatching((f) => f.type === "history");
  return { welcome, items: frame.items as Frame[], close: () => client.close() };
}

async function info(server: RunningServer, userId: string): Promise<Frame & { status: number }> {
  const response = await fetch(`${server.url}/sessions/${userId}`);
  return { status: response.status, ...((await response.json()) as Frame) };
}

test("after a restart a user gets the same session_id, created_at, message_count and history; the model sees earlier turns", async () => {
  const config = baseConfig(model.baseUrl, { test: testServerEntry });
  const first = await startServer({ config, secrets, keepDir: true });
  const { client, welcome } = await connectUser(first, "durable");
  await ask(client, "my name is Ada");
  await ask(client, "TOOL remembered");
  await client.close();
  const before = await info(first, "durable");
  await first.close();

  const restarted = await startServerIn(first.configDir);
  try {
    const after = await info(restarted, "durable");
    assert.equal(after.active, false, "known from the store before anyone connects");
    const again = await history(restarted, "durable");
    assert.equal(again.welcome.session_id, welcome.session_id);
    const live = await info(restarted, "durable");
    assert.equal(live.active, true);
    assert.equal(live.created_at, before.created_at);
    assert.equal(live.message_count, before.message_count);
    assert.equal(live.message_count, 2);
    assert.deepEqual(
      again.items.map((item) => [item.role, item.content ?? item.name]),
      [
        ["user", "my name is Ada"],
        ["assistant", "echo: my name is Ada"],
        ["user", "TOOL remembered"],
        ["tool", "test_echo"],
        ["assistant", "echo: TOOL remembered"],
      ],
    );
    const { client: back } = await connectUser(restarted, "durable");
    await ask(back, "what is my name?");
    const seen = model.requests.at(-1)?.messages.map((m) => m.content ?? m.tool_calls?.[0]?.function.name) ?? [];
    assert.deepEqual(seen.slice(1), [
      "my name is Ada",
      "echo: my name is Ada",
      "TOOL remembered",
      "test_echo",
      "echo:remembered",
      "echo: TOOL remembered",
      "what is my name?",
    ]);
    await back.close();
    await again.close();
  } finally {
    await restarted.close();
    rmSync(first.configDir, { recursive: true, force: true });
  }
});

/** A server on an existing config folder (its database included). */
function startServerIn(configDir: string): Promise<RunningServer> {
  return startServer({ configDir });
}

test("a server killed with SIGKILL mid-turn keeps the user's message, marked interrupted", async () => {
  const dir = makeConfigDir({ config: baseConfig(model.baseUrl), secrets });
  const configPath = path.join(dir, "mcp_agent.config.yaml");
  try {
    const first = await spawnServer(["--config", configPath, "--port", "0"]).ready;
    const wsUrl = (user: string) => `${first.url.replace(/^http/, "ws")}/ws/${user}`;
    const client = await connect(wsUrl("killed"));
    const welcome = await client.next();
    assert.equal((await ask(client, "before the crash")).message, "echo: before the crash");
    const requests = model.requests.length;
    client.send({ message: "HANG" });
    await model.waitForRequests(requests + 1);
    first.child.kill("SIGKILL");
    await first.exited;

    const second = await spawnServer(["--config", configPath, "--port", "0"]).ready;
    try {
      const back = await connect(`${second.url.replace(/^http/, "ws")}/ws/killed?stream=1`);
      const again = await back.next();
      assert.equal(again.session_id, welcome.session_id);
      back.send({ type: "history" });
      const items = (await back.nextMatching((f) => f.type === "history")).items as Frame[];
      assert.deepEqual(
        items.map((item) => [item.role, item.content, item.status]),
        [
          ["user", "before the crash", "ok"],
          ["assistant", "echo: before the crash", undefined],
          ["user", "HANG", "interrupted"],
        ],
      );
      await back.close();
    } finally {
      second.child.kill("SIGTERM");
      await second.exited;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the sweep frees memory but keeps stored history; conversations older than the retention are deleted", async () => {
  const running = await startServer({
    config: baseConfig(model.baseUrl, {}, { session: { idle_timeout_seconds: 0.1, sweep_interval_seconds: 0.1, retention_days: 1 } }),
    secrets,
  });
  try {
    const { client } = await connectUser(running, "kept");
    await ask(client, "keep me");
    await client.close();
    await until(async () => (await info(running, "kept")).active === false, "swept from memory");
    const stored = await info(running, "kept");
    assert.equal(stored.message_count, 1);
    const listed = (await (await fetch(`${running.url}/sessions`)).json()) as { active_sessions: string[] };
    assert.ok(!listed.active_sessions.includes("kept"), "/sessions lists live sessions only");
    // Age the stored conversation past the retention: the next sweep deletes it.
    const db = new Database(path.join(running.configDir, "data/sessions.db"));
    db.prepare("UPDATE sessions SET last_activity = ? WHERE user_id = 'kept'").run(Date.now() - 2 * 24 * 60 * 60 * 1000);
    db.close();
    await until(async () => (await info(running, "kept")).status === 404, "purged after the retention");
  } finally {
    await running.close();
  }
});

test("reset clears the history and gives a new session_id; workspace files stay unless asked", async () => {
  const running = await startServer({ config: baseConfig(model.baseUrl), secrets });
  try {
    const { client, welcome } = await connectUser(running, "resetter", "?stream=1");
    const workspace = path.join(running.configDir, "workspace", "resetter");
    // Workspaces are made on the first write (issue 16), not on connect.
    mkdirSync(workspace, { recursive: true });
    writeFileSync(path.join(workspace, "keep.txt"), "x");
    client.send({ message: "old conversation" });
    await client.nextMatching((f) => f.type === "answer");
    client.send({ type: "reset" });
    const reset = await client.nextMatching((f) => f.type === "reset");
    assert.notEqual(reset.session_id, welcome.session_id);
    assert.equal(reset.workspace_cleared, false);
    assert.ok(existsSync(path.join(workspace, "keep.txt")));
    client.send({ type: "history" });
    assert.deepEqual((await client.nextMatching((f) => f.type === "history")).items, []);
    client.send({ message: "new conversation" });
    await client.nextMatching((f) => f.type === "answer");
    assert.deepEqual(
      model.requests
        .at(-1)
        ?.messages.slice(1)
        .map((m) => m.content),
      ["new conversation"],
    );
    // A seed socket asking for a reset learns its new session_id from a fresh welcome.
    const seed = await connectUser(running, "resetter");
    seed.client.send({ type: "reset", workspace: true });
    const fresh = await seed.client.next();
    assert.equal(fresh.message, "Welcome! You are connected as user: resetter");
    assert.notEqual(fresh.session_id, reset.session_id);
    assert.equal(existsSync(path.join(workspace, "keep.txt")), false);
    assert.ok(existsSync(workspace), "the workspace folder itself stays");
    const info2 = await info(running, "resetter");
    assert.equal(info2.session_id, fresh.session_id);
    assert.equal(info2.message_count, 0);
    await client.close();
    await seed.client.close();
  } finally {
    await running.close();
  }
});

test("a message sent right after a reset runs in the new conversation, not the old one", async () => {
  const running = await startServer({ config: baseConfig(model.baseUrl), secrets });
  try {
    const { client } = await connectUser(running, "quick_reset", "?stream=1");
    client.send({ message: "HANG" });
    await client.nextMatching((f) => f.type === "turn_start");
    client.send({ type: "reset" });
    client.send({ message: "first of the new chat" });
    const order: string[] = [];
    for (;;) {
      const frame = await client.next();
      if (typeof frame.type === "string") order.push(frame.type);
      if (frame.type === "answer") break;
    }
    assert.ok(order.indexOf("reset") < order.indexOf("answer"), `frames: ${order.join(" ")}`);
    client.send({ type: "history" });
    const items = (await client.nextMatching((f) => f.type === "history")).items as Frame[];
    assert.deepEqual(
      items.map((item) => item.content),
      ["first of the new chat", "echo: first of the new chat"],
    );
    await client.close();
  } finally {
    await running.close();
  }
});

test("50 users writing concurrently: every conversation is stored whole", async () => {
  const config = baseConfig(model.baseUrl);
  const running = await startServer({ config, secrets, keepDir: true });
  const users = Array.from({ length: 50 }, (_, i) => `crowd_${i}`);
  try {
    await Promise.all(
      users.map(async (user) => {
        const { client } = await connectUser(running, user);
        for (let turn = 0; turn < 3; turn++)
          assert.equal((await ask(client, `${user} turn ${turn}`)).message, `echo: ${user} turn ${turn}`);
        await client.close();
      }),
    );
  } finally {
    await running.close();
  }
  const restarted = await startServerIn(running.configDir);
  try {
    for (const user of users) {
      const { items, close } = await history(restarted, user);
      assert.deepEqual(
        items.map((item) => item.content),
        [0, 1, 2].flatMap((turn) => [`${user} turn ${turn}`, `echo: ${user} turn ${turn}`]),
      );
      await close();
    }
  } finally {
    await restarted.close();
    rmSync(running.configDir, { recursive: true, force: true });
  }
});

test("a failed write ends that turn with an error frame; the server stays up and nothing stored is lost", async () => {
  const running = await startServer({ config: baseConfig(model.baseUrl), secrets });
  try {
    const { client } = await connectUser(running, "disk_full");
    await ask(client, "safe message");
    // A real SQLite failure on the real file: a trigger aborts writes of one marked message.
    const db = new Database(path.join(running.configDir, "data/sessions.db"));
    db.exec(`CREATE TRIGGER fail_write BEFORE INSERT ON entries WHEN NEW.message LIKE '%FAIL_WRITE%'
             BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;`);
    db.close();
    const failed = await ask(client, "FAIL_WRITE please");
    assert.match(String(failed.error), /^An error occurred: .*database or disk is full/);
    assert.equal((await ask(client, "next message")).message, "echo: next message");
    const { items, close } = await history(running, "disk_full");
    assert.deepEqual(
      items.filter((i) => i.role === "assistant").map((i) => i.content),
      ["echo: safe message", "echo: next message"],
    );
    await close();
    assert.equal((await fetch(`${running.url}/health`)).status, 200);
  } finally {
    await running.close();
  }
});

test("a corrupt database or one with a newer schema stops the start with a clear message and exit code 2", async () => {
  for (const [label, prepare, expected] of [
    [
      "corrupt",
      (file: string) => writeFileSync(file, "this is not a database".repeat(100)),
      /cannot open the session database .*sessions\.db: file is not a database/,
    ],
    [
      "newer schema",
      (file: string) => {
        const db = new Database(file);
        db.pragma("user_version = 99");
        db.close();
      },
      /schema version 99, newer than this server understands/,
    ],
  ] as const) {
    const dir = makeConfigDir({ config: baseConfig(model.baseUrl) });
    try {
      mkdirSync(path.join(dir, "data"));
      prepare(path.join(dir, "data/sessions.db"));
      const spawned = spawnServer(["--config", path.join(dir, "mcp_agent.config.yaml"), "--port", "0"]);
      spawned.ready.catch(() => undefined);
      assert.equal(await spawned.exited, 2, label);
      assert.match(spawned.stderr(), expected);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test("session.store: memory keeps nothing across a restart, as the original", async () => {
  const dir = makeConfigDir({ config: { ...baseConfig(model.baseUrl), session: { store: "memory" } }, secrets });
  try {
    const first = await startServerIn(dir);
    const a = await connectUser(first, "forgetful");
    await ask(a.client, "remember?");
    await a.client.close();
    await first.close();
    assert.equal(existsSync(path.join(dir, "data")), false, "no database file is written");
    const second = await startServerIn(dir);
    const b = await history(second, "forgetful");
    assert.notEqual(b.welcome.session_id, a.welcome.session_id);
    assert.deepEqual(b.items, []);
    await b.close();
    await second.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
