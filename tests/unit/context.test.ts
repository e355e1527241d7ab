// The model context (lib/model/context.ts, tokens.ts), the pure parts: context windows by model name, the request budget, which
// turns a request leaves out and which tool results it shortens; token counting and its cache.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type OpenAI from "openai";
import {
  contextBudget,
  FALLBACK_CONTEXT_TOKENS,
  fitContext,
  knownContextWindow,
  shortenToolResult,
  SHORTENED_TOOL_RESULT_CHARS,
  turnStarts,
  windowFromError,
} from "../../lib/model/context.ts";
import { encodingNameFor, TokenCounter } from "../../lib/model/tokens.ts";
import { isReasoningModel, requestParamsFrom } from "../../lib/agent/settings.ts";
import { configDefaults } from "../../lib/config.ts";

type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;

/** One token per character: the plan is checked with numbers a reader can add up. */
const chars = { message: (message: ChatMessage) => (typeof message.content === "string" ? message.content.length : 0) };

const system: ChatMessage = { role: "system", content: "S".repeat(10) };
function turn(n: number, resultChars: number): ChatMessage[] {
  return [
    { role: "user", content: `u${n}`.padEnd(10, ".") },
    { role: "assistant", content: null, tool_calls: [{ id: `c${n}`, type: "function", function: { name: "t", arguments: "{}" } }] },
    { role: "tool", tool_call_id: `c${n}`, content: "r".repeat(resultChars) },
    { role: "assistant", content: `a${n}`.padEnd(10, ".") },
  ];
}

describe("windows and budgets", () => {
  test("known models have their published window; unknown ones the fallback", () => {
    assert.equal(knownContextWindow("gpt-4o-mini"), 128_000);
    assert.equal(knownContextWindow("openai/gpt-4.1-mini"), 1_047_576);
    assert.equal(knownContextWindow("gpt-4"), 8_192);
    assert.equal(knownContextWindow("gpt-4-turbo"), 128_000);
    assert.equal(knownContextWindow("o3-mini"), 200_000);
    assert.equal(knownContextWindow("gpt-5"), 400_000);
    assert.equal(knownContextWindow("llama3.1:8b"), undefined);
    assert.equal(contextBudget({ model: "llama3.1:8b", replyReserve: 4096 }), FALLBACK_CONTEXT_TOKENS - 4096);
    assert.equal(contextBudget({ model: "gpt-4o", replyReserve: 4096 }), 128_000 - 4096);
    assert.equal(contextBudget({ model: "gpt-4o", maxContextTokens: 8000, replyReserve: 1000 }), 7000);
    assert.equal(contextBudget({ model: "x", maxContextTokens: 8000, replyReserve: 50_000 }), 2000, "a quarter stays usable");
  });

  test("the window an OpenAI error names", () => {
    const message =
      "400 This model's maximum context length is 8192 tokens. However, your messages resulted in 9001 tokens. Please reduce the length of the messages.";
    assert.equal(windowFromError(message), 8192);
    assert.equal(windowFromError("something else"), undefined);
  });

  test("mcp-agent's request parameters: max_tokens, or max_completion_tokens and reasoning_effort for reasoning models", () => {
    const defaults = configDefaults().openai;
    assert.ok(isReasoningModel("o1-preview") && isReasoningModel("o4-mini") && isReasoningModel("gpt-5-nano"));
    assert.ok(!isReasoningModel("gpt-4o") && !isReasoningModel("llama3"));
    assert.deepEqual(requestParamsFrom({ ...defaults, default_model: "gpt-4o", max_tokens: 100, user: "u" }), {
      max_tokens: 100,
      user: "u",
    });
    assert.deepEqual(requestParamsFrom({ ...defaults, default_model: "o3", max_tokens: 100 }), {
      max_completion_tokens: 100,
      reasoning_effort: "medium",
    });
    assert.deepEqual(requestParamsFrom({ ...defaults, default_model: "gpt-4o" }), {});
  });
});

