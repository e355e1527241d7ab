// The agent loop end to end (agent.ts): tool calls, concurrency, the iteration cap, model errors and
// the history — real server, real MCP child, scripted model.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startModelServer, lastUserText, afterTool, type ModelServer, type ChatRequest } from "../helpers/model-server.ts";
import { ask, baseConfig, connectUser, startServer, testServerEntry, type RunningServer } from "../helpers/harness.ts";

let model: ModelServer;
let running: RunningServer;

before(async () => {
  model = await startModelServer();
  running = await startServer({
    config: baseConfig(model.baseUrl, { test: testServerEntry }, { session: { max_history_messages: 50 } }),
    secrets: { openai: { api_key: "sk-test-agent" } },
  });
});
after(async () => {
  await running.close();
  await model.close();
});
beforeEach(() => model.setResponder((request) => ({ content: `echo: ${lastUserText(request)}` })));

function toolResults(request: ChatRequest): string[] {
  return request.messages.filter((message) => message.role === "tool").map((message) => String(message.content));
}

test("the model sees every tool of the server as <server>_<tool> with description and schema", async () => {
  const { client } = await connectUser(running, "tool_lister");
  await ask(client, "hi");
  const tools = model.requests.at(-1)?.tools ?? [];
  const names = tools.map((tool) => tool.function.name).sort();
  assert.deepEqual(names, ["test_barrier", "test_big", "test_crash", "test_echo", "test_env", "test_fail", "test_pid", "test_slow"]);
  const echo = tools.find((tool) => tool.function.name === "test_echo");
  assert.equal(echo?.function.description, "Echoes its text");
  assert.deepEqual(Object.keys((echo?.function.parameters as { properties: object }).properties), ["text"]);
  assert.equal(model.requests.at(-1)?.model, "test-model");
  assert.equal(model.requests.at(-1)?.authorization, "Bearer sk-test-agent");
  await client.close();
});

test("a tool call runs, its result goes back to the model, and the answer comes back", async () => {
  model.setResponder((request) =>
    afterTool(request)
      ? { content: `the tool said ${toolResults(request).at(-1)}` }
      : { toolCalls: [{ name: "test_echo", arguments: { text: "ping" } }] },
  );
  const { client } = await connectUser(running, "tool_user");
  const answer = await ask(client, "use the tool");
  assert.equal(answer.message, "the tool said echo:ping");
  await client.close();
});

test("several tool calls in one response run concurrently, results in call order", async () => {
  model.setResponder((request) =>
    afterTool(request)
      ? { content: toolResults(request).join(" | ") }
      : {
          toolCalls: [
            { name: "test_barrier", arguments: { key: "k1", n: 3 } },
            { name: "test_echo", arguments: { text: "middle" } },
            { name: "test_barrier", arguments: { key: "k1", n: 2 } },
          ],
        },
  );
  const { client } = await connectUser(running, "parallel_user");
  const answer = await ask(client, "go");
  // The barrier only opens when both barrier calls are in progress at the same time.
  assert.match(String(answer.message), /^together:\d \| echo:middle \| together:\d$/);
  await client.close();
});

test("failing tools are reported to the model as results, not as a failed turn", async () => {
  model.setResponder((request) =>
    afterTool(request)
      ? { content: `results: ${toolResults(request).join(" || ")}` }
      : {
          toolCalls: [
            { name: "test_fail", arguments: {} },
            { name: "nonexistent_tool", arguments: {} },
            { name: "test_echo", arguments: "{not json" },
          ],
        },
  );
  const { client } = await connectUser(running, "failing_tools");
  const answer = await ask(client, "try");
  const text = String(answer.message);
  assert.match(text, /Error: it failed on purpose/);
  assert.match(text, /Unknown tool "nonexistent_tool"/);
  assert.match(text, /not valid JSON/);
  assert.equal(answer.user_id, "failing_tools");
  await client.close();
});

test("a crashed MCP server is a tool error for the model; the turn still answers", async () => {
  model.setResponder((request) =>
    afterTool(request)
      ? { content: `after crash: ${toolResults(request).at(-1)}` }
      : { toolCalls: [{ name: "test_crash", arguments: {} }] },
  );
  const { client } = await connectUser(running, "crasher");
  const answer = await ask(client, "crash it");
  assert.match(String(answer.message), /^after crash: Error: .*(closed|exited|not available)/i);
  await client.close();
});

