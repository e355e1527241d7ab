// Human in the loop: tool calls that wait for a person (require_approval), and resuming a running
// turn after a reload.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startModelServer, lastUserText, afterTool, type ModelServer } from "../helpers/model-server.ts";
import {
  ask,
  baseConfig,
  connect,
  connectUser,
  readLog,
  startServer,
  testServerEntry,
  until,
  type Frame,
  type RunningServer,
} from "../helpers/harness.ts";

let model: ModelServer;
let running: RunningServer;

before(async () => {
  model = await startModelServer();
  running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { test: { ...testServerEntry, require_approval: ["echo", "pid"] } },
      { agent: { approval_timeout_seconds: 0.5 } },
    ),
    secrets: { openai: { api_key: "sk-test-approvals" } },
  });
});
after(async () => {
  await running.close();
  await model.close();
});
beforeEach(() =>
  model.setResponder((request) => {
    if (afterTool(request)) return { content: `MODEL SAW: ${String(request.messages.at(-1)?.content)}` };
    const text = lastUserText(request);
    if (text.startsWith("echo ")) return { toolCalls: [{ name: "test_echo", arguments: { text: text.slice(5) } }] };
    if (text === "unguarded") return { toolCalls: [{ name: "test_fail", arguments: {} }] };
    return { content: `echo: ${text}` };
  }),
);

test("approve: the request names the call, the tool runs, and the turn goes on", async () => {
  const { client } = await connectUser(running, "approver", "?stream=1");
  client.send({ message: "echo hello" });
  const request = await client.nextMatching((f) => f.type === "approval_request");
  assert.equal(request.name, "test_echo");
  assert.equal(request.server, "test");
  assert.equal(request.tool, "echo");
  assert.deepEqual(request.arguments, { text: "hello" });
  assert.equal(typeof request.turn_id, "string");
  client.send({ type: "approval", call_id: request.call_id, approved: true });
  const resolved = await client.nextMatching((f) => f.type === "approval_resolved");
  assert.deepEqual([resolved.approved, resolved.by], [true, "user"]);
  assert.equal((await client.nextMatching((f) => f.type === "answer")).message, "MODEL SAW: echo:hello");
  // The log is written asynchronously: wait for the line rather than read it at once.
  await until(
    () => readLog(running.logPath).some((line) => line.event === "approval" && line.call_id === request.call_id),
    "approval logged",
  );
  const lines = readLog(running.logPath).filter((line) => line.event === "approval" && line.call_id === request.call_id);
  assert.equal(lines.length, 1);
  assert.equal(lines[0]?.decision, "approved");
  assert.equal(lines[0]?.user_id, "approver");
  assert.equal(lines[0]?.tool, "test_echo");
  assert.match(String(lines[0]?.by), /^socket \d+/);
  assert.ok(lines[0]?.timestamp);
  await client.close();
});

test("deny: the model gets 'denied by the user: <reason>' as the tool's result and answers", async () => {
  const { client } = await connectUser(running, "denier", "?stream=1");
  client.send({ message: "echo secret" });
  const request = await client.nextMatching((f) => f.type === "approval_request");
  client.send({ type: "approval", call_id: request.call_id, approved: false, reason: "not now" });
  const end = await client.nextMatching((f) => f.type === "tool_end");
  assert.equal(end.ok, false);
  assert.equal((await client.nextMatching((f) => f.type === "answer")).message, "MODEL SAW: Error: denied by the user: not now");
  await until(() => readLog(running.logPath).some((l) => l.event === "approval" && l.call_id === request.call_id), "denial logged");
  const line = readLog(running.logPath).find((l) => l.event === "approval" && l.call_id === request.call_id);
  assert.equal(line?.decision, "denied");
  await client.close();
});

test("no answer within the timeout is a denial", async () => {
  const { client } = await connectUser(running, "sleeper", "?stream=1");
  client.send({ message: "echo late" });
  await client.nextMatching((f) => f.type === "approval_request");
  const resolved = await client.nextMatching((f) => f.type === "approval_resolved");
  assert.deepEqual([resolved.approved, resolved.by], [false, "timeout"]);
  assert.match(
    String((await client.nextMatching((f) => f.type === "answer")).message),
    /nobody answered the approval request within 0\.5 s/,
  );
  await client.close();
});

test("always allow: the same tool runs without asking for the rest of the session", async () => {
  const { client } = await connectUser(running, "truster", "?stream=1");
  client.send({ message: "echo one" });
  const request = await client.nextMatching((f) => f.type === "approval_request");
  client.send({ type: "approval", call_id: request.call_id, approved: true, always: true });
  await client.nextMatching((f) => f.type === "answer");
  client.send({ message: "echo two" });
  const frames: Frame[] = [];
  for (let frame = await client.next(); ; frame = await client.next()) {
    frames.push(frame);
    if (frame.type === "answer") break;
  }
  assert.ok(!frames.some((f) => f.type === "approval_request"), "no second request");
  assert.equal(frames.at(-1)?.message, "MODEL SAW: echo:two");
  await until(
    () => readLog(running.logPath).some((l) => l.event === "approval" && l.user_id === "truster" && l.by === "session"),
    "session allowance logged",
  );
  await client.close();
});