describe("fitContext", () => {
  const history = [...turn(1, 3000), ...turn(2, 3000), ...turn(3, 50)];
  const current: ChatMessage[] = [{ role: "user", content: "now".padEnd(10, ".") }];

  test("everything goes when it fits", () => {
    const fit = fitContext({ system, history, current, toolTokens: 5, budget: 100_000 }, chars);
    assert.equal(fit.messages.length, 1 + history.length + 1);
    assert.equal(fit.tokens, 5 + 10 + 3 * 20 + 3000 + 3000 + 50 + 10, "system, three turns (user, assistant text, results), the message");
    assert.deepEqual([fit.droppedTurns, fit.shortened, fit.fits], [0, 0, true]);
  });

  test("long tool results of older turns are shortened first, oldest first, until it fits", () => {
    const full = 5 + 10 + 3 * 20 + 3000 + 3000 + 50 + 10;
    const shortCost = chars.message(shortenToolResult(history[2] as ChatMessage));
    // Room for one shortened result and one full one.
    const fit = fitContext({ system, history, current, toolTokens: 5, budget: full - 3000 + shortCost }, chars);
    assert.deepEqual([fit.droppedTurns, fit.shortened, fit.fits], [0, 1, true]);
    const results = fit.messages.filter((message) => message.role === "tool").map((message) => String(message.content));
    assert.ok(results[0]?.includes("left out to fit the model's context window"), "the oldest was shortened");
    assert.equal(results[1], "r".repeat(3000), "the newer one is whole");
    assert.equal(history[2]?.content, "r".repeat(3000), "the input (the stored history) is untouched");
  });

  test("then the oldest whole turns are left out; the running turn always goes", () => {
    const fit = fitContext({ system, history, current, toolTokens: 0, budget: 200 }, chars);
    assert.equal(fit.droppedTurns, 2);
    assert.deepEqual(
      fit.messages.map((message) => message.role),
      ["system", "user", "assistant", "tool", "assistant", "user"],
      "whole turns: no tool result without its call",
    );
    assert.equal(fit.messages[1]?.content, "u3".padEnd(10, "."));
    assert.ok(fit.fits && fit.tokens <= 200);
  });

  test("the running turn's own long results are shortened as the last resort; if even that is too long, it says so", () => {
    const running = [...turn(9, 5000)];
    const fit = fitContext({ system, history, current: running, toolTokens: 0, budget: 2600 }, chars);
    assert.equal(fit.droppedTurns, 3);
    assert.ok(String(fit.messages.find((message) => message.role === "tool")?.content).length < 5000);
    assert.equal(fit.fits, true);
    const hopeless = fitContext(
      { system, history, current: [{ role: "user", content: "x".repeat(500) }], toolTokens: 0, budget: 100 },
      chars,
    );
    assert.equal(hopeless.fits, false);
    assert.equal(hopeless.messages.at(-1)?.content, "x".repeat(500), "it is sent anyway: the model decides");
  });

  test("a shortened result keeps its start and says how much is left out", () => {
    const long: ChatMessage = { role: "tool", tool_call_id: "c", content: "a".repeat(SHORTENED_TOOL_RESULT_CHARS + 500) };
    const short = shortenToolResult(long);
    assert.ok(String(short.content).startsWith("a".repeat(SHORTENED_TOOL_RESULT_CHARS)));
    assert.match(String(short.content), /500 more characters of this tool result were left out/);
    const small: ChatMessage = { role: "tool", tool_call_id: "c", content: "short" };
    assert.equal(shortenToolResult(small), small);
  });

  test("turns start at user messages", () => {
    assert.deepEqual(turnStarts(history), [0, 4, 8]);
    assert.deepEqual(turnStarts([]), []);
  });
});

describe("TokenCounter", () => {
  test("counts with the model family's encoding, once per message object", () => {
    assert.equal(encodingNameFor("gpt-4"), "cl100k_base");
    assert.equal(encodingNameFor("gpt-3.5-turbo"), "cl100k_base");
    assert.equal(encodingNameFor("gpt-4o-mini"), "o200k_base");
    assert.equal(encodingNameFor("llama3"), "o200k_base");
    const counter = new TokenCounter("gpt-4o");
    assert.equal(counter.text("hello world"), 2);
    const message: ChatMessage = { role: "user", content: "hello world" };
    assert.equal(counter.message(message), 2 + 4);
    message.content = "changed after counting";
    assert.equal(counter.message(message), 6, "the count is cached per message object (messages are never edited)");
    const call: ChatMessage = {
      role: "assistant",
      content: null,
      tool_calls: [{ id: "c", type: "function", function: { name: "read_file", arguments: '{"path":"a.txt"}' } }],
    };
    assert.ok(counter.message(call) > 4, "tool calls count too");
  });

  test("very long texts are estimated from their start, fast", () => {
    const counter = new TokenCounter("gpt-4o");
    const text = "The quick brown fox jumps over the lazy dog. ".repeat(5000);
    const started = process.hrtime.bigint();
    const estimate = counter.text(text);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const exact = 10 * 5000;
    assert.ok(Math.abs(estimate - exact) / exact < 0.05, `estimate ${estimate}, exact about ${exact}`);
    assert.ok(ms < 1000, `${ms} ms`);
    // A run of one character (quadratic for BPE) stays fast; a text that changes along the way is followed.
    const run = Date.now();
    counter.text("x".repeat(100_000));
    assert.ok(Date.now() - run < 1000, `${Date.now() - run} ms for 100 KB of one character`);
    const mixed = `${"{}".repeat(10_000)}${"The quick brown fox jumps over the lazy dog. ".repeat(1000)}`;
    const exactMixed = 10_000 + 10 * 1000;
    assert.ok(Math.abs(counter.text(mixed) - exactMixed) / exactMixed < 0.35, `mixed: ${counter.text(mixed)} vs about ${exactMixed}`);
  });
});
