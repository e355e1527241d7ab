// The one model call (lib/agent/model-call.ts) against the scripted model server over real HTTP:
// streamed and whole answers, the token parameter as the model takes it, usage reported or
// counted, the caps and deadlines, and an endpoint that rejects stream_options.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { callModel, isContextLengthError, modelErrorText, type ModelRequest } from "../../lib/agent/model-call.ts";
import { agentSettingsFrom } from "../../lib/agent/settings.ts";
import type { AgentSettings, ModelCall } from "../../lib/agent/types.ts";
import { parseConfig } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { startModelServer, type ModelServer } from "../helpers/model-server.ts";

let model: ModelServer;
before(async () => {
  model = await startModelServer({ responder: () => ({ content: "hello there" }) });
});
after(() => model.close());

function settings(openai: Record<string, unknown> = {}, limits: Record<string, unknown> = {}): AgentSettings {
  const text = stringify({
    openai: { base_url: model.baseUrl, default_model: "test-model", max_retries: 0, api_key: "sk-test-model-call", ...openai },
    limits,
  });
  const config = parseConfig({ file: "mcp_agent.config.yaml", text }, undefined, {}, "/cfg");
  return agentSettingsFrom(config, createLogger({ level: "error", console: false, secrets: [] }));
}

/** Calls the model, recording what the hooks are told. */
async function call(agent: AgentSettings, request: Partial<ModelRequest> = {}, signal?: AbortSignal) {
  const deltas: string[] = [];
  const calls: ModelCall[] = [];
  const answer = await callModel(
    agent,
    { messages: [{ role: "user", content: "hi" }], ...request },
    { ...(signal ? { signal } : {}), hooks: { onTextDelta: (text) => deltas.push(text), onModelCall: (done) => void calls.push(done) } },
  );
  return { answer, deltas, calls, request: model.requests.at(-1) };
}

