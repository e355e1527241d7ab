// Sockets given back: every refused or timed-out connection is destroyed once its answer is
// written, even when the client never closes its side. The server runs as its own process so its
// open descriptors (/proc/<pid>/fd) are counted apart from the test's 2,000 client sockets.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, rmSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { makeConfigDir, spawnServer, stopSpawned, until, type SpawnedServer } from "../helpers/harness.ts";
import { rawHandshake, upgradeHeaders } from "../helpers/raw-ws.ts";

const TOKEN = "given-back-token-77";
const spawned: SpawnedServer[] = [];
const dirs: string[] = [];
const clients: net.Socket[] = [];

after(async () => {
  for (const socket of clients) socket.destroy();
  await stopSpawned(spawned);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** A TCP connection that writes `bytes` and then neither reads to the end nor closes. */
function openAndWrite(port: number, bytes: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: our side never sends FIN, even after the server's; only the server can end it.
    const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    clients.push(socket);
    socket.on("error", () => undefined);
    socket.once("connect", () => {
      if (bytes) socket.write(bytes);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

function request(pathname: string, headers: Record<string, string>): string {
  return `GET ${pathname} HTTP/1.1\r\n${Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("")}\r\n`;
}

test("1,000 refused and 1,000 slow connections that never close: the server's descriptors return to baseline", async () => {
  const dir = makeConfigDir({
    config: {
      logger: { transports: ["none"] },
      openai: { base_url: "http://127.0.0.1:9/v1", default_model: "test-model", max_retries: 0 },
      session: { store: "memory" },
      server: { auth_token: TOKEN, headers_timeout_seconds: 1, request_timeout_seconds: 2 },
      limits: { max_sockets_per_user: 1 },
    },
  });
  dirs.push(dir);
  const server = spawnServer(["--config", path.join(dir, "mcp_agent.config.yaml"), "--port", "0"]);
  spawned.push(server);
  await server.ready;
  const pid = server.child.pid ?? 0;
  const url = new URL(server.url);
  const port = Number(url.port);
  const host = url.host;
  // A first connection warms up whatever the server opens lazily (the session store, timers).
  const warm = await fetch(`${server.url}/health`);
  assert.equal(warm.status, 200);
  await until(() => openFds(pid) > 0, "the server's descriptors to be readable");
  const baseline = openFds(pid);

  // Every kind of refusal: no token (401), a foreign origin (403), a bad path (404), a malformed
  // upgrade (400), a refused plain request (401 on /sessions), a quota close (1013).
  const refused: string[] = [];
  for (let n = 0; n < 1000; n++) {
    const kind = n % 5;
    if (kind === 0) refused.push(request(`/ws/u${n}`, upgradeHeaders(host)));
    else if (kind === 1) refused.push(request(`/ws/u${n}?token=${TOKEN}`, upgradeHeaders(host, { origin: "http://evil.example" })));
    else if (kind === 2) refused.push(request(`/nowhere/u${n}?token=${TOKEN}`, upgradeHeaders(host)));
    else if (kind === 3) refused.push(request(`/ws/u${n}?token=${TOKEN}`, upgradeHeaders(host, { "sec-websocket-version": "8" })));
    else refused.push(request(`/sessions`, { host }));
  }
  // Slow ones: headers that never end, and connections that never send a byte.
  const slow = Array.from({ length: 1000 }, (_, n) => (n % 2 === 0 ? `GET /health HTTP/1.1\r\nHost: ${host}\r\nX-slow-${n}: ` : ""));

  // Opened in batches, so the test's own connects do not fill the listen backlog.
  const all = [...refused, ...slow];
  for (let at = 0; at < all.length; at += 200) await Promise.all(all.slice(at, at + 200).map((bytes) => openAndWrite(port, bytes)));

  // Quota-closed websockets whose client never answers the close frame.
  const holder = await rawHandshake(server.url, `/ws/quota?token=${TOKEN}`);
  clients.push(holder.socket);
  const quotaClosed = await Promise.all(
    Array.from({ length: 20 }, () => rawHandshake(server.url, `/ws/quota?token=${TOKEN}`, { headers: upgradeHeaders(host) })),
  );
  for (const raw of quotaClosed) {
    clients.push(raw.socket);
    // The close frame arrives; we read it and never answer, never close.
    assert.equal((await raw.closeFrame()).code, 1013);
  }
  assert.ok(openFds(pid) > baseline, "the connections were open on the server");

  // Without the fix they stay open as long as the clients do (here: until the test ends).
  await until(() => openFds(pid) <= baseline + 1, `the server's descriptors to return to ${baseline} (now ${openFds(pid)})`, 15000);
  // The client sockets are still open on our side: nothing was closed by the client.
  assert.ok(clients.filter((socket) => !socket.destroyed).length > 0);
  // And the server still serves.
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
});
