// The opt-in streaming protocol (`?stream=1`), with the model streaming real SSE.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startModelServer, lastUserText, afterTool, type ModelServer } from "../helpers/model-server.ts";
import {
  ask,
  baseConfig,
  connect,
  connectUser,
  startServer,
  testServerEntry,
  until,
  type Frame,
  type RunningServer,
  type TestClient,
} from "../helpers/harness.ts";

let model: ModelServer;
let running: RunningServer;

const echo = () => model.setResponder((request) => ({ content: `echo: ${lastUserText(request)}` }));

before(async () => {
  model = await startModelServer();
  running = await startServer({
    config: baseConfig(model.baseUrl, { test: testServerEntry }),
    secrets: { openai: { api_key: "sk-test-stream" } },
  });
});
after(async () => {
  await running.close();
  await model.close();
});
beforeEach(echo);

/** Reads frames until the end of a turn (answer, error or cancelled); returns them all. */
async function readTurn(client: TestClient): Promise<Frame[]> {
  const frames: Frame[] = [];
  for (;;) {
    const frame = await client.next();
    frames.push(frame);
    if (frame.type === "answer" || frame.type === "error" || frame.type === "cancelled") return frames;
  }
}

test("a socket that does not opt in gets exactly the seed's frames while a streaming one gets typed frames", async () => {
  const seed = await connectUser(running, "mixed_sockets");
  const live = await connectUser(running, "mixed_sockets", "?stream=1");
  assert.deepEqual(Object.keys(seed.welcome), ["message", "user_id", "session_id"]);
  assert.equal(live.welcome.type, "welcome");
  assert.equal(live.welcome.stream, true);
  assert.equal(live.welcome.session_id, seed.welcome.session_id);
  const answer = await ask(seed.client, "hello there");
  assert.deepEqual(answer, { message: "echo: hello there", user_id: "mixed_sockets", session_id: seed.welcome.session_id });
  // The streaming tab saw the seed socket's message queued, then its turn live.
  const frames = await readTurn(live.client);
  assert.deepEqual([frames[0]?.type, frames[0]?.input, frames[0]?.position], ["queued", "hello there", 0]);
  assert.equal(frames[1]?.type, "turn_start");
  assert.equal(frames[1]?.input, "hello there");
  assert.equal(frames[1]?.turn_id, frames[0]?.turn_id);
  assert.equal(frames.at(-1)?.type, "answer");
  // The seed socket received nothing but its answer.
  assert.equal(seed.client.frames.length, 2);
  await seed.client.close();
  await live.client.close();
});

test("a turn streams: queued, turn_start, text deltas, then an answer frame that is also a seed answer", async () => {
  model.setResponder(() => ({ content: "Streaming works one piece at a time.", chunkChars: 5 }));
  const { client, welcome } = await connectUser(running, "streamer", "?stream=1");
  client.send({ message: "stream please", client_id: "c-1" });
  const frames = await readTurn(client);
  assert.equal(frames[0]?.type, "queued");
  assert.equal(frames[0]?.client_id, "c-1");
  assert.equal(frames[1]?.type, "turn_start");
  assert.equal(frames[1]?.client_id, "c-1", "the client's id comes back on its turn");
  const turnId = frames[0]?.turn_id;
  assert.equal(typeof turnId, "string");
  assert.ok(
    frames.every((frame) => frame.turn_id === turnId),
    "every frame carries the turn_id",
  );
  const deltas = frames.filter((frame) => frame.type === "delta");
  assert.ok(deltas.length >= 5, `deltas: ${deltas.length}`);
  assert.equal(deltas.map((d) => d.text).join(""), "Streaming works one piece at a time.");
  const answer = frames.at(-1);
  assert.deepEqual(answer, {
    type: "answer",
    turn_id: turnId,
    message: "Streaming works one piece at a time.",
    user_id: "streamer",
    session_id: welcome.session_id,
    // The turn's token usage, as the model reported it.
    usage: answer?.usage,
  });
  assert.equal(model.requests.at(-1)?.stream, true, "the model is called with stream: true");
  await client.close();
});

