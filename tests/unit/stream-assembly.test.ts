// The assembly of one model answer from the chunks real OpenAI-compatible servers send
// (lib/agent/stream-assembly.ts): tool calls with and without index or ids, reasoning, usage in
// vendor fields, errors inside the stream, finish reasons.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  assembleCompletion,
  ChunkAssembler,
  finishNote,
  MAX_TOOL_CALLS,
  ModelReplyError,
  usageOf,
  type AssembledReply,
} from "../../lib/agent/stream-assembly.ts";
import { AnswerBudget, OutputBudgetError } from "../../lib/agent/output-budget.ts";

function counter(): () => string {
  let n = 0;
  return () => `ours_${n++}`;
}

function delta(fields: Record<string, unknown>, finish: string | null = null): Record<string, unknown> {
  return { object: "chat.completion.chunk", choices: [{ index: 0, delta: fields, finish_reason: finish }] };
}

function assemble(chunks: unknown[], maxChars = 10_000): { reply: AssembledReply; content: string; reasoning: string } {
  const assembler = new ChunkAssembler({ maxChars, newId: counter() });
  let content = "";
  let reasoning = "";
  for (const chunk of chunks) {
    const piece = assembler.push(chunk);
    content += piece.content;
    reasoning += piece.reasoning;
    if (piece.stop) break;
  }
  return { reply: assembler.finish(), content, reasoning };
}

const calls = (reply: AssembledReply) => reply.toolCalls.map((call) => [call.name, call.arguments]);

