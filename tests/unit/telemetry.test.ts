// The tracer and its settings: which OTEL_* environments turn traces on, and what reaches a real
// OTLP/HTTP receiver (names, parents, GenAI attributes, no content unless asked, flushed on close).
import assert from "node:assert/strict";
import { test } from "node:test";
import { endModelCall, endToolCall, endTurn, modelCallSpan, toolCallSpan, turnSpan } from "../../lib/telemetry/spans.ts";
import { NOOP_SPAN, parseCarrier, traceMeta, Tracing } from "../../lib/telemetry/tracer.ts";
import { parseKeyValueList, traceSettingsFromEnv } from "../../lib/telemetry/settings.ts";
import { startOtlpReceiver } from "../helpers/otlp-receiver.ts";

test("traces are off without an endpoint, and with OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none", () => {
  assert.equal(traceSettingsFromEnv({}).enabled, false);
  assert.equal(traceSettingsFromEnv({ OTEL_SERVICE_NAME: "x" }).enabled, false);
  assert.equal(traceSettingsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }).enabled, false);
  assert.equal(traceSettingsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_TRACES_EXPORTER: "none" }).enabled, false);
});

test("the endpoint variables give the traces URL as the spec says", () => {
  const general = traceSettingsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" });
  assert.ok(general.enabled);
  assert.equal(general.url, "http://collector:4318/v1/traces");
  const specific = traceSettingsFromEnv({
    OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://traces.example/custom",
  });
  assert.ok(specific.enabled);
  assert.equal(specific.url, "https://traces.example/custom");
  const exporterOnly = traceSettingsFromEnv({ OTEL_TRACES_EXPORTER: "otlp" });
  assert.ok(exporterOnly.enabled);
  assert.equal(exporterOnly.url, "http://localhost:4318/v1/traces");
  assert.equal(exporterOnly.serviceName, "mcp-agent-ws");
});

test("service name, resource attributes, headers and timeout come from their variables", () => {
  const settings = traceSettingsFromEnv({
    OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
    OTEL_SERVICE_NAME: "agents-eu",
    OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=prod,team=ai%20ops",
    OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20abc,x-a=1",
    OTEL_EXPORTER_OTLP_TRACES_HEADERS: "x-a=2",
    OTEL_EXPORTER_OTLP_TIMEOUT: "2500",
  });
  assert.ok(settings.enabled);
  assert.equal(settings.serviceName, "agents-eu");
  assert.deepEqual(settings.resource, { "deployment.environment.name": "prod", team: "ai ops" });
  assert.deepEqual(settings.headers, { authorization: "Bearer abc", "x-a": "2" });
  assert.equal(settings.timeoutMs, 2500);
  assert.deepEqual(parseKeyValueList("a=1,=x,b,c=%zz"), { a: "1", c: "%zz" });
});

test("an unusable endpoint or exporter is a warning, never a failed start", () => {
  const bad = traceSettingsFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "collector:4318" });
  assert.equal(bad.enabled, false);
  assert.match(bad.warnings.join("\n"), /not an http\(s\) URL/);
  const zipkin = traceSettingsFromEnv({ OTEL_TRACES_EXPORTER: "zipkin,otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" });
  assert.ok(zipkin.enabled);
  assert.match(zipkin.warnings.join("\n"), /zipkin is not supported/);
  assert.match(zipkin.warnings.join("\n"), /grpc is not supported/);
});

test("with tracing off every span is the no-op one and nothing is serialised", async () => {
  const tracing = new Tracing({ settings: { enabled: false, warnings: [] }, captureContent: true, redact: (t) => t, serviceVersion: "0" });
  let serialised = false;
  const span = turnSpan(tracing, {
    userId: "u",
    sessionId: "s",
    turnId: "t",
    model: "m",
    input: () => {
      serialised = true;
      return "hello";
    },
  });
  assert.equal(span, NOOP_SPAN);
  assert.equal(span.carrier(), undefined);
  assert.equal(traceMeta(span), undefined);
  assert.equal(serialised, false);
  await tracing.close();
});

test("carriers from outside are checked before use", () => {
  const good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  assert.deepEqual(parseCarrier({ traceparent: good, tracestate: "a=b" }), { traceparent: good, tracestate: "a=b" });
  assert.equal(parseCarrier({ traceparent: "00-xyz" }), undefined);
  assert.equal(parseCarrier("00-…"), undefined);
  assert.equal(parseCarrier(null), undefined);
});

