// Everything ends, and caps on what a model sends: tool calls
// are tracked by ids the server assigns, every pending call is settled by the end of its turn,
// a turn has a deadline, and a model stream that trickles or idles cannot hold a turn.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startModelServer,
  lastUserText,
  afterTool,
  type ModelServer,
  type ScriptedReply,
  type ChatRequest,
} from "../helpers/model-server.ts";
import {
  baseConfig,
  connectUser,
  startServer,
  testServerEntry,
  type Frame,
  type RunningServer,
  type TestClient,
} from "../helpers/harness.ts";

let model: ModelServer;
let running: RunningServer;

function respond(request: ChatRequest): ScriptedReply {
  if (afterTool(request)) {
    const ids = request.messages.filter((message) => message.role === "tool").map((message) => message.tool_call_id);
    return { content: `DONE ${JSON.stringify(ids)}` };
  }
  const [word = "", arg = ""] = lastUserText(request).split(" ");
  switch (word) {
    case "DUP":
      return {
        toolCalls: [
          { name: "test_echo", arguments: { text: "first" }, id: "same" },
          { name: "test_echo", arguments: { text: "second" }, id: "same" },
        ],
      };
    case "NOID":
      return {
        toolCalls: [
          { name: "test_echo", arguments: { text: "first" }, id: "" },
          { name: "test_echo", arguments: { text: "second" }, id: "" },
        ],
      };
    case "KEEPALIVE":
      return { endless: { mode: "keepalive", everyMs: 50 } };
    case "TRICKLE":
      return { endless: { mode: "tokens", everyMs: 50 } };
    case "LONG":
      return { content: "y".repeat(Number(arg)), chunkChars: 1000 };
    case "BIGERROR":
      return { status: 500, errorMessage: "z".repeat(50_000) };
    default:
      return { content: `echo: ${lastUserText(request)}` };
  }
}

before(async () => {
  model = await startModelServer({ responder: respond });
  const base = baseConfig(
    model.baseUrl,
    { test: { ...testServerEntry, require_approval: ["echo"] } },
    {
      agent: { approval_timeout_seconds: 60, max_turn_seconds: 6 },
      limits: { max_answer_chars: 5000, max_error_chars: 300 },
      session: { store: "memory" },
    },
  );
  running = await startServer({
    config: { ...base, openai: { ...base.openai, request_timeout_seconds: 1.5, stream_idle_timeout_seconds: 0.5 } },
    secrets: { openai: { api_key: "sk-test-everything-ends" } },
  });
});
after(async () => {
  await running.close();
  await model.close();
});

async function streaming(userId: string): Promise<TestClient> {
  const { client } = await connectUser(running, userId, "?stream=1");
  return client;
}

const isRequest = (frame: Frame) => frame.type === "approval_request";
const isResolved = (frame: Frame) => frame.type === "approval_resolved";
const endsTurn = (frame: Frame) => frame.type === "answer" || frame.type === "error" || frame.type === "cancelled";

for (const word of ["DUP", "NOID"]) {
  test(`${word}: two tool calls with ${word === "DUP" ? "the same" : "no"} model id get two server ids; answering both completes the turn`, async () => {
    const client = await streaming(`ids-${word.toLowerCase()}`);
    client.send({ message: word });
    const first = await client.nextMatching(isRequest);
    const second = await client.nextMatching(isRequest);
    assert.notEqual(first.call_id, second.call_id, "the two calls are told apart");
    for (const request of [first, second]) {
      assert.match(String(request.call_id), /^call_[0-9a-f-]{36}$/, "the id is the server's own");
      client.send({ type: "approval", call_id: request.call_id, approved: true });
    }
    const answer = await client.nextMatching(endsTurn);
    assert.equal(answer.type, "answer");
    assert.equal(answer.message, `DONE ${JSON.stringify([first.call_id, second.call_id])}`, "the model sees each result under its call");
    client.send({ type: "history" });
    const history = await client.nextMatching((frame) => frame.type === "history");
    const tools = (history.items as Frame[]).filter((item) => item.role === "tool");
    assert.deepEqual(
      tools.map((item) => [item.call_id, item.preview]),
      [
        [first.call_id, "echo:first"],
        [second.call_id, "echo:second"],
      ],
    );
    await client.close();
  });
}

