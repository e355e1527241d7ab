// Model endpoints as they are. A server that ignores `stream: true` and answers
// plain JSON is read as a whole answer; mcp-agent's openai keys (max_tokens, reasoning_effort,
// user, default_headers) are passed through as it passes them; the seed answer carries all the
// assistant text of the turn, joined with newlines.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { afterTool, lastUserText, startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";
import {
  ask,
  baseConfig,
  connectUser,
  startServer,
  testServerEntry,
  type Frame,
  type RunningServer,
  type TestClient,
} from "../helpers/harness.ts";

let model: ModelServer;
before(async () => {
  model = await startModelServer({ responder: (request) => toolDirective(request) ?? { content: `echo: ${lastUserText(request)}` } });
});
after(() => model.close());

const secrets = { openai: { api_key: "sk-test-endpoints" } };

async function readTurn(client: TestClient, message: string): Promise<Frame[]> {
  client.send({ message });
  const frames: Frame[] = [];
  for (;;) {
    const frame = await client.next();
    frames.push(frame);
    if (frame.type === "answer" || frame.type === "error" || frame.type === "cancelled") return frames;
  }
}

test("a server that answers plain JSON to a streamed request is read as a whole answer, tool calls included", async () => {
  const running = await startServer({ config: baseConfig(model.baseUrl, { test: testServerEntry }), secrets });
  model.setIgnoreStream(true);
  try {
    const { client } = await connectUser(running, "json_only", "?stream=1");
    let frames = await readTurn(client, "hello json");
    assert.equal(model.requests.at(-1)?.stream, true, "a stream was asked for");
    assert.deepEqual(
      frames.filter((frame) => frame.type === "delta").map((frame) => frame.text),
      ["echo: hello json"],
      "the whole text reaches streaming sockets as one delta",
    );
    const answer = frames.at(-1);
    assert.equal(answer?.type, "answer");
    assert.equal(answer?.message, "echo: hello json");
    assert.ok(Number((answer?.usage as Record<string, number>).prompt_tokens) > 0, "usage read from the JSON body");
    frames = await readTurn(client, 'CALL test_echo {"text":"via json"}');
    assert.ok(frames.some((frame) => frame.type === "tool_start" && frame.name === "test_echo"));
    assert.equal(frames.at(-1)?.message, "RESULT echo:via json");
    // Seed sockets too.
    const seed = await connectUser(running, "json_only");
    assert.equal((await ask(seed.client, "seed over json")).message, "echo: seed over json");
    await seed.client.close();
    await client.close();
  } finally {
    model.setIgnoreStream(false);
    await running.close();
  }
});

test("an endpoint that rejects stream_options is asked again without it, and from then on never with it", async () => {
  const running = await startServer({ config: baseConfig(model.baseUrl), secrets });
  try {
    const { client } = await connectUser(running, "old_azure", "?stream=1");
    model.queue({ status: 400, errorMessage: "Unrecognized request argument supplied: stream_options" });
    const first = model.requests.length;
    client.send({ message: "hello" });
    const answer = await client.nextMatching((frame) => frame.type === "answer" || frame.type === "error");
    assert.equal(answer.type, "answer", JSON.stringify(answer));
    assert.equal(answer.message, "echo: hello");
    assert.equal((answer.usage as Record<string, unknown>).estimated, true, "usage counted here instead");
    client.send({ message: "again" });
    await client.nextMatching((frame) => frame.type === "answer");
    const requests = model.requests.slice(first);
    assert.deepEqual(
      requests.map((request) => request.stream_options !== undefined),
      [true, false, false],
    );
    await client.close();
  } finally {
    await running.close();
  }
});

async function withModel(openai: Record<string, unknown>, run: (running: RunningServer) => Promise<void>): Promise<void> {
  const config = baseConfig(model.baseUrl);
  const running = await startServer({ config: { ...config, openai: { ...config.openai, ...openai } }, secrets });
  try {
    await run(running);
  } finally {
    await running.close();
  }
}

test("openai.max_tokens, user and default_headers are passed through; reasoning_effort only to reasoning models", async () => {
  await withModel(
    {
      default_model: "gpt-4o-mini",
      max_tokens: 321,
      user: "end-user-7",
      reasoning_effort: "low",
      default_headers: { "X-Gateway-Key": "gw-1" },
    },
    async (running) => {
      const { client } = await connectUser(running, "params");
      await ask(client, "hi");
      const request = model.requests.at(-1);
      assert.equal(request?.max_tokens, 321);
      assert.equal(request?.max_completion_tokens, undefined);
      assert.equal(request?.user, "end-user-7");
      assert.equal(request?.reasoning_effort, undefined, "not a reasoning model");
      assert.equal(request?.headers?.["x-gateway-key"], "gw-1");
      await client.close();
    },
  );
  // As mcp-agent: o1/o3/o4/gpt-5 get max_completion_tokens and reasoning_effort (default "medium").
  await withModel({ default_model: "o3-mini", max_tokens: 500 }, async (running) => {
    const { client } = await connectUser(running, "params");
    await ask(client, "think");
    const request = model.requests.at(-1);
    assert.equal(request?.model, "o3-mini");
    assert.equal(request?.max_completion_tokens, 500);
    assert.equal(request?.max_tokens, undefined);
    assert.equal(request?.reasoning_effort, "medium");
    assert.equal(request?.user, undefined, "no user unless configured");
    await client.close();
  });
});

test("the seed answer carries all the assistant text of the turn, joined with newlines; streaming sockets keep their deltas", async () => {
  const running = await startServer({ config: baseConfig(model.baseUrl, { test: testServerEntry }), secrets });
  model.setResponder((request) =>
    afterTool(request)
      ? { content: "The echo came back." }
      : { content: "Let me check that.", toolCalls: [{ name: "test_echo", arguments: { text: "x" } }] },
  );
  try {
    const live = await connectUser(running, "narrator", "?stream=1");
    const seed = await connectUser(running, "narrator");
    const answer = await ask(seed.client, "go");
    assert.deepEqual(answer, {
      message: "Let me check that.\nThe echo came back.",
      user_id: "narrator",
      session_id: seed.welcome.session_id,
    });
    const frames: Frame[] = [];
    for (;;) {
      const frame = await live.client.next();
      frames.push(frame);
      if (frame.type === "answer") break;
    }
    assert.equal(
      frames
        .filter((frame) => frame.type === "delta")
        .map((frame) => frame.text)
        .join(""),
      "Let me check that.The echo came back.",
    );
    assert.equal(frames.at(-1)?.message, "The echo came back.", "answer.message on streaming sockets stays the last message");
    await live.client.close();
    await seed.client.close();
  } finally {
    model.setResponder((request) => toolDirective(request) ?? { content: `echo: ${lastUserText(request)}` });
    await running.close();
  }
});
