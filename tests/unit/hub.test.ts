// A session's hub (lib/mcp/hub.ts) over real connections (lib/mcp/connection.ts) to MCP servers
// run in-process: the catalog it offers, how it routes calls, ready() beside a remote server that
// is down, idle reaping and close.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { stringify } from "yaml";
import { parseConfig } from "../../lib/config.ts";
import { OWNER_META_KEY } from "../../lib/fetch/fetch-tool.ts";
import { WORKSPACE_META } from "../../lib/filesystem/server.ts";
import { createLogger } from "../../lib/log.ts";
import { McpConnection, type ConnectionLimits } from "../../lib/mcp/connection.ts";
import { McpHub } from "../../lib/mcp/hub.ts";
import { transportFactory } from "../../lib/mcp/transports.ts";

const log = createLogger({ level: "error", console: false, secrets: [] });
const limits: ConnectionLimits = { maxToolResultChars: 10_000, maxToolImageBytes: 1_000_000, maxRestarts: 1 };
const text = (value: string) => ({ content: [{ type: "text" as const, text: value }] });

/**
 * A server of the user's own, in-process as a child would be: each start is a new server
 * (counted in `starts`); its tool `crash` ends it in the middle of the call, as a child that exits.
 */
function localServer(name: string, options: { shared?: boolean; perWorkspace?: boolean } = {}) {
  const counts = { starts: 0 };
  const connection = new McpConnection({
    name,
    transportName: options.shared ? "builtin" : "stdio",
    ...options,
    timeoutMs: 5000,
    limits,
    log,
    makeTransport: () => {
      counts.starts++;
      const server = new McpServer({ name, version: "1.0.0" });
      server.registerTool("hello", { description: "Greets" }, () => text(`hello from ${name}`));
      server.registerTool("meta", { description: "Shows the call's _meta" }, (extra) => text(JSON.stringify(extra._meta ?? {})));
      server.registerTool("crash", { description: "Ends the server mid-call" }, () => {
        void server.close();
        return new Promise<never>(() => undefined);
      });
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
      void server.connect(serverSide);
      return clientSide;
    },
  });
  return { connection, counts };
}

/** A streamable HTTP server at an address where nothing listens, through the real transport factory. */
async function remoteDown(name: string) {
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const { port } = listener.address() as net.AddressInfo;
  await new Promise((resolve) => listener.close(resolve));
  const config = parseConfig(
    {
      file: "mcp_agent.config.yaml",
      text: stringify({ mcp: { servers: { [name]: { transport: "streamable_http", url: `http://127.0.0.1:${port}/mcp` } } } }),
    },
    undefined,
    {},
    "/cfg",
  );
  const entry = config.mcp.servers[name];
  assert.ok(entry);
  const counts = { attempts: 0 };
  const make = transportFactory(name, entry, "/ws/alice", { log, packageDirs: [], configDir: "/cfg" }, {});
  const connection = new McpConnection({
    name,
    transportName: entry.transport,
    timeoutMs: 5000,
    limits,
    log,
    makeTransport: () => {
      counts.attempts++;
      return make();
    },
  });
  return { connection, counts };
}

const stateOf = (hub: McpHub) => Object.fromEntries(hub.info().map((info) => [info.name, `${info.state}/${info.restarts}`]));

test("the catalog offers every server's tools as <server>_<tool>, and is rebuilt only when a server's tools change", async () => {
  const alpha = localServer("alpha");
  const beta = localServer("beta");
  const hub = new McpHub([alpha.connection, beta.connection]);
  try {
    await hub.ready();
    const catalog = hub.catalog();
    assert.deepEqual(
      catalog.tools.map((tool) => tool.function.name),
      ["alpha_hello", "alpha_meta", "alpha_crash", "beta_hello", "beta_meta", "beta_crash"],
    );
    assert.deepEqual(catalog.routes.get("beta_hello"), { server: "beta", tool: "hello" });
    assert.equal(hub.catalog(), catalog, "nothing changed: the same catalog");

    // A crashed server's tools stay offered (calling one is what restarts it) ...
    assert.equal((await hub.callTool({ server: "beta", tool: "crash" }, {})).ok, false);
    assert.equal(hub.catalog(), catalog);
    // ... its restart is the same tools again, and the cap (here 1) takes them away.
    assert.equal((await hub.callTool({ server: "beta", tool: "crash" }, {})).ok, false);
    assert.match((await hub.callTool({ server: "beta", tool: "hello" }, {})).text, /restarted 1 time \(limits\.mcp_max_restarts\)/);
    assert.deepEqual(
      hub.catalog().tools.map((tool) => tool.function.name),
      ["alpha_hello", "alpha_meta", "alpha_crash"],
    );
  } finally {
    await hub.close();
  }
});

