// Which transport a configured MCP server gets (lib/mcp/transports.ts), how a stdio entry becomes
// spawn parameters, and what a transport's errors mean. Nothing here spawns or connects.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport, SseError } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { loadConfig, parseConfig, type McpServerConfig } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { ProcessGroupStdioTransport } from "../../lib/mcp/stdio-transport.ts";
import {
  inProcessTransportFactory,
  isRemoteTransport,
  isSessionLost,
  isStreamBroken,
  stdioParamsFor,
  transportFactory,
  type TransportContext,
} from "../../lib/mcp/transports.ts";

const CONFIG_DIR = "/cfg";

/** Config entries as the schema makes them (defaults filled in). */
function entries(servers: Record<string, unknown>): Record<string, McpServerConfig> {
  const config = parseConfig({ file: "mcp_agent.config.yaml", text: stringify({ mcp: { servers } }) }, undefined, {}, CONFIG_DIR);
  return config.mcp.servers;
}

const context: TransportContext = {
  log: createLogger({ level: "error", console: false, secrets: [] }),
  packageDirs: [],
  configDir: CONFIG_DIR,
};

test("the transport comes from the entry's `transport`: stdio, sse, streamable_http; a fresh one per start", () => {
  const servers = entries({
    local: { command: process.execPath, args: ["server.mjs"] },
    events: { transport: "sse", url: "http://127.0.0.1:9/sse" },
    stream: { transport: "streamable_http", url: "http://127.0.0.1:9/mcp", headers: { "x-key": "1" } },
  });
  const make = (name: string) => transportFactory(name, servers[name] as McpServerConfig, "/ws/alice", context, {});
  const local = make("local");
  const first = local();
  assert.ok(first instanceof ProcessGroupStdioTransport);
  assert.equal(first.pid, undefined, "made, not spawned: the child starts with the connection");
  assert.notEqual(local(), first, "each (re)start gets a transport of its own");
  assert.ok(make("events")() instanceof SSEClientTransport);
  assert.ok(make("stream")() instanceof StreamableHTTPClientTransport);
});

test("transport websocket is refused when the server starts, with the error the user reads", () => {
  const servers = entries({ sock: { transport: "websocket", url: "ws://127.0.0.1:9/" } });
  const make = transportFactory("sock", servers.sock as McpServerConfig, "/ws/alice", context, {});
  assert.throws(make, { message: 'transport "websocket" is not supported (MCP server "sock"): use stdio, sse or streamable_http' });
});

test("only sse and streamable_http are remote (may be down now and up later)", () => {
  assert.deepEqual(
    ["stdio", "sse", "streamable_http", "websocket", "builtin"].map((name) => [name, isRemoteTransport(name)]),
    [
      ["stdio", false],
      ["sse", true],
      ["streamable_http", true],
      ["websocket", false],
      ["builtin", false],
    ],
  );
});

test("a stdio entry's spawn: a relative cwd is the config folder's, env is a copy, `filesystem` gets the workspace", () => {
  const servers = entries({
    tool: { command: "my-server", args: ["--flag"], cwd: "servers/tool", env: { TOKEN: "t" } },
    filesystem: { command: "my-fs", args: ["--root"] },
  });
  const tool = servers.tool as McpServerConfig;
  const params = stdioParamsFor("tool", tool, "/ws/alice", [], CONFIG_DIR);
  assert.deepEqual(params, { command: "my-server", args: ["--flag"], env: { TOKEN: "t" }, cwd: path.join(CONFIG_DIR, "servers/tool") });
  assert.notEqual(params.env, tool.env);
  const fs = stdioParamsFor("filesystem", servers.filesystem as McpServerConfig, "/ws/alice", [], CONFIG_DIR);
  assert.deepEqual(fs.args, ["--root", "/ws/alice"]);
  assert.equal(fs.cwd, undefined);
  assert.deepEqual(servers.filesystem?.args, ["--root"], "the config's own args are never touched");
});

test("the stdio `filesystem` server's workspace is made (owner-only) when its transport is, not before", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "mcp-transports-"));
  try {
    const workspace = path.join(dir, "workspace", "alice");
    const servers = entries({ filesystem: { command: "my-fs" } });
    const make = transportFactory("filesystem", servers.filesystem as McpServerConfig, workspace, context, {});
    assert.equal(existsSync(workspace), false);
    make();
    assert.equal(statSync(workspace).mode & 0o777, 0o700);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an in-process server is linked anew at each start: a second client works after the first is gone", async () => {
  const server = new McpServer({ name: "inproc", version: "1.0.0" });
  server.registerTool("hi", { description: "Says hi" }, () => ({ content: [{ type: "text", text: "hi" }] }));
  const make = inProcessTransportFactory(server);
  for (const round of [1, 2]) {
    const client = new Client({ name: "test", version: "1.0.0" });
    await client.connect(make());
    const result = await client.callTool({ name: "hi", arguments: {} });
    assert.deepEqual(result.content, [{ type: "text", text: "hi" }], `round ${round}`);
    await client.close();
  }
  await server.close();
});

/** The event an SSE stream's error carries (the SDK's SseError wants one). */
const sseEvent = (code: number | undefined, message: string) => Object.assign(new Event("error"), { code, message });

test("a lost remote session is told apart from other errors", () => {
  assert.equal(isSessionLost(new StreamableHTTPError(404, "Not Found")), true);
  assert.equal(isSessionLost(new StreamableHTTPError(400, "Bad Request: No valid session ID provided")), true);
  assert.equal(isSessionLost(new StreamableHTTPError(400, "Bad Request: invalid JSON")), false);
  assert.equal(isSessionLost(new StreamableHTTPError(500, "Internal Server Error")), false);
  assert.equal(isSessionLost(new SseError(404, "Not Found", sseEvent(404, "Not Found"))), true);
  assert.equal(isSessionLost(new Error("Session not found")), true);
  assert.equal(isSessionLost(new Error("fetch failed")), false);
  assert.equal(isStreamBroken(new SseError(undefined, "stream ended", sseEvent(undefined, "stream ended"))), true);
  assert.equal(isStreamBroken(new Error("timeout")), false);
});

test("the filesystem server gets the user's workspace appended at spawn; the config is never mutated", () => {
  const config = loadConfig("mcp_agent.config.yaml", {});
  const entry = config.mcp.servers.filesystem!;
  const before = [...entry.args];
  const alice = stdioParamsFor("filesystem", entry, "/ws/alice", [process.cwd()], config.configDir);
  const bob = stdioParamsFor("filesystem", entry, "/ws/bob", [process.cwd()], config.configDir);
  assert.equal(alice.args.at(-1), "/ws/alice");
  assert.equal(bob.args.at(-1), "/ws/bob");
  assert.equal(alice.args.filter((arg) => arg.startsWith("/ws/")).length, 1);
  assert.deepEqual(entry.args, before);
  // Other servers are left as configured.
  assert.deepEqual(stdioParamsFor("other", entry, "/ws/alice", [], config.configDir).args, before);
});
