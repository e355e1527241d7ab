// A hostile OpenAI-compatible model endpoint for the budget tests: what it answers depends on the
// user's last message. `json-huge`: a plain JSON answer of 64 MB (written as it goes, so this
// process never holds it); `calls-many`: 128 streamed tool calls of 10 characters each;
// `calls-large`: 128 streamed tool calls of 100 KB of arguments each; `names-long`: 30 tool calls
// with invented names of 30,000 CJK characters each; `MCP <tool>`: a call of that tool. Anything
// else: `echo: <text>`, or, after tool results, `done: <the last result>`.
import http from "node:http";
import type { AddressInfo } from "node:net";

const MB = 1024 * 1024;

export interface HostileModel {
  baseUrl: string;
  close(): Promise<void>;
}

interface Request {
  messages?: { role: string; content?: unknown }[];
}

function lastUser(request: Request): string {
  const users = (request.messages ?? []).filter((message) => message.role === "user");
  const last = users.at(-1)?.content;
  return typeof last === "string" ? last : "";
}

async function write(res: http.ServerResponse, text: string): Promise<boolean> {
  if (res.destroyed) return false;
  if (!res.write(text)) await new Promise<void>((resolve) => (res.once("drain", resolve), res.once("close", resolve)));
  return !res.destroyed;
}

function sseChunk(delta: Record<string, unknown>): string {
  return `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", model: "hostile", choices: [{ index: 0, delta }] })}\n\n`;
}

async function streamCalls(res: http.ServerResponse, count: number, argChars: number): Promise<void> {
  res.writeHead(200, { "content-type": "text/event-stream" });
  const args = JSON.stringify({ text: "a".repeat(Math.max(0, argChars - 12)) });
  for (let index = 0; index < count; index++) {
    const part = { index, id: `call_${index}`, type: "function", function: { name: "test_echo", arguments: args } };
    if (!(await write(res, sseChunk({ tool_calls: [part] })))) return;
  }
  await write(res, "data: [DONE]\n\n");
  res.end();
}

async function answer(request: Request, res: http.ServerResponse): Promise<void> {
  const text = lastUser(request);
  const afterTool = request.messages?.at(-1)?.role === "tool";
  if (afterTool) {
    const result = request.messages?.at(-1)?.content;
    return json(res, { role: "assistant", content: `done: ${typeof result === "string" ? result.slice(0, 2000) : ""}` });
  }
  if (text.startsWith("MCP ")) {
    return json(res, {
      role: "assistant",
      content: null,
      tool_calls: [{ id: "c", type: "function", function: { name: text.slice(4), arguments: "{}" } }],
    });
  }
  if (text === "json-huge") {
    res.writeHead(200, { "content-type": "application/json" });
    if (!(await write(res, '{"choices":[{"index":0,"message":{"role":"assistant","content":"'))) return;
    const piece = "x".repeat(MB);
    for (let n = 0; n < 64; n++) if (!(await write(res, piece))) return;
    await write(res, '"},"finish_reason":"stop"}]}');
    res.end();
    return;
  }
  if (text === "calls-many") return streamCalls(res, 128, 10);
  if (text === "calls-large") return streamCalls(res, 128, 100_000);
  if (text === "names-long") {
    const name = (n: number) => Array.from({ length: 30_000 }, (_, i) => String.fromCharCode(0x4e00 + ((i * 7919 + n) % 20_000))).join("");
    const toolCalls = Array.from({ length: 30 }, (_, n) => ({
      id: `c${n}`,
      type: "function",
      function: { name: name(n), arguments: "{}" },
    }));
    return json(res, { role: "assistant", content: null, tool_calls: toolCalls });
  }
  return json(res, { role: "assistant", content: `echo: ${text}` });
}

function json(res: http.ServerResponse, message: Record<string, unknown>): void {
  const body = JSON.stringify({
    id: "c",
    object: "chat.completion",
    model: "hostile",
    choices: [{ index: 0, message, finish_reason: "stop" }],
  });
  res.writeHead(200, { "content-type": "application/json" }).end(body);
}

export async function startHostileModel(): Promise<HostileModel> {
  const server = http.createServer((req, res) => {
    res.on("error", () => undefined);
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      let request: Request = {};
      try {
        request = JSON.parse(body) as Request;
      } catch {
        // An empty or odd body gets the echo answer.
      }
      answer(request, res).catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
