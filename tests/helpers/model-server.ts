// A scripted OpenAI-compatible chat-completions server on 127.0.0.1: real HTTP, real JSON and
// SSE shapes, tool calls. Tests and benchmarks point OPENAI_BASE_URL / openai.base_url at it.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createRequire } from "node:module";
import type { countTokens } from "gpt-tokenizer/encoding/o200k_base";

/** A part of a message's content: text, or (tool images, sampling) an image as a data: URL. */
export type ChatContentPart = { type: "text"; text: string } | { type: "image_url"; image_url: { url: string } };

export interface ChatRequestMessage {
  role: string;
  content?: string | null | ChatContentPart[];
  tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
}

export interface ChatRequest {
  model: string;
  messages: ChatRequestMessage[];
  tools?: { type: string; function: { name: string; description?: string; parameters?: unknown } }[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  max_tokens?: number;
  max_completion_tokens?: number;
  reasoning_effort?: string;
  user?: string;
  authorization?: string;
  /** Every request header, lower-cased. */
  headers?: http.IncomingHttpHeaders;
  /** The request's path and query as sent, e.g. /openai/deployments/d/chat/completions?api-version=… */
  url?: string;
}

export interface ScriptedToolCall {
  name: string;
  arguments: string | Record<string, unknown>;
  id?: string;
}

export interface ScriptedReply {
  /** Final text; streamed in pieces of `chunkChars` when the request streams. */
  content?: string;
  toolCalls?: ScriptedToolCall[];
  /** Answer with this HTTP status and an OpenAI-style error body instead. */
  status?: number;
  errorMessage?: string;
  headers?: Record<string, string>;
  /** Wait before answering (model latency). */
  delayMs?: number;
  /** Wait between SSE chunks. */
  chunkDelayMs?: number;
  chunkChars?: number;
  /** Cut the connection after this many SSE chunks. */
  breakAfterChunks?: number;
  /** Never answer; the request stays open until the client aborts. */
  hang?: boolean;
  /** Report no `usage`, as some OpenAI-compatible servers do not. */
  noUsage?: boolean;
  /** Stream headers, then forever: a content chunk every `trickleMs` ("tokens"), or an SSE comment ("keepalive"). */
  endless?: { mode: "tokens" | "keepalive"; everyMs: number };
  // Shapes of real OpenAI-compatible servers (docs/models.md lists who sends which).
  /** Reasoning streamed before the answer, in `reasoning_content` (DeepSeek, vLLM) or `reasoning` (OpenRouter, Ollama). */
  reasoning?: string;
  reasoningField?: "reasoning_content" | "reasoning";
  /** The finish_reason sent instead of the natural one (e.g. "stop" although tool calls came, "length"). */
  finishReason?: string;
  /** Tool-call deltas without `index` (some proxies and local servers). */
  toolCallIndex?: false;
  /** Tool-call deltas without `id`. */
  toolCallIds?: false;
  /** Each tool call whole in one chunk (name and all its arguments) instead of in pieces. */
  wholeToolCalls?: true;
  /** Every tool call of the answer in one chunk's `tool_calls` list. */
  toolCallsInOneChunk?: true;
  /** The pieces of several tool calls interleaved (call 0's name, call 1's name, call 0's arguments…). */
  interleaveToolCalls?: true;
  /** Where usage goes: the standard last chunk (default), the finish chunk, Groq's `x_groq.usage`, or the choice's own `usage`. */
  usageAt?: "standard" | "finish_chunk" | "x_groq" | "choice";
  /** Chunks with `choices: []` (Azure's content-filter results) before and between the deltas. */
  emptyChoices?: true;
  /** SSE comment lines (": …") between the events. */
  sseComments?: true;
  /** CRLF line ends instead of LF. */
  crlf?: true;
  /** An `{"error": …}` data line after this many chunks, then the stream ends (some proxies and vLLM). */
  streamError?: { message: string; code?: string; afterChunks: number };
}

export type Responder = (request: ChatRequest, index: number) => ScriptedReply | Promise<ScriptedReply>;

export interface ModelServer {
  /** Base URL including /v1, for openai.base_url. */
  baseUrl: string;
  requests: ChatRequest[];
  /** Replies used in order before the responder. */
  queue(...replies: ScriptedReply[]): void;
  setResponder(responder: Responder): void;
  /** Resolves once `count` requests have arrived. */
  waitForRequests(count: number): Promise<void>;
  /** Aborted requests (client went away before the answer finished). */
  aborted: number;
  /**
   * Refuse requests longer than this many prompt tokens with OpenAI's `context_length_exceeded`
   * error (undefined: no limit), as a real model refuses what does not fit its window.
   */
  setTokenLimit(tokens: number | undefined): void;
  /** Answer plain JSON even when a stream was asked for, as some local model servers do. */
  setIgnoreStream(ignore: boolean): void;
  /** Requests refused as too long. */
  refusedForLength: number;
  /** Model ids GET /models lists (undefined: that route answers 404, as some servers do). */
  setModels(ids: string[] | undefined): void;
  /** GET /models requests that arrived (path with query, headers). */
  modelListRequests: { url: string; headers: http.IncomingHttpHeaders }[];
  close(): Promise<void>;
}

export function lastUserText(request: ChatRequest): string {
  for (let i = request.messages.length - 1; i >= 0; i--) {
    const message = request.messages[i];
    if (message?.role === "user" && typeof message.content === "string") return message.content;
  }
  return "";
}

/**
 * True when the model is asked to go on after a tool: the last message is a tool result, or the
 * images tools returned (a user message of parts) right after the tool results.
 */
export function afterTool(request: ChatRequest): boolean {
  const last = request.messages.at(-1);
  if (last?.role === "user" && Array.isArray(last.content)) return request.messages.at(-2)?.role === "tool";
  return last?.role === "tool";
}

/** The last tool result the model was given (the text of the tool message). */
export function lastToolResult(request: ChatRequest): string {
  for (let i = request.messages.length - 1; i >= 0; i--) {
    const message = request.messages[i];
    if (message?.role === "tool") return typeof message.content === "string" ? message.content : "";
  }
  return "";
}

/**
 * The replies most tests script: "CALL <tool> <json arguments>" makes the model call that tool
 * once, and after a tool result the model answers "RESULT <the result>". Undefined for anything
 * else, so a test's own responder decides.
 */
export function toolDirective(request: ChatRequest): ScriptedReply | undefined {
  if (afterTool(request)) return { content: `RESULT ${lastToolResult(request)}` };
  const found = /^CALL (\S+) (.*)$/s.exec(lastUserText(request));
  if (found) return { toolCalls: [{ name: found[1] ?? "", arguments: found[2] ?? "{}" }] };
  return undefined;
}

export const echoResponder: Responder = (request) => ({ content: `echo: ${lastUserText(request)}` });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Exact counts (o200k_base) cost CPU: only a server with a token limit pays for them; the others
 * report usage at 4 characters a token, so benchmarks are not skewed. */
type Count = (text: string) => number;
// Loaded on first use: importing it costs every test file a second and ~70 MB.
let encoding: { countTokens: typeof countTokens } | undefined;
const exactCount: Count = (text) =>
  text
    ? (encoding ??= createRequire(import.meta.url)("gpt-tokenizer/encoding/o200k_base") as NonNullable<typeof encoding>).countTokens(text)
    : 0;
const roughCount: Count = (text) => Math.ceil(text.length / 4);

/** Prompt tokens as OpenAI's cookbook counts them: 3 per message + role + content (+ tool calls as JSON), 3 to prime the reply, plus the tools. */
export function promptTokens(request: ChatRequest, tokensOf: Count = exactCount): number {
  let total = 3 + (request.tools ? tokensOf(JSON.stringify(request.tools)) : 0);
  for (const message of request.messages) total += messageTokens(message, tokensOf);
  return total;
}

function messageTokens(message: ChatRequestMessage, tokensOf: Count): number {
  // Image parts count as their JSON here: a scripted model needs a stable number, not OpenAI's tile price.
  const content = typeof message.content === "string" ? message.content : message.content ? JSON.stringify(message.content) : "";
  return 3 + tokensOf(message.role) + tokensOf(content) + (message.tool_calls ? tokensOf(JSON.stringify(message.tool_calls)) : 0);
}

/** OpenAI caches prompt prefixes of 1024 tokens and more, in steps of 128: the part shared with the previous request. */
function cachedTokens(previous: ChatRequest | undefined, request: ChatRequest, tokensOf: Count): number {
  if (!previous) return 0;
  let shared = 3;
  for (let index = 0; index < request.messages.length; index++) {
    const message = request.messages[index];
    if (!message || JSON.stringify(message) !== JSON.stringify(previous.messages[index])) break;
    shared += messageTokens(message, tokensOf);
  }
  return shared < 1024 ? 0 : Math.floor(shared / 128) * 128;
}

export async function startModelServer(
  options: { responder?: Responder; latencyMs?: number; tokenLimit?: number; ignoreStream?: boolean; models?: string[] } = {},
): Promise<ModelServer> {
  let responder = options.responder ?? echoResponder;
  const queued: ScriptedReply[] = [];
  const requests: ChatRequest[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  let counter = 0;
  const state = { aborted: 0, refusedForLength: 0 };
  let tokenLimit = options.tokenLimit;
  let ignoreStream = options.ignoreStream ?? false;
  let models = options.models;
  const modelListRequests: ModelServer["modelListRequests"] = [];

  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const pathname = new URL(req.url ?? "/", "http://localhost").pathname;
    if (req.method === "GET" && pathname.endsWith("/models")) {
      modelListRequests.push({ url: req.url ?? "", headers: req.headers });
      if (!models) {
        res.writeHead(404, { "content-type": "application/json" });
        return res.end(JSON.stringify({ error: { message: "no model list here", type: "invalid_request_error" } }));
      }
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ object: "list", data: models.map((id) => ({ id, object: "model", created: 0, owned_by: "test" })) }));
    }
    if (req.method !== "POST" || !pathname.endsWith("/chat/completions")) {
      res.writeHead(404, { "content-type": "application/json" });
      return res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}`, type: "invalid_request_error" } }));
    }
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as ChatRequest;
    body.authorization = req.headers.authorization;
    body.headers = req.headers;
    body.url = req.url;
    const previous = requests.at(-1);
    const index = counter++;
    requests.push(body);
    for (const waiter of [...waiters]) {
      if (requests.length >= waiter.count) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
    let closed = false;
    res.on("close", () => {
      if (!res.writableEnded) {
        closed = true;
        state.aborted++;
      }
    });
    const tokensOf = tokenLimit === undefined ? roughCount : exactCount;
    const prompt = promptTokens(body, tokensOf);
    if (tokenLimit !== undefined && prompt > tokenLimit) {
      state.refusedForLength++;
      res.writeHead(400, { "content-type": "application/json" });
      return res.end(
        JSON.stringify({
          error: {
            message: `This model's maximum context length is ${tokenLimit} tokens. However, your messages resulted in ${prompt} tokens. Please reduce the length of the messages.`,
            type: "invalid_request_error",
            param: "messages",
            code: "context_length_exceeded",
          },
        }),
      );
    }
    const reply = queued.shift() ?? (await responder(body, index));
    const delay = (reply.delayMs ?? 0) + (options.latencyMs ?? 0);
    if (delay > 0) await sleep(delay);
    if (reply.hang || closed) return;
    if (reply.status && reply.status >= 400) {
      res.writeHead(reply.status, { "content-type": "application/json", ...reply.headers });
      return res.end(
        JSON.stringify({ error: { message: reply.errorMessage ?? `scripted error ${reply.status}`, type: "server_error", code: null } }),
      );
    }
    const id = `chatcmpl-${index}`;
    const created = Math.floor(Date.now() / 1000);
    const toolCalls = (reply.toolCalls ?? []).map((call, n) => ({
      id: call.id ?? `call_${index}_${n}`,
      type: "function",
      function: { name: call.name, arguments: typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments) },
    }));
    const finish = reply.finishReason ?? (toolCalls.length > 0 ? "tool_calls" : "stop");
    const completion =
      tokensOf(reply.content ?? "") + toolCalls.reduce((sum, call) => sum + tokensOf(call.function.name + call.function.arguments), 0);
    const usage = {
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
      prompt_tokens_details: { cached_tokens: cachedTokens(previous, body, tokensOf) },
    };
    if (!body.stream || ignoreStream) {
      res.writeHead(200, { "content-type": "application/json", ...reply.headers });
      return res.end(
        JSON.stringify({
          id,
          object: "chat.completion",
          created,
          model: body.model,
          choices: [
            {
              index: 0,
              message: {
                role: "assistant",
                content: reply.content ?? null,
                ...(reply.reasoning ? { [reply.reasoningField ?? "reasoning_content"]: reply.reasoning } : {}),
                ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
              },
              finish_reason: finish,
            },
          ],
          ...(reply.noUsage ? {} : { usage }),
        }),
      );
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", ...reply.headers });
    if (reply.endless) {
      // A hostile endpoint: it never finishes, until the client goes away.
      while (!closed) {
        if (reply.endless.mode === "keepalive") res.write(": keep-alive\n\n");
        else
          res.write(
            `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model: body.model, choices: [{ index: 0, delta: { content: "." }, finish_reason: null }] })}\n\n`,
          );
        await sleep(reply.endless.everyMs);
      }
      return;
    }
    const nl = reply.crlf ? "\r\n" : "\n";
    const event = (data: unknown) => `data: ${JSON.stringify(data)}${nl}${nl}`;
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      event({ id, object: "chat.completion.chunk", created, model: body.model, choices, ...extra });
    const events = scriptedEvents(reply, toolCalls, finish, usage, Boolean(body.stream_options?.include_usage), chunk, nl);
    let sent = 0;
    for (const text of events) {
      if (closed) return;
      if (reply.breakAfterChunks !== undefined && sent >= reply.breakAfterChunks) {
        res.socket?.destroy();
        return;
      }
      if (reply.streamError && sent === reply.streamError.afterChunks) {
        const { message, code } = reply.streamError;
        res.write(event({ error: { message, type: "server_error", code: code ?? null } }));
        return res.end();
      }
      res.write(text);
      sent++;
      if (reply.chunkDelayMs) await sleep(reply.chunkDelayMs);
    }
    res.end(`data: [DONE]${nl}${nl}`);
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    queue: (...replies) => queued.push(...replies),
    setResponder: (next) => {
      responder = next;
    },
    waitForRequests: (count) => (requests.length >= count ? Promise.resolve() : new Promise((resolve) => waiters.push({ count, resolve }))),
    get aborted() {
      return state.aborted;
    },
    get refusedForLength() {
      return state.refusedForLength;
    },
    setTokenLimit: (tokens) => {
      tokenLimit = tokens;
    },
    setIgnoreStream: (ignore) => {
      ignoreStream = ignore;
    },
    setModels: (ids) => {
      models = ids;
    },
    modelListRequests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

type WireToolCall = { id: string; type: string; function: { name: string; arguments: string } };

/** The SSE events of one scripted streamed answer, in the shape the reply asks for. */
function scriptedEvents(
  reply: ScriptedReply,
  toolCalls: WireToolCall[],
  finish: string,
  usage: Record<string, unknown>,
  includeUsage: boolean,
  chunk: (choices: unknown[], extra?: Record<string, unknown>) => string,
  nl: string,
): string[] {
  const deltas: Record<string, unknown>[] = [{ role: "assistant", content: "" }];
  const size = reply.chunkChars ?? 4;
  const reasoning = reply.reasoning ?? "";
  for (let at = 0; at < reasoning.length; at += size)
    deltas.push({ [reply.reasoningField ?? "reasoning_content"]: reasoning.slice(at, at + size) });
  const text = reply.content ?? "";
  for (let at = 0; at < text.length; at += size) deltas.push({ content: text.slice(at, at + size) });
  const part = (n: number, fields: Record<string, unknown>) => ({
    ...(reply.toolCallIndex === false ? {} : { index: n }),
    ...fields,
  });
  const head = (call: WireToolCall, n: number, args: string) =>
    part(n, {
      ...(reply.toolCallIds === false ? {} : { id: call.id }),
      type: "function",
      function: { name: call.function.name, arguments: args },
    });
  const halves = (args: string) => {
    const half = Math.ceil(args.length / 2);
    return [args.slice(0, half), args.slice(half)].filter(Boolean);
  };
  if (reply.toolCallsInOneChunk) {
    deltas.push({ tool_calls: toolCalls.map((call, n) => head(call, n, call.function.arguments)) });
  } else if (reply.interleaveToolCalls) {
    toolCalls.forEach((call, n) => deltas.push({ tool_calls: [head(call, n, "")] }));
    for (let piece = 0; piece < 2; piece++)
      toolCalls.forEach((call, n) => {
        const args = halves(call.function.arguments)[piece];
        if (args) deltas.push({ tool_calls: [part(n, { function: { arguments: args } })] });
      });
  } else {
    toolCalls.forEach((call, n) => {
      if (reply.wholeToolCalls) return deltas.push({ tool_calls: [head(call, n, call.function.arguments)] });
      deltas.push({ tool_calls: [head(call, n, "")] });
      for (const args of halves(call.function.arguments)) deltas.push({ tool_calls: [part(n, { function: { arguments: args } })] });
    });
  }
  const events: string[] = [];
  const filterOnly = () => chunk([], { prompt_filter_results: [{ prompt_index: 0, content_filter_results: {} }] });
  if (reply.emptyChoices) events.push(filterOnly());
  deltas.forEach((delta, n) => {
    if (reply.sseComments) events.push(`: comment ${n}${nl}${nl}`);
    events.push(chunk([{ index: 0, delta, finish_reason: null }]));
    if (reply.emptyChoices && n % 3 === 2) events.push(filterOnly());
  });
  const withUsage = !reply.noUsage && (includeUsage || (reply.usageAt !== undefined && reply.usageAt !== "standard"));
  const at = withUsage ? (reply.usageAt ?? "standard") : undefined;
  const finishChoice = { index: 0, delta: {}, finish_reason: finish, ...(at === "choice" ? { usage } : {}) };
  events.push(chunk([finishChoice], at === "finish_chunk" ? { usage } : at === "x_groq" ? { x_groq: { id: "req_0", usage } } : {}));
  if (at === "standard") events.push(chunk([], { usage }));
  return events;
}
