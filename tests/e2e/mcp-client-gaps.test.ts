// MCP client details a user meets: a tool answering -32042 (URL elicitation required) shows its
// page and is called again once the user says done; omitted form fields take their defaults
// (SEP-1034); error texts name the server, the URL and the cause once.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { McpError, UrlElicitationRequiredError } from "@modelcontextprotocol/sdk/types.js";
import { startModelServer, toolDirective, echoResponder, type ModelServer } from "../helpers/model-server.ts";
import { baseConfig, connectUser, startServer, type Frame, type RunningServer } from "../helpers/harness.ts";

let model: ModelServer;
let running: RunningServer;
let remote: { url: string; close(): Promise<void> };
let pageVisited = false;
let formAnswer: unknown;

/** One MCP server per request (stateful enough: the page flag lives outside it). */
async function startGapsServer(): Promise<{ url: string; close(): Promise<void> }> {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const server = http.createServer((req, res) => {
    void (async () => {
      const id = req.headers["mcp-session-id"];
      const known = typeof id === "string" ? sessions.get(id) : undefined;
      if (known) return known.handleRequest(req, res);
      const mcp = new McpServer({ name: "gaps", version: "1.0.0" });
      mcp.registerTool("paywalled", { description: "Needs a page first" }, () => {
        if (!pageVisited) {
          pageVisited = true;
          throw new UrlElicitationRequiredError([
            { mode: "url", url: "https://example.com/consent", message: "Accept the terms first", elicitationId: "consent-1" },
          ]);
        }
        return { content: [{ type: "text", text: "paid content" }] };
      });
      mcp.registerTool("ask", { description: "Asks a form with defaults" }, async () => {
        const result = await mcp.server.elicitInput({
          mode: "form",
          message: "Preferences",
          requestedSchema: {
            type: "object",
            properties: {
              colour: { type: "string", title: "Colour", default: "blue" },
              count: { type: "integer", title: "Count", default: 3 },
              note: { type: "string", title: "Note" },
            },
          },
        });
        formAnswer = result.content;
        return { content: [{ type: "text", text: JSON.stringify(result.content) }] };
      });
      mcp.registerTool("wrapped", { description: "Fails with a prefixed message" }, () => {
        throw new McpError(-1, "MCP error -1: the upstream said no");
      });
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => `s${sessions.size + 1}`,
        onsessioninitialized: (sessionId) => void sessions.set(sessionId, transport),
      });
      await mcp.connect(transport);
      await transport.handleRequest(req, res);
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port nothing listens on: the connection is refused. */
async function closedPort(): Promise<number> {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
let downUrl = "";

before(async () => {
  downUrl = `http://127.0.0.1:${await closedPort()}/mcp`;
  model = await startModelServer({ responder: (request, index) => toolDirective(request) ?? echoResponder(request, index) });
  remote = await startGapsServer();
  running = await startServer({
    config: baseConfig(model.baseUrl, {
      gaps: { transport: "streamable_http", url: remote.url, auth: { oauth: { enabled: false } } },
      down: { transport: "streamable_http", url: downUrl, auth: { oauth: { enabled: false } } },
    }),
    secrets: { openai: { api_key: "sk-test-gaps" } },
  });
});
after(async () => {
  await running?.close();
  await remote?.close();
  await model?.close();
});

test("a -32042 answer shows its page to the user; once they say done, the call is made again and succeeds", async () => {
  const { client } = await connectUser(running, "gap_user", "?stream=1");
  try {
    client.send({ message: "CALL gaps_paywalled {}" });
    const ask = await client.nextMatching((frame) => frame.type === "elicitation_request");
    assert.equal(ask.mode, "url");
    assert.equal(ask.url, "https://example.com/consent");
    assert.equal(ask.server, "gaps");
    client.send({ type: "elicitation", request_id: ask.request_id, action: "accept" });
    const answer = await client.nextMatching((frame) => frame.type === "answer");
    assert.equal(answer.message, "RESULT paid content");
  } finally {
    await client.close();
  }
});

test("form fields the answer leaves out take their schema defaults", async () => {
  const { client } = await connectUser(running, "gap_user", "?stream=1");
  try {
    client.send({ message: "CALL gaps_ask {}" });
    const ask = await client.nextMatching((frame) => frame.type === "elicitation_request");
    client.send({ type: "elicitation", request_id: ask.request_id, action: "accept", content: { note: "hi" } });
    await client.nextMatching((frame) => frame.type === "answer");
    assert.deepEqual(formAnswer, { colour: "blue", count: 3, note: "hi" });
  } finally {
    await client.close();
  }
});

test("errors name the server, the URL and the cause once", async () => {
  const { client } = await connectUser(running, "gap_errors", "?stream=1");
  try {
    client.send({ message: "CALL gaps_wrapped {}" });
    const answer = await client.nextMatching((frame) => frame.type === "answer");
    assert.match(String(answer.message), /MCP error -1: the upstream said no/);
    assert.doesNotMatch(String(answer.message), /MCP error -1: MCP error -1/);
    const servers = await client.serversMatching((list) => list.some((server) => server.name === "down" && server.state === "failed"));
    const down = servers.find((server: Frame) => server.name === "down");
    const error = String(down?.error);
    assert.match(error, /MCP server "down"/);
    assert.ok(error.includes(downUrl), error);
    assert.equal(error.split(downUrl).length, 2, `the URL is named once: ${error}`);
    assert.match(error, /ECONNREFUSED/);
    assert.doesNotMatch(error, /^fetch failed$/);
  } finally {
    await client.close();
  }
});
