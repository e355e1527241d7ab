// OpenAI-compatible servers as they really stream, through the real SDK and the real server
// socket: tool calls without index or ids, whole or interleaved, one id for every call, reasoning,
// filter-only chunks, SSE comments and CRLF, usage in vendor fields, errors inside the stream,
// answers cut by the model's length limit.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { startModelServer, afterTool, lastToolResult, type ModelServer, type ScriptedReply } from "../helpers/model-server.ts";
import {
  baseConfig,
  connectUser,
  ROOT,
  startServer,
  testServerEntry,
  type Frame,
  type RunningServer,
  type TestClient,
} from "../helpers/harness.ts";

let model: ModelServer;
let running: RunningServer;

before(async () => {
  model = await startModelServer();
  running = await startServer({
    config: baseConfig(model.baseUrl, { test: testServerEntry }),
    secrets: { openai: { api_key: "sk-test-shapes" } },
  });
});
after(async () => {
  await running.close();
  await model.close();
});

let users = 0;
beforeEach(() => {
  model.setResponder(() => ({ content: "default" }));
});

async function readTurn(client: TestClient): Promise<Frame[]> {
  const frames: Frame[] = [];
  for (;;) {
    const frame = await client.next();
    frames.push(frame);
    if (frame.type === "answer" || frame.type === "error" || frame.type === "cancelled") return frames;
  }
}

/** One turn on a fresh streaming socket: every frame it produced. */
async function turn(message: string): Promise<Frame[]> {
  const { client } = await connectUser(running, `shapes_${users++}`, "?stream=1");
  client.send({ message });
  const frames = await readTurn(client);
  await client.close();
  return frames;
}

const text = (frames: Frame[], type = "delta") =>
  frames
    .filter((frame) => frame.type === type)
    .map((frame) => String(frame.text))
    .join("");
const toolStarts = (frames: Frame[]) => frames.filter((frame) => frame.type === "tool_start").map((frame) => frame.arguments);
const toolEnds = (frames: Frame[]) => frames.filter((frame) => frame.type === "tool_end").map((frame) => frame.preview);

/** Two echo calls in the shape `shape` asks for, then an answer naming the results the model got. */
function twoEchoCalls(shape: Partial<ScriptedReply>) {
  model.setResponder((request) => {
    if (afterTool(request)) {
      const results = request.messages.filter((message) => message.role === "tool").map((message) => message.content);
      return { content: `got ${results.join(" + ")}` };
    }
    return {
      ...shape,
      toolCalls: [
        { name: "test_echo", arguments: { text: "one" }, id: "call_0" },
        { name: "test_echo", arguments: { text: "two" }, id: "call_0" },
      ],
    };
  });
}

for (const [name, shape] of [
  ["without index", { toolCallIndex: false }],
  ["without index or ids", { toolCallIndex: false, toolCallIds: false }],
  ["each whole in one chunk", { wholeToolCalls: true }],
  ["all in one chunk without index", { toolCallsInOneChunk: true, toolCallIndex: false }],
  ["interleaved", { interleaveToolCalls: true }],
  ["with finish_reason stop", { finishReason: "stop" }],
] as const) {
  test(`two tool calls that share the id call_0, ${name}: both run and the model gets both results`, async () => {
    twoEchoCalls(shape);
    const frames = await turn("call twice");
    assert.deepEqual(toolStarts(frames), [{ text: "one" }, { text: "two" }]);
    assert.deepEqual(toolEnds(frames).sort(), ["echo:one", "echo:two"]);
    const answer = frames.at(-1);
    assert.equal(answer?.type, "answer");
    assert.equal(answer?.message, "got echo:one + echo:two");
    // The ids the model saw back are ours: distinct, and each tool result names its own call.
    const followUp = model.requests.at(-1);
    const assistant = followUp?.messages.find((message) => message.role === "assistant");
    const ids = assistant?.tool_calls?.map((call) => call.id) ?? [];
    assert.equal(new Set(ids).size, 2);
    assert.deepEqual(
      followUp?.messages.filter((message) => message.role === "tool").map((message) => message.tool_call_id),
      ids,
    );
  });
}

