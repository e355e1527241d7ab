// Servers a user adds: /servers/<user_id> (GET, POST, DELETE) and the socket's server_add /
// server_remove; the address guard, the per-user cap, names that cannot shadow the operator's,
// sealed headers, and one user never seeing another's servers.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import path from "node:path";
import type { AddressInfo } from "node:net";
import Database from "better-sqlite3";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";
import { startModelServer, toolDirective, echoResponder, type ModelServer } from "../helpers/model-server.ts";
import { baseConfig, connectUser, startServer, testServerEntry, type Frame, type RunningServer } from "../helpers/harness.ts";

let model: ModelServer;
let running: RunningServer;
let remote: { url: string; close(): Promise<void> };
const KEY = "user-secret-header-value-123";

async function startKeyedMcp(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    void (async () => {
      if (req.headers["x-key"] !== KEY) return res.writeHead(403).end("wrong key");
      const mcp = new McpServer({ name: "mine", version: "1.0.0" });
      mcp.registerTool("echo", { description: "Echoes", inputSchema: { text: z.string() } }, ({ text }) => ({
        content: [{ type: "text", text: `mine:${text}` }],
      }));
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
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

before(async () => {
  model = await startModelServer({ responder: (request, index) => toolDirective(request) ?? echoResponder(request, index) });
  remote = await startKeyedMcp();
  running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { test: testServerEntry },
      {
        mcp: { servers: { test: testServerEntry }, user_servers: { enabled: true, allow_hosts: ["127.0.0.1"] } },
        limits: { max_user_servers: 2 },
      },
    ),
    secrets: { openai: { api_key: "sk-test-user-servers" } },
    keepDir: true,
  });
});
after(async () => {
  await running?.close();
  await remote?.close();
  await model?.close();
});

const WRITE = { "content-type": "application/json", "x-requested-with": "test" };
const post = (userId: string, body: unknown, headers: Record<string, string> = WRITE) =>
  fetch(`${running.url}/servers/${userId}`, { method: "POST", headers, body: JSON.stringify(body) });
const byName = (servers: Frame[], name: string) => servers.find((server) => server.name === name);

test("a user adds a remote server over HTTP; its tools work in the same session, its header stays secret", async () => {
  const { client } = await connectUser(running, "alice", "?stream=1");
  try {
    const noHeader = await post("alice", { name: "mine", url: remote.url }, { "content-type": "application/json" });
    assert.equal(noHeader.status, 403);
    assert.match(((await noHeader.json()) as { error: string }).error, /X-Requested-With/);

    const added = await post("alice", { name: "mine", url: remote.url, transport: "streamable_http", headers: { "X-Key": KEY } });
    assert.equal(added.status, 201, await added.clone().text());
    assert.deepEqual(await added.json(), { server: { name: "mine", url: remote.url, transport: "streamable_http", headers: ["X-Key"] } });
    const listed = (await (await fetch(`${running.url}/servers/alice`)).json()) as { servers: unknown[] };
    assert.equal(listed.servers.length, 1);
    assert.ok(!JSON.stringify(listed).includes(KEY), "a header's value is never shown back");

    await client.serversMatching((servers) => byName(servers, "mine")?.user_added === true);
    client.send({ message: 'CALL mine_echo {"text":"hi"}' });
    const answer = await client.nextMatching((frame) => frame.type === "answer");
    assert.equal(answer.message, "RESULT mine:hi");

    const db = new Database(path.join(running.configDir, "data/sessions.db"), { readonly: true });
    try {
      const values = (db.prepare("SELECT value FROM user_data WHERE user_id = 'alice'").all() as { value: string }[]).map(
        (row) => row.value,
      );
      assert.ok(values.length > 0 && values.every((value) => value.startsWith("v1:") && !value.includes(KEY)));
    } finally {
      db.close();
    }
  } finally {
    await client.close();
  }
});

test("another user sees neither the server nor its tools", async () => {
  const listed = (await (await fetch(`${running.url}/servers/bob`)).json()) as { servers: unknown[] };
  assert.deepEqual(listed.servers, []);
  const { client } = await connectUser(running, "bob", "?stream=1");
  try {
    const servers = await client.serversMatching(() => true);
    assert.equal(byName(servers, "mine"), undefined);
    client.send({ message: 'CALL mine_echo {"text":"hi"}' });
    const answer = await client.nextMatching((frame) => frame.type === "answer");
    assert.doesNotMatch(String(answer.message), /mine:hi/);
  } finally {
    await client.close();
  }
});

test("refusals say why: a shadowing name, a private address, the per-user cap, a bad body", async () => {
  const shadow = await post("carol", { name: "test", url: remote.url });
  assert.equal(shadow.status, 409);
  assert.equal((await post("carol", { name: "fetch", url: remote.url })).status, 409);
  const privateAddress = await post("carol", { name: "inside", url: "http://10.1.2.3/mcp" });
  assert.equal(privateAddress.status, 403);
  assert.match(((await privateAddress.json()) as { error: string }).error, /private.*mcp\.user_servers\.allow_hosts/s);
  const metadata = await post("carol", { name: "cloud", url: "http://169.254.169.254/mcp" });
  assert.equal(metadata.status, 403);
  const stdio = await post("carol", { name: "local", url: remote.url, transport: "stdio" });
  assert.equal(stdio.status, 400);
  assert.match(((await stdio.json()) as { error: string }).error, /remote/);
  assert.equal((await post("carol", { name: "one", url: remote.url })).status, 201);
  assert.equal((await post("carol", { name: "two", url: remote.url })).status, 201);
  const third = await post("carol", { name: "three", url: remote.url });
  assert.equal(third.status, 409);
  assert.match(((await third.json()) as { error: string }).error, /limits\.max_user_servers: 2/);
  const bad = await fetch(`${running.url}/servers/carol`, { method: "POST", headers: WRITE, body: "{" });
  assert.equal(bad.status, 400);
});

test("over the socket: server_add and server_remove; DELETE over HTTP removes it from the session", async () => {
  const { client } = await connectUser(running, "dave", "?stream=1");
  try {
    client.send({ type: "server_add", server: { name: "viasocket", url: remote.url, headers: { "X-Key": KEY } } });
    await client.serversMatching((servers) => byName(servers, "viasocket") !== undefined);
    client.send({ type: "server_add", server: { name: "test", url: remote.url } });
    const refused = await client.nextMatching((frame) => frame.type === "error");
    assert.match(String(refused.error), /one of this server's own MCP servers/);
    let seen = client.servers.length;
    client.send({ type: "server_remove", server: "viasocket" });
    await client.serversMatching((servers) => byName(servers, "viasocket") === undefined, 15000, seen);

    assert.equal((await post("dave", { name: "byhttp", url: remote.url })).status, 201);
    await client.serversMatching((servers) => byName(servers, "byhttp") !== undefined);
    seen = client.servers.length;
    const deleted = await fetch(`${running.url}/servers/dave/byhttp`, { method: "DELETE", headers: { "x-requested-with": "t" } });
    assert.equal(deleted.status, 204);
    const last = await client.serversMatching((servers) => byName(servers, "byhttp") === undefined, 15000, seen);
    assert.equal(byName(last, "test")?.user_added, false);
    assert.equal(
      (await fetch(`${running.url}/servers/dave/byhttp`, { method: "DELETE", headers: { "x-requested-with": "t" } })).status,
      404,
    );
  } finally {
    await client.close();
  }
});