test("DUP: a cancel settles every pending call of the turn, and the session goes on", async () => {
  const client = await streaming("ids-cancel");
  client.send({ message: "DUP" });
  await client.nextMatching(isRequest);
  await client.nextMatching(isRequest);
  client.send({ type: "cancel" });
  const resolved = [await client.nextMatching(isResolved), await client.nextMatching(isResolved)];
  assert.deepEqual(
    resolved.map((frame) => [frame.approved, frame.by]),
    [
      [false, "cancel"],
      [false, "cancel"],
    ],
  );
  assert.equal((await client.nextMatching(endsTurn)).type, "cancelled");
  client.send({ message: "still here" });
  assert.equal((await client.nextMatching(endsTurn)).message, "echo: still here");
  await client.close();
});

test("DUP: New chat settles every pending call, and the session goes on", async () => {
  const client = await streaming("ids-reset");
  client.send({ message: "DUP" });
  await client.nextMatching(isRequest);
  await client.nextMatching(isRequest);
  client.send({ type: "reset" });
  assert.equal((await client.nextMatching(isResolved)).by, "cancel");
  assert.equal((await client.nextMatching(isResolved)).by, "cancel");
  await client.nextMatching((frame) => frame.type === "reset");
  client.send({ message: "after reset" });
  assert.equal((await client.nextMatching((frame) => frame.type === "answer")).message, "echo: after reset");
  await client.close();
});

test("agent.max_turn_seconds: a turn still waiting after the deadline is ended with an error naming the key", async () => {
  const client = await streaming("deadline");
  const started = Date.now();
  client.send({ message: "DUP" }); // nobody answers; the approval timeout (60 s) is far away
  await client.nextMatching(isRequest);
  const end = await client.nextMatching(endsTurn, 20_000);
  assert.equal(end.type, "error");
  assert.match(String(end.error), /ran longer than 6 s \(agent\.max_turn_seconds\)/);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 5900, `ended after ${elapsed} ms, not before the deadline`);
  // Both calls were settled with the turn: nothing is left waiting.
  const resolved = client.frames.filter(isResolved);
  assert.equal(resolved.length, 2);
  client.send({ message: "next" });
  assert.equal((await client.nextMatching(endsTurn)).message, "echo: next");
  await client.close();
});

test("openai.stream_idle_timeout_seconds: an endpoint that sends only keep-alive comments ends the turn", async () => {
  const client = await streaming("keepalive");
  client.send({ message: "KEEPALIVE" });
  const end = await client.nextMatching(endsTurn);
  assert.equal(end.type, "error");
  assert.match(String(end.error), /sent nothing for 0\.5 s \(openai\.stream_idle_timeout_seconds\)/);
  await client.close();
});

test("openai.request_timeout_seconds bounds a whole streamed answer: a trickle of tokens ends the turn", async () => {
  const client = await streaming("trickle");
  const started = Date.now();
  client.send({ message: "TRICKLE" });
  const end = await client.nextMatching(endsTurn);
  assert.equal(end.type, "error");
  assert.match(String(end.error), /timed out: it was not complete after 1\.5 s \(openai\.request_timeout_seconds\)/);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 1400, `ended after ${elapsed} ms, not before the timeout`);
  assert.ok(
    client.frames.some((frame) => frame.type === "delta"),
    "the tokens did stream until then",
  );
  await until(() => model.aborted >= 2, "the model requests were closed");
  await client.close();
});

test("limits.max_answer_chars: a longer answer is cut, with a note, and the request ends early", async () => {
  const client = await streaming("long");
  client.send({ message: "LONG 200000" });
  const end = await client.nextMatching(endsTurn);
  assert.equal(end.type, "answer");
  const text = String(end.message);
  assert.ok(text.startsWith("y".repeat(5000)));
  assert.ok(text.endsWith("[answer cut: the model wrote more than 5000 characters (limits.max_answer_chars)]"), text.slice(5000));
  assert.equal(text.replace(/[^y]/g, "").length, 5000);
  await client.close();
});

test("limits.max_error_chars: a huge model error body is cut, with a note", async () => {
  const client = await streaming("bigerror");
  client.send({ message: "BIGERROR" });
  const end = await client.nextMatching(endsTurn);
  assert.equal(end.type, "error");
  const text = String(end.error);
  assert.ok(text.length < 600, `${text.length} characters`);
  assert.match(text, /\[cut: \d+ characters, only the first 300 are shown \(limits\.max_error_chars\)\]$/);
  await client.close();
});

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