describe("callModel", () => {
  test("a streamed answer: its deltas, the assembled message, the reported usage, the finish reason and model", async () => {
    const { answer, deltas, calls, request } = await call(settings());
    assert.equal(request?.stream, true);
    assert.deepEqual(request?.stream_options, { include_usage: true });
    assert.equal(deltas.join(""), "hello there");
    assert.ok(deltas.length > 1, "streamed in pieces");
    assert.deepEqual(answer.message, { role: "assistant", content: "hello there" });
    assert.equal(answer.finishReason, "stop");
    assert.equal(answer.model, "test-model");
    assert.equal(answer.usage.model_calls, 1);
    assert.equal(answer.usage.estimated, undefined);
    assert.equal(answer.usage.total_tokens, answer.usage.prompt_tokens + answer.usage.completion_tokens);
    assert.equal(calls.length, 1);
    assert.deepEqual([calls[0]?.ok, calls[0]?.usage], [true, answer.usage]);
  });

  test("tool calls get ids of ours, whatever the model sent", async () => {
    model.queue({
      toolCalls: [
        { name: "a_tool", arguments: { x: 1 }, id: "same" },
        { name: "b_tool", arguments: "{}", id: "same" },
      ],
    });
    const { answer } = await call(settings(), { tools: [{ type: "function", function: { name: "a_tool" } }] });
    const calls = answer.message.tool_calls ?? [];
    assert.deepEqual(
      calls.map((entry) => (entry.type === "function" ? [entry.function.name, entry.function.arguments] : [])),
      [
        ["a_tool", '{"x":1}'],
        ["b_tool", "{}"],
      ],
    );
    assert.equal(new Set(calls.map((entry) => entry.id)).size, 2);
    assert.ok(calls.every((entry) => entry.id.startsWith("call_") && entry.id !== "same"));
    assert.equal(answer.finishReason, "tool_calls");
  });

  test("the token cap: max_tokens for other models, max_completion_tokens (with reasoning_effort) for reasoning models", async () => {
    const plain = await call(settings({ max_tokens: 500, user: "someone" }), { maxTokens: 64 });
    assert.deepEqual([plain.request?.max_tokens, plain.request?.max_completion_tokens, plain.request?.user], [64, undefined, "someone"]);
    const configured = await call(settings({ max_tokens: 500 }));
    assert.equal(configured.request?.max_tokens, 500, "without a cap of its own a call takes openai.max_tokens");
    const reasoning = await call(settings({ default_model: "o3-mini", max_tokens: 500 }), { maxTokens: 64 });
    assert.deepEqual(
      [
        reasoning.request?.model,
        reasoning.request?.max_tokens,
        reasoning.request?.max_completion_tokens,
        reasoning.request?.reasoning_effort,
      ],
      ["o3-mini", undefined, 64, "medium"],
    );
    const sampled = await call(settings(), { temperature: 0.2, stop: ["END"] });
    assert.deepEqual([sampled.request?.max_tokens, sampled.request?.max_completion_tokens], [undefined, undefined]);
    const raw = sampled.request as unknown as Record<string, unknown>;
    assert.deepEqual([raw.temperature, raw.stop], [0.2, ["END"]]);
  });

  test("a whole answer from a server that ignores stream: one delta, its usage, its finish reason", async () => {
    model.setIgnoreStream(true);
    try {
      const { answer, deltas, calls } = await call(settings());
      assert.deepEqual(deltas, ["hello there"]);
      assert.deepEqual(answer.message, { role: "assistant", content: "hello there" });
      assert.equal(answer.finishReason, "stop");
      assert.equal(answer.usage.estimated, undefined);
      assert.equal(calls.length, 1);
    } finally {
      model.setIgnoreStream(false);
    }
  });

  test("limits.max_answer_chars cuts a streamed and a whole answer alike, with a note; a long tool call fails the call", async () => {
    const agent = settings({}, { max_answer_chars: 5 });
    const note = "\n\n[answer cut: the model wrote more than 5 characters (limits.max_answer_chars)]";
    const streamed = await call(agent);
    assert.equal(streamed.answer.message.content, `hello${note}`);
    assert.equal(streamed.deltas.join(""), `hello${note}`);
    model.setIgnoreStream(true);
    try {
      const whole = await call(agent);
      assert.equal(whole.answer.message.content, `hello${note}`);
      model.queue({ toolCalls: [{ name: "a_tool", arguments: { long: "x".repeat(50) } }] });
      await assert.rejects(
        call(agent),
        /the model's answer with tool call "a_tool" was longer than 5 characters \(limits\.max_answer_chars\)/,
      );
    } finally {
      model.setIgnoreStream(false);
    }
    model.queue({ toolCalls: [{ name: "a_tool", arguments: { long: "x".repeat(50) } }] });
    await assert.rejects(
      call(agent),
      /the model's answer with tool call "a_tool" was longer than 5 characters \(limits\.max_answer_chars\)/,
    );
  });

  test("text and every tool call share one budget per answer, streamed or whole", async () => {
    // 12 characters of text, then calls of 4 + 2 characters each: the third call passes 25.
    const agent = settings({}, { max_answer_chars: 25 });
    const reply = { content: "twelve chars", toolCalls: [1, 2, 3].map(() => ({ name: "tool", arguments: "{}" })) };
    for (const whole of [false, true]) {
      model.setIgnoreStream(whole);
      try {
        model.queue(reply);
        await assert.rejects(call(agent), /tool call "tool" was longer than 25 characters \(limits\.max_answer_chars\)/);
        model.queue({ ...reply, toolCalls: reply.toolCalls.slice(0, 2) });
        assert.equal((await call(agent)).answer.message.tool_calls?.length, 2);
      } finally {
        model.setIgnoreStream(false);
      }
    }
  });

  test("limits.max_parallel_tool_calls refuses an answer that names more calls, streamed or whole", async () => {
    const agent = settings({}, { max_parallel_tool_calls: 2 });
    const reply = { toolCalls: [1, 2, 3].map(() => ({ name: "tool", arguments: "{}" })) };
    for (const whole of [false, true]) {
      model.setIgnoreStream(whole);
      try {
        model.queue(reply);
        await assert.rejects(call(agent), /more than 2 tool calls in one answer \(limits\.max_parallel_tool_calls\)/);
      } finally {
        model.setIgnoreStream(false);
      }
    }
  });

  test("a whole answer's body past limits.max_answer_bytes is refused before it is parsed", async () => {
    const agent = settings({}, { max_answer_bytes: 2000 });
    model.setIgnoreStream(true);
    try {
      model.queue({ content: "x".repeat(5000) });
      await assert.rejects(call(agent), /the model's answer was larger than 2000 bytes \(limits\.max_answer_bytes\)/);
      model.queue({ content: "small" });
      assert.equal((await call(agent)).answer.message.content, "small");
    } finally {
      model.setIgnoreStream(false);
    }
    // A streamed answer is held per line: many small chunks pass.
    model.queue({ content: "y".repeat(5000), chunkChars: 10 });
    assert.equal((await call(agent)).answer.message.content, "y".repeat(5000));
  });

  test("an endpoint that reports no usage is counted here, as estimated", async () => {
    model.queue({ content: "no usage", noUsage: true });
    const { answer } = await call(settings());
    assert.equal(answer.usage.estimated, true);
    assert.ok(answer.usage.prompt_tokens > 0 && answer.usage.completion_tokens > 0, JSON.stringify(answer.usage));
    assert.equal(answer.usage.total_tokens, answer.usage.prompt_tokens + answer.usage.completion_tokens);
    model.queue({ content: "no usage", noUsage: true });
    const hinted = await call(settings(), { promptTokens: 1234 });
    assert.equal(hinted.answer.usage.prompt_tokens, 1234, "the caller's count of the prompt is used");
  });

  test("an endpoint that rejects stream_options is asked once more without it, and never with it again", async () => {
    const agent = settings();
    model.queue({ status: 400, errorMessage: "Unrecognized request argument supplied: stream_options" });
    const first = model.requests.length;
    const { answer, calls } = await call(agent);
    assert.equal(answer.message.content, "hello there");
    assert.deepEqual(
      model.requests.slice(first).map((request) => request.stream_options !== undefined),
      [true, false],
    );
    assert.deepEqual(
      calls.map((done) => done.ok),
      [false, true],
    );
    assert.equal(agent.learned.noStreamOptions, true);
    await call(agent);
    assert.equal(model.requests.at(-1)?.stream_options, undefined);
  });

  test("deadlines: a stream that goes silent, and one that never ends, fail naming their keys", async () => {
    const agent = settings({ stream_idle_timeout_seconds: 1, request_timeout_seconds: 2 });
    model.queue({ endless: { mode: "keepalive", everyMs: 50 } });
    await assert.rejects(call(agent), /it sent nothing for 1 s \(openai\.stream_idle_timeout_seconds\)/);
    model.queue({ endless: { mode: "tokens", everyMs: 50 } });
    await assert.rejects(call(agent), /it was not complete after 2 s \(openai\.request_timeout_seconds\)/);
  });

  test("a cancel aborts the request; the failed call is still reported", async () => {
    const abort = new AbortController();
    model.queue({ hang: true });
    const calls: ModelCall[] = [];
    const seen = model.requests.length;
    const pending = callModel(
      settings(),
      { messages: [{ role: "user", content: "wait" }] },
      { signal: abort.signal, hooks: { onModelCall: (done) => void calls.push(done) } },
    );
    await model.waitForRequests(seen + 1);
    abort.abort();
    await assert.rejects(pending);
    assert.deepEqual(
      calls.map((done) => done.ok),
      [false],
    );
  });

  test("errors: worded for a person and cut at limits.max_error_chars; the context-length refusal is recognised", async () => {
    model.queue({ status: 500, errorMessage: "x".repeat(100) });
    const error = await call(settings()).then(
      () => undefined,
      (failure: unknown) => failure,
    );
    assert.match(modelErrorText(error, 1000), /^model request failed: 500 x{100}$/);
    assert.match(modelErrorText(error, 20), /^.{20} \[cut: \d+ characters, only the first 20 are shown \(limits\.max_error_chars\)\]$/);
    model.setTokenLimit(5);
    try {
      const tooLong = await call(settings()).then(
        () => undefined,
        (failure: unknown) => failure,
      );
      assert.ok(isContextLengthError(tooLong));
      assert.ok(!isContextLengthError(error));
    } finally {
      model.setTokenLimit(undefined);
    }
  });
});
