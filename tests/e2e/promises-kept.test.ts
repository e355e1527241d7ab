// Promises kept, on one instance: "always allow" ends with the conversation,
// private files are owner-only whatever the umask, a log outage is reported once and logging
// resumes, and a New chat says to every tab exactly what it did, without server paths.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import { startModelServer, lastUserText, afterTool, type ModelServer } from "../helpers/model-server.ts";
import {
  ROOT,
  ask,
  baseConfig,
  connect,
  connectUser,
  startServer,
  testServerEntry,
  until,
  type Frame,
  type RunningServer,
} from "../helpers/harness.ts";

let model: ModelServer;
let running: RunningServer;

before(async () => {
  model = await startModelServer({
    responder: (request) => {
      if (afterTool(request)) return { content: `MODEL SAW: ${String(request.messages.at(-1)?.content)}` };
      const text = lastUserText(request);
      if (text.startsWith("echo ")) return { toolCalls: [{ name: "test_echo", arguments: { text: text.slice(5) } }] };
      return { content: `echo: ${text}` };
    },
  });
  running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { test: { ...testServerEntry, require_approval: ["echo"] } },
      // Pages of about three short items, to show the character cap.
      { agent: { approval_timeout_seconds: 30 }, limits: { history_page_chars: 300 } },
    ),
    secrets: { openai: { api_key: "sk-test-promises" } },
  });
});
after(async () => {
  await running.close();
  await model.close();
});

const isRequest = (frame: Frame) => frame.type === "approval_request";

test('"always allow" ends with the conversation: after New chat the tool asks again', async () => {
  const { client } = await connectUser(running, "always", "?stream=1");
  client.send({ message: "echo one" });
  const request = await client.nextMatching(isRequest);
  client.send({ type: "approval", call_id: request.call_id, approved: true, always: true });
  await client.nextMatching((frame) => frame.type === "answer");
  client.send({ message: "echo two" });
  const second = await client.nextMatching((frame) => frame.type === "answer" || isRequest(frame));
  assert.equal(second.type, "answer", "allowed for the rest of the conversation");
  client.send({ type: "reset" });
  await client.nextMatching((frame) => frame.type === "reset");
  client.send({ message: "echo three" });
  const third = await client.nextMatching((frame) => frame.type === "answer" || isRequest(frame));
  assert.equal(third.type, "approval_request", "a new conversation asks again");
  client.send({ type: "approval", call_id: third.call_id, approved: true });
  await client.nextMatching((frame) => frame.type === "answer");
  await client.close();
});

test("New chat whose workspace cannot be emptied: every tab hears what was done and what was not, without server paths", async () => {
  const first = await connect(running.wsUrl("halfreset", "?stream=1"));
  await first.next();
  const second = await connect(running.wsUrl("halfreset", "?stream=1"));
  await second.next();
  const seed = await connect(running.wsUrl("halfreset"));
  await seed.next();
  assert.equal((await ask(seed, "remember me")).message, "echo: remember me");
  // The user's folder is not a folder any more: it cannot be listed, let alone emptied.
  const folder = path.join(running.configDir, "workspace", "halfreset");
  rmSync(folder, { recursive: true, force: true });
  mkdirSync(path.dirname(folder), { recursive: true });
  writeFileSync(folder, "not a folder");
  first.send({ type: "reset", workspace: true });
  for (const tab of [first, second]) {
    const reset = await tab.nextMatching((frame) => frame.type === "reset");
    assert.equal(reset.workspace_cleared, false);
    const error = await tab.nextMatching((frame) => frame.type === "error");
    assert.match(
      String(error.error),
      /^New chat started \(the conversation was cleared\), but the workspace files could not all be deleted \(ENOTDIR on \.\)$/,
    );
    assert.ok(!String(error.error).includes(running.configDir), "no absolute server path");
  }
  second.send({ type: "history" });
  const history = await second.nextMatching((frame) => frame.type === "history");
  assert.deepEqual(history.items, [], "the conversation was cleared, as it says");
  rmSync(folder, { force: true });
  for (const tab of [first, second, seed]) await tab.close();
});

