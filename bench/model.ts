// The scripted model for every benchmark: the first request of a turn gets one tool call, the
// request after the tool result gets text. Latency can change between runs without a restart,
// so the servers under test (and their MCP children) stay up across latencies.
import { afterTool, lastUserText, startModelServer, type ChatRequest, type ScriptedReply } from "../tests/helpers/model-server.ts";

/** The tool the model calls when it is offered, with its arguments, by the name the model sees. */
const TOOL_CALLS: ReadonlyMap<string, Record<string, unknown>> = new Map<string, Record<string, unknown>>([
  ["test_echo", { text: "bench" }],
  ["filesystem_list_allowed_directories", {}],
]);

export const FINAL_ANSWER = "The tool answered. Here is a short final answer, streamed in chunks.";

export interface BenchModel {
  /** openai.base_url for the servers under test. */
  baseUrl: string;
  /** Delay before each answer, ms: the model's latency. */
  setLatency(ms: number): void;
  /** Requests answered so far. */
  readonly requestCount: number;
  /** Tool results the model was sent: a failed tool still ends in an answer, so the bench checks these. */
  readonly toolResults: { ok: number; failed: number; lastFailure: string | undefined; last: string };
  /** Throws if any tool call failed since the last check (a bench without its tool call measures nothing). */
  assertToolsOk(what: string): void;
  close(): Promise<void>;
}

/** What the tools of the bench answer when they work. */
const TOOL_OK = /^(echo:bench|Allowed directories)/;

export function replyFor(request: ChatRequest, latencyMs: number): ScriptedReply {
  if (afterTool(request)) return { delayMs: latencyMs, content: FINAL_ANSWER };
  // "CALL <tool> <json>": that call instead (the filesystem part's trees and searches).
  const directive = /^CALL (\S+) (.*)$/s.exec(lastUserText(request));
  if (directive?.[1] && directive[2]) return { delayMs: latencyMs, toolCalls: [{ name: directive[1], arguments: directive[2] }] };
  const tool = request.tools?.map((entry) => entry.function.name).find((name) => TOOL_CALLS.has(name));
  if (tool) return { delayMs: latencyMs, toolCalls: [{ name: tool, arguments: TOOL_CALLS.get(tool) ?? {} }] };
  return { delayMs: latencyMs, content: FINAL_ANSWER };
}

export async function startBenchModel(): Promise<BenchModel> {
  let latencyMs = 0;
  let count = 0;
  const toolResults = { ok: 0, failed: 0, lastFailure: undefined as string | undefined, last: "" };
  const server = await startModelServer({
    responder: (request) => {
      count++;
      const last = request.messages.at(-1);
      if (last?.role === "tool") {
        const content = String(last.content ?? "");
        toolResults.last = content.slice(0, 2000);
        if (TOOL_OK.test(content)) toolResults.ok++;
        else {
          toolResults.failed++;
          toolResults.lastFailure = content.slice(0, 500);
        }
      }
      // The helper keeps every request body; a bench sends tens of thousands of them.
      server.requests.length = 0;
      return replyFor(request, latencyMs);
    },
  });
  return {
    baseUrl: server.baseUrl,
    setLatency: (ms) => {
      latencyMs = ms;
    },
    get requestCount() {
      return count;
    },
    toolResults,
    assertToolsOk: (what) => {
      if (toolResults.failed > 0) {
        const message = `${what}: ${toolResults.failed} tool calls failed, the last with: ${toolResults.lastFailure}`;
        toolResults.failed = 0;
        throw new Error(message);
      }
    },
    close: () => server.close(),
  };
}
