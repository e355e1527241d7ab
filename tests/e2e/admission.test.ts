// Admission: A session that never ran a turn costs no child and no folder and
// is swept soon; new sessions are rate-limited per remote address; limits.max_sessions counts only
// sessions that hold resources; a flood of made-up user ids cannot lock a returning user out.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { echoResponder, startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";
import {
  ask,
  baseConfig,
  connectUser,
  descendants,
  startServer,
  testServerEntry,
  TestClient,
  until,
  type RunningServer,
} from "../helpers/harness.ts";

let model: ModelServer;
let running: RunningServer;
let workspace = "";

before(async () => {
  model = await startModelServer({ responder: (request, index) => toolDirective(request) ?? echoResponder(request, index) });
  running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { test: testServerEntry },
      {
        session: { store: "sqlite", idle_new_session_seconds: 0.5 },
        limits: { max_sessions: 3, new_sessions_per_minute: 60, new_session_burst: 20, max_warm_sessions: 50 },
      },
    ),
    secrets: { openai: { api_key: "sk-admission" } },
  });
  workspace = path.join(running.configDir, "workspace");
});

after(async () => {
  await running?.close();
  await model?.close();
});

const folders = () => (existsSync(workspace) ? readdirSync(workspace).sort() : []);
const children = () => descendants(process.pid).length;

async function sessionInfo(userId: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${running.url}/sessions/${userId}`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

test("a session that never ran a turn costs no child and no folder; its first turn starts them", async () => {
  const before = children();
  const { client } = await connectUser(running, "newbie");
  const info = await sessionInfo("newbie");
  assert.equal((info.body.mcp_servers as { state: string }[])[0]?.state, "stopped");
  assert.equal(children(), before, "no MCP child for a session that has not chatted");
  assert.ok(!folders().includes("newbie"), "no workspace folder either");
  assert.match(String((await ask(client, "CALL test_pid {}")).message), /^RESULT \d+$/);
  assert.ok(children() > before, "the first turn started the child");
  // A stdio child works in the user's workspace: its start made the folder (a session that never chats makes none).
  assert.ok(folders().includes("newbie"), "the child's start made the workspace it works in");
  await client.close();
});

test("a session that never ran a turn is swept after session.idle_new_session_seconds, with its stored record", async () => {
  const { client } = await connectUser(running, "passerby");
  assert.equal((await sessionInfo("passerby")).status, 200);
  await client.close();
  await until(() => running.server.sessions.get("passerby") === undefined, "the new session to be swept", 5000);
  assert.equal((await sessionInfo("passerby")).status, 404, "nothing of it is left in the store");
  // A session that chatted stays (its idle time is session.idle_timeout_seconds).
  assert.ok(running.server.sessions.get("newbie"));
});

test("a flood of 2,000 made-up user ids from one address: refused past the rate limit, nothing left behind, a returning user still gets in", async () => {
  // Alice chatted before and left; her session was swept from memory (not from the store).
  const alice = await connectUser(running, "alice");
  assert.equal((await ask(alice.client, "remember me")).message, "echo: remember me");
  await alice.client.close();
  await running.server.sessions.sweep(Date.now() + 10 * 24 * 60 * 60 * 1000 - 1);
  assert.equal(running.server.sessions.get("alice"), undefined);
  const childrenBefore = children();

  const outcomes: string[] = [];
  /** The flood's welcomed sockets stay open until Alice is back: their sessions are live meanwhile. */
  const admitted: TestClient[] = [];
  for (let batch = 0; batch < 20; batch++) {
    const clients = Array.from({ length: 100 }, (_, n) => new TestClient(running.wsUrl(`flood${batch * 100 + n}`)));
    const results = await Promise.all(
      clients.map(async (client) => {
        const closed = client.closed.then((value) => `closed ${value.code} ${value.reason}`);
        const welcomed = new Promise<string>((resolve) => client.ws.once("message", () => resolve("welcomed")));
        const first = await Promise.race([closed, welcomed]);
        if (first === "welcomed") admitted.push(client);
        else client.ws.terminate();
        return first;
      }),
    );
    outcomes.push(...results);
  }
  const welcomed = outcomes.filter((outcome) => outcome === "welcomed").length;
  const refused = outcomes.filter((outcome) =>
    /^closed 1013 too_many_new_sessions: .*limits\.new_sessions_per_minute/.test(outcome),
  ).length;
  assert.ok(welcomed >= 20 && welcomed < 100, `the burst (and what refilled meanwhile) got in: ${welcomed}`);
  assert.equal(welcomed + refused, 2000, `every other one was told why: ${outcomes.find((outcome) => outcome !== "welcomed")}`);
  // The flood cost no child and no folder.
  assert.equal(children(), childrenBefore);
  assert.deepEqual(
    folders().filter((name) => name.startsWith("flood")),
    [],
  );

  // Alice comes back from the same address, past limits.max_sessions (3) of sessions that never chatted.
  assert.ok(running.server.sessions.size >= 20, `${running.server.sessions.size} live sessions`);
  const again = await connectUser(running, "alice");
  assert.equal(again.welcome.user_id, "alice");
  assert.equal((await ask(again.client, "still me")).message, "echo: still me");
  await again.client.close();
  await Promise.all(admitted.map((client) => client.close()));

  // The flood's sessions go by themselves, with their stored records.
  await until(() => running.server.sessions.userIds().every((userId) => !userId.startsWith("flood")), "the flood to be swept", 10000);
  assert.equal((await sessionInfo("flood0")).status, 404);
});

test("limits.max_sessions counts sessions that hold resources: past it a new user who would need one is refused", async () => {
  // One who connects now, while there is room, but chats only once it is full.
  const late = new TestClient(running.wsUrl("late"), { localAddress: "127.0.0.3" });
  await late.next();
  // Users who chat fill it (from other loopback addresses: the flood used up 127.0.0.1's new-session budget).
  for (const [n, userId] of ["carol", "erin", "frank"].entries()) {
    if (running.server.sessions.heldCount() >= 3) break;
    const client = new TestClient(running.wsUrl(userId), { localAddress: `127.0.0.${n + 4}` });
    await client.next();
    assert.equal((await ask(client, "hi")).message, "echo: hi");
    await client.close();
  }
  assert.equal(running.server.sessions.heldCount(), 3);
  const dave = new TestClient(running.wsUrl("dave"), { localAddress: "127.0.0.3" });
  const closed = await dave.closed;
  assert.equal(closed.code, 1013);
  assert.match(closed.reason, /limits\.max_sessions/);
  // The one connected earlier: its first turn would hold a child and a folder, so it is refused.
  const refusal = await ask(late, "may I?");
  assert.match(String(refusal.error), /limits\.max_sessions/);
  assert.equal(refusal.code, "too_many_sessions");
  assert.ok(!folders().includes("late"));
  await late.close();
});
