// An MCP server's sampling request is a model call like the loop's: it sends the same token
// parameter (max_completion_tokens to a reasoning model), its tokens are part of the turn's usage
// (the answer frame, /sessions/<user_id>, /metrics), and it is held to limits.tokens_per_day.
// The real server on port 0, server-everything as a real child, the scripted model over HTTP.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { startModelServer, toolDirective, type ChatRequest, type ModelServer } from "../helpers/model-server.ts";
import { baseConfig, connectUser, ROOT, startServer, type Frame, type TestClient } from "../helpers/harness.ts";

const EVERYTHING = path.join(ROOT, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");
const SAMPLING_SYSTEM = "You are a helpful test server.";
const isSampling = (request: ChatRequest) => request.messages[0]?.content === SAMPLING_SYSTEM;

let model: ModelServer;
before(async () => {
  model = await startModelServer({
    responder: (request) => (isSampling(request) ? { content: "SAMPLED" } : (toolDirective(request) ?? { content: "no script" })),
  });
});
after(() => model.close());

/** A reasoning model with openai.max_tokens set: the loop sends max_completion_tokens. */
function config(limits: Record<string, unknown> = {}) {
  const base = baseConfig(
    model.baseUrl,
    { ask: { command: process.execPath, args: [EVERYTHING, "stdio"], sampling: "allow", allowed_tools: ["trigger-sampling-request"] } },
    { limits },
  );
  return { ...base, openai: { ...base.openai, default_model: "o3-mini", max_tokens: 2000 } };
}

async function turnEnd(client: TestClient, message: string): Promise<Frame> {
  client.send({ message });
  return client.nextMatching((frame) => frame.type === "answer" || frame.type === "error", 30_000);
}

function lastToolResult(request: ChatRequest | undefined): string {
  const tool = [...(request?.messages ?? [])].reverse().find((entry) => entry.role === "tool");
  return typeof tool?.content === "string" ? tool.content : "";
}

describe("sampling is a model call like the loop's", () => {
  test("it sends max_completion_tokens to a reasoning model, and its tokens are in the usage frame, /sessions and /metrics", async () => {
    const running = await startServer({ config: config(), secrets: { openai: { api_key: "sk-test-sampling-usage" } } });
    try {
      const { client } = await connectUser(running, "sampled", "?stream=1");
      const first = model.requests.length;
      const answer = await turnEnd(client, 'CALL ask_trigger-sampling-request {"prompt":"weather?","maxTokens":100}');
      assert.equal(answer.type, "answer");
      const requests = model.requests.slice(first);
      const sampling = requests.filter(isSampling);
      const loop = requests.filter((request) => !isSampling(request));
      assert.equal(sampling.length, 1);
      assert.equal(loop.length, 2);
      assert.match(lastToolResult(loop.at(-1)), /"text": "SAMPLED"/);
      // The loop's parameters, with the sampling's own cap in the same form.
      for (const request of loop) assert.deepEqual([request.max_tokens, request.max_completion_tokens], [undefined, 2000]);
      assert.deepEqual(
        [sampling[0]?.model, sampling[0]?.max_tokens, sampling[0]?.max_completion_tokens, sampling[0]?.reasoning_effort],
        ["o3-mini", undefined, 100, loop[0]?.reasoning_effort],
      );

      // The turn's usage counts three model calls: the loop's two and the sampling's.
      const usage = answer.usage as Record<string, number>;
      assert.equal(usage.model_calls, 3);
      const info = (await (await fetch(`${running.url}/sessions/sampled`)).json()) as { usage: Record<string, number> };
      assert.equal(info.usage.model_calls, 3);
      assert.equal(info.usage.total_tokens, usage.total_tokens);
      assert.equal(info.usage.tokens_today, usage.total_tokens, "counted against the daily quota");
      const metrics = await (await fetch(`${running.url}/metrics`)).text();
      assert.match(metrics, new RegExp(`^mcp_agent_tokens_total\\{kind="prompt"\\} ${usage.prompt_tokens}$`, "m"));
      assert.match(metrics, new RegExp(`^mcp_agent_tokens_total\\{kind="completion"\\} ${usage.completion_tokens}$`, "m"));
      assert.match(metrics, /^mcp_agent_model_call_duration_seconds_count\{outcome="ok"\} 3$/m);
      await client.close();
    } finally {
      await running.close();
    }
  });

  test("past limits.tokens_per_day a sampling request is refused without calling the model", async () => {
    // One token a day: the turn starts under it, its first model call spends it, the sampling finds none.
    const running = await startServer({
      config: config({ tokens_per_day: 1 }),
      secrets: { openai: { api_key: "sk-test-sampling-quota" } },
    });
    try {
      const { client } = await connectUser(running, "thrifty", "?stream=1");
      const first = model.requests.length;
      const answer = await turnEnd(client, 'CALL ask_trigger-sampling-request {"prompt":"weather?"}');
      assert.equal(answer.type, "answer", "a turn that started under the quota runs to its end");
      const requests = model.requests.slice(first);
      assert.ok(!requests.some(isSampling), "the model was not called for the sampling");
      assert.match(
        lastToolResult(requests.at(-1)),
        /^Error: .*Daily token quota reached: \d+ of 1 tokens used today \(limits\.tokens_per_day\)/,
      );
      const metrics = await (await fetch(`${running.url}/metrics`)).text();
      assert.match(metrics, /^mcp_agent_refusals_total\{code="quota_exceeded"\} 1$/m);
      await client.close();
    } finally {
      await running.close();
    }
  });
});
