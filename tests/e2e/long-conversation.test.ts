// Long conversations: the context is fitted by tokens. The scripted model enforces a context window and refuses
// longer requests with OpenAI's exact `context_length_exceeded` error; a conversation far longer
// than the window, with large tool results, never gets stuck.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { afterTool, lastUserText, promptTokens, startModelServer, type ModelServer } from "../helpers/model-server.ts";
import {
  baseConfig,
  connectUser,
  readLog,
  startServer,
  testServerEntry,
  type Frame,
  type RunningServer,
  type TestClient,
  until,
} from "../helpers/harness.ts";
import { CONTEXT_FULL_MESSAGE } from "../../lib/agent/turn-error.ts";

// About 12 KB of prose (~2.5k tokens) in the test server's environment: its `env` tool returns it.
const PROSE = Array.from({ length: 220 }, (_, n) => `Line ${n} of a long page the agent fetched, with words to count.`).join("\n");
const WINDOW = 8_000;

let model: ModelServer;

before(async () => {
  model = await startModelServer({ tokenLimit: WINDOW });
  // "read N" makes the model call the env tool (a large result); after it, a short answer.
  model.setResponder((request) =>
    afterTool(request)
      ? { content: `noted ${lastUserText(request)}` }
      : lastUserText(request).startsWith("read")
        ? { toolCalls: [{ name: "test_env", arguments: {} }] }
        : { content: `echo: ${lastUserText(request)}` },
  );
});
after(() => model.close());

async function start(agent: Record<string, unknown>): Promise<RunningServer> {
  return startServer({
    config: baseConfig(
      model.baseUrl,
      { test: { ...testServerEntry, env: { PROSE } } },
      {
        agent,
        // The in-memory history holds the whole conversation: the token budget, not the message cap, decides.
        session: { max_history_messages: 5000 },
        limits: { messages_per_minute: 100_000, message_burst: 100_000 },
      },
    ),
    secrets: { openai: { api_key: "sk-test-long" } },
  });
}

/** Sends a message on a streaming socket and reads until its turn ends; returns the last frame. */
async function turn(client: TestClient, message: string): Promise<Frame> {
  client.send({ message });
  return client.nextMatching((frame) => frame.type === "answer" || frame.type === "error" || frame.type === "cancelled", 30_000);
}

test("a 300-turn conversation with large tool results keeps working inside the model's window", async () => {
  const running = await start({ max_context_tokens: WINDOW, reply_reserve_tokens: 1000 });
  try {
    const { client } = await connectUser(running, "long_talker", "?stream=1");
    const first = model.requests.length;
    for (let n = 0; n < 300; n++) {
      const end = await turn(client, `read ${n}`);
      assert.equal(end.type, "answer", `turn ${n} ended with ${JSON.stringify(end)}`);
      assert.equal(end.message, `noted read ${n}`);
    }
    const requests = model.requests.slice(first);
    assert.equal(requests.length, 600, "two model calls per turn, none refused and retried");
    assert.equal(model.refusedForLength, 0, "no request was over the model's window");
    const biggest = Math.max(...requests.map((request) => promptTokens(request)));
    assert.ok(biggest <= WINDOW, `largest request: ${biggest} tokens`);
    // The last request left the oldest turns out, and older tool results went in shortened.
    const last = requests.at(-1);
    const userTexts = (last?.messages ?? []).filter((message) => message.role === "user").map((message) => message.content);
    assert.ok(!userTexts.includes("read 0"), "the first turn was left out");
    assert.ok(userTexts.includes("read 299") && userTexts.includes("read 298"), "recent turns are kept");
    const toolResults = (last?.messages ?? []).filter((message) => message.role === "tool").map((message) => String(message.content));
    assert.ok(
      toolResults.slice(0, -1).some((content) => content.includes("left out to fit the model's context window")),
      "an older tool result was shortened",
    );
    assert.ok(toolResults.at(-1)?.includes("Line 219 of a long page"), "the running turn's tool result is whole");
    // The stored history keeps everything: every turn, every full result.
    // In pages, newest first, as a client pages back through a long history.
    const items: Frame[] = [];
    let before: number | undefined;
    do {
      client.send({ type: "history", limit: 1000, ...(before === undefined ? {} : { before }) });
      const page = await client.nextMatching((frame) => frame.type === "history");
      items.unshift(...(page.items as Frame[]));
      before = Number(page.start);
    } while (before > 0);
    assert.equal(items.filter((item) => item.role === "user").length, 300);
    assert.equal(items.filter((item) => item.role === "tool" && item.ok === true).length, 300);
    const fitted = readLog(running.logPath).filter((line) => line.event === "context_fitted");
    assert.ok(fitted.length > 0 && fitted.some((line) => Number(line.dropped_turns) > 0), "the log says turns were left out");
    await client.close();
  } finally {
    await running.close();
  }
});

test("when the model still says the request is too long, the turn trims harder and retries once", async () => {
  // The config claims a far larger window than the model has: our fitting lets everything through.
  const running = await start({ max_context_tokens: 200_000, reply_reserve_tokens: 500 });
  try {
    const { client } = await connectUser(running, "over_claimer", "?stream=1");
    model.setTokenLimit(undefined);
    for (let n = 0; n < 4; n++) assert.equal((await turn(client, `read ${n}`)).type, "answer");
    model.setTokenLimit(4_000);
    const refusedBefore = model.refusedForLength;
    const end = await turn(client, "what did you read?");
    assert.equal(end.type, "answer", JSON.stringify(end));
    assert.equal(end.message, "echo: what did you read?");
    assert.equal(model.refusedForLength - refusedBefore, 1, "one refusal, then a request that fit");
    // Log lines are written just after the frames: wait for the line rather than race it.
    const warnedLines = () => readLog(running.logPath).filter((line) => line.event === "context_length_exceeded");
    await until(() => warnedLines().length > 0, "the context_length_exceeded log line");
    assert.equal(warnedLines().at(-1)?.model_window, 4_000, "the window named in the model's error was used");
    // The window is remembered: the next turn is fitted to it at once, not refused first.
    const next = await turn(client, "anything else?");
    assert.equal(next.type, "answer", JSON.stringify(next));
    assert.equal(model.refusedForLength - refusedBefore, 1, "no further refusal");
    await client.close();
  } finally {
    model.setTokenLimit(WINDOW);
    await running.close();
  }
});

test("a request that cannot fit even alone fails with a clear error, and the conversation goes on after", async () => {
  const running = await start({ max_context_tokens: WINDOW, reply_reserve_tokens: 1000 });
  try {
    const { client } = await connectUser(running, "too_small", "?stream=1");
    model.setTokenLimit(20);
    const end = await turn(client, "hello");
    assert.equal(end.type, "error");
    assert.equal(end.error, `An error occurred: ${CONTEXT_FULL_MESSAGE}`);
    assert.match(String(end.error), /New chat.*agent\.max_context_tokens/s);
    model.setTokenLimit(WINDOW);
    const next = await turn(client, "hello again");
    assert.equal(next.type, "answer", "the session is not stuck");
    await client.close();
  } finally {
    model.setTokenLimit(WINDOW);
    await running.close();
  }
});
