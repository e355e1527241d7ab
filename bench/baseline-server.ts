// The bare baseline: the least a per-user agent server over WebSockets can do. A `ws` server
// whose turn is the `openai` SDK called directly (the same streaming call shape as ours:
// stream: true, tools) and the MCP tools called through the bare MCP SDK Client over
// StdioClientTransport, one set of MCP children per user. No logging, no store, no queue, no
// limits. It reads the same config file as our server (model, key, instruction, MCP servers).
//
//   node --import tsx bench/baseline-server.ts --config <file> [--port 0]
// prints "listening on http://127.0.0.1:<port>" once it accepts sockets.
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import OpenAI from "openai";
import { WebSocketServer, type WebSocket } from "ws";
import { loadConfig, resolveConfigPath, type Config } from "../lib/config.ts";

type Message = OpenAI.Chat.Completions.ChatCompletionMessageParam;
type Tool = OpenAI.Chat.Completions.ChatCompletionFunctionTool;

interface UserTools {
  tools: Tool[];
  routes: Map<string, { client: Client; tool: string }>;
  clients: Client[];
}

interface User {
  sessionId: string;
  history: Message[];
  tools: Promise<UserTools> | undefined;
  /** Turns of one user run one after another. */
  chain: Promise<void>;
}

/** Starts the user's MCP servers (each with the bare SDK client) and lists their tools. */
async function startTools(config: Config, userId: string): Promise<UserTools> {
  const routes = new Map<string, { client: Client; tool: string }>();
  const tools: Tool[] = [];
  const clients: Client[] = [];
  await Promise.all(
    Object.entries(config.mcp.servers).map(async ([name, entry]) => {
      if (entry.builtin || entry.transport !== "stdio" || !entry.command) return;
      const args = [...entry.args];
      if (name === "filesystem") {
        const workspace = path.join(resolveConfigPath(config, config.workspace.root), userId);
        mkdirSync(workspace, { recursive: true });
        args.push(workspace);
      }
      const client = new Client({ name: "bench-baseline", version: "1.0.0" });
      clients.push(client);
      await client.connect(new StdioClientTransport({ command: entry.command, args, env: entry.env, stderr: "ignore" }));
      const listed = await client.listTools();
      for (const tool of listed.tools) {
        const exposed = `${name}_${tool.name}`;
        routes.set(exposed, { client, tool: tool.name });
        tools.push({ type: "function", function: { name: exposed, description: tool.description ?? "", parameters: tool.inputSchema } });
      }
    }),
  );
  return { tools, routes, clients };
}

/** Keeps the newest `max` messages, starting at a user message so no tool result is orphaned. */
function trim(history: Message[], max: number): Message[] {
  if (history.length <= max) return history;
  let start = history.length - max;
  while (start < history.length && history[start]?.role !== "user") start++;
  return history.slice(start);
}