test("history comes in pages: before/limit, start and total, and a refusal when asked in a loop", async () => {
  const { client } = await connectUser(running, "pager", "?stream=1");
  for (let n = 1; n <= 3; n++) {
    client.send({ message: `m${n}` });
    await client.nextMatching((frame) => frame.type === "answer");
  }
  client.send({ type: "history", limit: 2 });
  const newest = await client.nextMatching((frame) => frame.type === "history");
  assert.deepEqual(
    (newest.items as Frame[]).map((item) => item.content),
    ["m3", "echo: m3"],
  );
  assert.equal(newest.start, 4);
  assert.equal(newest.total, 6);
  client.send({ type: "history", before: newest.start, limit: 3 });
  const older = await client.nextMatching((frame) => frame.type === "history");
  assert.deepEqual(
    (older.items as Frame[]).map((item) => item.content),
    ["echo: m1", "m2", "echo: m2"],
  );
  const turnOfM2 = (older.items as Frame[])[1]?.turn_id;
  client.send({ type: "history", before: turnOfM2 });
  const beforeTurn = await client.nextMatching((frame) => frame.type === "history");
  assert.deepEqual(
    (beforeTurn.items as Frame[]).map((item) => item.content),
    ["m1", "echo: m1"],
  );
  client.send({ type: "history", limit: 6 });
  const capped = await client.nextMatching((frame) => frame.type === "history");
  const cappedItems = capped.items as Frame[];
  assert.ok(cappedItems.length >= 1 && cappedItems.length < 6, `${cappedItems.length} items within limits.history_page_chars`);
  assert.ok(JSON.stringify(cappedItems).length <= 300 + 2);
  assert.equal(capped.start, 6 - cappedItems.length);
  assert.equal(cappedItems.at(-1)?.content, "echo: m3");
  client.send({ type: "history", limit: 0 });
  assert.match(String((await client.nextMatching((frame) => "error" in frame)).error), /"limit" must be a whole number above 0/);
  // The default burst is 10 requests; 4 were used. The rest of a loop is refused, saying why.
  for (let n = 0; n < 12; n++) client.send({ type: "history", limit: 1 });
  const refusal = await client.nextMatching((frame) => frame.type === "error");
  assert.match(
    String(refusal.error),
    /^Too many history requests: the limit is 60 per minute \(limits\.history_requests_per_minute\)\. Retry in \d+ s$/,
  );
  await client.close();
});

test("with umask 0, the data folder, database, logs and workspaces are created owner-only", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "umask-"));
  writeFileSync(
    path.join(dir, "mcp_agent.config.yaml"),
    stringify({
      logger: { transports: ["file"], path: "logs/server.jsonl" },
      mcp: { servers: { test: testServerEntry } },
      openai: { base_url: model.baseUrl, default_model: "test-model", max_retries: 0 },
    }),
  );
  writeFileSync(path.join(dir, "mcp_agent.secrets.yaml"), stringify({ openai: { api_key: "sk-umask" } }));
  const child = spawn(
    "/bin/sh",
    [
      "-c",
      'umask 000 && exec "$@"',
      "sh",
      process.execPath,
      "--import",
      "tsx",
      path.join(ROOT, "server.ts"),
      "--config",
      path.join(dir, "mcp_agent.config.yaml"),
      "--port",
      "0",
    ],
    { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try {
    await until(() => /listening on (http:\/\/\S+)/.test(out), "the server listening", 30_000);
    const url = /listening on (http:\/\/\S+)/.exec(out)?.[1] ?? "";
    const client = await connect(`${url.replace(/^http/, "ws")}/ws/private`);
    await client.next();
    assert.equal((await ask(client, "hello")).message, "echo: hello");
    await client.close();
    // The workspace is made on the first write: an upload through the files API.
    const upload = await fetch(`${url}/files/private/note.txt`, { method: "PUT", body: "mine", headers: { "x-requested-with": "test" } });
    assert.equal(upload.status, 201);
    const modes: Record<string, string> = {};
    for (const name of [
      "data",
      "data/sessions.db",
      "data/sessions.db-wal",
      "data/sessions.db-shm",
      "logs",
      "logs/server.jsonl",
      "workspace",
      "workspace/private",
      "workspace/private/note.txt",
    ]) {
      modes[name] = (statSync(path.join(dir, name)).mode & 0o777).toString(8);
    }
    assert.deepEqual(modes, {
      data: "700",
      "data/sessions.db": "600",
      "data/sessions.db-wal": "600",
      "data/sessions.db-shm": "600",
      logs: "700",
      "logs/server.jsonl": "600",
      workspace: "700",
      "workspace/private": "700",
      "workspace/private/note.txt": "600",
    });
  } finally {
    child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
});