test("at most max_iterations model calls per turn, then an error frame naming the limit", async () => {
  const before = model.requests.length;
  model.setResponder(() => ({ toolCalls: [{ name: "test_echo", arguments: { text: "again" } }] }));
  const { client, welcome } = await connectUser(running, "looper");
  const frame = await ask(client, "loop forever");
  assert.deepEqual(Object.keys(frame), ["error", "code"]);
  assert.match(String(frame.error), /^An error occurred: .*limit of 10 model calls.*agent\.max_iterations/);
  assert.equal(frame.code, "turn_failed");
  assert.equal(model.requests.length - before, 10);
  // The socket and the session survive.
  model.setResponder((request) => ({ content: `echo: ${lastUserText(request)}` }));
  const next = await ask(client, "still there?");
  assert.equal(next.session_id, welcome.session_id);
  assert.equal(next.message, "echo: still there?");
  await client.close();
});

test("a model error ends the turn with an error frame; session and history are kept", async () => {
  const { client, welcome } = await connectUser(running, "model_error");
  assert.equal((await ask(client, "first question")).message, "echo: first question");
  model.queue({ status: 500, errorMessage: "the model is down" });
  const frame = await ask(client, "second question");
  assert.match(String(frame.error), /^An error occurred: .*500.*the model is down/);
  const third = await ask(client, "third question");
  assert.equal(third.session_id, welcome.session_id);
  const contents = model.requests.at(-1)?.messages.map((m) => m.content);
  assert.deepEqual(contents?.slice(1), ["first question", "echo: first question", "second question", "third question"]);
  await client.close();
});

test("history keeps every user, assistant and tool message so later turns see them", async () => {
  model.setResponder((request) => {
    if (lastUserText(request) === "write" && !afterTool(request))
      return { toolCalls: [{ name: "test_echo", arguments: { text: "remember me" } }] };
    return { content: `echo: ${lastUserText(request)}` };
  });
  const { client } = await connectUser(running, "historian");
  await ask(client, "write");
  await ask(client, "what did the tool say?");
  const messages = model.requests.at(-1)?.messages ?? [];
  assert.equal(messages[0]?.role, "system");
  assert.deepEqual(
    messages.slice(1).map((m) => m.role),
    ["user", "assistant", "tool", "assistant", "user"],
  );
  assert.equal(messages[2]?.tool_calls?.[0]?.function.name, "test_echo");
  assert.equal(messages[3]?.content, "echo:remember me");
  assert.equal(messages[3]?.tool_call_id, messages[2]?.tool_calls?.[0]?.id);
  await client.close();
});

test("the history is capped without leaving a tool result without its call", async () => {
  const capped = await startServer({
    config: baseConfig(model.baseUrl, { test: testServerEntry }, { session: { max_history_messages: 5 } }),
    secrets: { openai: { api_key: "sk-test-agent" } },
  });
  try {
    model.setResponder((request) =>
      afterTool(request) ? { content: "done" } : { toolCalls: [{ name: "test_echo", arguments: { text: lastUserText(request) } }] },
    );
    const { client } = await connectUser(capped, "capped");
    for (let i = 0; i < 4; i++) assert.equal((await ask(client, `turn ${i}`)).message, "done");
    const messages = model.requests.at(-1)?.messages ?? [];
    // System prompt + at most 5 history messages + the new user message... and the tool steps of this turn.
    const history = messages.slice(1);
    assert.equal(history[0]?.role, "user");
    for (const [index, message] of history.entries()) {
      if (message.role !== "tool") continue;
      const caller = history
        .slice(0, index)
        .reverse()
        .find((m) => m.role === "assistant" && m.tool_calls);
      assert.ok(
        caller?.tool_calls?.some((call) => call.id === message.tool_call_id),
        "tool result has its call",
      );
    }
    assert.ok(!history.some((m) => m.content === "turn 0"), "the oldest turn was trimmed");
    await client.close();
  } finally {
    await capped.close();
  }
});

test("with no API key anywhere a chat message gets an error that says how to set it", async () => {
  const keyless = await startServer({ config: baseConfig(model.baseUrl) });
  try {
    const { client } = await connectUser(keyless, "keyless");
    const frame = await ask(client, "hello?");
    assert.match(String(frame.error), /^An error occurred: no OpenAI API key.*mcp_agent\.secrets\.yaml.*OPENAI_API_KEY/);
    assert.equal((await ask(client, "again")).error, frame.error, "the socket stays open");
    await client.close();
  } finally {
    await keyless.close();
  }
});