async function runTurn(openai: OpenAI, config: Config, user: User, tools: UserTools, text: string): Promise<string> {
  const added: Message[] = [{ role: "user", content: text }];
  for (let iteration = 0; iteration < config.agent.max_iterations; iteration++) {
    const stream = await openai.chat.completions.create({
      model: config.openai.default_model,
      messages: [{ role: "system", content: config.agent.instruction }, ...user.history, ...added],
      stream: true,
      ...(tools.tools.length > 0 ? { tools: tools.tools } : {}),
    });
    let content = "";
    const calls: { id: string; name: string; arguments: string }[] = [];
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta;
      if (!delta) continue;
      if (delta.content) content += delta.content;
      for (const part of delta.tool_calls ?? []) {
        const slot = (calls[part.index] ??= { id: "", name: "", arguments: "" });
        if (part.id) slot.id = part.id;
        if (part.function?.name) slot.name += part.function.name;
        if (part.function?.arguments) slot.arguments += part.function.arguments;
      }
    }
    if (calls.length === 0) {
      added.push({ role: "assistant", content });
      user.history = trim([...user.history, ...added], config.session.max_history_messages);
      return content;
    }
    added.push({
      role: "assistant",
      content: content || null,
      tool_calls: calls.map((call) => ({
        id: call.id,
        type: "function" as const,
        function: { name: call.name, arguments: call.arguments },
      })),
    });
    const results = await Promise.all(
      calls.map(async (call): Promise<Message> => {
        const route = tools.routes.get(call.name);
        if (!route) return { role: "tool", tool_call_id: call.id, content: `Error: unknown tool ${call.name}` };
        const result = await route.client.callTool({
          name: route.tool,
          arguments: call.arguments ? (JSON.parse(call.arguments) as Record<string, unknown>) : {},
        });
        const parts = Array.isArray(result.content) ? result.content : [];
        const resultText = parts
          .map((part: unknown) => (typeof part === "object" && part !== null && "text" in part ? String(part.text) : ""))
          .join("\n");
        return { role: "tool", tool_call_id: call.id, content: resultText };
      }),
    );
    added.push(...results);
  }
  throw new Error("too many model calls");
}

export async function startBaseline(config: Config, port: number): Promise<{ url: string; close(): Promise<void> }> {
  const openai = new OpenAI({
    apiKey: config.openai.api_key ?? "none",
    baseURL: config.openai.base_url,
    timeout: config.openai.request_timeout_seconds * 1000,
    maxRetries: config.openai.max_retries,
  });
  const users = new Map<string, User>();
  const httpServer = http.createServer((_req, res) => {
    res.writeHead(404).end();
  });
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  httpServer.on("upgrade", (req, socket, head) => {
    const found = /^\/ws\/([A-Za-z0-9_.-]{1,64})$/.exec(req.url ?? "");
    const userId = found?.[1];
    if (!userId) return socket.destroy();
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, userId));
  });

  function onConnection(ws: WebSocket, userId: string): void {
    let user = users.get(userId);
    if (!user) {
      user = { sessionId: randomUUID(), history: [], tools: undefined, chain: Promise.resolve() };
      users.set(userId, user);
    }
    const current = user;
    ws.send(JSON.stringify({ message: `Welcome! You are connected as user: ${userId}`, user_id: userId, session_id: current.sessionId }));
    ws.on("message", (data) => {
      let text: string;
      try {
        const frame = JSON.parse(data.toString()) as { message?: unknown };
        if (typeof frame.message !== "string") return;
        text = frame.message;
      } catch {
        ws.send(JSON.stringify({ error: "Invalid JSON format" }));
        return;
      }
      current.chain = current.chain.then(async () => {
        try {
          current.tools ??= startTools(config, userId);
          const answer = await runTurn(openai, config, current, await current.tools, text);
          ws.send(JSON.stringify({ message: answer, user_id: userId, session_id: current.sessionId }));
        } catch (error) {
          ws.send(JSON.stringify({ error: `An error occurred: ${(error as Error).message}` }));
        }
      });
    });
    ws.on("error", () => undefined);
  }

  await new Promise<void>((resolve) => httpServer.listen(port, "127.0.0.1", resolve));
  const { port: bound } = httpServer.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}`,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      httpServer.closeAllConnections();
      httpServer.close();
      const started = await Promise.all([...users.values()].map((user) => user.tools?.catch(() => undefined)));
      await Promise.all(started.flatMap((tools) => tools?.clients ?? []).map((client) => client.close().catch(() => undefined)));
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: "string" }, port: { type: "string", default: "0" } } });
  if (!values.config) throw new Error("usage: baseline-server.ts --config <file> [--port N]");
  const server = await startBaseline(loadConfig(values.config, {}), Number(values.port));
  const shutdown = () => {
    setTimeout(() => process.exit(0), 8000).unref();
    void server.close().finally(() => process.exit(0));
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
  console.log(`listening on ${server.url}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