test("tool calls stream as tool_start (server, tool, arguments) and tool_end (ok, preview, duration)", async () => {
  model.setResponder((request) =>
    afterTool(request)
      ? { content: "done" }
      : {
          toolCalls: [
            { name: "test_echo", arguments: { text: "hi" } },
            { name: "test_fail", arguments: {} },
          ],
        },
  );
  const { client } = await connectUser(running, "tool_streamer", "?stream=1");
  client.send({ message: "tools" });
  const frames = await readTurn(client);
  const starts = frames.filter((f) => f.type === "tool_start");
  const ends = frames.filter((f) => f.type === "tool_end");
  assert.equal(starts.length, 2);
  assert.deepEqual(
    { ...starts.find((s) => s.tool === "echo"), call_id: "x", turn_id: "x" },
    { type: "tool_start", turn_id: "x", call_id: "x", name: "test_echo", server: "test", tool: "echo", arguments: { text: "hi" } },
  );
  const echoStart = starts.find((s) => s.tool === "echo");
  const echoEnd = ends.find((e) => e.call_id === echoStart?.call_id);
  assert.equal(echoEnd?.ok, true);
  assert.equal(echoEnd?.preview, "echo:hi");
  assert.equal(typeof echoEnd?.duration_ms, "number");
  const failEnd = ends.find((e) => e.call_id === starts.find((s) => s.tool === "fail")?.call_id);
  assert.equal(failEnd?.ok, false);
  assert.match(String(failEnd?.preview), /failed on purpose/);
  assert.ok(frames.indexOf(echoStart!) < frames.indexOf(echoEnd!));
  assert.equal(frames.at(-1)?.message, "done");
  await client.close();
});

test("tool results in tool_end are previews, not whole results", async () => {
  model.setResponder((request) =>
    afterTool(request) ? { content: "big done" } : { toolCalls: [{ name: "test_big", arguments: { chars: 5000 } }] },
  );
  const { client } = await connectUser(running, "big_preview", "?stream=1");
  client.send({ message: "big" });
  const end = (await readTurn(client)).find((f) => f.type === "tool_end");
  assert.ok(String(end?.preview).length <= 501);
  await client.close();
});

test("an error ends the turn with an error frame carrying the turn_id; the seed asker gets the seed error", async () => {
  model.queue({ status: 500, errorMessage: "boom" });
  const live = await connectUser(running, "stream_error", "?stream=1");
  const seed = await connectUser(running, "stream_error");
  const seedAnswer = await ask(seed.client, "fail please");
  // The seed's key first, then the code: additive, a seed client reads `error` as before.
  assert.deepEqual(Object.keys(seedAnswer), ["error", "code"]);
  assert.match(String(seedAnswer.error), /^An error occurred: .*boom/);
  assert.equal(seedAnswer.code, "turn_failed");
  const frames = await readTurn(live.client);
  const last = frames.at(-1);
  assert.equal(last?.type, "error");
  assert.equal(last?.turn_id, frames[0]?.turn_id);
  assert.equal(last?.error, seedAnswer.error);
  assert.equal(last?.code, "turn_failed");
  await live.client.close();
  await seed.client.close();
});

test("cancel stops the running turn at once: model request aborted, cancelled frame, history notes it, queue goes on", async () => {
  model.setResponder((request) =>
    lastUserText(request) === "slow"
      ? { content: "this takes forever", chunkChars: 1, chunkDelayMs: 200 }
      : { content: `echo: ${lastUserText(request)}` },
  );
  const abortedBefore = model.aborted;
  const { client } = await connectUser(running, "canceller", "?stream=1");
  client.send({ message: "slow" });
  client.send({ message: "queued after" });
  await client.nextMatching((f) => f.type === "delta");
  client.send({ type: "cancel" });
  const cancelled = await client.nextMatching((f) => f.type === "cancelled" || f.type === "answer");
  assert.equal(cancelled.type, "cancelled");
  // The queued message then runs normally.
  const next = await client.nextMatching((f) => f.type === "answer");
  assert.equal(next.message, "echo: queued after");
  await until(() => model.aborted > abortedBefore, "the model request aborted");
  client.send({ type: "history" });
  const history = await client.nextMatching((f) => f.type === "history");
  const items = history.items as Frame[];
  assert.deepEqual(
    items.map((item) => [item.role, item.content, item.status]),
    [
      ["user", "slow", "cancelled"],
      ["user", "queued after", "ok"],
      ["assistant", "echo: queued after", undefined],
    ],
  );
  await client.close();
});

test("cancel during a tool call abandons it (MCP cancellation) and ends the turn", async () => {
  model.setResponder((request) =>
    afterTool(request) ? { content: "should not be reached" } : { toolCalls: [{ name: "test_slow", arguments: { ms: 20000 } }] },
  );
  const live = await connectUser(running, "tool_cancel", "?stream=1");
  const seed = await connectUser(running, "tool_cancel");
  seed.client.send({ message: "slow tool" });
  await live.client.nextMatching((f) => f.type === "tool_start");
  // Cancel from the seed socket: any socket of the user may stop the user's turn.
  seed.client.send({ type: "cancel" });
  assert.equal((await live.client.nextMatching((f) => f.type === "cancelled" || f.type === "answer")).type, "cancelled");
  const seedFrame = await seed.client.next();
  assert.deepEqual(seedFrame, { error: "An error occurred: the turn was cancelled", code: "turn_cancelled" });
  // The session is usable at once: the next turn does not wait for the abandoned tool.
  echo();
  assert.equal((await ask(seed.client, "after")).message, "echo: after");
  await live.client.close();
  await seed.client.close();
});

