// OpenTelemetry traces end to end: a server started with OTEL_EXPORTER_OTLP_ENDPOINT sends one
// turn's spans over real OTLP/HTTP to a receiver in the test; one trace goes from the socket frame
// (invoke_agent) through the model calls (chat) and the tool call (execute_tool, with its
// approval) to a real MCP server, which got the trace's id in `_meta.traceparent`.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { afterTool, lastUserText, startModelServer, type ModelServer } from "../helpers/model-server.ts";
import { baseConfig, connectUser, startServer, testServerEntry, type RunningServer } from "../helpers/harness.ts";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../helpers/otlp-receiver.ts";

let model: ModelServer;
let receiver: OtlpReceiver;

before(async () => {
  model = await startModelServer();
  receiver = await startOtlpReceiver();
  model.setResponder((request) => {
    if (afterTool(request)) return { content: `MODEL SAW: ${String(request.messages.at(-1)?.content)}` };
    const text = lastUserText(request);
    return { toolCalls: [{ name: "test_echo", arguments: { text } }] };
  });
});

after(async () => {
  await receiver.close();
  await model.close();
});

function start(extra: Record<string, unknown> = {}, env: Record<string, string> = {}): Promise<RunningServer> {
  return startServer({
    config: baseConfig(model.baseUrl, { test: { ...testServerEntry, require_approval: ["echo"] } }, extra),
    secrets: { openai: { api_key: "sk-test-traces" } },
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_SERVICE_NAME: "traces-test", ...env },
  });
}

/** Every span of the trace whose root is the turn with this user's id. */
function turnTrace(userId: string): { root: ReceivedSpan; spans: ReceivedSpan[] } {
  const root = receiver.spans.find((span) => span.name === "invoke_agent mcp-agent-ws" && span.attributes["user.id"] === userId);
  assert.ok(root, `a turn span for ${userId} (got ${receiver.spans.map((span) => span.name).join(", ")})`);
  return { root, spans: receiver.spans.filter((span) => span.traceId === root.traceId) };
}

test("one trace from the socket frame to the MCP server's tool call, flushed when the server closes", async () => {
  const running = await start();
  let closed = false;
  try {
    const { client } = await connectUser(running, "tracy", "?stream=1");
    client.send({ message: "secret-words-42" });
    const request = await client.nextMatching((frame) => frame.type === "approval_request");
    client.send({ type: "approval", call_id: request.call_id, approved: true });
    const answer = await client.nextMatching((frame) => frame.type === "answer");
    const message = String(answer.message);
    // The MCP server echoed the traceparent it received in _meta: the trace reached it.
    const traceparent = /traceparent:(00-[\da-f]{32}-[\da-f]{16}-[\da-f]{2})/.exec(message)?.[1];
    assert.ok(traceparent, `the tool result names a traceparent: ${message}`);
    client.ws.close();
    await running.close();
    closed = true;

    const { root, spans } = turnTrace("tracy");
    const byName = (name: string) => spans.filter((span) => span.name === name);
    assert.equal(root.parentSpanId, undefined, "the turn is the root: it starts with the socket frame");
    assert.equal(root.attributes["gen_ai.operation.name"], "invoke_agent");
    assert.equal(root.attributes["gen_ai.request.model"], "test-model");
    assert.equal(root.attributes["mcp_agent.outcome"], "ok");
    assert.equal(root.resource["service.name"], "traces-test");
    const chats = byName("chat test-model");
    assert.equal(chats.length, 2, "two model calls: the tool call, then the answer");
    for (const chat of chats) {
      assert.equal(chat.parentSpanId, root.spanId);
      assert.equal(chat.attributes["gen_ai.operation.name"], "chat");
      assert.equal(typeof chat.attributes["gen_ai.usage.input_tokens"], "number");
      assert.equal(typeof chat.attributes["gen_ai.usage.output_tokens"], "number");
    }
    assert.deepEqual(
      chats.map((chat) => chat.attributes["gen_ai.response.finish_reasons"]),
      [["tool_calls"], ["stop"]],
    );
    const [tool] = byName("execute_tool test_echo");
    assert.ok(tool, "the tool call's span");
    assert.equal(tool.parentSpanId, root.spanId);
    assert.equal(tool.attributes["gen_ai.tool.name"], "test_echo");
    assert.equal(tool.attributes["mcp_agent.mcp.server"], "test");
    assert.equal(tool.attributes["mcp_agent.outcome"], "ok");
    // What the MCP server got is the context of exactly this span.
    assert.equal(traceparent, `00-${root.traceId}-${tool.spanId}-01`);
    const [approval] = byName("approval test_echo");
    assert.equal(approval?.parentSpanId, tool.spanId);
    assert.equal(approval?.attributes["mcp_agent.outcome"], "approved");
    // Session start and the MCP server's start are spans of their own.
    assert.ok(receiver.spans.some((span) => span.name === "session start" && span.attributes["user.id"] === "tracy"));
    assert.ok(receiver.spans.some((span) => span.name === "mcp_server start test" && span.attributes["mcp_agent.outcome"] !== "error"));
    // No message text and no tool arguments without observability.capture_content.
    assert.doesNotMatch(JSON.stringify(spans), /secret-words-42/);
  } finally {
    if (!closed) await running.close();
  }
});

test("observability.capture_content puts the messages and the tool's arguments in the spans", async () => {
  const running = await start({ observability: { capture_content: true } });
  try {
    const { client } = await connectUser(running, "carla", "?stream=1");
    client.send({ message: "visible-words-7" });
    const request = await client.nextMatching((frame) => frame.type === "approval_request");
    client.send({ type: "approval", call_id: request.call_id, approved: false, reason: "not now" });
    await client.nextMatching((frame) => frame.type === "answer");
    client.ws.close();
  } finally {
    await running.close();
  }
  const { root, spans } = turnTrace("carla");
  assert.match(String(root.attributes["gen_ai.input.messages"]), /visible-words-7/);
  const tool = spans.find((span) => span.name === "execute_tool test_echo");
  assert.match(String(tool?.attributes["gen_ai.tool.call.arguments"]), /visible-words-7/);
  assert.equal(tool?.attributes["mcp_agent.outcome"], "denied");
  assert.equal(tool?.statusCode, 2);
  assert.ok(
    spans.some((span) => span.name === "chat test-model" && String(span.attributes["gen_ai.input.messages"]).includes("visible-words-7")),
  );
});

test("without OTEL_* variables nothing is sent and the MCP server gets no traceparent", async () => {
  const before = receiver.spans.length;
  const running = await startServer({
    config: baseConfig(model.baseUrl, { test: testServerEntry }),
    secrets: { openai: { api_key: "sk-test-traces" } },
  });
  try {
    const { client } = await connectUser(running, "nobody", "?stream=1");
    client.send({ message: "plain" });
    const answer = await client.nextMatching((frame) => frame.type === "answer");
    assert.equal(answer.message, "MODEL SAW: echo:plain");
    client.ws.close();
  } finally {
    await running.close();
  }
  assert.equal(receiver.spans.length, before);
});