test("calls go to their server; shared servers learn the caller, per-workspace ones its workspace too", async () => {
  const own = localServer("own");
  const fetchLike = localServer("fetchlike", { shared: true });
  const files = localServer("files", { shared: true, perWorkspace: true });
  const hub = new McpHub([own.connection, fetchLike.connection, files.connection], { workspaceDir: "/ws/alice", owner: "alice" });
  try {
    await hub.ready();
    assert.equal((await hub.callTool({ server: "own", tool: "hello" }, {})).text, "hello from own");
    const ownMeta = JSON.parse((await hub.callTool({ server: "own", tool: "meta" }, {})).text) as Record<string, unknown>;
    assert.deepEqual([ownMeta[OWNER_META_KEY], ownMeta[WORKSPACE_META]], [undefined, undefined], "a server of one's own is told neither");
    const shared = JSON.parse((await hub.callTool({ server: "fetchlike", tool: "meta" }, {})).text) as Record<string, unknown>;
    assert.equal(shared[OWNER_META_KEY], "alice");
    assert.equal(shared[WORKSPACE_META], undefined);
    const perWorkspace = JSON.parse((await hub.callTool({ server: "files", tool: "meta" }, {})).text) as Record<string, unknown>;
    assert.equal(perWorkspace[OWNER_META_KEY], "alice");
    assert.equal(perWorkspace[WORKSPACE_META], "/ws/alice");
    assert.deepEqual(await hub.callTool({ server: "nope", tool: "hello" }, {}), { ok: false, text: 'Unknown MCP server "nope"' });
    assert.deepEqual(await hub.callTool({ server: "own", tool: "nope" }, {}), {
      ok: false,
      text: 'Unknown tool "nope" on MCP server "own"',
    });
  } finally {
    await hub.close();
    await Promise.all([fetchLike.connection.close(), files.connection.close()]);
  }
});

test("with a remote server down, ready() tries it again at every turn but never restarts a crashed server; calls do, counted and capped", async () => {
  const down = await remoteDown("down");
  const crashy = localServer("crashy");
  const hub = new McpHub([down.connection, crashy.connection]);
  try {
    await hub.ready();
    assert.deepEqual(stateOf(hub), { down: "failed/0", crashy: "ready/0" });
    assert.equal(hub.info()[0]?.error !== undefined, true, "the remote server says why it is down");

    assert.equal((await hub.callTool({ server: "crashy", tool: "crash" }, {})).ok, false);
    for (let turn = 0; turn < 3; turn++) await hub.ready();
    assert.equal(down.counts.attempts, 4, "every turn tried the remote server again");
    assert.equal(crashy.counts.starts, 1, "no turn restarted the crashed server");
    assert.deepEqual(stateOf(hub), { down: "failed/0", crashy: "exited/0" });

    // The call restarts it (the first restart is at once), and counts it.
    assert.equal((await hub.callTool({ server: "crashy", tool: "hello" }, {})).text, "hello from crashy");
    assert.deepEqual(stateOf(hub), { down: "failed/0", crashy: "ready/1" });
    assert.equal((await hub.callTool({ server: "crashy", tool: "crash" }, {})).ok, false);

    // limits.maxRestarts is 1: turns and calls leave it down.
    for (let turn = 0; turn < 3; turn++) {
      await hub.ready();
      const refused = await hub.callTool({ server: "crashy", tool: "hello" }, {});
      assert.equal(
        refused.text,
        'MCP server "crashy" is not available (failed: the server crashed and was restarted 1 time (limits.mcp_max_restarts); it is not started again)',
      );
    }
    assert.equal(crashy.counts.starts, 2);
    assert.deepEqual(stateOf(hub), { down: "failed/0", crashy: "failed/1" });
  } finally {
    await hub.close();
  }
});

test("an idle reap stops the servers of its own that run; a failed one stays failed, a shared one runs on", async () => {
  const healthy = localServer("healthy");
  const crashy = localServer("crashy");
  const shared = localServer("shared", { shared: true });
  const hub = new McpHub([healthy.connection, crashy.connection, shared.connection]);
  try {
    await hub.ready();
    assert.equal(await hub.reapIfIdle(Date.now(), 60_000), false, "used just now: not idle");
    for (let crash = 0; crash < 2; crash++) await hub.callTool({ server: "crashy", tool: "crash" }, {});
    await hub.callTool({ server: "crashy", tool: "hello" }, {});
    assert.deepEqual(stateOf(hub), { healthy: "ready/0", crashy: "failed/1", shared: "ready/0" });
    assert.equal(hub.warm, true);

    assert.equal(await hub.reapIfIdle(Date.now() + 120_000, 60_000), true);
    assert.deepEqual(stateOf(hub), { healthy: "stopped/0", crashy: "failed/1", shared: "ready/0" });
    assert.equal(hub.warm, false);
    assert.equal(await hub.reapIfIdle(Date.now() + 240_000, 60_000), false, "nothing left to stop");

    await hub.ready();
    assert.deepEqual(stateOf(hub), { healthy: "ready/0", crashy: "failed/1", shared: "ready/0" });
    assert.deepEqual([healthy.counts.starts, crashy.counts.starts, shared.counts.starts], [2, 2, 1]);
  } finally {
    await hub.close();
  }
  assert.deepEqual(
    stateOf(hub),
    { healthy: "closed/0", crashy: "closed/1", shared: "ready/0" },
    "close() leaves shared servers to the others",
  );
  await shared.connection.close();
});