test("history returns user and assistant messages and tool calls with their results in short", async () => {
  model.setResponder((request) =>
    afterTool(request) ? { content: "The tool echoed." } : { toolCalls: [{ name: "test_echo", arguments: { text: "history" } }] },
  );
  const { client, welcome } = await connectUser(running, "history_user", "?stream=1");
  client.send({ message: "use a tool" });
  await readTurn(client);
  client.send({ type: "history" });
  const history = await client.next();
  assert.equal(history.type, "history");
  assert.equal(history.session_id, welcome.session_id);
  const items = history.items as Frame[];
  assert.deepEqual(
    items.map((item) => item.role),
    ["user", "tool", "assistant"],
  );
  assert.equal(items[1]?.name, "test_echo");
  assert.deepEqual(items[1]?.arguments, { text: "history" });
  assert.equal(items[1]?.preview, "echo:history");
  assert.equal(items[1]?.ok, true);
  assert.equal(typeof items[1]?.duration_ms, "number", "tool cards keep their time after a reload");
  assert.equal(items[2]?.content, "The tool echoed.");
  await client.close();
});

test("all streaming sockets of a user see each turn live; a second tab joining mid-turn gets it from the start", async () => {
  model.setResponder(() => ({ content: "abcdefghij", chunkChars: 1, chunkDelayMs: 30 }));
  const tab1 = await connectUser(running, "many_tabs", "?stream=1");
  tab1.client.send({ message: "go" });
  await tab1.client.nextMatching((f) => f.type === "delta");
  const tab2 = await connect(running.wsUrl("many_tabs", "?stream=1"));
  assert.equal((await tab2.next()).type, "welcome");
  const frames1 = [tab1.client.frames[1]!, ...(await readTurn(tab1.client))].filter(Boolean);
  const frames2 = await readTurn(tab2);
  assert.equal(frames2[0]?.type, "turn_start", "replay starts with the turn's first frame");
  const text = (frames: Frame[]) =>
    frames
      .filter((f) => f.type === "delta")
      .map((f) => f.text)
      .join("");
  assert.equal(text(frames2), "abcdefghij");
  assert.equal(frames2.at(-1)?.message, "abcdefghij");
  assert.equal(frames1.at(-1)?.message, "abcdefghij");
  await tab1.client.close();
  await tab2.close();
});

test("a streaming socket that joins sees the messages still waiting in the queue", async () => {
  model.setResponder((request) =>
    lastUserText(request) === "long" ? { content: "slow", delayMs: 300 } : { content: `echo: ${lastUserText(request)}` },
  );
  const first = await connectUser(running, "queue_watcher");
  first.client.send({ message: "long" });
  first.client.send({ message: "waiting one", client_id: "w1" });
  await model.waitForRequests(model.requests.length + 1);
  const late = await connect(running.wsUrl("queue_watcher", "?stream=1"));
  const frames: Frame[] = [];
  for (let frame = await late.next(); frame.type !== "answer"; frame = await late.next()) frames.push(frame);
  const queued = frames.find((f) => f.type === "queued" && f.input === "waiting one");
  assert.ok(queued, JSON.stringify(frames.map((f) => f.type)));
  assert.equal(queued.client_id, "w1");
  assert.equal(queued.position, 1);
  await first.client.close();
  await late.close();
});

test("if the asking socket is gone when the turn ends, the answer is kept in the history", async () => {
  model.setResponder(() => ({ content: "late answer", delayMs: 150 }));
  const first = await connectUser(running, "gone_asker");
  first.client.send({ message: "answer me later" });
  await model.waitForRequests(model.requests.length + 1);
  await first.client.close();
  const back = await connectUser(running, "gone_asker", "?stream=1");
  // If the turn is still running it is replayed; either way the history ends with the answer.
  for (;;) {
    back.client.send({ type: "history" });
    const history = await back.client.nextMatching((f) => f.type === "history");
    const items = history.items as Frame[];
    if (items.at(-1)?.role === "assistant") {
      assert.equal(items.at(-1)?.content, "late answer");
      break;
    }
    await back.client.nextMatching((f) => f.type === "answer");
  }
  await back.client.close();
});
