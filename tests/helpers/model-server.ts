// A scripted OpenAI-compatible chat-completions server on 127.0.0.1: real HTTP, real JSON and
// SSE shapes, tool calls. Tests and benchmarks point OPENAI_BASE_URL / openai.base_url at it.
import http from "node:http";
import type { AddressInfo } from "node:net";

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
  authorization?: string;
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

export async function startModelServer(options: { responder?: Responder; latencyMs?: number } = {}): Promise<ModelServer> {
  let responder = options.responder ?? echoResponder;
  const queued: ScriptedReply[] = [];
  const requests: ChatRequest[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  let counter = 0;
  const state = { aborted: 0 };

  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
      res.writeHead(404, { "content-type": "application/json" });
      return res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}`, type: "invalid_request_error" } }));
    }
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as ChatRequest;
    body.authorization = req.headers.authorization;
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
    const finish = toolCalls.length > 0 ? "tool_calls" : "stop";
    if (!body.stream) {
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
              message: { role: "assistant", content: reply.content ?? null, ...(toolCalls.length ? { tool_calls: toolCalls } : {}) },
              finish_reason: finish,
            },
          ],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        }),
      );
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", ...reply.headers });
    const deltas: Record<string, unknown>[] = [{ role: "assistant", content: "" }];
    const text = reply.content ?? "";
    const size = reply.chunkChars ?? 4;
    for (let at = 0; at < text.length; at += size) deltas.push({ content: text.slice(at, at + size) });
    toolCalls.forEach((call, n) => {
      deltas.push({ tool_calls: [{ index: n, id: call.id, type: "function", function: { name: call.function.name, arguments: "" } }] });
      const args = call.function.arguments;
      const half = Math.ceil(args.length / 2);
      for (const piece of [args.slice(0, half), args.slice(half)]) {
        if (piece) deltas.push({ tool_calls: [{ index: n, function: { arguments: piece } }] });
      }
    });
    let sent = 0;
    for (const delta of deltas) {
      if (closed) return;
      if (reply.breakAfterChunks !== undefined && sent >= reply.breakAfterChunks) {
        res.socket?.destroy();
        return;
      }
      res.write(
        `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model: body.model, choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`,
      );
      sent++;
      if (reply.chunkDelayMs) await sleep(reply.chunkDelayMs);
    }
    res.write(
      `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model: body.model, choices: [{ index: 0, delta: {}, finish_reason: finish }] })}\n\n`,
    );
    res.end("data: [DONE]\n\n");
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
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