test("a turn's spans reach an OTLP/HTTP receiver as one trace, flushed by close()", async () => {
  const receiver = await startOtlpReceiver();
  try {
    const settings = traceSettingsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_SERVICE_NAME: "unit" });
    const tracing = new Tracing({ settings, captureContent: false, redact: (t) => t, serviceVersion: "9.9.9", instanceId: "i-1" });
    const turn = turnSpan(tracing, { userId: "alice", sessionId: "s1", turnId: "t1", model: "gpt-x", input: () => "secret words" });
    const chat = modelCallSpan(tracing, turn, {
      model: "gpt-x",
      baseUrl: "http://127.0.0.1:9999/v1",
      messages: () => [{ role: "user", content: "secret words" }],
    });
    endModelCall(tracing, chat, { inputTokens: 12, outputTokens: 3, finishReasons: ["tool_calls"], output: () => "secret answer" });
    const tool = toolCallSpan(tracing, turn, { tool: "echo", server: "test", callId: "c1", args: () => ({ text: "secret args" }) });
    const meta = traceMeta(tool);
    endToolCall(tracing, tool, "error");
    endTurn(turn, "ok");
    await tracing.close();

    const spans = receiver.spans;
    assert.deepEqual(spans.map((s) => s.name).sort(), ["chat gpt-x", "execute_tool echo", "invoke_agent mcp-agent-ws"]);
    assert.ok(receiver.contentTypes.every((type) => type.startsWith("application/json")));
    const root = spans.find((s) => s.name.startsWith("invoke_agent"));
    assert.ok(root);
    assert.equal(root.parentSpanId, undefined);
    for (const span of spans) {
      assert.equal(span.traceId, root.traceId);
      assert.equal(span.resource["service.name"], "unit");
      assert.equal(span.resource["service.instance.id"], "i-1");
      if (span !== root) assert.equal(span.parentSpanId, root.spanId);
    }
    const chatSpan = spans.find((s) => s.name === "chat gpt-x");
    assert.equal(chatSpan?.attributes["gen_ai.operation.name"], "chat");
    assert.equal(chatSpan?.attributes["gen_ai.request.model"], "gpt-x");
    assert.equal(chatSpan?.attributes["gen_ai.usage.input_tokens"], 12);
    assert.equal(chatSpan?.attributes["gen_ai.usage.output_tokens"], 3);
    assert.deepEqual(chatSpan?.attributes["gen_ai.response.finish_reasons"], ["tool_calls"]);
    assert.equal(chatSpan?.attributes["server.port"], 9999);
    const toolSpan = spans.find((s) => s.name === "execute_tool echo");
    assert.equal(toolSpan?.attributes["gen_ai.tool.name"], "echo");
    assert.equal(toolSpan?.attributes["mcp_agent.outcome"], "error");
    assert.equal(toolSpan?.statusCode, 2);
    // The tool span's context is what an MCP server gets in _meta.traceparent.
    assert.equal(meta?.traceparent, `00-${root.traceId}-${toolSpan?.spanId}-01`);
    // No content anywhere without observability.capture_content.
    assert.doesNotMatch(JSON.stringify(spans), /secret/);
  } finally {
    await receiver.close();
  }
});

test("with capture_content the spans carry content, redacted, and a remote parent joins its trace", async () => {
  const receiver = await startOtlpReceiver();
  try {
    const settings = traceSettingsFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.endpoint}/v1/traces` });
    const tracing = new Tracing({
      settings,
      captureContent: true,
      redact: (text) => text.replaceAll("sk-hidden", "[REDACTED]"),
      serviceVersion: "1",
    });
    const remote = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const turn = turnSpan(tracing, {
      userId: "u",
      sessionId: "s",
      turnId: "t",
      model: "m",
      input: () => "my key sk-hidden",
      parent: { traceparent: remote },
    });
    const tool = toolCallSpan(tracing, turn, { tool: "echo", server: "test", callId: "c", args: () => ({ text: "hi" }) });
    endToolCall(tracing, tool, "ok", () => "echo: hi");
    endTurn(turn, "error", { code: "model_error", message: "boom" });
    await tracing.close();
    const root = receiver.spans.find((s) => s.name.startsWith("invoke_agent"));
    assert.equal(root?.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert.equal(root?.parentSpanId, "00f067aa0ba902b7");
    assert.equal(root?.attributes["gen_ai.input.messages"], "my key [REDACTED]");
    assert.equal(root?.attributes["error.type"], "model_error");
    assert.equal(root?.statusCode, 2);
    const toolSpan = receiver.spans.find((s) => s.name === "execute_tool echo");
    assert.equal(toolSpan?.attributes["gen_ai.tool.call.arguments"], '{"text":"hi"}');
    assert.equal(toolSpan?.attributes["gen_ai.tool.call.result"], "echo: hi");
  } finally {
    await receiver.close();
  }
});

test("close() does not hang on a collector that is down", async () => {
  const receiver = await startOtlpReceiver();
  const endpoint = receiver.endpoint;
  await receiver.close();
  const tracing = new Tracing({
    settings: traceSettingsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_TIMEOUT: "500" }),
    captureContent: false,
    redact: (t) => t,
    serviceVersion: "1",
  });
  endTurn(turnSpan(tracing, { userId: "u", sessionId: "s", turnId: "t", model: "m" }), "ok");
  await tracing.close();
  await tracing.close();
});