describe("tool calls", () => {
  test("OpenAI's shape: index, id and name first, arguments in pieces", () => {
    const { reply } = assemble([
      delta({ role: "assistant", content: "" }),
      delta({ tool_calls: [{ index: 0, id: "call_a", type: "function", function: { name: "read", arguments: "" } }] }),
      delta({ tool_calls: [{ index: 0, function: { arguments: '{"pa' } }] }),
      delta({ tool_calls: [{ index: 0, function: { arguments: 'th":"x"}' } }] }),
      delta({}, "tool_calls"),
    ]);
    assert.deepEqual(calls(reply), [["read", '{"path":"x"}']]);
    assert.equal(reply.toolCalls[0]?.id, "ours_0", "the id is ours, not the model's");
    assert.equal(reply.finishReason, "tool_calls");
    assert.equal(assemble([{ ...delta({ content: "x" }), model: "gpt-4o-2024-08-06" }]).reply.model, "gpt-4o-2024-08-06");
  });

  test("deltas without index: each call is told apart by its id, or by a new name after complete arguments", () => {
    const byId = assemble([
      delta({ tool_calls: [{ id: "a", function: { name: "one", arguments: '{"n":' } }] }),
      delta({ tool_calls: [{ function: { arguments: "1}" } }] }),
      delta({ tool_calls: [{ id: "b", function: { name: "two", arguments: "{}" } }] }),
    ]).reply;
    assert.deepEqual(calls(byId), [
      ["one", '{"n":1}'],
      ["two", "{}"],
    ]);
    const noIds = assemble([
      delta({ tool_calls: [{ function: { name: "one", arguments: '{"n":' } }] }),
      delta({ tool_calls: [{ function: { arguments: "1}" } }] }),
      delta({ tool_calls: [{ function: { name: "one", arguments: '{"n":2}' } }] }),
    ]).reply;
    assert.deepEqual(calls(noIds), [
      ["one", '{"n":1}'],
      ["one", '{"n":2}'],
    ]);
  });

  test("a server that repeats the name with every piece makes one call, not a doubled name", () => {
    const { reply } = assemble([
      delta({ tool_calls: [{ index: 0, id: "x", function: { name: "read", arguments: '{"a"' } }] }),
      delta({ tool_calls: [{ index: 0, function: { name: "read", arguments: ":1}" } }] }),
    ]);
    assert.deepEqual(calls(reply), [["read", '{"a":1}']]);
  });

  test("a whole call in one chunk, several calls in one chunk's list, and arguments sent as an object", () => {
    const { reply } = assemble([
      delta({
        tool_calls: [
          { id: "call_0", function: { name: "one", arguments: '{"n":1}' } },
          { id: "call_0", function: { name: "two", arguments: { n: 2 } } },
        ],
      }),
    ]);
    assert.deepEqual(calls(reply), [
      ["one", '{"n":1}'],
      ["two", '{"n":2}'],
    ]);
    assert.deepEqual(
      reply.toolCalls.map((call) => call.id),
      ["ours_0", "ours_1"],
      "calls the model numbered alike get ids of their own",
    );
  });

  test("interleaved pieces of several calls go to the call of their index", () => {
    const { reply } = assemble([
      delta({ tool_calls: [{ index: 0, id: "a", function: { name: "one", arguments: "" } }] }),
      delta({ tool_calls: [{ index: 1, id: "b", function: { name: "two", arguments: "" } }] }),
      delta({ tool_calls: [{ index: 0, function: { arguments: '{"x":' } }] }),
      delta({ tool_calls: [{ index: 1, function: { arguments: '{"y":' } }] }),
      delta({ tool_calls: [{ index: 1, function: { arguments: "2}" } }] }),
      delta({ tool_calls: [{ index: 0, function: { arguments: "1}" } }] }),
    ]);
    assert.deepEqual(calls(reply), [
      ["one", '{"x":1}'],
      ["two", '{"y":2}'],
    ]);
  });

  test("every call numbered index 0, each whole: still separate calls", () => {
    const { reply } = assemble([
      delta({ tool_calls: [{ index: 0, id: "call_0", function: { name: "one", arguments: "{}" } }] }),
      delta({ tool_calls: [{ index: 0, id: "call_0", function: { name: "two", arguments: "{}" } }] }),
    ]);
    assert.deepEqual(calls(reply), [
      ["one", "{}"],
      ["two", "{}"],
    ]);
  });

  test("finish_reason stop although tool calls came: the calls are kept", () => {
    const { reply } = assemble([
      delta({ tool_calls: [{ index: 0, id: "a", function: { name: "one", arguments: "{}" } }] }),
      delta({}, "stop"),
    ]);
    assert.deepEqual(calls(reply), [["one", "{}"]]);
    assert.equal(reply.finishReason, "stop");
  });

  test("an index out of range is ignored; calls are capped", () => {
    const huge = assemble([delta({ tool_calls: [{ index: 1e9, function: { name: "x", arguments: "{}" } }] })]).reply;
    assert.deepEqual(huge.toolCalls, []);
    const many = Array.from({ length: MAX_TOOL_CALLS + 5 }, (_, n) => ({ id: `c${n}`, function: { name: "t", arguments: "{}" } }));
    assert.equal(assemble([delta({ tool_calls: many })]).reply.toolCalls.length, MAX_TOOL_CALLS);
  });

  test("with an output budget: text and calls share limits.max_answer_chars; calls past limits.max_parallel_tool_calls fail", () => {
    const run = (chunks: unknown[], maxChars: number, maxCalls: number) => {
      const assembler = new ChunkAssembler({ maxChars, newId: counter(), budget: new AnswerBudget(maxChars, maxCalls) });
      for (const chunk of chunks) assembler.push(chunk);
      return assembler.finish();
    };
    const call = (index: number | undefined) => ({
      ...(index !== undefined ? { index } : {}),
      function: { name: "tool", arguments: "{}" },
    });
    // 12 characters of text, then calls of 6 each: the third passes 25.
    const text = delta({ content: "twelve chars" });
    assert.equal(run([text, delta({ tool_calls: [call(0), call(1)] })], 25, 32).toolCalls.length, 2);
    assert.throws(
      () => run([text, delta({ tool_calls: [call(0), call(1), call(2)] })], 25, 32),
      (error: unknown) =>
        error instanceof OutputBudgetError &&
        error.code === "output_too_large" &&
        /tool call "tool" was longer than 25/.test(error.message),
    );
    for (const index of [2, undefined]) {
      assert.throws(
        () => run([delta({ tool_calls: [call(0), call(1), call(index)] })], 1000, 2),
        (error: unknown) =>
          error instanceof OutputBudgetError &&
          error.code === "too_many_tool_calls" &&
          /more than 2 tool calls in one answer \(limits\.max_parallel_tool_calls\)/.test(error.message),
      );
    }
  });

  test("a tool call longer than the cap fails with the key that governs it", () => {
    assert.throws(
      () => assemble([delta({ tool_calls: [{ index: 0, function: { name: "t", arguments: "x".repeat(50) } }] })], 20),
      (error: unknown) =>
        error instanceof ModelReplyError && error.code === "tool_call_too_long" && /limits\.max_answer_chars/.test(error.message),
    );
  });
});