test("every answer naming its tool call call_0: each turn's calls and results stay paired in the history", async () => {
  model.setResponder((request) =>
    afterTool(request)
      ? { content: `RESULT ${lastToolResult(request)}` }
      : { toolCalls: [{ name: "test_echo", arguments: { text: "x" }, id: "call_0" }] },
  );
  const { client } = await connectUser(running, "same_id_history", "?stream=1");
  for (const message of ["first", "second"]) {
    client.send({ message });
    const frames = await readTurn(client);
    assert.equal(frames.at(-1)?.message, "RESULT echo:x");
  }
  client.send({ type: "history" });
  const history = await client.nextMatching((frame) => frame.type === "history");
  const tools = (history.items as Frame[]).filter((item) => item.role === "tool");
  assert.equal(tools.length, 2);
  assert.notEqual(tools[0]?.call_id, tools[1]?.call_id);
  assert.ok(tools.every((item) => item.ok === true && item.preview === "echo:x"));
  await client.close();
});

test("SSE comments, CRLF line ends and filter-only chunks with empty choices are read through", async () => {
  model.setResponder(() => ({ content: "Comments and CRLF are fine.", sseComments: true, crlf: true, emptyChoices: true }));
  const frames = await turn("hello");
  assert.equal(text(frames), "Comments and CRLF are fine.");
  assert.equal(frames.at(-1)?.message, "Comments and CRLF are fine.");
});

for (const usageAt of ["finish_chunk", "x_groq", "choice"] as const) {
  test(`usage reported in ${usageAt === "x_groq" ? "x_groq.usage" : `the ${usageAt.replace("_", " ")}`} is counted, not estimated`, async () => {
    model.setResponder(() => ({ content: "counted", usageAt }));
    const frames = await turn("count me");
    const usage = frames.at(-1)?.usage as Record<string, unknown> | undefined;
    const sent = model.requests.at(-1);
    assert.ok(sent);
    assert.equal(usage?.estimated, undefined, "the numbers came from the server");
    assert.equal(usage?.completion_tokens, 2, "the scripted server's count (4 characters a token)");
  });
}

test("an error object inside the stream ends the turn as an error that quotes it", async () => {
  model.setResponder(() => ({
    content: "partial answer",
    streamError: { message: "upstream model overloaded", code: "overloaded", afterChunks: 2 },
  }));
  const frames = await turn("fail midway");
  const last = frames.at(-1);
  assert.equal(last?.type, "error");
  assert.match(String(last?.error), /the model API sent an error instead of an answer: upstream model overloaded/);
});

