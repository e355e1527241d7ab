// MCP transports (stdio, sse, streamable_http), allowed_tools, servers that fail to start, and
// how a config entry becomes a spawn.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";
import { startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";
import { ask, baseConfig, connectUser, startServer, testServerEntry, until, type RunningServer } from "../helpers/harness.ts";

function makeMcp(label: string): McpServer {
  const server = new McpServer({ name: label, version: "1.0.0" });
  server.registerTool("shout", { description: "Upper-cases", inputSchema: { text: z.string() } }, ({ text }) => ({
    content: [{ type: "text", text: `${label}:${text.toUpperCase()}` }],
  }));
  server.registerTool("hidden", { description: "Not allowed" }, () => ({ content: [{ type: "text", text: "secret" }] }));
  return server;
}

/** An MCP server over HTTP: streamable HTTP at /mcp (stateless) and the legacy SSE at /sse. */
async function startHttpMcp(): Promise<{ url: string; headersSeen: string[]; close(): Promise<void> }> {
  const sse = new Map<string, SSEServerTransport>();
  const headersSeen: string[] = [];
  const server = http.createServer(async (req, res) => {
    headersSeen.push(String(req.headers["x-test-header"] ?? ""));
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname === "/mcp") {
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      await makeMcp("http").connect(transport);
      return transport.handleRequest(req, res);
    }
    if (url.pathname === "/sse" && req.method === "GET") {
      const transport = new SSEServerTransport("/messages", res);
      sse.set(transport.sessionId, transport);
      await makeMcp("sse").connect(transport);
      return;
    }
    if (url.pathname === "/messages") {
      const transport = sse.get(url.searchParams.get("sessionId") ?? "");
      if (transport) return transport.handlePostMessage(req, res);
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    headersSeen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let model: ModelServer;
let httpMcp: Awaited<ReturnType<typeof startHttpMcp>>;
let running: RunningServer;

before(async () => {
  httpMcp = await startHttpMcp();
  model = await startModelServer({
    responder: (request) => toolDirective(request) ?? { content: "ok" },
  });
  running = await startServer({
    config: baseConfig(model.baseUrl, {
      streamy: { transport: "streamable_http", url: `${httpMcp.url}/mcp`, headers: { "X-Test-Header": "from-config" } },
      // Per-user values in a remote server's headers (no tools offered: only what it is sent matters).
      mine: { transport: "streamable_http", url: `${httpMcp.url}/mcp`, headers: { "X-Test-Header": "for-{user_id}" }, allowed_tools: [] },
      legacy: { transport: "sse", url: `${httpMcp.url}/sse`, allowed_tools: ["shout"] },
      socketish: { transport: "websocket", url: "ws://127.0.0.1:1/" },
      missing: { command: "definitely-not-installed-command-xyz", args: [] },
      exits: { command: process.execPath, args: ["-e", "process.exit(3)"] },
      test: { ...testServerEntry, allowed_tools: ["echo"] },
    }),
    secrets: { openai: { api_key: "sk-test-mcp" } },
  });
});
after(async () => {
  await running.close();
  await model.close();
  await httpMcp.close();
});

interface ServerState {
  name: string;
  state: string;
  tools: number;
  error?: string;
}

async function servers(userId: string): Promise<ServerState[]> {
  const body = (await (await fetch(`${running.url}/sessions/${userId}`)).json()) as { mcp_servers: ServerState[] };
  return body.mcp_servers;
}

test("servers connect in parallel; failures are isolated, logged and shown in /sessions/<user_id>", async () => {
  const { client } = await connectUser(running, "mixed");
  // Servers start with the first turn: the session works with what started.
  assert.equal((await ask(client, "hello")).message, "ok");
  await until(async () => (await servers("mixed")).every((s) => s.state !== "starting"), "all servers settled");
  const byName = Object.fromEntries((await servers("mixed")).map((s) => [s.name, s]));
  assert.equal(byName.streamy?.state, "ready");
  assert.equal(byName.legacy?.state, "ready");
  assert.equal(byName.test?.state, "ready");
  assert.equal(byName.socketish?.state, "failed");
  assert.match(String(byName.socketish?.error), /websocket.*not supported/);
  assert.equal(byName.missing?.state, "failed");
  assert.match(String(byName.missing?.error), /command not found/);
  assert.equal(byName.exits?.state, "failed");
  assert.match(String(byName.exits?.error), /exited during start-up/);
  await client.close();
});

test("streamable_http and sse servers are called like stdio ones, with the configured headers", async () => {
  const { client } = await connectUser(running, "http_user");
  assert.equal((await ask(client, 'CALL streamy_shout {"text":"hi"}')).message, "RESULT http:HI");
  assert.equal((await ask(client, 'CALL legacy_shout {"text":"yo"}')).message, "RESULT sse:YO");
  assert.ok(httpMcp.headersSeen.includes("from-config"));
  await until(async () => (await servers("http_user")).every((s) => s.state !== "starting"), "all servers settled");
  assert.ok(httpMcp.headersSeen.includes("for-http_user"), "{user_id} expanded in the header");
  assert.ok(!httpMcp.headersSeen.includes("for-{user_id}"));
  await client.close();
});

test("allowed_tools: only the listed tools are offered to the model", async () => {
  const { client } = await connectUser(running, "allowed_user");
  await until(async () => (await servers("allowed_user")).every((s) => s.state !== "starting"), "all servers settled");
  await ask(client, "list");
  const names = (model.requests.at(-1)?.tools ?? []).map((tool) => tool.function.name).sort();
  assert.deepEqual(names, ["legacy_shout", "streamy_hidden", "streamy_shout", "test_echo"]);
  const refused = await ask(client, "CALL legacy_hidden {}");
  assert.match(String(refused.message), /RESULT Error: Unknown tool "legacy_hidden"/);
  await client.close();
});