describe("text, reasoning, usage, errors", () => {
  test("reasoning_content and reasoning are never the answer", () => {
    const { reply, content, reasoning } = assemble([
      delta({ reasoning_content: "Let me " }),
      delta({ reasoning: "think." }),
      delta({ content: "Answer." }),
    ]);
    assert.equal(reply.content, "Answer.");
    assert.equal(content, "Answer.");
    assert.equal(reply.reasoning, "Let me think.");
    assert.equal(reasoning, "Let me think.");
  });

  test("<think>…</think> at the start of the content is reasoning, however the tags are split", () => {
    const pieces = ["  <thi", "nk>Let me", " see.</th", "ink>\n\nThe answer", " is 4."];
    const { reply, content, reasoning } = assemble([...pieces.map((piece) => delta({ content: piece })), delta({}, "stop")]);
    assert.equal(reply.reasoning, "Let me see.");
    assert.equal(reasoning, "Let me see.");
    assert.equal(reply.content, "The answer is 4.");
    assert.equal(content, "The answer is 4.");
    const later = assemble([delta({ content: "Use <think> tags" })]).reply;
    assert.deepEqual([later.content, later.reasoning], ["Use <think> tags", ""], "a tag later in the text is text");
    const short = new ChunkAssembler({ maxChars: 100 });
    assert.equal(short.push(delta({ content: "<" })).content, "", "held back: it may become a tag");
    assert.equal(short.end().content, "<");
    assert.equal(short.finish().content, "<");
    const unclosed = assemble([delta({ content: "<think>still thinking" })]).reply;
    assert.deepEqual([unclosed.content, unclosed.reasoning], ["", "still thinking"]);
  });

  test("chunks with empty choices, null deltas and junk are skipped", () => {
    const { reply } = assemble([
      { choices: [], prompt_filter_results: [] },
      null,
      "junk",
      { choices: [{ index: 0, delta: null }] },
      delta({ content: "ok" }),
    ]);
    assert.equal(reply.content, "ok");
  });

  test("usage: the standard field, else x_groq.usage, else the choice's own", () => {
    const standard = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, prompt_tokens_details: { cached_tokens: 4 } };
    assert.deepEqual(assemble([delta({ content: "a" }), { choices: [], usage: standard }]).reply.usage, {
      prompt_tokens: 10,
      completion_tokens: 5,
      cached_tokens: 4,
      total_tokens: 15,
      model_calls: 1,
    });
    const groq = assemble([
      delta({ content: "a" }),
      { ...delta({}, "stop"), x_groq: { usage: { prompt_tokens: 7, completion_tokens: 3 } } },
    ]);
    assert.equal(groq.reply.usage?.total_tokens, 10);
    const inChoice = assemble([
      { choices: [{ index: 0, delta: {}, finish_reason: "stop", usage: { prompt_tokens: 2, completion_tokens: 1, total_tokens: 3 } }] },
    ]);
    assert.equal(inChoice.reply.usage?.prompt_tokens, 2);
    assert.equal(assemble([delta({ content: "a" }), { choices: [], usage: null }]).reply.usage, undefined, "usage: null is no usage");
    assert.equal(usageOf({ input_tokens: 4, output_tokens: 1 })?.total_tokens, 5);
  });

  test("an error object inside the stream ends the answer as an error that quotes it", () => {
    assert.throws(
      () => assemble([delta({ content: "par" }), { error: { message: "upstream overloaded", code: "overloaded" } }]),
      (error: unknown) =>
        error instanceof ModelReplyError &&
        error.code === "model_stream_error" &&
        error.message === "the model API sent an error instead of an answer: upstream overloaded (overloaded)",
    );
  });

  test("finish_reason length or content_filter is kept, with a note for the person", () => {
    const { reply } = assemble([delta({ content: "Once upon" }), delta({}, "length")]);
    assert.equal(reply.finishReason, "length");
    assert.match(finishNote("length") ?? "", /incomplete.*finish_reason: length/);
    assert.match(finishNote("content_filter") ?? "", /content filter/);
    assert.equal(finishNote("stop"), undefined);
    assert.equal(finishNote("tool_calls"), undefined);
  });

  test("an answer past the cap is cut, reading stops, and its tool calls are not run", () => {
    const { reply, content } = assemble(
      [
        delta({ tool_calls: [{ index: 0, id: "a", function: { name: "t", arguments: "{}" } }] }),
        delta({ content: "0123456789" }),
        delta({ content: "never read" }),
      ],
      6,
    );
    assert.equal(content, "012345");
    assert.equal(reply.cut, true);
    assert.deepEqual(reply.toolCalls, []);
  });
});

describe("a whole completion", () => {
  test("message, tool calls without index, reasoning and usage", () => {
    const { reply, piece } = assembleCompletion(
      {
        object: "chat.completion",
        choices: [
          {
            index: 0,
            message: {
              role: "assistant",
              content: "Hi",
              reasoning_content: "hmm",
              tool_calls: [
                { id: "call_0", type: "function", function: { name: "a", arguments: "{}" } },
                { id: "call_0", type: "function", function: { name: "b", arguments: "{}" } },
              ],
            },
            finish_reason: "tool_calls",
          },
        ],
        usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
      },
      { maxChars: 1000, newId: counter() },
    );
    assert.equal(piece.content, "Hi");
    assert.equal(reply.reasoning, "hmm");
    assert.deepEqual(calls(reply), [
      ["a", "{}"],
      ["b", "{}"],
    ]);
    assert.equal(reply.usage?.total_tokens, 5);
  });

  test("an error body or a body without a message is an error", () => {
    assert.throws(() => assembleCompletion({ error: { message: "bad key" } }, { maxChars: 10 }), /bad key/);
    assert.throws(() => assembleCompletion({ choices: [] }, { maxChars: 10 }), /without choices\[0\]\.message/);
    assert.throws(() => assembleCompletion([], { maxChars: 10 }), /not an object/);
  });
});