test("a seed-style socket never hangs: a call that needs approval is denied at once, saying why", async () => {
  const { client } = await connectUser(running, "seed_only");
  const answer = await ask(client, "echo from seed");
  assert.match(
    String(answer.message),
    /^MODEL SAW: Error: denied: this tool call needs a person's approval and no client that can give it is connected/,
  );
  // Tools that need no approval run as usual.
  assert.match(String((await ask(client, "unguarded")).message), /failed on purpose/);
  await client.close();
});

test("cancel during a pending approval ends the turn cleanly", async () => {
  const { client } = await connectUser(running, "cancel_pending", "?stream=1");
  client.send({ message: "echo wait" });
  const request = await client.nextMatching((f) => f.type === "approval_request");
  client.send({ type: "cancel" });
  const resolved = await client.nextMatching((f) => f.type === "approval_resolved");
  assert.deepEqual([resolved.call_id, resolved.approved, resolved.by], [request.call_id, false, "cancel"]);
  assert.equal((await client.nextMatching((f) => f.type === "cancelled" || f.type === "answer")).type, "cancelled");
  // A late answer finds nothing waiting, and the session goes on.
  client.send({ type: "approval", call_id: request.call_id, approved: true });
  const late = await client.nextMatching((f) => f.type === "error");
  assert.match(String(late.error), /no approval is waiting/);
  assert.deepEqual([late.code, late.call_id], ["no_pending_approval", request.call_id]);
  client.send({ message: "plain" });
  assert.equal((await client.nextMatching((f) => f.type === "answer")).message, "echo: plain");
  await client.close();
});

test("two sockets race to answer: the first answer wins, the second is told", async () => {
  const tab1 = await connectUser(running, "racer", "?stream=1");
  const tab2 = await connectUser(running, "racer", "?stream=1");
  tab1.client.send({ message: "echo race" });
  const r1 = await tab1.client.nextMatching((f) => f.type === "approval_request");
  const r2 = await tab2.client.nextMatching((f) => f.type === "approval_request");
  assert.equal(r1.call_id, r2.call_id);
  tab2.client.send({ type: "approval", call_id: r2.call_id, approved: false, reason: "tab two says no" });
  tab1.client.send({ type: "approval", call_id: r1.call_id, approved: true });
  const resolved = await tab1.client.nextMatching((f) => f.type === "approval_resolved");
  assert.equal(resolved.approved, false);
  const second = await tab1.client.nextMatching((f) => f.type === "error");
  assert.match(String(second.error), /no approval is waiting/);
  assert.deepEqual([second.code, second.call_id], ["no_pending_approval", r1.call_id]);
  assert.equal(
    (await tab2.client.nextMatching((f) => f.type === "answer")).message,
    "MODEL SAW: Error: denied by the user: tab two says no",
  );
  await tab1.client.close();
  await tab2.client.close();
});

test("resume: a page reloaded mid-turn gets the turn so far, keeps streaming, and can answer the pending approval", async () => {
  model.setResponder((request) =>
    afterTool(request)
      ? { content: "continued after approval", chunkChars: 3, chunkDelayMs: 5 }
      : { content: "Let me check. ", toolCalls: [{ name: "test_echo", arguments: { text: "resumed" } }] },
  );
  const first = await connectUser(running, "reloader", "?stream=1");
  first.client.send({ message: "go" });
  const request = await first.client.nextMatching((f) => f.type === "approval_request");
  await first.client.close(); // the page is reloaded
  const page = await connect(running.wsUrl("reloader", "?stream=1"));
  assert.equal((await page.next()).type, "welcome");
  const replayed: Frame[] = [];
  for (let frame = await page.next(); frame.type !== "approval_request"; frame = await page.next()) replayed.push(frame);
  assert.equal(replayed[0]?.type, "turn_start");
  assert.equal(
    replayed
      .filter((f) => f.type === "delta")
      .map((f) => f.text)
      .join(""),
    "Let me check. ",
  );
  assert.ok(replayed.some((f) => f.type === "tool_start"));
  page.send({ type: "approval", call_id: request.call_id, approved: true });
  const answer = await page.nextMatching((f) => f.type === "answer");
  // The final answer is the model's last message; the text before the tool call was streamed.
  assert.equal(answer.message, "continued after approval");
  await page.close();
});

test("the decision of every approval is in the log with user, tool, decision, who, time", async () => {
  await until(() => readLog(running.logPath).filter((l) => l.event === "approval").length >= 5, "approval lines");
  for (const line of readLog(running.logPath).filter((l) => l.event === "approval")) {
    assert.ok(line.user_id && line.tool && line.decision && line.by && line.timestamp, JSON.stringify(line));
  }
});