test("an answer cut by finish_reason length says so in its text and in finish_reason", async () => {
  model.setResponder(() => ({ content: "Once upon a time", finishReason: "length" }));
  const frames = await turn("tell a long story");
  const answer = frames.at(-1);
  assert.equal(answer?.type, "answer");
  assert.equal(answer?.finish_reason, "length");
  assert.match(String(answer?.message), /^Once upon a time\n\n\[the answer is incomplete: .*finish_reason: length/);
  assert.match(text(frames), /finish_reason: length/, "the note is streamed too");
});

test("the CLI prints a cut answer and says on stderr that it is incomplete", async () => {
  model.setResponder(() => ({ content: "Once upon a time", finishReason: "length" }));
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", path.join(ROOT, "client.ts"), "--url", running.url, "--user", "cli_cut", "-m", "a long story"],
    { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" } },
  );
  assert.match(stdout, /^Once upon a time/);
  assert.match(stderr, /the answer is incomplete: the model stopped at its output limit \(finish_reason: length\)/);
});

test("content_filter is reported the same way; a normal answer has no finish_reason", async () => {
  model.setResponder(() => ({ content: "I was", finishReason: "content_filter" }));
  const filtered = (await turn("filtered")).at(-1);
  assert.equal(filtered?.finish_reason, "content_filter");
  assert.match(String(filtered?.message), /content filter/);
  model.setResponder(() => ({ content: "whole" }));
  const whole = (await turn("normal")).at(-1);
  assert.equal(whole?.message, "whole");
  assert.equal("finish_reason" in (whole ?? {}), false);
});

for (const field of ["reasoning_content", "reasoning"] as const) {
  test(`${field} streams as reasoning_delta, never as the answer; history keeps it; it is not sent back`, async () => {
    model.setResponder(() => ({ content: "The answer is 4.", reasoning: "2 plus 2 is 4.", reasoningField: field }));
    const { client } = await connectUser(running, `thinker_${field}`, "?stream=1");
    client.send({ message: "what is 2+2" });
    const frames = await readTurn(client);
    assert.equal(text(frames, "reasoning_delta"), "2 plus 2 is 4.");
    assert.equal(text(frames), "The answer is 4.");
    assert.equal(frames.at(-1)?.message, "The answer is 4.");
    const firstReasoning = frames.findIndex((frame) => frame.type === "reasoning_delta");
    const firstDelta = frames.findIndex((frame) => frame.type === "delta");
    assert.ok(firstReasoning < firstDelta, "reasoning comes first, as it was streamed");
    client.send({ type: "history" });
    const history = await client.nextMatching((frame) => frame.type === "history");
    const assistant = (history.items as Frame[]).find((item) => item.role === "assistant");
    assert.deepEqual([assistant?.content, assistant?.reasoning], ["The answer is 4.", "2 plus 2 is 4."]);
    // The next request carries the answer, not the reasoning.
    model.setResponder(() => ({ content: "ok" }));
    client.send({ message: "and 3+3?" });
    await readTurn(client);
    const sent = model.requests.at(-1)?.messages.find((message) => message.role === "assistant");
    assert.equal(sent?.content, "The answer is 4.");
    assert.equal(JSON.stringify(model.requests.at(-1)?.messages).includes("2 plus 2"), false);
    await client.close();
  });
}

test("a server that ignores stream: reasoning and tool calls without index from the whole JSON answer", async () => {
  model.setIgnoreStream(true);
  try {
    twoEchoCalls({ reasoning: "two calls needed" });
    const frames = await turn("call twice, whole");
    assert.equal(text(frames, "reasoning_delta"), "two calls needed");
    assert.deepEqual(toolStarts(frames), [{ text: "one" }, { text: "two" }]);
    assert.equal(frames.at(-1)?.message, "got echo:one + echo:two");
  } finally {
    model.setIgnoreStream(false);
  }
});

test("with openai.send_reasoning the earlier reasoning goes back as reasoning_content", async () => {
  const sending = await startServer({
    config: {
      ...baseConfig(model.baseUrl),
      openai: { base_url: model.baseUrl, default_model: "test-model", max_retries: 0, send_reasoning: true },
    },
    secrets: { openai: { api_key: "sk-test-shapes" } },
  });
  try {
    model.setResponder(() => ({ content: "4", reasoning: "2+2=4" }));
    const { client } = await connectUser(sending, "sends_reasoning", "?stream=1");
    client.send({ message: "2+2?" });
    await readTurn(client);
    model.setResponder(() => ({ content: "ok" }));
    client.send({ message: "sure?" });
    await readTurn(client);
    await client.close();
    const assistant = model.requests.at(-1)?.messages.find((message) => message.role === "assistant") as
      Record<string, unknown> | undefined;
    assert.equal(assistant?.reasoning_content, "2+2=4");
  } finally {
    await sending.close();
  }
});

test("<think> tags in the content (servers without a reasoning parser) stream as reasoning, not as the answer", async () => {
  model.setResponder(() => ({ content: "<think>2 plus 2 is 4.</think>\n\nIt is 4.", chunkChars: 3 }));
  const frames = await turn("2+2 with tags");
  assert.equal(text(frames, "reasoning_delta"), "2 plus 2 is 4.");
  assert.equal(text(frames), "It is 4.");
  assert.equal(frames.at(-1)?.message, "It is 4.");
});
